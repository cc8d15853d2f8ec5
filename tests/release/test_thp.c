/*
 * test_thp: with GOMALLOC_THP=always the heap asks for huge pages, and the
 * scavenger leaves dense huge pages whole.
 *
 * 64 MiB of 64 KiB blocks are allocated and written; the process's
 * AnonHugePages (/proc/self/smaps_rollup) is read.  One block in 32 is freed
 * (each 2 MiB huge page keeps 31 of its 32 blocks: about 97% in use), and
 * after 2 s (well past the scavenge delay, with the background thread
 * running) AnonHugePages must not have dropped by more than the freed
 * share plus slack.  Then everything is freed and the memory must go back
 * (the resident set falls), huge pages or not.  Skipped when the kernel
 * gave no huge pages at all (THP off, or no memory to compact).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define BLOCK (64 * KiB)
#define N (64 * MiB / BLOCK)

static long field_kb(const char *file, const char *name) {
    static char buf[8192];
    int fd = open(file, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *p = strstr(buf, name);
    return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

static long huge_kb(void) { return field_kb("/proc/self/smaps_rollup", "AnonHugePages:"); }
static long rss_kb(void) { return field_kb("/proc/self/status", "VmRSS:"); }

int main(void) {
    static char *b[N];
    /* Large enough that the background thread starts (heap past 64 MiB). */
    char *warm = malloc(16 * MiB);
    for (size_t i = 0; i < N; i++) {
        b[i] = malloc(BLOCK);
        if (!CHECK(b[i] != NULL))
            return check_done("test_thp");
        memset(b[i], 1, BLOCK);
    }
    free(warm);
    long before = huge_kb();
    check_say("test_thp: AnonHugePages %ld kB after 64 MiB, RSS %ld kB\n", before, rss_kb());
    if (before <= 0) {
        check_say("test_thp: no huge pages from the kernel, skipped\n");
        return check_done("test_thp");
    }
    for (size_t i = 0; i < N; i += 32) {
        free(b[i]);
        b[i] = NULL;
    }
    sleep(2);
    long dense = huge_kb();
    check_say("test_thp: AnonHugePages %ld kB 2 s after freeing 1 block in 32\n", dense);
    CHECK_MSG(dense >= before * 9 / 10, "dense huge pages were split: %ld kB -> %ld kB", before, dense);
    for (size_t i = 0; i < N; i++)
        free(b[i]);
    long r = rss_kb();
    for (int i = 0; i < 100 && r > 40 * 1024; i++) {
        usleep(50000);
        r = rss_kb();
    }
    check_say("test_thp: after freeing all: RSS %ld kB, AnonHugePages %ld kB\n", r, huge_kb());
    CHECK_MSG(r <= 40 * 1024, "RSS %ld kB after freeing everything", r);
    return check_done("test_thp");
}
