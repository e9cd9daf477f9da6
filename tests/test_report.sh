#!/bin/sh
# tests/test_report.sh - what people look at: train --metrics (every line parsed and checked
# against the trainer's printed log), the --out copy, a log cut short by SIGKILL. Run from
# the repository root after make.
hzc=build/hzc
tmp=$(mktemp -d /tmp/hzc-report.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

# a quarter of the demo's step, so that the runs take seconds
sed -e 's/tokens_per_step: 2048/tokens_per_step: 512/' -e 's/tokens_per_micro_batch: 1024/tokens_per_micro_batch: 256/' \
    models/tiny.yaml > "$tmp/small.yaml"
$hzc build "$tmp/small.yaml" -o "$tmp/t" --backend cpu 2> "$tmp/build.log" || bad "build: $(cat "$tmp/build.log")"
train="$tmp/t/train"
data="--data data/tiny_train.bin --val-data data/tiny_val.bin"

# ---- --metrics: every line against the printed log ----
$train $data --steps 6 --eval-every 2 --metrics "$tmp/m.jsonl" --out "$tmp/ck" > "$tmp/run.log" 2>&1 ||
    bad "train --metrics: $(tail -n 3 "$tmp/run.log")"
python3 - "$tmp/m.jsonl" "$tmp/run.log" > "$tmp/check.log" 2>&1 <<'PY'
import json, re, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
log = open(sys.argv[2]).read()
steps = [r for r in recs if r["type"] == "step"]
evals = [r for r in recs if r["type"] == "eval"]
assert recs[0]["type"] == "run" and recs[-1]["type"] == "summary", [r["type"] for r in recs]
run = recs[0]
assert run["spec"] == "tiny" and run["backend"] == "cpu" and run["step_tokens"] == 512, run
assert run["plan"].endswith("/generated/plan.json"), run
printed = re.findall(r"step +(\d+)/6 \| loss ([\d.]+) \| norm ([\d.]+) \| lr ([\d.e+-]+) \| ([\d.]+) ms \| (\d+) tok/s \| ([\d.]+) TFLOP/s", log)
assert len(printed) == 6 == len(steps), (len(printed), len(steps))
for p, r in zip(printed, steps):
    assert int(p[0]) == r["step"], (p, r)
    assert "%.4f" % r["loss"] == p[1] and "%.4f" % r["grad_norm"] == p[2], (p, r)
    assert "%.2e" % r["lr"] == p[3] and "%.1f" % r["ms"] == p[4], (p, r)
    assert "%.0f" % r["tokens_per_s"] == p[5] and "%.2f" % r["model_tflops"] == p[6], (p, r)
    assert r["trained_tokens"] == 512, r
    assert abs(r["tokens_per_s"] * r["ms"] / 1e3 - 512) < 1e-6 * 512, r
    assert abs(r["model_tflops"] / r["tokens_per_s"] * 1e12 - run["flops_per_token"]) < 1, r
val = re.findall(r"step +(\d+)/6 \| val loss ([\d.]+)", log) + [("6", re.search(r"^val loss ([\d.]+)", log, re.M).group(1))]
assert len(val) == len(evals) == 3, (val, evals)
for (s, v), r in zip(val, evals):
    assert int(s) == r["step"] and abs(float(v) - r["val_loss"]) <= 5e-5, (s, v, r)
summ = recs[-1]
m = re.search(r"summary: 6 steps, final loss ([\d.]+), (\d+) tokens/s", log)
assert "%.4f" % summ["final_loss"] == m.group(1) and "%.0f" % summ["tokens_per_s"] == m.group(2), (summ, m.groups())
mem = {l["what"]: l for l in summ["memory"]}
for what in ("host store", "host peak (RSS)"):
    p = re.search(r"%s +planned +(\d+) .* measured +(\d+)" % re.escape(what), log)
    assert mem[what]["planned"] == int(p.group(1)) and mem[what]["measured"] == int(p.group(2)), (what, mem[what])
print("%d records: 6 steps, 3 evaluations, summary with %d memory lines, all equal to the log" % (len(recs), len(mem)))
PY
[ $? = 0 ] && ok "--metrics: $(tail -n 1 "$tmp/check.log")" || bad "--metrics: $(tail -n 5 "$tmp/check.log")"
cmp -s "$tmp/m.jsonl" "$tmp/ck/metrics.jsonl" && ok "--out DIR/metrics.jsonl holds the same lines" ||
    bad "--out metrics.jsonl differs from --metrics"

# a resumed run appends to --out's copy, and --metrics starts afresh
$train $data --steps 8 --resume "$tmp/ck" --out "$tmp/ck" --metrics "$tmp/m2.jsonl" > "$tmp/run2.log" 2>&1 ||
    bad "resume: $(tail -n 3 "$tmp/run2.log")"
python3 - "$tmp/ck/metrics.jsonl" "$tmp/m2.jsonl" <<'PY' > "$tmp/check2.log" 2>&1
import json, sys
out = [json.loads(l) for l in open(sys.argv[1])]
new = [json.loads(l) for l in open(sys.argv[2])]
steps = [r["step"] for r in out if r["type"] == "step"]
assert steps == list(range(1, 9)), steps
assert [r["type"] for r in out].count("run") == 2, out
assert new[0]["type"] == "run" and new[0]["first_step"] == 6, new[0]
assert [r["step"] for r in new if r["type"] == "step"] == [7, 8], new
print("steps 1-8 in --out's log over two runs; --metrics holds 7-8")
PY
[ $? = 0 ] && ok "resume: $(tail -n 1 "$tmp/check2.log")" || bad "resume metrics: $(tail -n 5 "$tmp/check2.log")"

# SIGKILL mid-run: every line written so far is whole and parses
$train $data --steps 1000 --metrics "$tmp/k.jsonl" > "$tmp/k.log" 2>&1 &
pid=$!
i=0
while [ "$(cat "$tmp/k.jsonl" 2> /dev/null | grep -c '"type":"step"')" -lt 3 ] && [ $i -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -9 $pid 2> /dev/null
wait $pid 2> /dev/null
n=$(python3 -c 'import json,sys; print(sum(json.loads(l)["type"] == "step" for l in open(sys.argv[1])))' "$tmp/k.jsonl" 2>&1)
logged=$(grep -c '^step .*/1000 | loss' "$tmp/k.log")
[ "$n" -ge 3 ] 2> /dev/null && [ "$n" -ge "$logged" ] &&
    ok "SIGKILL after $n steps: every line parses, none of the $logged printed steps missing" ||
    bad "SIGKILL: $n step records, $logged printed steps"

# ---- hzc plan --svg: well-formed, and its elements carry the plan's numbers ----
for args in "models/tiny.yaml" "models/llama3-8b.yaml --gpu-mem 80G --host-mem 128G" "models/llama3-8b.yaml --gpu-mem 40G --host-mem 256G training.grad_clip=0"; do
    # shellcheck disable=SC2086
    $hzc plan $args --svg "$tmp/plan.svg" > /dev/null 2> "$tmp/svg.err" &&
        $hzc plan $args --json > "$tmp/plan.json" 2> /dev/null &&
        python3 - "$tmp/plan.svg" "$tmp/plan.json" > "$tmp/svg.log" 2>&1 <<'PY'
import json, sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
plan = json.load(open(sys.argv[2]))
rects = [r for r in root.iter(ns + "rect") if r.get("class")]
regions = {r.get("data-name"): r for r in rects if r.get("class") == "region"}
assert sorted(regions) == sorted(x["name"] for x in plan["regions"]), regions.keys()
width = float(root.get("width")) - 40
for x in plan["regions"]:
    r = regions[x["name"]]
    assert int(r.get("data-bytes")) == x["bytes"] and int(r.get("data-offset")) == x["offset"], (x, r.attrib)
    # to scale: the x position and width are the offset and bytes over the arena
    assert abs(float(r.get("width")) - width * x["bytes"] / plan["gpu_bytes"]) < 0.01, (x, r.attrib)
    assert abs(float(r.get("x")) - 20 - width * x["offset"] / plan["gpu_bytes"]) < 0.01, (x, r.attrib)
host = [r for r in rects if r.get("class") == "host"]
assert abs(sum(float(r.get("data-bytes")) for r in host) - plan["host_bytes"]) < 8, plan["host_bytes"]
ops = sorted((r for r in rects if r.get("class") == "op"), key=lambda r: int(r.get("data-op")))
assert len(ops) == len(plan["ops"]), (len(ops), len(plan["ops"]))
t0 = [float(r.get("data-t0")) for r in ops]
t1 = [float(r.get("data-t1")) for r in ops]
clip = plan["training"]["grad_clip"] > 0
for i, (r, o) in enumerate(zip(ops, plan["ops"])):
    assert r.get("data-kind") == o["op"] and r.get("data-stream") == o["stream"], (r.attrib, o)
    if not (clip and o["op"] == "opt"):
        assert all(t0[i] >= t1[w] - 1e-12 for w in o["wait"]), (i, o)
by = {}
for r, o in zip(ops, plan["ops"]):
    by[o["op"]] = by.get(o["op"], 0) + float(r.get("data-t1")) - float(r.get("data-t0"))
ph = plan["predicted"]["phases_s"]
for kind, phase in (("fwd", "forward"), ("loss", "loss head"), ("bwd", "backward")):
    assert abs(by[kind] - ph[phase]) <= 1e-5 * ph[phase], (kind, by[kind], ph[phase])
host_opt = sum(float(r.get("data-t1")) - float(r.get("data-t0")) for r, o in zip(ops, plan["ops"])
               if o["op"] == "opt" and o["stream"] == "host")
assert abs(host_opt - ph["host optimizer"]) <= 1e-5 * ph["host optimizer"], (host_opt, ph)
phases = {r.get("data-name"): float(r.get("data-seconds")) for r in rects if r.get("class") == "phase"}
assert abs(phases["step"] - plan["predicted"]["step_s"]) <= 1e-5 * plan["predicted"]["step_s"], phases
print("%d regions at their offsets to scale, %d host arrays summing to %d bytes, %d ops after their waits, "
      "fwd/loss/bwd/optimizer equal to the predicted phases, step %.4g ms"
      % (len(regions), len(host), plan["host_bytes"], len(ops), plan["predicted"]["step_s"] * 1e3))
PY
    [ $? = 0 ] && ok "plan --svg $args: $(tail -n 1 "$tmp/svg.log")" || bad "plan --svg $args: $(cat "$tmp/svg.err"; tail -n 5 "$tmp/svg.log")"
done
expect_fail "--svg into a missing directory" "cannot write there" $hzc plan models/tiny.yaml --svg "$tmp/nodir/p.svg"
expect_fail "--svg on build" "--svg is for plan" $hzc build models/tiny.yaml -o "$tmp/x" --svg "$tmp/p.svg"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
