#!/usr/bin/env bash
# test_profile: the sampling heap profiler and the leak report.
#  - profile shape: keep_live() keeps 64 MiB, churn() allocates and frees
#    256 MiB; the profile (read by pprof_read.py, and by `go tool pprof -top`
#    when go is installed) gives each its share within sampling error;
#  - GOMALLOC_PROFILE_RATE=1 counts every allocation exactly, and tells
#    two callers of one call site apart (the stack memo);
#  - the launcher's --profile, gm_profile_write(), GOMALLOC_PROFILE_SIGNAL;
#  - threads and fork: both processes write valid profiles (%p); the
#    stress test passes with profiling on;
#  - gomalloc --leaks finds a planted leak, exactly, first.
# Environment (set by tests/run.sh): GM_ROOT, GMTEST_BIN.
set -u
ROOT=${GM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${GMTEST_BIN:-$ROOT/build/tests}
PROG=$BIN/prof_prog
READ="python3 $ROOT/tests/profile/pprof_read.py"
fail=0
t=$(mktemp -d /tmp/gmtest-prof.XXXXXX)
trap 'rm -rf "$t"' EXIT
bad() { echo "test_profile: FAIL: $*" >&2; fail=1; }
# value COLUMN FUNCTION FILE: a function's value from pprof_read.py output
# (columns: 2 alloc_objects, 3 alloc_space, 4 inuse_objects, 5 inuse_space)
value() { awk -v f="$2" -v c="$1" '$1 == f { print $c }' "$3"; }
# within X LO HI: LO <= X <= HI (floating point)
within() { awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x != "" && x >= lo && x <= hi) }'; }
MiB=1048576

# 1. shape, from the environment
GOMALLOC_PROFILE="$t/shape.%p.pb.gz" "$PROG" shape || bad "prof_prog shape exited $?"
prof=$(ls "$t"/shape.*.pb.gz 2>/dev/null | head -1)
if [ -z "$prof" ]; then
    bad "GOMALLOC_PROFILE=FILE.%p wrote no profile"
else
    $READ "$prof" "$PROG" >"$t/shape.txt" 2>&1 || bad "pprof_read.py failed: $(cat "$t/shape.txt")"
    cat "$t/shape.txt" >&2
    grep -q "('alloc_objects', 'count'), ('alloc_space', 'bytes'), ('inuse_objects', 'count'), ('inuse_space', 'bytes')" "$t/shape.txt" ||
        bad "sample types are not Go's four"
    grep -q "period 524288" "$t/shape.txt" || bad "period is not 512 KiB"
    keep=$(value 5 keep_live "$t/shape.txt")
    churn_alloc=$(value 3 churn "$t/shape.txt")
    churn_inuse=$(value 5 churn "$t/shape.txt")
    # 64 MiB is ~128 samples: +-35% is about 4 standard deviations
    within "$keep" $((64 * MiB * 65 / 100)) $((64 * MiB * 135 / 100)) ||
        bad "keep_live in use: $keep bytes, want about 64 MiB"
    within "$churn_alloc" $((256 * MiB * 80 / 100)) $((256 * MiB * 120 / 100)) ||
        bad "churn allocated: $churn_alloc bytes, want about 256 MiB"
    within "${churn_inuse:-0}" 0 $((4 * MiB)) || bad "churn in use: $churn_inuse bytes, want 0"
    if command -v go >/dev/null 2>&1; then
        go tool pprof -top -sample_index=inuse_space "$PROG" "$prof" >"$t/go-inuse.txt" 2>&1
        go tool pprof -top -sample_index=alloc_space "$PROG" "$prof" >"$t/go-alloc.txt" 2>&1
        cat "$t/go-inuse.txt" "$t/go-alloc.txt" >&2
        grep -qE '^ +[0-9.]+MB +(9[0-9]|100)(\.[0-9]+)?% .* keep_live$' "$t/go-inuse.txt" ||
            bad "go tool pprof: keep_live is not the in-use space"
        grep -qE '^ +[0-9.]+MB +(7[0-9]|8[0-9])(\.[0-9]+)?% .* churn$' "$t/go-alloc.txt" ||
            bad "go tool pprof: churn is not ~80% of the allocated space"
    else
        echo "test_profile: go not installed, skipping go tool pprof" >&2
    fi
fi

# 2. the launcher
"$ROOT/build/gomalloc" --profile "$t/launch.pb.gz" "$PROG" shape || bad "gomalloc --profile exited $?"
$READ "$t/launch.pb.gz" "$PROG" >"$t/launch.txt" 2>&1 && grep -q '^keep_live ' "$t/launch.txt" ||
    bad "gomalloc --profile: no keep_live in the profile"

