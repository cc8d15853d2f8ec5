/*
 * frag: fragmentation after a phase change (a cache that is mostly evicted,
 * a program that loads data, drops most of it and loads something else).
 * About total bytes of mixed sizes are allocated; a random pct percent of
 * the objects are freed; then as many bytes as were freed are allocated
 * again with sizes half as large again, which do not fit the old holes
 * exactly.  RSS is reported after each phase:
 *   rss_full_kb   after the first allocation
 *   rss_freed_kb  after the random frees
 *   rss_again_kb  after allocating again (live bytes: live_again_kb)
 *   rss_final_kb  after freeing everything
 * With lo/hi, the first phase draws its sizes from [lo, hi]
 * (log-uniform, rng_size)
 * instead, and with lo2/hi2 the second from [lo2, hi2]; `again` sets the
 * bytes of the second phase (default: as many as were freed).  The
 * fragmented-reuse row of bench/run.sh is
 *   frag total=1G pct=90 lo=16 hi=512 lo2=1024 hi2=4096 again=500M
 * (a heap of small objects, 90% freed at random, then 500 MiB of 1-4 KiB
 * objects): rss_again_kb - rss_freed_kb is how much the heap grew for
 * memory it already had free.
 */
#include "common.h"

/* By count: 90% small, 9.5% medium, 0.5% large; by bytes roughly
 * 10% / 35% / 55%.  scale is in tenths. */
static size_t mixed_size(rng_t *r, size_t scale)
{
    uint64_t k = rng_below(r, 1000);
    size_t n;
    if (k < 900)
        n = rng_size(r, 16, 256);
    else if (k < 995)
        n = rng_size(r, 257, 8192);
    else
        n = rng_size(r, 8193, 256 << 10);
    return n * scale / 10;
}

/* Sizes of one phase: uniform in [lo, hi] when hi != 0, else mixed_size
 * at this scale. */
struct phase_sizes {
    size_t lo, hi, scale;
};

static size_t phase_size(rng_t *r, const struct phase_sizes *ps)
{
    return ps->hi ? rng_size(r, ps->lo, ps->hi) : mixed_size(r, ps->scale);
}

/* Appends objects of the phase's sizes to the array *obj (*n used of
 * *cap, doubled when full) until they add up to at least bytes; returns
 * how many bytes they take. */
static size_t alloc_until(void ***obj, size_t *n, size_t *cap, rng_t *r,
                          const struct phase_sizes *ps, size_t bytes)
{
    size_t got = 0;
    while (got < bytes) {
        if (*n == *cap) {
            *cap *= 2;
            void **p = realloc(*obj, *cap * sizeof **obj);
            if (p == NULL)
                bench_fail("realloc failed");
            *obj = p;
        }
        size_t sz = phase_size(r, ps);
        (*obj)[*n] = xmalloc(sz);
        obj_fill((*obj)[*n], sz, (uint32_t)*n);
        got += sz;
        (*n)++;
    }
    return got;
}

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "total", 1 << 30, "bytes allocated in the first phase" },
        { "pct", 90, "percent of objects freed at random" },
        { "seed", 1, "random seed" },
        { "lo", 0, "first phase: smallest size (with hi)" },
        { "hi", 0, "first phase: largest size (0: the mixed sizes)" },
        { "lo2", 0, "second phase: smallest size (with hi2)" },
        { "hi2", 0, "second phase: largest size (0: the mixed sizes, half as large again)" },
        { "again", 0, "second phase: bytes (0: as many as were freed)" },
    };
    BENCH_ARGS(argc, argv, "frag: allocate, free most at random, allocate other sizes", o);
    size_t total = (size_t)o[0].value;
    struct phase_sizes first = { (size_t)o[3].value, (size_t)o[4].value, 10 };
    struct phase_sizes second = { (size_t)o[5].value, (size_t)o[6].value, 15 };
    if (total < 1 || o[1].value < 0 || o[1].value > 100 || o[3].value < 0 || o[4].value < 0 ||
        o[5].value < 0 || o[6].value < 0 || o[7].value < 0 || first.lo > first.hi ||
        second.lo > second.hi || (first.hi && first.lo < 8) || (second.hi && second.lo < 8))
        bench_fail("bad parameters");

    rng_t r = rng_seed((uint64_t)o[2].value, 0);
    size_t cap = 1024, n = 0, maxsz = (256 << 10) * 15 / 10;
    if (first.hi > maxsz)
        maxsz = first.hi;
    if (second.hi > maxsz)
        maxsz = second.hi;
    void **obj = xmalloc(cap * sizeof *obj);
    uint64_t sum = 0;
    size_t live = alloc_until(&obj, &n, &cap, &r, &first, total);
    long long rss_full = rss_kb();

    size_t freed = 0, kept = 0;
    for (size_t i = 0; i < n; i++) {
        if ((long long)rng_below(&r, 100) < o[1].value) {
            size_t sz = obj_check(obj[i], maxsz);
            sum = sum_add(sum, sz ^ (uint64_t)obj_tag(obj[i]) << 32);
            freed += sz;
            free(obj[i]);
        } else {
            obj[kept++] = obj[i];
        }
    }
    long long rss_freed = rss_kb();

    n = kept;
    live -= freed;
    live += alloc_until(&obj, &n, &cap, &r, &second, o[7].value ? (size_t)o[7].value : freed);
    long long rss_again = rss_kb();

    for (size_t i = 0; i < n; i++) {
        size_t sz = obj_check(obj[i], maxsz);
        sum = sum_add(sum, sz ^ (uint64_t)obj_tag(obj[i]) << 32);
        free(obj[i]);
    }
    free(obj);
    long long rss_final = rss_kb();

    bench_metric("rss_full_kb", rss_full);
    bench_metric("rss_freed_kb", rss_freed);
    bench_metric("rss_again_kb", rss_again);
    bench_metric("live_again_kb", (long long)(live >> 10));
    bench_metric("rss_final_kb", rss_final);
    bench_ok(sum);
    return 0;
}
