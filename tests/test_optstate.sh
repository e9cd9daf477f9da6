#!/bin/sh
# tests/test_optstate.sh - the trainer in each optimizer-state precision (training.
# optimizer_state) on the cpu backend: resident units' updates equal the host optimizer's bit
# for bit; N steps straight equal k steps, a checkpoint, a resume and N - k steps; a resume
# may switch precision (fp32 -> int8 -> fp32, bf16 -> int8) and says so; the planned host
# store is the measured one; a checkpoint whose state mode or block size is unknown is
# refused. Run from the repository root after make.
hzc=build/hzc
tmp=$(mktemp -d /tmp/hzc-optstate.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

# poke FILE OFFSET OCTAL-BYTES: overwrite bytes in place
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2> /dev/null; }

# spec NAME MODE PLAN-LINES: models/tiny.yaml cut to short steps, in state MODE
spec() {
    sed -e 's/seq_len: 128/seq_len: 64/' -e 's/tokens_per_step: 2048 /tokens_per_step: 256 /' \
        -e 's/tokens_per_micro_batch: 1024 /tokens_per_micro_batch: 128 /' \
        -e "s/^training:/training:\n  optimizer_state: $2/" models/tiny.yaml > "$tmp/$1.yaml"
    [ -n "$3" ] && printf 'plan:\n%b' "$3" >> "$tmp/$1.yaml"
    $hzc build "$tmp/$1.yaml" -o "$tmp/$1" --backend cpu > "$tmp/$1.build" 2>&1 ||
        bad "$1: build: $(tail -n 3 "$tmp/$1.build")"
}
# run NAME TRAINER ARGS...: its step lines (loss | norm) in NAME.loss, masters in NAME.raw
run() {
    n=$1 d=$2
    shift 2
    "$tmp/$d/train" --data data/tiny_train.bin --threads 2 --seed 5 --save-raw "$tmp/$n.raw" "$@" \
        > "$tmp/$n.log" 2>&1 || bad "$n: trainer failed: $(tail -n 3 "$tmp/$n.log")"
    step_lines "$tmp/$n.log" > "$tmp/$n.loss"
}
same() { [ -s "$tmp/$1.raw" ] && cmp -s "$tmp/$1.raw" "$tmp/$2.raw" && [ -s "$tmp/$1.loss" ] && cmp -s "$tmp/$1.loss" "$tmp/$2.loss"; }
hs() { sed -n 's/^  host store *planned *\([0-9]*\) .*measured *\([0-9]*\) .*/\1 \2/p' "$tmp/$1.log"; }
line() { tr '\n' ' ' < "$tmp/$1.loss"; }

for m in fp32 bf16 int8; do
    spec "$m" "$m" ""
    spec "$m-res" "$m" '  resident_blocks: 4\n  resident_ends: true\n'
    spec "$m-half" "$m" '  resident_blocks: 2\n'
done

