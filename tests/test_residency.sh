#!/bin/sh
# tests/test_residency.sh - every placement of a plan (the plan: section) trains the same
# numbers: on the cpu backend the resident units' updates, the kept blocks' saved activations
# gradients held on the GPU and the default streaming give bit-identical masters, losses and
# norms, with and without gradient clipping, tied and untied, a Qwen3 variant (its q/k
# norms' buffers among the kept activations) and a Gemma 3 one (its output norms' buffers,
# windowed blocks; and its blocks keeping their MLP outputs); a checkpoint of one placement
# resumes into another.
# Run from the repository root after make.
hzc=build/hzc
tmp=$(mktemp -d /tmp/hzc-res.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

# spec NAME PLAN-LINES [SED]: models/tiny.yaml with a plan: section (and a sed edit)
spec() {
    sed -e "${3:-s/^//}" models/tiny.yaml > "$tmp/$1.yaml"
    [ -n "$2" ] && printf 'plan:\n%b' "$2" >> "$tmp/$1.yaml"
    $hzc build "$tmp/$1.yaml" -o "$tmp/$1" --backend cpu > "$tmp/$1.build" 2>&1 ||
        bad "$1: build: $(tail -n 3 "$tmp/$1.build")"
}
# run NAME TRAINER-DIR ARGS...: its step lines (loss | norm) in NAME.loss, masters in NAME.raw
run() {
    n=$1 d=$2
    shift 2
    "$tmp/$d/train" --data data/tiny_train.bin --threads 2 --seed 5 --save-raw "$tmp/$n.raw" "$@" \
        > "$tmp/$n.log" 2>&1 || bad "$n: trainer failed: $(tail -n 3 "$tmp/$n.log")"
    step_lines "$tmp/$n.log" > "$tmp/$n.loss"
}
same() { [ -s "$tmp/$1.raw" ] && cmp -s "$tmp/$1.raw" "$tmp/$2.raw" && [ -s "$tmp/$1.loss" ] && cmp -s "$tmp/$1.loss" "$tmp/$2.loss"; }

for v in tied untied qwen3 gemma3; do
    edit=s/^//
    [ $v = untied ] && edit='s/tie_embeddings: true/tie_embeddings: false/'
    [ $v = qwen3 ] && edit='s/family: llama/family: qwen3/'
    [ $v = gemma3 ] && edit='s/family: llama/family: gemma3\n  sliding_window: 48\n  sliding_window_pattern: 2/'
    spec "$v-base" "" "$edit"
    spec "$v-all" '  resident_blocks: 4\n  resident_ends: true\n' "$edit"
    spec "$v-half" '  resident_blocks: 2\n  keep_activations: 3\n' "$edit"
    spec "$v-ends" '  resident_ends: true\n  keep_activations: 4\n  boundaries: host\n' "$edit"
    spec "$v-held" '  gpu_gradient_blocks: 4\n  gpu_gradient_ends: true\n' "$edit"
    spec "$v-mixed" '  resident_blocks: 1\n  gpu_gradient_blocks: 3\n  keep_activations: 2\n  boundaries: host\n' "$edit"
    plans="all half ends held mixed"
    if [ $v = gemma3 ]; then
        # blocks 0-2 keep their MLP outputs, block 3 everything; block 0 is resident
        spec "$v-mlpout" '  resident_blocks: 1\n  keep_activations: 1\n  keep_mlp_outputs: 4\n' "$edit"
        plans="$plans mlpout"
        $hzc plan "$tmp/$v-mlpout.yaml" > "$tmp/$v-mlpout.plan" 2>&1
        grep -q '^  block 0 *gpu *gpu *gpu fp32 *mlp_out kept' "$tmp/$v-mlpout.plan" &&
            grep -q '^  blocks 1-2 *streamed *host *host fp32 *mlp_out kept' "$tmp/$v-mlpout.plan" &&
            grep -q '^  block 3 *streamed *host *host fp32 *kept ' "$tmp/$v-mlpout.plan" &&
            grep -q '^  mlp_out .* 6 *bf16 MLP outputs' "$tmp/$v-mlpout.plan" &&
            ok "$v: hzc plan: blocks 0-2 keep their MLP outputs (6 slots: 2 micro-batches each), block 3 its activations" ||
            bad "$v: MLP outputs in the plan: $(grep -E -A6 '^residency|^  mlp_out' "$tmp/$v-mlpout.plan" | tr '\n' '|')"
    fi
    $hzc plan "$tmp/$v-all.yaml" > "$tmp/$v-all.plan" 2>&1
    $hzc plan "$tmp/$v-half.yaml" > "$tmp/$v-half.plan" 2>&1
    $hzc plan "$tmp/$v-mixed.yaml" > "$tmp/$v-mixed.plan" 2>&1
    grep -q '^  block 0 *gpu *gpu *gpu fp32 *recomputed' "$tmp/$v-mixed.plan" &&
        grep -q '^  block 1 *streamed *host *gpu fp32 *recomputed' "$tmp/$v-mixed.plan" &&
        grep -q '^  block 2 *streamed *host *gpu fp32 *kept' "$tmp/$v-mixed.plan" &&
        grep -q '^  block 3 *streamed *host *host fp32 *kept' "$tmp/$v-mixed.plan" &&
        grep -q '^  head *streamed *host *host fp32 ' "$tmp/$v-mixed.plan" &&
        grep -q ' 2 fetch_g' "$tmp/$v-mixed.plan" &&
        ok "$v: hzc plan: gradients of blocks 1-2 held on the GPU (2 fetch_g), block 3 and the head on the host" ||
        bad "$v: held gradients in the plan: $(grep -A7 '^residency' "$tmp/$v-mixed.plan" | tr '\n' '|')"
    grep -q '^  blocks 0-3 *gpu *gpu *gpu fp32 *recomputed' "$tmp/$v-all.plan" &&
        grep -q '^  blocks 2-3 *streamed *host *host fp32 *kept' "$tmp/$v-half.plan" &&
        grep -q '^  block 1 *gpu *gpu *gpu fp32 *kept' "$tmp/$v-half.plan" &&
        ok "$v: hzc plan prints the residency table (unit x class)" ||
        bad "$v: residency table: $(grep -A6 '^residency' "$tmp/$v-half.plan" | tr '\n' '|')"
    for clip in 1 0; do
        run "$v-base-$clip" "$v-base" --steps 4 --grad-clip $clip
        for p in $plans; do
            run "$v-$p-$clip" "$v-$p" --steps 4 --grad-clip $clip
            same "$v-base-$clip" "$v-$p-$clip" &&
                ok "$v, --grad-clip $clip: plan '$p' trains bit-identically to the default plan: $(tr '\n' ' ' < "$tmp/$v-$p-$clip.loss")" ||
                bad "$v, --grad-clip $clip: plan '$p' differs: $(tr '\n' ' ' < "$tmp/$v-$p-$clip.loss") vs $(tr '\n' ' ' < "$tmp/$v-base-$clip.loss")"
        done
    done
done

# the blocks keeping their MLP outputs skip the down projection's recompute: step 2's kernel
# profile counts 4 blocks x 2 micro-batches of it (the forward's) against the default's 16
for p in base mlpout; do
    "$tmp/gemma3-$p/train" --data data/tiny_train.bin --threads 2 --steps 2 --profile-kernels 2 \
        > "$tmp/gemma3-$p.prof" 2>&1
done
a=$(awk '$2 == "gemm" && $3 == "down" && $4 == "fwd" { print $5 }' "$tmp/gemma3-base.prof")
b=$(awk '$2 == "gemm" && $3 == "down" && $4 == "fwd" { print $5 }' "$tmp/gemma3-mlpout.prof")
[ "$a" = 16 ] && [ "$b" = 8 ] &&
    ok "gemma3: with the MLP outputs kept the down projection runs 8 times a step, not 16" ||
    bad "gemma3: down projection calls with kept MLP outputs: '$b', default plan: '$a'"

# a checkpoint of one placement resumes into another, bit-identically
run ra tied-all --steps 2 --out "$tmp/ck"
run rb tied-half --steps 4 --resume "$tmp/ck"
tail -n 2 "$tmp/tied-base-1.loss" > "$tmp/base-tail.loss"
cmp -s "$tmp/rb.raw" "$tmp/tied-base-1.raw" && cmp -s "$tmp/rb.loss" "$tmp/base-tail.loss" &&
    ok "2 steps all resident, --resume into half resident + kept, 2 more = 4 steps of the default plan" ||
    bad "resume across placements: $(tr '\n' ' ' < "$tmp/rb.loss") vs $(tr '\n' ' ' < "$tmp/base-tail.loss")"
# the validation loss and a checkpoint's weights read the resident state
run va tied-base --steps 3 --val-data data/tiny_val.bin --out "$tmp/vb"
run vr tied-all --steps 3 --val-data data/tiny_val.bin --out "$tmp/vr"
a=$(grep '^val loss' "$tmp/va.log") b=$(grep '^val loss' "$tmp/vr.log")
[ -n "$a" ] && [ "$a" = "$b" ] && cmp -s "$tmp/vb/step-00000003/model.safetensors" "$tmp/vr/step-00000003/model.safetensors" &&
    ok "all resident: the same $a and checkpoint weights as the default plan" ||
    bad "all resident: '$a' vs '$b', or the checkpoint weights differ"

# the host store holds only the streamed units: planned = measured (pages in RAM), smaller
# than the default plan's; --init of a checkpoint and --init-raw reach the resident state
hs() { sed -n 's/^  host store *planned *\([0-9]*\) .*measured *\([0-9]*\) .*/\1 \2/p' "$tmp/$1.log"; }
set -- $(hs va) $(hs vr) $(hs tied-half-1)
[ $# = 6 ] && [ "$1" = "$2" ] && [ "$3" = "$4" ] && [ "$5" = "$6" ] && [ "$3" -lt "$1" ] && [ "$5" -lt "$1" ] &&
    ok "host store planned = measured: default $1, all resident $3, half resident $5 bytes" ||
    bad "host store planned vs measured: $*"
set -- $(hs tied-base-1) $(hs tied-held-1) $(hs untied-mixed-1)
[ $# = 6 ] && [ "$1" = "$2" ] && [ "$3" = "$4" ] && [ "$5" = "$6" ] && [ "$3" -lt "$1" ] &&
    ok "held gradients: host store planned = measured, no gradient pages: $3 bytes against the default's $1 (mixed untied: $5)" ||
    bad "held gradients: host store planned vs measured: $*"
# the held units' last gradients reach their update before a checkpoint, and both ways resume
run ha tied-held --steps 2 --out "$tmp/hk"
run hb tied-base --steps 4 --resume "$tmp/hk"
run hc tied-base --steps 2 --out "$tmp/hl"
run hd tied-mixed --steps 4 --resume "$tmp/hl"
cmp -s "$tmp/hb.raw" "$tmp/tied-base-1.raw" && cmp -s "$tmp/hb.loss" "$tmp/base-tail.loss" &&
    cmp -s "$tmp/hd.raw" "$tmp/tied-base-1.raw" && cmp -s "$tmp/hd.loss" "$tmp/base-tail.loss" &&
    ok "held gradients: 2 steps + checkpoint + --resume (held -> default, default -> mixed) = 4 steps of the default plan" ||
    bad "held gradients and resume: $(tr '\n' ' ' < "$tmp/hb.loss") / $(tr '\n' ' ' < "$tmp/hd.loss") vs $(tr '\n' ' ' < "$tmp/base-tail.loss")"
run ia tied-base --steps 2 --init "$tmp/vb/step-00000003"
run ib tied-all --steps 2 --init "$tmp/vb/step-00000003"
run ic tied-half --steps 2 --init "$tmp/vb/step-00000003"
same ia ib && same ia ic &&
    ok "--init of a checkpoint into all resident and half resident plans trains as the default plan" ||
    bad "--init into resident plans: $(tr '\n' ' ' < "$tmp/ib.loss") vs $(tr '\n' ' ' < "$tmp/ia.loss")"
run ja tied-base --steps 1 --init-raw "$tmp/ia.raw"
run jb tied-all --steps 1 --init-raw "$tmp/ia.raw"
same ja jb && ok "--init-raw into the all-resident plan trains as the default plan" ||
    bad "--init-raw into the all-resident plan: $(tr '\n' ' ' < "$tmp/jb.loss") vs $(tr '\n' ' ' < "$tmp/ja.loss")"

# --trace of the all-resident plan: every op of every step once, updates on the compute stream
"$tmp/tied-all/train" --data data/tiny_train.bin --threads 2 --steps 3 --trace "$tmp/res.json" > "$tmp/res.log" 2>&1
python3 - "$tmp/res.json" "$tmp/tied-all/generated/plan.json" <<'PY' && ok "--trace, all resident: $(cat "$tmp/res.cmp")" || bad "--trace, all resident: $(cat "$tmp/res.cmp")"
import json, sys
ev = json.load(open(sys.argv[1]))["traceEvents"]
ops = json.load(open(sys.argv[2]))["ops"]
xs = [e for e in ev if e.get("ph") == "X"]
upd = [e for e in xs if e["name"].startswith("opt ")]
host = [o for o in ops if o["stream"] == "host"]
msg = "%d events for 3 x %d ops, %d updates, %d host ops, earliest ts %.1f" % (
    len(xs), len(ops), len(upd), len(host), min(e["ts"] for e in xs))
open(sys.argv[1].replace(".json", ".cmp"), "w").write(msg)
ok = len(xs) == 3 * len(ops) and not host and len(upd) == 3 * sum(o["op"] == "opt" for o in ops)
sys.exit(0 if ok and min(e["ts"] for e in xs) >= 0 else 1)
PY

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
