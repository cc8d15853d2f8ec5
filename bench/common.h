/*
 * Code shared by the gomalloc benchmark programs: key=value arguments,
 * a small deterministic PRNG, size distributions, self-checking objects,
 * RSS probes and the result line every program ends with.
 *
 * Result protocol (read by bench/run.sh):
 *   metric NAME=VALUE       any number of extra measurements
 *   checksum HEX ok         last line on success; HEX depends only on the
 *                           parameters, never on the allocator
 *   FAIL: reason            on a failed check; the exit status is then 1
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_UNUSED __attribute__((unused))

/* ---- result reporting ------------------------------------------------- */

BENCH_UNUSED __attribute__((noreturn, format(printf, 1, 2)))
static void bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    _exit(1);
}

BENCH_UNUSED static void bench_metric(const char *name, long long value)
{
    printf("metric %s=%lld\n", name, value);
}

BENCH_UNUSED static void bench_ok(uint64_t checksum)
{
    printf("checksum %016llx ok\n", (unsigned long long)checksum);
    fflush(stdout);
}

BENCH_UNUSED static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL && n != 0)
        bench_fail("malloc(%zu) returned NULL", n);
    return p;
}

/* ---- key=value arguments ---------------------------------------------- */

struct bench_opt {
    const char *key;
    long long value;      /* default, then the parsed value */
    const char *help;
};

/* Parses "12", "64K", "4M", "1G" (binary units). */
static long long bench_parse_num(const char *s, int *ok)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    *ok = (errno == 0 && end != s);
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (*end != '\0')
        *ok = 0;
    return v;
}

/* Fills opts from argv (key=value); unknown keys or bad numbers print usage. */
BENCH_UNUSED static void bench_args(int argc, char **argv, const char *what,
                                    struct bench_opt *opts, int nopts)
{
    for (int i = 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        int found = 0, ok = 0;
        if (eq != NULL) {
            size_t klen = (size_t)(eq - argv[i]);
            for (int j = 0; j < nopts; j++) {
                if (strlen(opts[j].key) == klen && memcmp(opts[j].key, argv[i], klen) == 0) {
                    opts[j].value = bench_parse_num(eq + 1, &ok);
                    found = 1;
                    break;
                }
            }
        }
        if (!found || !ok) {
            fprintf(stderr, "%s: bad argument '%s'\n%s\nusage: %s", argv[0], argv[i], what, argv[0]);
            for (int j = 0; j < nopts; j++)
                fprintf(stderr, " [%s=%lld]", opts[j].key, opts[j].value);
            fputc('\n', stderr);
            for (int j = 0; j < nopts; j++)
                fprintf(stderr, "  %-10s %s\n", opts[j].key, opts[j].help);
            exit(2);
        }
    }
}

/* bench_args for an array of options, counting them. */
#define BENCH_ARGS(argc, argv, what, opts) \
    bench_args(argc, argv, what, opts, (int)(sizeof(opts) / sizeof((opts)[0])))

/* ---- PRNG: splitmix64 seeding, xoshiro-style xorshift* stepping --------- */

typedef struct { uint64_t s; } rng_t;

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

BENCH_UNUSED static rng_t rng_seed(uint64_t seed, uint64_t stream)
{
    rng_t r = { mix64(seed * 0x9e3779b97f4a7c15ULL + stream + 1) | 1 };
    return r;
}

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, n). */
static inline uint64_t rng_below(rng_t *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

/*
 * "Log-uniform" size in [lo, hi]: every power-of-two band is equally likely,
 * and the size is uniform within its band.  Small sizes are then far more
 * common than large ones, as in real programs.
 */
static inline size_t rng_size(rng_t *r, size_t lo, size_t hi)
{
    if (lo >= hi)
        return lo;
    int blo = 63 - __builtin_clzll(lo);
    int bhi = 63 - __builtin_clzll(hi);
    int b = blo + (int)rng_below(r, (uint64_t)(bhi - blo + 1));
    size_t a = (size_t)1 << b, z = ((size_t)2 << b) - 1;
    if (a < lo) a = lo;
    if (z > hi) z = hi;
    return (size_t)rng_range(r, a, z);
}

/* ---- self-checking objects ---------------------------------------------
 * An object of n >= 8 bytes carries a header word (size and a tag), one
 * byte per 4 KiB page and a tail byte, all derived from the header.  Any
 * thread can check an object it did not allocate.  Objects are touched
 * page by page, so RSS reflects what was allocated.
 */

#define OBJ_MIN 8u

static inline uint64_t obj_header(size_t n, uint32_t tag)
{
    return ((uint64_t)tag << 32 | (uint32_t)n) ^ 0x5bd1e9955bd1e995ULL;
}

static inline uint8_t obj_byte(uint64_t h, size_t off)
{
    return (uint8_t)(mix64(h + off) | 1);
}

static inline void obj_fill(void *p, size_t n, uint32_t tag)
{
    unsigned char *c = p;
    uint64_t h = obj_header(n, tag);
    memcpy(c, &h, 8);
    for (size_t off = 4096; off < n; off += 4096)
        c[off] = obj_byte(h, off);
    if (n > 8)
        c[n - 1] = obj_byte(h, n - 1);
}

/* Checks the object and returns its size; fails the run if it is damaged.
 * max is the largest size the benchmark ever allocates. */
static inline size_t obj_check(const void *p, size_t max)
{
    const unsigned char *c = p;
    uint64_t h;
    memcpy(&h, c, 8);
    uint64_t raw = h ^ 0x5bd1e9955bd1e995ULL;
    size_t n = (uint32_t)raw;
    if (n < OBJ_MIN || n > max)
        bench_fail("object %p: damaged header (size %zu)", p, n);
    for (size_t off = 4096; off < n; off += 4096)
        if (c[off] != obj_byte(h, off))
            bench_fail("object %p (%zu bytes): damaged at offset %zu", p, n, off);
    if (n > 8 && c[n - 1] != obj_byte(h, n - 1))
        bench_fail("object %p (%zu bytes): damaged tail", p, n);
    return n;
}

static inline uint32_t obj_tag(const void *p)
{
    uint64_t h;
    memcpy(&h, p, 8);
    return (uint32_t)((h ^ 0x5bd1e9955bd1e995ULL) >> 32);
}

/* Order-independent accumulation for checksums of multi-threaded runs. */
static inline uint64_t sum_add(uint64_t sum, uint64_t v)
{
    return sum + mix64(v);
}

/* ---- memory and threads ----------------------------------------------- */

/* Current resident set size in KiB, from /proc/self/statm; -1 if it
 * cannot be read.  It makes no allocator call (no stdio), so it can be
 * read while a benchmark must leave the allocator alone. */
BENCH_UNUSED static long long rss_kb(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *p = strchr(buf, ' ');
    return p ? strtoll(p + 1, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

BENCH_UNUSED static void run_threads(int n, void *(*fn)(void *), void *args, size_t argsize)
{
    pthread_t *t = xmalloc(sizeof(pthread_t) * (size_t)n);
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * argsize) != 0)
            bench_fail("pthread_create failed");
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
}

/* The sum of one uint64_t field over an array of n structs of stride bytes,
 * given that field in the first one: the per-thread results once
 * run_threads has joined the workers, as in sum_each(&w[0].sum, nt, sizeof *w). */
BENCH_UNUSED static uint64_t sum_each(const uint64_t *first, int n, size_t stride)
{
    uint64_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += *(const uint64_t *)((const char *)first + (size_t)i * stride);
    return sum;
}

#endif
