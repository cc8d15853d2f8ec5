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

/* Appends objects of mixed_size(r, scale) to the array *obj (*n used of
 * *cap, doubled when full) until they add up to at least bytes; returns
 * how many bytes they take. */
static size_t alloc_until(void ***obj, size_t *n, size_t *cap, rng_t *r, size_t scale,
                          size_t bytes)
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
        size_t sz = mixed_size(r, scale);
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
    };
    BENCH_ARGS(argc, argv, "frag: allocate, free most at random, allocate other sizes", o);
    size_t total = (size_t)o[0].value;
    if (total < 1 || o[1].value < 0 || o[1].value > 100)
        bench_fail("bad parameters");

    rng_t r = rng_seed((uint64_t)o[2].value, 0);
    size_t cap = 1024, n = 0, maxsz = (256 << 10) * 15 / 10;
    void **obj = xmalloc(cap * sizeof *obj);
    uint64_t sum = 0;
    size_t live = alloc_until(&obj, &n, &cap, &r, 10, total);
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
    live += alloc_until(&obj, &n, &cap, &r, 15, freed);
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
