#!/bin/sh
# tests/gpu/gpus.sh - several GPUs of one host on the cuda backend (docs/plan.md "Several
# GPUs of one host"; run by tests/gpu/run.sh where CUDA shows two or more GPUs): the small
# Llama's trainer built for 2 GPUs (and 4 where there are 4) trains as one GPU does on the
# same tokens: step 1's loss and norm as printed the same, later losses within 1e-4 relative
# and every master within Adam's travel bound of one GPU's (the sums of the micro-batches'
# gradients differ in order only); the same for resident, held and host-boundary plans; with
# --deterministic two runs are bit-identical and 3 steps + --resume + 3 steps equal 6; a
# 2-GPU checkpoint resumes on 1 GPU and a 1-GPU one on 2; one host store, planned = measured
# whatever N; every GPU's arena reported; two processes of one GPU each as 2 hosts over
# loopback against one process of 2 GPUs. Ends with "N passed, N failed".
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
d=${LOGDIR:-build/gpu-logs}/gpus
rm -rf "$d" && mkdir -p "$d"
export NCCL_NVLS_ENABLE=0
have=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU ')
if [ "$have" -lt 2 ]; then
    echo "skip    several GPUs: CUDA shows $have GPU here (the multi-GPU device kinds run this)"
    echo "$pass passed, $fail failed"
    exit 0
fi

# 4 micro-batches of 1024 tokens: 4 on one GPU, 2 on each of 2, 1 on each of 4
STEP=shape.tokens_per_step=4096
build() { # NAME GPUS [OVERRIDES...]
    n=$1 g=$2
    shift 2
    build/hzc build tests/gpu/small-llama.yaml -o "$d/$n" --backend cuda --gpus "$g" $STEP "$@" \
        > "$d/$n.build" 2>&1 || bad "$n: build: $(tail -n 3 "$d/$n.build")"
}
run() { # NAME TRAINER ARGS...: masters in NAME.raw, step lines (loss | norm) in NAME.loss
    n=$1 t=$2
    shift 2
    "$d/$t/train" --data data/tiny_train.bin --seed 3 --save-raw "$d/$n.raw" "$@" > "$d/$n.log" 2>&1 ||
        bad "$n: trainer failed: $(tail -n 5 "$d/$n.log")"
    step_lines "$d/$n.log" > "$d/$n.loss"
}
same() { same_run "$d/$1" "$d/$2"; }
# close A B [FROM]: B's step losses from step FROM (default 2) within 1e-4 relative of A's,
# and every master within Adam's travel bound (2.2 x the lrs' sum: each step moves an element
# by at most about its lr, whatever the gradient; a near-zero gradient's sign is the sum
# order's) of A's, with the rms difference beside it
close() {
    python3 - "$d/$1" "$d/$2" "${3:-2}" <<'PY'
import re, sys, numpy as np
a, b, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
def steps(p):
    return {int(m.group(1)): (float(m.group(2)), float(m.group(3))) for m in re.finditer(
        r"^step +(\d+)/\d+ \| loss ([0-9.]+) \| norm ([0-9.]+) \| lr ([0-9.e+-]+) \|", open(p + ".log").read(), re.M)}
def lrs(p):
    return [float(m.group(1)) for m in re.finditer(r"^step +\d+/\d+ \|.*?\| lr ([0-9.e+-]+) \|", open(p + ".log").read(), re.M)]
sa, sb = steps(a), steps(b)
keys = sorted(k for k in sb if k >= first)
ma, mb = np.fromfile(a + ".raw", np.float32).astype(np.float64), np.fromfile(b + ".raw", np.float32)
ok = bool(keys) and all(k in sa for k in keys) and ma.size == mb.size and ma.size > 0
loss = max(abs(sa[k][0] - sb[k][0]) / sa[k][0] for k in keys) if ok else float("inf")
travel = 2.2 * sum(lrs(a))
diff = np.abs(ma - mb) if ok else np.array([np.inf])
rms = float(np.sqrt(np.mean(diff ** 2)) / np.sqrt(np.mean(ma ** 2))) if ok else float("inf")
ok = ok and loss <= 1e-4 and diff.max() <= travel
print("steps %s-%s: losses within %.2e relative (tol 1e-4); masters max|diff| %.2e against Adam's "
      "travel bound %.2e, rms diff %.2e of rms|w|" % (keys[0] if keys else "?", keys[-1] if keys else "?",
      loss, diff.max(), travel, rms))
sys.exit(0 if ok else 1)
PY
}

# ---- N GPUs against one, --deterministic (each run's own sums fixed) ----
ns=2
[ "$have" -ge 4 ] && ns="2 4"
build g1 1
for g in $ns; do build "g$g" "$g"; done
run g1 g1 --steps 6 --deterministic
for g in $ns; do
    run "g$g" "g$g" --steps 6 --deterministic
    grep -q "^cuda backend: $g ranks, one a GPU; NCCL" "$d/g$g.log" &&
        grep -q "^  GPU $((g - 1)) arena  *planned" "$d/g$g.log" &&
        ok "$g GPUs: $(grep -m1 '^cuda backend: [0-9]* ranks' "$d/g$g.log" | cut -c1-110)" ||
        bad "$g GPUs: start-up or report lines: $(grep -m1 -i 'nccl\|error' "$d/g$g.log")"
    [ "$(head -n 1 "$d/g1.loss")" = "$(head -n 1 "$d/g$g.loss")" ] &&
        ok "$g GPUs: step 1 (no update yet) loss and norm as printed the same as one GPU's:$(head -n 1 "$d/g$g.loss")" ||
        bad "$g GPUs: step 1: $(head -n 1 "$d/g1.loss") / $(head -n 1 "$d/g$g.loss")"
    r=$(close g1 "g$g") && ok "$g GPUs against one, 6 steps: $r" || bad "$g GPUs against one: $r"
