/*
 * test_fork_scavenger: a forked child gets its own background scavenger.
 *
 * The parent allocates and writes 512 MiB (so its scavenger thread starts),
 * frees it all and forks at once, before that memory has gone back.  The
 * child then makes no allocator call: it only reads its resident set (with
 * open/read) and sleeps.  Its resident set must come back within 64 MiB of
 * the parent's starting point before a generous deadline; only a thread of
 * its own can do that.  The time it took is printed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../check.h"
#include "../common.h"

#define MiB ((size_t)1 << 20)
#define N 512
#define DEADLINE_S 15.0

static size_t rss(void) { return gmt_rss_noalloc(); }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void) {
    static char *b[N];
    size_t base = rss();
    for (int i = 0; i < N; i++) {
        b[i] = malloc(MiB);
        if (!CHECK(b[i] != NULL))
            return check_done("test_fork_scavenger");
        memset(b[i], 1, MiB);
    }
    for (int i = 0; i < N; i++)
        free(b[i]);
    pid_t pid = fork();
    if (pid == 0) {
        double t0 = now();
        size_t r = rss(), first = r;
        while (r > base + 64 * MiB && now() - t0 < DEADLINE_S) {
            usleep(20000);
            r = rss();
        }
        char msg[160];
        int len = snprintf(msg, sizeof msg,
                           "test_fork_scavenger child: base %zu MiB, at fork %zu MiB, %zu MiB after %.2f s\n",
                           base / MiB, first / MiB, r / MiB, now() - t0);
        if (write(2, msg, (size_t)len) < 0)
            _exit(2);
        _exit(r <= base + 64 * MiB ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child kept its memory (status %d)", st);
    return check_done("test_fork_scavenger");
}
