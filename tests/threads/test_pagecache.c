/*
 * test_pagecache: the per-thread page cache (src/mpagecache.c), through the
 * public API and the heap statistics.
 *
 *  a. Reuse: a large block freed and allocated again by one thread comes
 *     back at the same address (the thread kept its span), and a calloc of
 *     that size still reads zero.
 *  b. Accounting: blocks a thread keeps are not live (heap_alloc), their
 *     frees are counted (frees), and their spans are (spans_inuse).
 *  c. Fork: a thread keeps 4 spans and the main thread forks; in the child
 *     those spans have lost their keeper and go back to the heap
 *     (spans_inuse drops by 4).  Without that they would leak in the child.
 *  d. Thread exit: the exiting thread's kept spans go back (spans_inuse
 *     drops by 4 in the parent after the join).
 *  e. Bounds: a thread that frees 16 blocks of 1 MiB keeps at most 4 MiB.
 *
 * Linked with build/libgomalloc.so (gm_get_heap_stats).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gomalloc.h"
#include "../check.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define KEEP 4
#define BLOCK (256 * KiB)

static gm_heap_stats stats(void) {
    gm_heap_stats h;
    gm_get_heap_stats(&h);
    return h;
}

static void reuse(void) {
    for (size_t size = 40 * KiB; size <= 2 * MiB; size *= 2) {
        char *p = malloc(size);
        CHECK(p != NULL);
        memset(p, 0xab, size);
        free(p);
        char *q = malloc(size);
        CHECK_MSG(q == p, "malloc(%zu) after free: %p, freed %p", size, (void *)q, (void *)p);
        memset(q, 0xcd, size);
        free(q);
        unsigned char *z = calloc(1, size);
        CHECK(z != NULL);
        size_t bad = 0;
        for (size_t i = 0; z && i < size; i++)
            bad += z[i] != 0;
        CHECK_MSG(bad == 0, "calloc(%zu): %zu nonzero bytes", size, bad);
        free(z);
    }
}

static pthread_barrier_t kept, forked;

static void *keeper(void *arg) {
    (void)arg;
    void *p[KEEP];
    for (int i = 0; i < KEEP; i++) {
        p[i] = malloc(BLOCK);
        CHECK(p[i] != NULL);
        memset(p[i], i, BLOCK);
    }
    for (int i = 0; i < KEEP; i++)
        free(p[i]);
    pthread_barrier_wait(&kept);   /* main: measure, fork */
    pthread_barrier_wait(&forked); /* main: done; exit and give the spans back */
    return NULL;
}

static void keep_fork_exit(void) {
    gm_heap_stats h0 = stats();
    pthread_barrier_init(&kept, NULL, 2);
    pthread_barrier_init(&forked, NULL, 2);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, keeper, NULL) == 0);
    pthread_barrier_wait(&kept);
    gm_heap_stats h1 = stats();
    printf("test_pagecache: kept %d x %zu KiB: heap_alloc %zu -> %zu, spans_inuse %llu -> %llu, "
           "frees %llu -> %llu\n",
           KEEP, BLOCK / KiB, h0.heap_alloc, h1.heap_alloc, (unsigned long long)h0.spans_inuse,
           (unsigned long long)h1.spans_inuse, (unsigned long long)h0.frees,
           (unsigned long long)h1.frees);
    CHECK_MSG(h1.heap_alloc < h0.heap_alloc + BLOCK, "kept blocks counted live: %zu -> %zu",
              h0.heap_alloc, h1.heap_alloc);
    CHECK(h1.frees >= h0.frees + KEEP);
    CHECK_MSG(h1.spans_inuse >= h0.spans_inuse + KEEP, "spans_inuse %llu -> %llu",
              (unsigned long long)h0.spans_inuse, (unsigned long long)h1.spans_inuse);

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        gm_heap_stats c = stats();
        int ok = c.spans_inuse + KEEP <= h1.spans_inuse;
        if (!ok)
            fprintf(stderr, "child: spans_inuse %llu, parent had %llu: the dead thread's kept "
                    "spans leaked\n", (unsigned long long)c.spans_inuse,
                    (unsigned long long)h1.spans_inuse);
        /* and the child can still allocate and free large blocks */
        for (int i = 0; i < 64; i++) {
            char *p = malloc(BLOCK);
            if (!p)
                _exit(3);
            p[0] = 1;
            free(p);
        }
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork child: status %d", status);

    pthread_barrier_wait(&forked);
    pthread_join(t, NULL);
    gm_heap_stats h2 = stats();
    printf("test_pagecache: after the keeper exited: spans_inuse %llu\n",
           (unsigned long long)h2.spans_inuse);
    CHECK_MSG(h2.spans_inuse + KEEP <= h1.spans_inuse, "spans_inuse %llu -> %llu after exit",
              (unsigned long long)h1.spans_inuse, (unsigned long long)h2.spans_inuse);
}

static void bounds(void) {
    enum { N = 16 };
    void *p[N];
    gm_heap_stats h0 = stats();
    for (int i = 0; i < N; i++)
        p[i] = malloc(MiB);
    for (int i = 0; i < N; i++)
        free(p[i]);
    gm_heap_stats h1 = stats();
    /* Kept spans count as idle; at most 4 MiB of them (plus the heap's
     * own cache of freed runs, 8 MiB at most). */
    printf("test_pagecache: %d x 1 MiB freed: heap_inuse %zu -> %zu KiB\n", N,
           h0.heap_inuse / KiB, h1.heap_inuse / KiB);
    CHECK(h1.heap_inuse <= h0.heap_inuse + MiB);
    CHECK(h1.spans_inuse <= h0.spans_inuse + 4);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0); /* no buffer allocated between measurements */
    reuse();
    keep_fork_exit();
    bounds();
    return check_done("test_pagecache");
}
