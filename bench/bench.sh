#!/bin/sh
# bench/bench.sh [MODEL...] - throughput of hzc's cuda trainer on published shapes, on the
# device machine, beside the card's ceilings and PyTorch's own throughput in the same run.
#   MODEL: a name under models/ (default: llama3-3b llama3-8b) or a spec's path (*.yaml, its
#   own plan: section, e.g. bench/specs/llama3-8b-held.yaml), optionally with @SIZE to plan
#   for that much GPU memory instead of the whole card (llama3-3b@10G keeps the boundary
#   activations on the host), +det for train --deterministic, +int8 for int8 optimizer
#   state (training.optimizer_state=int8: one policy for models of different sizes), +mlpout
#   for plan.keep_mlp_outputs of every block (post norms: no down projection recompute), +gpusN
#   for N GPUs of this host, each with the spec's step (tokens_per_step x N) and +tuned for the plan
#   `hzc tune` chooses for this GPU and host (its table in $OUT/TAG-tune.log); STEPS (default 4) steps
#   each, the first excluded from the mean. DATA=FILE trains on those tokens (a .bin shard or
#   .npy, e.g. text through build/text2tokens) instead of random ones, and FLAGS adds trainer
#   flags (FLAGS="--lr 1e-4 --warmup 5"). PROBE=1 first probes each model on this machine
#   (`train --probe` of its default plan's trainer, with int8 state where the default does
#   not fit the host, into $OUT/MODEL-ceilings.json) and plans, tunes and predicts with that
#   file; a +tuned trainer is then probed itself ($OUT/TAG-ceilings.json: the process's own
#   host bytes are the probed trainer's) and built again with its own file. CEILINGS=FILE
#   names one file for all instead. HOST_MEM=SIZE is the host memory +tuned may use
#   (default 85% of the host's). Needs build/ (hzc, libhzrt_cuda.a) and,
#   for the peers, a copy of the peer scripts in .peers/ (ceilings.py, peer_torch.py, hfmodel.py).
# Writes logs and a summary to $OUT (default build/bench).
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-build/bench}
STEPS=${STEPS:-4}
PEERS=${PEERS:-1}
mkdir -p "$OUT"
models=${*:-llama3-3b llama3-8b}
gpu_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -n 1)
host_b=$(awk '/MemTotal/ { print $2 * 1024 }' /proc/meminfo)
echo "bench: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1), ${gpu_mib} MiB GPU, host $((host_b / 1073741824)) GiB, $(nproc) cores"

if [ "$PEERS" = 1 ] && [ -f .peers/ceilings.py ]; then
    OUT=$OUT python3 -u .peers/ceilings.py > "$OUT/ceilings.log" 2>&1
    tail -n 20 "$OUT/ceilings.log"
fi

