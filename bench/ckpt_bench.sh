#!/bin/sh
# bench/ckpt_bench.sh [MODEL] - checkpoints at disk speed, on the device machine, in one call:
#   1. MODEL trained STEPS steps without saving (the reference throughput);
#   2. the same with a checkpoint at the end only (training stopped): the save's time and rate;
#   3. --resume of that checkpoint: the "ready in" time, and how long the resume's read took;
#   4. the disk itself with a file of the checkpoint's size (build/bench/ckpt_bench: dd-like
#      sequential writes and reads, and the engine's), so that the ratios save rate / disk
#      write rate and resume ready time / disk read time come from the same disk and call;
#   5. saving every EVERY steps while training goes on, and with --sync-save, against step 1
#      (needs room for two checkpoints: the one being written and the last one, --keep 1).
# MODEL: a name under models/ or a spec file (default llama3-3b). STEPS (default 12), EVERY
# (default 4), DIR (default build/ckbench: the disk measured; the checkpoints go there and
# are removed at the end), OUT (logs and summary, default DIR/logs). Needs build/ (hzc,
# libhzrt_cuda.a, build/bench/ckpt_bench: make all build/bench/ckpt_bench). BACKEND=cpu runs
# the same on the cpu backend (a trial of the script on a machine without a GPU).
cd "$(dirname "$0")/.." || exit 1
m=${1:-llama3-3b}
spec=models/$m.yaml
[ -f "$m" ] && spec=$m
tag=$(basename "$spec" .yaml)
STEPS=${STEPS:-12}
EVERY=${EVERY:-4}
DIR=${DIR:-build/ckbench}
OUT=${OUT:-$DIR/logs}
mkdir -p "$DIR" "$OUT" || exit 1
d=$DIR/$tag-trainer
BACKEND=${BACKEND:-cuda}
host_b=$(awk '/MemTotal/ { print $2 * 1024 }' /proc/meminfo)
if [ "$BACKEND" = cuda ]; then
    gpu_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -n 1)
    where="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
    plan="--gpu-mem ${gpu_mib}MiB --host-mem $host_b"
else
    where="cpu backend" plan=
fi
echo "ckpt_bench: $tag, $where, $(nproc) cores, DIR $DIR on $(df -P "$DIR" | awk 'NR == 2 { print $1 }')"
[ -x build/bench/ckpt_bench ] || make build/bench/ckpt_bench > /dev/null || exit 1
build/hzc build "$spec" -o "$d" --backend "$BACKEND" $plan \
    > "$OUT/build.log" 2>&1 || { echo "ckpt_bench: build failed"; tail -n 20 "$OUT/build.log"; exit 1; }
