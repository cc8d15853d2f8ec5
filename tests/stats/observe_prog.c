/*
 * observe_prog: gomalloc's machine-readable outputs from inside a program
 * (test_observe.sh).  Linked with build/libgomalloc.so.
 *
 *   observe_prog json       prints gm_stats_json() and, on a second line,
 *                           gm_get_heap_stats() as JSON, taken back to back;
 *                           checks the struct's size/version and truncation
 *   observe_prog mallinfo   malloc_info(0, stdout)
 *   observe_prog heapmap F  draws the heap into F with gm_heap_map() and
 *                           prints the number of spans gm_get_heap_stats saw
 *   observe_prog fds DIR    closes every descriptor from 2 to 1100 (its
 *                           stderr and gomalloc's copy of it), opens 1000
 *                           files in DIR, allocates, and exits
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gomalloc.h"

static void *keep[20000];

static void work(void) {
    int k = 0;
    for (size_t n = 1; n <= 300000 && k < 20000; n = n + n / 9 + 1)
        for (int i = 0; i < 40 && k < 20000; i++) {
            keep[k] = malloc(n);
            memset(keep[k], 1, n < 64 ? n : 64);
            k++;
        }
    for (int i = 0; i < k; i += 3) {
        free(keep[i]);
        keep[i] = NULL;
    }
}

#define U(x) ((unsigned long long)(x))

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "json")) {
        work();
        static char buf[1 << 16];
        size_t n = gm_stats_json(buf, sizeof buf);
        gm_heap_stats h;
        gm_get_heap_stats(&h);
        if (n == 0 || n >= sizeof buf) {
            fprintf(stderr, "gm_stats_json returned %zu\n", n);
            return 1;
        }
        char small[10];
        size_t m = gm_stats_json(small, sizeof small);
        if (m < n - 100 || strlen(small) != sizeof small - 1 || memcmp(small, buf, 9) != 0) {
            fprintf(stderr, "truncated gm_stats_json: %zu, \"%s\"\n", m, small);
            return 1;
        }
        if (h.size != sizeof h || h.version != GM_HEAP_STATS_VERSION) {
            fprintf(stderr, "gm_heap_stats size %u version %u\n", h.size, h.version);
            return 1;
        }
        printf("%s\n", buf);
        printf("{\"HeapAlloc\":%llu,\"HeapSys\":%llu,\"HeapIdle\":%llu,\"HeapInuse\":%llu,"
               "\"HeapReleased\":%llu,\"HeapObjects\":%llu,\"Mallocs\":%llu,\"Frees\":%llu,"
               "\"Spans\":%llu,\"PeakHeapInuse\":%llu}\n",
               U(h.heap_alloc), U(h.heap_sys), U(h.heap_idle), U(h.heap_inuse),
               U(h.heap_released), U(h.heap_objects), U(h.mallocs), U(h.frees),
               U(h.spans_inuse), U(h.peak_heap_inuse));
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "mallinfo")) {
        work();
        if (malloc_info(1, stdout) != -1 || errno != EINVAL) {
            fprintf(stderr, "malloc_info(1, fp) did not fail with EINVAL\n");
            return 1;
        }
        return malloc_info(0, stdout) == 0 ? 0 : 1;
    }
    if (argc >= 3 && !strcmp(argv[1], "heapmap")) {
        work();
        void *big = malloc(20 << 20); /* a large object across chunk rows */
        memset(big, 1, 4096);
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || gm_heap_map(fd) != 0) {
            perror("gm_heap_map");
            return 1;
        }
        close(fd);
        gm_heap_stats h;
        gm_get_heap_stats(&h);
        printf("%llu\n", U(h.spans_inuse));
        free(big);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "fds")) {
        for (int fd = 2; fd <= 1100; fd++)
            close(fd);
        for (int i = 0; i < 1000; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/f%d", argv[2], i);
            if (open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644) < 0)
                break;
        }
        work();
        return 0;
    }
    fprintf(stderr, "usage: %s json|mallinfo|heapmap FILE|fds DIR\n", argv[0]);
    return 2;
}
