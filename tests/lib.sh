# tests/lib.sh - the shell test scripts' shared counting, sourced from the repository root:
#   ok MESSAGE / bad MESSAGE count one check;
#   tally NAME LOG [STATUS] adds LOG's "N passed, N failed" line (a missing line, or a
#   non-zero STATUS with no failure counted, is one failure) and prints it.
# The counts are $pass and $fail.
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok      $*"; }
bad() { fail=$((fail + 1)); echo "NOT OK  $*"; }
tally() {
    status=${3:-0}
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$2" | tail -n 1)
    if [ -z "$line" ]; then
        echo "NOT OK  $1: crashed or printed no summary (exit $status); see $2"
        tail -n 20 "$2"
        fail=$((fail + 1))
        return
    fi
    p=${line%% passed*}
    f=${line#*passed, }
    f=${f%% failed*}
    pass=$((pass + p))
    fail=$((fail + f))
    [ "$f" = 0 ] && [ "$status" = 0 ] || { grep -E '^NOT OK' "$2"; [ "$status" != 0 ] && [ "$f" = 0 ] && fail=$((fail + 1)); }
    printf '%-34s %s\n' "$1" "$line"
}

# expect_fail NAME PATTERN CMD...: exit status 1 (not a crash) and PATTERN in stderr; the
# caller's $tmp holds the command's output.
expect_fail() {
    name=$1 pattern=$2
    shift 2
    "$@" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    if [ $rc = 1 ] && grep -q -- "$pattern" "$tmp/err"; then
        ok "$name: exit 1, says: $(grep -m1 -- "$pattern" "$tmp/err" | cut -c1-150)"
    else
        bad "$name: exit $rc, expected 1 with '$pattern'; stderr: $(head -c 400 "$tmp/err")"
    fi
}

# memcheck WHAT LOG CMD...: CMD under compute-sanitizer's memcheck ($cs, the caller's path
# to it), one check: exit 0 and "ERROR SUMMARY: 0 errors" in LOG.
memcheck() {
    what=$1 log=$2
    shift 2
    $cs --tool memcheck --error-exitcode 9 "$@" > "$log" 2>&1
    rc=$?
    grep -q 'ERROR SUMMARY: 0 errors' "$log" && [ $rc = 0 ] &&
        ok "compute-sanitizer memcheck, $what: 0 errors" ||
        bad "compute-sanitizer, $what: exit $rc, $(grep 'ERROR SUMMARY' "$log")"
}

# step_lines LOG: the "loss | norm" fields of a trainer log's step lines (not its validation
# lines), one a step: a run's record for same_run.
step_lines() { grep '^step  *[0-9]*/' "$1" | grep -v 'val loss' | cut -d'|' -f2,3; }
# same_run A B: the runs saved as A.raw (masters, --save-raw) and A.loss (step_lines) and
# B's: both present and byte for byte the same.
same_run() { [ -s "$1.raw" ] && cmp -s "$1.raw" "$2.raw" && [ -s "$1.loss" ] && cmp -s "$1.loss" "$2.loss"; }

# store_bytes LOG: "PLANNED MEASURED" of the trainer summary's host store line in LOG.
store_bytes() { sed -n 's/^  host store  *planned  *\([0-9]*\) .* measured  *\([0-9]*\) .*/\1 \2/p' "$1"; }
