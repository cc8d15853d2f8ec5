/*
 * churn: the steady state of an ordinary program.  A window of live objects
 * of random sizes (log-uniform between min and max) is kept; each step frees
 * a random one and allocates a replacement, so objects die young and old in
 * random order.  Each thread (threads=N) runs its own independent window;
 * no object crosses threads.
 */
#include "common.h"

struct worker {
    int id;
    long long iters, window;
    size_t min, max;
    uint64_t seed, sum;
};

static void *churn(void *arg)
{
    struct worker *w = arg;
    rng_t r = rng_seed(w->seed, (uint64_t)w->id);
    size_t nwin = (size_t)w->window;
    void **slot = xmalloc(nwin * sizeof(void *));
    uint32_t *tags = xmalloc(nwin * sizeof(uint32_t));
    uint64_t sum = 0;
    uint32_t seq = 0;

    for (size_t i = 0; i < nwin; i++) {
        size_t n = rng_size(&r, w->min, w->max);
        slot[i] = xmalloc(n);
        tags[i] = seq++;
        obj_fill(slot[i], n, tags[i]);
    }
    for (long long it = 0; it < w->iters; it++) {
        size_t i = (size_t)rng_below(&r, nwin);
        if (obj_tag(slot[i]) != tags[i])
            bench_fail("slot %zu: wrong object", i);
        sum = sum_add(sum, obj_check(slot[i], w->max) ^ (uint64_t)tags[i] << 32);
        free(slot[i]);
        size_t n = rng_size(&r, w->min, w->max);
        slot[i] = xmalloc(n);
        tags[i] = seq++;
        obj_fill(slot[i], n, tags[i]);
    }
    for (size_t i = 0; i < nwin; i++) {
        sum = sum_add(sum, obj_check(slot[i], w->max) ^ (uint64_t)tags[i] << 32);
        free(slot[i]);
    }
    free(tags);
    free(slot);
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "min", 8, "smallest object size (bytes, >= 8)" },
        { "max", 512, "largest object size (bytes)" },
        { "window", 10000, "live objects per thread" },
        { "iters", 1000000, "replacements per thread" },
        { "threads", 1, "threads, each with its own window" },
        { "seed", 1, "random seed" },
    };
    BENCH_ARGS(argc, argv, "churn: random-size objects replaced at random in a window", o);
    if (o[0].value < OBJ_MIN || o[1].value < o[0].value || o[2].value < 1 || o[4].value < 1)
        bench_fail("bad parameters");

    int nt = (int)o[4].value;
    struct worker *w = xmalloc(sizeof(struct worker) * (size_t)nt);
    for (int i = 0; i < nt; i++)
        w[i] = (struct worker){ i, o[3].value, o[2].value, (size_t)o[0].value,
                                (size_t)o[1].value, (uint64_t)o[5].value, 0 };
    run_threads(nt, churn, w, sizeof *w);
    uint64_t sum = sum_each(&w[0].sum, nt, sizeof *w);
    free(w);
    bench_ok(sum);
    return 0;
}
