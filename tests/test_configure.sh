#!/bin/sh
# tests/test_configure.sh - configure's Makefile remembers its choices and remakes itself: in a
# scratch copy of configure and Makefile.in, `./configure CUDNN=no` writes them into the
# Makefile's CONFIGURE_ARGS; a Makefile.in newer than the Makefile makes `make Makefile` run
# configure again with them (CUDNN stays off); --without-nccl leaves NCCL out and the
# toolkit's nccl.h is found otherwise; an unknown option is refused by name.
# Ends with "N passed, N failed".
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp configure Makefile.in "$tmp/"
(cd "$tmp" && ./configure CUDNN=no > conf1.log 2>&1) || bad "configure CUDNN=no: $(tail -n 3 "$tmp/conf1.log")"
args=$(grep '^CONFIGURE_ARGS = ' "$tmp/Makefile")
case $args in
    *CUDNN=no*) ok "the Makefile records configure's choices: $args" ;;
    *) bad "CONFIGURE_ARGS without CUDNN=no: '$args'" ;;
esac
grep -q '^HAVE_CUDNN = 0$' "$tmp/Makefile" && ok "CUDNN=no: HAVE_CUDNN = 0" || bad "CUDNN=no: $(grep '^HAVE_CUDNN' "$tmp/Makefile")"
sleep 1
echo "# newer" >> "$tmp/Makefile.in"
(cd "$tmp" && make Makefile > remake.log 2>&1) || bad "make Makefile: $(tail -n 3 "$tmp/remake.log")"
grep -q 'newer than Makefile: ./configure CC=.* CUDNN=no' "$tmp/remake.log" &&
    ok "a newer Makefile.in: make runs configure again with the same choices" ||
    bad "no rerun: $(head -n 3 "$tmp/remake.log")"
tail -n 1 "$tmp/Makefile" | grep -q '^# newer$' && grep -q '^HAVE_CUDNN = 0$' "$tmp/Makefile" &&
    ok "the remade Makefile is from the new Makefile.in, cuDNN still off" ||
    bad "remade Makefile: $(tail -n 1 "$tmp/Makefile"), $(grep '^HAVE_CUDNN' "$tmp/Makefile")"
# NCCL: --without-nccl leaves it out and says so where the toolkit is there; by default
# (the toolkit's nccl.h, where it has one) it is found and recorded
(cd "$tmp" && ./configure --without-nccl > conf2.log 2>&1) || bad "configure --without-nccl: $(tail -n 3 "$tmp/conf2.log")"
grep -q '^HAVE_NCCL = 0$' "$tmp/Makefile" && grep -q 'NCCL=no' "$tmp/Makefile" &&
    ok "--without-nccl: HAVE_NCCL = 0, NCCL=no recorded" || bad "--without-nccl: $(grep '^HAVE_NCCL\|^CONFIGURE_ARGS' "$tmp/Makefile")"
if [ "${HAVE_CUDA:-0}" = 1 ] && [ -f /usr/local/cuda/include/nccl.h ]; then
    (cd "$tmp" && ./configure > conf3.log 2>&1) || bad "configure: $(tail -n 3 "$tmp/conf3.log")"
    grep -q '^HAVE_NCCL = 1$' "$tmp/Makefile" && grep -q '^configure: NCCL: header in ' "$tmp/conf3.log" &&
        ok "the toolkit's nccl.h is found: $(grep '^configure: NCCL' "$tmp/conf3.log")" ||
        bad "NCCL not found: $(grep 'NCCL' "$tmp/conf3.log" "$tmp/Makefile" | head -n 3)"
else
    echo "skip    NCCL detection: no CUDA toolkit with nccl.h here"
fi
(cd "$tmp" && ./configure --frobnicate > bad.log 2>&1)
[ $? = 1 ] && grep -q "unknown option '--frobnicate'" "$tmp/bad.log" &&
    ok "an unknown option is refused by name" || bad "unknown option: $(cat "$tmp/bad.log")"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
