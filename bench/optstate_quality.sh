#!/bin/sh
# bench/optstate_quality.sh [SPEC] - the quality of each optimizer-state precision: the same
# model (default bench/qwen2.5-0.5b-4l.yaml), the same data (data/tiny_train.bin, validation
# data/tiny_val.bin), the same seed, STEPS steps (default 300) with training.optimizer_state
# fp32, bf16 and int8, on BACKEND (default cuda when build/libhzrt_cuda.a exists, else cpu),
# and PyTorch's AdamW as the fp32 reference (bench/optstate_torch.py): transformers trains
# the model from the fp32 run's initial weights (train --steps 0 --save-raw) on the same rows
# with torch.optim.AdamW, fp32 masters and moments, the forward under bf16 autocast
# (TORCH_COMPUTE=fp32: plain fp32), hzc's lr schedule, betas, eps, weight decay, clipping and
# micro-batches. TORCH=0 leaves it out; without python3 importing numpy, torch and
# transformers its row is skipped, and the hzc rows are printed all the same.
# Prints each run's final and mean training loss and final validation loss, each one's
# differences from hzc fp32: final loss, the mean over the steps of |loss - fp32's loss|,
# the final validation loss relative to fp32's, and that relative to torch's; then the loss of
# each run at steps 1, 10, 50, 100, 200 and STEPS side by side. Logs, the loss curves (one
# loss a line, MODE.loss; torch's torch.loss), the final validation losses (MODE.val) and
# every step's losses of all runs (curves.csv) go to $OUT (default build/bench/optstate).
# Needs build/ from make.
cd "$(dirname "$0")/.." || exit 1
spec=${1:-bench/qwen2.5-0.5b-4l.yaml}
OUT=${OUT:-build/bench/optstate}
STEPS=${STEPS:-300}
SEED=${SEED:-7}
TORCH=${TORCH:-1}
TORCH_COMPUTE=${TORCH_COMPUTE:-bf16}
if [ -z "$BACKEND" ]; then
    BACKEND=cpu
    [ -f build/libhzrt_cuda.a ] && BACKEND=cuda
fi
data="--data data/tiny_train.bin --val-data data/tiny_val.bin --eval-batches 4"
mkdir -p "$OUT"
# the torch reference: "yes", or why its row is missing
if [ "$TORCH" = 0 ]; then
    torch="left out (TORCH=0)"
elif python3 -c 'import numpy, torch, transformers' > /dev/null 2>&1; then
    torch=yes
else
    torch="skipped: python3 cannot import numpy, torch and transformers"
fi
echo "optstate quality: $spec, $STEPS steps, seed $SEED, $BACKEND backend; torch reference: $torch"

# loss_of RUN: RUN.loss (each step line's loss) and RUN.val (the final validation loss) of
# $OUT/RUN.log
loss_of() {
    grep '^step  *[0-9]*/' "$OUT/$1.log" | sed 's/.*| loss \([0-9.naif-]*\) .*/\1/' > "$OUT/$1.loss"
    sed -n 's/^val loss \([0-9.]*\)$/\1/p' "$OUT/$1.log" > "$OUT/$1.val"
}

rm -rf "$OUT/fp32-ck"
for m in fp32 bf16 int8; do
    # the spec with its training.optimizer_state set to m (the section added if it has none)
    sed -e '/^  optimizer_state:/d' -e "s/^training:/training:\n  optimizer_state: $m/" "$spec" > "$OUT/$m.yaml"
    grep -q "optimizer_state: $m" "$OUT/$m.yaml" || printf 'training:\n  optimizer_state: %s\n' "$m" >> "$OUT/$m.yaml"
    build/hzc build "$OUT/$m.yaml" -o "$OUT/$m" --backend "$BACKEND" > "$OUT/$m-build.log" 2>&1 ||
        { echo "optstate quality: build in $m failed:"; tail -n 5 "$OUT/$m-build.log"; exit 1; }
    # the fp32 run's final checkpoint gives the torch reference its config.json
    set --
    [ "$m" = fp32 ] && [ "$torch" = yes ] && set -- --out "$OUT/fp32-ck"
    # shellcheck disable=SC2086  # $data is a list of flags
    "$OUT/$m/train" $data --steps "$STEPS" --seed "$SEED" "$@" > "$OUT/$m.log" 2>&1 ||
        { echo "optstate quality: training in $m failed:"; tail -n 5 "$OUT/$m.log"; exit 1; }
    loss_of "$m"
