/*
 * test_limits: the memory limit, the kernel's refusals, and the cgroup.
 *
 *  soft     GOMALLOC_MEMLIMIT_MB=1, far below the live set: a churn of
 *           small and large objects over a ~64 MiB live set finishes (the
 *           watchdog in run.sh is the only clock) and its objects survive.
 *  hard     gm_set_memory_limit(64 MiB, hard): 1 MiB blocks are allocated
 *           until one fails; it must fail with ENOMEM before 80 MiB are in
 *           use, and after some are freed allocation works again.  The
 *           resident set stays near the limit.  The same with the
 *           GOMALLOC_MEMLIMIT_MB + GOMALLOC_MEMLIMIT_HARD options.
 *  huge     With the kernel's heuristic overcommit (vm.overcommit_memory 0)
 *           and less RAM + swap than the request, malloc, calloc and
 *           realloc of 4x (RAM + swap) fail with ENOMEM, as with glibc;
 *           skipped under other overcommit modes.
 *  cgroup   A fake cgroup tree in a temporary directory
 *           (GOMALLOC_CGROUP_ROOT), laid out after /proc/self/cgroup: v2
 *           memory.max with a number and with "max", v1
 *           memory.limit_in_bytes with a number and with "no limit", a
 *           parent stricter than the child, GOMALLOC_CGROUP=0, and
 *           GOMALLOC_MEMLIMIT_MB taking precedence.  gm_get_memory_limit
 *           reports what was read.
 * Each case runs as a fresh process (the limit is read at start-up).
 * Linked with build/libgomalloc.so.  Usage: test_limits [case [expected]]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gomalloc.h"
#include "../check.h"
#include "../common.h"

#define MiB ((size_t)1 << 20)

static size_t rss(void) { return gmt_rss_noalloc(); }

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static int soft(void) {
    enum { SLOTS = 20000, ROUNDS = 400000 };
    static unsigned char *slot[SLOTS];
    static size_t len[SLOTS];
    for (int r = 0; r < ROUNDS; r++) {
        unsigned i = (unsigned)(rnd() % SLOTS);
        if (slot[i]) {
            CHECK(slot[i][0] == (unsigned char)i && slot[i][len[i] - 1] == (unsigned char)i);
            free(slot[i]);
        }
        len[i] = rnd() % 16 == 0 ? 40000 + rnd() % 200000 : 1 + rnd() % 4000;
        slot[i] = malloc(len[i]);
        if (!CHECK(slot[i] != NULL))
            return 1;
        slot[i][0] = slot[i][len[i] - 1] = (unsigned char)i;
    }
    for (int i = 0; i < SLOTS; i++)
        free(slot[i]);
    return check_done("test_limits soft");
}

static int hard(int by_env) {
    if (!by_env)
        CHECK(gm_set_memory_limit(64 * MiB, 1) == 0);
    int h = 0;
    CHECK(gm_get_memory_limit(&h) == 64 * MiB && h == 1);
    enum { N = 200 };
    static char *b[N];
    int n = 0;
    errno = 0;
    for (; n < N; n++) {
        b[n] = malloc(MiB);
        if (!b[n])
            break;
        memset(b[n], 1, MiB);
    }
    check_say("test_limits hard: %d MiB allocated, then errno %d; RSS %zu MiB\n", n, errno,
              rss() / MiB);
    CHECK_MSG(n < 80 && n > 40 && errno == ENOMEM, "%d blocks, errno %d", n, errno);
    CHECK(rss() < 100 * MiB);
    char *small = NULL;
    for (int i = 0; i < 100000 && (small = malloc(100)) != NULL; i++)
        ; /* small objects hit the limit too (leaked on purpose) */
    CHECK_MSG(small == NULL && errno == ENOMEM, "small allocations never failed");
    for (int i = 0; i < n; i++)
        free(b[i]);
    void *again = malloc(8 * MiB);
    CHECK_MSG(again != NULL, "allocation after freeing");
    free(again);
    CHECK(gm_set_memory_limit(0, 0) == 0 && gm_get_memory_limit(NULL) == 0);
    again = malloc(200 * MiB);
    CHECK_MSG(again != NULL, "allocation after removing the limit");
    free(again);
    return check_done("test_limits hard");
}

static int huge(void) {
    char mode[16] = "";
    int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY);
    ssize_t k = fd >= 0 ? read(fd, mode, sizeof mode - 1) : -1;
    if (fd >= 0)
        close(fd);
    struct sysinfo si;
    sysinfo(&si);
    size_t ram = (size_t)(si.totalram + si.totalswap) * si.mem_unit;
    if (k <= 0 || mode[0] != '0') {
        check_say("test_limits huge: overcommit mode %s, skipped\n", mode);
        return check_done("test_limits huge");
    }
    size_t big = 4 * ram;
    errno = 0;
    void *p = malloc(big);
    CHECK_MSG(p == NULL && errno == ENOMEM, "malloc(%zu GiB): %p errno %d", big >> 30, p, errno);
    errno = 0;
    p = calloc(big / 16, 16);
    CHECK_MSG(p == NULL && errno == ENOMEM, "calloc: %p errno %d", p, errno);
    char *q = malloc(100);
    void *(*volatile realloc_fn)(void *, size_t) = realloc; /* q stays ours when it fails */
    errno = 0;
    p = realloc_fn(q, big);
    CHECK_MSG(p == NULL && errno == ENOMEM, "realloc: %p errno %d", p, errno);
    free(q);
    p = malloc(64 * MiB); /* the heap still works */
    CHECK(p != NULL);
    if (p)
        memset(p, 1, 64 * MiB);
    free(p);
    return check_done("test_limits huge");
}

