#!/usr/bin/env bash
# test_launcher: the gomalloc launcher as a command-line tool.
#  - --help on stdout, exit 0, naming the options and GOMALLOC_* variables;
#  - --version names the version and the library;
#  - unknown options, missing commands, bad sizes: its own words, named,
#    with exit 2 or 127;
#  - --stats, --memlimit, --verbose and --option reach the library;
#  - it works copied with the library into directories whose paths hold
#    a space and a colon (LD_PRELOAD cannot hold those).
# Environment (set by tests/run.sh): GM_ROOT, GM_LIB.
set -u
ROOT=${GM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
LIBDIR=$(dirname "${GM_LIB:-$ROOT/build/libgomalloc.so}")
GM=$LIBDIR/gomalloc
VERSION=$(sed -n 's/^#define GOMALLOC_VERSION "\(.*\)"$/\1/p' "$ROOT/include/gomalloc.h")
fail=0
t=$(mktemp -d /tmp/gmtest-launcher.XXXXXX)
trap 'rm -rf "$t"' EXIT
bad() { echo "test_launcher: FAIL: $*" >&2; fail=1; }

# gm ARGS...: runs the launcher; status in $rc, output in $t/out and $t/err
gm() {
    "$GM" "$@" >"$t/out" 2>"$t/err"
    rc=$?
}

gm --help
[ $rc -eq 0 ] || bad "--help exited $rc"
[ -s "$t/err" ] && bad "--help wrote to stderr"
for w in --stats --memlimit --verbose --version --option --hardened --profile GOMALLOC_STATS \
    GOMALLOC_MEMLIMIT GOMALLOC_TINY GOMALLOC_CONF GOMALLOC_VERBOSE GOMALLOC_BACKGROUND; do
    grep -q -- "$w" "$t/out" || bad "--help does not mention $w"
done
gm -h
[ $rc -eq 0 ] && grep -q Usage "$t/out" || bad "-h: exit $rc"

gm --version
[ $rc -eq 0 ] || bad "--version exited $rc"
grep -q "^gomalloc $VERSION\$" "$t/out" || bad "--version: $(head -n 1 "$t/out")"
grep -q "libgomalloc.so" "$t/out" || bad "--version does not name the library"

gm --frobnicate true
[ $rc -eq 2 ] || bad "unknown option: exit $rc, want 2"
grep -q -- "unknown option '--frobnicate'" "$t/err" || bad "unknown option not named: $(cat "$t/err")"
gm
[ $rc -eq 2 ] && grep -q "no command" "$t/err" || bad "no command: exit $rc, $(cat "$t/err")"
gm gomalloc-nosuchcmd-xyz
[ $rc -eq 127 ] || bad "missing command: exit $rc, want 127"
[ "$(cat "$t/err")" = "gomalloc: gomalloc-nosuchcmd-xyz: command not found" ] ||
    bad "missing command: '$(cat "$t/err")'"
gm ./no/such/file
[ $rc -eq 127 ] && grep -q "^gomalloc: ./no/such/file: no such file" "$t/err" || bad "missing file: $rc $(cat "$t/err")"
echo data >"$t/plain"
gm "$t/plain"
[ $rc -eq 126 ] && grep -q "permission denied" "$t/err" || bad "non-executable file: exit $rc, want 126"
gm --memlimit lots true
[ $rc -eq 2 ] && grep -q "invalid size 'lots'" "$t/err" || bad "--memlimit lots: $rc $(cat "$t/err")"
gm --memlimit
[ $rc -eq 2 ] || bad "--memlimit without a value: exit $rc"

# options reach the library
gm --verbose --memlimit 2G --option tiny=off true
[ $rc -eq 0 ] || bad "--verbose --memlimit 2G true: exit $rc"
grep -q "^gomalloc $VERSION: active" "$t/err" || bad "--verbose: no start-up line"
awk '$2 == "memlimit" { print $3 }' "$t/err" | grep -qx 2G || bad "--memlimit 2G did not reach the library"
awk '$2 == "tiny" { print $3 }' "$t/err" | grep -qx off || bad "--option tiny=off did not reach the library"
gm --memlimit=512M -v true
awk '$2 == "memlimit" { print $3 }' "$t/err" | grep -qx 512M || bad "--memlimit=512M did not reach the library"
gm -s true
grep -qi "heap report" "$t/err" || bad "-s: no heap report"
gm -- sh -c 'echo "$LD_PRELOAD"'
grep -q libgomalloc "$t/out" || bad "LD_PRELOAD not set: $(cat "$t/out")"
LD_PRELOAD=/nonexistent-but-kept.so gm sh -c 'echo "$LD_PRELOAD"' 2>/dev/null
grep -q ':/nonexistent-but-kept.so$' "$t/out" || bad "an existing LD_PRELOAD was not kept: $(cat "$t/out")"

# a tree at a path with a space and a colon: the launcher still loads gomalloc
odd="$t/with space:and colon/bin"
mkdir -p "$odd"
cp "$GM" "$odd/gomalloc"
cp -P "$LIBDIR"/libgomalloc.so* "$odd/"
"$odd/gomalloc" --version >"$t/out" 2>"$t/err" || bad "odd path: --version failed: $(cat "$t/err")"
grep -qF "$odd/libgomalloc.so.0" "$t/out" || bad "odd path: --version names $(tail -n 1 "$t/out")"
TMPDIR=$t "$odd/gomalloc" cat /proc/self/maps >"$t/out" 2>"$t/err" || bad "odd path: run failed: $(cat "$t/err")"
grep -qF "with space:and colon/bin/libgomalloc.so" "$t/out" ||
    bad "odd path: the copied library is not in the process: $(grep -c libgomalloc "$t/out") maps lines; $(cat "$t/err")"
[ -s "$t/err" ] && bad "odd path: stderr: $(head -c 300 "$t/err")"

[ $fail -eq 0 ] && echo "test_launcher: ok" >&2
exit $fail
