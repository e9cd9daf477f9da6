#!/bin/sh
# tests/test_ckpt_async.sh - saving while training goes on (runtime/ckpt_async.c): a run
# whose --save-every checkpoints are written while the next steps train gives the same
# checkpoints, byte for byte, and the same losses as a run with --sync-save, also when the
# save is slowed (HZ_TEST_SAVE_DELAY_MS) so that the next step's updates wait for it; a kill
# during such a save leaves no step-N that looks complete, and --resume goes on from the
# one before, to the same bytes. Run from the repository root after make.
hzc=build/hzc
tmp=$(mktemp -d /tmp/hzc-ckpt-async.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

# a model whose resume.bin spans several of the engine's 8 MiB chunks (1.7M parameters)
sed -e 's/^name: tiny/name: wide/' -e 's/hidden_size: 128/hidden_size: 256/' \
    -e 's/num_layers: 4/num_layers: 2/' -e 's/ffn_size: 384/ffn_size: 768/' \
    -e 's/seq_len: 128/seq_len: 64/' -e 's/tokens_per_step: 2048 .*/tokens_per_step: 256/' \
    -e 's/tokens_per_micro_batch: 1024 .*/tokens_per_micro_batch: 128/' models/tiny.yaml > "$tmp/wide.yaml"
$hzc build "$tmp/wide.yaml" -o "$tmp/b" --backend cpu > "$tmp/build.log" 2>&1 || bad "build: $(tail -n 3 "$tmp/build.log")"
run() { "$tmp/b/train" --data data/tiny_train.bin --threads 2 "$@"; }
losses() { grep '^step ' "$1" | cut -d'|' -f1-3; }
same_dirs() { # same_dirs A B: every step-N of A in B with the same files, byte for byte
    for d in "$1"/step-*; do
        for f in "$d"/*; do cmp -s "$f" "$2/${d##*/}/${f##*/}" || { echo "${d##*/}/${f##*/}"; return 1; }
        done
    done
    [ "$(ls "$1" | tr '\n' ' ')" = "$(ls "$2" | tr '\n' ' ')" ] || { echo "listing: $(ls "$2" | tr '\n' ' ')"; return 1; }
}

run --steps 4 --save-every 1 --sync-save --out "$tmp/sync" --save-raw "$tmp/sync.raw" > "$tmp/sync.log" 2>&1 ||
    bad "--sync-save run: $(tail -n 3 "$tmp/sync.log")"
rb=$(wc -c < "$tmp/sync/step-00000001/resume.bin")
[ "$rb" -gt 8388608 ] && ok "resume.bin of $rb bytes: more than one of the engine's chunks" ||
    bad "resume.bin of $rb bytes: too small to test chunk by chunk gating"

# saves in the background, at disk speed and slowed to 4 s a chunk (longer than a step's
# forward and backward here, so the updates of the next step wait for the save)
for delay in 0 4000; do
    HZ_TEST_SAVE_DELAY_MS=$delay run --steps 4 --save-every 1 --out "$tmp/async$delay" --save-raw "$tmp/async$delay.raw" \
        > "$tmp/async$delay.log" 2>&1 || bad "background saves (delay $delay ms): $(tail -n 3 "$tmp/async$delay.log")"
    n=$(grep -c 'written while training' "$tmp/async$delay.log")
    diff=$(same_dirs "$tmp/sync" "$tmp/async$delay")
    [ "$n" = 4 ] && [ -z "$diff" ] &&
        ok "4 checkpoints written while training (chunks delayed $delay ms) equal --sync-save's byte for byte" ||
        bad "background saves (delay $delay ms): $n written while training; differs: $diff"
    [ -n "$(losses "$tmp/sync.log")" ] && [ "$(losses "$tmp/sync.log")" = "$(losses "$tmp/async$delay.log")" ] &&
        cmp -s "$tmp/sync.raw" "$tmp/async$delay.raw" &&
        ok "the same losses, norms and final masters (delay $delay ms): $(losses "$tmp/async$delay.log" | tail -n 1)" ||
        bad "losses or masters differ (delay $delay ms): $(losses "$tmp/async$delay.log" | tr '\n' ' ')"
done
grep -q 'step-00000001 .*written while training' "$tmp/async4000.log" &&
    [ "$(grep -n 'step     2/4' "$tmp/async4000.log" | cut -d: -f1)" -lt "$(grep -n 'step-00000001 ' "$tmp/async4000.log" | cut -d: -f1)" ] &&
    ok "step 2 trained while step 1's checkpoint was written" ||
    bad "no overlap seen: $(grep -E '^(step|checkpoint)' "$tmp/async4000.log" | tr '\n' ' ')"

# kill -9 while step 2's checkpoint is written: step-00000002 never looks complete, and a
# resume from step 1 gives step 2 to 4 as the uninterrupted run wrote them
HZ_TEST_SAVE_DELAY_MS=4000 run --steps 4 --save-every 1 --out "$tmp/kill" > "$tmp/kill.log" 2>&1 &
pid=$!
i=0
while [ ! -d "$tmp/kill/step-00000002.tmp" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
sleep 1
kill -9 $pid
wait $pid 2> /dev/null
[ -d "$tmp/kill/step-00000002.tmp" ] && [ ! -e "$tmp/kill/step-00000002" ] && cmp -s "$tmp/kill/step-00000001/resume.bin" "$tmp/sync/step-00000001/resume.bin" &&
    ok "kill -9 during a background save: only step-00000002.tmp, step-00000001 whole: $(ls "$tmp/kill" | tr '\n' ' ')" ||
    bad "kill -9 during a background save left: $(ls "$tmp/kill" | tr '\n' ' ')"
run --steps 4 --save-every 1 --resume "$tmp/kill" --out "$tmp/kill" > "$tmp/resume.log" 2>&1
diff=$(same_dirs "$tmp/sync" "$tmp/kill")
grep -q "resumed from $tmp/kill/step-00000001: 1 steps done" "$tmp/resume.log" && [ -z "$diff" ] &&
    ok "--resume after the kill goes on from step 1; steps 2-4 saved as the uninterrupted run's" ||
    bad "resume after the kill: $(grep -E 'resumed|error' "$tmp/resume.log"); differs: $diff"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
