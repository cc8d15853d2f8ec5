/*
 * test_fault: gomalloc when the kernel says no.
 *
 * Built from the sources with -DGM_FAULT_INJECT, which lets a test make the
 * Nth mmap, mprotect or madvise that src/os.c makes fail (gm_fault_arm).  A
 * dry run counts how many of each kind a fixed workload makes; then, for
 * every N up to that count (and a few beyond), for each kind, a forked child
 * (a fresh heap) arms the fault once, or from N on ("sticky"), and runs the
 * workload.  In every child:
 *   - each call either succeeds or returns NULL with errno ENOMEM (posix_memalign:
 *     returns ENOMEM);
 *   - every live block keeps its contents, and every calloc block, and every
 *     block from calloc after memory was freed and trimmed, reads as zero;
 *   - once the fault is lifted, allocation works again (one-shot faults).
 * The workload touches every tier: tiny, small, page-sized and huge blocks,
 * aligned ones, realloc growth, frees, malloc_trim (madvise), calloc after
 * trim.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gomalloc.h"
#include "os.h"

#define NSLOTS 64
#define SWEEP_BEYOND 3 /* N past the dry run's count: faults that never fire */
#define CHILD_FAILED 3
#define COUNT_FD_MSG 16

typedef struct slot {
    unsigned char *p;
    size_t size;
    uint8_t seed;
} slot;

static slot slots[NSLOTS];
static int bad;   /* failed checks in this process */
static long nulls; /* calls that failed cleanly (NULL and ENOMEM) */

#define FAIL(...)                                                                  \
    do {                                                                           \
        fprintf(stderr, __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                       \
        bad++;                                                                     \
    } while (0)

static uint8_t byte_at(uint8_t seed, size_t i) { return (uint8_t)(seed + i * 7 + (i >> 9)); }

/* Blocks up to WHOLE bytes are filled and checked whole; bigger ones at
 * every STRIDE-th byte (a prime: every fourth page or so, at varying
 * offsets) and in their last bytes: pages are zeroed or kept whole, and the
 * sweep runs the workload over a hundred times. */
#define WHOLE (64u << 10)
#define STRIDE 16381u
#define TAIL 256u

static size_t next_i(size_t i, size_t n) {
    if (n <= WHOLE || i + 1 >= n - TAIL)
        return i + 1;
    return i + STRIDE < n - TAIL ? i + STRIDE : n - TAIL;
}

static void fill(slot *s) {
    for (size_t i = 0; i < s->size; i = next_i(i, s->size))
        s->p[i] = byte_at(s->seed, i);
}

static void verify(const slot *s, const char *when) {
    for (size_t i = 0; i < s->size; i = next_i(i, s->size)) {
        if (s->p[i] != byte_at(s->seed, i)) {
            FAIL("%s: block %p (%zu bytes) changed at byte %zu", when, (void *)s->p, s->size, i);
            return;
        }
    }
}

static bool all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i = next_i(i, n))
        if (p[i])
            return false;
    return true;
}

/* Dirties every page of the block (what calloc must not hand back). */
static void dirty(unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i = next_i(i, n))
        p[i] = 0xee;
}

/* A NULL must come with ENOMEM. */
static bool got(void *p, const char *what, size_t size) {
    if (p)
        return true;
    nulls++;
    if (errno != ENOMEM)
        FAIL("%s(%zu) returned NULL with errno %d, want ENOMEM", what, size, errno);
    return false;
}

