#!/usr/bin/env bash
# gomalloc benchmarks: gomalloc side by side with glibc, jemalloc, tcmalloc
# and mimalloc.  Run from the repo root:
#
#   bench/run.sh            full suite, 5 interleaved runs per cell, then --rss-time
#   bench/run.sh --quick    smaller parameters, 3 runs per cell (< 1 minute), a short --rss-time
#   bench/run.sh --instr    callgrind instructions per malloc+free pair
#   bench/run.sh --rss-time RSS over time after freeing 1 GiB, idle and with further
#                           calls (about 80 s; 25 s for the short one)
#   bench/run.sh --readme   the full suite and --instr, into bench/results/
#
# Results go to bench/out/ (not tracked); only --readme, or
# BENCH_RESULTS_DIR=bench/results, rewrites the figures the README shows.
# Missing peer allocators are installed with apt-get after the runner says
# which packages it installs; NO_INSTALL=1 uses what is there and skips
# what is missing.
# BASELINE=path/to/libgomalloc.so adds that build as the allocator "baseline".
# Environment: RUNS=N overrides the run count, ONLY=REGEX keeps the
# benchmarks whose name matches, ALLOCS="gomalloc glibc ..." picks
# allocators (also "profiled": gomalloc with the heap profiler on, not run
# unless asked for), TIMEOUT=SECONDS overrides the per-run time limit.
# See bench/README.md.
set -u -o pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
BIN=$ROOT/build/bench
RESULTS=$ROOT/bench/out
LOGS=$BIN/logs

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

MODE=full
case "${1:-}" in
    "" | --full) ;;
    --quick) MODE=quick ;;
    --instr) MODE=instr ;;
    --rss-time) MODE=rsstime ;;
    --readme)
        # The README's figures: the full suite, then the instruction counts.
        BENCH_RESULTS_DIR=$ROOT/bench/results "${BASH_SOURCE[0]}" --full || exit
        exec env BENCH_RESULTS_DIR="$ROOT/bench/results" "${BASH_SOURCE[0]}" --instr
        ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
RESULTS=${BENCH_RESULTS_DIR:-$RESULTS}

say() { printf '%s\n' "$*" >&2; }

# ---- build -------------------------------------------------------------
say "== building the benchmark programs into build/bench/"
if ! make -s -C bench OUT="$BIN" >/dev/null; then
    say "error: building the benchmarks failed"
    exit 1
fi
mkdir -p "$RESULTS" "$LOGS"

# ---- peers ---------------------------------------------------------------
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

ensure_packages() {
    local missing=() p
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ -n "${NO_INSTALL:-}" ] && [ "$NO_INSTALL" != 0 ]; then
        say "== NO_INSTALL: not installing ${missing[*]}; what needs them is skipped"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "warning: apt-get not found: not installing ${missing[*]}; what needs them is skipped"
        return 0
    fi
    say "== about to install these Debian packages with apt-get: ${missing[*]}"
    say "   (NO_INSTALL=1 skips this and runs without them)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >"$LOGS/apt.log" 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update >>"$LOGS/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >>"$LOGS/apt.log" 2>&1 ||
            say "warning: could not install ${missing[*]} (see $LOGS/apt.log)"
    fi
}

# pkg_lib PACKAGE SONAME: the path of SONAME from the package, else ldconfig's
pkg_lib() {
    local path
    path=$(dpkg -L "$1" 2>/dev/null | grep -E "/$2\$" | head -n 1)
    [ -z "$path" ] && path=$(ldconfig -p 2>/dev/null | awk -v n="$2" '$1 == n { print $NF; exit }')
    [ -n "$path" ] && [ -e "$path" ] && printf '%s\n' "$path"
}

PKGS=(libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0)
if [ "$MODE" = instr ]; then
    ensure_packages "${PKGS[@]}" valgrind
else
    ensure_packages "${PKGS[@]}" gnuplot-nox
fi

