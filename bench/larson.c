/*
 * larson: the shape of a multi-threaded server.  A shared pool of objects
 * (think: sessions, buffers, cache entries) is kept alive; every worker
 * thread repeatedly takes a random slot, frees the object there - most
 * often allocated by another thread - and puts a fresh one in its place.
 * Workers are retired and replaced gens times over the run, as a thread
 * pool does, so thread-cache teardown and adoption are exercised too.
 */
#include <stdatomic.h>

#include "common.h"

static _Atomic(void *) *pool;
static size_t nslots, minsz, maxsz;
static atomic_llong frees;

struct worker {
    int id, gen;
    long long ops;
    uint64_t seed, sum;
};

static void put(size_t i, void *p)
{
    void *old = atomic_exchange(&pool[i], p);
    if (old != NULL) {          /* another thread filled the slot meanwhile */
        obj_check(old, maxsz);
        free(old);
        atomic_fetch_add(&frees, 1);
    }
}

static void *work(void *arg)
{
    struct worker *w = arg;
    rng_t r = rng_seed(w->seed, (uint64_t)w->gen << 20 | (uint64_t)w->id);
    uint64_t sum = 0;
    long long local_frees = 0;
    for (long long i = 0; i < w->ops; i++) {
        size_t s = (size_t)rng_below(&r, nslots);
        void *old = atomic_exchange(&pool[s], NULL);
        if (old != NULL) {
            obj_check(old, maxsz);
            free(old);
            local_frees++;
        }
        size_t n = rng_size(&r, minsz, maxsz);
        void *p = xmalloc(n);
        obj_fill(p, n, ((uint32_t)w->id << 24) ^ (uint32_t)i);
        sum = sum_add(sum, n);
        put(s, p);
    }
    atomic_fetch_add(&frees, local_frees);
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "threads", 2, "worker threads" },
        { "slots", 10000, "objects in the shared pool" },
        { "ops", 1000000, "replacements per worker over the whole run" },
        { "gens", 4, "thread generations (workers retired and replaced)" },
        { "min", 16, "smallest object size (bytes, >= 8)" },
        { "max", 1024, "largest object size (bytes)" },
        { "seed", 1, "random seed" },
    };
    BENCH_ARGS(argc, argv, "larson: workers replace random objects in a shared pool", o);
    int nt = (int)o[0].value;
    nslots = (size_t)o[1].value;
    int gens = (int)o[3].value;
    minsz = (size_t)o[4].value;
    maxsz = (size_t)o[5].value;
    if (nt < 1 || nslots < 1 || gens < 1 || minsz < OBJ_MIN || maxsz < minsz)
        bench_fail("bad parameters");

    pool = xmalloc(nslots * sizeof *pool);
    rng_t r = rng_seed((uint64_t)o[6].value, 1u << 30);
    uint64_t sum = 0;
    long long allocated = (long long)nslots;
    for (size_t i = 0; i < nslots; i++) {
        size_t n = rng_size(&r, minsz, maxsz);
        void *p = xmalloc(n);
        obj_fill(p, n, (uint32_t)i);
        atomic_init(&pool[i], p);
        sum = sum_add(sum, n);
    }
    struct worker *w = xmalloc(sizeof(struct worker) * (size_t)nt);
    for (int g = 0; g < gens; g++) {
        for (int i = 0; i < nt; i++) {
            w[i] = (struct worker){ i, g, o[2].value / gens, (uint64_t)o[6].value, 0 };
            allocated += w[i].ops;
        }
        run_threads(nt, work, w, sizeof *w);
        sum += sum_each(&w[0].sum, nt, sizeof *w);
    }
    long long left = 0;
    for (size_t i = 0; i < nslots; i++) {
        void *p = atomic_load(&pool[i]);
        if (p != NULL) {
            obj_check(p, maxsz);
            free(p);
            left++;
        }
    }
    if (left + atomic_load(&frees) != allocated)
        bench_fail("lost objects: allocated %lld, freed %lld", allocated,
                   left + atomic_load(&frees));
    free(w);
    free((void *)pool);
    bench_ok(sum);
    return 0;
}
