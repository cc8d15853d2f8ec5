/*
 * test_pagecache: the per-thread page cache (src/mpagecache.c), through the
 * public API and the heap statistics.
 *
 *  a. Reuse: a large block freed and allocated again by one thread comes
 *     back at the same address without a span from mheap (mheap_allocs
 *     unchanged: the thread kept its span), and a calloc of that size still
 *     reads zero.
 *  b. Accounting: blocks a thread keeps are not live (heap_alloc), their
 *     frees are counted (frees), and their spans are (spans_inuse).
 *  c. Fork: a thread keeps 4 spans and the main thread forks; in the child
 *     those spans have lost their keeper and go back to the heap
 *     (spans_inuse drops by 4).  Without that they would leak in the child.
 *  d. Thread exit: the exiting thread's kept spans go back (spans_inuse
 *     drops by 4 in the parent after the join).
 *  e. Bounds: a thread that frees 16 blocks of 2 MiB keeps at most 4 MiB
 *     (two spans), and malloc_trim gives them back.
 *  f. Kept spans are the thread's own idle memory: under a hard memory
 *     limit that they would push an allocation over, they are given back
 *     and the allocation succeeds.
 *  g. Two threads free one large block at the same moment (20 times, each
 *     in a forked child): exactly one free keeps it, the other is reported
 *     as a double free and the child aborts.
 *  h. A miss gives the kept spans back: two buffers grown side by side by
 *     realloc to 8 MiB (where a buffer cannot grow in place, the step moves
 *     it and frees the old block, and no kept span ever fits a later size)
 *     leave no span kept; the heap can reuse those pages for the growth.
 *
 * Linked with build/libgomalloc.so (gm_get_heap_stats).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
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
        gm_heap_stats before = stats();
        char *q = malloc(size);
        gm_heap_stats after = stats();
        CHECK_MSG(q == p, "malloc(%zu) after free: %p, freed %p", size, (void *)q, (void *)p);
        CHECK_MSG(after.mheap_allocs == before.mheap_allocs,
                  "malloc(%zu) after free took a span from mheap (%llu -> %llu)", size,
                  (unsigned long long)before.mheap_allocs, (unsigned long long)after.mheap_allocs);
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
    malloc_trim(0); /* nothing kept from the parts before */
    gm_heap_stats h0 = stats();
    for (int i = 0; i < N; i++)
        p[i] = malloc(2 * MiB);
    for (int i = 0; i < N; i++)
        free(p[i]);
    gm_heap_stats h1 = stats();
    malloc_trim(0);
    gm_heap_stats h2 = stats();
    /* Kept spans count in spans_inuse (and as idle bytes). */
    printf("test_pagecache: %d x 2 MiB freed: spans_inuse %llu -> %llu, after malloc_trim %llu\n",
           N, (unsigned long long)h0.spans_inuse, (unsigned long long)h1.spans_inuse,
           (unsigned long long)h2.spans_inuse);
    CHECK(h1.heap_inuse <= h0.heap_inuse + MiB);
    CHECK_MSG(h1.spans_inuse == h0.spans_inuse + 2, "kept %lld spans of 2 MiB, want 2 (4 MiB)",
              (long long)h1.spans_inuse - (long long)h0.spans_inuse);
    CHECK_MSG(h2.spans_inuse == h0.spans_inuse, "malloc_trim left %lld kept spans",
              (long long)h2.spans_inuse - (long long)h0.spans_inuse);
}

static void hard_limit(void) {
    malloc_trim(0);
    gm_heap_stats h = stats();
    CHECK(gm_set_memory_limit(h.heap_inuse + 10 * MiB, 1) == 0);
    void *a = malloc(2 * MiB), *b = malloc(2 * MiB);
    CHECK(a && b);
    free(a);
    free(b); /* kept: 4 MiB the heap counts in use */
    void *big = malloc(8 * MiB);
    CHECK_MSG(big != NULL, "malloc(8 MiB) under a 10 MiB hard limit failed with 4 MiB kept");
    free(big);
    gm_set_memory_limit(0, 0);
}

static void miss_returns(void) {
    malloc_trim(0);
    gm_heap_stats h0 = stats();
    char *buf[2] = {NULL, NULL};
    size_t moves = 0;
    for (size_t n = 64 * KiB; n <= 8 * MiB; n += 64 * KiB) {
        for (int b = 0; b < 2; b++) {
            char *q = realloc(buf[b], n);
            if (!CHECK(q != NULL))
                return;
            moves += q != buf[b];
            memset(q + n - 64 * KiB, b, 64 * KiB);
            buf[b] = q;
        }
    }
    gm_heap_stats h1 = stats();
    printf("test_pagecache: two buffers grown to 8 MiB (%zu moves): spans_inuse %llu -> %llu\n",
           moves, (unsigned long long)h0.spans_inuse, (unsigned long long)h1.spans_inuse);
    CHECK_MSG(moves >= 16, "only %zu moves: the buffers grew in place, the case tests nothing",
              moves);
    CHECK_MSG(h1.spans_inuse == h0.spans_inuse + 2, "%lld spans kept after the growth",
              (long long)h1.spans_inuse - (long long)h0.spans_inuse - 2);
    free(buf[0]);
    free(buf[1]);
}

static void *racing_free(void *p) {
    pthread_barrier_wait(&kept);
    free(p);
    return NULL;
}

/* The child: two threads free p at once; it must not get past the joins. */
static void double_free_child(void) {
    void *p = malloc(BLOCK);
    pthread_barrier_init(&kept, NULL, 2);
    pthread_t a, b;
    pthread_create(&a, NULL, racing_free, p);
    pthread_create(&b, NULL, racing_free, p);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    _exit(0);
}

static void racing_double_free(void) {
    for (int round = 0; round < 20; round++) {
        int fds[2];
        if (!CHECK(pipe(fds) == 0))
            return;
        pid_t pid = fork();
        if (pid == 0) {
            dup2(fds[1], 2);
            close(fds[0]);
            double_free_child();
        }
        close(fds[1]);
        char out[512] = "";
        size_t len = 0;
        ssize_t got;
        while (len < sizeof out - 1 && (got = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
            len += (size_t)got;
        out[len] = 0;
        close(fds[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "round %d: the racing double free did not abort (status %d)", round, status);
        CHECK_MSG(strstr(out, "free(): double free") != NULL, "round %d: report: %s", round, out);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0); /* no buffer allocated between measurements */
    reuse();
    keep_fork_exit();
    bounds();
    hard_limit();
    miss_returns();
    racing_double_free();
    return check_done("test_pagecache");
}
