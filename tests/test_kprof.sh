#!/bin/sh
# tests/test_kprof.sh - train --profile-kernels on the cpu backend: the table's structure (a
# block per stream, the header, rows with calls, times, rates and shares), each stream's shares
# adding up to 100% and its rows to its total, the total to the stream's busy time from the op
# events, the rates and roofline fractions from the rows' own FLOPs and bytes, the --metrics
# "kernels" record equal to the printed table, the step chosen (default and STEP), and the
# refusals. Run from the repository root after make.
hzc=build/hzc
tmp=$(mktemp -d /tmp/hzc-kprof.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

# a quarter of the demo's step, with a resident embedding (its update on the "device")
sed -e 's/tokens_per_step: 2048/tokens_per_step: 512/' -e 's/tokens_per_micro_batch: 1024/tokens_per_micro_batch: 256/' \
    models/tiny.yaml > "$tmp/small.yaml"
$hzc build "$tmp/small.yaml" -o "$tmp/t" --backend cpu > "$tmp/build.log" 2>&1 || bad "build: $(tail -n 3 "$tmp/build.log")"
train="$tmp/t/train"
data="--data data/tiny_train.bin"

$train $data --steps 3 --profile-kernels --metrics "$tmp/m.jsonl" > "$tmp/run.log" 2>&1 ||
    bad "train --profile-kernels: $(tail -n 3 "$tmp/run.log")"
python3 - "$tmp/run.log" "$tmp/m.jsonl" "$tmp/t/generated/plan.json" > "$tmp/check.log" 2>&1 <<'PY'
import json, re, sys
log = open(sys.argv[1]).read().splitlines()
recs = [json.loads(l) for l in open(sys.argv[2])]
fails = []
def check(cond, what):
    print(("ok      " if cond else "NOT OK  ") + what)
    if not cond: fails.append(what)

heads = [i for i, l in enumerate(log) if l.startswith("kernel profile of step ")]
check(len(heads) == 1, "one table (%d)" % len(heads))
h = heads[0]
check(log[h].startswith("kernel profile of step 2 (cpu backend)"), "the default step is the run's second: " + log[h][:60])
step_lines = [i for i, l in enumerate(log) if re.match(r"step +2/3 \|", l)]
check(step_lines and step_lines[0] < h, "the table follows its step's line")
m = re.search(r"GEMM ([\d.]+) TFLOP/s, device memory ([\d.]+) GB/s, h2d ([\d.]+) GB/s, d2h ([\d.]+) GB/s", log[h])
check(m is not None, "the header names the ceilings")
ceil = {"flops": float(m.group(1)), "hbm": float(m.group(2)), "h2d": float(m.group(3)), "d2h": float(m.group(4))}
cols = log[h + 1].split()
check(cols == ["stream", "kernel", "calls", "total", "ms", "mean", "us", "TFLOP/s", "GB/s", "roofline", "alone", "share"], "column heads: %s" % cols)

# rows: stream, name (with spaces: fixed width 24), then 8 fields
row_re = re.compile(r"^  (\S+) +(.{24}) +(\d+) +([\d.]+) +([\d.]+)? *(\S+) +(\S+) +(\S+) +([\d.]+)%$")
streams = {}
i = h + 2
while i < len(log) and log[i].startswith("  "):
    l = log[i]
    busy = re.match(r"^  (\S+) +stream busy ([\d.]+) ms by the step's op events; the rows add up to ([\d.]+) ms", l)
    if busy:
        streams[busy.group(1)]["busy"] = float(busy.group(2))
        streams[busy.group(1)]["sum_line"] = float(busy.group(3))
        i += 1
        continue
    f = l.split()
    st = f[0]
    name = l[11:35].strip()
    rest = l[35:].split()
    s = streams.setdefault(st, {"rows": [], "total": None})
    if name == "total":
        s["total"] = (int(rest[0]), float(rest[1]), float(rest[2].rstrip("%")))
    else:
        check(len(rest) == 8, "row %s %s has 8 fields: %s" % (st, name, rest))
        # the cpu backend times nothing alone: its "alone" column is "-"
        check(rest[6] == "-", "row %s %s: no alone time on the cpu backend (%s)" % (st, name, rest[6]))
        s["rows"].append((name, int(rest[0]), float(rest[1]), float(rest[2]), rest[3], rest[4], rest[5], float(rest[7].rstrip("%"))))
    i += 1
check(set(streams) == {"compute", "h2d", "d2h"}, "a block per stream that ran work: %s" % sorted(streams))
plan = json.load(open(sys.argv[3]))
for st, s in streams.items():
    rows = s["rows"]
    check(s["total"] is not None and "busy" in s, "%s: a total line and a busy line" % st)
    calls, total, share = s["total"]
    shares = sum(r[7] for r in rows)
    check(abs(shares - 100.0) < 0.05 * len(rows) + 0.01, "%s: shares add up to %.2f%% (%d rows)" % (st, shares, len(rows)))
    check(abs(sum(r[2] for r in rows) - total) <= 0.0005 * len(rows) + 1e-6, "%s: rows add up to the total %.3f ms" % (st, total))
    check(calls == sum(r[1] for r in rows), "%s: calls add up (%d)" % (st, calls))
    busy = s["busy"]
    check(abs(total - busy) <= 0.002 * busy + 0.01, "%s: total %.3f ms vs busy %.3f ms from the op events" % (st, total, busy))
    for name, c, ms, mean, tf, gb, roof, sh in rows:
        if c > 0:
            check(abs(mean - ms * 1e3 / c) <= 0.05 + 0.5 / c + 1e-4 * mean, "%s %s: mean %.1f us = total / calls" % (st, name, mean))
names = [r[0] for r in streams["compute"]["rows"]]
for want in ["gemm qkv fwd", "gemm qkv dx", "gemm qkv dw", "gemm attn-out fwd", "gemm gate/up dw",
             "gemm down dx", "gemm lm-head fwd", "gemm lm-head dw", "attention fwd", "attention bwd",
             "rmsnorm fwd", "rmsnorm bwd", "rope fwd", "rope bwd", "swiglu fwd", "swiglu bwd",
             "crossentropy", "embedding fwd", "embedding bwd", "residual add"]:
    check(want in names, "compute row %s" % want)
check([r[0] for r in streams["h2d"]["rows"] if r[0] != "host work"] == ["copy h2d"], "h2d: the weights' copies")

# the metrics record, the same rows
k = [r for r in recs if r["type"] == "kernels"]
check(len(k) == 1 and k[0]["step"] == 2 and k[0]["backend"] == "cpu", "one kernels record of step 2")
k = k[0]
check(abs(k["ceilings"]["gemm_tflops"] - ceil["flops"]) < 0.05 and abs(k["ceilings"]["hbm_gbps"] - ceil["hbm"]) < 0.5, "the record's ceilings")
for so in k["streams"]:
    s = streams[so["stream"]]
    check(len(so["rows"]) == len(s["rows"]), "%s: %d rows in the record" % (so["stream"], len(so["rows"])))
    check("%.3f" % so["total_ms"] == "%.3f" % s["total"][1] and "%.3f" % so["busy_ms"] == "%.3f" % s["busy"], "%s: record's total and busy as printed" % so["stream"])
    check(abs(sum(r["share"] for r in so["rows"]) - 1.0) < 1e-6, "%s: the record's shares add up to 1 (each written to 9 digits)" % so["stream"])
    for r, p in zip(so["rows"], s["rows"]):
        same = r["kernel"] == p[0] and r["calls"] == p[1] and "%.3f" % r["ms"] == "%.3f" % p[2]
        same = same and "vs_alone" in r and r["vs_alone"] is None  # nothing timed alone on the cpu
        # the rate from the row's own FLOPs or bytes, and its fraction of the ceiling
        if r["tflops"] is not None:
            rate = r["flops"] / (r["ms"] * 1e-3) * 1e-12
            same = same and abs(r["tflops"] - rate) <= 1e-6 * rate and "%.2f" % r["tflops"] == p[4]
            same = same and abs(r["roofline"] - rate / ceil["flops"]) < 1e-3 * max(r["roofline"], 1e-12) + 1e-9
            same = same and r["flops"] > 0
        elif r["gbps"] is not None:
            rate = r["bytes"] / (r["ms"] * 1e-3) * 1e-9
            key = {"copy h2d": "h2d", "copy d2h": "d2h"}.get(r["kernel"], "hbm")
            same = same and abs(r["gbps"] - rate) <= 1e-6 * rate and "%.1f" % r["gbps"] == p[5]
            same = same and abs(r["roofline"] - rate / ceil[key]) < 1e-3 * max(r["roofline"], 1e-12) + 1e-9
            same = same and r["bytes"] > 0
        check(same, "%s %s: record as printed, rate and roofline from its FLOPs or bytes" % (so["stream"], r["kernel"]))
# FLOPs as the plan counts them: each block's forward twice (the backward recomputes it),
# attention's causal half, its backward 2.5 x the forward
d = plan["dims"]
N, C, T, A = d["micro_tokens"], d["C"], d["T"], d["NH"] * d["HD"]
QKV, blocks = A + 2 * d["NKV"] * d["HD"], d["L"] * d["n_micro"]
rec = {r["kernel"]: r for so in k["streams"] if so["stream"] == "compute" for r in so["rows"]}
check(rec["gemm qkv fwd"]["flops"] == 2 * blocks * 2 * N * C * QKV, "gemm qkv fwd: 2 N C QKV per block, forward and recompute")
check(rec["gemm qkv dw"]["flops"] == blocks * 2 * N * C * QKV, "gemm qkv dw: 2 N C QKV per block")
check(rec["gemm lm-head fwd"]["flops"] == d["n_micro"] * 2 * N * C * d["V"], "gemm lm-head fwd: 2 N C V per micro-batch")
check(rec["attention fwd"]["flops"] == 2 * blocks * 2 * N * T * A, "attention fwd: 2 N T A (causal half)")
check(rec["attention bwd"]["flops"] == blocks * 5 * N * T * A, "attention bwd: 2.5 x the forward")
print("%d passed, %d failed" % (0, len(fails)))
sys.exit(1 if fails else 0)
PY
if [ $? = 0 ]; then ok "--profile-kernels: $(grep -c '^ok' "$tmp/check.log") checks of the table and the record"; else bad "--profile-kernels:"; grep 'NOT OK\|Error\|Traceback' "$tmp/check.log" | head -n 20; fi

# STEP picks the step; no other step prints a table
$train $data --steps 4 --profile-kernels 4 > "$tmp/run4.log" 2>&1
n=$(grep -c '^kernel profile of step 4 (cpu backend)' "$tmp/run4.log")
all=$(grep -c '^kernel profile' "$tmp/run4.log")
last=$(grep -n '^step  *4/4' "$tmp/run4.log" | cut -d: -f1)
at=$(grep -n '^kernel profile' "$tmp/run4.log" | cut -d: -f1)
[ "$n" = 1 ] && [ "$all" = 1 ] && [ -n "$last" ] && [ "$at" -gt "$last" ] &&
    ok "--profile-kernels 4: one table, of step 4, after its line" ||
    bad "--profile-kernels 4: $all tables, $n of step 4; $(tail -n 3 "$tmp/run4.log")"
# a one-step run profiles its only step; the flag takes no step word that is not a number
$train $data --steps 1 --profile-kernels --seed 3 > "$tmp/run1.log" 2>&1 &&
    grep -q '^kernel profile of step 1 ' "$tmp/run1.log" &&
    ok "--steps 1 --profile-kernels: its only step, the next flag read as a flag" ||
    bad "--steps 1 --profile-kernels: $(tail -n 3 "$tmp/run1.log")"
# without the flag: no table, no record
$train $data --steps 2 --metrics "$tmp/m0.jsonl" > "$tmp/run0.log" 2>&1
! grep -q '^kernel profile' "$tmp/run0.log" && ! grep -q '"kernels"' "$tmp/m0.jsonl" &&
    ok "without --profile-kernels: no table, no kernels record" || bad "a table or record without the flag"

expect_fail "--profile-kernels beyond --steps" "the run ends at --steps 3" $train $data --steps 3 --profile-kernels 5
expect_fail "--profile-kernels 0" "expects an integer >= 1" $train $data --steps 3 --profile-kernels 0
# a resumed run starts after its checkpoint's steps
$train $data --steps 2 --out "$tmp/ck" > "$tmp/ck.log" 2>&1 || bad "checkpoint run: $(tail -n 3 "$tmp/ck.log")"
expect_fail "--profile-kernels before a resume's first step" "this run starts at step 3" \
    $train $data --steps 4 --resume "$tmp/ck" --profile-kernels 2
$train $data --steps 4 --resume "$tmp/ck" --profile-kernels > "$tmp/res.log" 2>&1 &&
    grep -q '^kernel profile of step 4 ' "$tmp/res.log" &&
    ok "after --resume at step 2 of 4: the default is the run's second step, 4" ||
    bad "--resume --profile-kernels: $(grep '^kernel profile' "$tmp/res.log"; tail -n 3 "$tmp/res.log")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
