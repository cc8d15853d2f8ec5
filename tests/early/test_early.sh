#!/usr/bin/env bash
# test_early: runs test_early (tests/early/test_early.c) the ways a program
# can meet gomalloc at start-up:
#  1. LD_PRELOAD=libgomalloc.so; libgmt_early_link.so linked with -l
#  2. LD_PRELOAD="libgomalloc.so libgmt_early_pre.so"
#  3. LD_PRELOAD="libgmt_early_pre.so libgomalloc.so" (the other library's
#     constructor may run before anything of gomalloc's)
#  4. test_early_linked: linked with libgomalloc.so itself, no preload
#  5. as 1 with GOMALLOC_STATS=1: the report at exit must still come
# and checks that neither the test's binaries nor libgomalloc.so need the
# C++ runtime.  With GMT_PLAIN=1 the first run is also done without
# gomalloc, to show the test passes on glibc's malloc.
# Environment (set by tests/run.sh): GM_ROOT, GM_LIB, GMTEST_BIN.
set -u
ROOT=${GM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
LIB=${GM_LIB:-$ROOT/build/libgomalloc.so}
BIN=${GMTEST_BIN:-$ROOT/build/tests}
PRE=$BIN/libgmt_early_pre.so
fail=0
t=$(mktemp -d /tmp/gmtest-early.XXXXXX)
trap 'rm -rf "$t"' EXIT
bad() { echo "test_early: FAIL: $*" >&2; fail=1; }

# runcase NAME VAR=VALUE... PROG: runs PROG DIR with the variables set.
runcase() {
    local name=$1
    shift
    env GMTEST_IMPL=gomalloc "$@" "$BIN" >"$t/out" 2>"$t/err"
    local rc=$?
    if [ $rc -ne 0 ]; then
        bad "$name: exit status $rc"
        sed "s/^/    $name: /" "$t/err" >&2
    else
        echo "test_early: $name: ok ($(grep -o "[0-9]* checks" "$t/err"))" >&2
        grep 'test_early: live objects' "$t/err" | sed "s/^/    /" >&2
    fi
    return $rc
}

for f in "$BIN/test_early" "$BIN/test_early_linked" "$BIN/libgmt_early_link.so" "$PRE" \
    "$BIN/libgmt_early_dl.so" "$LIB"; do
    if readelf -d "$f" | grep NEEDED | grep -q 'libstdc++'; then
        bad "$f needs libstdc++"
    fi
done
readelf -d "$BIN/test_early_linked" | grep NEEDED | grep -q libgomalloc ||
    bad "test_early_linked does not need libgomalloc.so"

if [ "${GMT_PLAIN:-0}" = 1 ]; then
    "$BIN/test_early" "$BIN" >"$t/out" 2>"$t/err" || { bad "plain run (glibc malloc) failed"; cat "$t/err" >&2; }
fi
runcase "preload" LD_PRELOAD="$LIB" "$BIN/test_early"
runcase "preload, then libgmt_early_pre" LD_PRELOAD="$LIB $PRE" GMT_EXPECT_PRE=1 "$BIN/test_early"
runcase "libgmt_early_pre, then preload" LD_PRELOAD="$PRE $LIB" GMT_EXPECT_PRE=1 "$BIN/test_early"
runcase "linked" "$BIN/test_early_linked"
if runcase "preload, GOMALLOC_STATS=1" LD_PRELOAD="$LIB" GOMALLOC_STATS=1 "$BIN/test_early"; then
    grep -qi heapsys "$t/err" || bad "GOMALLOC_STATS=1: no heap report at exit"
fi

[ $fail -eq 0 ] && echo "test_early: ok" >&2
exit $fail
