/*
 * test_release: freed memory goes back to the OS.
 *
 *  a. 512 MiB in 1 MiB blocks, every page written, all freed; then
 *     malloc_trim(0) must bring the resident set (/proc/self/statm) back to
 *     within 40 MiB of where it started, and heap_released
 *     (gm_get_heap_stats) must have grown by most of the 512 MiB.
 *  b. The same again, without malloc_trim: the program keeps running the
 *     allocator's slow paths, one tick every 10 ms, each tick allocating
 *     2000 objects of 8 KiB (one small size class, so spans are refilled),
 *     writing a byte of each and freeing them.  With
 *     GOMALLOC_SCAVENGE_DELAY_MS=100 in the environment, the resident set
 *     must come down to within 40 MiB (plus the 16 MiB each tick uses) of
 *     the start within 3 s, and heap_released must grow again.
 * The measured numbers are printed.
 *
 * Linked with build/libgomalloc.so; run.sh sets GOMALLOC_SCAVENGE_DELAY_MS.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gomalloc.h"
#include "../check.h"
#include "../common.h"

#define MiB ((size_t)1 << 20)
#define NBLOCKS 512
#define TICK_OBJS 2000
#define TICK_SIZE 8192
#define SLACK (40 * MiB)
#define TICK_BYTES ((size_t)TICK_OBJS * TICK_SIZE)
#define WAIT_SECONDS 3.0

static void *blocks[NBLOCKS];
static void *tick_objs[TICK_OBJS];

static double mib(size_t b) { return (double)b / (double)MiB; }
/* a - b in MiB, signed */
static double dmib(size_t a, size_t b) { return ((double)a - (double)b) / (double)MiB; }

static gm_heap_stats stats(void) {
    gm_heap_stats hs;
    memset(&hs, 0, sizeof hs);
    gm_get_heap_stats(&hs);
    return hs;
}

/* Allocates and writes every page of NBLOCKS 1 MiB blocks, then frees them. */
static int fill_and_free(void) {
    for (int i = 0; i < NBLOCKS; i++) {
        blocks[i] = malloc(MiB);
        if (!CHECK_MSG(blocks[i] != NULL, "malloc(1 MiB) #%d", i))
            return -1;
        memset(blocks[i], i & 0xff, MiB);
    }
    for (int i = 0; i < NBLOCKS; i++) {
        const unsigned char *b = blocks[i];
        CHECK_MSG(b[0] == (i & 0xff) && b[MiB - 1] == (i & 0xff), "block %d corrupted", i);
    }
    size_t peak = gmt_rss();
    for (int i = 0; i < NBLOCKS; i++)
        free(blocks[i]);
    check_say("test_release:   peak RSS %.1f MiB, after free %.1f MiB\n", mib(peak),
              mib(gmt_rss()));
    return 0;
}

