#!/usr/bin/env bash
# tests/fault/run.sh [default|hardened]: builds tests/fault/test_fault.c with
# the sources and -DGM_FAULT_INJECT (the hardened build's sources and seam
# flags, as the Makefile sets them, for `hardened`) and runs it.
set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=${1:-default}
OUT=$ROOT/build/fault-$BUILD
mkdir -p "$OUT"
CC=${CC:-gcc}
CFLAGS="-std=c11 -O2 -g -Wall -Wextra -Iinclude -Isrc -fno-builtin-malloc -fno-builtin-free
 -fno-builtin-calloc -fno-builtin-realloc -ftls-model=initial-exec -pthread -DGM_FAULT_INJECT"
objs=()
for f in src/*.c tests/fault/test_fault.c; do
    extra=()
    case "$f" in src/override.c | src/new_delete.c) continue ;; esac
    if [ "$BUILD" = hardened ]; then
        extra=(-DGM_HARDENED)
        case "$f" in
        src/os.c | src/hardened.c | tests/*) ;;
        src/malloc.c) extra+=(-DGM_HARDENED_INNER -include src/hardened.h -DGM_HARDENED_RAW) ;;
        *) extra+=(-DGM_HARDENED_INNER -include src/hardened.h) ;;
        esac
    fi
    o=$OUT/$(basename "$f" .c).o
    # shellcheck disable=SC2086
    "$CC" $CFLAGS "${extra[@]}" -c "$f" -o "$o"
    objs+=("$o")
done
"$CC" -pthread "${objs[@]}" -o "$OUT/test_fault"
exec "$OUT/test_fault"
