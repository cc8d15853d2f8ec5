/*
 * test_thread_exit: a thread that exits gives its memory back.
 *
 * Each round starts 8 threads.  Each thread allocates objects of every size
 * class (1 B to 32 KiB, enough of the smaller ones to need several spans),
 * writes them, waits for the others to get there (so each round has the
 * same peak), frees them in a shuffled order; it also allocates a batch
 * that its neighbour frees (cross-thread frees, some landing after the
 * allocating thread has exited), and a thread-specific-data destructor that
 * runs at its exit allocates and frees a few objects more.  Nothing stays
 * live.  After the threads are joined:
 *   - heap_inuse (bytes in spans holding objects) is back within 1 MiB of
 *     its level before the first round, and heap_objects within 64;
 *   - from round 2 on, heap_inuse stays within 256 KiB of its level after
 *     round 1 (whatever the first round leaves cached is not added to by
 *     each later one: a single thread cache not given back is ~1 MiB);
 *   - over 50 rounds heap_sys does not keep growing: after round 50 it is
 *     at most 4 MiB above its value after round 5.
 *
 * Built with -DAPI_GM and linked with build/libgomalloc.so (gm_get_heap_stats).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "../common.h"

#define NTHREADS 8
#define ROUNDS 50
#define MiB ((size_t)1 << 20)
#define MAX_SIZES 96
#define BATCH 500

static size_t sizes[MAX_SIZES];
static unsigned nsizes;
static pthread_barrier_t barrier;
static pthread_key_t late_key;

struct worker {
    unsigned id;
    unsigned round;
    void *batch[BATCH]; /* allocated by this thread, freed by the next one */
    size_t batch_size[BATCH];
    struct worker *next;
};

static void late_destructor(void *arg) {
    /* Runs at thread exit, possibly after gomalloc has retired the thread's
     * cache: allocations then go to a shared cache. */
    void *keep = arg;
    void *p[3];
    static const size_t n[3] = {24, 200, 3000};
    for (int i = 0; i < 3; i++) {
        p[i] = API(malloc)(n[i]);
        if (CHECK(p[i] != NULL))
            memset(p[i], 0x3c, n[i]);
    }
    for (int i = 0; i < 3; i++)
        API(free)(p[i]);
    if (CHECK(keep != NULL && gmt_check(keep, 100, 77) == (size_t)-1))
        API(free)(keep);
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (w->id + 1) + w->round;

    void *keep = API(malloc)(100);
    if (keep)
        gmt_fill(keep, 100, 77);
    pthread_setspecific(late_key, keep);

    /* every class, allocated all at once, then freed shuffled */
    static __thread void *objs[20000];
    static __thread size_t objsz[20000];
    unsigned n = 0;
    for (unsigned s = 0; s < nsizes; s++) {
        size_t count = (96 * 1024) / sizes[s];
        if (count < 3)
            count = 3;
        if (count > 400)
            count = 400;
        for (size_t k = 0; k < count && n < 20000; k++) {
            void *p = API(malloc)(sizes[s]);
            if (!CHECK_MSG(p != NULL, "malloc(%zu)", sizes[s]))
                continue;
            size_t m = sizes[s] < 32 ? sizes[s] : 32;
            memset(p, (int)(n & 0xff), m);
            objs[n] = p;
            objsz[n] = sizes[s];
            n++;
        }
    }
    /* All threads at their peak together, so every round's peak is the
     * same and heap_sys has no reason to grow after the first rounds. */
    pthread_barrier_wait(&barrier);
    for (unsigned i = n; i > 1; i--) {
        unsigned j = (unsigned)(gmt_rand(&rng) % i);
        void *tp = objs[i - 1];
        size_t ts = objsz[i - 1];
        objs[i - 1] = objs[j];
        objsz[i - 1] = objsz[j];
        objs[j] = tp;
        objsz[j] = ts;
    }
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *b = objs[i];
        CHECK_MSG(b[0] == b[(objsz[i] < 32 ? objsz[i] : 32) - 1], "object of %zu B corrupted",
                  objsz[i]);
        API(free)(objs[i]);
    }

    /* the batch for the neighbour */
    for (unsigned i = 0; i < BATCH; i++) {
        size_t sz = sizes[gmt_rand(&rng) % nsizes];
        w->batch[i] = API(malloc)(sz);
        w->batch_size[i] = sz;
        if (CHECK(w->batch[i] != NULL))
            gmt_fill(w->batch[i], sz < 64 ? sz : 64, w->id * 1000 + i);
    }
    pthread_barrier_wait(&barrier);
    /* Free the previous thread's batch.  Odd threads first wait for nothing
     * and exit, so some of their batch is freed after they are gone. */
    struct worker *prev = w->next;
    if (w->id % 2 == 0) {
        for (unsigned i = 0; i < BATCH; i++) {
            if (!prev->batch[i])
                continue;
            CHECK(gmt_check(prev->batch[i], prev->batch_size[i] < 64 ? prev->batch_size[i] : 64,
                            prev->id * 1000 + i) == (size_t)-1);
            API(free)(prev->batch[i]);
            prev->batch[i] = NULL;
        }
    }
    return NULL;
}

