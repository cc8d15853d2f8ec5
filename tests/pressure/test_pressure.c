/*
 * test_pressure: running out of memory is an ordinary error.
 *
 * Each case runs in a forked child that first limits its address space
 * (setrlimit RLIMIT_AS) to its current size (VmSize) + 256 MiB, then:
 *   blocks   allocates 1 MiB blocks until malloc returns NULL: that must
 *            happen, with errno ENOMEM, before 256 MiB + a margin; frees
 *            them all; allocates again (a few blocks, small objects, and
 *            again up to the limit: about as many blocks as the first time);
 *   huge     single requests beyond the limit (300 MiB, 1 GiB, 100 GiB,
 *            1 TiB, ...) through malloc, calloc, realloc (which must leave
 *            the block intact), posix_memalign, aligned_alloc, memalign,
 *            valloc: NULL (or ENOMEM) and errno ENOMEM; after each size, a
 *            100 MiB request (which fits) must still succeed;
 *   small    64-byte objects (chained through themselves) until malloc
 *            returns NULL with ENOMEM; all freed; then 1 MiB blocks and small
 *            objects are available again;
 *   mixed    random sizes 16 B .. 256 KiB until NULL, then free and again;
 *   realloc  one block grown by realloc in 1 MiB steps until it fails: the
 *            block must keep its contents and stay usable.
 * A child that crashes or aborts, or hangs (20 s alarm), fails its case;
 * the child's exit status tells the parent how its checks went.
 *
 * Run with LD_PRELOAD=build/libgomalloc.so and GMTEST_IMPL=gomalloc.
 * Usage: test_pressure [CASE...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check.h"
#include "../common.h"

#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wuse-after-free"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define HEADROOM (256 * MiB)
#define MAXBLOCKS 4096

static void *launder(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

static size_t vmsize(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (size_t)pages * 4096;
}

static int limit_address_space(void) {
    size_t vm = vmsize();
    if (!CHECK(vm > 0))
        return -1;
    struct rlimit rl = {vm + HEADROOM, vm + HEADROOM};
    if (!CHECK_MSG(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit: %s", strerror(errno)))
        return -1;
    check_say("  VmSize %.1f MiB, RLIMIT_AS %.1f MiB\n", (double)vm / MiB,
              (double)rl.rlim_cur / MiB);
    return 0;
}

static void *blocks[MAXBLOCKS];

/* 1 MiB blocks until malloc fails; returns how many it got. */
static size_t blocks_until_null(const char *when) {
    size_t n = 0;
    for (;;) {
        if (!CHECK_MSG(n < MAXBLOCKS, "%s: %zu MiB allocated under a %zu MiB headroom", when, n,
                       HEADROOM / MiB))
            break;
        errno = 0;
        void *p = launder(malloc(MiB));
        if (!p) {
            CHECK_MSG(errno == ENOMEM, "%s: malloc(1 MiB) = NULL with errno %d (%s)", when, errno,
                      strerror(errno));
            break;
        }
        /* usable: write its first and last page */
        memset(p, 0x5a, 4096);
        memset((char *)p + MiB - 4096, 0xa5, 4096);
        blocks[n++] = p;
    }
    check_say("  %s: %zu blocks of 1 MiB before malloc returned NULL\n", when, n);
    return n;
}

static void free_blocks(size_t n) {
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b = blocks[i];
        CHECK_MSG(b[0] == 0x5a && b[MiB - 1] == 0xa5, "block %zu corrupted", i);
        free(blocks[i]);
        blocks[i] = NULL;
    }
}

static void some_work_succeeds(const char *when) {
    void *p[64];
    for (int i = 0; i < 64; i++) {
        size_t n = (size_t)(i + 1) * 1000;
        p[i] = launder(malloc(n));
        if (CHECK_MSG(p[i] != NULL, "%s: malloc(%zu) failed", when, n))
            memset(p[i], i, n);
    }
    void *big = launder(malloc(16 * MiB));
    CHECK_MSG(big != NULL, "%s: malloc(16 MiB) failed", when);
    if (big)
        memset(big, 1, 16 * MiB);
    void *c = launder(calloc(1000, 100));
    CHECK_MSG(c != NULL && gmt_check_zero(c, 100000) == (size_t)-1, "%s: calloc failed", when);
    free(c);
    free(big);
    for (int i = 0; i < 64; i++)
        free(p[i]);
}

static void case_blocks(void) {
    size_t n1 = blocks_until_null("first");
    CHECK_MSG(n1 >= 64, "only %zu MiB before NULL", n1);
    free_blocks(n1);
    some_work_succeeds("after freeing everything");
    size_t n2 = blocks_until_null("second");
    CHECK_MSG(n2 + 16 >= n1, "second time %zu blocks, first time %zu", n2, n1);
    free_blocks(n2);
    some_work_succeeds("after freeing everything again");
}

