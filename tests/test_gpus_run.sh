#!/bin/sh
# tests/test_gpus_run.sh - a trainer built for several GPUs of one host (hzc build --gpus N,
# plan.gpus) trains with N ranks in one process on the cpu backend (docs/plan.md "Several
# GPUs of one host"): the same step on 1, 2 and 4 ranks gives the same losses, norms and
# masters within fp32's summation order, every placement of the plan too; reruns of one N
# are bit-identical; a checkpoint of N ranks resumes on another N; the host store is one
# (planned = measured, whatever N) and each rank has its own arena mirror; a step that does
# not split over N is refused when planned, and a cuda trainer for N > 1 where CUDA has no
# GPU stops cleanly.
# Each rank's arena mirror is planned = allocated.
# Run from the repository root after make.
hzc=build/hzc
tmp=$(mktemp -d /tmp/hzc-gpus.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

# 4 micro-batches of 1024 tokens a step: 4 on one rank, 2 on each of 2, 1 on each of 4
STEP=shape.tokens_per_step=4096
STEPS=6

# build NAME N [OVERRIDES...]: models/tiny.yaml for N ranks in $tmp/NAME
build() {
    n=$1 g=$2
    shift 2
    $hzc build models/tiny.yaml -o "$tmp/$n" --backend cpu --gpus "$g" "$@" > "$tmp/$n.build" 2>&1 ||
        bad "$n: build: $(tail -n 3 "$tmp/$n.build")"
}
# run NAME TRAINER ARGS...: its log, --metrics in NAME.jsonl, masters in NAME.raw, and its
# step lines (loss | norm) in NAME.loss
run() {
    n=$1 d=$2
    shift 2
    "$tmp/$d/train" --data data/tiny_train.bin --threads 2 --seed 5 --save-raw "$tmp/$n.raw" \
        --metrics "$tmp/$n.jsonl" "$@" > "$tmp/$n.log" 2>&1 ||
        bad "$n: trainer failed: $(tail -n 3 "$tmp/$n.log")"
    step_lines "$tmp/$n.log" > "$tmp/$n.loss"
}
same() { same_run "$tmp/$1" "$tmp/$2"; }

# close A B [FROM]: run B against run A from step FROM (default 1) on: the largest relative
# differences of the step losses and gradient norms and the largest absolute difference of
# the masters, within the tolerances of a different fp32 summation order. With N ranks the
# micro-batches' gradients are summed as (g0 + g1) + (g2 + g3) rather than ((g0 + g1) + g2)
# + g3: a few ulps of each gradient (~1e-7 relative), so the norm moves by about that and
# the loss, a mean over 4096 tokens of a function of the weights, by less; AdamW moves each
# master by at most about lr a step whatever the gradient's size, so its masters may differ
# by a small part of the sum of the lrs where a gradient is near zero (its sign is then the
# rounding's): 1% of it. Tolerances: loss 1e-6, norm 1e-5 relative.
close() {
    python3 - "$tmp/$1" "$tmp/$2" "${3:-1}" <<'EOF'
import json, struct, sys
a, b, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
def steps(p):
    return {r["step"]: r for r in map(json.loads, open(p + ".jsonl")) if r["type"] == "step"}
def raw(p):
    d = open(p + ".raw", "rb").read()
    return struct.unpack("<%df" % (len(d) // 4), d)
sa, sb = steps(a), steps(b)
keys = sorted(k for k in sb if k >= first)
assert keys and all(k in sa for k in keys), (sorted(sa), sorted(sb))
loss = max(abs(sa[k]["loss"] - sb[k]["loss"]) / abs(sa[k]["loss"]) for k in keys)
norm = max(abs(sa[k]["grad_norm"] - sb[k]["grad_norm"]) / abs(sa[k]["grad_norm"]) for k in keys)
lr_sum = sum(r["lr"] for k, r in sa.items() if k <= keys[-1])
ma, mb = raw(a), raw(b)
assert len(ma) == len(mb)
master = max(abs(x - y) for x, y in zip(ma, mb))
ok = loss <= 1e-6 and norm <= 1e-5 and master <= 0.01 * lr_sum
print("%s: steps %d-%d: loss max rel diff %.3g (tol 1e-06), norm %.3g (tol 1e-05), masters max "
      "abs diff %.3g (tol %.3g, 1%% of the lrs' sum)" % ("same" if ok else "DIFFERENT", keys[0],
      keys[-1], loss, norm, master, 0.01 * lr_sum))
sys.exit(0 if ok else 1)
EOF
}

# ---- 1, 2 and 4 ranks: the same training ----
build g1 1 $STEP
build g2 2 $STEP
build g4 4 $STEP
$hzc build models/tiny.yaml -o "$tmp/g2o" --backend cpu $STEP plan.gpus=2 > /dev/null 2>&1 &&
    cmp -s "$tmp/g2/generated/schedule.c" "$tmp/g2o/generated/schedule.c" &&
    ok "plan.gpus=2 builds the trainer --gpus 2 builds (the same schedule.c)" ||
    bad "plan.gpus=2 and --gpus 2 differ"
for g in 1 2 4; do run "g$g" "g$g" --steps $STEPS; done
grep -q '^ranks: 2 ranks of 2 micro-batches each (2048 tokens' "$tmp/g2.log" &&
    grep -q '^ranks: 4 ranks of 1 micro-batches each (1024 tokens' "$tmp/g4.log" &&
    ! grep -q '^ranks:' "$tmp/g1.log" &&
    ok "start-up: $(grep '^ranks:' "$tmp/g2.log" | cut -c1-90)" ||
    bad "start-up lines: $(grep -h '^ranks:' "$tmp/g2.log" "$tmp/g4.log")"
for g in 2 4; do
    r=$(close g1 g$g) && ok "$g ranks against 1, $STEPS steps: $r" || bad "$g ranks against 1: $r"
done
[ "$(head -n 1 "$tmp/g1.loss")" = "$(head -n 1 "$tmp/g2.loss")" ] &&
    [ "$(head -n 1 "$tmp/g1.loss")" = "$(head -n 1 "$tmp/g4.loss")" ] &&
    ok "step 1 (no update yet): loss and norm as printed the same on 1, 2, 4 ranks:$(head -n 1 "$tmp/g2.loss")" ||
    bad "step 1: $(head -n 1 "$tmp/g1.loss") / $(head -n 1 "$tmp/g2.loss") / $(head -n 1 "$tmp/g4.loss")"

# ---- every placement, untied, without clipping, Gemma 3 with its MLP outputs kept: 2 ranks
# against 1 ----
for v in resident held boundaries ends untied noclip gemma gemma-mlpout; do
    case $v in
    resident) ov="plan.resident_blocks=2 plan.keep_activations=1" ;;
    held) ov="plan.gpu_gradient_blocks=2 plan.gpu_gradient_ends=true" ;;
    boundaries) ov="plan.boundaries=host plan.keep_activations=2" ;;
    ends) ov="plan.resident_blocks=4 plan.resident_ends=true" ;;
    untied) ov="architecture.tie_embeddings=false plan.gpu_gradient_blocks=1" ;;
    noclip) ov="training.grad_clip=0" ;;
    gemma) ov="architecture.family=gemma3" ;;
    gemma-mlpout) ov="architecture.family=gemma3 plan.keep_mlp_outputs=3 plan.keep_activations=1" ;;
    esac
    build "$v-1" 1 $STEP $ov
    build "$v-2" 2 $STEP $ov
    run "$v-1" "$v-1" --steps 4
    run "$v-2" "$v-2" --steps 4
    r=$(close "$v-1" "$v-2") && ok "$v ($ov), 2 ranks against 1: $r" || bad "$v, 2 ranks against 1: $r"
