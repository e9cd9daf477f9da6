#!/bin/sh
# tests/test_tune.sh - hzc tune from the command line: it finishes on every shipped model
# (one larger than the 512 GiB host at any placement is refused: no plan fits), its winner
# fits and is never slower than the default plan, more GPU memory never gives a slower winner,
# -o writes a spec that hzc plan takes with its plan: section, an 80-layer model is searched
# in under 2 s, and bad flags are refused (one message, exit 1).
# Run from the repository root after make.
hzc=build/hzc
tmp=$(mktemp -d /tmp/hzc-tune.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

# field ROW N FILE: column N of tune's table row ROW (a rank, or "default"); the columns are
# rank state ends resident keep mlp_out slots grads bounds micro step_s TFLOP/s GPU_GiB host_GiB
# critical...
field() { awk -v r="$1" -v f="$2" '$1 == r { print $f; exit }' "$3"; }
# le A B [TOL]: A <= B (+ TOL)
le() { awk -v a="$1" -v b="$2" -v t="${3:-0}" 'BEGIN { exit !(a != "" && b != "" && a <= b + t) }'; }

for m in models/*.yaml; do
    n=$(basename "$m" .yaml)
    out="$tmp/$n.out"
    if ! $hzc plan "$m" --host-mem 512G > /dev/null 2> "$tmp/$n.host"; then
        # larger than the host at any placement (llama3.1-70b): tune says no plan fits
        $hzc tune "$m" --gpu-mem 80G --host-mem 512G > "$out" 2> "$tmp/$n.err"
        rc=$?
        [ $rc = 1 ] && grep -q 'host memory' "$tmp/$n.host" && grep -q 'no plan fits' "$tmp/$n.err" &&
            ok "tune $m: more than 512 GiB of host at any placement: $(cut -c1-120 "$tmp/$n.err")" ||
            bad "tune $m beyond the host: exit $rc: $(head -c 300 "$tmp/$n.err")"
        continue
    fi
    if $hzc tune "$m" --gpu-mem 80G --host-mem 512G -o "$tmp/$n.yaml" > "$out" 2> "$tmp/$n.err"; then
        ok "tune $m: $(grep -m1 "^searched" "$out" | cut -d: -f1)"
    else
        bad "tune $m: exit $?: $(head -c 300 "$tmp/$n.err")"
        continue
    fi
    step=$(field 1 11 "$out") def=$(field default 11 "$out")
    gpu=$(field 1 13 "$out") host=$(field 1 14 "$out")
    le "$gpu" 80 && le "$host" 512 && ok "$n: the winner fits: $gpu GiB GPU <= 80, $host GiB host <= 512" ||
        bad "$n: the winner does not fit: $gpu GiB GPU, $host GiB host"
    le "$step" "$def" && ok "$n: the winner's $step s <= the default plan's $def s" ||
        bad "$n: the winner's $step s > the default plan's $def s"
    # the written spec: hzc plan takes it within the same limits, with its plan: section
    if $hzc plan "$tmp/$n.yaml" --gpu-mem 80G --host-mem 512G > "$tmp/$n.plan" 2> "$tmp/$n.perr" &&
        [ "$(grep -c '^plan:$' "$tmp/$n.yaml")" = 1 ] && grep -q '^  resident_blocks: [0-9]' "$tmp/$n.yaml"; then
        ok "$n: hzc plan takes the -o spec, which has one plan: section"
    else
        bad "$n: hzc plan on the -o spec: $(head -c 300 "$tmp/$n.perr")"
    fi
    planned=$(awk '$1 == "step" { print $2; exit }' "$tmp/$n.plan")
    awk -v a="$planned" -v b="$step" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 0.0005 + 0.001 * b) }' &&
        ok "$n: hzc plan on the -o spec predicts rank 1's step: $planned s" ||
        bad "$n: hzc plan on the -o spec predicts $planned s, tune's rank 1 $step s"
done

# a spec that has a plan: section gets it replaced, not a second one
$hzc tune "$tmp/llama3-8b.yaml" --gpu-mem 40G --host-mem 512G -o "$tmp/again.yaml" > /dev/null 2> "$tmp/again.err" &&
    [ "$(grep -c '^plan:$' "$tmp/again.yaml")" = 1 ] && $hzc check "$tmp/again.yaml" > /dev/null &&
    ok "tune -o on a tuned spec replaces its plan: section" || bad "tune -o on a tuned spec: $(cat "$tmp/again.err")"

# more GPU memory never predicts a slower best step
prev=
for g in 16G 40G 96G; do
    $hzc tune models/llama3-8b.yaml --gpu-mem $g --host-mem 512G > "$tmp/mono.out" 2>&1
    step=$(field 1 11 "$tmp/mono.out")
    if [ -z "$prev" ] || le "$step" "$prev"; then
        ok "llama3-8b at --gpu-mem $g: best step $step s${prev:+ <= $prev s}"
    else
        bad "llama3-8b at --gpu-mem $g: best step $step s > $prev s with less memory"
    fi
    prev=$step
done

# where the GPU has room for the weights and the Adam state, the winner keeps blocks there
# and takes the host optimizer off the critical path: faster than the default plan, which
# streams every block (needs the planner to honour plan.resident_blocks)
$hzc tune models/llama3-3b.yaml --gpu-mem 141G --host-mem 512G > "$tmp/room.out" 2>&1
step=$(field 1 11 "$tmp/room.out") def=$(field default 11 "$tmp/room.out") res=$(field 1 4 "$tmp/room.out")
awk -v a="$step" -v b="$def" -v r="$res" 'BEGIN { exit !(a != "" && a < b && r > 0) }' &&
    ok "llama3-3b on 141G: the winner keeps $res blocks resident, $step s < the default's $def s" ||
    bad "llama3-3b on 141G: the winner ($res resident blocks, $step s) is no faster than the default ($def s)"

# Gemma 3 (post norms): with the GPU's room the winner keeps MLP outputs, which skips the down
# projection's recompute; the written plan: section says how many, and plans them back
$hzc tune models/gemma3-12b.yaml --gpu-mem 139G --host-mem 120G -o "$tmp/g12.yaml" > "$tmp/g12.out" 2>&1
mo=$(field 1 6 "$tmp/g12.out") keep=$(field 1 5 "$tmp/g12.out")
$hzc plan "$tmp/g12.yaml" --gpu-mem 139G --host-mem 120G > "$tmp/g12.plan" 2>&1
awk -v m="$mo" 'BEGIN { exit !(m > 0) }' && grep -q "^  keep_mlp_outputs: $mo " "$tmp/g12.yaml" &&
    grep -q "^  blocks keeping their MLP output ($mo)" "$tmp/g12.plan" &&
    grep -q "x 5 counts of keep_mlp_outputs" "$tmp/g12.out" &&
    ok "gemma3-12b on 139G: the winner keeps $mo blocks' MLP outputs (and $keep blocks' activations); the written spec plans them" ||
    bad "gemma3-12b on 139G: mlp_out '$mo': $(grep -m2 -E '^1 |keep_mlp' "$tmp/g12.out" "$tmp/g12.yaml" | tr '\n' '|')"
[ "$(field 1 6 "$tmp/room.out")" = 0 ] && ! grep -q "keep_mlp_outputs" "$tmp/room.out" &&
    ok "llama3-3b: no MLP outputs to keep (no post norms), none searched" ||
    bad "llama3-3b: mlp_out column '$(field 1 6 "$tmp/room.out")'"

# hzc plan says what keeping the MLP outputs would take and predict, for post norms only,
# and the step it names is the one of that plan
$hzc plan models/gemma3-12b.yaml > "$tmp/g12d.plan" 2>&1
$hzc plan models/gemma3-12b.yaml plan.keep_mlp_outputs=48 > "$tmp/g12m.plan" 2>&1
line=$(grep '^  with plan.keep_mlp_outputs: 48 the 48 blocks that recompute' "$tmp/g12d.plan")
want=$(awk '$1 == "step" { print $2; exit }' "$tmp/g12m.plan")
echo "$line" | grep -q "a predicted step of $want s instead of" && ! grep -q "keep_mlp_outputs" "$tmp/g12m.plan" &&
    ! $hzc plan models/llama3-8b.yaml | grep -q keep_mlp_outputs &&
    ok "hzc plan, gemma3-12b: $(echo "$line" | cut -c3-120)...; none once they are kept, none for llama" ||
    bad "hzc plan's keep_mlp_outputs line: '$line' (that plan's step: $want)"

# plan.json carries them: the count, the bytes a block and micro-batch, each unit's flag and
# the mlp_out region (48 blocks x 8 micro-batches of those bytes)
$hzc plan models/gemma3-12b.yaml plan.keep_mlp_outputs=48 --json > "$tmp/g12m.json" 2>&1
python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))
r, units = p["residency"], p["units"]
reg = [x for x in p["regions"] if x["name"] == "mlp_out"][0]
each = r["mlp_output_bytes_per_block_micro_batch"]
assert r["keep_mlp_output_blocks"] == 48 and sum(u["keep_mlp_output"] for u in units) == 48, r
assert reg["slots"] == 48 * 8 and reg["bytes"] == 48 * 8 * each, (reg, each)
print(r["keep_mlp_output_blocks"], "blocks,", each, "bytes each,", reg["bytes"], "in mlp_out")' "$tmp/g12m.json" > "$tmp/g12m.txt" 2>&1 &&
    ok "plan --json, keep_mlp_outputs 48: $(cat "$tmp/g12m.txt")" || bad "plan --json keep_mlp_outputs: $(tail -n 3 "$tmp/g12m.txt")"

# an 80-layer model (Llama 3 70B's shape) is searched in under 2 s
sed -e 's/num_layers: 32/num_layers: 80/' -e 's/hidden_size: 4096/hidden_size: 8192/' \
    -e 's/num_heads: 32/num_heads: 64/' -e 's/ffn_size: 14336/ffn_size: 28672/' \
    -e 's/^name: .*/name: llama3-70b-shape/' models/llama3-8b.yaml > "$tmp/l80.yaml"
$hzc tune "$tmp/l80.yaml" --gpu-mem 141G --host-mem 1500G > "$tmp/l80.out" 2>&1
line=$(grep -m1 '^searched' "$tmp/l80.out")
secs=$(echo "$line" | sed -n 's/^searched [0-9]* plans in \([0-9.]*\) s.*/\1/p')
le "$secs" 2 && ok "80 layers: $(echo "$line" | cut -d: -f1)" || bad "80 layers: ${line:-no search line}: $(tail -n 3 "$tmp/l80.out")"

# a model that fits nowhere says so, with the least overflow
expect_fail "nothing fits" "no plan fits --gpu-mem 1.00 GiB and --host-mem 64.00 GiB; the one that overflows the least" \
    $hzc tune models/llama3-8b.yaml --gpu-mem 1G --host-mem 64G
grep -q "GiB of GPU memory (.* over) and .* GiB of host memory (.* over)" "$tmp/err" && ok "nothing fits: the overflow named" ||
    bad "nothing fits: $(cat "$tmp/err")"

# bad input
expect_fail "tune without --gpu-mem" "tune needs --gpu-mem SIZE and --host-mem SIZE" $hzc tune models/tiny.yaml --host-mem 1T
expect_fail "tune without --host-mem" "tune needs --gpu-mem SIZE and --host-mem SIZE" $hzc tune models/tiny.yaml --gpu-mem 80G
expect_fail "tune with a bad size" "--gpu-mem expects a size" $hzc tune models/tiny.yaml --gpu-mem 12Q --host-mem 1T
expect_fail "tune with a zero size" "--host-mem expects a size" $hzc tune models/tiny.yaml --gpu-mem 80G --host-mem 0
expect_fail "tune --top 0" "--top expects a number of plans from 1 to 1000, got '0'" $hzc tune models/tiny.yaml --gpu-mem 80G --host-mem 1T --top 0
expect_fail "tune --top x" "--top expects a number of plans" $hzc tune models/tiny.yaml --gpu-mem 80G --host-mem 1T --top x
expect_fail "plan --top" "--top is for tune" $hzc plan models/tiny.yaml --top 3
expect_fail "tune --boundaries" "--boundaries is for plan and build" $hzc tune models/tiny.yaml --gpu-mem 80G --host-mem 1T --boundaries gpu
expect_fail "tune --json" "--json is not a tune option" $hzc tune models/tiny.yaml --gpu-mem 80G --host-mem 1T --json
expect_fail "tune an unreadable spec" "nope.yaml: error: cannot open" $hzc tune "$tmp/nope.yaml" --gpu-mem 80G --host-mem 1T
expect_fail "tune a bad spec" "^tests/bad/plan_values.yaml:12:20: error: " $hzc tune tests/bad/plan_values.yaml --gpu-mem 80G --host-mem 1T
echo 'not json' > "$tmp/ceil-bad.json"
expect_fail "tune with malformed ceilings" "not a ceilings file" $hzc tune models/tiny.yaml --gpu-mem 80G --host-mem 1T --ceilings "$tmp/ceil-bad.json"
expect_fail "tune -o into a missing directory" "cannot write: No such file or directory" \
    $hzc tune models/tiny.yaml --gpu-mem 80G --host-mem 1T -o "$tmp/no/such/dir.yaml"
expect_fail "tune with an unknown option" "unknown option '--bogus'" $hzc tune models/tiny.yaml --gpu-mem 80G --host-mem 1T --bogus

# --top N prints N ranks
$hzc tune models/tiny.yaml --gpu-mem 80G --host-mem 1T --top 3 > "$tmp/top.out" 2>&1
[ -n "$(field 3 1 "$tmp/top.out")" ] && [ -z "$(field 4 1 "$tmp/top.out")" ] && [ -n "$(field default 1 "$tmp/top.out")" ] &&
    ok "--top 3: three ranks and the default plan" || bad "--top 3: $(cat "$tmp/top.out")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
