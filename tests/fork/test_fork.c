/*
 * test_fork: fork() and the allocator.
 *
 *  single   A single-threaded program holding live objects of every kind
 *           (tiny, small classes, large, calloc'ed, realloc'ed) forks,
 *           SINGLE_FORKS times.  Each child checks the inherited objects,
 *           frees them, allocates and frees a few thousand objects of its
 *           own, starts a thread that does the same, forks a grandchild
 *           that allocates too, and exits through exit() (so exit-time
 *           destructors run).  The parent's objects are intact after each
 *           fork and it keeps allocating.
 *  thread   The main thread allocates and frees without pause (a set of
 *           live objects, each published only once written), a second
 *           worker does the same, while another thread forks THREAD_FORKS
 *           times.  Each child (whose only thread is the forking one)
 *           checks and frees the live objects main had published,
 *           allocates and frees objects of its own, starts a thread, and
 *           exits.
 * A child that deadlocks is killed by alarm(CHILD_SECONDS) and reported; one
 * that crashes or fails a check fails the test through its exit status.
 *
 * Run with LD_PRELOAD=build/libgomalloc.so and GMTEST_IMPL=gomalloc.
 * Usage: test_fork [single|thread]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check.h"
#include "../common.h"

/* Enough forks to meet each interleaving many times, few enough for the
 * test to take seconds, not a minute, on a loaded machine. */
#define SINGLE_FORKS 12
#define THREAD_FORKS 24
/* A child takes well under a second; this long means it is stuck. */
#define CHILD_SECONDS 30

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

#pragma GCC diagnostic ignored "-Wuse-after-free"

static void *launder(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* The pattern on an object's first and last 128 bytes (cheap for big ones). */
#define EDGE 128
static void fill(void *p, size_t n, uint64_t seed) {
    if (n <= 2 * EDGE) {
        gmt_fill_range(p, 0, n, seed);
        return;
    }
    gmt_fill_range(p, 0, EDGE, seed);
    gmt_fill_range(p, n - EDGE, n, seed);
}
static size_t check(const void *p, size_t n, uint64_t seed) {
    if (n <= 2 * EDGE)
        return gmt_check_range(p, 0, n, seed);
    size_t bad = gmt_check_range(p, 0, EDGE, seed);
    return bad != (size_t)-1 ? bad : gmt_check_range(p, n - EDGE, n, seed);
}

/* Sizes of every kind: tiny, small classes, large. */
static size_t pick_size(uint64_t *rng) {
    uint64_t r = gmt_rand(rng);
    switch (r % 8) {
    case 0:
        return 1 + (r >> 8) % 15;
    case 1:
    case 2:
    case 3:
        return 16 + (r >> 8) % 1024;
    case 4:
    case 5:
        return 1024 + (r >> 8) % (31 * KiB);
    case 6:
        return 32 * KiB + (r >> 8) % (200 * KiB);
    default:
        return 8 + (r >> 8) % 256;
    }
}

/* Some allocation work that leaves nothing behind. */
static void churn(uint64_t seed, unsigned n) {
    enum { LIVE = 256 };
    void *live[LIVE] = {0};
    size_t sz[LIVE] = {0};
    uint64_t rng = seed | 1;
    for (unsigned i = 0; i < n; i++) {
        unsigned k = (unsigned)(gmt_rand(&rng) % LIVE);
        if (live[k]) {
            size_t bad = check(live[k], sz[k], seed + k);
            CHECK_MSG(bad == (size_t)-1, "object of %zu B corrupted at %zu", sz[k], bad);
            free(live[k]);
            live[k] = NULL;
        }
        sz[k] = pick_size(&rng);
        switch (gmt_rand(&rng) % 6) {
        case 0:
            live[k] = launder(calloc(1, sz[k]));
            if (live[k])
                CHECK_MSG(gmt_check_zero(live[k], sz[k]) == (size_t)-1, "calloc(%zu) not zero",
                          sz[k]);
            break;
        case 1: {
            void *p = launder(malloc(sz[k] / 2 + 1));
            live[k] = launder(realloc(p, sz[k]));
            if (!live[k])
                free(p);
            break;
        }
        default:
            live[k] = launder(malloc(sz[k]));
        }
        if (CHECK_MSG(live[k] != NULL, "allocating %zu B failed", sz[k]))
            fill(live[k], sz[k], seed + k);
    }
    for (unsigned k = 0; k < LIVE; k++) {
        if (live[k])
            CHECK(check(live[k], sz[k], seed + k) == (size_t)-1);
        free(live[k]);
    }
}

static void *churn_thread(void *arg) {
    churn((uint64_t)(uintptr_t)arg, 3000);
    return NULL;
}

/* Waits for a child; returns 0 if it exited 0. */
static int wait_child(pid_t pid, const char *what) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            CHECK_MSG(0, "%s: waitpid: %s", what, strerror(errno));
            return -1;
        }
    }
    if (WIFSIGNALED(st)) {
        CHECK_MSG(0, "%s: child died of signal %d (%s)%s", what, WTERMSIG(st),
                  strsignal(WTERMSIG(st)),
                  WTERMSIG(st) == SIGALRM ? ": hung for 10 s, deadlock after fork?" : "");
        return -1;
    }
    return CHECK_MSG(WEXITSTATUS(st) == 0, "%s: child exit status %d", what, WEXITSTATUS(st))
               ? 0
               : -1;
}

