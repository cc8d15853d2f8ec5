/*
 * bursts: a single-threaded mix in the manner of alloc-test programs.  Each
 * round allocates a burst of 100..2000 objects of 8 B - 1 KiB (log-uniform),
 * writes them, then frees them in one of three orders (the order they came,
 * the reverse, or random), while a long-lived set of 2000 objects is
 * replaced a little every round.  Exercises span refills and emptying far
 * more than steady churn does.
 */
#include "common.h"

#define LONG_LIVED 2000
#define BURST_MAX 2000

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "rounds", 20000, "bursts" },
        { "seed", 1, "random seed" },
    };
    BENCH_ARGS(argc, argv, "bursts: allocate a burst, free it, repeat", o);
    rng_t r = rng_seed((uint64_t)o[1].value, 0);
    static void *keep[LONG_LIVED];
    static void *burst[BURST_MAX];
    static uint32_t tag_of[BURST_MAX];
    uint64_t sum = 0;
    uint32_t seq = 0;
    for (int i = 0; i < LONG_LIVED; i++) {
        size_t n = rng_size(&r, 8, 1024);
        keep[i] = xmalloc(n);
        obj_fill(keep[i], n, seq++);
    }
    for (long long round = 0; round < o[0].value; round++) {
        size_t k = (size_t)rng_range(&r, 100, BURST_MAX);
        for (size_t i = 0; i < k; i++) {
            size_t n = rng_size(&r, 8, 1024);
            burst[i] = xmalloc(n);
            tag_of[i] = seq++;
            obj_fill(burst[i], n, tag_of[i]);
        }
        unsigned order = (unsigned)rng_below(&r, 3);
        for (size_t j = 0; j < k; j++) {
            size_t i = order == 0 ? j : order == 1 ? k - 1 - j : j;
            if (order == 2) { /* random order: swap a random later one in */
                size_t x = j + (size_t)rng_below(&r, k - j);
                void *p = burst[x]; burst[x] = burst[j]; burst[j] = p;
                uint32_t t = tag_of[x]; tag_of[x] = tag_of[j]; tag_of[j] = t;
            }
            if (obj_tag(burst[i]) != tag_of[i])
                bench_fail("burst object %zu: wrong tag", i);
            sum = sum_add(sum, obj_check(burst[i], 1024));
            free(burst[i]);
        }
        for (int i = 0; i < 20; i++) {
            size_t x = (size_t)rng_below(&r, LONG_LIVED);
            sum = sum_add(sum, obj_check(keep[x], 1024));
            free(keep[x]);
            size_t n = rng_size(&r, 8, 1024);
            keep[x] = xmalloc(n);
            obj_fill(keep[x], n, seq++);
        }
    }
    for (int i = 0; i < LONG_LIVED; i++)
        free(keep[i]);
    bench_ok(sum);
    return 0;
}
