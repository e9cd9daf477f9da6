#!/bin/sh
# bench/optstate_quality.sh [SPEC] - the quality of each optimizer-state precision: the same
# model (default bench/qwen2.5-0.5b-4l.yaml), the same data (data/tiny_train.bin, validation
# data/tiny_val.bin), the same seed, STEPS steps (default 300) with training.optimizer_state
# fp32, bf16 and int8, on BACKEND (default cuda when build/libhzrt_cuda.a exists, else cpu).
# Prints each run's final and mean training loss and final validation loss, and bf16's and
# int8's differences from fp32: final loss, the mean over the steps of |loss - fp32's loss|,
# and the final validation loss relative to fp32's. Logs and the loss curves (one loss a line,
# MODE.loss) go to $OUT (default build/bench/optstate). Needs build/ from make.
cd "$(dirname "$0")/.." || exit 1
spec=${1:-bench/qwen2.5-0.5b-4l.yaml}
OUT=${OUT:-build/bench/optstate}
STEPS=${STEPS:-300}
SEED=${SEED:-7}
if [ -z "$BACKEND" ]; then
    BACKEND=cpu
    [ -f build/libhzrt_cuda.a ] && BACKEND=cuda
fi
mkdir -p "$OUT"
echo "optstate quality: $spec, $STEPS steps, seed $SEED, $BACKEND backend"
for m in fp32 bf16 int8; do
    # the spec with its training.optimizer_state set to m (the section added if it has none)
    sed -e '/^  optimizer_state:/d' -e "s/^training:/training:\n  optimizer_state: $m/" "$spec" > "$OUT/$m.yaml"
    grep -q "optimizer_state: $m" "$OUT/$m.yaml" || printf 'training:\n  optimizer_state: %s\n' "$m" >> "$OUT/$m.yaml"
    build/hzc build "$OUT/$m.yaml" -o "$OUT/$m" --backend "$BACKEND" > "$OUT/$m-build.log" 2>&1 ||
        { echo "optstate quality: build in $m failed:"; tail -n 5 "$OUT/$m-build.log"; exit 1; }
    "$OUT/$m/train" --data data/tiny_train.bin --val-data data/tiny_val.bin --eval-batches 4 \
        --steps "$STEPS" --seed "$SEED" > "$OUT/$m.log" 2>&1 ||
        { echo "optstate quality: training in $m failed:"; tail -n 5 "$OUT/$m.log"; exit 1; }
    grep '^step  *[0-9]*/' "$OUT/$m.log" | sed 's/.*| loss \([0-9.naif-]*\) .*/\1/' > "$OUT/$m.loss"
    sed -n 's/^val loss \([0-9.]*\)$/\1/p' "$OUT/$m.log" > "$OUT/$m.val"
done
printf '%-5s %12s %12s %12s %14s %16s %14s\n' state "final loss" "mean loss" "final val" \
    "final - fp32" "mean |d| / fp32" "val vs fp32"
for m in fp32 bf16 int8; do
    paste -d' ' "$OUT/$m.loss" "$OUT/fp32.loss" | awk -v m="$m" -v val="$(cat "$OUT/$m.val")" \
        -v val32="$(cat "$OUT/fp32.val")" '
        { n++; s += $1; d = $1 - $2; ad += d < 0 ? -d : d; ref += $2; last = $1; last32 = $2 }
        END {
            if (n == 0) { print m ": no step lines"; exit 1 }
            printf "%-5s %12.4f %12.4f %12.4f %+14.4f %15.3f%% %+13.3f%%\n", m, last, s / n, val,
                   last - last32, 100 * ad / ref, 100 * (val - val32) / val32
        }'
done
echo "curves: $OUT/{fp32,bf16,int8}.loss; logs: $OUT/*.log"