done
# the placement does not change the bits with ranks either (as with one: test_residency.sh)
same g2 resident-2 && bad "resident: the masters equal the default's after 6 and 4 steps (a run mixed up)"
run g2-4 g2 --steps 4
same g2-4 resident-2 && same g2-4 held-2 && same g2-4 ends-2 &&
    ok "2 ranks: resident, held and streamed units give bit-identical masters, losses and norms" ||
    bad "2 ranks: placements differ: $(diff "$tmp/g2-4.loss" "$tmp/resident-2.loss" | head -n 2)"
same gemma-2 gemma-mlpout-2 &&
    ok "2 ranks, Gemma 3: blocks keeping their MLP outputs (and one its activations) train bit-identically to the streamed plan" ||
    bad "2 ranks, Gemma 3 MLP outputs kept: $(diff "$tmp/gemma-2.loss" "$tmp/gemma-mlpout-2.loss" | head -n 2)"

# ---- reruns of one N are bit-identical ----
for g in 2 4; do
    run "g$g-det-a" "g$g" --steps 4 --deterministic
    run "g$g-det-b" "g$g" --steps 4 --deterministic
    same "g$g-det-a" "g$g-det-b" && { [ $g = 4 ] || same "g$g-det-a" g2-4; } &&
        ok "$g ranks --deterministic: two runs' masters, losses and norms bit-identical" ||
        bad "$g ranks: reruns differ"
