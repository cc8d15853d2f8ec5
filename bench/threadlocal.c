/*
 * threadlocal: thread-local churn, the pattern of glibc's
 * bench-malloc-thread.  Each thread keeps its own array of 1024 slots and,
 * op after op, frees a random slot and allocates a new block in it.  Sizes
 * run from 4 bytes to 32 KiB, skewed toward small ones (a 4th-power
 * distribution: size = min + (max - min) * u^4 for uniform u), and no block
 * ever crosses threads.  Every thread does the same number of ops, so with
 * T threads on at least T cores the wall time stays flat when the allocator
 * scales.  Prints ops/s (all threads together) as a metric.
 */
#include "common.h"

#include <time.h>

#define SLOTS 1024

struct worker {
    int id;
    long long ops;
    size_t min, max;
    uint64_t seed, sum;
};

static size_t skewed_size(rng_t *r, size_t min, size_t max)
{
    double u = (double)(rng_next(r) >> 11) * 0x1.0p-53;
    double u4 = u * u * u * u;
    return min + (size_t)((double)(max - min) * u4);
}

static void *worker(void *arg)
{
    struct worker *w = arg;
    rng_t r = rng_seed(w->seed, (uint64_t)w->id);
    unsigned char **slot = xmalloc(SLOTS * sizeof(*slot));
    uint64_t sum = 0;
    for (int i = 0; i < SLOTS; i++)
        slot[i] = NULL;
    for (long long op = 0; op < w->ops; op++) {
        size_t i = (size_t)rng_below(&r, SLOTS);
        if (slot[i])
            sum += slot[i][0];
        free(slot[i]);
        size_t n = skewed_size(&r, w->min, w->max);
        slot[i] = xmalloc(n);
        slot[i][0] = (unsigned char)op;
        slot[i][n - 1] = (unsigned char)i;
    }
    for (int i = 0; i < SLOTS; i++)
        free(slot[i]);
    free(slot);
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "min", 4, "smallest block (bytes)" },
        { "max", 32768, "largest block (bytes)" },
        { "ops", 5000000, "free+malloc operations per thread" },
        { "threads", 1, "threads, each with its own slots" },
        { "seed", 1, "random seed" },
    };
    BENCH_ARGS(argc, argv, "threadlocal: per-thread random slot churn, 4 B - 32 KiB", o);
    if (o[0].value < 1 || o[1].value < o[0].value || o[2].value < 1 || o[3].value < 1)
        bench_fail("bad parameters");
    int nt = (int)o[3].value;
    struct worker *w = xmalloc(sizeof(struct worker) * (size_t)nt);
    for (int i = 0; i < nt; i++)
        w[i] = (struct worker){ i, o[2].value, (size_t)o[0].value, (size_t)o[1].value,
                                (uint64_t)o[4].value, 0 };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_threads(nt, worker, w, sizeof *w);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("metric mops=%.2f\n", (double)o[2].value * nt / secs / 1e6);
    uint64_t sum = sum_each(&w[0].sum, nt, sizeof *w);
    free(w);
    bench_ok(sum);
    return 0;
}
