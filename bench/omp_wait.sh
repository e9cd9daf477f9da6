#!/bin/sh
# bench/omp_wait.sh [ROUNDS] - the cpu trainer's step time by how its OpenMP threads wait,
# on an idle machine and beside one competing busy loop; bench/NOTES.md has the numbers.
#   Settings, run in turn each round: the trainer as shipped (GOMP_SPINCOUNT=1000 unless the
#   environment says otherwise; runtime/cpu/omp_wait.c), libgomp's default spin count
#   (GOMP_SPINCOUNT=300000, what the trainer did before), OMP_WAIT_POLICY=passive, and
#   GOMP_SPINCOUNT=3000 (SETTINGS overrides the list). Prints each run, then the best and the
#   median step wall time of each setting (other work on a shared machine only slows a run,
#   so the best is the least disturbed). Needs build/hzc and data/tiny_train.bin (make).
cd "$(dirname "$0")/.." || exit 1
ROUNDS=${1:-5}
STEPS=${STEPS:-8}
OUT=${OUT:-build/bench-omp}
mkdir -p "$OUT"
build/hzc build models/tiny.yaml -o "$OUT/tiny" --backend cpu > "$OUT/build.log" 2>&1 || {
    echo "omp_wait.sh: hzc build failed: $OUT/build.log"; exit 1; }

# one run's mean step wall time in ms (the profile line averages the steps after the first)
step_ms() {
    env "$@" "$OUT/tiny/train" --data data/tiny_train.bin --steps "$STEPS" --log-every 1000 2>&1 |
        sed -n 's/.*step wall \([0-9.]*\) ms.*/\1/p'
}

settings=${SETTINGS:-shipped GOMP_SPINCOUNT=300000 OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=3000}
: > "$OUT/runs.txt"
echo "$(nproc) cores, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for s in $settings; do
        case $s in shipped) set -- ;; *) set -- "$s" ;; esac
        idle=$(step_ms "$@")
        sh -c 'while :; do :; done' &
        busy=$!
        sleep 0.5
        loaded=$(step_ms "$@")
        kill "$busy"
        line="$s idle $idle loaded $loaded load $(cut -d' ' -f1 /proc/loadavg)"
        echo "$line"
        echo "$line" >> "$OUT/runs.txt"
    done
    r=$((r + 1))
done
# best / median of column $2 of setting $1's runs
stat() {
    awk -v s="$1" -v c="$2" '$1 == s { print $c }' "$OUT/runs.txt" | sort -n |
        awk '{ a[NR] = $1 } END { printf "%s / %s", a[1], a[int((NR + 1) / 2)] }'
}
echo "step wall ms, best / median of $ROUNDS rounds; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $settings; do
    echo "  $s: idle $(stat "$s" 3), one busy core $(stat "$s" 5)"
done