/* ---- cgroup ---- */

static char root[256];

static void put(const char *dir, const char *name, const char *text) {
    char path[1024], cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s%s'", root, dir);
    if (system(cmd) != 0)
        return;
    snprintf(path, sizeof path, "%s%s/%s", root, dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void wipe(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", root);
    if (system(cmd) != 0)
        return;
}

/* Runs this program's "report" case with extra environment; returns the
 * limit it read. */
static size_t child_limit(const char *env1, const char *env2) {
    char out[64] = "";
    int fds[2];
    if (pipe(fds) != 0)
        return (size_t)-1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        setenv("GOMALLOC_CGROUP_ROOT", root, 1);
        if (env1) putenv((char *)env1);
        if (env2) putenv((char *)env2);
        execl("/proc/self/exe", "test_limits", "report", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    waitpid(pid, NULL, 0);
    out[n > 0 ? n : 0] = 0;
    return (size_t)strtoull(out, NULL, 10);
}

#define EXPECT(got, want, what)                                                                \
    CHECK_MSG((got) == (want), "%s: limit %zu, want %zu", what, (size_t)(got), (size_t)(want))

static int cgroup(void) {
    snprintf(root, sizeof root, "/tmp/gmtest-cgroup-%d", (int)getpid());
    mkdir(root, 0700);
    /* Our own cgroup paths, as the library will find them. */
    char self[4096] = "", v1[1024] = "", v2[1024] = "";
    int fd = open("/proc/self/cgroup", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, self, sizeof self - 1) : -1;
    if (fd >= 0)
        close(fd);
    self[n > 0 ? n : 0] = 0;
    bool has_v2 = strstr(self, "0::") != NULL;
    for (char *line = strtok(self, "\n"); line; line = strtok(NULL, "\n")) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        if (strncmp(line, "0::", 3) == 0)
            snprintf(v2, sizeof v2, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
        *c2 = 0;
        if (strstr(c1 + 1, "memory"))
            snprintf(v1, sizeof v1, "/memory%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
    }
    const size_t G = (size_t)1 << 30;
    EXPECT(child_limit(NULL, NULL), 0, "empty tree");
    if (has_v2) {
        put(v2, "memory.max", "2147483648\n");
        EXPECT(child_limit(NULL, NULL), 2 * G, "v2 number");
        EXPECT(child_limit("GOMALLOC_CGROUP=0", NULL), 0, "v2 turned off");
        EXPECT(child_limit("GOMALLOC_MEMLIMIT_MB=100", NULL), 100 * MiB, "option first");
        put(v2, "memory.max", "max\n");
        EXPECT(child_limit(NULL, NULL), 0, "v2 max");
        if (v2[0]) { /* a stricter parent wins */
            char parent[1024];
            snprintf(parent, sizeof parent, "%s", v2);
            *strrchr(parent, '/') = 0;
            put(parent, "memory.max", "1073741824\n");
            EXPECT(child_limit(NULL, NULL), G, "v2 parent");
        }
        wipe();
    }
    if (v1[0]) {
        put(v1, "memory.limit_in_bytes", "3221225472\n");
        EXPECT(child_limit(NULL, NULL), 3 * G, "v1 number");
        put(v1, "memory.limit_in_bytes", "9223372036854771712\n");
        EXPECT(child_limit(NULL, NULL), 0, "v1 unlimited");
        put("/memory", "memory.limit_in_bytes", "1073741824\n");
        EXPECT(child_limit(NULL, NULL), G, "v1 root stricter");
        EXPECT(child_limit("GOMALLOC_CGROUP=0", NULL), 0, "v1 turned off");
        wipe();
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        check_say("could not remove %s\n", root);
    return check_done("test_limits cgroup");
}

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    if (strcmp(c, "report") == 0) {
        printf("%zu\n", gm_get_memory_limit(NULL));
        return 0;
    }
    if (strcmp(c, "soft") == 0) return soft();
    if (strcmp(c, "hard") == 0) return hard(0);
    if (strcmp(c, "hard_env") == 0) return hard(1);
    if (strcmp(c, "huge") == 0) return huge();
    if (strcmp(c, "cgroup") == 0) return cgroup();
    fprintf(stderr, "usage: test_limits soft|hard|hard_env|huge|cgroup\n");
    return 2;
}
