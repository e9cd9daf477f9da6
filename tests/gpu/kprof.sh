#!/bin/sh
# tests/gpu/kprof.sh - train --profile-kernels on the GPU (tests/gpu/run.sh runs it; alone:
# sh tests/gpu/kprof.sh after make): the small Llama's cuda trainer profiles its second step,
# with the default and the --deterministic kernels. Every row has calls and positive time,
# each stream's shares add up to 100%, the compute stream's rows to its busy time from the op
# events within 3% (and 5 us an op below it: the two sets of events), every kernel kind
# of the step has its row, the GEMM and attention rates are positive and below the plan's
# GEMM ceiling, every GEMM row has its speed against the same GEMMs timed alone right after
# the step, with the SM clock and power of both (NVML) printed and recorded, the printed table
# equals the --metrics record, and the profile changes no result (--deterministic: the same
# losses as a run without it, so the alone calls after step 2 change nothing of steps 3-4).
# Needs build/ from make. Logs go to $LOGDIR (default build/gpu-logs). Ends with
# "N passed, N failed".
cd "$(dirname "$0")/../.." || exit 1
LOGDIR=${LOGDIR:-build/gpu-logs}
d=$LOGDIR/kprof
mkdir -p "$d"
. tests/lib.sh

build/hzc build tests/gpu/small-llama.yaml -o "$d/sl" --backend cuda > "$d/build.log" 2>&1 ||
    bad "small-llama cuda build: $(tail -n 3 "$d/build.log")"
tr="$d/sl/train"
for mode in default deterministic; do
    flag=
    [ $mode = deterministic ] && flag=--deterministic
    "$tr" --data data/tiny_train.bin --steps 4 --seed 3 $flag --profile-kernels \
        --metrics "$d/$mode.jsonl" > "$d/$mode.log" 2>&1 ||
        { bad "$mode: trainer failed: $(tail -n 5 "$d/$mode.log")"; continue; }
    python3 - "$d/$mode.log" "$d/$mode.jsonl" "$d/sl/generated/plan.json" > "$d/$mode.check" 2>&1 <<'PY'
import json, re, sys
log = open(sys.argv[1]).read()
k = [json.loads(l) for l in open(sys.argv[2]) if '"kernels"' in l]
fails = []
def check(cond, what):
    print(("ok      " if cond else "NOT OK  ") + what)
    if not cond: fails.append(what)
check(len(k) == 1 and k[0]["step"] == 2 and k[0]["backend"] == "cuda", "one kernels record, of step 2")
k = k[0]
check("kernel profile of step 2 (cuda backend)" in log, "the table is printed")
check("were not timed" not in log, "every launch was timed (the event pool held them)")
ceil = k["ceilings"]["gemm_tflops"]
streams = {s["stream"]: s for s in k["streams"]}
check(set(streams) == {"compute", "h2d", "d2h"}, "a block per stream: %s" % sorted(streams))
for name, s in streams.items():
    rows = s["rows"]
    for r in rows:
        check(r["calls"] > 0 and r["ms"] > 0, "%s %s: %d calls, %.3f ms" % (name, r["kernel"], r["calls"], r["ms"]))
        line = re.search(r"^  %s +%s +(\d+) +([\d.]+) " % (re.escape(name), re.escape(r["kernel"])), log, re.M)
        check(line is not None and int(line.group(1)) == r["calls"] and line.group(2) == "%.3f" % r["ms"],
              "%s %s: printed as recorded" % (name, r["kernel"]))
    share = sum(r["share"] for r in rows)
    check(abs(share - 1.0) < 1e-6, "%s: shares add up to %.4f%%" % (name, 100 * share))
    check(abs(sum(r["ms"] for r in rows) - s["total_ms"]) < 1e-6 * s["total_ms"] + 1e-6, "%s: rows add up to the total" % name)
c = streams["compute"]
# the rows run from each op's first kernel event to its last, the busy time between the step
# profile's own events at the op's two ends, recorded just beside them: they agree within 3%,
# plus 5 us an op below it where the host's issue of those records is what the device waits
# for (the small Llama's --deterministic step: 2.8 ms, 22 ops, 4.4 us an op); rows beyond
# the busy time are an error
err = (c["total_ms"] - c["busy_ms"]) / c["busy_ms"]
ops = sum(1 for o in json.load(open(sys.argv[3]))["ops"] if o["stream"] == "compute")
gap = 0.03 * c["busy_ms"] + 5e-3 * ops
check(-gap <= c["total_ms"] - c["busy_ms"] <= 0.03 * c["busy_ms"],
      "compute: rows %.3f ms against the op events' busy %.3f ms (%+.2f%%; %d ops, so within -%.3f ms and +3%%)"
      % (c["total_ms"], c["busy_ms"], 100 * err, ops, gap))