#define EXPECT_ENOMEM(expr, what)                                                      \
    do {                                                                               \
        errno = 0;                                                                     \
        void *r_ = launder(expr);                                                      \
        int e_ = errno;                                                                \
        CHECK_MSG(r_ == NULL, "%s succeeded under the limit", what);                   \
        CHECK_MSG(r_ != NULL || e_ == ENOMEM, "%s: errno %d (%s), want ENOMEM", what, e_, \
                  strerror(e_));                                                       \
        free(r_);                                                                      \
    } while (0)

static void case_huge(void) {
    static const size_t sizes[] = {300 * MiB, 1 * GiB, 100 * GiB, (size_t)1 << 40,
                                   ((size_t)1 << 40) + 1, (size_t)1 << 50};
    char what[96];
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        snprintf(what, sizeof what, "malloc(%zu)", n);
        EXPECT_ENOMEM(malloc(n), what);
        snprintf(what, sizeof what, "calloc(1, %zu)", n);
        EXPECT_ENOMEM(calloc(1, n), what);
        snprintf(what, sizeof what, "calloc(%zu, 16)", n / 16);
        EXPECT_ENOMEM(calloc(n / 16, 16), what);
        snprintf(what, sizeof what, "aligned_alloc(4096, %zu)", n);
        EXPECT_ENOMEM(aligned_alloc(4096, n), what);
        snprintf(what, sizeof what, "memalign(2 MiB, %zu)", n);
        EXPECT_ENOMEM(memalign(2 * MiB, n), what);
        snprintf(what, sizeof what, "valloc(%zu)", n);
        EXPECT_ENOMEM(valloc(n), what);

        void *p = (void *)1;
        errno = 0;
        int rc = posix_memalign(&p, 64, n);
        CHECK_MSG(rc == ENOMEM, "posix_memalign(64, %zu) = %d, want ENOMEM", n, rc);
        if (rc == 0)
            free(p);

        /* realloc of a live block: NULL, ENOMEM, the block untouched */
        size_t have = 5000 + i * 100000;
        char *b = launder(malloc(have));
        if (!CHECK(b != NULL))
            continue;
        gmt_fill(b, have, i);
        errno = 0;
        char *r = launder(realloc(b, n));
        int e = errno;
        CHECK_MSG(r == NULL, "realloc(%zu -> %zu) succeeded under the limit", have, n);
        if (r) {
            free(r);
            continue;
        }
        CHECK_MSG(e == ENOMEM, "realloc(%zu -> %zu): errno %d, want ENOMEM", have, n, e);
        b = launder(b); /* realloc failed: b is still the block */
        CHECK_MSG(gmt_check(b, have, i) == (size_t)-1, "realloc failure damaged the block");
        free(b);
        /* a failed request must not cost what was there before: what fits
         * still fits */
        void *f = launder(malloc(100 * MiB));
        CHECK_MSG(f != NULL, "after requests of %zu B failed, malloc(100 MiB) fails too "
                  "(errno %d), with 256 MiB of headroom", n, errno);
        if (f) {
            memset(f, 1, 4096);
            memset((char *)f + 100 * MiB - 4096, 1, 4096);
        }
        free(f);
    }
    some_work_succeeds("after the huge requests");
}

struct chain {
    struct chain *next;
    uint64_t tag[7];
};

static void case_small(void) {
    struct chain *head = NULL;
    size_t n = 0;
    double t0 = gmt_now();
    for (;;) {
        errno = 0;
        struct chain *c = launder(malloc(64));
        if (!c) {
            CHECK_MSG(errno == ENOMEM, "malloc(64) = NULL with errno %d (%s)", errno,
                      strerror(errno));
            break;
        }
        c->next = head;
        c->tag[0] = n;
        c->tag[6] = ~n;
        head = c;
        n++;
        if (!CHECK_MSG(n < ((size_t)64 << 20), "64-byte objects never run out")) // 4 GiB worth
            break;
    }
    check_say("  %zu objects of 64 B (%.1f MiB) before malloc returned NULL, %.2f s\n", n,
              (double)n * 64 / MiB, gmt_now() - t0);
    CHECK_MSG(n * 64 >= 64 * MiB, "only %zu objects of 64 B", n);
    /* A failed small malloc must not have broken anything: what is there
     * is intact, and freeing it makes room again. */
    size_t k = n, bad = 0;
    while (head) {
        struct chain *next = head->next;
        k--;
        if (head->tag[0] != k || head->tag[6] != ~k)
            bad++;
        free(head);
        head = next;
    }
    CHECK_MSG(bad == 0, "%zu of %zu small objects corrupted", bad, n);
    some_work_succeeds("after freeing the small objects");
    size_t nb = blocks_until_null("1 MiB blocks after the small objects");
    CHECK_MSG(nb >= 128, "only %zu MiB of blocks after freeing %.1f MiB of small objects", nb,
              (double)n * 64 / MiB);
    free_blocks(nb);
}

