/*
 * stats_prog: gomalloc's heap statistics from inside a program.
 *
 *   stats_prog check     gm_get_heap_stats follows the program's allocations;
 *                        malloc_stats() writes a report to stderr (nothing
 *                        to stdout); gm_print_stats(fd) writes one to fd.
 *   stats_prog work      allocates objects of many size classes, frees some,
 *                        prints "done" and exits (for the GOMALLOC_STATS=1
 *                        report at exit, checked by test_stats.sh).
 *
 * Linked with build/libgomalloc.so.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gomalloc.h"
#include "../check.h"

static void *keep[4096];

static void work(void) {
    int k = 0;
    for (size_t n = 1; n <= 40000 && k < 4096; n = n + n / 7 + 1) {
        for (int i = 0; i < 8 && k < 4096; i++) {
            keep[k] = malloc(n);
            memset(keep[k], 1, n);
            k++;
        }
    }
    for (int i = 0; i < k; i += 3) {
        free(keep[i]);
        keep[i] = NULL;
    }
}

/* Reads a whole file descriptor (rewound) into buf. */
static size_t slurp(int fd, char *buf, size_t cap) {
    lseek(fd, 0, SEEK_SET);
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    return n;
}

static int tmpfd(void) {
    char path[] = "/tmp/gmtest-stats-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static void check_stats(void) {
    gm_heap_stats a, b, c;
    gm_get_heap_stats(&a);
    CHECK_GE_U(a.heap_sys, a.heap_inuse);
    enum { N = 5000 };
    static void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = malloc(100);
    void *big = malloc(64u << 20);
    memset(big, 1, 1 << 20);
    gm_get_heap_stats(&b);
    CHECK_MSG(b.mallocs >= a.mallocs + N + 1, "mallocs %llu -> %llu after %d mallocs",
              (unsigned long long)a.mallocs, (unsigned long long)b.mallocs, N + 1);
    CHECK_MSG(b.heap_alloc >= a.heap_alloc + N * 100 + (64u << 20),
              "heap_alloc %zu -> %zu after allocating %zu bytes", a.heap_alloc, b.heap_alloc,
              (size_t)N * 100 + (64u << 20));
    CHECK_MSG(b.heap_objects >= a.heap_objects + N, "heap_objects %zu -> %zu", a.heap_objects,
              b.heap_objects);
    CHECK_GE_U(b.heap_inuse, 64u << 20);
    CHECK_GE_U(b.heap_sys, b.heap_inuse);
    CHECK_GE_U(b.heap_inuse, b.heap_alloc);
    CHECK_MSG(b.heap_idle + b.heap_inuse == b.heap_sys, "idle %zu + inuse %zu != sys %zu",
              b.heap_idle, b.heap_inuse, b.heap_sys);
    CHECK_GE_U(b.heap_idle, b.heap_released);
    CHECK(b.meta_sys > 0);
    CHECK(b.os_maps > 0);
    for (int i = 0; i < N; i++)
        free(p[i]);
    free(big);
    gm_get_heap_stats(&c);
    CHECK_MSG(c.frees >= b.frees + N + 1, "frees %llu -> %llu after %d frees",
              (unsigned long long)b.frees, (unsigned long long)c.frees, N + 1);
    CHECK_MSG(c.heap_alloc + (64u << 20) <= b.heap_alloc, "heap_alloc %zu -> %zu after freeing",
              b.heap_alloc, c.heap_alloc);
    CHECK_GE_U(c.mallocs, c.frees);

    /* mallinfo2 agrees with the heap stats in spirit */
    struct mallinfo2 mi = mallinfo2();
    CHECK(mi.arena + mi.hblkhd > 0);

    /* malloc_stats: a report on stderr, nothing on stdout */
    int efd = tmpfd(), ofd = tmpfd();
    if (CHECK(efd >= 0 && ofd >= 0)) {
        fflush(stdout);
        fflush(stderr);
        int se = dup(2), so = dup(1);
        dup2(efd, 2);
        dup2(ofd, 1);
        malloc_stats();
        fflush(stdout);
        fflush(stderr);
        dup2(se, 2);
        dup2(so, 1);
        close(se);
        close(so);
        static char buf[1 << 16];
        size_t n = slurp(efd, buf, sizeof buf);
        CHECK_MSG(n > 0, "malloc_stats wrote nothing to stderr");
        CHECK_MSG(strcasestr(buf, "heap") != NULL, "malloc_stats report lacks \"heap\"");
        n = slurp(ofd, buf, sizeof buf);
        CHECK_MSG(n == 0, "malloc_stats wrote %zu bytes to stdout", n);
        close(efd);
        close(ofd);
    }

    /* gm_print_stats to a file descriptor */
    int fd = tmpfd();
    if (CHECK(fd >= 0)) {
        gm_print_stats(fd);
        static char buf[1 << 16];
        size_t n = slurp(fd, buf, sizeof buf);
        CHECK_MSG(n > 0 && strcasestr(buf, "heap") != NULL, "gm_print_stats(fd) wrote %zu bytes",
                  n);
        close(fd);
    }
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "work")) {
        work();
        printf("done\n");
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "check")) {
        check_stats();
        return check_done("stats_prog");
    }
    fprintf(stderr, "usage: %s check|work\n", argv[0]);
    return 2;
}
