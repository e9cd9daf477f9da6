#!/bin/sh
# tests/gpu/optstate.sh - the compact optimizer states on the GPU (run by tests/gpu/run.sh
# after make): for bf16 and int8 state, the small Llama's cuda trainer (--deterministic)
# trains bit-identically with its units streamed (host update, hz_qadamw_pool) and resident
# (hzk_adamw_bf16state / hzk_adamw_int8state), resumes bit-exactly, follows the cpu trainer's
# losses within the bf16 tolerance of tests/gpu/run.sh, and an all-resident int8 plan runs
# clean under compute-sanitizer. Ends with "N passed, N failed".
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
d=build/gpu/optstate
rm -rf "$d" && mkdir -p "$d"

# build NAME MODE BACKEND PLAN-LINES: tests/gpu/small-llama.yaml in state MODE
build() {
    sed -e "s/^training:/training:\n  optimizer_state: $2/" tests/gpu/small-llama.yaml > "$d/$1.yaml"
    grep -q "optimizer_state: $2" "$d/$1.yaml" || printf 'training:\n  optimizer_state: %s\n' "$2" >> "$d/$1.yaml"
    [ -n "$4" ] && printf 'plan:\n%b' "$4" >> "$d/$1.yaml"
    build/hzc build "$d/$1.yaml" -o "$d/$1" --backend "$3" > "$d/$1-build.log" 2>&1 ||
        bad "$1: build: $(tail -n 3 "$d/$1-build.log")"
}
run() { # NAME TRAINER-DIR ARGS...: step lines (loss | norm) in NAME.loss
    n=$1 t=$2
    shift 2
    "$d/$t/train" --data data/tiny_train.bin --seed 3 "$@" > "$d/$n.log" 2>&1 ||
        bad "$n: trainer failed: $(tail -n 3 "$d/$n.log")"
    step_lines "$d/$n.log" > "$d/$n.loss"
}
same() { [ -s "$1" ] && cmp -s "$1" "$2"; }
line() { tr '\n' ' ' < "$d/$1.loss"; }

for m in bf16 int8; do
    build "$m" $m cuda ""
    build "$m-all" $m cuda '  resident_blocks: 4\n  resident_ends: true\n'
    build "$m-half" $m cuda '  resident_blocks: 2\n  keep_activations: 3\n'
    build "$m-cpu" $m cpu ""
    run "$m-s" "$m" --steps 6 --deterministic --save-raw "$d/$m-s.raw"
    grep -q "^optimizer state $m: 0 non-finite gradients" "$d/$m-s.log" &&
        ok "$m: the cuda trainer counts non-finite gradients (none)" ||
        bad "$m: no count line: $(grep -i 'optimizer state' "$d/$m-s.log" | tr '\n' '|')"
    for p in all half; do
        run "$m-$p" "$m-$p" --steps 6 --deterministic --save-raw "$d/$m-$p.raw"
        same "$d/$m-s.raw" "$d/$m-$p.raw" && same "$d/$m-s.loss" "$d/$m-$p.loss" &&
            ok "$m, plan '$p' (GPU update of the resident units): bit-identical to the streamed plan over 6 steps: $(line "$m-$p")" ||
            bad "$m, plan '$p': $(line "$m-$p") vs $(line "$m-s")"
    done
    run "$m-c" "$m-all" --steps 3 --deterministic --out "$d/$m-ck"
    run "$m-r" "$m" --steps 6 --deterministic --resume "$d/$m-ck" --save-raw "$d/$m-r.raw"
    tail -n 3 "$d/$m-s.loss" > "$d/$m-s3.loss"
    same "$d/$m-s.raw" "$d/$m-r.raw" && same "$d/$m-s3.loss" "$d/$m-r.loss" &&
        ok "$m: 3 steps all resident + --resume into the streamed plan + 3 = 6 streamed steps, bit for bit" ||
        bad "$m: resume: $(line "$m-r") vs $(tr '\n' ' ' < "$d/$m-s3.loss")"
    # cuda against the cpu reference trainer, 20 steps
    for b in "$m" "$m-cpu"; do
        "$d/$b/train" --data data/tiny_train.bin --steps 20 --seed 3 > "$d/$b-20.log" 2>&1 ||
            bad "$b: 20 steps failed: $(tail -n 3 "$d/$b-20.log")"
        grep '^step  *[0-9]*/' "$d/$b-20.log" | sed 's/.*| loss \([0-9.]*\) .*/\1/' > "$d/$b-20.loss"
    done
    worst=$(paste -d' ' "$d/$m-20.loss" "$d/$m-cpu-20.loss" |
        awk '{ r = ($1 - $2) / $2; if (r < 0) r = -r; if (r > w) w = r } END { printf "%.4f", w + 0 }')
    steps=$(wc -l < "$d/$m-20.loss")
    awk -v w="$worst" -v s="$steps" 'BEGIN { exit !(s == 20 && w <= 0.02) }' &&
        ok "$m: 20 steps cuda vs cpu: max relative loss difference $worst (tol 0.02)" ||
        bad "$m: cuda vs cpu: $steps steps, max relative loss difference $worst (tol 0.02)"
done

if command -v compute-sanitizer > /dev/null 2>&1 || [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
    cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    for m in bf16 int8; do
        memcheck "all-resident $m plan" "$d/sanitizer-$m.log" "$d/$m-all/train" \
            --data data/tiny_train.bin --steps 2
    done
else
    echo "skip    compute-sanitizer not found"
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
