/*
 * test_tiny: gomalloc's tiny objects (1-15 bytes) are reused.
 *
 * Many tiny objects are allocated, written to their full usable size,
 * checked, and freed in random order, over and over.  After a warm-up the
 * resident set must not grow, and the blocks freed must be the ones handed
 * out again (gomalloc frees tiny blocks, which Go never does).  A steady
 * malloc/free loop of single tiny objects must not grow RSS either.
 *
 * Standard names under LD_PRELOAD, or gm_ names with -DAPI_GM.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "../common.h"

enum { N = 400000 };
static void *objs[N];
static uint8_t lens[N];
static uintptr_t blocks[N];
static int strict;

static int cmp_uptr(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void shuffle(uint64_t *rng) {
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(gmt_rand(rng) % (uint64_t)(i + 1));
        void *t = objs[i];
        objs[i] = objs[j];
        objs[j] = t;
        uint8_t l = lens[i];
        lens[i] = lens[j];
        lens[j] = l;
    }
}

/* Allocates N tiny objects, fills and checks them, frees them shuffled. */
static void round_trip(uint64_t *rng, int keep_half) {
    for (int i = 0; i < N; i++) {
        if (keep_half && objs[i])
            continue;
        lens[i] = (uint8_t)(1 + gmt_rand(rng) % 15);
        objs[i] = API(malloc)(lens[i]);
        if (!CHECK(objs[i] != NULL))
            return;
        size_t u = API(malloc_usable_size)(objs[i]);
        CHECK_MSG(u >= lens[i] && (u <= 16 || !strict), "tiny malloc(%u): usable %zu", lens[i], u);
        if (u > 16 && !strict)
            u = 16;
        lens[i] = (uint8_t)u; /* all usable bytes are the program's */
        gmt_fill(objs[i], u, (uint64_t)(uintptr_t)objs[i]);
    }
    for (int i = 0; i < N; i++) {
        size_t bad = gmt_check(objs[i], lens[i], (uint64_t)(uintptr_t)objs[i]);
        CHECK_MSG(bad == (size_t)-1, "tiny object %p (usable %u) damaged at %zu", objs[i], lens[i],
                  bad);
    }
    shuffle(rng);
    for (int i = 0; i < N; i++) {
        if (keep_half && (i & 1))
            continue;
        API(free)(objs[i]);
        objs[i] = NULL;
    }
}

int main(void) {
    uint64_t rng = 99;
    strict = gmt_strict();
    double t0 = gmt_now();

    /* warm up, then the resident set must stay flat */
    for (int r = 0; r < 3; r++)
        round_trip(&rng, 0);
    size_t rss0 = gmt_rss();
    for (int r = 0; r < 15 && check_failures() < 10; r++)
        round_trip(&rng, 0);
    size_t rss1 = gmt_rss();
    check_say("test_tiny: %d x %d tiny objects: RSS %zu KiB -> %zu KiB\n", 18, N, rss0 >> 10,
              rss1 >> 10);
    CHECK_MSG(rss1 <= rss0 + (4u << 20), "RSS grew from %zu KiB to %zu KiB over 15 rounds",
              rss0 >> 10, rss1 >> 10);

    /* half stay live, half churn: still flat */
    round_trip(&rng, 1);
    round_trip(&rng, 1);
    size_t rss2 = gmt_rss();
    for (int r = 0; r < 10 && check_failures() < 10; r++)
        round_trip(&rng, 1);
    size_t rss3 = gmt_rss();
    check_say("test_tiny: half live: RSS %zu KiB -> %zu KiB\n", rss2 >> 10, rss3 >> 10);
    CHECK_MSG(rss3 <= rss2 + (4u << 20), "RSS grew from %zu KiB to %zu KiB with half live",
              rss2 >> 10, rss3 >> 10);
    for (int i = 0; i < N; i++) {
        API(free)(objs[i]);
        objs[i] = NULL;
    }

    /* the freed blocks are handed out again */
    for (int i = 0; i < N; i++) {
        lens[i] = (uint8_t)(1 + gmt_rand(&rng) % 15);
        objs[i] = API(malloc)(lens[i]);
        blocks[i] = (uintptr_t)objs[i] & ~(uintptr_t)4095;
    }
    qsort(blocks, N, sizeof blocks[0], cmp_uptr);
    shuffle(&rng);
    for (int i = 0; i < N; i++)
        API(free)(objs[i]);
    int reused = 0;
    for (int i = 0; i < N; i++) {
        objs[i] = API(malloc)(1 + i % 15);
        uintptr_t page = (uintptr_t)objs[i] & ~(uintptr_t)4095;
        reused += bsearch(&page, blocks, N, sizeof blocks[0], cmp_uptr) != NULL;
    }
    check_say("test_tiny: %d of %d new tiny objects reuse freed pages\n", reused, N);
    if (strict)
        CHECK_MSG(reused >= N * 9 / 10, "only %d of %d tiny objects reuse freed memory", reused, N);
    for (int i = 0; i < N; i++)
        API(free)(objs[i]);

    /* one object at a time, ten million times */
    size_t rss4 = gmt_rss();
    for (long i = 0; i < 10000000; i++) {
        volatile char *p = API(malloc)((size_t)(1 + i % 15));
        p[0] = (char)i;
        API(free)((void *)p);
    }
    size_t rss5 = gmt_rss();
    CHECK_MSG(rss5 <= rss4 + (1u << 20), "malloc/free loop grew RSS from %zu KiB to %zu KiB",
              rss4 >> 10, rss5 >> 10);
    check_say("test_tiny: %.2fs\n", gmt_now() - t0);
    return check_done("test_tiny");
}