done

runs="fp32 bf16 int8"
torch_rc=0 val_torch=
if [ "$torch" = yes ]; then
    # the initial fp32 masters of the fp32 run (the same trainer and seed, no step), and its
    # validation loss, which the reference compares with its own of the same weights
    # shellcheck disable=SC2086
    "$OUT/fp32/train" $data --steps 0 --seed "$SEED" --save-raw "$OUT/torch-init.raw" \
        > "$OUT/torch-init.log" 2>&1 ||
        { echo "optstate quality: the 0-step run for the torch reference's init failed:"; tail -n 5 "$OUT/torch-init.log"; exit 1; }
    # shellcheck disable=SC2086
    python3 bench/optstate_torch.py --plan "$OUT/fp32/generated/plan.json" \
        --init-raw "$OUT/torch-init.raw" --init-log "$OUT/torch-init.log" \
        --checkpoint "$OUT/fp32-ck/step-$(printf %08d "$STEPS")" --hzc-log "$OUT/fp32.log" \
        $data --steps "$STEPS" --compute "$TORCH_COMPUTE" > "$OUT/torch.log" 2>&1
    torch_rc=$?
    rm -rf "$OUT/torch-init.raw" "$OUT/fp32-ck" # 16 bytes a parameter between them, used up
    if [ "$torch_rc" = 0 ]; then
        loss_of torch
        runs="$runs torch"
        val_torch=$(cat "$OUT/torch.val")
        grep '^reference: ' "$OUT/torch.log"
    else
        echo "optstate quality: the torch reference failed (exit $torch_rc), its row is missing:"
        tail -n 5 "$OUT/torch.log"
    fi
fi

name_of() { [ "$1" = torch ] && echo "torch fp32" || echo "$1"; }
printf '%-10s %12s %12s %12s %14s %16s %12s %14s\n' state "final loss" "mean loss" "final val" \
    "final - fp32" "mean |d| / fp32" "val vs fp32" "val vs torch"
table_rc=0
for m in $runs; do
    paste -d' ' "$OUT/$m.loss" "$OUT/fp32.loss" | awk -v m="$(name_of "$m")" -v val="$(cat "$OUT/$m.val")" \
        -v val32="$(cat "$OUT/fp32.val")" -v valt="$val_torch" '
        { n++; s += $1; d = $1 - $2; ad += d < 0 ? -d : d; ref += $2; last = $1; last32 = $2 }
        END {
            if (n == 0) { print m ": no step lines"; exit 1 }
            vt = valt == "" ? "-" : sprintf("%+.3f%%", 100 * (val - valt) / valt)
            printf "%-10s %12.4f %12.4f %12.4f %+14.4f %15.3f%% %+11.3f%% %14s\n", m, last, s / n, val,
                   last - last32, 100 * ad / ref, 100 * (val - val32) / val32, vt
        }' || table_rc=1
done

# the curves side by side at a few steps, and every step in curves.csv
marks=
for s in 1 10 50 100 200 "$STEPS"; do
    [ "$s" -le "$STEPS" ] && case " $marks " in *" $s "*) ;; *) marks="$marks $s" ;; esac
done
printf '%-10s' "loss at"
for s in $marks; do printf ' %8s' "$s"; done
printf '\n'
header=step
for m in $runs; do
    awk -v m="$(name_of "$m")" -v marks="$marks" '
        { loss[NR] = $1 }
        END {
            printf "%-10s", m
            n = split(marks, at, " ")
            for (i = 1; i <= n; i++) printf " %8s", (at[i] in loss) ? loss[at[i]] : "-"
            printf "\n"
        }' "$OUT/$m.loss"
    header="$header,$(name_of "$m" | tr ' ' _)"
done
set --
for m in $runs; do set -- "$@" "$OUT/$m.loss"; done
{ echo "$header"; awk '{ print NR }' "$OUT/fp32.loss" | paste -d, - "$@"; } > "$OUT/curves.csv"
echo "curves: $OUT/{$(echo "$runs" | tr ' ' ,)}.loss, every step: $OUT/curves.csv; logs: $OUT/*.log"
# a run without step lines, or a failed torch reference, fails the script
[ "$table_rc" = 0 ] && [ "$torch_rc" = 0 ]