done 2> /dev/null
same g4-det-a g2-det-a && bad "4 ranks' masters bit-identical to 2 ranks' (their sums differ in order)"

# ---- evaluation over the ranks' shares ----
run val-1 g1 --steps 2 --val-fraction 0.05
run val-2 g2 --steps 2 --val-fraction 0.05
python3 -c '
import json, sys
v = [[r["val_loss"] for r in map(json.loads, open(p)) if r["type"] == "eval"][-1] for p in sys.argv[1:]]
d = abs(v[0] - v[1]) / v[0]
print("val loss %.7f on 1 rank, %.7f on 2: rel diff %.3g (tol 1e-06)" % (v[0], v[1], d))
sys.exit(d > 1e-6)' "$tmp/val-1.jsonl" "$tmp/val-2.jsonl" > "$tmp/val.txt" &&
    ok "$(cat "$tmp/val.txt")" || bad "val loss: $(cat "$tmp/val.txt")"

# ---- checkpoints: the same files whatever N; a resume may change N ----
run ck2 g2 --steps 3 --out "$tmp/out2"
run ck1 g1 --steps 3 --out "$tmp/out1"
run g2-resumed g2 --steps $STEPS --resume "$tmp/out2"
cmp -s "$tmp/g2-resumed.raw" "$tmp/g2.raw" && tail -n 3 "$tmp/g2.loss" | cmp -s - "$tmp/g2-resumed.loss" && ok "2 ranks: 3 steps + resume + 3 steps: masters and losses bit-identical to $STEPS steps" ||
    bad "2 ranks: resume is not exact"
run g1-from-2 g1 --steps $STEPS --resume "$tmp/out2"
r=$(close g2 g1-from-2 4) && ok "a 2-rank checkpoint resumed on 1 rank, steps 4-$STEPS against 2 ranks straight: $r" ||
    bad "2-rank checkpoint on 1 rank: $r"
r=$(close g1 g1-from-2 4) && ok "  ... and against 1 rank straight: $r" || bad "2-rank checkpoint on 1 rank against 1 rank: $r"
run g2-from-1 g2 --steps $STEPS --resume "$tmp/out1"
r=$(close g1 g2-from-1 4) && ok "a 1-rank checkpoint resumed on 2 ranks, steps 4-$STEPS against 1 rank straight: $r" ||
    bad "1-rank checkpoint on 2 ranks: $r"
run g4-from-2 g4 --steps $STEPS --resume "$tmp/out2"
r=$(close g2 g4-from-2 4) && ok "a 2-rank checkpoint resumed on 4 ranks, steps 4-$STEPS: $r" || bad "2-rank checkpoint on 4 ranks: $r"
grep -q "resumed from $tmp/out2/step-00000003: 3 steps done" "$tmp/g1-from-2.log" &&
    cmp -s "$tmp/out1/step-00000003/config.json" "$tmp/out2/step-00000003/config.json" &&
    ok "the 2-rank checkpoint's step-00000003 resumed by 1 rank; config.json the same as 1 rank's" ||
    bad "checkpoint files: $(grep resumed "$tmp/g1-from-2.log")"

# ---- memory: one host store, an arena mirror a rank ----
s1=$(store_bytes "$tmp/g1.log") s2=$(store_bytes "$tmp/g2.log") s4=$(store_bytes "$tmp/g4.log")
[ -n "$s1" ] && [ "${s1% *}" = "${s1#* }" ] && [ "$s1" = "$s2" ] && [ "$s1" = "$s4" ] &&
    ok "host store planned = measured, the same on 1, 2 and 4 ranks ($s1)" ||
    bad "host store: 1 rank '$s1', 2 '$s2', 4 '$s4'"