static void *mixed[1 << 20];
static size_t mixed_size[1 << 20];

static size_t mixed_until_null(uint64_t *rng) {
    size_t n = 0;
    while (n < (1u << 20)) {
        size_t sz = 16 + (size_t)(gmt_rand(rng) % (256 * KiB));
        if (gmt_rand(rng) % 4)
            sz = 16 + sz % 2048;
        errno = 0;
        void *p = launder(malloc(sz));
        if (!p) {
            CHECK_MSG(errno == ENOMEM, "malloc(%zu) = NULL with errno %d", sz, errno);
            break;
        }
        *(volatile uint64_t *)p = n;
        mixed[n] = p;
        mixed_size[n++] = sz;
    }
    CHECK_MSG(n < (1u << 20), "mixed sizes never ran out");
    return n;
}

static void case_mixed(void) {
    uint64_t rng = 12345;
    size_t n1 = mixed_until_null(&rng);
    size_t total = 0;
    for (size_t i = 0; i < n1; i++) {
        CHECK(*(uint64_t *)mixed[i] == i);
        total += mixed_size[i];
        free(mixed[i]);
    }
    check_say("  %zu objects (%.1f MiB) before malloc returned NULL\n", n1, (double)total / MiB);
    some_work_succeeds("after freeing the mixed objects");
    size_t n2 = mixed_until_null(&rng);
    check_say("  again: %zu objects\n", n2);
    CHECK_MSG(n2 * 2 >= n1, "second time %zu objects, first time %zu", n2, n1);
    for (size_t i = 0; i < n2; i++)
        free(mixed[i]);
    some_work_succeeds("after freeing the mixed objects again");
}

static void case_realloc(void) {
    size_t have = MiB;
    char *p = launder(malloc(have));
    if (!CHECK(p != NULL))
        return;
    memset(p, 0x11, have);
    for (;;) {
        errno = 0;
        char *q = launder(realloc(p, have + MiB));
        if (!q) {
            CHECK_MSG(errno == ENOMEM, "realloc(%zu) = NULL with errno %d", have + MiB, errno);
            break;
        }
        p = q;
        memset(p + have, 0x11, MiB);
        have += MiB;
        if (!CHECK_MSG(have < 4 * GiB, "realloc never ran out"))
            break;
    }
    check_say("  realloc grew a block to %zu MiB before it failed\n", have / MiB);
    CHECK_MSG(have >= 64 * MiB, "realloc stopped at %zu MiB", have / MiB);
    size_t bad = (size_t)-1;
    for (size_t i = 0; i < have; i += 4096)
        if (p[i] != 0x11 || p[i + 4095] != 0x11) {
            bad = i;
            break;
        }
    CHECK_MSG(bad == (size_t)-1, "block damaged at %zu after the failed realloc", bad);
    char *q = launder(realloc(p, MiB));
    CHECK_MSG(q != NULL, "shrinking realloc failed");
    if (q) {
        CHECK(q[0] == 0x11 && q[MiB - 1] == 0x11);
        p = q;
    }
    free(p);
    some_work_succeeds("after the failed realloc");
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    {"blocks", case_blocks}, {"huge", case_huge},       {"small", case_small},
    {"mixed", case_mixed},   {"realloc", case_realloc},
};

static int run_case(unsigned i) {
    check_say("test_pressure: %s\n", cases[i].name);
    double t0 = gmt_now();
    pid_t pid = fork();
    if (pid < 0) {
        CHECK_MSG(0, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        unsigned long failed_before = check_failures(); /* the parent's, inherited */
        alarm(20);
        if (limit_address_space() == 0)
            cases[i].fn();
        _exit(check_failures() != failed_before ? 1 : 0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(st))
        CHECK_MSG(0, "%s: the child died of signal %d (%s)", cases[i].name, WTERMSIG(st),
                  strsignal(WTERMSIG(st)));
    else
        CHECK_MSG(WEXITSTATUS(st) == 0, "%s: the child's checks failed (exit %d)",
                  cases[i].name, WEXITSTATUS(st));
    check_say("test_pressure: %s: %s, %.2f s\n", cases[i].name,
              WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "FAILED", gmt_now() - t0);
    return 0;
}

int main(int argc, char **argv) {
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int want = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], cases[i].name) == 0)
                want = 1;
        if (want)
            run_case(i);
    }
    return check_done("test_pressure");
}
