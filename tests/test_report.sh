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
$train $data --steps 6 --eval-every 2 --metrics "$tmp/m.jsonl" --out "$tmp/ck" --trace "$tmp/trace.json" > "$tmp/run.log" 2>&1 ||
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
# ---- hzc report from that run: every chart holds the run's numbers ----
$hzc report "$tmp/m.jsonl" -o "$tmp/r.html" 2> "$tmp/report.err" &&
    python3 - "$tmp/r.html" "$tmp/m.jsonl" "$tmp/t/generated/plan.json" "$tmp/trace.json" > "$tmp/rcheck.log" 2>&1 <<'PY'
import json, sys, xml.etree.ElementTree as ET
X, S = "{http://www.w3.org/1999/xhtml}", "{http://www.w3.org/2000/svg}"
html = open(sys.argv[1]).read()
root = ET.fromstring(html)  # well-formed: it parses as XML
recs = [json.loads(l) for l in open(sys.argv[2])]
plan = json.load(open(sys.argv[3]))
trace = json.load(open(sys.argv[4]))["traceEvents"]
assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace('xmlns="http://www.w3.org/1999/xhtml"', ""), "external reference or script"
svgs = {e.get("id"): e for e in root.iter(S + "svg")}
for want in ("loss", "lr", "throughput", "tflops", "memory-host", "memory-gpu", "timeline"):
    assert want in svgs, (want, sorted(svgs))
steps = [r for r in recs if r["type"] == "step"]
evals = [r for r in recs if r["type"] == "eval"]
lines = {p.get("data-name"): p for p in svgs["loss"].iter(S + "polyline")}
assert int(lines["loss"].get("data-n")) == len(steps) == 6, lines["loss"].attrib
assert abs(float(lines["loss"].get("data-last")) - steps[-1]["loss"]) < 1e-6, lines["loss"].attrib
assert int(lines["val loss"].get("data-n")) == len(evals) == 3, lines["val loss"].attrib
for sid, key in (("lr", "lr"), ("throughput", "tokens_per_s"), ("tflops", "model_tflops")):
    p = next(svgs[sid].iter(S + "polyline"))
    assert int(p.get("data-n")) == 6 and abs(float(p.get("data-last")) - steps[-1][key]) <= 1e-6 * abs(steps[-1][key]), (sid, p.attrib)
summ = recs[-1]
def bars(sid, row):
    return [(b.get("data-name"), float(b.get("data-bytes"))) for b in svgs[sid].iter(S + "rect") if b.get("data-row") == row]
host = bars("memory-host", "planned")
assert abs(sum(b for _, b in host) - plan["host_bytes"]) < 8, (host, plan["host_bytes"])
measured = dict(bars("memory-host", "measured") + bars("memory-gpu", "measured"))
for l in summ["memory"]:
    assert measured[l["what"]] == l["measured"], (l, measured)
gpu = dict(bars("memory-gpu", "planned"))
assert gpu == {r["name"]: r["bytes"] for r in plan["regions"]}, gpu
# the timeline: the last step whose previous step's host updates are traced, with them
ev = [e for e in trace if e["ph"] == "X"]
traced = max(e["args"]["step"] for e in ev if e["tid"] != 3 and any(h["tid"] == 3 and h["args"]["step"] == e["args"]["step"] - 1 for h in ev))
want = [e for e in ev if (e["args"]["step"] == traced and e["tid"] != 3) or (e["args"]["step"] == traced - 1 and e["tid"] == 3)]
a = min(e["ts"] for e in want); b = max(e["ts"] + e["dur"] for e in want)
shown = [r for r in svgs["timeline"].iter(S + "rect") if r.get("class") == "event"]
assert len(shown) == len([e for e in ev if e["ts"] < b and e["ts"] + e["dur"] > a]), (len(shown), len(want))
assert {r.get("data-track") for r in shown} >= {"compute", "h2d", "d2h", "host"}, {r.get("data-track") for r in shown}
rows = {tr.find(X + "th").text: tr.find(X + "td").text for tr in root.iter(X + "tr")}
assert rows["last loss"] == "%.4f" % steps[-1]["loss"] and rows["steps logged"] == "6 of 6", rows
print("7 charts; loss, val loss, lr, throughput with every logged point; host and GPU bars equal to "
      "the plan and the summary; %d events of the traced step %d and the updates before it" % (len(shown), traced))
PY
[ $? = 0 ] && ok "hzc report: $(tail -n 1 "$tmp/rcheck.log")" || bad "hzc report: $(cat "$tmp/report.err"; tail -n 5 "$tmp/rcheck.log")"

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
# a --out directory as RUN: both runs' steps, once each
$hzc report "$tmp/ck" -o "$tmp/r2.html" 2> "$tmp/r2.err" &&
    grep -q 'data-name="loss" data-n="8"' "$tmp/r2.html" && grep -q "<p>No trace" "$tmp/r2.html" &&
    ok "hzc report OUT: the 8 steps of a run and its resume, no trace named" || bad "report OUT: $(cat "$tmp/r2.err")"
printf '{"type":"step","step":1}\nnot json\n' > "$tmp/badm.jsonl"
expect_fail "report: a bad metrics line" "badm.jsonl:2: not a metrics record" $hzc report "$tmp/badm.jsonl" -o "$tmp/x.html"
expect_fail "report: no metrics file" "cannot open" $hzc report "$tmp/nothing.jsonl"
expect_fail "report: a missing --trace" "no such file" $hzc report "$tmp/m.jsonl" --trace "$tmp/none.json" -o "$tmp/x.html"

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

# ---- samples: from the current weights, without disturbing the training ----
$train $data --steps 2 --sample-every 1 --sample-prompt "The " --sample-tokens 8 --sample-temperature 0 \
    --metrics "$tmp/s0.jsonl" > "$tmp/s0.log" 2>&1
