/*
 * prof_prog: programs with a known heap, for the heap profiler's tests
 * (test_profile.sh).  Built with -fomit-frame-pointer on purpose: stacks
 * must come from unwind tables, not frame pointers.  Linked with
 * build/libgomalloc.so; -rdynamic so the leak report can name functions.
 *
 *   prof_prog shape      keep_live() keeps 64 MiB live, churn() allocates
 *                        and frees 256 MiB; the profile is written at exit.
 *   prof_prog exact N    exact_allocs() makes N allocations of 100 bytes,
 *                        frees none (run with GOMALLOC_PROFILE_RATE=1).
 *   prof_prog leak       plant_leak() loses 100 blocks of 1000 bytes; other
 *                        allocations are freed.
 *   prof_prog ondemand P gm_profile_write(P) in the middle of the run.
 *   prof_prog signal P   raises GOMALLOC_PROFILE_SIGNAL and waits for P.
 *   prof_prog threads    4 threads allocate and free, one of them forks; the
 *                        child allocates too and exits normally.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gomalloc.h"

#define KEEP_BYTES ((size_t)64 << 20)
#define CHURN_BYTES ((size_t)256 << 20)
#define BLOCK 4096

static void *volatile sink;
static void **kept;
static size_t nkept;

__attribute__((noinline)) void keep_live(void) {
    nkept = KEEP_BYTES / BLOCK;
    kept = calloc(nkept, sizeof *kept); /* 128 KiB: a little noise */
    for (size_t i = 0; i < nkept; i++) {
        kept[i] = malloc(BLOCK);
        memset(kept[i], 1, 64);
    }
}

__attribute__((noinline)) void churn(void) {
    for (size_t done = 0; done < CHURN_BYTES; done += 2 * BLOCK) {
        void *a = malloc(BLOCK), *b = malloc(BLOCK);
        sink = a;
        free(a);
        sink = b;
        free(b);
    }
}

__attribute__((noinline)) void exact_allocs(int n) {
    for (int i = 0; i < n; i++) {
        void *p = malloc(100);
        sink = p;
    }
}

/* One call site reached from two callers whose frames are alike: the
 * profiler's stack memo sees the same return address at the same depth,
 * and must still tell the callers apart. */
__attribute__((noinline)) void leaf_alloc(void) {
    void *p = malloc(100);
    sink = p;
    free(p);
}

__attribute__((noinline)) void path_a(int n) {
    for (int i = 0; i < n; i++)
        leaf_alloc();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void path_b(int n) {
    for (int i = 0; i < n; i++)
        leaf_alloc();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void plant_leak(void) {
    for (int i = 0; i < 100; i++) {
        void *p = malloc(1000);
        memset(p, 2, 1000);
        sink = p;
    }
    sink = NULL;
}

__attribute__((noinline)) void tidy_work(void) {
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(200 + i);
        p[0] = 1;
        free(p);
    }
}

static void *thread_main(void *arg) {
    long id = (long)arg;
    void *ring[64] = {0};
    for (int i = 0; i < 200000; i++) {
        free(ring[i & 63]);
        ring[i & 63] = malloc((size_t)(16 + (i * 7 + id) % 5000));
        if (id == 0 && i == 100000) {
            pid_t pid = fork();
            if (pid == 0) {
                churn();
                exit(0);
            }
            int st;
            waitpid(pid, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "child failed\n");
                exit(1);
            }
        }
    }
    for (int i = 0; i < 64; i++)
        free(ring[i]);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "shape")) {
        keep_live();
        churn();
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "exact")) {
        exact_allocs(atoi(argv[2]));
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "paths")) {
        for (int i = 0; i < 1000; i++) {
            path_a(3);
            path_b(1);
        }
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "leak")) {
        tidy_work();
        plant_leak();
        tidy_work();
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "ondemand")) {
        keep_live();
        if (gm_profile_write(argv[2]) != 0) {
            perror("gm_profile_write");
            return 1;
        }
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "signal")) {
        keep_live();
        raise(SIGUSR2);
        struct stat st;
        for (int i = 0; i < 100 && stat(argv[2], &st) != 0; i++)
            usleep(10000);
        return stat(argv[2], &st) == 0 ? 0 : 1;
    }
    if (argc >= 2 && !strcmp(argv[1], "threads")) {
        pthread_t t[4];
        for (long i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, thread_main, (void *)i);
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
        return 0;
    }
    fprintf(stderr, "usage: %s shape|exact N|paths|leak|ondemand FILE|signal FILE|threads\n",
            argv[0]);
    return 2;
}