static void tick(void) {
    for (int i = 0; i < TICK_OBJS; i++) {
        tick_objs[i] = malloc(TICK_SIZE);
        if (tick_objs[i])
            ((volatile char *)tick_objs[i])[i % TICK_SIZE] = 1;
    }
    for (int i = 0; i < TICK_OBJS; i++)
        free(tick_objs[i]);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int main(void) {
    const char *delay = getenv("GOMALLOC_SCAVENGE_DELAY_MS");
    check_say("test_release: GOMALLOC_SCAVENGE_DELAY_MS=%s GOMALLOC_RETAIN_MB=%s\n",
              delay ? delay : "(unset)",
              getenv("GOMALLOC_RETAIN_MB") ? getenv("GOMALLOC_RETAIN_MB") : "(unset)");
    /* Warm up: the allocator and libc's own first allocations. */
    tick();
    free(malloc(100));
    size_t rss0 = gmt_rss();
    CHECK(rss0 > 0);
    gm_heap_stats h0 = stats();
    check_say("test_release: start: RSS %.1f MiB, heap_sys %.1f MiB, heap_released %.1f MiB\n",
              mib(rss0), mib(h0.heap_sys), mib(h0.heap_released));

    /* a. malloc_trim */
    check_say("test_release: phase a (malloc_trim):\n");
    if (fill_and_free() != 0)
        return check_done("test_release");
    gm_heap_stats h1 = stats();
    double t0 = gmt_now();
    malloc_trim(0);
    double trim_ms = (gmt_now() - t0) * 1000;
    size_t rss_trim = gmt_rss();
    gm_heap_stats h2 = stats();
    check_say("test_release:   after malloc_trim(0) (%.1f ms): RSS %.1f MiB (start + %.1f), "
              "heap_released %.1f -> %.1f MiB, scavenged %.1f MiB in all\n",
              trim_ms, mib(rss_trim), dmib(rss_trim, rss0), mib(h1.heap_released),
              mib(h2.heap_released), mib(h2.scavenged_bytes));
    CHECK_MSG(rss_trim <= rss0 + SLACK, "after malloc_trim: RSS %.1f MiB, start %.1f MiB",
              mib(rss_trim), mib(rss0));
    CHECK_MSG(h2.heap_released >= h1.heap_released + 400 * MiB,
              "heap_released %.1f -> %.1f MiB over malloc_trim", mib(h1.heap_released),
              mib(h2.heap_released));
    CHECK_MSG(h2.scavenged_bytes >= h1.scavenged_bytes + 400 * MiB,
              "scavenged_bytes %.1f -> %.1f MiB over malloc_trim", mib(h1.scavenged_bytes),
              mib(h2.scavenged_bytes));

    /* b. the scavenger, driven by the slow paths */
    check_say("test_release: phase b (scavenger, no malloc_trim):\n");
    if (fill_and_free() != 0)
        return check_done("test_release");
    gm_heap_stats h3 = stats();
    size_t rss_freed = gmt_rss();
    size_t target = rss0 + SLACK + TICK_BYTES;
    t0 = gmt_now();
    double dropped_at = -1, half_at = -1;
    size_t rss = rss_freed;
    unsigned ticks = 0;
    while (gmt_now() - t0 < WAIT_SECONDS) {
        tick();
        ticks++;
        sleep_ms(10);
        rss = gmt_rss();
        if (half_at < 0 && rss < rss0 + (rss_freed - rss0) / 2)
            half_at = gmt_now() - t0;
        if (rss <= target) {
            dropped_at = gmt_now() - t0;
            break;
        }
    }
    gm_heap_stats h4 = stats();
    char half[64] = "never";
    if (half_at >= 0)
        snprintf(half, sizeof half, "after %.0f ms", half_at * 1000);
    check_say("test_release:   RSS after free %.1f MiB; %s after %.0f ms (%u ticks): %.1f MiB "
              "(start + %.1f, target start + %.1f); half way down %s\n",
              mib(rss_freed), dropped_at >= 0 ? "reached the target" : "NOT reached",
              (dropped_at >= 0 ? dropped_at : gmt_now() - t0) * 1000, ticks, mib(rss),
              dmib(rss, rss0), dmib(target, rss0), half);
    check_say("test_release:   heap_released %.1f -> %.1f MiB, heap_sys %.1f MiB, "
              "scavenged %.1f MiB in all\n",
              mib(h3.heap_released), mib(h4.heap_released), mib(h4.heap_sys),
              mib(h4.scavenged_bytes));
    CHECK_MSG(dropped_at >= 0, "RSS still %.1f MiB (start %.1f MiB) %.1f s after the free",
              mib(rss), mib(rss0), WAIT_SECONDS);
    CHECK_MSG(h4.heap_released >= h3.heap_released + 400 * MiB,
              "heap_released %.1f -> %.1f MiB while the scavenger ran", mib(h3.heap_released),
              mib(h4.heap_released));
    return check_done("test_release");
}
