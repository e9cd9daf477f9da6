#!/bin/sh
# tests/run.sh TEST... - run the test programs (plain, then under ASan+UBSan) and the
# command-line tests; print each program's summary and the total "N passed, N failed".
cd "$(dirname "$0")/.." || exit 1
log=build/test-logs
mkdir -p $log
. tests/lib.sh
for t in "$@"; do
    build/tests/$t > $log/$t.log 2>&1; tally "$t" $log/$t.log $?
done
for t in "$@"; do
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/san-tests/$t > $log/$t.san.log 2>&1
    tally "$t (asan+ubsan)" $log/$t.san.log $?
done
sh tests/test_cli.sh > $log/cli.log 2>&1; tally "test_cli.sh" $log/cli.log $?
sh tests/test_configure.sh > $log/configure.log 2>&1; tally "test_configure.sh" $log/configure.log $?
sh tests/test_robust.sh > $log/robust.log 2>&1; tally "test_robust.sh" $log/robust.log $?
sh tests/test_tune.sh > $log/tune.log 2>&1; tally "test_tune.sh" $log/tune.log $?
sh tests/test_ckpt.sh > $log/ckpt.log 2>&1; tally "test_ckpt.sh" $log/ckpt.log $?
sh tests/test_ckpt_async.sh > $log/ckpt_async.log 2>&1; tally "test_ckpt_async.sh" $log/ckpt_async.log $?
sh tests/test_residency.sh > $log/residency.log 2>&1; tally "test_residency.sh" $log/residency.log $?
sh tests/test_gpus_run.sh > $log/gpus_run.log 2>&1; tally "test_gpus_run.sh" $log/gpus_run.log $?
sh tests/test_hosts_run.sh > $log/hosts_run.log 2>&1; tally "test_hosts_run.sh" $log/hosts_run.log $?
sh tests/test_optstate.sh > $log/optstate.log 2>&1; tally "test_optstate.sh" $log/optstate.log $?
sh tests/test_report.sh > $log/report.log 2>&1; tally "test_report.sh" $log/report.log $?
sh tests/test_lines.sh > $log/lines.log 2>&1; tally "test_lines.sh" $log/lines.log $?
sh tests/test_kprof.sh > $log/kprof.log 2>&1; tally "test_kprof.sh" $log/kprof.log $?
sh tests/fuzz/run.sh > $log/fuzz.log 2>&1; tally "tests/fuzz/run.sh" $log/fuzz.log $?
sh tests/test_prepare_sft.sh > $log/prepare_sft.log 2>&1; tally "test_prepare_sft.sh" $log/prepare_sft.log $?
sh tests/test_samples_tool.sh > $log/samples_tool.log 2>&1; tally "test_samples_tool.sh" $log/samples_tool.log $?
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
