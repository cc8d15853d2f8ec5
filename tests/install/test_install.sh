#!/usr/bin/env bash
# test_install: `make install` into a DESTDIR with a non-default PREFIX and
# a multiarch LIBDIR, then the installed tree in use, then `make uninstall`.
#  - the files land under PREFIX/LIBDIR, with the soname links;
#  - pkg-config's flags link a C program that allocates only through libc,
#    under --as-needed, and it runs on gomalloc (found through its rpath);
#  - the installed launcher runs a program on the installed library;
#  - `make uninstall` removes every file it installed, and nothing else.
# Environment (set by tests/run.sh): GM_ROOT.
set -u
ROOT=${GM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$ROOT" || exit 1
VERSION=$(sed -n 's/^#define GOMALLOC_VERSION "\(.*\)"$/\1/p' include/gomalloc.h)
fail=0
t=$(mktemp -d /tmp/gmtest-install.XXXXXX)
trap 'rm -rf "$t"' EXIT
bad() { echo "test_install: FAIL: $*" >&2; fail=1; }

D=$t/stage
PREFIX=/opt/gm
LIBDIR=$PREFIX/lib/x86_64-linux-gnu
mkdir -p "$D/keep"
echo untouched >"$D/keep/other-file"
make -s install DESTDIR="$D" PREFIX=$PREFIX LIBDIR=$LIBDIR >"$t/log" 2>&1 || {
    bad "make install failed: $(tail -n 5 "$t/log")"
    exit 1
}
for f in $LIBDIR/libgomalloc.so.$VERSION $LIBDIR/libgomalloc.a $PREFIX/include/gomalloc.h \
    $PREFIX/bin/gomalloc $LIBDIR/pkgconfig/gomalloc.pc $PREFIX/share/man/man1/gomalloc.1 \
    $PREFIX/share/man/man3/gomalloc.3; do
    [ -f "$D$f" ] || bad "not installed: $f"
done
[ "$(readlink "$D$LIBDIR/libgomalloc.so.0")" = "libgomalloc.so.$VERSION" ] || bad "libgomalloc.so.0 link"
[ "$(readlink "$D$LIBDIR/libgomalloc.so")" = libgomalloc.so.0 ] || bad "libgomalloc.so link"
readelf -d "$D$LIBDIR/libgomalloc.so.$VERSION" | grep -q 'SONAME.*\[libgomalloc.so.0\]' || bad "soname"
grep -q "^libdir=$LIBDIR\$" "$D$LIBDIR/pkgconfig/gomalloc.pc" || bad "gomalloc.pc libdir"
grep -q "^Version: $VERSION\$" "$D$LIBDIR/pkgconfig/gomalloc.pc" || bad "gomalloc.pc version"

# link through pkg-config, under --as-needed, from the staged prefix
if command -v pkg-config >/dev/null 2>&1; then
    pc() { PKG_CONFIG_PATH="$D$LIBDIR/pkgconfig" pkg-config --define-variable=libdir="$D$LIBDIR" \
        --define-variable=includedir="$D$PREFIX/include" "$@" gomalloc; }
    # shellcheck disable=SC2046
    if gcc -std=c11 -O2 -Wl,--as-needed tests/install/strdup_prog.c -o "$t/strdup_prog" \
        $(pc --cflags) $(pc --libs) -Wl,-rpath,"$D$LIBDIR" 2>"$t/log"; then
        readelf -d "$t/strdup_prog" | grep NEEDED | grep -q libgomalloc.so.0 ||
            bad "pkg-config --libs under --as-needed: libgomalloc dropped"
        [ "$("$t/strdup_prog")" = gomalloc ] || bad "strdup_prog does not run on gomalloc"
    else
        bad "linking with pkg-config's flags failed: $(head -n 5 "$t/log")"
    fi
else
    echo "test_install: pkg-config not installed: its part skipped" >&2
fi

# the installed launcher, on the installed library
"$D$PREFIX/bin/gomalloc" --version >"$t/out" 2>&1 || bad "installed gomalloc --version failed"
grep -q "^gomalloc $VERSION\$" "$t/out" || bad "installed --version: $(head -n 1 "$t/out")"
grep -qF "$D$LIBDIR/libgomalloc.so.0" "$t/out" || bad "installed launcher uses $(tail -n 1 "$t/out")"
"$D$PREFIX/bin/gomalloc" cat /proc/self/maps >"$t/out" 2>&1
grep -qF "$D$LIBDIR/libgomalloc.so.$VERSION" "$t/out" || bad "installed launcher did not load the installed library"

# uninstall: nothing of ours left, the rest untouched
make -s uninstall DESTDIR="$D" PREFIX=$PREFIX LIBDIR=$LIBDIR >"$t/log" 2>&1 || bad "make uninstall failed"
left=$(cd "$D" && find . \( -type f -o -type l \) ! -path ./keep/other-file)
[ -z "$left" ] || bad "left after uninstall: $left"
[ "$(cat "$D/keep/other-file")" = untouched ] || bad "uninstall touched another file"

# the defaults: PREFIX=/usr puts the library in the multiarch directory
make -s install DESTDIR="$t/usr" PREFIX=/usr >"$t/log" 2>&1 || bad "make install PREFIX=/usr failed"
ma=$(gcc -print-multiarch 2>/dev/null)
if [ -n "$ma" ]; then
    [ -f "$t/usr/usr/lib/$ma/libgomalloc.so.$VERSION" ] || bad "PREFIX=/usr: not in /usr/lib/$ma"
fi

[ $fail -eq 0 ] && echo "test_install: ok" >&2
exit $fail
