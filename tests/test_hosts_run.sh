#!/bin/sh
# tests/test_hosts_run.sh - one run over several hosts (hzc build --hosts H; docs/plan.md
# "Several hosts"), as H trainer processes on this machine meeting over loopback TCP with
# torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), on the cpu backend:
# 2 hosts of 1 GPU train bit-identically to one host of 2 GPUs (the same sums in the same
# order) and every host ends with the same masters; 2 hosts of 2 GPUs match one host of 4
# within fp32's summation order; host 0 alone writes checkpoints, which resume on 2 hosts
# exactly and on one host; a signal to one host stops all after the same step; each bad
# start is refused with one message (no WORLD_SIZE, another WORLD_SIZE, RANK out of range,
# LOCAL_RANK, no MASTER_PORT, a host 0 that never comes, a host that differs, sampling) and a
# host that dies takes the others down saying which. Run from the repository root after make.
hzc=build/hzc
tmp=$(mktemp -d /tmp/hzc-hosts.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

# 4 micro-batches of 1024 tokens a step: 2 on each host's one GPU, or 1 on each of 2 GPUs
STEP=shape.tokens_per_step=4096
STEPS=6
export HZ_HOSTS_TIMEOUT=30

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
build() { # NAME [FLAGS...]
    n=$1
    shift
    $hzc build models/tiny.yaml -o "$tmp/$n" --backend cpu $STEP "$@" > "$tmp/$n.build" 2>&1 ||
        bad "$n: build: $(tail -n 3 "$tmp/$n.build")"
}
one() { # NAME TRAINER ARGS...: one process (a one-host trainer); step lines in NAME.loss
    n=$1 d=$2
    shift 2
    "$tmp/$d/train" --data data/tiny_train.bin --threads 2 --seed 5 --save-raw "$tmp/$n.raw" "$@" \
        > "$tmp/$n.log" 2>&1 || bad "$n: trainer failed: $(tail -n 3 "$tmp/$n.log")"
    step_lines "$tmp/$n.log" > "$tmp/$n.loss"
}
# hosts NAME TRAINER H ARGS...: H processes, RANK 0..H-1, on one port; host h's log, masters
# and step lines in NAME-h.*; the exit statuses in NAME.rc ("0 0" when both trained)
hosts() {
    n=$1 d=$2 h=$3
    shift 3
    port=$(free_port) pids=
    for r in $(seq 0 $((h - 1))); do
        RANK=$r WORLD_SIZE=$h MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$tmp/$d/train" \
            --data data/tiny_train.bin --threads 1 --seed 5 --save-raw "$tmp/$n-$r.raw" "$@" \
            > "$tmp/$n-$r.log" 2>&1 &
        pids="$pids $!"
    done
    rcs=
    for p in $pids; do
        wait "$p"
        rcs="$rcs $?"
    done
    echo $rcs > "$tmp/$n.rc"
    for r in $(seq 0 $((h - 1))); do
        step_lines "$tmp/$n-$r.log" > "$tmp/$n-$r.loss"
    done
}
same() { same_run "$tmp/$1" "$tmp/$2"; }
trained() { [ "$(cat "$tmp/$1.rc")" = "$2" ] || bad "$1: exit statuses $(cat "$tmp/$1.rc"), expected $2: $(tail -n 2 "$tmp/$1-0.log" "$tmp/$1-1.log")"; }

# ---- 2 hosts of one GPU: the same run as one host of 2 GPUs ----
build h2 --hosts 2
build g2 --gpus 2
build g1
one g2 g2 --steps $STEPS
hosts h2 h2 2 --steps $STEPS
trained h2 "0 0"
grep -q '^hosts: host 0 of 2 joined' "$tmp/h2-0.log" && grep -q '^hosts: host 1 of 2 joined (connected to host 0)' "$tmp/h2-1.log" &&
    ok "start-up: $(grep -m1 '^hosts: host 1' "$tmp/h2-1.log")" || bad "start-up lines: $(grep -h '^hosts' "$tmp/h2-0.log" "$tmp/h2-1.log")"
same h2-0 g2 && ok "2 hosts of 1 GPU, $STEPS steps: masters, losses and norms bit-identical to one host of 2 GPUs" ||
    bad "2 hosts against one host of 2 GPUs: $(diff "$tmp/g2.loss" "$tmp/h2-0.loss" | head -n 3)"
same h2-0 h2-1 && ok "host 0 and host 1 end with the same masters and print the same losses" ||
    bad "the hosts differ: $(diff "$tmp/h2-0.loss" "$tmp/h2-1.loss" | head -n 3)"
s1=$(store_bytes "$tmp/h2-1.log") s0=$(store_bytes "$tmp/g2.log")
[ -n "$s1" ] && [ "${s1% *}" = "${s1#* }" ] && [ "$s1" = "$s0" ] &&
    ok "each host's store planned = measured, one host's whole store ($s1)" || bad "host stores: '$s1' against '$s0'"

# ---- 2 hosts of 2 GPUs against one host of 4 ----
build h2g2 --hosts 2 --gpus 2
build g4 --gpus 4
one g4 g4 --steps $STEPS
hosts h2g2 h2g2 2 --steps $STEPS
trained h2g2 "0 0"
same h2g2-0 h2g2-1 && ok "2 hosts of 2 GPUs: both hosts' masters and losses the same" || bad "2 x 2: the hosts differ"
python3 - "$tmp/g4" "$tmp/h2g2-0" > "$tmp/h2g2.cmp" <<'EOF'
import struct, sys
def raw(p):
    d = open(p + ".raw", "rb").read()
    return struct.unpack("<%df" % (len(d) // 4), d)
def loss(p):
    return [float(l.split("|")[0].split()[1]) for l in open(p + ".loss")]
a, b = raw(sys.argv[1]), raw(sys.argv[2])
la, lb = loss(sys.argv[1]), loss(sys.argv[2])
m = max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) else float("inf")
l = max(abs(x - y) / x for x, y in zip(la, lb)) if len(la) == len(lb) > 0 else float("inf")
print("losses within %.3g relative (tol 1e-5), masters within %.3g (tol 1e-3)" % (l, m))
sys.exit(0 if l <= 1e-5 and m <= 1e-3 else 1)
EOF
[ $? = 0 ] && ok "2 hosts of 2 GPUs against one host of 4 ((g0 + g1) + (g2 + g3) against in rank order): $(cat "$tmp/h2g2.cmp")" ||
    bad "2 x 2 against 4: $(cat "$tmp/h2g2.cmp")"

# ---- checkpoints: host 0 writes them; they resume on 2 hosts exactly and on one ----
hosts ck h2 2 --steps 3 --out "$tmp/ckpt"
trained ck "0 0"
grep -q "^hosts: host 1 writes no checkpoints" "$tmp/ck-1.log" && [ -d "$tmp/ckpt/step-00000003" ] &&
    ok "host 0 writes the checkpoint; host 1 says it writes none" || bad "checkpoints: $(grep -h 'hosts:\|saved' "$tmp/ck-0.log" "$tmp/ck-1.log")"
hosts rs h2 2 --steps $STEPS --resume "$tmp/ckpt"
trained rs "0 0"
cmp -s "$tmp/rs-0.raw" "$tmp/h2-0.raw" && tail -n 3 "$tmp/h2-0.loss" | cmp -s - "$tmp/rs-0.loss" &&
    cmp -s "$tmp/rs-1.raw" "$tmp/h2-1.raw" &&
    ok "2 hosts: 3 steps + resume + 3 steps bit-identical to $STEPS steps, on both hosts" || bad "2 hosts: resume is not exact"
one g1-from-h g1 --steps $STEPS --resume "$tmp/ckpt"
python3 - "$tmp/h2-0.raw" "$tmp/g1-from-h.raw" > "$tmp/g1h.cmp" <<'EOF'
import struct, sys
a, b = (struct.unpack("<%df" % (len(d) // 4), d) for d in (open(p, "rb").read() for p in sys.argv[1:]))
m = max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) else float("inf")
print("masters within %.3g (tol 1e-3)" % m)
sys.exit(0 if m <= 1e-3 else 1)
EOF
[ $? = 0 ] && ok "the 2-host checkpoint resumed on one host of one GPU: $(cat "$tmp/g1h.cmp")" || bad "2-host checkpoint on one host: $(cat "$tmp/g1h.cmp")"

# ---- a signal to one host stops every host after the same step ----
port=$(free_port)
RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$tmp/h2/train" --data data/tiny_train.bin \
    --threads 1 --steps 100000 --log-every 1 > "$tmp/sig-0.log" 2>&1 &
p0=$!
RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$tmp/h2/train" --data data/tiny_train.bin \
    --threads 1 --steps 100000 --log-every 1 > "$tmp/sig-1.log" 2>&1 &
p1=$!
i=0
while [ $i -lt 300 ] && ! grep -q '^step  *3/' "$tmp/sig-1.log"; do sleep 0.1; i=$((i + 1)); done
kill -TERM $p1
wait $p0
r0=$?
wait $p1
r1=$?
l0=$(grep '^step ' "$tmp/sig-0.log" | tail -n 1 | cut -d'|' -f1)
l1=$(grep '^step ' "$tmp/sig-1.log" | tail -n 1 | cut -d'|' -f1)
[ -n "$l0" ] && [ "$l0" = "$l1" ] && grep -q 'stopping after step' "$tmp/sig-0.log" &&
    ok "SIGTERM to host 1: both hosts stop after $l0(exits $r0 $r1)" ||
    bad "signal: host 0 '$l0' ($r0), host 1 '$l1' ($r1): $(tail -n 2 "$tmp/sig-0.log")"

# ---- a stray connection on host 0's port (a port scan) is closed, the run goes on ----
port=$(free_port)
RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$tmp/h2/train" --data data/tiny_train.bin --threads 1 --steps 2 > "$tmp/st-0.log" 2>&1 &
p0=$!
python3 -c '
import socket, sys, time
for _ in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
        break
    except OSError:
        time.sleep(0.1)
s.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"x" * 8)
s.close()' "$port"
RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$tmp/h2/train" --data data/tiny_train.bin --threads 1 --steps 2 > "$tmp/st-1.log" 2>&1
r1=$?
wait $p0
r0=$?
[ $r0 = 0 ] && [ $r1 = 0 ] && grep -q "^train: note: host 0: a connection on port $port that is not a trainer was closed" "$tmp/st-0.log" &&
    ok "a stray connection on host 0's port: closed with a note, both hosts trained" ||
    bad "a stray connection: exits $r0 $r1: $(tail -n 2 "$tmp/st-0.log")"

# ---- bad starts ----
expect_fail "no WORLD_SIZE" "^train: error: this trainer's plan splits each step over 2 hosts: start one trainer on each with RANK" \
    env -u WORLD_SIZE "$tmp/h2/train" --data data/tiny_train.bin --steps 1
expect_fail "WORLD_SIZE=3 for a 2-host plan" "^train: error: WORLD_SIZE=3, and this trainer's plan is for 2 hosts: build it with hzc build --hosts 3" \
    env WORLD_SIZE=3 RANK=0 MASTER_PORT=1 "$tmp/h2/train" --data data/tiny_train.bin --steps 1
expect_fail "WORLD_SIZE=2 for a one-host plan" "^train: error: WORLD_SIZE=2, and this trainer's plan is for 1 host: build it with hzc build --hosts 2" \
    env WORLD_SIZE=2 RANK=0 MASTER_PORT=1 "$tmp/g1/train" --data data/tiny_train.bin --steps 1
expect_fail "RANK=2 of 2" "^train: error: RANK=2 of WORLD_SIZE=2 hosts: RANK is 0 to 1" \
    env WORLD_SIZE=2 RANK=2 MASTER_PORT=1 "$tmp/h2/train" --data data/tiny_train.bin --steps 1
expect_fail "RANK=x" "^train: error: RANK=x: expected a whole number" \
    env WORLD_SIZE=2 RANK=x MASTER_PORT=1 "$tmp/h2/train" --data data/tiny_train.bin --steps 1
expect_fail "LOCAL_RANK=1" "^train: error: LOCAL_RANK=1: the trainer is one process a host" \
    env WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 "$tmp/h2/train" --data data/tiny_train.bin --steps 1
expect_fail "no MASTER_PORT" "^train: error: MASTER_PORT (the port host 0 listens on) is not set" \
    env -u MASTER_PORT WORLD_SIZE=2 RANK=0 "$tmp/h2/train" --data data/tiny_train.bin --steps 1
expect_fail "host 1 without MASTER_ADDR" "^train: error: RANK=1: MASTER_ADDR (host 0's address) is not set" \
    env -u MASTER_ADDR WORLD_SIZE=2 RANK=1 MASTER_PORT=1 "$tmp/h2/train" --data data/tiny_train.bin --steps 1
expect_fail "host 1 whose host 0 never starts" "^train: error: host 1: cannot reach host 0 at 127.0.0.1:[0-9]* in 2 s" \
    env HZ_HOSTS_TIMEOUT=2 WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$(free_port) "$tmp/h2/train" --data data/tiny_train.bin --steps 1
expect_fail "host 0 whose host 1 never starts" "^train: error: host 0: 0 of the other 1 hosts joined in 2 s" \
    env HZ_HOSTS_TIMEOUT=2 WORLD_SIZE=2 RANK=0 MASTER_PORT=$(free_port) "$tmp/h2/train" --data data/tiny_train.bin --steps 1
expect_fail "--sample-every on 2 hosts" "^train: error: --sample-every on a plan of 2 hosts" \
    env WORLD_SIZE=2 RANK=0 MASTER_PORT=1 "$tmp/h2/train" --data data/tiny_train.bin --steps 1 --sample-every 1 --sample-prompt hi
expect_fail "train --gpus 2 (torchrun's habit)" "^train: error: --gpus: this trainer's GPUs and hosts are its plan's (1 GPU a host, 2 hosts)" \
    "$tmp/h2/train" --data data/tiny_train.bin --steps 1 --gpus 2
# a host with another seed: both refuse, naming it
port=$(free_port)
RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$tmp/h2/train" --data data/tiny_train.bin --steps 2 --seed 5 > "$tmp/ds-0.log" 2>&1 &
p0=$!
RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$tmp/h2/train" --data data/tiny_train.bin --steps 2 --seed 6 > "$tmp/ds-1.log" 2>&1
r1=$?
wait $p0
r0=$?
[ $r0 = 1 ] && [ $r1 = 1 ] && grep -q "^train: error: host 1 has --seed 6 where host 0 has 5" "$tmp/ds-0.log" &&
    grep -q "^train: error: host 1 has --seed 6 where host 0 has 5" "$tmp/ds-1.log" &&
    ok "a host with another --seed: both stop: $(grep -m1 error "$tmp/ds-0.log" | cut -c1-110)" ||
    bad "another seed: exits $r0 $r1: $(tail -n 1 "$tmp/ds-0.log") / $(tail -n 1 "$tmp/ds-1.log")"
# a host with another trainer (another micro-batch split): refused before the backends meet
build h2b --hosts 2 shape.tokens_per_micro_batch=2048
port=$(free_port)
RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$tmp/h2/train" --data data/tiny_train.bin --steps 2 > "$tmp/dp-0.log" 2>&1 &
p0=$!
RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$tmp/h2b/train" --data data/tiny_train.bin --steps 2 > "$tmp/dp-1.log" 2>&1
r1=$?
wait $p0
r0=$?
[ $r0 = 1 ] && [ $r1 = 1 ] && grep -q "^train: error: host 1 has plan digest" "$tmp/dp-0.log" &&
    grep -q "^train: error: host 1 has plan digest" "$tmp/dp-1.log" && ! grep -q '^setting up: host store' "$tmp/dp-1.log" &&
    ok "a host with another plan: both stop before setting up: $(grep -m1 error "$tmp/dp-0.log" | cut -c1-90)" ||
    bad "another plan: exits $r0 $r1: $(tail -n 1 "$tmp/dp-0.log") / $(tail -n 1 "$tmp/dp-1.log")"
# a host that dies mid-run takes the other down, naming it
port=$(free_port)
RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$tmp/h2/train" --data data/tiny_train.bin --threads 1 --steps 100000 --log-every 1 > "$tmp/die-0.log" 2>&1 &
p0=$!
RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$tmp/h2/train" --data data/tiny_train.bin --threads 1 --steps 100000 --log-every 1 > "$tmp/die-1.log" 2>&1 &
p1=$!
i=0
while [ $i -lt 300 ] && ! grep -q '^step  *2/' "$tmp/die-1.log"; do sleep 0.1; i=$((i + 1)); done
kill -KILL $p1
{ wait $p1; } 2> /dev/null
wait $p0
r0=$?
[ $r0 = 1 ] && grep -q "^train: error: host 1: the connection closed: that host stopped" "$tmp/die-0.log" &&
    ok "host 1 killed mid-run: host 0 stops, exit 1: $(grep -m1 'host 1:' "$tmp/die-0.log" | cut -c1-100)" ||
    bad "a dead host: host 0 exit $r0: $(tail -n 2 "$tmp/die-0.log")"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
