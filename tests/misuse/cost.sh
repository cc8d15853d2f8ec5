#!/usr/bin/env bash
# tests/misuse/cost.sh [RUNS]: what the hardened build costs, in time and
# RSS, on a few of bench/'s programs (their --quick parameters), against the
# default build.  Runs alternate between the two; medians are printed as a
# Markdown table.
set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUNS=${1:-3}
cd "$ROOT"
make -s -C bench >/dev/null
DEF=build/libgomalloc.so
HARD=build/libgomalloc-hardened.so
BENCHES=(
    "churn-small|churn min=8 max=512 window=10000 iters=600K"
    "churn-mixed|churn min=8 max=32K window=5000 iters=200K"
    "compiler|compiler nodes=50K modules=4"
    "larson-t2|larson threads=2 slots=10000 ops=400K"
    "prodcons-t2|prodcons threads=2 items=400K"
    "large|large min=64K max=16M live=4 iters=40"
    "realloc|realloc bufs=4 step=1000 max=2M rounds=1"
    "frag|frag total=128M pct=90"
)
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# one LIB CMD...: prints "wall_s maxrss_kb"
one() {
    local lib=$1
    shift
    build/bench/measure -t 120 -p "$lib" -- "$@" 2>/dev/null | awk '
        /^status=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); m[kv[1]] = kv[2] }
                     print m["wall_s"], m["maxrss_kb"] }'
}
echo "| benchmark | default s | hardened s | time x | default RSS MiB | hardened RSS MiB | RSS x |"
echo "|---|---|---|---|---|---|---|"
for entry in "${BENCHES[@]}"; do
    name=${entry%%|*}
    cmd=${entry#*|}
    : >/tmp/gm_cost_d.$$
    : >/tmp/gm_cost_h.$$
    for _ in $(seq "$RUNS"); do
        one "$DEF" build/bench/$cmd >>/tmp/gm_cost_d.$$
        one "$HARD" build/bench/$cmd >>/tmp/gm_cost_h.$$
    done
    dt=$(cut -d' ' -f1 /tmp/gm_cost_d.$$ | median)
    ht=$(cut -d' ' -f1 /tmp/gm_cost_h.$$ | median)
    dr=$(cut -d' ' -f2 /tmp/gm_cost_d.$$ | median)
    hr=$(cut -d' ' -f2 /tmp/gm_cost_h.$$ | median)
    awk -v n="$name" -v dt="$dt" -v ht="$ht" -v dr="$dr" -v hr="$hr" 'BEGIN {
        printf "| %s | %.3f | %.3f | %.2f | %.1f | %.1f | %.2f |\n",
               n, dt, ht, ht / dt, dr / 1024, hr / 1024, hr / dr }'
done
rm -f /tmp/gm_cost_d.$$ /tmp/gm_cost_h.$$