$train $data --steps 2 --sample-every 1 --sample-prompt "ids:84,104,101,32" --sample-tokens 8 --sample-top-k 1 \
    --metrics "$tmp/s1.jsonl" > /dev/null 2>&1
$train $data --steps 2 --sample-every 1 --sample-prompt "The " --sample-tokens 8 --sample-temperature 1.5 \
    --metrics "$tmp/s2.jsonl" > /dev/null 2>&1
$train $data --steps 2 --sample-every 1 --sample-prompt "The " --sample-tokens 8 --sample-temperature 1.5 \
    --metrics "$tmp/s3.jsonl" > /dev/null 2>&1
python3 - "$tmp/m.jsonl" "$tmp/s0.jsonl" "$tmp/s1.jsonl" "$tmp/s2.jsonl" "$tmp/s3.jsonl" "$tmp/s0.log" > "$tmp/smp.log" 2>&1 <<'PY'
import json, sys
runs = [[json.loads(l) for l in open(f)] for f in sys.argv[1:6]]
losses = [[(r["loss"], r["grad_norm"]) for r in run if r["type"] == "step"][:2] for run in runs]
assert all(l == losses[0] for l in losses), losses  # sampling changes no weight (the 6-step run's first 2)
smp = [[r for r in run if r["type"] == "sample"] for run in runs[1:]]
assert [r["step"] for r in smp[0]] == [1, 2] and all(len(r["tokens"]) == 8 for s in smp for r in s), smp
greedy, topk1, hot, hot2 = [[r["tokens"] for r in s] for s in smp]
assert greedy == topk1, (greedy, topk1)      # top-k 1 is greedy; ids: gives the same prompt as text
assert hot == hot2 and hot != greedy, (hot, greedy)  # seeded: reproducible; tempered: not the argmax
assert all(r["text"] == bytes(r["tokens"]).decode() for r in smp[0] if all(32 <= t < 127 for t in r["tokens"])), smp[0]
log = open(sys.argv[6]).read()
assert "sample after step 2 (8 tokens of text after the prompt):\n  | The " + smp[0][1]["text"] in log, log
print("losses unchanged by sampling; greedy = top-k 1 (prompt as text and as ids); temperature 1.5 "
      "reproducible and not greedy; printed text = logged text: %r" % smp[0][1]["text"])
PY
[ $? = 0 ] && ok "samples: $(tail -n 1 "$tmp/smp.log")" || bad "samples: $(tail -n 5 "$tmp/smp.log")"
expect_fail "--sample-every without a prompt" "needs --sample-prompt" $train $data --steps 1 --sample-every 1
expect_fail "an empty prompt" "empty" $train $data --steps 1 --sample-every 1 --sample-prompt ""
expect_fail "a prompt id beyond the vocabulary" "not a token id below" $train $data --steps 1 --sample-every 1 --sample-prompt "ids:5,300"

# ---- the report in a real browser: a screenshot, and the page's elements as rendered ----
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "skipped: no browser (apt-get install chromium): the headless screenshot test of hzc report"
else
    flags="--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,2400"
    # shellcheck disable=SC2086
    timeout 120 "$browser" $flags --screenshot="$tmp/report.png" "file://$tmp/r.html" > "$tmp/chrome.log" 2>&1
    # shellcheck disable=SC2086
    timeout 120 "$browser" $flags --dump-dom "file://$tmp/r.html" > "$tmp/dom.html" 2>> "$tmp/chrome.log"
    mkdir -p build/test-logs && cp "$tmp/report.png" build/test-logs/report.png 2> /dev/null
    python3 - "$tmp/report.png" "$tmp/dom.html" > "$tmp/png.log" 2>&1 <<'PY'
import struct, sys, zlib, re
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR": ihdr = struct.unpack(">IIBBBBB", body)
    if kind == b"IDAT": idat += body
    pos += 12 + n
w, h, depth, ctype = ihdr[:4]
assert depth == 8 and ctype in (2, 6), ihdr
bpp = 3 if ctype == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
rows, prev = [], bytearray(stride)
for y in range(min(h, 1000)):  # the header and the four training charts; pure Python is slow
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line)); prev = line
colors = {}
for r in rows[::2]:
    for x in range(0, stride, bpp * 2):
        px = r[x:x + 3]; colors[px] = colors.get(px, 0) + 1
total = sum(colors.values())
white = colors.get(b"\xff\xff\xff", 0)
# the loss line, the val loss, the host store's w array: the charts' own colours, drawn
for name, rgb in (("loss line", (0x4e, 0x79, 0xa7)), ("val loss", (0xe1, 0x57, 0x59)), ("lr line", (0x59, 0xa1, 0x4f))):
    assert colors.get(bytes(rgb), 0) > 20, (name, colors.get(bytes(rgb), 0))
assert 1 - white / total > 0.05 and len(colors) > 50, (white / total, len(colors))
dom = open(sys.argv[2]).read()
ids = re.findall(r'<svg[^>]* id="([^"]+)"', dom)
assert ids == ["loss", "lr", "throughput", "tflops", "memory-host", "memory-gpu", "timeline"], ids
print("%dx%d screenshot, %.0f%% of it drawn in %d colours with the loss, val loss and lr lines' own; "
      "the rendered page holds the 7 charts in order" % (w, h, 100 * (1 - white / total), len(colors)))
PY
    [ $? = 0 ] && ok "report in $(basename "$browser"): $(tail -n 1 "$tmp/png.log")" ||
        bad "report in $browser: $(tail -n 5 "$tmp/png.log"; tail -n 3 "$tmp/chrome.log")"
fi

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