done
run g2-b g2 --steps 6 --deterministic
same g2 g2-b && ok "2 GPUs --deterministic: two runs' masters, losses and norms bit-identical" ||
    bad "2 GPUs --deterministic: reruns differ: $(diff "$d/g2.loss" "$d/g2-b.loss" | head -n 2)"
# without --deterministic: the float atomics' rounding, as with one GPU
run g2-nd g2 --steps 6
r=$(close g2 g2-nd) && ok "2 GPUs without --deterministic against with it: $r" || bad "2 GPUs, not deterministic: $r"

# ---- every placement: 2 GPUs against one ----
for v in resident held boundaries; do
    case $v in
    resident) ov="plan.resident_blocks=2 plan.resident_ends=true plan.keep_activations=1" ;;
    held) ov="plan.gpu_gradient_blocks=2 plan.gpu_gradient_ends=true" ;;
    boundaries) ov="plan.boundaries=host plan.keep_activations=2" ;;
    esac
    build "$v-1" 1 $ov
    build "$v-2" 2 $ov
    run "$v-1" "$v-1" --steps 4 --deterministic
    run "$v-2" "$v-2" --steps 4 --deterministic
    r=$(close "$v-1" "$v-2") && ok "$v ($ov), 2 GPUs against one: $r" || bad "$v, 2 GPUs against one: $r"
done

# ---- checkpoints: 3 + resume + 3 = 6; the same files whatever N ----
run ck2 g2 --steps 3 --deterministic --out "$d/out2"
run ck1 g1 --steps 3 --deterministic --out "$d/out1"
run g2-resumed g2 --steps 6 --deterministic --resume "$d/out2"
cmp -s "$d/g2-resumed.raw" "$d/g2.raw" && tail -n 3 "$d/g2.loss" | cmp -s - "$d/g2-resumed.loss" &&
    ok "2 GPUs: 3 steps + resume + 3 steps: masters and losses bit-identical to 6 steps" ||
    bad "2 GPUs: resume is not exact"
run g1-from-2 g1 --steps 6 --deterministic --resume "$d/out2"
r=$(close g2 g1-from-2 4) && ok "a 2-GPU checkpoint resumed on one GPU, steps 4-6 against 2 GPUs straight: $r" ||
    bad "2-GPU checkpoint on one GPU: $r"
run g2-from-1 g2 --steps 6 --deterministic --resume "$d/out1"
r=$(close g1 g2-from-1 4) && ok "a 1-GPU checkpoint resumed on 2 GPUs, steps 4-6 against one GPU straight: $r" ||
    bad "1-GPU checkpoint on 2 GPUs: $r"
cmp -s "$d/out1/step-00000003/config.json" "$d/out2/step-00000003/config.json" &&
    ok "the checkpoints' config.json the same from 1 and 2 GPUs" || bad "checkpoint config.json differs by N"

# ---- 2 hosts as 2 processes of this machine, a GPU each, over loopback (docs/plan.md
# "Launching"): against one process of 2 GPUs, and both hosts the same ----
build h2 1 --hosts 2
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for r in 0 1; do
    CUDA_VISIBLE_DEVICES=$r RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port HZ_HOSTS_TIMEOUT=120 \
        "$d/h2/train" --data data/tiny_train.bin --seed 3 --steps 6 --deterministic --save-raw "$d/h2-$r.raw" \
        > "$d/h2-$r.log" 2>&1 &
done
wait
for r in 0 1; do step_lines "$d/h2-$r.log" > "$d/h2-$r.loss"; done
grep -q "GPU 0 with the other hosts' GPUs 0" "$d/h2-0.log" && same h2-0 h2-1 &&
    ok "2 hosts of one GPU each: both end with the same masters and losses ($(grep -m1 '^cuda backend: 1 rank' "$d/h2-0.log" | cut -c1-80))" ||
    bad "2 hosts: $(tail -n 2 "$d/h2-0.log" "$d/h2-1.log")"
r=$(close g2 h2-0) && ok "2 hosts of one GPU against one host of 2 GPUs, 6 steps: $r" || bad "2 hosts against 2 GPUs: $r"

# ---- memory: one host store whatever N ----
s1=$(store_bytes "$d/g1.log") s2=$(store_bytes "$d/g2.log")
[ -n "$s1" ] && [ "${s1% *}" = "${s1#* }" ] && [ "$s1" = "$s2" ] &&
    ok "host store planned = measured, the same on 1 and 2 GPUs ($s1)" ||
    bad "host store: one GPU '$s1', 2 '$s2'"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
