#!/bin/sh
# tests/gpu/run.sh - the GPU tests (make check-gpu), on a machine with an NVIDIA GPU:
#   1. every CUDA kernel against its cpu reference (build/gpu/test_kernels);
#   2. the tiny model and a small Llama shape: 20 steps on the cuda and the cpu trainer,
#      losses agree within bf16 tolerance;
#   3. hzc against PyTorch + transformers (tests/gpu/torch_parity.py), both backends;
#   4. compute-sanitizer (memcheck) on the tiny cuda trainer.
# Needs build/ from make (hzc, libhzrt_cpu.a, libhzrt_cuda.a, gpu/test_kernels). Logs go to
# $LOGDIR (default build/gpu-logs). Ends with "N passed, N failed".
cd "$(dirname "$0")/../.." || exit 1
LOGDIR=${LOGDIR:-build/gpu-logs}
mkdir -p "$LOGDIR"
pass=0
fail=0
tally() { # name log
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$2" | tail -n 1)
    if [ -z "$line" ]; then echo "NOT OK  $1: no summary; see $2"; tail -n 30 "$2"; fail=$((fail + 1)); return; fi
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
    pass=$((pass + p)); fail=$((fail + f))
    grep -E '^NOT OK' "$2"
    printf '%-34s %s\n' "$1" "$line"
}
ok() { pass=$((pass + 1)); echo "ok      $*"; }
bad() { fail=$((fail + 1)); echo "NOT OK  $*"; }

build/gpu/test_kernels > "$LOGDIR/kernels.log" 2>&1; tally "kernels vs cpu reference" "$LOGDIR/kernels.log"

# cuda vs cpu trainer, 20 steps, same seed and data
for spec in models/tiny.yaml tests/gpu/small-llama.yaml; do
    n=$(basename "$spec" .yaml)
    build/hzc build "$spec" -o "build/gpu/$n-cuda" --backend cuda > "$LOGDIR/$n-build.log" 2>&1 || { bad "$n: cuda build"; cat "$LOGDIR/$n-build.log"; continue; }
    build/hzc build "$spec" -o "build/gpu/$n-cpu" --backend cpu >> "$LOGDIR/$n-build.log" 2>&1 || { bad "$n: cpu build"; continue; }
    for b in cuda cpu; do
        "build/gpu/$n-$b/train" --data data/tiny_train.bin --steps 20 --seed 3 > "$LOGDIR/$n-$b.log" 2>&1 ||
            { bad "$n: $b trainer failed: $(tail -n 5 "$LOGDIR/$n-$b.log")"; }
    done
    for b in cuda cpu; do
        grep '^step  *[0-9]*/' "$LOGDIR/$n-$b.log" | sed 's/.*| loss \([0-9.]*\) .*/\1/' > "$LOGDIR/$n-$b.loss"
    done
    worst=$(paste -d' ' "$LOGDIR/$n-cuda.loss" "$LOGDIR/$n-cpu.loss" |
        awk '{ d = ($1 - $2) / $2; if (d < 0) d = -d; if (d > w) w = d } END { printf "%.4f", w + 0 }')
    steps=$(grep -c '^step  *[0-9]*/' "$LOGDIR/$n-cuda.log")
    awk -v w="$worst" -v s="$steps" 'BEGIN { exit !(s == 20 && w <= 0.02) }' &&
        ok "$n: 20 steps cuda vs cpu: max relative loss difference $worst (tol 0.02)" ||
        bad "$n: cuda vs cpu: $steps steps, max relative loss difference $worst (tol 0.02)"
done

for b in cuda cpu; do
    python3 tests/gpu/torch_parity.py --backend $b --out "build/gpu/parity-$b" > "$LOGDIR/parity-$b.log" 2>&1
    tally "vs PyTorch ($b backend)" "$LOGDIR/parity-$b.log"
done
python3 tests/gpu/hf_roundtrip.py --backend cuda --out build/gpu/roundtrip > "$LOGDIR/roundtrip.log" 2>&1
tally "HF import/export round trip (cuda)" "$LOGDIR/roundtrip.log"

if command -v compute-sanitizer > /dev/null 2>&1 || [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
    cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    $cs --tool memcheck --error-exitcode 9 build/gpu/tiny-cuda/train --data data/tiny_train.bin --steps 2 \
        > "$LOGDIR/sanitizer.log" 2>&1
    rc=$?
    grep -q 'ERROR SUMMARY: 0 errors' "$LOGDIR/sanitizer.log" && [ $rc = 0 ] &&
        ok "compute-sanitizer memcheck on the tiny trainer: 0 errors" ||
        bad "compute-sanitizer: exit $rc, $(grep 'ERROR SUMMARY' "$LOGDIR/sanitizer.log")"
else
    echo "skip    compute-sanitizer not found"
fi
echo "$pass passed, $fail failed"
[ $fail = 0 ]
