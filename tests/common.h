/*
 * common.h: what the gomalloc test programs share besides check.h.
 *
 * - API(fn): the allocation function under test.  Built with -DAPI_GM it is
 *   gomalloc's explicit gm_fn (include/gomalloc.h); otherwise the standard
 *   name, which is gomalloc when the library is preloaded or linked in.
 * - gmt_strict(): true when the program knows it is testing gomalloc, so
 *   gomalloc-specific promises (tiny sizes, exact errno rules that glibc
 *   2.36 does not keep) are checked too.  run.sh sets GMTEST_IMPL=gomalloc;
 *   the gm_ builds are always strict.  Without it the same programs run
 *   against glibc's malloc, to show the checks themselves are right.
 * - Pattern fill and check functions that tell one object's bytes from its
 *   neighbour's.
 */
#ifndef GM_TEST_COMMON_H
#define GM_TEST_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#ifdef API_GM
#include "gomalloc.h"
#define API(fn) gm_##fn
#define API_NAME "gm_"
#else
#include <malloc.h>
#define API(fn) fn
#define API_NAME ""
#endif

static inline int gmt_strict(void) {
#ifdef API_GM
    return 1;
#else
    const char *e = getenv("GMTEST_IMPL");
    return e && strcmp(e, "gomalloc") == 0;
#endif
}

static inline double gmt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A small fast PRNG (xorshift64*), one state per user. */
static inline uint64_t gmt_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Byte i of an object carrying `seed`. */
static inline uint8_t gmt_byte(uint64_t seed, size_t i) {
    return (uint8_t)((uint8_t)(seed * 0x9E3779B97F4A7C15ULL >> 56) ^ (uint8_t)i ^
                     (uint8_t)(i >> 8) ^ (uint8_t)(i >> 16) ^ 0x5A);
}

/* Above this size only the head, the tail and one run per 64 KiB are
 * written and checked, so huge blocks cost little time and memory. */
#define GMT_SPARSE_OVER (1u << 20)

static inline void gmt_fill_range(uint8_t *p, size_t from, size_t to, uint64_t seed) {
    for (size_t i = from; i < to; i++)
        p[i] = gmt_byte(seed, i);
}

static inline size_t gmt_check_range(const uint8_t *p, size_t from, size_t to, uint64_t seed) {
    for (size_t i = from; i < to; i++)
        if (p[i] != gmt_byte(seed, i))
            return i;
    return (size_t)-1;
}

/* Fills n bytes (sparsely when large) with the object's pattern. */
static inline void gmt_fill(void *vp, size_t n, uint64_t seed) {
    uint8_t *p = vp;
    if (n <= GMT_SPARSE_OVER) {
        gmt_fill_range(p, 0, n, seed);
        return;
    }
    gmt_fill_range(p, 0, 4096, seed);
    for (size_t off = 65536; off + 64 < n - 4096; off += 65536)
        gmt_fill_range(p, off, off + 64, seed);
    gmt_fill_range(p, n - 4096, n, seed);
}

/* Checks the bytes gmt_fill(p, n, seed) wrote that lie below `limit` (a
 * block shrunk by realloc keeps only its head).  Returns the first bad
 * offset, or (size_t)-1 when the pattern is intact. */
static inline size_t gmt_check_upto(const void *vp, size_t n, size_t limit, uint64_t seed) {
    const uint8_t *p = vp;
    size_t bad;
    if (limit > n)
        limit = n;
    if (n <= GMT_SPARSE_OVER)
        return gmt_check_range(p, 0, limit, seed);
    if ((bad = gmt_check_range(p, 0, limit < 4096 ? limit : 4096, seed)) != (size_t)-1)
        return bad;
    for (size_t off = 65536; off + 64 < n - 4096 && off < limit; off += 65536)
        if ((bad = gmt_check_range(p, off, off + 64 < limit ? off + 64 : limit, seed)) !=
            (size_t)-1)
            return bad;
    if (n - 4096 < limit)
        return gmt_check_range(p, n - 4096, limit, seed);
    return (size_t)-1;
}

/* Returns the first bad offset, or (size_t)-1 when the pattern is intact. */
static inline size_t gmt_check(const void *vp, size_t n, uint64_t seed) {
    return gmt_check_upto(vp, n, n, seed);
}

/* First nonzero offset among n bytes, or (size_t)-1. */
static inline size_t gmt_check_zero(const void *vp, size_t n) {
    const uint8_t *p = vp;
    size_t i = 0;
    while (i < n && ((uintptr_t)(p + i) & 7))
        if (p[i++])
            return i - 1;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w) {
            while (!p[i])
                i++;
            return i;
        }
    }
    for (; i < n; i++)
        if (p[i])
            return i;
    return (size_t)-1;
}

/* Resident set size in bytes, from /proc/self/statm, without allocating
 * (safe in a forked child and while the allocator under test is in a
 * state worth measuring). */
static inline size_t gmt_rss_noalloc(void) {
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *p = strchr(buf, ' ');
    return p ? (size_t)strtoull(p + 1, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* Resident set size in bytes, from /proc/self/statm. */
static inline size_t gmt_rss(void) {
    char buf[128];
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    unsigned long vsz = 0, rss = 0;
    if (sscanf(buf, "%lu %lu", &vsz, &rss) != 2)
        return 0;
    return (size_t)rss * 4096;
}

#endif
