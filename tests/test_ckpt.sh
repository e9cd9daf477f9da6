#!/bin/sh
# tests/test_ckpt.sh - checkpoints against a hostile user: cleanup and --keep never follow a
# symlink out of --out nor delete the checkpoint just written; a checkpoint whose files or
# resume header were changed, or that was written for another spec, is refused on --resume
# with the file or field named; --resume of a --out directory skips a newest checkpoint
# that fails verification. Run from the repository root after make.
hzc=build/hzc
tmp=$(mktemp -d /tmp/hzc-ckpt.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

# poke FILE OFFSET OCTAL-BYTES: overwrite bytes in place
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2> /dev/null; }

$hzc build models/tiny.yaml -o "$tmp/a" --backend cpu 2> "$tmp/build.log" || bad "build tiny: $(cat "$tmp/build.log")"
train="$tmp/a/train"
run() { $train --data data/tiny_train.bin --threads 2 "$@"; }

# 1. a stale step-N.tmp that is a symlink: the link goes, its target stays whole
mkdir -p "$tmp/victim" "$tmp/o1"
echo precious > "$tmp/victim/file"
ln -s "$tmp/victim" "$tmp/o1/step-00000001.tmp"
run --steps 1 --out "$tmp/o1" > "$tmp/o1.log" 2>&1
[ -f "$tmp/victim/file" ] && [ -s "$tmp/o1/step-00000001/resume.bin" ] && [ ! -e "$tmp/o1/step-00000001.tmp" ] &&
    ok "a symlinked step-N.tmp is unlinked, its target left alone" ||
    bad "symlinked step-N.tmp: victim $(ls "$tmp/victim" | tr '\n' ' '); $(tail -n 2 "$tmp/o1.log")"

# 1. --keep and the replacement of a same-step checkpoint: symlinks inside step-N, and a
# step-N that is itself a symlink, are unlinked without touching their targets
mkdir -p "$tmp/victim2" "$tmp/victim3" "$tmp/victim4"
echo precious > "$tmp/victim2/file"; echo precious > "$tmp/victim3/file"; echo precious > "$tmp/victim4/file"
run --steps 1 --out "$tmp/o2" > /dev/null 2>&1
ln -s "$tmp/victim2" "$tmp/o2/step-00000001/link"
run --steps 2 --out "$tmp/o2" --save-every 1 > /dev/null 2>&1
ln -s "$tmp/victim3" "$tmp/o2/step-00000002/link"
ln -s "$tmp/victim4" "$tmp/o2/step-00000000"
run --steps 3 --out "$tmp/o2" --save-every 3 --keep 1 > "$tmp/o2.log" 2>&1
[ -f "$tmp/victim2/file" ] && [ -f "$tmp/victim3/file" ] && [ -f "$tmp/victim4/file" ] &&
    [ "$(ls "$tmp/o2" | tr '\n' ' ')" = "step-00000003 " ] &&
    ok "--keep 1 prunes step-N holding symlinks, and a symlinked step-N, without following them" ||
    bad "--keep with symlinks: left $(ls "$tmp/o2" | tr '\n' ' '); victims $(ls "$tmp/victim2" "$tmp/victim3" "$tmp/victim4" | tr '\n' ' ')"

# 6. --keep 1 keeps the checkpoint just written though an older run's has a higher step
run --steps 3 --out "$tmp/o3" > /dev/null 2>&1
run --steps 1 --out "$tmp/o3" --keep 1 > "$tmp/o3.log" 2>&1
[ "$(ls "$tmp/o3" | tr '\n' ' ')" = "step-00000001 " ] &&
    ok "--keep 1 keeps the checkpoint just written (step 1) over an older run's step 3" ||
    bad "--keep 1 left: $(ls "$tmp/o3" | tr '\n' ' '); $(tail -n 2 "$tmp/o3.log")"
run --steps 4 --out "$tmp/o4" --save-every 1 > /dev/null 2>&1
run --steps 2 --out "$tmp/o4" --keep 2 > /dev/null 2>&1
[ "$(ls "$tmp/o4" | tr '\n' ' ')" = "step-00000002 step-00000004 " ] &&
    ok "--keep 2: the one just written and the highest other step: $(ls "$tmp/o4" | tr '\n' ' ')" ||
    bad "--keep 2 left: $(ls "$tmp/o4" | tr '\n' ' ')"

