#!/bin/sh
# tests/test_robust.sh - the trainer under hostile conditions: --threads outside 1..1024,
# a worker thread that cannot start (HZ_TEST_FAIL_THREAD); flags outside their range (an
# inf as a float), non-finite steps skipped and counted (HZ_TEST_NAN_STEPS), no checkpoint
# of non-finite weights; real signals (finish the step, save, exit 128 + signo; a second
# one exits at once); output paths checked before any work; a FIFO as data, resuming past
# --steps. Run from the repository root after make; HZC=path/to/hzc tests another build.
hzc=${HZC:-build/hzc}
tmp=$(mktemp -d /tmp/hzc-robust.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

$hzc build models/tiny.yaml -o "$tmp/a" --backend cpu 2> "$tmp/build.log" || bad "build tiny: $(cat "$tmp/build.log")"
train="$tmp/a/train"
data=data/tiny_train.bin

# expect_refused NAME PATTERN CMD...: exit 1 within 60 s, PATTERN in stderr, no step trained
expect_refused() {
    name=$1 pattern=$2
    shift 2
    timeout 60 "$@" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    if [ $rc = 1 ] && grep -q -- "$pattern" "$tmp/err" && ! grep -q '^step  *[0-9]*/' "$tmp/out"; then
        ok "$name: exit 1 before any step, says: $(grep -m1 -- "$pattern" "$tmp/err" | cut -c1-120)"
    else
        bad "$name: exit $rc, expected 1 with '$pattern' before any step; stderr: $(head -c 300 "$tmp/err")"
    fi
}

# complete CKDIR: every step-N directory holds all three files
complete() {
    for d in "$1"/step-*; do
        [ -d "$d" ] || continue
        case $d in *.tmp) continue ;; esac
        for f in config.json model.safetensors resume.bin; do [ -s "$d/$f" ] || return 1; done
    done
    return 0
}

# ---- signals ----
# start_bg LOG ERR ARGS...: the trainer in the background ($bg its pid); returns once it
# has logged step 1, so a signal now lands in the step loop
start_bg() {
    log=$1 errf=$2
    shift 2
    "$train" "$@" > "$log" 2> "$errf" &
    bg=$!
    i=0
    while [ $i -lt 600 ] && ! grep -q '^step  *1/' "$log" 2> /dev/null; do
        sleep 0.2
        i=$((i + 1))
    done
}

start_bg "$tmp/sig.log" "$tmp/sig.err" --data $data --steps 1000 --threads 2 --out "$tmp/sig"
kill -TERM $bg
wait $bg
rc=$?
saved=$(ls "$tmp/sig" 2> /dev/null | grep -v '\.tmp$' | tail -n 1)
if [ $rc = 143 ] && grep -q 'SIGTERM: stopping after step' "$tmp/sig.err" && [ -n "$saved" ] && complete "$tmp/sig"; then
    ok "SIGTERM: exit 143, $(grep -m1 SIGTERM "$tmp/sig.err" | cut -c1-90), saved $saved"
else
    bad "SIGTERM: exit $rc, saved '$saved'; stderr: $(cat "$tmp/sig.err")"
fi
n=$(echo "$saved" | sed 's/step-0*//')
last=$(grep '^step  *[0-9]*/' "$tmp/sig.log" | tail -n 1 | sed 's/^step  *\([0-9]*\)\/.*/\1/')
[ -n "$n" ] && [ "$n" = "$last" ] && ok "the checkpoint holds the last logged step ($last): the step in flight was finished" ||
    bad "checkpoint $saved, last logged step $last"
"$train" --data $data --steps $((n + 1)) --threads 2 --resume "$tmp/sig" > "$tmp/sigr.log" 2>&1
rc=$?
[ $rc = 0 ] && grep -q "resumed from .*: $n steps done" "$tmp/sigr.log" && grep -q "^step  *$((n + 1))/$((n + 1))" "$tmp/sigr.log" &&
    ok "the checkpoint saved on SIGTERM resumes: step $((n + 1)) trained" ||
    bad "resume after SIGTERM: exit $rc; $(tail -n 3 "$tmp/sigr.log")"

