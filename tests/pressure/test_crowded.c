/*
 * test_crowded: the heap keeps growing when something else occupies the
 * address space where it would grow.
 *
 * The heap's window is 1 TiB, aligned to 1 TiB.  The test maps a PROT_NONE
 * region (no memory, only address space) over the whole window above the
 * heap's current top, so the heap cannot grow upwards at all.  A 1.5 GiB
 * malloc (less when the heap starts too low in its window for that) must
 * still succeed, the block must be usable, and so must small allocations.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../check.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define MiB ((uintptr_t)1 << 20)
#define WINDOW ((uintptr_t)1 << 40)

int main(void) {
    char *low = malloc(8 * MiB), *top = malloc(8 * MiB);
    if (!CHECK(low && top))
        return check_done("test_crowded");
    uintptr_t base = (uintptr_t)low & ~(WINDOW - 1);
    uintptr_t from = ((uintptr_t)top + 8 * MiB + 64 * MiB) & ~(4 * MiB - 1), end = base + WINDOW;
    /* Block everything from just above the heap to the window's end; any
     * mapping already there splits the region, so go piece by piece. */
    size_t blocked = 0;
    for (uintptr_t a = from; a < end;) {
        size_t len = end - a;
        void *p = MAP_FAILED;
        while (len >= 4 * MiB &&
               (p = mmap((void *)a, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
                                                      MAP_FIXED_NOREPLACE, -1, 0)) == MAP_FAILED)
            len /= 2;
        if (p == MAP_FAILED) {
            a += 4 * MiB;
            continue;
        }
        blocked += len;
        a += len;
    }
    check_say("test_crowded: heap at %p..%p, blocked %zu GiB above\n", (void *)low, (void *)top,
              blocked >> 30);
    CHECK(blocked > (end - from) / 2);
    size_t want = (size_t)3 << 29; /* 1.5 GiB */
    uintptr_t room = (uintptr_t)low - base;
    if (room < want + 64 * MiB)
        want = room > 128 * MiB ? room / 2 : 16 * MiB;
    errno = 0;
    char *big = malloc(want);
    CHECK_MSG(big != NULL, "malloc(%zu MiB) in a crowded window: errno %d", want >> 20, errno);
    if (big) {
        memset(big, 7, 4096);
        memset(big + want - 4096, 7, 4096);
        CHECK(big[0] == 7 && big[want - 1] == 7);
    }
    for (int i = 0; i < 1000; i++) {
        char *p = malloc((size_t)(i % 50) * 100 + 1);
        CHECK(p != NULL);
        free(p);
    }
    free(big);
    free(top);
    free(low);
    return check_done("test_crowded");
}