static gm_heap_stats stats(void) {
    gm_heap_stats hs;
    memset(&hs, 0, sizeof hs);
    gm_get_heap_stats(&hs);
    return hs;
}

static double mib(size_t b) { return (double)b / (double)MiB; }

int main(void) {
    for (size_t n = 1; n <= 32768 && nsizes < MAX_SIZES; n = n + n / 8 + 1)
        sizes[nsizes++] = n;
    sizes[nsizes - 1] = 32768;
    pthread_key_create(&late_key, late_destructor);

    static struct worker workers[NTHREADS];
    /* The main thread has a cache of its own before the baseline is taken. */
    for (unsigned s = 0; s < nsizes; s++)
        API(free)(API(malloc)(sizes[s]));
    gm_heap_stats base = stats();
    check_say("test_thread_exit: before: heap_inuse %.2f MiB, heap_sys %.2f MiB, objects %zu\n",
              mib(base.heap_inuse), mib(base.heap_sys), base.heap_objects);
    size_t sys5 = 0, inuse1 = 0, worst_inuse = 0, worst_objects = 0;
    gm_heap_stats hs = base;
    for (unsigned r = 1; r <= ROUNDS; r++) {
        pthread_barrier_init(&barrier, NULL, NTHREADS);
        pthread_t th[NTHREADS];
        for (unsigned i = 0; i < NTHREADS; i++) {
            workers[i].id = i;
            workers[i].round = r;
            workers[i].next = &workers[(i + NTHREADS - 1) % NTHREADS];
        }
        for (unsigned i = 0; i < NTHREADS; i++)
            CHECK_EQ(pthread_create(&th[i], NULL, worker_main, &workers[i]), 0);
        for (unsigned i = 0; i < NTHREADS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);
        /* The odd threads' batches, freed by their even neighbours, are all
         * gone; the even threads' batches are freed here, by main, after
         * their threads have exited. */
        for (unsigned i = 0; i < NTHREADS; i += 2)
            for (unsigned k = 0; k < BATCH; k++) {
                API(free)(workers[i].batch[k]);
                workers[i].batch[k] = NULL;
            }

        hs = stats();
        if (hs.heap_inuse > worst_inuse)
            worst_inuse = hs.heap_inuse;
        if (hs.heap_objects > worst_objects)
            worst_objects = hs.heap_objects;
        if (r == 1 || r == 5 || r == ROUNDS)
            check_say("test_thread_exit: after round %u: heap_inuse %.2f MiB, heap_sys %.2f MiB, "
                      "objects %zu\n",
                      r, mib(hs.heap_inuse), mib(hs.heap_sys), hs.heap_objects);
        if (r == 5)
            sys5 = hs.heap_sys;
        if (r == 1)
            inuse1 = hs.heap_inuse;
        else
            CHECK_MSG(hs.heap_inuse <= inuse1 + 256 * 1024,
                      "round %u: heap_inuse %.2f MiB, after round 1 %.2f MiB", r,
                      mib(hs.heap_inuse), mib(inuse1));
        CHECK_MSG(hs.heap_inuse < base.heap_inuse + MiB,
                  "round %u: heap_inuse %.2f MiB, before the threads %.2f MiB", r,
                  mib(hs.heap_inuse), mib(base.heap_inuse));
        CHECK_MSG(hs.heap_objects <= base.heap_objects + 64,
                  "round %u: %zu live objects, before the threads %zu", r, hs.heap_objects,
                  base.heap_objects);
        if (check_failures() > 20)
            break;
    }
    check_say("test_thread_exit: worst heap_inuse %.2f MiB (+%.2f), worst objects %zu\n",
              mib(worst_inuse), mib(worst_inuse - base.heap_inuse), worst_objects);
    CHECK_MSG(hs.heap_sys <= sys5 + 4 * MiB,
              "heap_sys grew from %.2f MiB (round 5) to %.2f MiB (round %d)", mib(sys5),
              mib(hs.heap_sys), ROUNDS);
    return check_done("test_thread_exit");
}