# under nohup SIGHUP is ignored from the start, and the trainer keeps it so (by design): then
# there is nothing to test, and a trainer started here would run all its steps
hup_ignored=$(awk '/^SigIgn:/ { print substr($2, length($2)) }' /proc/$$/status 2> /dev/null)
case $hup_ignored in
    1|3|5|7|9|b|d|f) echo "skip    SIGHUP: ignored in this environment (nohup), so the trainer ignores it too" ;;
    *)
        start_bg "$tmp/hup.log" "$tmp/hup.err" --data $data --steps 1000 --threads 2
        kill -HUP $bg
        wait $bg
        rc=$?
        [ $rc = 129 ] && grep -q 'SIGHUP: stopping after step .*nothing saved' "$tmp/hup.err" &&
            ok "SIGHUP without --out: exit 129, $(grep -m1 SIGHUP "$tmp/hup.err" | cut -c1-80)" ||
            bad "SIGHUP: exit $rc; stderr: $(cat "$tmp/hup.err")" ;;
esac

# a second signal: at once, and never a step-N directory that looks complete but is not
start_bg "$tmp/two.log" "$tmp/two.err" --data $data --steps 1000 --threads 2 --out "$tmp/two"
kill -TERM $bg
i=0 # the first is taken (its message printed at once) while the step runs on
while [ $i -lt 200 ] && ! grep -q 'signal received' "$tmp/two.err"; do sleep 0.05; i=$((i + 1)); done
kill -TERM $bg
wait $bg
rc=$?
[ $rc = 143 ] && grep -q 'second signal: stopping now' "$tmp/two.err" && complete "$tmp/two" &&
    ok "a second SIGTERM: exit 143 at once, $(ls "$tmp/two" | wc -l) directories left, each step-N complete" ||
    bad "second SIGTERM: exit $rc; $(ls "$tmp/two" | tr '\n' ' '); stderr: $(cat "$tmp/two.err")"

# ---- non-finite values ----
expect_refused "--lr 1e39 (inf as a float)" "--lr expects a number from 0 to 10" $train --data $data --lr 1e39 --warmup 0 --out "$tmp/n" --save-every 1
expect_refused "--grad-clip 1e39" "--grad-clip expects a number from 0 to" $train --data $data --grad-clip 1e39
expect_refused "--eps nan" "--eps expects a number" $train --data $data --eps nan
expect_refused "--attention flash (not a choice)" "--attention flash: expected auto, cudnn or hzc" $train --data $data --attention flash
expect_refused "--weight-decay 1e30" "--weight-decay expects a number" $train --data $data --weight-decay 1e30
expect_refused "--min-lr-ratio 2" "--min-lr-ratio expects a number from 0 to 1" $train --data $data --min-lr-ratio 2
[ -e "$tmp/n" ] && bad "--lr 1e39 left $tmp/n" || ok "--lr 1e39 wrote nothing"

# steps 2 and 3 diverge (injected): skipped whole, so the masters after 3 steps are those
# after step 1, and the messages count steps as the log does
"$train" --data $data --steps 1 --threads 2 --save-raw "$tmp/one.raw" > "$tmp/one.log" 2>&1
HZ_TEST_NAN_STEPS=2-3 "$train" --data $data --steps 3 --threads 2 --save-raw "$tmp/skip.raw" > "$tmp/skip.log" 2> "$tmp/skip.err"
rc=$?
[ $rc = 0 ] && grep -q '^train: warning: step 2: the loss is nan .*update skipped (1 in a row' "$tmp/skip.err" &&
    grep -q '^train: warning: step 3: .*(2 in a row' "$tmp/skip.err" ||
    bad "non-finite steps 2-3: exit $rc; stderr: $(cat "$tmp/skip.err")"
[ $rc = 0 ] && grep -q 'step 2:' "$tmp/skip.err" && ok "non-finite steps reported 1-based and skipped: $(head -n 1 "$tmp/skip.err" | cut -c1-100)"
cmp -s "$tmp/one.raw" "$tmp/skip.raw" && ok "skipped steps leave the masters untouched: 1 step + 2 skipped = 1 step, bit for bit" ||
    bad "skipped steps changed the masters"
