#!/bin/sh
# tests/test_robust.sh - the trainer under hostile conditions: --threads outside 1..1024,
# a worker thread that cannot start (HZ_TEST_FAIL_THREAD). Run from the repository root
# after make; HZC=path/to/hzc tests another build.
hzc=${HZC:-build/hzc}
tmp=$(mktemp -d /tmp/hzc-robust.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

$hzc build models/tiny.yaml -o "$tmp/a" --backend cpu 2> "$tmp/build.log" || bad "build tiny: $(cat "$tmp/build.log")"
train="$tmp/a/train"
data=data/tiny_train.bin

# expect_fail NAME PATTERN CMD...: exit 1 within 60 s, PATTERN in stderr, no step trained
expect_fail() {
    name=$1 pattern=$2
    shift 2
    timeout 60 "$@" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    if [ $rc = 1 ] && grep -q -- "$pattern" "$tmp/err" && ! grep -q '^step  *[0-9]*/' "$tmp/out"; then
        ok "$name: exit 1 before any step, says: $(grep -m1 -- "$pattern" "$tmp/err" | cut -c1-120)"
    else
        bad "$name: exit $rc, expected 1 with '$pattern' before any step; stderr: $(head -c 300 "$tmp/err")"
    fi
}

# complete CKDIR: every step-N directory holds all three files
complete() {
    for d in "$1"/step-*; do
        [ -d "$d" ] || continue
        case $d in *.tmp) continue ;; esac
        for f in config.json model.safetensors resume.bin; do [ -s "$d/$f" ] || return 1; done
    done
    return 0
}

# ---- threads ----
expect_fail "--threads 2147483648" "--threads expects an integer from 1 to 1024" $train --data $data --threads 2147483648
expect_fail "--threads 100000" "--threads expects an integer from 1 to 1024" $train --data $data --threads 100000
expect_fail "--threads 0" "--threads expects an integer from 1 to 1024" $train --data $data --threads 0
HZ_TEST_FAIL_THREAD=2 timeout 120 "$train" --data $data --steps 3 --threads 3 > "$tmp/thr.log" 2> "$tmp/thr.err"
rc=$?
[ $rc = 1 ] && grep -q 'cannot start worker thread 3 of 3' "$tmp/thr.err" &&
    ok "a worker thread that cannot start: exit 1, $(cut -c1-100 "$tmp/thr.err")" ||
    bad "failed pthread_create: exit $rc (124: hung); stderr: $(cat "$tmp/thr.err")"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