python3 - "$d" "$STEPS" <<'PY'
import array, json, random, sys
d, steps = sys.argv[1], int(sys.argv[2])
p = json.load(open(d + "/generated/plan.json"))
n = p["dims"]["step_tokens"] * (2 * steps + 2) + 1
rng = random.Random(0)
tok = array.array("I", (rng.randrange(p["dims"]["V"]) for _ in range(n)))
head = "{'descr': '<u4', 'fortran_order': False, 'shape': (%d,), }" % n
head += " " * (63 - (10 + len(head)) % 64) + "\n"
with open(d + "/tokens.npy", "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode())
    tok.tofile(f)
PY
train() { "$d/train" --data "$d/tokens.npy" --log-every 1 "$@"; }
loop_s() { sed -n 's/.*step loop \([0-9.]*\) s.*/\1/p' "$1"; }
ck=$DIR/ck
rm -rf "$ck"

train --steps "$STEPS" > "$OUT/nosave.log" 2>&1 || { echo "ckpt_bench: run 1 failed"; tail -n 5 "$OUT/nosave.log"; exit 1; }
echo "1. no saves:        $(grep '^summary' "$OUT/nosave.log")"
train --steps "$STEPS" --out "$ck" > "$OUT/save.log" 2>&1 || { echo "ckpt_bench: run 2 failed"; tail -n 5 "$OUT/save.log"; exit 1; }
save_line=$(grep '^checkpoint:' "$OUT/save.log" | tail -n 1)
echo "2. final save:      $save_line"
last=$ck/step-$(printf %08d "$STEPS")
bytes=$(du -sb "$last" | cut -f1)
train --steps $((STEPS + 1)) --resume "$ck" > "$OUT/resume.log" 2>&1 || { echo "ckpt_bench: run 3 failed"; tail -n 5 "$OUT/resume.log"; exit 1; }
echo "3. resume:          $(grep -E '^(resumed from|ready in)' "$OUT/resume.log" | tr '\n' ' ')"
rm -rf "$ck"
build/bench/ckpt_bench "$DIR" "$bytes" > "$OUT/disk.log" 2>&1
sed 's/^/4. /' "$OUT/disk.log"

free_b=$(df -P -B1 "$DIR" | awk 'NR == 2 { print $4 }')
if [ "$free_b" -gt $((bytes * 21 / 10)) ]; then
    train --steps "$STEPS" --save-every "$EVERY" --keep 1 --out "$ck" > "$OUT/every.log" 2>&1 || echo "ckpt_bench: run 5 failed"
    rm -rf "$ck"
    train --steps "$STEPS" --save-every "$EVERY" --keep 1 --sync-save --out "$ck" > "$OUT/every_sync.log" 2>&1 || echo "ckpt_bench: run 5 (--sync-save) failed"
    rm -rf "$ck"
    echo "5. every $EVERY steps, training on:  $(grep '^summary' "$OUT/every.log")"
    grep '^checkpoint:' "$OUT/every.log" | sed 's/^/     /'
    echo "5. every $EVERY steps, --sync-save: $(grep '^summary' "$OUT/every_sync.log")"
else
    echo "5. skipped: saving every $EVERY steps with --keep 1 needs $((bytes * 21 / 10 / 1000000000)) GB free in $DIR, there are $((free_b / 1000000000)); use a machine with more disk or a smaller MODEL"
fi

# the ratios, from the numbers above
python3 - "$OUT" "$bytes" "$STEPS" "$EVERY" <<'PY' | tee "$OUT/summary.txt"
import os, re, sys
out, nbytes, steps, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def text(name):
    p = os.path.join(out, name)
    return open(p).read() if os.path.exists(p) else ""
disk = dict(re.findall(r"(\w+_GBps) ([0-9.]+)", text("disk.log")))
m = re.findall(r"checkpoint: \S+ \(([0-9.]+) s, ([0-9.]+) GB at ([0-9.]+) GB/s", text("save.log"))
ready = re.search(r"^ready in ([0-9.]+) s", text("resume.log"), re.M)
resumed = re.search(r"resumed from .*\(([0-9.]+) s\)", text("resume.log"))
print("summary: checkpoint %.2f GB" % (nbytes * 1e-9))
if disk and m:
    w, r = float(disk["disk_write_GBps"]), float(disk["disk_read_GBps"])
    rate = float(m[-1][2])
    print("  save %.1f s at %.3f GB/s; disk writes %.3f GB/s: save rate / disk write rate = %.2f (target >= 0.80)"
          % (float(m[-1][0]), rate, w, rate / w))
    if ready and resumed:
        t = nbytes * 1e-9 / r
        print("  resume: read and verified in %.1f s, ready in %.1f s; the disk reads the checkpoint in %.1f s (%.3f GB/s): "
              "ready / disk read time = %.2f (target <= 1.30)" % (float(resumed.group(1)), float(ready.group(1)), t, r,
                                                                  float(ready.group(1)) / t))
def loop(name):
    x = re.search(r"step loop ([0-9.]+) s", text(name))
    return float(x.group(1)) if x else None
base, every_s, sync_s = loop("nosave.log"), loop("every.log"), loop("every_sync.log")
if base and every_s and disk:
    saves = steps // every
    unhidden = every_s - base
    disk_s = saves * nbytes * 1e-9 / float(disk["disk_write_GBps"])
    print("  %d steps: %.1f s without saves, %.1f s saving every %d steps while training (%d saves, %+.1f%%), %s with --sync-save"
          % (steps, base, every_s, every, saves, 100 * unhidden / base, "%.1f s" % sync_s if sync_s else "?"))
    print("  the saves' disk time %.1f s; %.1f s of it not hidden (%.0f%%)" % (disk_s, unhidden, 100 * unhidden / disk_s))
    # a save overlaps only the training after it, up to the next save or the end: the save at
    # step k can hide behind min(EVERY, STEPS - k) steps, the last one behind none
    step_s, one = base / steps, nbytes * 1e-9 / float(disk["disk_write_GBps"])
    cannot = sum(max(0.0, one - min(every, steps - k) * step_s) for k in range(every, steps + 1, every))
    print("  without saves plus the disk time no overlap can hide: %.1f + %.1f = %.1f s; saving while training "
          "took %.2f of it (target <= 1.05)" % (base, cannot, base + cannot, every_s / (base + cannot)))
PY