# --max-bad-steps 1: the first bad step ends the run
HZ_TEST_NAN_STEPS=2 "$train" --data $data --steps 3 --threads 2 --max-bad-steps 1 > "$tmp/one_bad.log" 2> "$tmp/one_bad.err"
rc=$?
[ $rc = 1 ] && grep -q '1 steps in a row (2 to 2)' "$tmp/one_bad.err" &&
    ok "--max-bad-steps 1: the first bad step stops the run (exit 1)" ||
    bad "--max-bad-steps 1: exit $rc; $(cat "$tmp/one_bad.err")"
HZ_TEST_NAN_STEPS=2-99 "$train" --data $data --steps 10 --threads 2 --out "$tmp/div" --save-every 1 > "$tmp/div.log" 2> "$tmp/div.err"
rc=$?
[ $rc = 1 ] && grep -q '3 steps in a row (2 to 4) had a non-finite loss' "$tmp/div.err" && [ ! -e "$tmp/div/step-00000004" ] &&
    complete "$tmp/div" && ok "3 non-finite steps in a row stop the run (exit 1), no checkpoint of the last: $(ls "$tmp/div" | tr '\n' ' ')" ||
    bad "divergence stop: exit $rc; $(ls "$tmp/div" | tr '\n' ' '); $(cat "$tmp/div.err")"
# --steps 0 from fresh weights with --out: the initial weights saved as step 0, resumable
"$train" --data $data --steps 0 --threads 2 --out "$tmp/s0" > "$tmp/s0.log" 2> "$tmp/s0.err"
rc=$?
"$train" --data $data --steps 1 --threads 2 --resume "$tmp/s0" > "$tmp/s0r.log" 2>&1
rc2=$?
[ $rc = 0 ] && [ $rc2 = 0 ] && complete "$tmp/s0" && [ -f "$tmp/s0/step-00000000/model.safetensors" ] &&
    grep -q 'initial weights are saved' "$tmp/s0.err" && grep -q 'resumed from .*0 steps done' "$tmp/s0r.log" &&
    ok "--steps 0 --out: the initial weights saved as step 0, and --resume trains on from them" ||
    bad "--steps 0 --out: exit $rc/$rc2; $(ls "$tmp/s0" 2> /dev/null | tr '\n' ' '); $(cat "$tmp/s0.err"); $(tail -n 2 "$tmp/s0r.log")"
# weights already non-finite (an inf in --init-raw): never saved
"$train" --data $data --steps 0 --threads 2 --save-raw "$tmp/init.raw" > /dev/null 2>&1
cp "$tmp/init.raw" "$tmp/inf.raw"
printf '\000\000\200\177' | dd of="$tmp/inf.raw" bs=1 seek=4000 conv=notrunc 2> /dev/null
"$train" --data $data --steps 2 --threads 2 --init-raw "$tmp/inf.raw" --out "$tmp/inf" --save-every 1 > "$tmp/inf.log" 2> "$tmp/inf.err"
rc=$?
[ $rc = 1 ] && grep -q 'step 1: the loss is' "$tmp/inf.err" && grep -q 'some weights are not finite' "$tmp/inf.err" &&
    [ -z "$(ls "$tmp/inf" 2> /dev/null)" ] &&
    ok "an inf weight: step 1 reported, no checkpoint written: $(grep -m1 'not finite' "$tmp/inf.err" | cut -c1-90)" ||
    bad "inf weight: exit $rc; $(ls "$tmp/inf" 2> /dev/null | tr '\n' ' '); $(cat "$tmp/inf.err")"