# 4. every file of a checkpoint and its resume header are verified on --resume
run --steps 4 --out "$tmp/ck" --save-every 2 > /dev/null 2>&1
ck4="$tmp/ck/step-00000004"
cp -r "$ck4" "$tmp/swap"
cp "$tmp/ck/step-00000002/model.safetensors" "$tmp/swap/model.safetensors"
expect_fail "model.safetensors of step 2 in step 4" "model.safetensors: .*manifest" run --steps 6 --resume "$tmp/swap"
cp -r "$ck4" "$tmp/flip"
poke "$tmp/flip/model.safetensors" 40000 '\125'
expect_fail "one changed byte of model.safetensors" "model.safetensors: .*manifest" run --steps 6 --resume "$tmp/flip"
cp -r "$ck4" "$tmp/cfg"
sed 's/"rms_norm_eps": 1e-05/"rms_norm_eps": 1e-06/' "$ck4/config.json" > "$tmp/cfg/config.json"
expect_fail "changed config.json" "config.json: .*manifest" run --steps 6 --resume "$tmp/cfg"
cp -r "$ck4" "$tmp/big"
poke "$tmp/big/resume.bin" 32 '\100\102\017\000\000\000\000\000'   # step 1000000
expect_fail "resume header step 1000000" "resume.bin: corrupt" run --steps 6 --resume "$tmp/big"
cp -r "$ck4" "$tmp/neg"
poke "$tmp/neg/resume.bin" 32 '\374\377\377\377\377\377\377\377'   # step -4
expect_fail "resume header step -4" "step -4 is out of range" run --steps 6 --resume "$tmp/neg"
cp -r "$ck4" "$tmp/pos"
poke "$tmp/pos/resume.bin" 40 '\000\000\000\000\000\000\000\001'   # data position 2^56
expect_fail "resume header data position 2^56" "resume.bin: corrupt" run --steps 6 --resume "$tmp/pos"
cp -r "$ck4" "$tmp/extra"
cp "$ck4/model.safetensors" "$tmp/extra/model-00001-of-00001.safetensors"
expect_fail "a .safetensors file the manifest lacks" "not in resume.bin's manifest" run --steps 6 --resume "$tmp/extra"
cp -r "$ck4" "$tmp/ck/step-00000009"
expect_fail "step-9 holding step 4's state" "holds step 4" run --steps 12 --resume "$tmp/ck/step-00000009"
rm -rf "$tmp/ck/step-00000009"

# --resume of a --out directory: a newest checkpoint that fails verification is skipped
poke "$ck4/model.safetensors" 40000 '\125'
run --steps 6 --resume "$tmp/ck" > "$tmp/skip.log" 2> "$tmp/skip.err"
rc=$?
[ $rc = 0 ] && grep -q "skipping $ck4: .*model.safetensors" "$tmp/skip.err" &&
    grep -q "resumed from $tmp/ck/step-00000002: 2 steps done" "$tmp/skip.log" &&
    ok "--resume OUT skips a corrupt newest checkpoint: $(head -n 1 "$tmp/skip.err" | cut -c1-150)" ||
    bad "--resume OUT with a corrupt newest: exit $rc; $(cat "$tmp/skip.err") $(grep resumed "$tmp/skip.log")"
rm -f "$tmp/ck/step-00000002/resume.bin"
expect_fail "--resume OUT with no valid checkpoint" "model.safetensors: .*manifest" run --steps 6 --resume "$tmp/ck"

# 5. a checkpoint of another spec whose tensor shapes match (8 heads of 16 in the same widths,
# another rope_theta or norm_eps): config.json compared with the plan names the first field
sed 's/num_heads: 4 .*/num_heads: 8/' models/tiny.yaml > "$tmp/nh8.yaml"
sed 's/rope_theta: 10000/rope_theta: 500000/' models/tiny.yaml > "$tmp/theta.yaml"
sed 's/norm_eps: 1e-5/norm_eps: 1e-6/' models/tiny.yaml > "$tmp/eps.yaml"
for s in nh8:head_dim theta:rope_theta eps:rms_norm_eps; do   # 8 heads of 16: head_dim is the first key that differs
    n=${s%%:*} field=${s#*:}
    $hzc build "$tmp/$n.yaml" -o "$tmp/b-$n" --backend cpu 2> /dev/null
    "$tmp/b-$n/train" --data data/tiny_train.bin --threads 2 --steps 1 --out "$tmp/ck-$n" > /dev/null 2>&1
    expect_fail "resume of a checkpoint whose $field differs" "config.json: \"$field\" is .*this spec's plan has" \
        run --steps 2 --resume "$tmp/ck-$n"
done

echo "$pass passed, $fail failed"
[ $fail = 0 ]
