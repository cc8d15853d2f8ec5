# Shared by the real-program tests: run a command with and without
# gomalloc preloaded and compare what it produces.
# Environment (set by tests/run.sh): GM_ROOT, GM_LIB.
set -u
ROOT=${GM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
LIB=${GM_LIB:-$ROOT/build/libgomalloc.so}
NAME=$(basename "$0" .sh)
WORK=$(mktemp -d /tmp/gmtest-$NAME.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail=0
bad() { echo "$NAME: FAIL: $*" >&2; fail=1; }
note() { echo "$NAME: $*" >&2; }

[ -f "$LIB" ] || { echo "$NAME: $LIB not found" >&2; exit 1; }
# The preload must really take: the library shows in the process's maps.
LD_PRELOAD=$LIB cat /proc/self/maps | grep -q libgomalloc || {
    echo "$NAME: LD_PRELOAD=$LIB does not load it" >&2
    exit 1
}

# with_gm CMD...: runs CMD with gomalloc preloaded.
with_gm() { LD_PRELOAD=$LIB "$@"; }

# same OUTNAME CMD...: runs CMD plainly (stdout to $WORK/OUTNAME.ref) and
# under gomalloc (to $WORK/OUTNAME.gm); both must succeed and agree.
same() {
    local out=$1
    shift
    "$@" >"$WORK/$out.ref" 2>"$WORK/$out.ref.err"
    local rc_ref=$?
    LD_PRELOAD=$LIB "$@" >"$WORK/$out.gm" 2>"$WORK/$out.gm.err"
    local rc_gm=$?
    if [ $rc_ref -ne 0 ]; then
        bad "$out: the plain run failed ($rc_ref): $(head -c 300 "$WORK/$out.ref.err")"
        return 1
    fi
    if [ $rc_gm -ne 0 ]; then
        bad "$out: under gomalloc exit status $rc_gm (plain 0): $(head -c 500 "$WORK/$out.gm.err")"
        return 1
    fi
    if ! cmp -s "$WORK/$out.ref" "$WORK/$out.gm"; then
        bad "$out: output differs under gomalloc:"
        diff "$WORK/$out.ref" "$WORK/$out.gm" | head -20 >&2
        return 1
    fi
    return 0
}

finish() {
    [ $fail -eq 0 ] && note ok
    exit $fail
}
