#!/bin/sh
# tests/fuzz/run.sh - build every fuzz target with the plain-C driver (driver.c) under
# ASan+UBSan and run it over its seed corpus plus FUZZ_MUTATIONS (default 2000)
# deterministic mutations; prints each target's line and the total "N passed, N failed".
# No libFuzzer needed; README.md has the libFuzzer commands for longer runs.
cd "$(dirname "$0")/../.." || exit 1
CC=${CC:-cc}
B=${B:-build/fuzz}
N=${FUZZ_MUTATIONS:-2000}
# the libraries configure found (make check passes them); a guess when run on its own
lib() { [ -f "/usr/lib/x86_64-linux-gnu/lib$1.a" ] && echo "/usr/lib/x86_64-linux-gnu/lib$1.a" || echo "-l$1"; }
JANSSON=${JANSSON_LIBS:-$(lib jansson)}
YAML=${YAML_LIBS:-$(lib yaml)}
FLAGS="-std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
       -Wpedantic -Wno-unused-parameter -fsanitize=address,undefined -fno-omit-frame-pointer
       -fno-sanitize-recover=undefined -DHZ_FUZZ_DRIVER -Iruntime -Icompiler -Itests"
mkdir -p "$B"
passed=0
failed=0
# target, then the sources it needs beyond itself and driver.c, then its libraries
run_target() {
    t=$1
    src=$2
    libs=$3
    log=$B/$t.log
    # shellcheck disable=SC2086
    if ! $CC $FLAGS -o "$B/$t" tests/fuzz/$t.c tests/fuzz/driver.c $src $libs -lm > "$log" 2>&1; then
        echo "NOT OK  $t: does not build; see $log"
        tail -n 20 "$log"
        failed=$((failed + 1))
        return
    fi
    dict=tests/fuzz/${t#fuzz_}.dict
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$B/$t" -n "$N" -d "$dict" "tests/fuzz/corpus/${t#fuzz_}" >> "$log" 2>&1
    rc=$?
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ $rc != 0 ] || [ "$line" != "1 passed, 0 failed" ]; then
        echo "NOT OK  $t: crashed or failed (exit $rc); see $log"
        tail -n 30 "$log"
        failed=$((failed + 1))
        return
    fi
    grep '^ok' "$log"
    passed=$((passed + 1))
}
run_target fuzz_safetensors "runtime/safetensors.c" "$JANSSON"
run_target fuzz_import "compiler/import.c compiler/import_json.c compiler/import_gemma.c compiler/spec.c compiler/spec_arch.c compiler/spec_msg.c compiler/spec_override.c compiler/spec_plan.c compiler/yml.c runtime/names.c" "$JANSSON $YAML"
run_target fuzz_jsonl "runtime/data.c runtime/data_shard.c runtime/data_npy.c runtime/data_jsonl.c runtime/data_rows.c" "$JANSSON"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
