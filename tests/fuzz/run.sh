#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS]: fuzzes the gm_ API (tests/fuzz/fuzz_gm.c) with
# libFuzzer, the default build for about 55% of SECONDS (default 45) and the
# hardened build for the rest, each under AddressSanitizer and UBSan.
# Corpora persist in build/fuzz/corpus-*; a crash leaves build/fuzz/crash-*.
# Each run's time and executions are appended to build/fuzz/history.tsv.
# Exits 77 (skipped) when clang with libFuzzer is missing and cannot be
# installed (tests/fuzz/setup.sh).
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
SECONDS_TOTAL=${1:-45}
OUT=$ROOT/build/fuzz
mkdir -p "$OUT"
FCC=$(tests/fuzz/setup.sh) || exit 77

FLAGS="-std=c11 -O1 -g -Wall -Wextra -Iinclude -Isrc -fno-builtin-malloc -fno-builtin-free
 -fno-builtin-calloc -fno-builtin-realloc -pthread
 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
SRCS=()
for f in src/*.c; do
    case "$f" in src/override.c | src/new_delete.c | src/hardened.c) ;; *) SRCS+=("$f") ;; esac
done

# build NAME EXTRA_FLAGS...: compiles fuzz_gm and the sources into $OUT/fuzz_NAME
build() {
    local name=$1
    shift
    local obj=$OUT/obj-$name srcs=("${SRCS[@]}") f o objs=()
    mkdir -p "$obj"
    [ "$name" = hardened ] && srcs+=(src/hardened.c)
    for f in "${srcs[@]}" tests/fuzz/fuzz_gm.c; do
        o=$obj/$(basename "$f" .c).o
        local extra=()
        # the hardened build's seam, as the Makefile sets it
        if [ "$name" = hardened ]; then
            case "$f" in
            src/os.c | src/hardened.c | tests/*) ;;
            src/malloc.c) extra=(-DGM_HARDENED_INNER -include src/hardened.h -DGM_HARDENED_RAW) ;;
            *) extra=(-DGM_HARDENED_INNER -include src/hardened.h) ;;
            esac
        fi
        objs+=("$o")
        # up to date: newer than its source and every header
        if [ "$o" -nt "$f" ] && [ "$o" -nt "$0" ] &&
            [ -z "$(find src include -name '*.h' -newer "$o" 2>/dev/null)" ]; then
            continue
        fi
        # shellcheck disable=SC2086
        "$FCC" $FLAGS "$@" "${extra[@]}" -c "$f" -o "$o" || return 1
    done
    # shellcheck disable=SC2086
    "$FCC" $FLAGS "${objs[@]}" -o "$OUT/fuzz_$name"
}

build default || exit 1
build hardened -DGM_HARDENED -DFUZZ_HARDENED || exit 1

# Seeds: short programs that reach each operation at once (op, slot, then
# the operation's bytes; see step() in fuzz_gm.c), so a fresh corpus does not
# have to find them.
SEEDS=(
    '\x00\x00\x01\x32\x00\x02\x00\x03\x20\x4e\x02\x00\x00\x05\x00\x00\x00'
    '\x00\x01\x05\x00\x14\x02\x01\x05\x28\x00\x02\x01\x01\x10\x00\x10\x01'
    '\x03\x02\x01\x10\x00\x01\x40\x00\x0b\x02\x0d\x02\x03\x02\x03\x30\x00\x03\x50\x00'
    '\x04\x03\x06\x01\x20\x00\x05\x04\x0b\x03\x00\x90\x06\x05\x0d\x01\x64\x00\x07\x06\x00\x01\x64\x00\x01'
    '\x0a\x07\x02\x64\x00\x20\x07\x0a\x08\x03\x00\x0a\x08\x20\x08'
    '\x08\x00\x00\x08\x00\x02\x00\x00\x02\x00\x00\x08\x00\x04\x0c\x00\x00'
    '\x00\x09\x04\x07\x00\x09\x09\x04\x09\x00\x31\x09'
)
seed() {
    local dir=$1 i=0 s
    for s in "${SEEDS[@]}"; do
        i=$((i + 1))
        [ -f "$dir/seed-$i" ] || printf "$s" >"$dir/seed-$i"
    done
}

# fuzz NAME SECONDS
status=0
fuzz() {
    local name=$1 secs=$2 log=$OUT/fuzz_$1.log
    mkdir -p "$OUT/corpus-$name"
    seed "$OUT/corpus-$name"
    ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
        "$OUT/fuzz_$name" -max_total_time="$secs" -max_len=2048 -rss_limit_mb=3072 \
        -timeout=20 -print_final_stats=1 -artifact_prefix="$OUT/" "$OUT/corpus-$name" \
        >"$log" 2>&1
    local rc=$?
    local execs
    execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
    printf '%s\t%s\t%ss\t%s execs\trc=%s\n' "$(date -u +%FT%TZ)" "$name" "$secs" "${execs:-?}" \
        "$rc" | tee -a "$OUT/history.tsv"
    if [ $rc -ne 0 ]; then
        tail -n 40 "$log" >&2
        status=1
    fi
}
fuzz default $((SECONDS_TOTAL * 55 / 100))
fuzz hardened $((SECONDS_TOTAL - SECONDS_TOTAL * 55 / 100))
awk -F'\t' '{ split($3, s, "s"); split($4, e, " "); t[$2] += s[1]; x[$2] += e[1] }
    END { for (b in t) printf "fuzz total so far, %s build: %d s, %d executions\n", b, t[b], x[b] }' \
    "$OUT/history.tsv"
exit $status
