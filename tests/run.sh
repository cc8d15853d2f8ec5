#!/usr/bin/env bash
# gomalloc's test suite; `make test` runs it from the repository root after
# building the library.
#
#   tests/run.sh [--list] [PATTERN...]
#
# Builds each test into build/tests/, runs it under a watchdog (timeout),
# prints one line per test,
#     PASS name 1.23s        or        FAIL name 1.23s (why)
# (the tail of a failing test's log goes to stderr; full logs are in
# build/tests/logs/), and ends with the line "N passed, M failed".  The exit
# status is non-zero when anything failed.  With PATTERNs only the tests
# whose names contain one of them run.
#
# GMTEST_LIBDIR (default build/) says where libgomalloc.so, libgomalloc.a
# and the gomalloc launcher are.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

LIBDIR=${GMTEST_LIBDIR:-$ROOT/build}
LIB=$LIBDIR/libgomalloc.so
STATIC=$LIBDIR/libgomalloc.a
OUT=$ROOT/build/tests
LOGS=$OUT/logs
mkdir -p "$OUT" "$LOGS"

CC=${CC:-gcc}
command -v "$CC" >/dev/null 2>&1 || CC=gcc
TEST_CFLAGS="-std=c11 -O2 -g -Wall -Wextra -Iinclude"
# gomalloc's sources compiled into a test (sanitizer builds): every src/*.c
# except the standard-name overrides, so only the gm_ API is gomalloc and
# the sanitizer keeps its own malloc.
SRC_CFLAGS="-std=c11 -Wall -Wextra -Iinclude -Isrc -fno-builtin-malloc -fno-builtin-free \
-fno-builtin-calloc -fno-builtin-realloc -ftls-model=initial-exec -pthread"
GM_SRCS=()
for f in src/*.c; do
    [ "$f" = src/override.c ] || GM_SRCS+=("$f")
done

LIST=0
PATTERNS=()
for a in "$@"; do
    case "$a" in
    --list) LIST=1 ;;
    -h | --help)
        sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) PATTERNS+=("$a") ;;
    esac
done

passed=0
failed=0

selected() {
    [ ${#PATTERNS[@]} -eq 0 ] && return 0
    local p
    for p in "${PATTERNS[@]}"; do
        case "$1" in *"$p"*) return 0 ;; esac
    done
    return 1
}

now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

pass() {
    echo "PASS $1 $2s"
    passed=$((passed + 1))
}

# fail NAME SECONDS WHY [LOG]
fail() {
    echo "FAIL $1 $2s ($3)"
    failed=$((failed + 1))
    if [ $# -ge 4 ] && [ -s "$4" ]; then
        tail -n 25 "$4" | sed "s/^/    $1| /" >&2
        echo "    $1| full log: ${4#"$ROOT"/}" >&2
    fi
}

# build NAME CMD...: compiles; on failure reports NAME as failed.
build() {
    local name=$1
    shift
    local log=$LOGS/$name.build.log
    local t0
    t0=$(now)
    if ! "$@" >"$log" 2>&1; then
        fail "$name" "$(elapsed "$t0")" "build failed" "$log"
        return 1
    fi
    return 0
}

# run NAME SECONDS [VAR=VALUE...] CMD...: runs CMD with the watchdog.
run() {
    local name=$1 limit=$2
    shift 2
    local log=$LOGS/$name.log
    local t0 rc
    t0=$(now)
    timeout -k 10 "$limit" env "$@" >"$log" 2>&1 </dev/null
    rc=$?
    local secs
    secs=$(elapsed "$t0")
    if [ $rc -eq 0 ]; then
        pass "$name" "$secs"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        fail "$name" "$secs" "timed out after ${limit}s" "$log"
    elif [ $rc -gt 128 ]; then
        fail "$name" "$secs" "killed by signal $((rc - 128))" "$log"
    else
        fail "$name" "$secs" "exit $rc" "$log"
    fi
}

need_lib() {
    if [ ! -f "$LIB" ] || [ ! -f "$STATIC" ]; then
        fail "$1" 0.00 "${LIB#"$ROOT"/} or ${STATIC#"$ROOT"/} missing: run make"
        return 1
    fi
    return 0
}

# t NAME: true if the test is selected (prints it with --list)
t() {
    selected "$1" || return 1
    if [ $LIST -eq 1 ]; then
        echo "$1"
        return 1
    fi
    return 0
}

RPATH="-Wl,-rpath,$LIBDIR"
GM_ENV=(GMTEST_IMPL=gomalloc)
PRELOAD=(LD_PRELOAD="$LIB" GMTEST_IMPL=gomalloc)

# ---------------------------------------------------------------- unit tests
# Written alongside the tiers they test; run when present.
if [ -f tests/unit/test_sizeclasses.c ] && t unit_sizeclasses; then
    build unit_sizeclasses "$CC" -std=c11 -O2 -Wall -Wextra -Isrc tests/unit/test_sizeclasses.c \
        -o "$OUT/test_sizeclasses" &&
        run unit_sizeclasses 120 "$OUT/test_sizeclasses"
fi
if [ -f tests/unit/test_sizeclasses_go.sh ] && t unit_sizeclasses_go; then
    run unit_sizeclasses_go 120 bash tests/unit/test_sizeclasses_go.sh
fi
if [ -f tests/unit/test_pagealloc.c ] && t unit_pagealloc; then
    build unit_pagealloc "$CC" -std=c11 -O2 -g -Wall -Wextra -Isrc tests/unit/test_pagealloc.c \
        src/mpagealloc.c src/os.c -o "$OUT/test_pagealloc" &&
        run unit_pagealloc 180 "$OUT/test_pagealloc"
fi

if [ -f tests/unit/test_span_protocol.c ] && t unit_span_protocol; then
    build unit_span_protocol "$CC" $SRC_CFLAGS -O1 -g tests/unit/test_span_protocol.c \
        "${GM_SRCS[@]}" -o "$OUT/test_span_protocol" &&
        run unit_span_protocol 120 "$OUT/test_span_protocol"
fi

# ------------------------------------------------------------ API conformance
if t api_preload && need_lib api_preload; then
    build api_preload "$CC" $TEST_CFLAGS tests/api/test_api.c -o "$OUT/test_api" -ldl -rdynamic &&
        run api_preload 180 "${PRELOAD[@]}" "$OUT/test_api"
fi
if t api_static && need_lib api_static; then
    build api_static "$CC" $TEST_CFLAGS tests/api/test_api.c "$STATIC" -o "$OUT/test_api_static" \
        -pthread -ldl -rdynamic &&
        run api_static 180 "${GM_ENV[@]}" "$OUT/test_api_static"
fi
if t api_gm && need_lib api_gm; then
    build api_gm "$CC" $TEST_CFLAGS -DAPI_GM tests/api/test_api.c -o "$OUT/test_api_gm" "$LIB" \
        $RPATH -pthread &&
        run api_gm 180 "$OUT/test_api_gm"
fi
if t api_gm_ubsan; then
    build api_gm_ubsan "$CC" $SRC_CFLAGS -O1 -g -fsanitize=undefined -fno-sanitize-recover=all \
        -DAPI_GM tests/api/test_api.c "${GM_SRCS[@]}" -o "$OUT/test_api_gm_ubsan" -ldl &&
        run api_gm_ubsan 240 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            "$OUT/test_api_gm_ubsan"
fi
if t tiny_preload && need_lib tiny_preload; then
    build tiny_preload "$CC" $TEST_CFLAGS tests/api/test_tiny.c -o "$OUT/test_tiny" &&
        run tiny_preload 120 "${PRELOAD[@]}" "$OUT/test_tiny"
fi
if t tiny_gm && need_lib tiny_gm; then
    build tiny_gm "$CC" $TEST_CFLAGS -DAPI_GM tests/api/test_tiny.c -o "$OUT/test_tiny_gm" "$LIB" \
        $RPATH &&
        run tiny_gm 120 "$OUT/test_tiny_gm"
fi

# ----------------------------------------------------------------- death tests
if t death && need_lib death; then
    build death "$CC" $TEST_CFLAGS tests/death/test_death.c -o "$OUT/test_death" &&
        run death 120 "${PRELOAD[@]}" "$OUT/test_death"
fi

# ------------------------------------------------------------------ threads
if t stress_preload && need_lib stress_preload; then
    build stress_preload "$CC" $TEST_CFLAGS -pthread tests/stress/test_stress.c \
        -o "$OUT/test_stress" &&
        run stress_preload 150 "${PRELOAD[@]}" "$OUT/test_stress" --seconds 12
fi
if t stress_gm && need_lib stress_gm; then
    build stress_gm "$CC" $TEST_CFLAGS -pthread -DAPI_GM tests/stress/test_stress.c \
        -o "$OUT/test_stress_gm" "$LIB" $RPATH &&
        run stress_gm 120 "$OUT/test_stress_gm" --seconds 6
fi
if t stress_tsan; then
    # ThreadSanitizer over gomalloc's own code; any report fails the test.
    # No fork here: TSan's own runtime can deadlock in the child of a
    # multi-threaded fork (fork is covered by the other stress builds).
    build stress_tsan "$CC" $SRC_CFLAGS -O1 -g -fsanitize=thread -DAPI_GM \
        tests/stress/test_stress.c "${GM_SRCS[@]}" -o "$OUT/test_stress_tsan" &&
        run stress_tsan 240 TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
            "$OUT/test_stress_tsan" --seconds 15 --slots 4 --no-fork --ops 3000 --max-large 1048576
fi
if t stress_tsan_clang && command -v clang >/dev/null 2>&1; then
    # The same with clang's ThreadSanitizer (run when clang is installed).
    build stress_tsan_clang clang $SRC_CFLAGS -O1 -g -fsanitize=thread -DAPI_GM \
        tests/stress/test_stress.c "${GM_SRCS[@]}" -o "$OUT/test_stress_tsan_clang" &&
        run stress_tsan_clang 240 TSAN_OPTIONS="halt_on_error=1 exitcode=66" \
            "$OUT/test_stress_tsan_clang" --seconds 10 --slots 4 --no-fork --ops 3000 \
            --max-large 1048576
fi
if t stress_ubsan; then
    build stress_ubsan "$CC" $SRC_CFLAGS -O1 -g -fsanitize=undefined -fno-sanitize-recover=all \
        -DAPI_GM tests/stress/test_stress.c "${GM_SRCS[@]}" -o "$OUT/test_stress_ubsan" &&
        run stress_ubsan 120 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            "$OUT/test_stress_ubsan" --seconds 6
fi
if t stress_asan; then
    # AddressSanitizer checks gomalloc's own metadata accesses (its heap is
    # mmap'ed memory ASan does not track).  No fork: ASan's own allocator is
    # not fork-safe (a child can hang on its lock, seen with gcc 12).
    build stress_asan "$CC" $SRC_CFLAGS -O1 -g -fsanitize=address -fno-omit-frame-pointer -DAPI_GM \
        tests/stress/test_stress.c "${GM_SRCS[@]}" -o "$OUT/test_stress_asan" &&
        run stress_asan 120 ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1 \
            "$OUT/test_stress_asan" --seconds 6 --no-fork
fi

# ------------------------------------------------------------------- stats
if t stats && need_lib stats; then
    build stats "$CC" $TEST_CFLAGS tests/stats/stats_prog.c -o "$OUT/stats_prog" "$LIB" $RPATH &&
        run stats 120 GM_ROOT="$ROOT" GM_LIB="$LIB" GMTEST_BIN="$OUT" bash tests/stats/test_stats.sh
fi

# ----------------------------------------------- start-up and life cycle
if t early && need_lib early; then
    build early "$CC" $TEST_CFLAGS -fPIC -shared tests/early/early_lib.c \
        -o "$OUT/libgmt_early_link.so" &&
        build early "$CC" $TEST_CFLAGS -fPIC -shared -DEARLY_PRE tests/early/early_lib.c \
            -o "$OUT/libgmt_early_pre.so" &&
        build early "$CC" $TEST_CFLAGS -fPIC -shared tests/early/early_dl.c \
            -o "$OUT/libgmt_early_dl.so" &&
        build early "$CC" $TEST_CFLAGS -pthread tests/early/test_early.c -o "$OUT/test_early" \
            -L"$OUT" -lgmt_early_link -Wl,-rpath,"$OUT" -ldl &&
        build early "$CC" $TEST_CFLAGS -pthread tests/early/test_early.c \
            -o "$OUT/test_early_linked" -Wl,--no-as-needed "$LIB" -L"$OUT" -lgmt_early_link \
            $RPATH -Wl,-rpath,"$OUT" -ldl &&
        run early 60 GM_ROOT="$ROOT" GM_LIB="$LIB" GMTEST_BIN="$OUT" bash tests/early/test_early.sh
fi

if t thread_exit && need_lib thread_exit; then
    build thread_exit "$CC" $TEST_CFLAGS -pthread -DAPI_GM tests/threads/test_thread_exit.c \
        -o "$OUT/test_thread_exit" "$LIB" $RPATH &&
        run thread_exit 60 "$OUT/test_thread_exit"
fi
if t fork && need_lib fork; then
    build fork "$CC" $TEST_CFLAGS -pthread tests/fork/test_fork.c -o "$OUT/test_fork" &&
        run fork 60 "${PRELOAD[@]}" "$OUT/test_fork"
fi

# ------------------------------------------------------ the OS's memory
if t release && need_lib release; then
    build release "$CC" $TEST_CFLAGS tests/release/test_release.c -o "$OUT/test_release" \
        "$LIB" $RPATH &&
        run release 60 GOMALLOC_SCAVENGE_DELAY_MS=100 "$OUT/test_release"
fi
if t calloc_refused && need_lib calloc_refused; then
    build calloc_refused "$CC" $TEST_CFLAGS tests/release/test_calloc_refused.c \
        -o "$OUT/test_calloc_refused" &&
        run calloc_refused 60 "${PRELOAD[@]}" "$OUT/test_calloc_refused"
fi
if t background && need_lib background; then
    build background "$CC" $TEST_CFLAGS tests/release/test_background.c -o "$OUT/test_background" &&
        run background 60 GOMALLOC_BACKGROUND=1 GOMALLOC_SCAVENGE_DELAY_MS=100 \
            "${PRELOAD[@]}" "$OUT/test_background"
fi
if t pressure && need_lib pressure; then
    build pressure "$CC" $TEST_CFLAGS tests/pressure/test_pressure.c -o "$OUT/test_pressure" &&
        run pressure 60 "${PRELOAD[@]}" "$OUT/test_pressure"
fi

if t window && need_lib window; then
    build window "$CC" $TEST_CFLAGS tests/pressure/test_window.c -o "$OUT/test_window" &&
        run window 60 "${PRELOAD[@]}" "$OUT/test_window"
fi

# ------------------------------------------------------------------- C++
if t cxx && need_lib cxx; then
    build cxx "${CXX:-g++}" -std=c++17 -O2 -g -Wall -Wextra -Iinclude -pthread \
        tests/cxx/test_cxx.cpp -o "$OUT/test_cxx" -ldl &&
        run cxx 60 "${PRELOAD[@]}" "$OUT/test_cxx"
fi

# ------------------------------------------------------- real programs
for p in python perl git gcc sort; do
    if t "prog_$p" && need_lib "prog_$p"; then
        run "prog_$p" 240 GM_ROOT="$ROOT" GM_LIB="$LIB" bash "tests/progs/test_$p.sh"
    fi
done

[ $LIST -eq 1 ] && exit 0
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
