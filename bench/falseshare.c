/*
 * falseshare: small objects owned by different threads and written in tight
 * loops (per-thread counters, small state records).  If the allocator hands
 * objects in one cache line to different threads, every write bounces the
 * line between cores.  mode=0 (active): each thread allocates its own
 * objects.  mode=1 (passive): the main thread allocates one object per
 * worker, back to back; each worker frees its object first, so an allocator
 * that reuses a remotely freed slot puts neighbours on one line.
 */
#include "common.h"

struct worker {
    int id;
    long long rounds, writes;
    size_t size;
    void *given;
    uint64_t sum;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    if (w->given != NULL)
        free(w->given);
    uint64_t sum = 0;
    long long passes = w->writes / (long long)w->size;
    for (long long r = 0; r < w->rounds; r++) {
        volatile unsigned char *p = xmalloc(w->size);
        for (size_t j = 0; j < w->size; j++)
            p[j] = (unsigned char)(w->id + j);
        for (long long k = 0; k < passes; k++)
            for (size_t j = 0; j < w->size; j++)
                p[j]++;
        for (size_t j = 0; j < w->size; j++) {
            if (p[j] != (unsigned char)(w->id + j + (size_t)passes))
                bench_fail("object %p: byte %zu is wrong", (void *)p, j);
            sum += p[j];
        }
        free((void *)p);
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "threads", 2, "threads" },
        { "mode", 0, "0: active (threads allocate), 1: passive (main allocates first)" },
        { "size", 8, "object size (bytes)" },
        { "rounds", 100, "objects each thread allocates, writes and frees in turn" },
        { "writes", 1000000, "byte writes per object" },
    };
    BENCH_ARGS(argc, argv, "falseshare: small per-thread objects written in tight loops", o);
    int nt = (int)o[0].value;
    size_t size = (size_t)o[2].value;
    if (nt < 1 || o[1].value < 0 || o[1].value > 1 || size < 1 || o[3].value < 1 ||
        o[4].value < (long long)size)
        bench_fail("bad parameters");

    struct worker *w = xmalloc(sizeof(struct worker) * (size_t)nt);
    for (int i = 0; i < nt; i++)
        w[i] = (struct worker){ i, o[3].value, o[4].value, size, NULL, 0 };
    if (o[1].value == 1)
        for (int i = 0; i < nt; i++)
            w[i].given = xmalloc(size);
    run_threads(nt, work, w, sizeof *w);
    uint64_t sum = sum_each(&w[0].sum, nt, sizeof *w);
    free(w);
    bench_ok(sum);
    return 0;
}