# without clipping the updates run before the norm is known: stop at once, no checkpoint
sed 's/grad_clip: 1.0/grad_clip: 0/' models/tiny.yaml > "$tmp/noclip.yaml"
$hzc build "$tmp/noclip.yaml" -o "$tmp/nc" --backend cpu 2> /dev/null
HZ_TEST_NAN_STEPS=2 "$tmp/nc/train" --data $data --steps 3 --threads 2 --out "$tmp/ncd" --save-every 1 > "$tmp/nc.log" 2> "$tmp/nc.err"
rc=$?
[ $rc = 1 ] && grep -q 'step 2: .*without gradient clipping' "$tmp/nc.err" && [ ! -e "$tmp/ncd/step-00000002" ] &&
    ok "no clipping: a non-finite step stops the run at once, without a checkpoint" ||
    bad "no clipping, non-finite step: exit $rc; $(ls "$tmp/ncd" | tr '\n' ' '); $(cat "$tmp/nc.err")"

# ---- threads ----
expect_refused "--threads 2147483648" "--threads expects an integer from 1 to 1024" $train --data $data --threads 2147483648
expect_refused "--threads 100000" "--threads expects an integer from 1 to 1024" $train --data $data --threads 100000
expect_refused "--threads 0" "--threads expects an integer from 1 to 1024" $train --data $data --threads 0
HZ_TEST_FAIL_THREAD=2 timeout 120 "$train" --data $data --steps 3 --threads 3 > "$tmp/thr.log" 2> "$tmp/thr.err"
rc=$?
[ $rc = 1 ] && grep -q 'cannot start worker thread 3 of 3' "$tmp/thr.err" &&
    ok "a worker thread that cannot start: exit 1, $(cut -c1-100 "$tmp/thr.err")" ||
    bad "failed pthread_create: exit $rc (124: hung); stderr: $(cat "$tmp/thr.err")"

# ---- output paths: checked before the first step, no junk left ----
: > "$tmp/file"
expect_refused "--out under a file" "--out $tmp/file/ck: cannot write" $train --data $data --steps 1 --out "$tmp/file/ck"
expect_refused "--dump-logits into a missing directory" "--dump-logits $tmp/nodir/l.npy: cannot write" $train --data $data --val-data data/tiny_val.bin --steps 1 --dump-logits "$tmp/nodir/l.npy"
expect_refused "--save-raw into a missing directory" "--save-raw $tmp/nodir/x.raw: cannot write" $train --data $data --steps 1 --save-raw "$tmp/nodir/x.raw"
expect_refused "--trace into a missing directory" "--trace $tmp/nodir/t.json: cannot write" $train --data $data --steps 1 --trace "$tmp/nodir/t.json"
expect_refused "--save-raw is a directory" "--save-raw $tmp: cannot write" $train --data $data --steps 1 --save-raw "$tmp"
mkdir "$tmp/probe"
expect_refused "a bad --dump-logits with a good --out and --save-raw" "--dump-logits" $train --data $data --steps 1 --out "$tmp/probe/ck" --save-raw "$tmp/probe/raw" --dump-logits "$tmp/nodir/l.npy" --val-data data/tiny_val.bin
left=$(find "$tmp/probe" | sort | tr '\n' ' ')
[ "$left" = "$tmp/probe $tmp/probe/ck " ] && ok "the probes leave only --out's (empty) directory: no probe files" ||
    bad "the probes left: $left"

# ---- data and resume ----
mkfifo "$tmp/fifo"
expect_refused "a FIFO as --data" "not a regular file" $train --data "$tmp/fifo" --steps 1
"$train" --data $data --steps 2 --threads 2 --out "$tmp/past" > /dev/null 2>&1
"$train" --data $data --steps 2 --threads 2 --resume "$tmp/past" --out "$tmp/past" > "$tmp/past.log" 2> "$tmp/past.err"
rc=$?
[ $rc = 0 ] && grep -q 'nothing to train: the checkpoint has 2 steps done and --steps is 2' "$tmp/past.err" &&
    grep -q '^summary: no steps trained' "$tmp/past.log" && ! grep -q 'final loss' "$tmp/past.log" && ! grep -q '^checkpoint:' "$tmp/past.log" &&
    ok "resuming at --steps: says nothing was trained, writes no checkpoint: $(grep '^summary' "$tmp/past.log")" ||
    bad "resume past --steps: exit $rc; $(cat "$tmp/past.err") $(grep '^summary' "$tmp/past.log")"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