static const size_t sizes[] = {5, 8, 100, 3000, 20000, 40000, 100000, 1 << 20, 8 << 20, 70 << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define HUGE (64u << 20) /* an arena */

static void put(int i, unsigned char *p, size_t size) {
    slots[i] = (slot){p, size, (uint8_t)(i * 37 + 1)};
    fill(&slots[i]);
}

static void workload(void) {
    int n = 0;
    /* plain, calloc, aligned */
    for (size_t k = 0; k < NSIZES; k++) {
        size_t sz = sizes[k];
        errno = 0;
        unsigned char *p = gm_malloc(sz);
        if (got(p, "malloc", sz))
            put(n++, p, sz);
        if (sz >= HUGE)
            continue; /* one of these is enough: it needs a second arena */
        errno = 0;
        p = gm_calloc(1, sz);
        if (got(p, "calloc", sz)) {
            if (!all_zero(p, sz))
                FAIL("calloc(%zu) returned memory that is not zero", sz);
            put(n++, p, sz);
        }
        void *a = NULL;
        int rc = gm_posix_memalign(&a, 4096, sz);
        if (rc == ENOMEM)
            nulls++;
        if (rc == 0) {
            if ((uintptr_t)a % 4096)
                FAIL("posix_memalign(4096, %zu) gave %p", sz, a);
            put(n++, a, sz);
        } else if (rc != ENOMEM) {
            FAIL("posix_memalign(4096, %zu) returned %d", sz, rc);
        }
    }
    /* a buffer grown by realloc into the large sizes */
    unsigned char *buf = NULL;
    size_t len = 0;
    for (size_t want = 64; want <= (4u << 20); want *= 3) {
        errno = 0;
        unsigned char *q = gm_realloc(buf, want);
        if (!got(q, "realloc", want))
            break; /* buf is still valid */
        for (size_t i = 0; i < len; i++)
            if (q[i] != (uint8_t)(i * 13)) {
                FAIL("realloc(%zu) lost byte %zu", want, i);
                break;
            }
        for (size_t i = len; i < want; i++)
            q[i] = (uint8_t)(i * 13);
        buf = q;
        len = want;
    }
    /* free every other block, give memory back, and ask for zeroed memory */
    for (int i = 0; i < n; i += 2) {
        verify(&slots[i], "before free");
        dirty(slots[i].p, slots[i].size); /* calloc must not see this */
        gm_free(slots[i].p);
        slots[i].p = NULL;
    }
    gm_free(buf);
    gm_malloc_trim(0);
    for (int i = 0; i < n; i += 2) {
        size_t sz = slots[i].size;
        if (sz >= HUGE)
            continue;
        errno = 0;
        unsigned char *p = gm_calloc(sz, 1);
        if (got(p, "calloc after trim", sz)) {
            if (!all_zero(p, sz))
                FAIL("calloc(%zu) after free and trim returned old data", sz);
            put(i, p, sz);
        }
    }
    for (int i = 0; i < n; i++)
        if (slots[i].p)
            verify(&slots[i], "at the end");
    for (int i = 0; i < n; i++) {
        gm_free(slots[i].p);
        slots[i].p = NULL;
    }
}

/* After the fault: the heap must still serve and keep contents. */
static void still_works(void) {
    slot s[NSIZES];
    for (size_t k = 0; k < NSIZES; k++) {
        unsigned char *p = gm_malloc(sizes[k]);
        if (!p) {
            FAIL("malloc(%zu) failed after the fault was lifted", sizes[k]);
            s[k].p = NULL;
            continue;
        }
        s[k] = (slot){p, sizes[k], (uint8_t)k};
        fill(&s[k]);
    }
    for (size_t k = 0; k < NSIZES; k++)
        if (s[k].p) {
            verify(&s[k], "after the fault");
            gm_free(s[k].p);
        }
}

static const struct {
    unsigned kind;
    const char *name;
} kinds[] = {
    {GM_FAULT_MMAP, "mmap"}, {GM_FAULT_MPROTECT, "mprotect"}, {GM_FAULT_MADVISE, "madvise"}};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* Runs the workload in a child with the fault armed; true if all was well. */
static bool run_child(unsigned kind, long nth, bool sticky, long *calls_out) {
    int fds[2];
    if (pipe(fds))
        return false;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        alarm(60);
        if (nth > 0)
            gm_fault_arm(kind, nth, sticky);
        workload();
        gm_fault_arm(0, 0, false);
        if (!sticky || nth == 0)
            still_works();
        long calls[NKINDS + 1];
        for (size_t k = 0; k < NKINDS; k++)
            calls[k] = gm_fault_calls(kinds[k].kind);
        calls[NKINDS] = nulls;
        if (write(fds[1], calls, sizeof calls) != (ssize_t)sizeof calls)
            _exit(CHILD_FAILED);
        _exit(bad ? CHILD_FAILED : 0);
    }
    close(fds[1]);
    long calls[NKINDS + 1] = {0};
    ssize_t got_bytes = read(fds[0], calls, sizeof calls);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (calls_out && got_bytes == (ssize_t)sizeof calls)
        for (size_t k = 0; k <= NKINDS; k++)
            calls_out[k] = calls[k];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "  %s fault at call %ld%s: child %s %d\n",
                kind ? kinds[__builtin_ctz(kind)].name : "no", nth, sticky ? " and after" : "",
                WIFSIGNALED(status) ? "killed by signal" : "exited with",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        return false;
    }
    return true;
}

int main(void) {
    long calls[NKINDS + 1] = {0};
    if (!run_child(0, 0, false, calls)) {
        fprintf(stderr, "test_fault: the workload fails even without faults\n");
        return 1;
    }
    printf("test_fault: the workload makes %ld mmap, %ld mprotect, %ld madvise calls\n",
           calls[0], calls[1], calls[2]);
    int failed = 0, runs = 0, with_enomem = 0;
    for (size_t k = 0; k < NKINDS; k++) {
        for (int sticky = 0; sticky <= 1; sticky++) {
            for (long nth = 1; nth <= calls[k] + SWEEP_BEYOND; nth++) {
                long seen[NKINDS + 1] = {0};
                runs++;
                if (!run_child(kinds[k].kind, nth, sticky, seen))
                    failed++;
                with_enomem += seen[NKINDS] > 0;
            }
        }
    }
    printf("test_fault: %d runs (%d of them saw calls fail with ENOMEM), %d failed\n", runs,
           with_enomem, failed);
    return failed ? 1 : 0;
}
