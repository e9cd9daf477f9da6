#!/bin/sh
# tests/run.sh TEST... - run the test programs (plain, then under ASan+UBSan) and the
# command-line tests; print each program's summary and the total "N passed, N failed".
cd "$(dirname "$0")/.." || exit 1
passed=0
failed=0
log=build/test-logs
mkdir -p $log
tally() { # name, log file, exit status
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$2" | tail -n 1)
    if [ -z "$line" ]; then
        echo "NOT OK  $1: crashed or printed no summary (exit $3); see $2"
        tail -n 20 "$2"
        failed=$((failed + 1))
        return
    fi
    p=${line%% passed*}
    f=${line#*passed, }
    f=${f%% failed*}
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$f" = 0 ] && [ "$3" = 0 ] || { grep -E '^NOT OK' "$2"; [ "$3" != 0 ] && [ "$f" = 0 ] && failed=$((failed + 1)); }
    printf '%-28s %s\n' "$1" "$line"
}
for t in "$@"; do
    build/tests/$t > $log/$t.log 2>&1; tally "$t" $log/$t.log $?
done
for t in "$@"; do
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/san-tests/$t > $log/$t.san.log 2>&1
    tally "$t (asan+ubsan)" $log/$t.san.log $?
done
sh tests/test_cli.sh > $log/cli.log 2>&1; tally "test_cli.sh" $log/cli.log $?
sh tests/fuzz/run.sh > $log/fuzz.log 2>&1; tally "tests/fuzz/run.sh" $log/fuzz.log $?
sh tests/test_prepare_sft.sh > $log/prepare_sft.log 2>&1; tally "test_prepare_sft.sh" $log/prepare_sft.log $?
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
