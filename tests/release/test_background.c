/*
 * With GOMALLOC_BACKGROUND=1 the scavenger runs in its own thread: memory a
 * program frees goes back to the OS even if the program never allocates
 * again.  (Run with a short GOMALLOC_SCAVENGE_DELAY_MS.)
 */
#define _GNU_SOURCE /* nanosleep under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../check.h"

static long rss_mib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * 4 / 1024;
}

int main(void) {
    enum { N = 256 };
    static char *blocks[N];
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
    return check_done("test_background");
}
