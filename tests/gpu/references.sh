#!/bin/sh
# tests/gpu/references.sh - sections 5 and 6 of tests/gpu/run.sh (which runs it; alone: sh
# tests/gpu/references.sh after make): hzc against PyTorch and transformers
# (tests/gpu/torch_parity.py on both backends, hf_roundtrip.py, and families_parity.py for
# Qwen3 and Gemma 3 through save_pretrained, import, --init and from_pretrained), then
# compute-sanitizer (memcheck) on the tiny cuda trainer with the default attention (cuDNN's
# where it loads), hzc's, and --deterministic, and on the small Qwen3 (head_dim 128: the
# Hopper forward on an sm_90 GPU). Logs go to $LOGDIR (default build/gpu-logs).
# Ends with "N passed, N failed".
cd "$(dirname "$0")/../.." || exit 1
LOGDIR=${LOGDIR:-build/gpu-logs}
mkdir -p "$LOGDIR"
. tests/lib.sh

for b in cuda cpu; do
    python3 tests/gpu/torch_parity.py --backend $b --out "build/gpu/parity-$b" > "$LOGDIR/parity-$b.log" 2>&1
    tally "vs PyTorch ($b backend)" "$LOGDIR/parity-$b.log"
done
python3 tests/gpu/hf_roundtrip.py --backend cuda --out build/gpu/roundtrip > "$LOGDIR/roundtrip.log" 2>&1
tally "HF import/export round trip (cuda)" "$LOGDIR/roundtrip.log"
python3 tests/gpu/families_parity.py --backend cuda --out build/gpu/families > "$LOGDIR/families.log" 2>&1
tally "Qwen3 and Gemma 3 through save_pretrained, import, --init, from_pretrained (cuda)" "$LOGDIR/families.log"

# the tiny cuda trainer of run.sh's section 2, built here when this script runs alone
[ -x build/gpu/tiny-cuda/train ] ||
    build/hzc build models/tiny.yaml -o build/gpu/tiny-cuda --backend cuda > "$LOGDIR/tiny-build.log" 2>&1 ||
    bad "tiny: cuda build: $(tail -n 3 "$LOGDIR/tiny-build.log")"
if command -v compute-sanitizer > /dev/null 2>&1 || [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
    cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    # the default (cuDNN's attention where it loads), hzc's attention kernels with their float
    # atomics, and the deterministic kernels
    for mode in default hzc deterministic; do
        flag=
        [ $mode = hzc ] && flag="--attention hzc"
        [ $mode = deterministic ] && flag=--deterministic
        memcheck "the tiny trainer ($mode kernels)" "$LOGDIR/sanitizer-$mode.log" \
            build/gpu/tiny-cuda/train --data data/tiny_train.bin --steps 2 $flag
    done
    # head_dim 128: on an sm_90 GPU, hzc's Hopper attention forward (TMA, wgmma)
    [ -x build/gpu/small-qwen3-cuda/train ] ||
        build/hzc build tests/gpu/small-qwen3.yaml -o build/gpu/small-qwen3-cuda --backend cuda > "$LOGDIR/small-qwen3-build.log" 2>&1 ||
        bad "small-qwen3: cuda build: $(tail -n 3 "$LOGDIR/small-qwen3-build.log")"
    memcheck "the small Qwen3 trainer (head_dim 128)" "$LOGDIR/sanitizer-qwen3.log" \
        build/gpu/small-qwen3-cuda/train --data data/tiny_train.bin --steps 2
else
    echo "skip    compute-sanitizer not found"
fi
echo "$pass passed, $fail failed"
[ $fail = 0 ]