run fp32-base fp32 --steps 4
for m in bf16 int8; do
    run "$m-base" "$m" --steps 4
    grep -q "^optimizer state: $m" "$tmp/$m-base.log" &&
        grep -q "^optimizer state $m: 0 non-finite gradients" "$tmp/$m-base.log" &&
        ok "$m: the trainer names its state and counts non-finite gradients (none)" ||
        bad "$m: state lines missing: $(grep -i 'optimizer state' "$tmp/$m-base.log" | tr '\n' '|')"
    for p in res half; do
        run "$m-$p" "$m-$p" --steps 4
        same "$m-base" "$m-$p" &&
            ok "$m: plan '$p' (resident units updated by the backend) trains bit-identically to the host optimizer: $(line "$m-$p")" ||
            bad "$m: plan '$p' differs: $(line "$m-$p") vs $(line "$m-base")"
    done
    set -- $(hs "$m-base") $(hs "$m-half")
    [ $# = 4 ] && [ "$1" = "$2" ] && [ "$3" = "$4" ] && [ "$3" -lt "$1" ] &&
        ok "$m: host store planned = measured: default $1, half resident $3 bytes" ||
        bad "$m: host store planned vs measured: $*"
    cmp -s "$tmp/$m-base.raw" "$tmp/fp32-base.raw" && bad "$m: the masters after 4 steps equal fp32's"
    # resume: 2 steps, a checkpoint, 2 more (into the half-resident plan) = 4 straight
    run "$m-a" "$m" --steps 2 --out "$tmp/ck-$m"
    run "$m-b" "$m-half" --steps 4 --resume "$tmp/ck-$m"
    tail -n 2 "$tmp/$m-base.loss" > "$tmp/$m-tail.loss"
    cmp -s "$tmp/$m-b.raw" "$tmp/$m-base.raw" && cmp -s "$tmp/$m-b.loss" "$tmp/$m-tail.loss" &&
        ! grep -q converted "$tmp/$m-b.log" &&
        ok "$m: 2 steps, checkpoint, --resume, 2 steps = 4 steps straight, bit for bit" ||
        bad "$m: resume differs: $(line "$m-b") vs $(tr '\n' ' ' < "$tmp/$m-tail.loss")"
done

# the bf16 rounding's seed is the checkpoint's: a resume with another --seed (and the
# checkpoint's data seed) continues the same run
"$tmp/bf16/train" --data data/tiny_train.bin --threads 2 --seed 9 --data-seed 5 --steps 4 \
    --resume "$tmp/ck-bf16" --save-raw "$tmp/bf16-s9.raw" > "$tmp/bf16-s9.log" 2>&1
cmp -s "$tmp/bf16-s9.raw" "$tmp/bf16-base.raw" &&
    ok "bf16: a resume under another --seed keeps the checkpoint's rounding seed" ||
    bad "bf16: resume with --seed 9: $(tail -n 2 "$tmp/bf16-s9.log")"

# switching precision on a resume: said in one line, then training goes on
run fp32-a fp32 --steps 2 --out "$tmp/ck-fp32"
run x1 int8 --steps 4 --resume "$tmp/ck-fp32" --out "$tmp/ck-x1"
run x2 fp32 --steps 6 --resume "$tmp/ck-x1"
run x3 int8 --steps 4 --resume "$tmp/ck-bf16"
run x4 bf16 --steps 4 --resume "$tmp/ck-int8"
for x in "x1 fp32 int8" "x2 int8 fp32" "x3 bf16 int8" "x4 int8 bf16"; do
    set -- $x
    n=$(grep -c "^resumed optimizer state: the checkpoint's $2 moments converted to this plan's $3$" "$tmp/$1.log")
    [ "$n" = 1 ] && [ "$(wc -l < "$tmp/$1.loss")" = 2 ] && ! grep -q 'nan\|inf' "$tmp/$1.loss" &&
        ok "resume $2 -> $3: one line says so, training goes on: $(line "$1")" ||
        bad "resume $2 -> $3: $(grep -i 'resumed\|error' "$tmp/$1.log" | tr '\n' '|') $(line "$1")"
done
# the master crosses a switch exact: the first step after it (its loss and norm depend on the
# master alone) is fp32's third step
sed -n 3p "$tmp/fp32-base.loss" > "$tmp/l3a"
sed -n 1p "$tmp/x1.loss" > "$tmp/l3b"
[ -s "$tmp/l3a" ] && cmp -s "$tmp/l3a" "$tmp/l3b" &&
    ok "resume fp32 -> int8: the master came across exact (step 3:$(cat "$tmp/l3a"))" ||
    bad "resume fp32 -> int8: step 3 $(cat "$tmp/l3b") vs fp32's $(cat "$tmp/l3a")"

# a checkpoint whose state cannot be converted is refused
train="$tmp/int8/train"
cp -r "$tmp/ck-int8/step-00000002" "$tmp/blk"
poke "$tmp/blk/resume.bin" 64 '\040\000\000\000'   # int8 blocks of 32
expect_fail "int8 checkpoint with blocks of 32" "blocks of 32 elements, which this trainer cannot convert" \
    $train --data data/tiny_train.bin --threads 2 --seed 5 --steps 4 --resume "$tmp/blk"
cp -r "$tmp/ck-int8/step-00000002" "$tmp/mode"
poke "$tmp/mode/resume.bin" 60 '\007\000\000\000'   # state mode 7
expect_fail "checkpoint with state mode 7" "optimizer state mode 7" \
    $train --data data/tiny_train.bin --threads 2 --seed 5 --steps 4 --resume "$tmp/mode"
cp -r "$tmp/ck-int8/step-00000002" "$tmp/flip"
size=$(wc -c < "$tmp/flip/resume.bin")
poke "$tmp/flip/resume.bin" $((size - 3)) '\177'    # a byte of the v scales
expect_fail "one changed byte of the int8 scales" "checksum mismatch" \
    $train --data data/tiny_train.bin --threads 2 --seed 5 --steps 4 --resume "$tmp/flip"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
