#!/usr/bin/env bash
# test_deb: `make deb` builds a package; unpacked into a scratch root
# (dpkg-deb -x, nothing is installed on this machine) it holds the library
# with its links, header, pkg-config file, launcher and man pages, and its
# launcher runs `--version` and a program on its own library.
# Environment (set by tests/run.sh): GM_ROOT.
set -u
ROOT=${GM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$ROOT" || exit 1
VERSION=$(sed -n 's/^#define GOMALLOC_VERSION "\(.*\)"$/\1/p' include/gomalloc.h)
fail=0
t=$(mktemp -d /tmp/gmtest-deb.XXXXXX)
trap 'rm -rf "$t"' EXIT
bad() { echo "test_deb: FAIL: $*" >&2; fail=1; }

make -s deb >"$t/log" 2>&1 || { bad "make deb failed: $(tail -n 5 "$t/log")"; exit 1; }
deb=$(ls build/gomalloc_"$VERSION"_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { bad "no build/gomalloc_${VERSION}_*.deb"; exit 1; }
dpkg-deb -f "$deb" Package Version >"$t/fields"
grep -qx "Package: gomalloc" "$t/fields" && grep -qx "Version: $VERSION" "$t/fields" ||
    bad "control fields: $(cat "$t/fields")"
dpkg-deb -x "$deb" "$t/root" || { bad "dpkg-deb -x failed"; exit 1; }
lib=$(find "$t/root/usr/lib" -name "libgomalloc.so.$VERSION")
[ -n "$lib" ] || bad "no libgomalloc.so.$VERSION in the package"
libdir=$(dirname "$lib")
[ -L "$libdir/libgomalloc.so.0" ] && [ -L "$libdir/libgomalloc.so" ] || bad "soname links missing"
for f in usr/include/gomalloc.h usr/bin/gomalloc usr/share/man/man1/gomalloc.1.gz \
    usr/share/man/man3/gomalloc.3.gz usr/share/doc/gomalloc/copyright; do
    [ -e "$t/root/$f" ] || bad "not in the package: $f"
done
[ -f "$libdir/pkgconfig/gomalloc.pc" ] || bad "no pkg-config file"

"$t/root/usr/bin/gomalloc" --version >"$t/out" 2>&1 || bad "gomalloc --version failed: $(cat "$t/out")"
grep -q "^gomalloc $VERSION\$" "$t/out" || bad "--version: $(head -n 1 "$t/out")"
"$t/root/usr/bin/gomalloc" --verbose sort /etc/passwd >"$t/out" 2>"$t/err" || bad "gomalloc sort failed"
grep -qF "loaded from $libdir/libgomalloc.so.$VERSION" "$t/err" ||
    bad "the packaged launcher did not load the packaged library: $(head -n 1 "$t/err")"
cmp -s "$t/out" <(sort /etc/passwd) || bad "sort under the packaged gomalloc differs"

[ $fail -eq 0 ] && echo "test_deb: ok" >&2
exit $fail
