/*
 * check.h: the tiny assertion kit of the gomalloc test suite.
 *
 * CHECK(cond) and friends count every check, report each failing one with
 * its file and line on stderr, and carry on; check_done() prints a summary
 * and gives the exit status (0 when nothing failed).  The macros never
 * allocate: messages are formatted into a stack buffer and written with
 * write(2), so they are safe in forked children, in signal-adjacent code and
 * while the allocator under test is misbehaving.
 *
 * Include it in exactly one translation unit per test program (the counters
 * are static).
 */
#ifndef GM_TEST_CHECK_H
#define GM_TEST_CHECK_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long check_count_ = 0;
static unsigned long check_failed_ = 0;
static unsigned long check_reported_ = 0;
/* At most this many reports per source line and in all; the rest are
 * counted but not shown. */
#define CHECK_MAX_PER_LINE 6
#define CHECK_MAX_REPORTS 150
static unsigned long check_line_key_[512];
static unsigned long check_line_count_[512];

/* Counts one failure at file:line; true if it should still be shown. */
static int check_should_report_(const char *file, int line) {
    unsigned long key = ((unsigned long)(uintptr_t)file << 16) ^ (unsigned long)line;
    key |= 1;
    unsigned h = (unsigned)((key * 0x9E3779B97F4A7C15ULL) >> 55) & 511;
    for (unsigned i = 0; i < 512; i++) {
        unsigned j = (h + i) & 511;
        unsigned long cur = __atomic_load_n(&check_line_key_[j], __ATOMIC_ACQUIRE);
        if (cur == 0) {
            unsigned long zero = 0;
            if (__atomic_compare_exchange_n(&check_line_key_[j], &zero, key, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
                cur = key;
            else
                cur = zero;
        }
        if (cur == key) {
            unsigned long n = __atomic_fetch_add(&check_line_count_[j], 1, __ATOMIC_RELAXED);
            if (n == CHECK_MAX_PER_LINE)
                return -1;
            return n < CHECK_MAX_PER_LINE;
        }
    }
    return 1;
}

static void check_write_(const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void check_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void check_say(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    check_write_(buf, (size_t)n);
}

static void check_fail_(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check_fail_(const char *file, int line, const char *expr, const char *fmt, ...) {
    __atomic_fetch_add(&check_failed_, 1, __ATOMIC_RELAXED);
    int show = check_should_report_(file, line);
    if (show < 0)
        check_say("%s:%d: (further failures on this line are not shown)\n", file, line);
    if (show <= 0)
        return;
    unsigned long nrep = __atomic_fetch_add(&check_reported_, 1, __ATOMIC_RELAXED);
    if (nrep == CHECK_MAX_REPORTS)
        check_say("(further failures are counted but not shown)\n");
    if (nrep >= CHECK_MAX_REPORTS)
        return;
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s:%d: CHECK failed: %s", file, line, expr);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    if (fmt && fmt[0] && (size_t)n < sizeof buf - 4) {
        buf[n++] = ' ';
        buf[n++] = '[';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 2, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
        if ((size_t)n > sizeof buf - 3)
            n = sizeof buf - 3;
        buf[n++] = ']';
    }
    buf[n++] = '\n';
    check_write_(buf, (size_t)n);
}

/* CHECK(cond): count, and report the line if cond is false.  Evaluates to cond. */
#define CHECK(cond) CHECK_AS_(cond, #cond, NULL)

/* CHECK_MSG(cond, fmt, ...): the same, with a printf-style note on failure. */
#define CHECK_MSG(cond, ...) CHECK_AS_(cond, #cond, __VA_ARGS__)

/* Both of them: cond, its text as written, then the note's format and values
 * (NULL for none). */
#define CHECK_AS_(cond, text, ...)                                                 \
    (__extension__({                                                               \
        int check_ok_ = !!(cond);                                                  \
        __atomic_fetch_add(&check_count_, 1, __ATOMIC_RELAXED);                    \
        if (!check_ok_)                                                            \
            check_fail_(__FILE__, __LINE__, text, __VA_ARGS__);                    \
        check_ok_;                                                                 \
    }))

/* Comparisons that show both values. */
#define CHECK_EQ(a, b)                                                             \
    (__extension__({                                                               \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);           \
        CHECK_MSG(check_a_ == check_b_, "%lld != %lld", check_a_, check_b_);       \
    }))
#define CHECK_EQ_U(a, b)                                                           \
    (__extension__({                                                               \
        unsigned long long check_a_ = (unsigned long long)(a);                     \
        unsigned long long check_b_ = (unsigned long long)(b);                     \
        CHECK_MSG(check_a_ == check_b_, "%llu != %llu", check_a_, check_b_);       \
    }))
#define CHECK_GE_U(a, b)                                                           \
    (__extension__({                                                               \
        unsigned long long check_a_ = (unsigned long long)(a);                     \
        unsigned long long check_b_ = (unsigned long long)(b);                     \
        CHECK_MSG(check_a_ >= check_b_, "%llu < %llu", check_a_, check_b_);        \
    }))
#define CHECK_ALIGNED(p, a)                                                        \
    (__extension__({                                                               \
        unsigned long long check_p_ = (unsigned long long)(uintptr_t)(p);          \
        unsigned long long check_al_ = (unsigned long long)(a);                    \
        CHECK_MSG((check_p_ & (check_al_ - 1)) == 0, "%#llx not aligned to %llu",  \
                  check_p_, check_al_);                                            \
    }))

/* Failing checks so far (tests use it to stop an expensive loop early). */
static inline unsigned long check_failures(void) {
    return __atomic_load_n(&check_failed_, __ATOMIC_RELAXED);
}

/* Prints "name: N checks, M failed" and returns the exit status. */
static inline int check_done(const char *name) {
    check_say("%s: %lu checks, %lu failed\n", name, check_count_, check_failed_);
    return check_failed_ ? 1 : 0;
}

#endif
