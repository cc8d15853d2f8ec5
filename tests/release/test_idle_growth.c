/*
 * test_idle_growth: an idle thread's spans, emptied by another thread's
 * frees, give their pages back while that other thread grows the heap, with
 * no background thread (run with GOMALLOC_BACKGROUND=0).
 *
 * A helper thread allocates and writes 64 MiB of 1000-byte objects, then
 * waits on a pipe: alive, owning its spans, making no call.  The main
 * thread frees all of it (frees into spans it does not own), then grows
 * the heap by 32 KiB objects, one span each, a few at a time with short
 * sleeps between, until the resident set shows at least half of the helper's
 * pages gone, or a generous deadline.  Nothing else looks at idle threads
 * here: the background thread is off, and the main thread refills at most
 * 800 times, fewer than the IDLE_CHECK (1024) refills after which a cache
 * also looks (mcache.c), so only the looks made before the heap grows
 * (proc_release_idle_caches) can give those pages back.  Each step sleeps,
 * so the steps span many idle windows (IDLE_LOOK_NS, proc.c) however fast
 * the machine; the time it took is printed, not asserted.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../check.h"
#include "../common.h"

#define MiB ((size_t)1 << 20)
#define FILL (64 * MiB)
#define SMALL 1000
#define NSMALL (FILL / SMALL)
#define GROW 32768
#define GROW_STEP 4      /* objects per step: 128 KiB */
#define MAX_STEPS 200    /* at most 25 MiB of growth, 800 refills */
#define DEADLINE_S 30.0

static void **objs;
static int wake[2];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *helper(void *arg) {
    int *ready = arg;
    for (size_t i = 0; i < NSMALL; i++) {
        objs[i] = malloc(SMALL);
        if (!objs[i])
            abort();
        memset(objs[i], 1, SMALL);
    }
    __atomic_store_n(ready, 1, __ATOMIC_RELEASE);
    char c;
    while (read(wake[0], &c, 1) < 0) /* idle until told to go */
        ;
    return NULL;
}

int main(void) {
    objs = malloc(NSMALL * sizeof *objs);
    void **grown = malloc(MAX_STEPS * GROW_STEP * sizeof *grown);
    CHECK(objs && grown && pipe(wake) == 0);
    size_t base = gmt_rss_noalloc();
    int ready = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, helper, &ready) == 0);
    while (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE))
        usleep(1000);
    size_t filled = gmt_rss_noalloc();
    CHECK_MSG(filled >= base + FILL / 2, "the helper's objects are resident: %zu MiB over %zu",
              (filled - base) / MiB, base / MiB);
    for (size_t i = 0; i < NSMALL; i++)
        free(objs[i]);

    /* What must go: at least half the helper's 64 MiB, net of the growth. */
    double t0 = now();
    size_t steps = 0, r = gmt_rss_noalloc();
    while (r > filled - FILL / 2 + steps * GROW_STEP * GROW && steps < MAX_STEPS &&
           now() - t0 < DEADLINE_S) {
        for (int k = 0; k < GROW_STEP; k++) {
            void *p = malloc(GROW);
            CHECK(p != NULL);
            memset(p, 2, GROW);
            grown[steps * GROW_STEP + (size_t)k] = p;
        }
        steps++;
        usleep(2000);
        r = gmt_rss_noalloc();
    }
    char msg[200];
    int len = snprintf(msg, sizeof msg,
                       "test_idle_growth: base %zu MiB, filled %zu MiB, %zu MiB after %zu steps "
                       "(%zu MiB grown) in %.2f s\n",
                       base / MiB, filled / MiB, r / MiB, steps, steps * GROW_STEP * GROW / MiB,
                       now() - t0);
    if (write(2, msg, (size_t)len) < 0)
        return 1;
    CHECK_MSG(r <= filled - FILL / 2 + steps * GROW_STEP * GROW,
              "the idle thread's emptied pages stayed: RSS %zu MiB, filled %zu MiB", r / MiB,
              filled / MiB);
    for (size_t i = 0; i < steps * GROW_STEP; i++)
        free(grown[i]);
    CHECK(write(wake[1], "x", 1) == 1);
    pthread_join(t, NULL);
    return check_done("test_idle_growth");
}
