#!/usr/bin/env bash
# test_stats: gomalloc's heap report.
#  - GOMALLOC_STATS=1 makes a program print, at exit and on stderr, a report
#    that speaks of the heap and has a line per size class in use; its
#    stdout is untouched.
#  - build/gomalloc --stats CMD does the same.
#  - Without GOMALLOC_STATS (or with 0) nothing is printed.
#  - malloc_stats(), gm_print_stats() and gm_get_heap_stats() (stats_prog).
# Environment (set by tests/run.sh): GM_ROOT, GM_LIB, GMTEST_BIN.
set -u
ROOT=${GM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
LIB=${GM_LIB:-$ROOT/build/libgomalloc.so}
BIN=${GMTEST_BIN:-$ROOT/build/tests}
PROG=$BIN/stats_prog
fail=0
t=$(mktemp -d /tmp/gmtest-stats.XXXXXX)
trap 'rm -rf "$t"' EXIT
bad() { echo "test_stats: FAIL: $*" >&2; fail=1; }
# size-class rows: class number, size, then more numbers
class_rows() { grep -cE '^[[:space:]]*[0-9]+[[:space:]]+[0-9]+[[:space:]]+[0-9]+' "$1"; }

# 1. a program that allocates, under LD_PRELOAD with GOMALLOC_STATS=1
GOMALLOC_STATS=1 LD_PRELOAD=$LIB "$PROG" work >"$t/out" 2>"$t/err"
rc=$?
[ $rc -eq 0 ] || bad "GOMALLOC_STATS=1 stats_prog work exited $rc"
[ "$(cat "$t/out")" = done ] || bad "GOMALLOC_STATS=1 changed stdout: $(head -c 200 "$t/out")"
grep -qi heap "$t/err" || bad "GOMALLOC_STATS=1: no heap report on stderr"
rows=$(class_rows "$t/err")
[ "$rows" -ge 10 ] || bad "GOMALLOC_STATS=1: $rows size-class lines, want >= 10"
echo "test_stats: GOMALLOC_STATS=1 report: $(wc -l <"$t/err") lines, $rows size-class lines" >&2

# 2. the launcher
"$ROOT/build/gomalloc" --stats true >"$t/out" 2>"$t/err"
rc=$?
[ $rc -eq 0 ] || bad "build/gomalloc --stats true exited $rc"
[ -s "$t/out" ] && bad "build/gomalloc --stats true wrote to stdout"
grep -qi heap "$t/err" || bad "build/gomalloc --stats true: no heap report"
grep -qi class "$t/err" || bad "build/gomalloc --stats true: no size-class table"
"$ROOT/build/gomalloc" --stats "$PROG" work >"$t/out" 2>"$t/err"
[ "$(cat "$t/out")" = done ] || bad "build/gomalloc --stats changed stdout"
rows=$(class_rows "$t/err")
[ "$rows" -ge 10 ] || bad "build/gomalloc --stats stats_prog work: $rows size-class lines"
# a real program: python
PY=$(command -v python3)
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
"$ROOT/build/gomalloc" --stats "$PY" -c 'd = {str(i): [i] * (i % 50) for i in range(20000)}; print(len(d))' \
    >"$t/out" 2>"$t/err"
[ "$(cat "$t/out")" = 20000 ] || bad "python under build/gomalloc --stats printed $(head -c 100 "$t/out")"
grep -qi heap "$t/err" || bad "python under --stats: no heap report"
rows=$(class_rows "$t/err")
[ "$rows" -ge 10 ] || bad "python under --stats: $rows size-class lines"
# plain launcher: no report
"$ROOT/build/gomalloc" "$PROG" work >"$t/out" 2>"$t/err"
[ -s "$t/err" ] && bad "build/gomalloc without --stats printed: $(head -c 200 "$t/err")"

# 3. no report unless asked for
LD_PRELOAD=$LIB "$PROG" work >"$t/out" 2>"$t/err"
[ -s "$t/err" ] && bad "no GOMALLOC_STATS, yet stderr: $(head -c 200 "$t/err")"
GOMALLOC_STATS=0 LD_PRELOAD=$LIB "$PROG" work >"$t/out" 2>"$t/err"
[ -s "$t/err" ] && bad "GOMALLOC_STATS=0, yet stderr: $(head -c 200 "$t/err")"

# 4. the in-process API
"$PROG" check >"$t/out" 2>"$t/err"
rc=$?
[ $rc -eq 0 ] || { bad "stats_prog check exited $rc"; cat "$t/err" >&2; }

[ $fail -eq 0 ] && echo "test_stats: ok" >&2
exit $fail