names = {r["kernel"]: r for r in c["rows"]}
want = ["gemm %s %s" % (g, p) for g in ("qkv", "attn-out", "gate/up", "down", "lm-head") for p in ("fwd", "dx", "dw")]
want += ["attention fwd", "attention bwd", "rmsnorm fwd", "residual+rmsnorm fwd", "rmsnorm bwd", "rope fwd",
         "rope bwd", "swiglu fwd", "swiglu bwd", "crossentropy", "embedding fwd", "embedding bwd",
         "memset", "copy d2h"]
missing = [w for w in want if w not in names]
check(not missing, "every kernel kind of the step has a compute row (missing: %s)" % missing)
# the tiny model has no post norms: its down projection adds the residual in the GEMM's epilogue
check("residual add" not in names, "no residual add kernel: the down projection's epilogue adds it")
for n, r in names.items():
    if r["tflops"] is not None:
        check(0 < r["tflops"] < ceil, "%s: %.2f TFLOP/s, below the plan's GEMM ceiling %.1f" % (n, r["tflops"], ceil))
    if r["gbps"] is not None:
        check(r["gbps"] > 0 and r["roofline"] > 0, "%s: %.1f GB/s, %.2f%% of the device memory ceiling" % (n, r["gbps"], 100 * r["roofline"]))
# each GEMM row against the same GEMMs timed alone after the step (gemm_pick.c): a positive
# ratio, printed as recorded; the lowest is reported
check(re.search(r"^cuda backend: GEMM times alone for the kernel profile: \d+ shapes, 20 calls each after \d+ bytes written over the L2, after the profiled step", log, re.M) is not None,
      "the GEMMs were timed alone after the profiled step")
clk = k.get("sm_clock_mhz")
check(clk is not None and len(clk) == 2 and all(100 < c < 5000 for c in clk) and all(0 < w < 2000 for w in k["power_w"]),
      "the SM clock and power of the step and of the alone times recorded: %s MHz, %s W" % (clk, k.get("power_w")))
line = re.search(r"^  the device during the step: SM clock (\d+) MHz, (\d+) W \(its limit (\d+) W\); during the GEMMs alone, timed after the step: (\d+) MHz, (\d+) W$", log, re.M)
check(line is not None and clk is not None and line.group(1) == "%.0f" % clk[0] and line.group(4) == "%.0f" % clk[1],
      "the clocks printed under the header as recorded")
gemms = [r for n, r in names.items() if n.startswith("gemm ")]
check(all(r["vs_alone"] is not None and r["vs_alone"] > 0 for r in gemms), "every GEMM row has its alone time")
for r in gemms:
    line = re.search(r"^  compute +%s +.*? ([\d.]+)%% +[\d.]+%%$" % re.escape(r["kernel"]), log, re.M)
    check(line is not None and line.group(1) == "%.1f" % (100 * r["vs_alone"]), "%s: alone %.1f%% printed as recorded" % (r["kernel"], 100 * r["vs_alone"]))
if gemms:
    low = min(gemms, key=lambda r: r["vs_alone"])
    print("note    slowest GEMM row against its alone time: %s %.1f%%" % (low["kernel"], 100 * low["vs_alone"]))
check(all(r["vs_alone"] is None for n, r in names.items() if not n.startswith("gemm ")), "only GEMM rows have alone times")
check("copy h2d" in {r["kernel"] for r in streams["h2d"]["rows"]}, "h2d: the weights' copies")
# one GPU: each unit's gradient norm runs at the end of its last backward, on the compute stream
check("grad norm" in {r["kernel"] for r in streams["compute"]["rows"]} and "copy d2h" in {r["kernel"] for r in streams["d2h"]["rows"]}, "the gradients' norm on the compute stream, their copies on d2h")
print("%d passed, %d failed" % (0, len(fails)))
sys.exit(1 if fails else 0)
PY
    [ $? = 0 ] && ok "--profile-kernels ($mode kernels): $(grep -c '^ok' "$d/$mode.check") checks; $(grep 'compute: rows' "$d/$mode.check" | cut -c9-)" ||
        { bad "--profile-kernels ($mode kernels):"; grep 'NOT OK\|Error\|Traceback' "$d/$mode.check" | head -n 20; }
done

# the profiled step trains as any other: --deterministic losses equal a run without the flag
"$tr" --data data/tiny_train.bin --steps 4 --seed 3 --deterministic > "$d/plain.log" 2>&1 ||
    bad "plain run: $(tail -n 3 "$d/plain.log")"
grep '^step  *[0-9]*/' "$d/plain.log" | sed 's/.*| loss \([0-9.]*\) | norm \([0-9.]*\) .*/\1 \2/' > "$d/plain.loss"
grep '^step  *[0-9]*/' "$d/deterministic.log" | sed 's/.*| loss \([0-9.]*\) | norm \([0-9.]*\) .*/\1 \2/' > "$d/prof.loss"
[ -s "$d/plain.loss" ] && cmp -s "$d/plain.loss" "$d/prof.loss" &&
    ok "the profiled run's losses and norms equal a run without --profile-kernels ($(wc -l < "$d/plain.loss") steps, --deterministic)" ||
    bad "profiled vs plain: $(paste "$d/plain.loss" "$d/prof.loss" | tr '\n' ';')"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
