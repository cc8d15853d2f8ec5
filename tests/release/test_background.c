/*
 * With GOMALLOC_BACKGROUND=1 the scavenger runs in its own thread: memory a
 * program frees goes back to the OS even if the program never allocates
 * again.  The thread runs at SCHED_IDLE, so it must not be the only way
 * back: with the process on one CPU that its main thread keeps busy,
 * freed memory still goes back (the program's own slow paths take over
 * when the thread gets no turn).  (Run with a short
 * GOMALLOC_SCAVENGE_DELAY_MS.)
 */
#define _GNU_SOURCE /* nanosleep, sched_setaffinity */
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../check.h"
#include "../common.h"

static long rss_mib(void) { return (long)(gmt_rss() >> 20); }

/* Threads of this process whose scheduling policy is SCHED_IDLE (field 41
 * of /proc/self/task/TID/stat). */
static int idle_threads(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *p = strrchr(buf, ')'); /* the name may hold spaces */
        int field = 2;
        for (; p && *p && field < 41; p++)
            if (*p == ' ')
                field++;
        if (p && atoi(p) == SCHED_IDLE)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

int main(void) {
    enum { N = 256 };
    static char *blocks[N];
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0); /* inherited by the scavenger */
    long start = rss_mib();
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc((size_t)1 << 20);
        CHECK(blocks[i] != NULL);
        if (blocks[i])
            memset(blocks[i], 1, (size_t)1 << 20);
    }
    long peak = rss_mib();
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    /* No allocation from here on: only the background thread can help. */
    long after = peak;
    for (int ms = 0; ms < 3000 && after > start + 32; ms += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        after = rss_mib();
    }
    fprintf(stderr, "test_background: RSS start %ld MiB, peak %ld MiB, idle after free %ld MiB\n",
            start, peak, after);
    CHECK_MSG(after <= start + 32, "RSS stayed at %ld MiB (start %ld, peak %ld)", after, start, peak);
    CHECK_MSG(idle_threads() == 1, "%d SCHED_IDLE threads, want the scavenger's alone",
              idle_threads());

    /* Busy: the main thread never sleeps, on the process's only CPU, and
     * makes large malloc/free pairs (slow paths) all the time. */
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc((size_t)1 << 20);
        CHECK(blocks[i] != NULL);
        if (blocks[i])
            memset(blocks[i], 2, (size_t)1 << 20);
    }
    peak = rss_mib();
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    double t0 = gmt_now(), t = t0;
    unsigned long long pairs = 0;
    after = peak;
    while (t - t0 < 5.0 && after > start + 32) {
        for (int i = 0; i < 1000; i++, pairs++) {
            char *p = malloc(64 << 10);
            CHECK(p != NULL);
            if (p)
                p[0] = 1;
            free(p);
        }
        after = rss_mib();
        t = gmt_now();
    }
    fprintf(stderr, "test_background: busy on one CPU: RSS peak %ld MiB, %ld MiB after %.0f ms "
            "(%llu pairs)\n", peak, after, (t - t0) * 1000, pairs);
    CHECK_MSG(after <= start + 32, "busy: RSS stayed at %ld MiB (start %ld, peak %ld)", after,
              start, peak);
    return check_done("test_background");
}
