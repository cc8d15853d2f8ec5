#!/usr/bin/env bash
# gomalloc's test suite; `make test` runs it from the repository root after
# building the library.
#
#   tests/run.sh [-j N] [--list] [PATTERN...]
#
# Runs the tests N at a time (default: the number of cores), each built into
# build/tests/ and run under a watchdog (timeout).  It prints a line when a
# test starts and one when it ends,
#     PASS name 1.23s        or        FAIL name 1.23s (why)
# (the tail of a failing test's log goes to stderr; every test's full log is
# in build/tests/logs/), and ends with the line "N passed, M failed".  The
# exit status is non-zero when anything failed.  A test whose tool (g++,
# dpkg-deb) is missing passes as "(skipped: ...)".  With PATTERNs only the
# tests whose names contain one of them run.
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
RESULTS=$OUT/results
mkdir -p "$OUT" "$LOGS"

CC=${CC:-gcc}
command -v "$CC" >/dev/null 2>&1 || CC=gcc
CXX=${CXX:-g++}
TEST_CFLAGS="-std=c11 -O2 -g -Wall -Wextra -Iinclude"
# gomalloc's sources compiled into a test (sanitizer builds): every src/*.c
# except the standard-name overrides (and the C++ operators), so only the
# gm_ API is gomalloc and the sanitizer keeps its own malloc.
SRC_CFLAGS="-std=c11 -Wall -Wextra -Iinclude -Isrc -fno-builtin-malloc -fno-builtin-free \
-fno-builtin-calloc -fno-builtin-realloc -ftls-model=initial-exec -pthread"
GM_SRCS=()
for f in src/*.c; do
    case "$f" in src/override.c | src/new_delete.c) ;; *) GM_SRCS+=("$f") ;; esac
done

LIST=0
JOBS=$(nproc 2>/dev/null || echo 2)
PATTERNS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --list) LIST=1 ;;
    -j | --jobs)
        JOBS=${2:-}
        shift
        ;;
    -j*) JOBS=${1#-j} ;;
    --jobs=*) JOBS=${1#--jobs=} ;;
    -h | --help)
        sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        echo "tests/run.sh: unknown option $1 (see --help)" >&2
        exit 2
        ;;
    *) PATTERNS+=("$1") ;;
    esac
    shift
done
case "$JOBS" in
'' | *[!0-9]* | 0)
    echo "tests/run.sh: -j wants a positive number, not '$JOBS'" >&2
    exit 2
    ;;
esac

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

# ------------------------------------------------ what a test body calls
# A test body runs in its own subshell with NAME set.  It reports exactly
# once, through pass or fail: one line on stdout, and a failing log's tail
# on stderr.  T0 is when the test started.

pass() { echo "PASS $NAME $(elapsed "$T0")s"; }

# fail WHY [LOG]
fail() {
    echo "FAIL $NAME $(elapsed "$T0")s ($1)"
    if [ $# -ge 2 ] && [ -s "$2" ]; then
        tail -n 25 "$2" | sed "s/^/    $NAME| /" >&2
        echo "    $NAME| full log: ${2#"$ROOT"/}" >&2
    fi
}

# skip WHY: the test cannot run here (a tool is missing); counts as passed.
skip() { echo "PASS $NAME 0.00s (skipped: $1)"; }

# build CMD...: compiles; on failure reports the test as failed.
build() {
    local log=$LOGS/$NAME.build.log
    if ! "$@" >>"$log" 2>&1; then
        fail "build failed" "$log"
        return 1
    fi
    return 0
}

# run SECONDS [VAR=VALUE...] CMD...: runs CMD with the watchdog and reports.
run() {
    local limit=$1
    shift
    local log=$LOGS/$NAME.log rc
    timeout -k 10 "$limit" env "$@" >"$log" 2>&1 </dev/null
    rc=$?
    if [ $rc -eq 0 ]; then
        pass
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        fail "timed out after ${limit}s" "$log"
    elif [ $rc -gt 128 ]; then
        fail "killed by signal $((rc - 128))" "$log"
    else
        fail "exit $rc" "$log"
    fi
}

need_lib() {
    if [ ! -f "$LIB" ] || [ ! -f "$STATIC" ]; then
        fail "${LIB#"$ROOT"/} or ${STATIC#"$ROOT"/} missing: run make"
        return 1
    fi
    return 0
}

# need_tool TOOL...: skips the test unless every TOOL is installed.
need_tool() {
    local t
    for t in "$@"; do
        if ! command -v "$t" >/dev/null 2>&1; then
            skip "$t is not installed"
            return 1
        fi
    done
    return 0
}

RPATH="-Wl,-rpath,$LIBDIR"
GM_ENV=(GMTEST_IMPL=gomalloc)
PRELOAD=(LD_PRELOAD="$LIB" GMTEST_IMPL=gomalloc)

# ------------------------------------------------------------ the tests
# One function per test, T_<name>.  TESTS lists them longest first, so
# the slow ones start early and the short ones fill in around them.

T_unit_sizeclasses() {
    build "$CC" -std=c11 -O2 -Wall -Wextra -Isrc tests/unit/test_sizeclasses.c \
        -o "$OUT/test_sizeclasses" &&
        run 120 "$OUT/test_sizeclasses"
}
T_unit_sizeclasses_go() { run 120 bash tests/unit/test_sizeclasses_go.sh; }
T_unit_pagealloc() {
    build "$CC" -std=c11 -O2 -g -Wall -Wextra -Isrc tests/unit/test_pagealloc.c \
        src/mpagealloc.c src/os.c -o "$OUT/test_pagealloc" &&
        run 180 "$OUT/test_pagealloc"
}

T_unit_release_slots() {
    local srcs=()
    for f in "${GM_SRCS[@]}"; do [ "$f" = src/mgcscavenge.c ] || srcs+=("$f"); done
    build "$CC" $SRC_CFLAGS -DGM_FAULT_INJECT -O1 -g tests/unit/test_release_slots.c "${srcs[@]}" \
        -o "$OUT/test_release_slots" &&
        run 120 GOMALLOC_BACKGROUND=0 "$OUT/test_release_slots"
}
T_unit_span_protocol() {
    build "$CC" $SRC_CFLAGS -O1 -g tests/unit/test_span_protocol.c "${GM_SRCS[@]}" \
        -o "$OUT/test_span_protocol" &&
        run 120 "$OUT/test_span_protocol"
}

T_unit_spanmap() {
    build "$CC" $SRC_CFLAGS -O1 -g tests/unit/test_spanmap.c "${GM_SRCS[@]}" \
        -o "$OUT/test_spanmap" -lpthread &&
        run 120 "$OUT/test_spanmap"
}

# API conformance
T_api_preload() {
    need_lib && build "$CC" $TEST_CFLAGS tests/api/test_api.c -o "$OUT/test_api" -ldl -rdynamic &&
        run 180 "${PRELOAD[@]}" "$OUT/test_api"
}
T_api_static() {
    need_lib && build "$CC" $TEST_CFLAGS tests/api/test_api.c "$STATIC" -o "$OUT/test_api_static" \
        -pthread -ldl -rdynamic &&
        run 180 "${GM_ENV[@]}" "$OUT/test_api_static"
}
T_static_minimal() {
    need_lib && build "$CC" $TEST_CFLAGS tests/api/test_static_minimal.c "$STATIC" \
        -o "$OUT/test_static_minimal" -pthread -ldl || return 1
    local progs=("$OUT/test_static_minimal")
    # Fully static too, where the C library's archive is installed.
    if echo 'int main(void){return 0;}' | "$CC" -static -x c - -o "$OUT/static_probe" 2>/dev/null; then
        build "$CC" $TEST_CFLAGS -static tests/api/test_static_minimal.c "$STATIC" \
            -o "$OUT/test_static_minimal_full" -pthread || return 1
        progs+=("$OUT/test_static_minimal_full")
    fi
    run 60 sh -c 'for p in "$@"; do "$p" || exit 1; done' sh "${progs[@]}"
}
T_api_gm() {
    need_lib && build "$CC" $TEST_CFLAGS -DAPI_GM tests/api/test_api.c -o "$OUT/test_api_gm" "$LIB" \
        $RPATH -pthread &&
        run 180 "$OUT/test_api_gm"
}
T_api_gm_ubsan() {
    build "$CC" $SRC_CFLAGS -O1 -g -fsanitize=undefined -fno-sanitize-recover=all \
        -DAPI_GM tests/api/test_api.c "${GM_SRCS[@]}" -o "$OUT/test_api_gm_ubsan" -ldl &&
        run 240 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$OUT/test_api_gm_ubsan"
}
T_tiny_preload() {
    need_lib && build "$CC" $TEST_CFLAGS tests/api/test_tiny.c -o "$OUT/test_tiny" &&
        run 120 "${PRELOAD[@]}" "$OUT/test_tiny"
}
T_tiny_gm() {
    need_lib && build "$CC" $TEST_CFLAGS -DAPI_GM tests/api/test_tiny.c -o "$OUT/test_tiny_gm" \
        "$LIB" $RPATH &&
        run 120 "$OUT/test_tiny_gm"
}

# death tests
T_death() {
    need_lib && build "$CC" $TEST_CFLAGS tests/death/test_death.c -o "$OUT/test_death" &&
        run 120 "${PRELOAD[@]}" "$OUT/test_death"
}

# heap misuse (tests/misuse/misuse.c): the default build's labels (those
# still wrong are listed there as expected failures) and what the hardened
# build catches; tests/misuse/run.sh prints the whole table, glibc included.
HARDENED_LIB=$LIBDIR/libgomalloc-hardened.so
need_hardened() {
    if [ ! -f "$HARDENED_LIB" ]; then
        fail "${HARDENED_LIB#"$ROOT"/} missing: run make"
        return 1
    fi
    return 0
}
T_misuse_default() {
    need_lib && build "$CC" $TEST_CFLAGS -fno-builtin tests/misuse/misuse.c -o "$OUT/misuse" -ldl &&
        run 120 "$OUT/misuse" check default "$LIB"
}
T_misuse_hardened() {
    need_hardened &&
        build "$CC" $TEST_CFLAGS -fno-builtin tests/misuse/misuse.c -o "$OUT/misuse_h" -ldl &&
        run 120 "$OUT/misuse_h" check hardened "$HARDENED_LIB"
}
# The hardened build's guard page after each small-object span.
T_span_guard() {
    need_hardened &&
        build "$CC" $TEST_CFLAGS tests/misuse/test_span_guard.c -o "$OUT/test_span_guard" &&
        run 60 LD_PRELOAD="$HARDENED_LIB" "$OUT/test_span_guard"
}
# The hardened build keeps every promise of the API, with threads and fork.
T_api_hardened() {
    need_hardened &&
        build "$CC" $TEST_CFLAGS tests/api/test_api.c -o "$OUT/test_api_h" -ldl -rdynamic &&
        run 180 LD_PRELOAD="$HARDENED_LIB" GMTEST_IMPL=gomalloc "$OUT/test_api_h"
}
T_stress_hardened() {
    need_hardened &&
        build "$CC" $TEST_CFLAGS -pthread tests/stress/test_stress.c -o "$OUT/test_stress_h" &&
        run 180 LD_PRELOAD="$HARDENED_LIB" GMTEST_IMPL=gomalloc "$OUT/test_stress_h" --seconds 4
}

# fault injection: the sources of either build with GM_FAULT_INJECT; the
# Nth mmap/mprotect/madvise fails (tests/fault/run.sh builds and runs it)
T_fault_default() { run 240 CC="$CC" bash tests/fault/run.sh default; }
T_fault_hardened() { run 240 CC="$CC" bash tests/fault/run.sh hardened; }

# libFuzzer over the gm_ API, both builds, 45 s (`make fuzz FUZZ_SECONDS=N`
# runs it longer); skipped, with the reason, without clang and libFuzzer.
T_fuzz() {
    if tests/fuzz/setup.sh >/dev/null 2>"$LOGS/fuzz.setup.log"; then
        run 300 bash tests/fuzz/run.sh "${FUZZ_SECONDS:-45}"
    else
        skip "$(tail -n 1 "$LOGS/fuzz.setup.log")"
    fi
}

# threads
T_stress_preload() {
    need_lib && build "$CC" $TEST_CFLAGS -pthread tests/stress/test_stress.c -o "$OUT/test_stress" &&
        run 240 "${PRELOAD[@]}" "$OUT/test_stress" --seconds 12
}
T_stress_gm() {
    need_lib && build "$CC" $TEST_CFLAGS -pthread -DAPI_GM tests/stress/test_stress.c \
        -o "$OUT/test_stress_gm" "$LIB" $RPATH &&
        run 180 "$OUT/test_stress_gm" --seconds 6
}
T_stress_tsan() {
    # ThreadSanitizer over gomalloc's own code; any report fails the test.
    # No fork here: TSan's own runtime can deadlock in the child of a
    # multi-threaded fork (fork is covered by the other stress builds).
    build "$CC" $SRC_CFLAGS -O1 -g -fsanitize=thread -DAPI_GM \
        tests/stress/test_stress.c "${GM_SRCS[@]}" -o "$OUT/test_stress_tsan" &&
        run 300 TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
            "$OUT/test_stress_tsan" --seconds 15 --slots 4 --no-fork --ops 3000 --max-large 1048576
}
T_stress_tsan_clang() {
    # The same with clang's ThreadSanitizer (run when clang is installed).
    need_tool clang &&
        build clang $SRC_CFLAGS -O1 -g -fsanitize=thread -DAPI_GM \
            tests/stress/test_stress.c "${GM_SRCS[@]}" -o "$OUT/test_stress_tsan_clang" &&
        run 300 TSAN_OPTIONS="halt_on_error=1 exitcode=66" \
            "$OUT/test_stress_tsan_clang" --seconds 10 --slots 4 --no-fork --ops 3000 \
            --max-large 1048576
}
T_stress_ubsan() {
    build "$CC" $SRC_CFLAGS -O1 -g -fsanitize=undefined -fno-sanitize-recover=all \
        -DAPI_GM tests/stress/test_stress.c "${GM_SRCS[@]}" -o "$OUT/test_stress_ubsan" &&
        run 180 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$OUT/test_stress_ubsan" --seconds 6
}
T_stress_asan() {
    # AddressSanitizer checks gomalloc's own metadata accesses (its heap is
    # mmap'ed memory ASan does not track).  No fork: ASan's own allocator is
    # not fork-safe (a child can hang on its lock, seen with gcc 12).
    build "$CC" $SRC_CFLAGS -O1 -g -fsanitize=address -fno-omit-frame-pointer -DAPI_GM \
        tests/stress/test_stress.c "${GM_SRCS[@]}" -o "$OUT/test_stress_asan" &&
        run 180 ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1 \
            "$OUT/test_stress_asan" --seconds 6 --no-fork
}

# stats
T_stats() {
    need_lib && build "$CC" $TEST_CFLAGS tests/stats/stats_prog.c -o "$OUT/stats_prog" "$LIB" $RPATH &&
        run 120 GM_ROOT="$ROOT" GM_LIB="$LIB" GMTEST_BIN="$OUT" bash tests/stats/test_stats.sh
}

# seeing into the heap: profiles and leaks (-fomit-frame-pointer: stacks
# must come from the unwind tables), JSON, malloc_info, heap map, reports
T_profile() {
    need_lib &&
        build "$CC" $TEST_CFLAGS -fomit-frame-pointer -pthread tests/profile/prof_prog.c \
            -o "$OUT/prof_prog" "$LIB" $RPATH -rdynamic &&
        build "$CC" $TEST_CFLAGS -pthread -DAPI_GM tests/stress/test_stress.c \
            -o "$OUT/test_stress_prof" "$LIB" $RPATH &&
        run 240 GM_ROOT="$ROOT" GMTEST_BIN="$OUT" bash tests/profile/test_profile.sh
}
T_observe() {
    need_lib &&
        build "$CC" $TEST_CFLAGS tests/stats/observe_prog.c -o "$OUT/observe_prog" "$LIB" $RPATH &&
        run 180 GM_ROOT="$ROOT" GMTEST_BIN="$OUT" bash tests/stats/test_observe.sh
}

# options
T_options() {
    need_lib && build "$CC" $TEST_CFLAGS tests/options/conf_prog.c -o "$OUT/conf_prog" \
        -L"$LIBDIR" -lgomalloc $RPATH &&
        run 120 GM_ROOT="$ROOT" GM_LIB="$LIB" GMTEST_BIN="$OUT" bash tests/options/test_options.sh
}

# start-up and life cycle
T_early() {
    need_lib &&
        build "$CC" $TEST_CFLAGS -fPIC -shared tests/early/early_lib.c -o "$OUT/libgmt_early_link.so" &&
        build "$CC" $TEST_CFLAGS -fPIC -shared -DEARLY_PRE tests/early/early_lib.c \
            -o "$OUT/libgmt_early_pre.so" &&
        build "$CC" $TEST_CFLAGS -fPIC -shared tests/early/early_dl.c -o "$OUT/libgmt_early_dl.so" &&
        build "$CC" $TEST_CFLAGS -pthread tests/early/test_early.c -o "$OUT/test_early" \
            -L"$OUT" -lgmt_early_link -Wl,-rpath,"$OUT" -ldl &&
        build "$CC" $TEST_CFLAGS -pthread tests/early/test_early.c \
            -o "$OUT/test_early_linked" -Wl,--no-as-needed "$LIB" -L"$OUT" -lgmt_early_link \
            $RPATH -Wl,-rpath,"$OUT" -ldl &&
        run 120 GM_ROOT="$ROOT" GM_LIB="$LIB" GMTEST_BIN="$OUT" bash tests/early/test_early.sh
}
T_thread_exit() {
    need_lib && build "$CC" $TEST_CFLAGS -pthread -DAPI_GM tests/threads/test_thread_exit.c \
        -o "$OUT/test_thread_exit" "$LIB" $RPATH &&
        run 120 "$OUT/test_thread_exit"
}
T_pagecache() {
    need_lib && build "$CC" $TEST_CFLAGS -pthread tests/threads/test_pagecache.c \
        -o "$OUT/test_pagecache" "$LIB" $RPATH &&
        run 120 "$OUT/test_pagecache"
}
T_fork() {
    # About 10 s on an idle machine; the limit allows for a loaded one.
    need_lib && build "$CC" $TEST_CFLAGS -pthread tests/fork/test_fork.c -o "$OUT/test_fork" &&
        run 300 "${PRELOAD[@]}" "$OUT/test_fork"
}

T_fork_scavenger() {
    need_lib && build "$CC" $TEST_CFLAGS tests/fork/test_fork_scavenger.c \
        -o "$OUT/test_fork_scavenger" &&
        run 120 "${PRELOAD[@]}" "$OUT/test_fork_scavenger"
}

# the OS's memory
T_release() {
    need_lib && build "$CC" $TEST_CFLAGS tests/release/test_release.c -o "$OUT/test_release" \
        "$LIB" $RPATH &&
        run 120 GOMALLOC_SCAVENGE_DELAY_MS=100 "$OUT/test_release"
}
T_trim() {
    need_lib && build "$CC" $TEST_CFLAGS -pthread tests/release/test_trim.c -o "$OUT/test_trim" \
        "$LIB" $RPATH &&
        run 120 GOMALLOC_BACKGROUND=0 "$OUT/test_trim"
}
T_calloc_refused() {
    need_lib && build "$CC" $TEST_CFLAGS tests/release/test_calloc_refused.c \
        -o "$OUT/test_calloc_refused" &&
        run 120 "${PRELOAD[@]}" "$OUT/test_calloc_refused"
}
T_background() {
    need_lib && build "$CC" $TEST_CFLAGS tests/release/test_background.c -o "$OUT/test_background" &&
        run 120 GOMALLOC_BACKGROUND=1 GOMALLOC_SCAVENGE_DELAY_MS=100 \
            "${PRELOAD[@]}" "$OUT/test_background"
}
T_idle_release() {
    need_lib && build "$CC" $TEST_CFLAGS -pthread tests/release/test_idle.c -o "$OUT/test_idle" &&
        run 120 "${PRELOAD[@]}" "$OUT/test_idle"
}
T_idle_growth() {
    need_lib && build "$CC" $TEST_CFLAGS -pthread tests/release/test_idle_growth.c -o "$OUT/test_idle_growth" &&
        run 120 GOMALLOC_BACKGROUND=0 "${PRELOAD[@]}" "$OUT/test_idle_growth"
}
T_thp() {
    need_lib && build "$CC" $TEST_CFLAGS tests/release/test_thp.c -o "$OUT/test_thp" &&
        run 120 GOMALLOC_THP=always "${PRELOAD[@]}" "$OUT/test_thp"
}
T_pressure() {
    need_lib && build "$CC" $TEST_CFLAGS tests/pressure/test_pressure.c -o "$OUT/test_pressure" &&
        run 120 "${PRELOAD[@]}" "$OUT/test_pressure"
}
# the memory limit, the kernel's refusals, the cgroup (tests/pressure/test_limits.c)
limits() {
    need_lib && build "$CC" $TEST_CFLAGS tests/pressure/test_limits.c -o "$OUT/test_limits_$1" \
        "$LIB" $RPATH
}
T_limits_soft() { limits soft && run 120 GOMALLOC_MEMLIMIT_MB=1 "$OUT/test_limits_soft" soft; }
T_limits_hard() { limits hard && run 120 "$OUT/test_limits_hard" hard; }
T_limits_hardenv() {
    limits hardenv && run 120 GOMALLOC_MEMLIMIT_MB=64 GOMALLOC_MEMLIMIT_HARD=1 \
        "$OUT/test_limits_hardenv" hard_env
}
T_limits_huge() { limits huge && run 120 "$OUT/test_limits_huge" huge; }
T_limits_cgroup() { limits cgroup && run 120 "$OUT/test_limits_cgroup" cgroup; }
T_crowded() {
    need_lib && build "$CC" $TEST_CFLAGS tests/pressure/test_crowded.c -o "$OUT/test_crowded" &&
        run 120 "${PRELOAD[@]}" "$OUT/test_crowded"
}
T_ulimit() { need_lib && run 120 GM_LIB="$LIB" bash tests/pressure/test_ulimit.sh; }
T_window() {
    need_lib && build "$CC" $TEST_CFLAGS tests/pressure/test_window.c -o "$OUT/test_window" &&
        run 120 "${PRELOAD[@]}" "$OUT/test_window"
}

# C++
T_cxx() {
    need_lib && need_tool "$CXX" &&
        build "$CXX" -std=c++17 -O2 -g -Wall -Wextra -Iinclude -pthread \
            tests/cxx/test_cxx.cpp -o "$OUT/test_cxx" -ldl &&
        run 120 "${PRELOAD[@]}" "$OUT/test_cxx"
}

# gomalloc's own operator new/delete: linked -lgomalloc under --as-needed
# (the library must stay: the program's news bind to it), and preloaded.
T_cxx_link() {
    need_lib && need_tool "$CXX" &&
        build "$CXX" -std=c++17 -O2 -g -Wall -Wextra -Iinclude tests/cxx/test_new_delete.cpp \
            -o "$OUT/test_new_delete_link" -Wl,--as-needed -L"$LIBDIR" -lgomalloc $RPATH &&
        if ! readelf -d "$OUT/test_new_delete_link" | grep NEEDED | grep -q libgomalloc; then
            fail "-lgomalloc was dropped under --as-needed: $(readelf -d "$OUT/test_new_delete_link" | grep NEEDED | tr -s ' ')"
        else
            run 120 "$OUT/test_new_delete_link"
        fi
}
T_cxx_new_preload() {
    need_lib && need_tool "$CXX" &&
        build "$CXX" -std=c++17 -O2 -g -Wall -Wextra -Iinclude tests/cxx/test_new_delete.cpp \
            -o "$OUT/test_new_delete" &&
        run 120 LD_PRELOAD="$LIB" "$OUT/test_new_delete"
}

# the launcher, installing, the Debian package
T_launcher() { need_lib && run 120 GM_ROOT="$ROOT" GM_LIB="$LIB" bash tests/launcher/test_launcher.sh; }
T_install() { need_lib && run 240 GM_ROOT="$ROOT" bash tests/install/test_install.sh; }
T_deb() { need_lib && need_tool dpkg-deb && run 240 GM_ROOT="$ROOT" bash tests/install/test_deb.sh; }

# real programs
T_prog_python() { need_lib && run 240 GM_ROOT="$ROOT" GM_LIB="$LIB" bash tests/progs/test_python.sh; }
T_prog_perl() { need_lib && run 240 GM_ROOT="$ROOT" GM_LIB="$LIB" bash tests/progs/test_perl.sh; }
T_prog_git() { need_lib && run 240 GM_ROOT="$ROOT" GM_LIB="$LIB" bash tests/progs/test_git.sh; }
T_prog_gcc() { need_lib && run 240 GM_ROOT="$ROOT" GM_LIB="$LIB" bash tests/progs/test_gcc.sh; }
T_prog_sort() { need_lib && run 240 GM_ROOT="$ROOT" GM_LIB="$LIB" bash tests/progs/test_sort.sh; }

# Longest first (sanitizer builds compile every source file).
TESTS=(
    fuzz stress_tsan fork stress_preload stress_tsan_clang stress_asan prog_sort stress_ubsan
    api_gm_ubsan stress_gm prog_gcc api_preload api_static static_minimal api_gm prog_git prog_python
    prog_perl thread_exit pagecache release trim early cxx cxx_link cxx_new_preload options launcher install
    deb profile observe stats pressure background tiny_preload tiny_gm unit_sizeclasses_go unit_span_protocol unit_spanmap unit_release_slots
    unit_pagealloc calloc_refused window death unit_sizeclasses
    api_hardened fault_hardened fault_default stress_hardened misuse_hardened misuse_default span_guard idle_release idle_growth
    limits_soft limits_hard limits_hardenv limits_huge limits_cgroup fork_scavenger crowded ulimit thp
)

# --------------------------------------------------------------- the runner
RUN_LIST=()
for n in "${TESTS[@]}"; do
    selected "$n" && RUN_LIST+=("$n")
done
if [ $LIST -eq 1 ]; then
    printf '%s\n' "${RUN_LIST[@]}"
    exit 0
fi

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
total=${#RUN_LIST[@]}
passed=0
failed=0
started=0
declare -A PID_OF=()
SUITE_T0=$(now)

# Starts test $1 in the background; its report lands in $RESULTS/$1.
launch() {
    local n=$1
    started=$((started + 1))
    printf '[%2d/%d] start %s\n' "$started" "$total" "$n"
    rm -f "$LOGS/$n.build.log"
    (
        NAME=$n
        T0=$(now)
        "T_$n"
    ) >"$RESULTS/$n" 2>"$RESULTS/$n.err" &
    PID_OF[$n]=$!
}

# Reports and forgets every test that has finished.
reap() {
    local n
    for n in "${!PID_OF[@]}"; do
        kill -0 "${PID_OF[$n]}" 2>/dev/null && continue
        wait "${PID_OF[$n]}" 2>/dev/null
        unset "PID_OF[$n]"
        if [ ! -s "$RESULTS/$n" ]; then
            echo "FAIL $n (the test reported nothing)" >"$RESULTS/$n"
        fi
        cat "$RESULTS/$n"
        cat "$RESULTS/$n.err" >&2
        if grep -q '^PASS' "$RESULTS/$n"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
        fi
    done
}

for n in "${RUN_LIST[@]}"; do
    while [ ${#PID_OF[@]} -ge "$JOBS" ]; do
        wait -n 2>/dev/null
        reap
    done
    launch "$n"
done
while [ ${#PID_OF[@]} -gt 0 ]; do
    wait -n 2>/dev/null
    reap
done

echo "suite: $(elapsed "$SUITE_T0")s with -j $JOBS; logs in ${LOGS#"$ROOT"/}/" >&2
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
