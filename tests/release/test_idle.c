/*
 * test_idle: an idle process gets its freed memory back with default
 * options, while it makes no allocator call at all.
 *
 * For each way of freeing (small objects, large objects, small objects
 * freed by another thread that then exits, and small objects the main thread
 * allocated, freed by another thread while the main thread lives on and
 * makes no call: its spans stay its own), 512 MiB is allocated and written,
 * then freed; from then on the program only reads /proc/self/statm (with
 * open/read, no stdio, no malloc) and sleeps.  The resident set must come
 * back within 64 MiB of where it started before a generous deadline (the
 * background scavenger aims at about 1 s).  The time it took is printed,
 * not asserted.  Each scenario runs in a child of its own, so each starts
 * from a fresh heap.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../check.h"
#include "../common.h"

#define MiB ((size_t)1 << 20)
#define TOTAL (512 * MiB)
#define SMALL 1000
#define NSMALL (TOTAL / SMALL)
#define LARGE (256 << 10)
#define NLARGE (TOTAL / LARGE)
#define SLACK (64 * MiB)
#define DEADLINE_S 15.0

static void **objs;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Resident bytes, without allocating. */
static size_t rss(void) { return gmt_rss_noalloc(); }

static void alloc_all(size_t size, size_t n) {
    for (size_t i = 0; i < n; i++) {
        objs[i] = malloc(size);
        if (!objs[i])
            abort();
        memset(objs[i], 1, size);
    }
}

static void free_all(size_t n) {
    for (size_t i = 0; i < n; i++)
        free(objs[i]);
}

static void *thread_fill(void *arg) {
    (void)arg;
    alloc_all(SMALL, NSMALL);
    return NULL;
}

static void *thread_free(void *arg) {
    (void)arg;
    free_all(NSMALL);
    return NULL;
}

static int scenario(const char *name) {
    objs = malloc(NSMALL * sizeof *objs);
    size_t base = rss();
    if (strcmp(name, "small") == 0) {
        alloc_all(SMALL, NSMALL);
        free_all(NSMALL);
    } else if (strcmp(name, "large") == 0) {
        alloc_all(LARGE, NLARGE);
        free_all(NLARGE);
    } else if (strcmp(name, "remote") == 0) { /* the owner stays, idle */
        alloc_all(SMALL, NSMALL);
        pthread_t t;
        pthread_create(&t, NULL, thread_free, NULL);
        pthread_join(t, NULL);
    } else { /* allocated by one thread, freed by another, both gone */
        pthread_t t;
        pthread_create(&t, NULL, thread_fill, NULL);
        pthread_join(t, NULL);
        pthread_create(&t, NULL, thread_free, NULL);
        pthread_join(t, NULL);
    }
    double t0 = now();
    size_t peak = rss(), r = peak;
    while (r > base + SLACK && now() - t0 < DEADLINE_S) {
        usleep(20000);
        r = rss();
    }
    char msg[200];
    int len = snprintf(msg, sizeof msg, "test_idle %-6s: base %zu MiB, after free %zu MiB, %zu MiB after %.2f s\n",
                       name, base / MiB, peak / MiB, r / MiB, now() - t0);
    if (write(2, msg, (size_t)len) < 0)
        return 1;
    CHECK_MSG(r <= base + SLACK, "%s: RSS %zu MiB, base %zu MiB", name, r / MiB, base / MiB);
    return check_done(name);
}

int main(int argc, char **argv) {
    const char *names[] = {"small", "large", "thread", "remote"};
    if (argc > 1)
        return scenario(argv[1]);
    for (int i = 0; i < 4; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execl("/proc/self/exe", argv[0], names[i], (char *)NULL);
            _exit(127);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "scenario %s failed (status %d)", names[i], st);
    }
    return check_done("test_idle");
}
