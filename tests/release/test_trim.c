/*
 * test_trim: malloc_trim(0) gives back every free page, metadata included.
 *
 *  a. 768 MiB of 16-byte objects (the class with the most span metadata
 *     per byte: about 4% of the heap in span structs), chained through
 *     their own first word so the test keeps no array, every object
 *     written, all freed; then malloc_trim(0) must bring the resident set
 *     back to within 16 MiB of where it started.  Before span structs went
 *     back with the pages, about 32 MiB of them stayed resident here.
 *  b. A fragmented live heap: 256 MiB of 1000-byte objects, 90% freed at
 *     random; malloc_trim(0) must give back a good part of the free pages
 *     (spans left with no live object, and the pages inside live spans
 *     that hold none): RSS drops by at least a quarter of the bytes freed,
 *     and the live objects are intact.
 *  c. Another thread's memory: a thread allocates 256 MiB of 1000-byte
 *     objects and waits; the main thread frees them all.  The spans stay the
 *     waiting thread's (only it may move them), but malloc_trim(0) in the
 *     main thread must give back the pages those frees emptied: RSS drops
 *     by at least half the bytes freed.
 * The measured numbers are printed.
 *
 * Linked with build/libgomalloc.so.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gomalloc.h"
#include "../check.h"
#include "../common.h"

#define MiB ((size_t)1 << 20)
#define SMALL_BYTES (768 * MiB)
#define SMALL_SIZE 16
#define TRIM_SLACK (16 * MiB)
#define FRAG_BYTES (256 * MiB)
#define FRAG_SIZE 1000

static double mib(size_t b) { return (double)b / MiB; }

static gm_heap_stats stats(void) {
    gm_heap_stats h;
    gm_get_heap_stats(&h);
    return h;
}

static void small_objects(void) {
    size_t rss0 = gmt_rss();
    void **head = NULL;
    for (size_t i = 0; i < SMALL_BYTES / SMALL_SIZE; i++) {
        void **p = malloc(SMALL_SIZE);
        if (!p) {
            CHECK_MSG(0, "malloc(%d) failed after %zu objects", SMALL_SIZE, i);
            break;
        }
        p[0] = head;
        p[1] = (void *)i;
        head = p;
    }
    size_t rss_full = gmt_rss();
    while (head) {
        void **next = head[0];
        free(head);
        head = next;
    }
    double t0 = gmt_now();
    malloc_trim(0);
    double trim_ms = (gmt_now() - t0) * 1000;
    size_t rss = gmt_rss();
    check_say("test_trim: a. %zu MiB of %d B objects: RSS %.1f MiB at start, %.1f full, "
              "%.1f after free + malloc_trim (%.1f ms)\n",
              SMALL_BYTES / MiB, SMALL_SIZE, mib(rss0), mib(rss_full), mib(rss), trim_ms);
    CHECK_MSG(rss <= rss0 + TRIM_SLACK, "after malloc_trim: RSS %.1f MiB, start %.1f MiB",
              mib(rss), mib(rss0));
}

static void fragmented(void) {
    size_t n = FRAG_BYTES / FRAG_SIZE;
    char **v = malloc(n * sizeof *v);
    CHECK(v != NULL);
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(FRAG_SIZE);
        CHECK(v[i] != NULL);
        if (v[i])
            memset(v[i], 0x5a, FRAG_SIZE);
    }
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    size_t freed = 0;
    for (size_t i = 0; i < n; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        if (rng % 10 != 0) {
            free(v[i]);
            v[i] = NULL;
            freed += FRAG_SIZE;
        }
    }
    gm_heap_stats h1 = stats();
    size_t rss1 = gmt_rss();
    malloc_trim(0);
    gm_heap_stats h2 = stats();
    size_t rss2 = gmt_rss();
    check_say("test_trim: b. %zu MiB, %.0f MiB freed at random: heap_released %.1f -> %.1f MiB, "
              "RSS %.1f -> %.1f MiB\n",
              FRAG_BYTES / MiB, mib(freed), mib(h1.heap_released), mib(h2.heap_released),
              mib(rss1), mib(rss2));
    /* Most of what goes back is pages inside spans that still hold objects
     * (spans of 1000-byte objects hold 32 of them over 4 pages): they stay
     * the spans', so heap_released does not count them; RSS shows them. */
    CHECK_MSG(rss1 >= rss2 + freed / 4,
              "fragmented heap: malloc_trim gave back %.1f MiB of RSS, %.1f MiB freed",
              mib(rss1 > rss2 ? rss1 - rss2 : 0), mib(freed));
    CHECK(h2.heap_released >= h1.heap_released);
    for (size_t i = 0; i < n; i++) {
        if (v[i]) {
            CHECK(v[i][0] == 0x5a && v[i][FRAG_SIZE - 1] == 0x5a);
            free(v[i]);
        }
    }
    free(v);
}

static char **other_objs;
static size_t other_n;
static pthread_mutex_t other_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t other_cv = PTHREAD_COND_INITIALIZER;
static int other_stage; /* 1: allocated; 2: may exit */

static void *other_owner(void *arg) {
    (void)arg;
    for (size_t i = 0; i < other_n; i++) {
        other_objs[i] = malloc(FRAG_SIZE);
        if (other_objs[i])
            memset(other_objs[i], 0x3c, FRAG_SIZE);
    }
    pthread_mutex_lock(&other_mu);
    other_stage = 1;
    pthread_cond_broadcast(&other_cv);
    while (other_stage != 2)
        pthread_cond_wait(&other_cv, &other_mu);
    pthread_mutex_unlock(&other_mu);
    return NULL;
}

static void other_threads_spans(void) {
    other_n = FRAG_BYTES / FRAG_SIZE;
    other_objs = calloc(other_n, sizeof *other_objs);
    CHECK(other_objs != NULL);
    if (!other_objs)
        return;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_owner, NULL) == 0);
    pthread_mutex_lock(&other_mu);
    while (other_stage != 1)
        pthread_cond_wait(&other_cv, &other_mu);
    pthread_mutex_unlock(&other_mu);
    size_t freed = 0;
    for (size_t i = 0; i < other_n; i++) {
        CHECK(other_objs[i] != NULL && other_objs[i][FRAG_SIZE - 1] == 0x3c);
        free(other_objs[i]);
        freed += FRAG_SIZE;
    }
    size_t rss1 = gmt_rss();
    malloc_trim(0);
    size_t rss2 = gmt_rss();
    check_say("test_trim: c. %.0f MiB freed by another thread than their owner, which waits: "
              "RSS %.1f -> %.1f MiB\n", mib(freed), mib(rss1), mib(rss2));
    CHECK_MSG(rss1 >= rss2 + freed / 2,
              "another thread's spans: malloc_trim gave back %.1f MiB of RSS, %.1f MiB freed",
              mib(rss1 > rss2 ? rss1 - rss2 : 0), mib(freed));
    pthread_mutex_lock(&other_mu);
    other_stage = 2;
    pthread_cond_broadcast(&other_cv);
    pthread_mutex_unlock(&other_mu);
    pthread_join(t, NULL);
    free(other_objs);
}

int main(void) {
    small_objects();
    fragmented();
    other_threads_spans();
    return check_done("test_trim");
}
