/*
 * prodcons: a pipeline.  Producer threads allocate messages (batches of
 * objects of random sizes) and hand them over a bounded queue to consumer
 * threads, which check and free them; every object is freed by a thread
 * other than the one that allocated it, and memory flows one way.
 */
#include "common.h"

struct batch {
    int n;
    void *obj[];
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_full, not_empty;
    struct batch **ring;
    size_t cap, head, count;
    int producers_left;
} q = { .mu = PTHREAD_MUTEX_INITIALIZER, .not_full = PTHREAD_COND_INITIALIZER,
        .not_empty = PTHREAD_COND_INITIALIZER };

static size_t minsz, maxsz;

static void push(struct batch *b)
{
    pthread_mutex_lock(&q.mu);
    while (q.count == q.cap)
        pthread_cond_wait(&q.not_full, &q.mu);
    q.ring[(q.head + q.count) % q.cap] = b;
    q.count++;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
}

/* Returns NULL once every producer is done and the queue is empty. */
static struct batch *pop(void)
{
    pthread_mutex_lock(&q.mu);
    while (q.count == 0 && q.producers_left > 0)
        pthread_cond_wait(&q.not_empty, &q.mu);
    struct batch *b = NULL;
    if (q.count > 0) {
        b = q.ring[q.head];
        q.head = (q.head + 1) % q.cap;
        q.count--;
        pthread_cond_signal(&q.not_full);
    }
    pthread_mutex_unlock(&q.mu);
    return b;
}

struct worker {
    int id, producer;
    long long items, batch;
    uint64_t seed, sum, count;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    if (w->producer) {
        rng_t r = rng_seed(w->seed, (uint64_t)w->id);
        for (long long done = 0; done < w->items;) {
            int n = (int)(w->items - done < w->batch ? w->items - done : w->batch);
            struct batch *b = xmalloc(sizeof *b + sizeof(void *) * (size_t)n);
            b->n = n;
            for (int i = 0; i < n; i++) {
                size_t sz = rng_size(&r, minsz, maxsz);
                b->obj[i] = xmalloc(sz);
                obj_fill(b->obj[i], sz, (uint32_t)(done + i));
            }
            done += n;
            push(b);
        }
        pthread_mutex_lock(&q.mu);
        if (--q.producers_left == 0)
            pthread_cond_broadcast(&q.not_empty);
        pthread_mutex_unlock(&q.mu);
    } else {
        struct batch *b;
        while ((b = pop()) != NULL) {
            for (int i = 0; i < b->n; i++) {
                w->sum = sum_add(w->sum, obj_check(b->obj[i], maxsz));
                free(b->obj[i]);
            }
            w->count += (uint64_t)b->n;
            free(b);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "threads", 2, "total threads: half producers, half consumers (even, >= 2)" },
        { "items", 1000000, "objects made by each producer" },
        { "batch", 64, "objects per message" },
        { "depth", 64, "messages the queue holds" },
        { "min", 16, "smallest object size (bytes, >= 8)" },
        { "max", 512, "largest object size (bytes)" },
        { "seed", 1, "random seed" },
    };
    BENCH_ARGS(argc, argv, "prodcons: producers allocate, consumers free", o);
    int nt = (int)o[0].value;
    minsz = (size_t)o[4].value;
    maxsz = (size_t)o[5].value;
    if (nt < 2 || nt % 2 || o[1].value < 1 || o[2].value < 1 || o[3].value < 1 ||
        minsz < OBJ_MIN || maxsz < minsz)
        bench_fail("bad parameters");

    q.cap = (size_t)o[3].value;
    q.ring = xmalloc(q.cap * sizeof *q.ring);
    q.producers_left = nt / 2;
    struct worker *w = xmalloc(sizeof(struct worker) * (size_t)nt);
    for (int i = 0; i < nt; i++)
        w[i] = (struct worker){ i / 2, !(i & 1), o[1].value, o[2].value, (uint64_t)o[6].value, 0, 0 };
    run_threads(nt, run, w, sizeof *w);
    uint64_t sum = sum_each(&w[0].sum, nt, sizeof *w);
    uint64_t count = sum_each(&w[0].count, nt, sizeof *w);
    if (count != (uint64_t)(nt / 2) * (uint64_t)o[1].value)
        bench_fail("consumed %llu objects, expected %llu", (unsigned long long)count,
                   (unsigned long long)(nt / 2) * (unsigned long long)o[1].value);
    free(w);
    free(q.ring);
    bench_ok(sum);
    return 0;
}