declare -A LIB PKG
ALL_ALLOCS=(gomalloc glibc jemalloc tcmalloc mimalloc)
LIB[gomalloc]=$ROOT/build/libgomalloc.so; PKG[gomalloc]=
LIB[glibc]=;                              PKG[glibc]=libc6
LIB[jemalloc]=$(pkg_lib libjemalloc2 libjemalloc.so.2);                 PKG[jemalloc]=libjemalloc2
LIB[tcmalloc]=$(pkg_lib libtcmalloc-minimal4 libtcmalloc_minimal.so.4); PKG[tcmalloc]=libtcmalloc-minimal4
LIB[mimalloc]=$(pkg_lib libmimalloc2.0 libmimalloc.so.2);               PKG[mimalloc]=libmimalloc2.0
# BASELINE=path/to/libgomalloc.so adds an earlier gomalloc build, for before/after tables.
if [ -n "${BASELINE:-}" ]; then
    ALL_ALLOCS=(gomalloc baseline glibc jemalloc tcmalloc mimalloc)
    LIB[baseline]=$BASELINE; PKG[baseline]=
fi
# Extra environment per allocator.  "profiled" is gomalloc with the heap
# profiler on at its default rate (each process writes its profile at exit):
# ALLOCS="gomalloc profiled" measures what profiling costs.
declare -A AENV
LIB[profiled]=${LIB[gomalloc]}; PKG[profiled]=
AENV[profiled]="GOMALLOC_PROFILE=$LOGS/profiled.%p.pb.gz"

WANT=${ALLOCS:-${ALL_ALLOCS[*]}}
# Keep an allocator only if its library exists and really provides malloc.
ALLOCS=()
for a in $WANT; do
    if [ -z "${LIB[$a]+set}" ]; then
        say "warning: unknown allocator '$a', skipped"
        continue
    fi
    lib=${LIB[$a]}
    if [ "$a" != glibc ] && { [ -z "$lib" ] || [ ! -e "$lib" ]; }; then
        if [ "$a" = gomalloc ]; then
            say "note: gomalloc skipped: build/libgomalloc.so not found (run make in the repo root)"
        else
            say "warning: $a skipped: its library is not installed"
        fi
        continue
    fi
    who=$("$BIN/measure" -t 10 -p "$lib" -o "$LOGS/which-$a.out" -e "$LOGS/which-$a.err" -- "$BIN/whichmalloc" >/dev/null;
          awk '$1 == "malloc" { print $2 }' "$LOGS/which-$a.out")
    if [ "$a" = glibc ]; then
        case "$who" in */libc.so.6) ;; *) say "warning: glibc run gets malloc from '$who'"; ;; esac
    elif [ "$(readlink -f "$who" 2>/dev/null)" != "$(readlink -f "$lib")" ]; then
        say "warning: $a skipped: with LD_PRELOAD=$lib, malloc comes from '${who:-nowhere}'"
        continue
    fi
    ALLOCS+=("$a")