/* fork(), reporting a failure (then -1); the child has CHILD_SECONDS to finish. */
static pid_t fork_child(void) {
    pid_t pid = fork();
    if (!CHECK_MSG(pid >= 0, "fork: %s", strerror(errno)))
        return -1;
    if (pid == 0)
        alarm(CHILD_SECONDS);
    return pid;
}

/* What a child does besides checking what it inherited. */
static void child_work(uint64_t seed) {
    churn(seed, 4000);
    pthread_t t;
    if (CHECK(pthread_create(&t, NULL, churn_thread, (void *)(uintptr_t)(seed * 3)) == 0))
        pthread_join(t, NULL);
    void *big = launder(malloc(8 * MiB));
    if (CHECK(big != NULL))
        memset(big, 7, 8 * MiB);
    free(big);
}

/* ---- single-threaded ---- */

#define HELD 400
static void *held[HELD];
static size_t held_size[HELD];

static void hold_all(uint64_t seed) {
    uint64_t rng = seed;
    for (unsigned i = 0; i < HELD; i++) {
        held_size[i] = pick_size(&rng);
        if (i % 5 == 0)
            held[i] = launder(calloc(held_size[i], 1));
        else if (i % 5 == 1) {
            void *p = launder(malloc(7));
            held[i] = launder(realloc(p, held_size[i]));
        } else
            held[i] = launder(malloc(held_size[i]));
        if (CHECK(held[i] != NULL))
            fill(held[i], held_size[i], seed + i);
    }
}

static size_t check_held(uint64_t seed) {
    size_t bad = 0;
    for (unsigned i = 0; i < HELD; i++)
        if (held[i] && check(held[i], held_size[i], seed + i) != (size_t)-1)
            bad++;
    return bad;
}

static void free_held(void) {
    for (unsigned i = 0; i < HELD; i++) {
        free(held[i]);
        held[i] = NULL;
    }
}

