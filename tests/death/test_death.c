/*
 * test_death: gomalloc catches invalid and double frees.
 *
 * Each case runs in a forked child that hands the allocator a pointer that
 * is not the start of a live object (a stack or global address, an interior
 * pointer into a small or large object, an object already freed) through
 * free, realloc or malloc_usable_size.  The child must die of SIGABRT after
 * writing to stderr
 *     gomalloc: free(): invalid pointer 0x...      or
 *     gomalloc: free(): double free 0x...
 * (realloc(): / malloc_usable_size(): for those calls), and the address must
 * be the very pointer passed.  For an already freed pointer either wording
 * is accepted.
 *
 * Run with LD_PRELOAD=build/libgomalloc.so and GMTEST_IMPL=gomalloc.  Without
 * GMTEST_IMPL it only shows what the running malloc does, checking nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../check.h"
#include "../common.h"

#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"

enum op { OP_FREE, OP_REALLOC, OP_USABLE };
static const char *op_name[] = {"free", "realloc", "malloc_usable_size"};

enum { W_INVALID = 1, W_DOUBLE = 2 };

static int ptr_fd = -1; /* child: where to report the pointer it passes */

/* Hides where a pointer came from, so the compiler cannot reason about it. */
static void *launder(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void report_ptr(void *p) {
    uintptr_t v = (uintptr_t)p;
    if (write(ptr_fd, &v, sizeof v) != (ssize_t)sizeof v)
        _exit(90);
}

static void do_op(enum op op, void *p) {
    p = launder(p);
    report_ptr(p);
    switch (op) {
    case OP_FREE:
        free(p);
        break;
    case OP_REALLOC: {
        void *q = realloc(p, 64);
        (void)launder(q);
        break;
    }
    case OP_USABLE: {
        volatile size_t u = malloc_usable_size(p);
        (void)u;
        break;
    }
    }
}

static char global_buf[4096] __attribute__((aligned(64)));

/* ---- the bad pointers ---- */

static void c_stack(enum op op) {
    char buf[256] __attribute__((aligned(64)));
    memset(buf, 1, sizeof buf);
    do_op(op, launder(buf + 64));
}

static void c_global(enum op op) { do_op(op, launder(global_buf + 128)); }

static void c_mmap(enum op op) {
    void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        _exit(91);
    do_op(op, (char *)m + 4096);
}

/* Passes the address off bytes into a new object of size bytes, the first
 * len of them set to byte. */
static void interior(enum op op, size_t size, int byte, size_t len, size_t off) {
    char *p = malloc(size);
    memset(p, byte, len);
    do_op(op, p + off);
}

static void c_interior_small(enum op op) { interior(op, 100, 2, 100, 16); }

static void c_interior_small_odd(enum op op) { interior(op, 48, 2, 48, 1); }

/* an interior address of a 2 KiB object, 8 bytes past its start */
static void c_interior_class(enum op op) { interior(op, 2000, 2, 2000, 8); }

static void c_interior_large(enum op op) { interior(op, 200000, 3, 200000, 8192); }

static void c_interior_large_odd(enum op op) { interior(op, 1 << 20, 3, 4096, 16); }

/* byte 4 of an 8-byte tiny object (no other piece starts there) */
static void c_interior_tiny(enum op op) { interior(op, 8, 4, 8, 4); }

/* Frees p, then passes it. */
static void freed(enum op op, void *p) {
    free(p);
    do_op(op, p);
}

static void c_freed_small(enum op op) {
    void *keep = malloc(100); /* the span stays in use */
    freed(op, malloc(100));
    free(keep);
}

static void c_freed_small_after_others(enum op op) {
    void *a = malloc(64), *b = malloc(64), *c = malloc(64);
    free(a);
    free(b);
    do_op(op, a);
    free(c);
}

static void c_freed_tiny(enum op op) {
    /* the block still has a live piece */
    char *p = malloc(5);
    char *q = malloc(5);
    memset(q, 1, 5);
    freed(op, p);
}

static void c_freed_tiny_alone(enum op op) { freed(op, malloc(3)); }

static void c_freed_large(enum op op) {
    char *p = malloc(300000);
    memset(p, 5, 4096);
    freed(op, p);
}

static void c_freed_huge(enum op op) { freed(op, malloc(64u << 20)); }

static void c_freed_aligned(enum op op) { freed(op, aligned_alloc(4096, 5000)); }

struct dcase {
    const char *name;
    void (*fn)(enum op);
    int wording; /* W_INVALID, W_DOUBLE or both */
};

static const struct dcase cases[] = {
    {"stack", c_stack, W_INVALID},
    {"global", c_global, W_INVALID},
    {"mmap", c_mmap, W_INVALID},
    {"interior_small", c_interior_small, W_INVALID},
    {"interior_small+1", c_interior_small_odd, W_INVALID},
    {"interior_2k+8", c_interior_class, W_INVALID},
    {"interior_large", c_interior_large, W_INVALID},
    {"interior_large+16", c_interior_large_odd, W_INVALID},
    {"interior_tiny", c_interior_tiny, W_INVALID},
    {"freed_small", c_freed_small, W_INVALID | W_DOUBLE},
    {"freed_small_later", c_freed_small_after_others, W_INVALID | W_DOUBLE},
    {"freed_tiny", c_freed_tiny, W_INVALID | W_DOUBLE},
    {"freed_tiny_alone", c_freed_tiny_alone, W_INVALID | W_DOUBLE},
    {"freed_large", c_freed_large, W_INVALID | W_DOUBLE},
    {"freed_huge", c_freed_huge, W_INVALID | W_DOUBLE},
    {"freed_aligned", c_freed_aligned, W_INVALID | W_DOUBLE},
};

/* Reads everything from fd until EOF or the deadline; returns bytes read. */
static size_t read_all(int fd, char *buf, size_t cap, double deadline) {
    size_t n = 0;
    for (;;) {
        double left = deadline - gmt_now();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
        if (n == cap - 1)
            break;
    }
    buf[n] = 0;
    return n;
}

static int strict;

static void run_case(const struct dcase *c, enum op op) {
    int errp[2], ptrp[2];
    if (pipe(errp) || pipe(ptrp)) {
        CHECK_MSG(0, "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        CHECK_MSG(0, "fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        struct rlimit rl = {0, 0};
        setrlimit(RLIMIT_CORE, &rl);
        dup2(errp[1], 2);
        close(errp[0]);
        close(errp[1]);
        close(ptrp[0]);
        ptr_fd = ptrp[1];
        alarm(20);
        c->fn(op);
        _exit(0); /* survived: the misuse went unnoticed */
    }
    close(errp[1]);
    close(ptrp[1]);
    char err[4096];
    double deadline = gmt_now() + 20;
    read_all(errp[0], err, sizeof err, deadline);
    uintptr_t passed = 0;
    ssize_t k = read(ptrp[0], &passed, sizeof passed);
    close(errp[0]);
    close(ptrp[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    char label[96];
    snprintf(label, sizeof label, "%s(%s)", op_name[op], c->name);
    /* one line of what happened */
    char first[200];
    size_t fl = strcspn(err, "\n");
    if (fl >= sizeof first)
        fl = sizeof first - 1;
    memcpy(first, err, fl);
    first[fl] = 0;
    char how[64];
    if (WIFSIGNALED(status))
        snprintf(how, sizeof how, "signal %d", WTERMSIG(status));
    else
        snprintf(how, sizeof how, "exit %d", WEXITSTATUS(status));
    if (!strict) {
        check_say("  %-40s %-10s %s\n", label, how, first);
        return;
    }
    unsigned long f0 = check_failures();
    CHECK_MSG(k == (ssize_t)sizeof passed, "%s: child never reached the call", label);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "%s: child ended with %s, want SIGABRT; stderr: %s", label, how, first);
    char want_inv[96], want_dbl[96];
    snprintf(want_inv, sizeof want_inv, "gomalloc: %s(): invalid pointer 0x", op_name[op]);
    snprintf(want_dbl, sizeof want_dbl, "gomalloc: %s(): double free 0x", op_name[op]);
    const char *hit = NULL, *at;
    if ((c->wording & W_INVALID) && (at = strstr(err, want_inv)))
        hit = at + strlen(want_inv);
    if (!hit && (c->wording & W_DOUBLE) && (at = strstr(err, want_dbl)))
        hit = at + strlen(want_dbl);
    if (CHECK_MSG(hit != NULL, "%s: stderr lacks \"%s\"%s; got: %s", label, want_inv,
                  (c->wording & W_DOUBLE) ? " or \"double free 0x\"" : "", first)) {
        uintptr_t shown = (uintptr_t)strtoull(hit, NULL, 16);
        CHECK_MSG(shown == passed,
                  "%s: reported address %#" PRIxPTR ", the pointer passed was %#" PRIxPTR, label,
                  shown, passed);
    }
    check_say("  %-40s %-4s %-10s %s\n", label, check_failures() == f0 ? "ok" : "FAIL", how,
              first);
}

/* A valid free/realloc/malloc_usable_size in a child exits normally: the
 * harness itself does not make children die. */
static void run_control(void) {
    pid_t pid = fork();
    if (pid == 0) {
        void *p = malloc(100);
        if (malloc_usable_size(p) < 100)
            _exit(3);
        p = realloc(p, 5000);
        free(p);
        free(NULL);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "control child status %#x", status);
}

int main(void) {
    strict = gmt_strict();
    check_say("test_death (%s)\n", strict ? "gomalloc messages" : "show only");
    double t0 = gmt_now();
    run_control();
    for (int op = OP_FREE; op <= OP_USABLE; op++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            run_case(&cases[i], (enum op)op);
    /* the classic double free, twice in a row */
    run_case(&(struct dcase){"double_free_small", c_freed_small, W_INVALID | W_DOUBLE}, OP_FREE);
    check_say("test_death: %.2fs\n", gmt_now() - t0);
    return check_done("test_death");
}