done
if [ ${#ALLOCS[@]} -eq 0 ]; then
    say "error: no allocator to measure"
    exit 1
fi
ALLOC_ARGS=()
for a in "${ALLOCS[@]}"; do ALLOC_ARGS+=(--alloc "$a=${LIB[$a]}=${PKG[$a]}"); done
say "== allocators: ${ALLOCS[*]}"

STAMP=$(date +%Y%m%d-%H%M%S)

# ---- instruction counts ----------------------------------------------------
if [ "$MODE" = instr ]; then
    if ! command -v valgrind >/dev/null; then
        say "error: valgrind is not installed"
        exit 1
    fi
    N1=20000 N2=220000
    CSV=$RESULTS/instr.csv
    echo "date,allocator,size,n1,ir1,n2,ir2,ir_per_pair" >"$CSV"
    ir_of() { # ALLOC SIZE N -> total Ir, or nothing on failure
        local out=$LOGS/callgrind-$1-$2-$3.out
        rm -f "$out"
        if [ -n "${LIB[$1]}" ]; then
            LD_PRELOAD=${LIB[$1]} timeout 300 valgrind --tool=callgrind --callgrind-out-file="$out" \
                "$BIN/pairs" size="$2" n="$3" >"$out.stdout" 2>"$out.stderr"
        else
            env -u LD_PRELOAD timeout 300 valgrind --tool=callgrind --callgrind-out-file="$out" \
                "$BIN/pairs" size="$2" n="$3" >"$out.stdout" 2>"$out.stderr"
        fi || return 0
        grep -q ' ok$' "$out.stdout" || return 0
        awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$out"
    }
    for a in "${ALLOCS[@]}"; do
        printf '%-10s' "$a" >&2
        for size in 16 64 256 4096 65536 0; do
            ir1=$(ir_of "$a" "$size" "$N1")
            ir2=$(ir_of "$a" "$size" "$N2")
            per=FAIL
            if [ -n "$ir1" ] && [ -n "$ir2" ]; then
                per=$(awk -v a="$ir1" -v b="$ir2" -v n1="$N1" -v n2="$N2" 'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }')
            fi
            echo "$STAMP,$a,$size,$N1,${ir1:-},$N2,${ir2:-},$per" >>"$CSV"
            printf ' %s' "$size" >&2
        done
        printf '\n' >&2
    done
    python3 bench/report.py instr --csv "$CSV" "${ALLOC_ARGS[@]}"
    say "== wrote ${CSV#"$ROOT"/}"
    exit 0
fi

# ---- RSS over time after free-all --------------------------------------------
# release mode=3 once per allocator, with no allocator call after the frees
# and with TRACE_CALLS small malloc+free pairs every 10 ms: every sample goes
# to $RESULTS/latest-rss-time.csv, report.py draws latest-rss-time.png.
TRACE_CALLS=8
rss_time() { # TOTAL SECONDS
    local total=$1 secs=$2 csv=$RESULTS/latest-rss-time.csv calls a base line status fails
    say "== RSS over time: $total freed, then $secs s idle and $secs s of $TRACE_CALLS pairs every 10 ms"
    echo "date,allocator,calls,total,t_ms,rss_kb" >"$csv"
    for calls in 0 "$TRACE_CALLS"; do
        printf '%-24s' "release-trace calls=$calls" >&2
        fails=()
        for a in "${ALLOCS[@]}"; do
            base=$LOGS/release-trace-$calls-$a
            line=$("$BIN/measure" -t "${TIMEOUT:-60}" -p "${LIB[$a]}" -o "$base.out" -e "$base.err" -- \
                "$BIN/release" mode=3 total="$total" seconds="$secs" calls="$calls")
            status=error
            [[ $line =~ status=([^ ]+) ]] && status=${BASH_REMATCH[1]}
            [ "$status" = ok ] && ! grep -q ' ok$' "$base.out" && status=nocheck
            if [ "$status" = ok ]; then
                # "sample t_ms=T rss_kb=R" -> one CSV row
                awk -v pre="$STAMP,$a,$calls,$total" -F '[ =]' \
                    '$1 == "sample" { print pre "," $3 "," $5 }' "$base.out" >>"$csv"
                printf '.' >&2
                rm -f "$base.out" "$base.err"
            else
                printf 'F' >&2
                fails+=("   FAIL release-trace calls=$calls under $a: $status (log: ${base#"$ROOT"/}.out/.err)")
            fi
        done
        printf '\n' >&2
        [ ${#fails[@]} -eq 0 ] || printf '%s\n' "${fails[@]}" >&2
    done
    python3 bench/report.py rsstime --csv "$csv" --png "$RESULTS/latest-rss-time.png"
    say "== results: ${csv#"$ROOT"/}, ${RESULTS#"$ROOT"/}/latest-rss-time.png"
}
if [ "$MODE" = rsstime ]; then
    rss_time 1G 3
    exit 0
fi

# ---- the suite -------------------------------------------------------------
# name | threads | program and arguments (full) | (quick)
SUITE=(
    "churn-small|1|churn min=8 max=512 window=10000 iters=6M|churn min=8 max=512 window=10000 iters=600K"
    "churn-mixed|1|churn min=8 max=32K window=10000 iters=2M|churn min=8 max=32K window=5000 iters=200K"
    "compiler|1|compiler nodes=200K modules=10|compiler nodes=50K modules=4"
    "threadlocal|1|threadlocal threads=1 ops=10M|threadlocal threads=1 ops=2M"
    "threadlocal|2|threadlocal threads=2 ops=10M|threadlocal threads=2 ops=2M"
    "bursts|1|bursts rounds=20000|bursts rounds=4000"
    "larson|1|larson threads=1 slots=10000 ops=4M|larson threads=1 slots=10000 ops=400K"
    "larson|2|larson threads=2 slots=10000 ops=4M|larson threads=2 slots=10000 ops=400K"
    "larson|4|larson threads=4 slots=10000 ops=4M|larson threads=4 slots=10000 ops=400K"
    "prodcons|2|prodcons threads=2 items=4M|prodcons threads=2 items=400K"
    "prodcons|4|prodcons threads=4 items=4M|prodcons threads=4 items=400K"
    "falseshare|1|falseshare threads=1 size=8 rounds=100 writes=5M|falseshare threads=1 size=8 rounds=20 writes=2M"
    "falseshare|2|falseshare threads=2 size=8 rounds=100 writes=5M|falseshare threads=2 size=8 rounds=20 writes=2M"
    "falseshare|4|falseshare threads=4 size=8 rounds=100 writes=5M|falseshare threads=4 size=8 rounds=20 writes=2M"
    "falseshare-passive|2|falseshare threads=2 mode=1 size=8 rounds=100 writes=5M|falseshare threads=2 mode=1 size=8 rounds=20 writes=2M"
    "falseshare-passive|4|falseshare threads=4 mode=1 size=8 rounds=100 writes=5M|falseshare threads=4 mode=1 size=8 rounds=20 writes=2M"
    "large|1|large min=64K max=64M live=4 iters=150|large min=64K max=16M live=4 iters=40"
    "realloc|1|realloc bufs=4 step=1000 max=4M rounds=6|realloc bufs=4 step=1000 max=2M rounds=1"
    "calloc|1|calloc min=256K max=64M live=4 iters=200|calloc min=256K max=16M live=4 iters=60"
    "frag|1|frag total=1G pct=90|frag total=128M pct=90"
    "frag-reuse|1|frag total=1G pct=90 lo=16 hi=512 lo2=1024 hi2=4096 again=500M|frag total=128M pct=90 lo=16 hi=512 lo2=1024 hi2=4096 again=64M"
    "release-stall|2|release mode=0 total=2G|release mode=0 total=256M seconds=1"
    "release-idle|1|release mode=1 total=1G|release mode=1 total=256M seconds=2"
    "release-trim|1|release mode=2 total=1G|release mode=2 total=256M"
)
if [ "$MODE" = quick ]; then
    RUNS=${RUNS:-3}; TIMEOUT=${TIMEOUT:-20}
else
    RUNS=${RUNS:-5}; TIMEOUT=${TIMEOUT:-120}
fi
NPROC=$(nproc)

CSV=$RESULTS/$STAMP-$MODE.csv
echo "date,mode,benchmark,program,threads,oversubscribed,allocator,run,status,wall_s,user_s,sys_s,maxrss_kb,checksum,metrics,args" >"$CSV"

say "== $MODE mode: $RUNS runs per cell, interleaved; time limit ${TIMEOUT}s per run; $NPROC cores"
say "   (. ok   F failed check or crash   T timeout; a failed cell is not run again)"
T0=$(date +%s)
declare -A FAILED
for entry in "${SUITE[@]}"; do
    IFS='|' read -r name threads full quick <<<"$entry"
    cmd=$full; [ "$MODE" = quick ] && cmd=$quick
    read -r -a argv <<<"$cmd"
    prog=${argv[0]}
    over=0; [ "$threads" -gt "$NPROC" ] && over=1
    case $prog in
        larson | prodcons | falseshare | threadlocal) label="$name-t$threads" ;;
        *) label=$name ;;
    esac
    if [ -n "${ONLY:-}" ] && ! [[ $label =~ $ONLY ]]; then continue; fi
    printf '%-24s' "$label" >&2
    t_start=$(date +%s%N)
    for ((run = 1; run <= RUNS; run++)); do
        for a in "${ALLOCS[@]}"; do
            key="$label/$a"
            [ -n "${FAILED[$key]:-}" ] && continue
            base=$LOGS/$label-$a-$run
            line=$(env ${AENV[$a]:-} "$BIN/measure" -t "$TIMEOUT" -p "${LIB[$a]}" -o "$base.out" \
                -e "$base.err" -- "$BIN/$prog" "${argv[@]:1}")
            status=error wall= user= sys= rss= checksum= metrics=
            if [[ $line =~ status=([^ ]+)\ wall_s=([^ ]+)\ user_s=([^ ]+)\ sys_s=([^ ]+)\ maxrss_kb=([^ ]+) ]]; then
                status=${BASH_REMATCH[1]} wall=${BASH_REMATCH[2]} user=${BASH_REMATCH[3]}
                sys=${BASH_REMATCH[4]} rss=${BASH_REMATCH[5]}
            fi
            [ -e "$base.out" ] || : >"$base.out"
            # the program's own verdict: "checksum HEX ok" last, "metric K=V" lines before
            while read -r w1 w2 w3; do
                case $w1 in
                    metric) metrics+=${metrics:+;}$w2 ;;
                    checksum) [ "$w3" = ok ] && checksum=$w2 ;;
                esac
            done <"$base.out"
            if [ "$status" = ok ] && [ -z "$checksum" ]; then status=nocheck; fi
            if [ -s "$base.err" ] && grep -q 'cannot be preloaded' "$base.err"; then status=nopreload; fi
            echo "$STAMP,$MODE,$label,$prog,$threads,$over,$a,$run,$status,$wall,$user,$sys,$rss,$checksum,$metrics,\"$cmd\"" >>"$CSV"
            if [ "$status" = ok ]; then
                printf '.' >&2
                rm -f "$base.out" "$base.err"
            else
                FAILED[$key]="$status (log: ${base#"$ROOT"/}.out/.err)"
                if [ "$status" = timeout ]; then printf 'T' >&2; else printf 'F' >&2; fi
            fi
        done
    done
    ms=$((($(date +%s%N) - t_start) / 1000000))
    printf ' %4d.%01ds\n' $((ms / 1000)) $((ms % 1000 / 100)) >&2
    for a in "${ALLOCS[@]}"; do
        [ -n "${FAILED[$label/$a]:-}" ] && say "   FAIL $label under $a: ${FAILED[$label/$a]}"
    done
done
T1=$(date +%s)
say "== suite took $((T1 - T0)) s"

cp "$CSV" "$RESULTS/latest.csv"
python3 bench/report.py runs --csv "$CSV" --outdir "$RESULTS" --mode "$MODE" --runs "$RUNS" \
    --seconds $((T1 - T0)) "${ALLOC_ARGS[@]}"
R=${RESULTS#"$ROOT"/}
say "== results: ${CSV#"$ROOT"/}, $R/latest.{csv,md}, $R/latest-{time,rss}.png"

if [ -z "${ONLY:-}" ] || [[ release-trace =~ $ONLY ]]; then
    if [ "$MODE" = quick ]; then rss_time 256M 1; else rss_time 1G 3; fi
fi
