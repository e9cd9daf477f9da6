#!/bin/sh
# tests/test_lines.sh - generated code points back to its source: a C compiler error in
# generated/schedule.c names the template line, an NVRTC error in generated/kernels.cu the
# kernel file and line, a Lua error the template line; and every line of the generated C
# and CUDA after a #line equals the source line it names. Breaks copies of templates/ and
# runtime/cuda/ in scratch roots ($HZC_ROOT). Run from the repository root after make.
hzc=$(pwd)/build/hzc
tmp=$(mktemp -d /tmp/hzc-lines.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh
export LC_ALL=C # ASCII quotes in the C compiler's messages
unset HZC_ROOT

# scratch_root DIR: a root for hzc with its own copy of templates/ and runtime/cuda/*.cu,
# the rest of runtime/ linked; build/ holds no runtime library, so hzc build stops after
# writing generated/ unless the caller puts one there.
scratch_root() {
    mkdir -p "$1/runtime/cuda" "$1/build"
    cp -R templates "$1/templates"
    cp runtime/cuda/*.cu "$1/runtime/cuda/"
    for f in runtime/*; do [ "$f" = runtime/cuda ] || ln -s "$(pwd)/$f" "$1/$f"; done
}

# insert FILE ERE TEXT: put the line TEXT after the first line of FILE matching ERE and
# print its line number (0: no line matches).
insert() {
    n=$(grep -n -m1 -E -- "$2" "$1" | cut -d: -f1)
    [ -n "$n" ] || { echo 0; return; }
    awk -v n="$n" -v text="$3" '{ print } NR == n { print text }' "$1" > "$1.new" &&
        mv "$1.new" "$1"
    echo $((n + 1))
}

# lines_of FILE PATTERN: the line numbers, one each, that FILE's messages give for PATTERN
# ("SRC:N:" or NVRTC's "SRC(N)"), in order of appearance.
lines_of() {
    grep -E -- "$2" "$1" | sed -E 's/^[^:(]*[:(]([0-9]+).*/\1/'
}

# expect_lines NAME LOG PATTERN N MIN: PATTERN reported at least MIN times, all at line N
expect_lines() {
    got=$(lines_of "$2" "$3" | sort -u | tr '\n' ' ')
    count=$(lines_of "$2" "$3" | wc -l)
    if [ "$4" -gt 0 ] && [ "$got" = "$4 " ] && [ "$count" -ge "$5" ]; then
        ok "$1: line $4 ($count message(s)): $(grep -m1 -E -- "$3" "$2" | cut -c1-100)"
    else
        bad "$1: expected line $4 at least $5 times, got lines '$got' ($count); log: $(head -c 400 "$2")"
    fi
}

# check_map ROOT FILE NAME: each line of FILE after `#line N "SRC"` must be line N, N+1, ...
# of ROOT/SRC. Template lines with ${...} are not compared, nor empty lines past SRC's end
# (the newline the template adds after a file's text).
check_map() {
    result=$(awk -v root="$1" '
        function load(f,   line, k) {
            if (f in size) return
            k = 0
            while ((getline line < (root "/" f)) > 0) src[f, ++k] = line
            close(root "/" f)
            size[f] = k
        }
        /^#line [0-9]+ "[^"]*"$/ { n = $2; f = substr($3, 2, length($3) - 2); load(f); next }
        f == "" { next }
        {
            if (n > size[f]) {
                if ($0 != "") { bad++; if (!first) first = f ":" n ": past the end: " $0 }
            } else if (index(src[f, n], "${") == 0) {
                checked++
                if (src[f, n] != $0 && bad++ == 0)
                    first = f ":" n ": " src[f, n] " | output line " FNR ": " $0
            }
            n++
        }
        END { printf "%d %d %s\n", checked, bad, first }' "$2")
    checked=${result%% *}
    rest=${result#* }
    nbad=${rest%% *}
    if [ "$checked" -gt 0 ] && [ "$nbad" = 0 ]; then
        ok "$3: $checked lines equal the source line their #line names"
    else
        bad "$3: $nbad of $checked lines differ from the source line their #line names; first: ${rest#* }"
    fi
}

# ---- the unbroken output: #line where it helps, never in JSON, the banner first ----
$hzc build models/tiny.yaml -o "$tmp/ok" --backend cpu > "$tmp/ok.log" 2>&1
gen=$tmp/ok/generated
for f in schedule.c kernels.cu plan.json; do
    [ -s "$gen/$f" ] || bad "hzc build tiny wrote no $f: $(head -c 400 "$tmp/ok.log")"
done
for f in schedule.c kernels.cu; do
    head -1 "$gen/$f" | grep -q '^/\* This is a generated file. DO NOT EDIT! \*/$' &&
        ok "$f: the banner is line 1" || bad "$f: line 1 is '$(head -1 "$gen/$f")'"
    sed -n 2p "$gen/$f" | grep -q "^#line 2 \"templates/$f.tmpl\"$" &&
        ok "$f: line 2 is #line 2 \"templates/$f.tmpl\"" || bad "$f: line 2 is '$(sed -n 2p "$gen/$f")'"
    check_map "$(pwd)" "$gen/$f" "$f"
done
grep -q '#line' "$gen/plan.json" && bad "plan.json has a #line" || ok "plan.json: no #line"
want=$(cd runtime/cuda && { ls *.cuh | sort; ls util.cu; ls *.cu | grep -v '^util\.cu$' | sort; } | tr '\n' ' ')
got=$(sed -n 's|^#line 1 "runtime/cuda/\(.*\)"$|\1|p' "$gen/kernels.cu" | tr '\n' ' ')
[ "$got" = "$want" ] && ok "kernels.cu: #line 1 before each kernel source, in order: $got" ||
    bad "kernels.cu: #line 1 names '$got', expected '$want'"

# ---- a C error in schedule.c names the template line, before, inside and after loops ----
r=$tmp/c
scratch_root "$r"
: > "$r/build/libhzrt_cpu.a" # hzc compiles schedule.c only when a runtime library is there
t=$r/templates/schedule.c.tmpl
n_top=$(insert "$t" '^#include "hz.h"' 'static const int hzg_broken_top = hzg_undeclared_top;')
n_op=$(insert "$t" '^% for i, o in ipairs\(plan\.ops\)' '    hzg_undeclared_op_${i},') # one per op
n_end=$(insert "$t" '^const hz_plan hzg_plan = \{' '    hzg_undeclared_end,')
HZC_ROOT=$r $hzc build models/tiny.yaml -o "$r/out" --backend cpu > "$r/log" 2>&1
rc=$?
[ $rc = 1 ] && ok "broken schedule.c.tmpl: hzc build exits 1" || bad "broken schedule.c.tmpl: hzc build exit $rc"
src='^templates/schedule\.c\.tmpl:[0-9]+:[0-9]+: error: .*'
expect_lines "C error before the loops" "$r/log" "${src}hzg_undeclared_top" "$n_top" 1
ops_n=$(grep -c '^    hzg_undeclared_op_' "$r/out/generated/schedule.c")
expect_lines "C error in the ops loop, each of $ops_n ops" "$r/log" "${src}hzg_undeclared_op_" "$n_op" "$ops_n"
expect_lines "C error after the loops" "$r/log" "${src}hzg_undeclared_end" "$n_end" 1

# ---- an NVRTC error in kernels.cu names the kernel file and line ----
if [ "${HAVE_CUDA:-0}" = 1 ] && [ -x build/nvrtc_compile ]; then
    r=$tmp/cu
    scratch_root "$r"
    n_rope=$(insert "$r/runtime/cuda/rope.cu" '^\}' '__device__ int hz_broken_rope = hz_undeclared_rope;')
    HZC_ROOT=$r $hzc build models/tiny.yaml -o "$r/out" --backend cpu > "$r/log" 2>&1
    build/nvrtc_compile "$r/out/generated/kernels.cu" sm_90 > "$r/nvrtc.log" 2>&1
    rc=$?
    [ $rc != 0 ] && ok "broken rope.cu: nvrtc_compile fails (exit $rc)" || bad "broken rope.cu: nvrtc_compile succeeded"
    expect_lines "NVRTC error in rope.cu" "$r/nvrtc.log" \
        '^runtime/cuda/rope\.cu\([0-9]+\): error: .*hz_undeclared_rope' "$n_rope" 1
else
    echo "skip    NVRTC error names runtime/cuda/rope.cu: no CUDA toolkit (./configure --with-cuda=DIR)"
fi

# ---- a Lua error names the template line: a Lua line, an expression, a syntax error ----
# lua_error NAME ERE TEXT PATTERN: TEXT inserted after ERE; hzc build must exit 1 and say
# templates/schedule.c.tmpl:N: and PATTERN
lua_n=0
lua_error() {
    lua_n=$((lua_n + 1))
    r=$tmp/lua$lua_n
    scratch_root "$r"
    n=$(insert "$r/templates/schedule.c.tmpl" "$2" "$3")
    HZC_ROOT=$r $hzc build models/tiny.yaml -o "$r/out" --backend cpu > "$r/log" 2>&1
    rc=$?
    if [ $rc = 1 ] && [ "$n" -gt 0 ] && grep -q "templates/schedule\.c\.tmpl:$n: .*$4" "$r/log"; then
        ok "Lua $1 at line $n: $(grep -m1 "$4" "$r/log" | cut -c1-110)"
    else
        bad "Lua $1: expected exit 1 and templates/schedule.c.tmpl:$n: ...$4; exit $rc: $(head -c 400 "$r/log")"
    fi
}
lua_error "call of nil" '^static const hz_region hzg_regions' '% error_here()' "global 'error_here'"
lua_error "error in \${}" '^static const hz_op hzg_ops' '    /* ${plan.nope.x} */' "field 'nope'"
lua_error "syntax error" '^const hz_plan hzg_plan' '% if then' "near 'then'"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