# each rank's fp32 mirror of the arena: planned (hz_cpu_mirror_bytes) = allocated, in every
# placement; N of them
mirror() { # LOG: "RANKS EACH PLANNED TOTAL" from the summary's line
    sed -n -e 's/^cpu backend: arena mirrored in fp32 host memory: \([0-9]*\) bytes (planned \([0-9]*\);.*/1 \1 \2 \1/p' \
        -e 's/^cpu backend: arena mirrored in fp32 host memory: \([0-9]*\) bytes, \([0-9]*\) ranks of \([0-9]*\) (planned \([0-9]*\) each;.*/\2 \3 \4 \1/p' "$1"
}
bad_mirror=
for l in "$tmp"/*.log; do
    set -- $(mirror "$l")
    [ $# = 4 ] && [ "$2" = "$3" ] && [ "$4" = $(($1 * $2)) ] || bad_mirror="$bad_mirror $(basename "$l"):'$*'"
done
[ -z "$bad_mirror" ] && ok "every run's arena mirrors: planned = allocated, N x one rank's ($(ls "$tmp"/*.log | wc -l) runs; 4 ranks: $(mirror "$tmp/g4.log"))" ||
    bad "arena mirrors:$bad_mirror"
# 2 ranks of a 4096-token step: each the mirror of one rank of a 2048-token step
build h1 1 shape.tokens_per_step=2048
run h1 h1 --steps 1
set -- $(mirror "$tmp/h1.log")
one=$2
set -- $(mirror "$tmp/g2.log")
[ -n "$one" ] && [ "$1 $2" = "2 $one" ] &&
    ok "2 ranks' mirrors: each one rank's of half the step ($one bytes)" || bad "mirrors: 2 ranks '$*', one rank of 2048 tokens: '$one'"
python3 -c '
import json, sys
m = [r for r in map(json.loads, open(sys.argv[1])) if r["type"] == "summary"][0]["memory"]
a = [x for x in m if x["what"].startswith("arena")][0]
assert a["planned"] == a["measured"] == 4 * int(sys.argv[2]), (a, sys.argv[2])
print(a)' "$tmp/g4.jsonl" "$(mirror "$tmp/g4.log" | cut -d' ' -f3)" > "$tmp/mem.txt" 2>&1 &&
    ok "--metrics: 4 ranks' arena line planned = measured = 4 x one rank's ($(cat "$tmp/mem.txt"))" ||
    bad "--metrics arena line: $(cat "$tmp/mem.txt")"

# ---- refusals ----
expect_fail "build --gpus 3 on 4 micro-batches" "^tiny: error: --gpus 3 splits the step's 4 micro-batches over 3 GPUs, which needs a multiple of 3" \
    $hzc build models/tiny.yaml -o "$tmp/g3" --backend cpu $STEP --gpus 3
expect_fail "build plan.gpus=8 on 4 micro-batches" "^tiny: error: plan.gpus: 8 splits the step's 4 micro-batches over 8 GPUs" \
    $hzc build models/tiny.yaml -o "$tmp/g8" --backend cpu $STEP plan.gpus=8
[ ! -e "$tmp/g3/train" ] && [ ! -e "$tmp/g8/train" ] && ok "no trainer built for them" || bad "a trainer was built"
# a cuda trainer for 2 GPUs stops cleanly where CUDA has no GPU (libcuda.so.1: the toolkit's
# stub): one message naming the driver, no crash in its clean-up; tests/gpu/run.sh runs it on a
# GPU (one rank) and on several where lent
if [ -f build/libhzrt_cuda.a ] && [ -f "${CUDA_DIR:-/usr/local/cuda}/lib64/stubs/libcuda.so" ]; then
    mkdir -p "$tmp/stub"
    ln -s "${CUDA_DIR:-/usr/local/cuda}/lib64/stubs/libcuda.so" "$tmp/stub/libcuda.so.1"
    if $hzc build models/tiny.yaml -o "$tmp/cu2" --backend cuda $STEP --gpus 2 > "$tmp/cu2.build" 2>&1; then
        expect_fail "cuda trainer for 2 GPUs without a GPU" "^HINT: the cuda trainer needs an NVIDIA GPU and its driver" \
            env LD_LIBRARY_PATH="$tmp/stub" "$tmp/cu2/train" --data data/tiny_train.bin --steps 1
        if grep -q "CUDA error\|Sanitizer\|Segmentation" "$tmp/err"; then
            bad "its clean-up failed: $(grep -m1 "CUDA error\|Sanitizer\|Segmentation" "$tmp/err")"
        else
            ok "its clean-up unpins only what it pinned"
        fi
    else
        bad "cuda build --gpus 2: $(tail -n 3 "$tmp/cu2.build")"
    fi
else
    echo "skip    the cuda trainer's stop without a GPU: no cuda runtime built (./configure --with-cuda=DIR)"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