static void test_single(void) {
    double t0 = gmt_now();
    for (unsigned round = 0; round < SINGLE_FORKS; round++) {
        uint64_t seed = 1000 + round * 7919;
        hold_all(seed);
        /* a partly used tiny block and a half-full span of the parent's */
        void *tiny = launder(malloc(3));
        unsigned long failed_before = check_failures();
        pid_t pid = fork_child();
        if (pid < 0)
            break;
        if (pid == 0) {
            CHECK_MSG(check_held(seed) == 0, "child: inherited objects corrupted");
            free(tiny);
            free_held();
            child_work(seed * 5);
            /* and a grandchild */
            unsigned long child_failed = check_failures();
            pid_t g = fork();
            if (g == 0) {
                alarm(CHILD_SECONDS);
                churn(seed * 11, 2000);
                exit(check_failures() != child_failed ? 1 : 0);
            }
            if (CHECK(g > 0))
                wait_child(g, "grandchild");
            exit(check_failures() != failed_before ? 1 : 0);
        }
        /* the parent goes on, while the child runs */
        churn(seed * 13, 1000);
        wait_child(pid, "single-threaded fork");
        CHECK_MSG(check_held(seed) == 0, "parent: objects corrupted after fork");
        free(tiny);
        free_held();
        if (check_failures())
            break;
    }
    check_say("test_fork: single: %d forks, %.2f s\n", SINGLE_FORKS, gmt_now() - t0);
}

/* ---- fork from a thread while main allocates ---- */

#define SLOTS 512
static void *slot_ptr[SLOTS];
static size_t slot_size[SLOTS];
static uint64_t slot_seed[SLOTS];
static int stop;

static void *worker(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
        churn(seed++, 2000);
    return NULL;
}

static void *forker(void *arg) {
    (void)arg;
    for (unsigned i = 0; i < THREAD_FORKS; i++) {
        unsigned long failed_before = check_failures();
        pid_t pid = fork_child();
        if (pid < 0)
            break;
        if (pid == 0) {
            /* main's published objects: intact, and ours to free now */
            size_t n = 0, bad = 0;
            for (unsigned k = 0; k < SLOTS; k++) {
                void *p = __atomic_load_n(&slot_ptr[k], __ATOMIC_ACQUIRE);
                if (!p)
                    continue;
                n++;
                if (check(p, slot_size[k], slot_seed[k]) != (size_t)-1)
                    bad++;
                free(p);
            }
            CHECK_MSG(bad == 0, "child: %zu of %zu of main's objects corrupted", bad, n);
            child_work(77 + i);
            if (i % 2)
                _exit(check_failures() != failed_before ? 1 : 0);
            exit(check_failures() != failed_before ? 1 : 0);
        }
        wait_child(pid, "fork from a thread");
        if (check_failures() > 10)
            break;
        usleep(5000);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_thread(void) {
    double t0 = gmt_now();
    pthread_t f, w;
    CHECK(pthread_create(&w, NULL, worker, (void *)(uintptr_t)99) == 0);
    CHECK(pthread_create(&f, NULL, forker, NULL) == 0);
    uint64_t rng = 4242;
    unsigned long ops = 0;
    while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
        unsigned k = (unsigned)(gmt_rand(&rng) % SLOTS);
        void *old = __atomic_exchange_n(&slot_ptr[k], NULL, __ATOMIC_ACQ_REL);
        if (old) {
            CHECK(check(old, slot_size[k], slot_seed[k]) == (size_t)-1);
            free(old);
        }
        size_t sz = pick_size(&rng);
        void *p = launder(malloc(sz));
        if (!CHECK(p != NULL))
            continue;
        slot_size[k] = sz;
        slot_seed[k] = gmt_rand(&rng);
        fill(p, sz, slot_seed[k]);
        __atomic_store_n(&slot_ptr[k], p, __ATOMIC_RELEASE);
        ops++;
    }
    pthread_join(f, NULL);
    pthread_join(w, NULL);
    for (unsigned k = 0; k < SLOTS; k++) {
        if (slot_ptr[k])
            CHECK(check(slot_ptr[k], slot_size[k], slot_seed[k]) == (size_t)-1);
        free(slot_ptr[k]);
        slot_ptr[k] = NULL;
    }
    check_say("test_fork: thread: %d forks from a thread, %lu allocations by main meanwhile, "
              "%.2f s\n", THREAD_FORKS, ops, gmt_now() - t0);
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    if (!strcmp(which, "all") || !strcmp(which, "single"))
        test_single();
    if (!strcmp(which, "all") || !strcmp(which, "thread"))
        test_thread();
    return check_done("test_fork");
}
