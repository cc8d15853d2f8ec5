#!/usr/bin/env bash
# tests/misuse/run.sh [LIBDIR]: runs every heap-misuse case against gomalloc's
# default build, its hardened build and glibc, and writes the Markdown table
# (the one in README.md) to build/misuse/table.md and stdout.
set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIBDIR=${1:-$ROOT/build}
OUT=$ROOT/build/misuse
mkdir -p "$OUT"
for lib in libgomalloc.so libgomalloc-hardened.so; do
    [ -f "$LIBDIR/$lib" ] || { echo "misuse: $LIBDIR/$lib missing: run make" >&2; exit 2; }
done
${CC:-gcc} -std=c11 -O2 -g -Wall -Wextra -fno-builtin -I"$ROOT/include" \
    "$ROOT/tests/misuse/misuse.c" -o "$OUT/misuse" -ldl
"$OUT/misuse" table "$LIBDIR/libgomalloc.so" "$LIBDIR/libgomalloc-hardened.so" | tee "$OUT/table.md"