# 3. rate 1 is exact
GOMALLOC_PROFILE_RATE=1 GOMALLOC_PROFILE="$t/exact.pb.gz" "$PROG" exact 12345 || bad "exact exited $?"
$READ "$t/exact.pb.gz" "$PROG" >"$t/exact.txt" 2>&1
grep -q '^exact_allocs 12345 1234500 12345 1234500$' "$t/exact.txt" ||
    bad "rate 1: $(grep exact_allocs "$t/exact.txt"), want 12345 objects of 100 bytes"

# 3b. one call site, two callers with alike frames: the stack memo must not
#     mix them up (rate 1: every allocation's stack, exactly)
GOMALLOC_PROFILE_RATE=1 GOMALLOC_PROFILE="$t/paths.pb.gz" GOMALLOC_STATS=1 "$PROG" paths \
    2>"$t/paths.report" || bad "paths exited $?"
remembered=$(sed -n 's/.*stacks: [0-9]* unwound, \([0-9]*\) remembered.*/\1/p' "$t/paths.report")
within "${remembered:-0}" 1000 4000 ||
    bad "paths: ${remembered:-no} stacks remembered, want most of the 4000 (the stack memo)"
$READ "$t/paths.pb.gz" "$PROG" --caller >"$t/paths.txt" 2>&1
grep -q '^path_a 3000 300000 ' "$t/paths.txt" && grep -q '^path_b 1000 100000 ' "$t/paths.txt" ||
    bad "paths: $(grep path_ "$t/paths.txt" | tr '\n' ' '), want path_a 3000 and path_b 1000 objects"

# 4. on demand, and on a signal
GOMALLOC_PROFILE_RATE=65536 "$PROG" ondemand "$t/demand.pb.gz" || bad "gm_profile_write failed"
$READ "$t/demand.pb.gz" "$PROG" 2>&1 | grep -q '^keep_live ' || bad "gm_profile_write: no keep_live"
GOMALLOC_PROFILE="$t/sig.pb.gz" GOMALLOC_PROFILE_SIGNAL=USR2 "$PROG" signal "$t/sig.pb.gz" ||
    bad "GOMALLOC_PROFILE_SIGNAL=USR2: no profile written on the signal"
GOMALLOC_PROFILE="$t/sig12.pb.gz" GOMALLOC_PROFILE_SIGNAL=12 "$PROG" signal "$t/sig12.pb.gz" ||
    bad "GOMALLOC_PROFILE_SIGNAL=12: no profile written on the signal"
$READ "$t/sig.pb.gz" "$PROG" 2>&1 | grep -q '^keep_live ' || bad "signal profile: no keep_live"

# 5. threads and fork
GOMALLOC_PROFILE="$t/thr.%p.pb.gz" GOMALLOC_PROFILE_RATE=8192 "$PROG" threads ||
    bad "prof_prog threads exited $?"
n=0
for f in "$t"/thr.*.pb.gz; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    $READ "$f" "$PROG" >"$t/thr.txt" 2>&1 || bad "threads: $f does not parse"
    grep -q '^thread_main ' "$t/thr.txt" || bad "threads: no thread_main in $f"
done
[ $n -eq 2 ] || bad "threads: $n profiles, want 2 (the parent and its forked child)"

# The stress test (threads, fork, every size) with a sample every 4 KiB and
# the profile written by each process at exit.
GOMALLOC_PROFILE="$t/stress.%p.pb.gz" GOMALLOC_PROFILE_RATE=4096 "$BIN/test_stress_prof" \
    --seconds 4 >"$t/stress.txt" 2>&1 || { bad "stress test under profiling failed"; tail -5 "$t/stress.txt" >&2; }
for f in "$t"/stress.*.pb.gz; do
    python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import pprof_read as p; assert p.load(sys.argv[2])["samples"]' \
        "$ROOT/tests/profile" "$f" || bad "stress: $f is not a valid profile"
done

# 6. leaks
"$ROOT/build/gomalloc" --leaks "$PROG" leak 2>"$t/leak.txt" || bad "gomalloc --leaks exited $?"
cat "$t/leak.txt" >&2
grep -q 'gomalloc leak report' "$t/leak.txt" || bad "--leaks: no report"
first=$(grep -m1 -A1 'bytes in .* objects allocated at:' "$t/leak.txt")
echo "$first" | grep -q '^100000 bytes in 100 objects allocated at:' ||
    bad "--leaks: the largest leak is not 100 x 1000 bytes: $first"
echo "$first" | grep -q 'plant_leak' || bad "--leaks: the leak's first frame is not plant_leak"
grep -q 'tidy_work' "$t/leak.txt" && bad "--leaks: reports tidy_work, which freed everything"

# 7. off means off: no samples, no file
GOMALLOC_PROFILE_RATE=0 GOMALLOC_PROFILE="$t/off.pb.gz" "$PROG" shape
[ -e "$t/off.pb.gz" ] && bad "GOMALLOC_PROFILE_RATE=0 still wrote a profile"

[ $fail -eq 0 ] && echo "test_profile: ok" >&2
exit $fail