for run in $models; do
    m=${run%%[@+]*}
    gpu="${gpu_mib}MiB"
    case $run in *@*) gpu=${run#*@}; gpu=${gpu%%+*} ;; esac
    flags=
    case $run in *+det*) flags=--deterministic ;; esac
    over=
    case $run in *+int8*) over=training.optimizer_state=int8 ;; esac
    case $run in *+mlpout*)
        over="$over plan.keep_mlp_outputs=$(sed -n 's/^ *num_layers: *\([0-9]*\).*/\1/p' models/$m.yaml)" ;;
    esac
    case $run in *+gpus[0-9]*)
        ng=${run##*+gpus}
        ng=${ng%%+*}
        step=$(sed -n 's/^ *tokens_per_step: *\([0-9]*\).*/\1/p' models/$m.yaml)
        over="$over --gpus $ng shape.tokens_per_step=$((step * ng))" ;;
    esac
    tag=$(echo "$run" | tr '@+' '--')
    spec=models/$m.yaml
    case $m in *.yaml) spec=$m; tag=$(basename "$m" .yaml)$(echo "${run#"$m"}" | tr '@+' '--') ;; esac
    d=build/bench/$tag
    ceil=$CEILINGS
    if [ "$PROBE" = 1 ] && [ -z "$CEILINGS" ]; then
        ceil=$OUT/$(basename "$m" .yaml)-ceilings.json
        if [ ! -f "$ceil" ]; then
            pd=build/bench/$(basename "$m" .yaml)-probe
            plog=$OUT/$(basename "$m" .yaml)-probe.log
            # the default plan as it is where it fits (the process the runs will be), else
            # with int8 state; probed again when the first probe compiled the kernels, so
            # that its process bytes are those of a start from the cubin cache
            { { build/hzc build "$spec" -o "$pd" --backend cuda --gpu-mem "${gpu_mib}MiB" --host-mem "$host_b" ||
                    build/hzc build "$spec" -o "$pd" --backend cuda --gpu-mem "${gpu_mib}MiB" \
                        --host-mem "$host_b" training.optimizer_state=int8; } &&
                "$pd/train" --probe -o "$ceil"; } > "$plog" 2>&1 &&
                { ! grep -q '^probe: note: this run compiled its kernels' "$plog" ||
                    "$pd/train" --probe -o "$ceil" >> "$plog" 2>&1; } ||
                { echo "bench: $run: probe failed"; tail -n 20 "$plog"; ceil=; }
            [ -n "$ceil" ] && grep -E '^probe' "$plog" | tail -n 12
        fi
    fi
    case $run in *+tuned*)
        mkdir -p build/bench
        src=$spec spec=build/bench/$tag.yaml
        # headroom: the CUDA context and cuBLASLt's workspace outside the plan; the OS's share of RAM
        tgpu=$gpu
        [ "$gpu" = "${gpu_mib}MiB" ] && tgpu=$((gpu_mib - 2560))MiB
        build/hzc tune "$src" --gpu-mem "$tgpu" --host-mem "${HOST_MEM:-$((host_b / 100 * 85))}" ${ceil:+--ceilings "$ceil"} \
            -o "$spec" > "$OUT/$tag-tune.log" 2>&1 || { echo "bench: $run: tune failed"; tail -n 20 "$OUT/$tag-tune.log"; continue; }
        cat "$OUT/$tag-tune.log" ;;
    esac
    # shellcheck disable=SC2086 # OVER: the overrides and flags above, a list
    build/hzc build "$spec" -o "$d" --backend cuda --gpu-mem "$gpu" --host-mem "$host_b" \
        ${ceil:+--ceilings "$ceil"} $over > "$OUT/$tag-build.log" 2>&1 || { echo "bench: $run: build failed"; tail -n 20 "$OUT/$tag-build.log"; continue; }
    case $run in *+tuned*)
        # the tuned trainer probed itself (again when the first probe compiled the kernels),
        # and built again with its own file: its process bytes, its shapes' rates
        if [ "$PROBE" = 1 ] && [ -z "$CEILINGS" ]; then
            tceil=$OUT/$tag-ceilings.json
            { "$d/train" --probe -o "$tceil" > "$OUT/$tag-probe.log" 2>&1 &&
                { ! grep -q '^probe: note: this run compiled its kernels' "$OUT/$tag-probe.log" ||
                    "$d/train" --probe -o "$tceil" >> "$OUT/$tag-probe.log" 2>&1; } &&
                build/hzc build "$spec" -o "$d" --backend cuda --gpu-mem "$gpu" --host-mem "$host_b" \
                    --ceilings "$tceil" $over > "$OUT/$tag-build.log" 2>&1 &&
                grep -E '^probe: the process holds' "$OUT/$tag-probe.log" | tail -n 1; } ||
                { echo "bench: $run: its own probe failed"; tail -n 20 "$OUT/$tag-probe.log" "$OUT/$tag-build.log"; continue; }
        fi ;;
    esac
    data=${DATA:-$d/tokens.npy}
    [ -n "$DATA" ] || python3 - "$d" "$STEPS" <<'PY'
import json, sys, numpy as np
d, steps = sys.argv[1], int(sys.argv[2])
p = json.load(open(d + "/generated/plan.json"))
n = p["dims"]["step_tokens"] * (steps + 1) + 1
np.save(d + "/tokens.npy", np.random.default_rng(0).integers(0, p["dims"]["V"], n, dtype=np.uint32))
PY
    # shellcheck disable=SC2086 # FLAGS is a list of flags
    "$d/train" --data "$data" --steps "$STEPS" --log-every 1 $flags $FLAGS > "$OUT/$tag.log" 2>&1
    echo "bench: $run (exit $?)"
    grep -E '^(planned|step |summary|  |cuda|gpu|pcie|compute)' "$OUT/$tag.log" | tail -n 25
done

# PyTorch with the whole model on the GPU, with and without per-layer checkpointing (its best
# setting is the faster that fits), at hzc's step of 32k tokens (4 x 2048 x 4)
if [ "$PEERS" = 1 ] && [ -f .peers/peer_torch.py ]; then
    for m in $(for r in $models; do echo "${r%%[@+]*}"; done | sort -u); do
        case $m in
            llama3-1b|llama3-3b)
                for ck in ckpt no-ckpt; do
                    f=
                    [ $ck = no-ckpt ] && f=--no-ckpt
                    python3 .peers/peer_torch.py --mode gpu --model $m --seq 2048 --micro 4 --accum 4 --steps 4 $f \
                        > "$OUT/peer-$m-gpu-$ck.log" 2>&1
                    echo "peer $m gpu $ck: $(grep RESULT "$OUT/peer-$m-gpu-$ck.log" || tail -n 2 "$OUT/peer-$m-gpu-$ck.log")"
                done ;;
        esac
    done
fi
