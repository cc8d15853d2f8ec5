/*
 * test_api: conformance of every allocation entry point of gomalloc.
 *
 * Built three ways by tests/run.sh:
 *   - standard names, run with LD_PRELOAD=build/libgomalloc.so
 *   - standard names, linked with build/libgomalloc.a
 *   - gm_ names (-DAPI_GM), linked with build/libgomalloc.so
 * What it checks is what the C standard, POSIX and the glibc manual pages
 * promise (malloc(3), posix_memalign(3), malloc_usable_size(3), ...), plus
 * gomalloc's own promises (C23 natural alignment of tiny objects, exact
 * errno for bad alignments) when gmt_strict() says gomalloc is under test.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../check.h"
#include "../common.h"

/* The misuse below (sizes beyond PTRDIFF_MAX, reading a block after a
 * realloc that failed) is deliberate. */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="

#ifndef API_GM
/* glibc 2.36 declares neither of these; gomalloc exports both. */
void free_sized(void *ptr, size_t size) __attribute__((weak));
void free_aligned_sized(void *ptr, size_t alignment, size_t size) __attribute__((weak));
/* The glibc-internal names gomalloc also overrides. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
#define HAVE_FREE_SIZED (free_sized != NULL)
#define HAVE_FREE_ALIGNED_SIZED (free_aligned_sized != NULL)
#else
#define HAVE_FREE_SIZED 1
#define HAVE_FREE_ALIGNED_SIZED 1
#endif

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define PAGE ((size_t)4096)

static int strict;

/* The least alignment malloc owes an object of n bytes: 16 from 16 bytes
 * up, the largest power of two not above n below that (C23). */
static size_t owed_align(size_t n) {
    if (n >= 16)
        return 16;
    size_t a = 1;
    while (a * 2 <= n)
        a *= 2;
    return a;
}

static size_t usable(void *p) { return API(malloc_usable_size)(p); }

/* ------------------------------------------------------------------ */
/* Which malloc is answering. */

static void test_identity(void) {
#ifndef API_GM
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    int found = sym && dladdr(sym, &info) && info.dli_fname;
    if (strict) {
        CHECK_MSG(found && strstr(info.dli_fname, "libc.so") == NULL,
                  "malloc resolves to %s, not gomalloc", found ? info.dli_fname : "?");
    }
    if (found)
        check_say("test_api: malloc comes from %s\n", info.dli_fname);
#endif
}

/* ------------------------------------------------------------------ */
/* Every size: alignment, usable size, writing all usable bytes. */

static void check_block(void *p, size_t n, size_t align, const char *what) {
    if (!CHECK_MSG(p != NULL, "%s(%zu) returned NULL", what, n))
        return;
    CHECK_MSG(((uintptr_t)p & (align - 1)) == 0, "%s(%zu) = %p not aligned to %zu", what, n, p,
              align);
    size_t u = usable(p);
    CHECK_MSG(u >= n, "%s(%zu): usable size %zu", what, n, u);
    if (strict && n > 0) {
        /* gomalloc: at most one class step (<= 1/8 + 16) of slack for small
         * objects and whole pages for large ones. */
        size_t bound = n <= 32 * KiB ? n + n / 4 + 16 : ((n + 8191) & ~(size_t)8191) + n / 8;
        if (align > 16 && bound < n + align)
            bound = n + align;
        CHECK_MSG(u <= bound, "%s(%zu): usable size %zu is implausibly large", what, n, u);
    }
}

static void test_one_size(size_t n) {
    enum { K = 4 };
    void *p[K];
    size_t u[K];
    int k = n > 16 * MiB ? 2 : K;
    for (int i = 0; i < k; i++) {
        p[i] = API(malloc)(n);
        u[i] = 0;
        if (!CHECK_MSG(p[i] != NULL, "malloc(%zu)", n))
            continue;
        if (n > 0)
            check_block(p[i], n, owed_align(n), "malloc");
        u[i] = usable(p[i]);
        gmt_fill(p[i], u[i], n * 8 + (size_t)i);
    }
    for (int i = 0; i < k; i++) {
        if (!p[i])
            continue;
        size_t bad = gmt_check(p[i], u[i], n * 8 + (size_t)i);
        CHECK_MSG(bad == (size_t)-1, "malloc(%zu) #%d: byte %zu of %zu overwritten by a neighbour",
                  n, i, bad, u[i]);
    }
    static const int order[K] = {2, 0, 3, 1};
    for (int i = 0; i < K; i++)
        if (order[i] < k)
            API(free)(p[order[i]]);
}

static void test_sizes(void) {
    for (size_t n = 0; n <= 8192 && check_failures() < 50; n++)
        test_one_size(n);
    for (size_t n = 8193; n <= 70000 && check_failures() < 50; n += 37) {
        test_one_size(n);
        /* around the class (or page) boundary this size falls in */
        void *p = API(malloc)(n);
        size_t u = p ? usable(p) : 0;
        API(free)(p);
        if (u > n && u <= 80000) {
            test_one_size(u);
            test_one_size(u + 1);
        }
    }
    for (int k = 1; k <= 28; k++) {
        size_t s = (size_t)1 << k;
        test_one_size(s - 1);
        test_one_size(s);
        test_one_size(s + 1);
    }
    /* calloc and realloc(NULL, n) keep the same alignment rule */
    for (size_t n = 1; n <= 300; n++) {
        void *c = API(calloc)(1, n);
        check_block(c, n, owed_align(n), "calloc");
        void *r = API(realloc)(NULL, n);
        check_block(r, n, owed_align(n), "realloc(NULL)");
        API(free)(c);
        API(free)(r);
    }
}

/* Many live objects of mixed sizes never overlap; each keeps its bytes. */
static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void test_no_overlap(void) {
    enum { N = 6000 };
    static void *p[N];
    static uintptr_t sorted[N * 2];
    uint64_t rng = 0x1234567;
    for (int i = 0; i < N; i++) {
        uint64_t r = gmt_rand(&rng);
        size_t n = (r & 3) == 0 ? r % 16 : (r & 3) == 1 ? 16 + r % 600 : (r & 3) == 2 ? r % 9000
                                                                                    : r % 70000;
        if (i % 500 == 0)
            n = 100000 + (size_t)(r % 300000);
        p[i] = API(malloc)(n);
        CHECK(p[i] != NULL);
        if (p[i])
            gmt_fill(p[i], usable(p[i]), (uint64_t)i);
    }
    int m = 0;
    for (int i = 0; i < N; i++) {
        if (!p[i])
            continue;
        size_t u = usable(p[i]);
        size_t bad = gmt_check(p[i], u, (uint64_t)i);
        CHECK_MSG(bad == (size_t)-1, "object %d (%p, usable %zu) damaged at %zu", i, p[i], u, bad);
        sorted[m++] = (uintptr_t)p[i];
    }
    qsort(sorted, (size_t)m, sizeof sorted[0], cmp_ptr);
    for (int i = 1; i < m; i++) {
        size_t u = usable((void *)sorted[i - 1]);
        CHECK_MSG(sorted[i - 1] + (u ? u : 1) <= sorted[i], "%#lx + %zu overlaps %#lx",
                  (unsigned long)sorted[i - 1], u, (unsigned long)sorted[i]);
    }
    /* free in a scrambled order */
    for (int i = 0; i < N; i++) {
        int j = (int)((unsigned)(i * 7919) % N);
        API(free)(p[j]);
        p[j] = NULL;
    }
}

/* ------------------------------------------------------------------ */

static void test_malloc_zero(void) {
    enum { N = 2000 };
    static void *p[N];
    static uintptr_t s[N];
    for (int i = 0; i < N; i++) {
        p[i] = API(malloc)(0);
        CHECK_MSG(p[i] != NULL, "malloc(0) #%d returned NULL", i);
        s[i] = (uintptr_t)p[i];
    }
    qsort(s, N, sizeof s[0], cmp_ptr);
    int dups = 0;
    for (int i = 1; i < N; i++)
        dups += s[i] == s[i - 1] && s[i] != 0;
    CHECK_MSG(dups == 0, "malloc(0) returned %d duplicate pointers", dups);
    for (int i = 0; i < N; i++)
        API(free)(p[i]);
}

/* call (about the size n) must set p to NULL and errno to ENOMEM; what is
 * its name for the report, with %#zx for n. */
#define CHECK_ENOMEM(call, what)                                                   \
    do {                                                                           \
        errno = 0;                                                                 \
        p = call;                                                                  \
        CHECK_MSG(p == NULL && errno == ENOMEM, what " = %p errno %d", n, p, errno); \
    } while (0)

/* Requests no machine can satisfy fail with NULL and ENOMEM. */
static void test_impossible(void) {
    const size_t sizes[] = {SIZE_MAX,           SIZE_MAX - 1,         SIZE_MAX - 4095,
                            SIZE_MAX - 65536,   SIZE_MAX / 2,         SIZE_MAX / 2 + 1,
                            (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX, (size_t)1 << 62};
    void *keep = API(malloc)(777);
    CHECK(keep != NULL);
    if (keep)
        gmt_fill(keep, 777, 99);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p;
        CHECK_ENOMEM(API(malloc)(n), "malloc(%#zx)");
        CHECK_ENOMEM(API(calloc)(1, n), "calloc(1, %#zx)");
        CHECK_ENOMEM(API(calloc)(n, 1), "calloc(%#zx, 1)");
        CHECK_ENOMEM(API(realloc)(NULL, n), "realloc(NULL, %#zx)");
        CHECK_ENOMEM(API(reallocarray)(NULL, 1, n), "reallocarray(NULL, 1, %#zx)");
        CHECK_ENOMEM(API(realloc)(keep, n), "realloc(p, %#zx)");
        CHECK_ENOMEM(API(valloc)(n), "valloc(%#zx)");
        CHECK_ENOMEM(API(pvalloc)(n), "pvalloc(%#zx)");
        CHECK_ENOMEM(API(memalign)(64, n), "memalign(64, %#zx)");
        CHECK_ENOMEM(API(aligned_alloc)(4096, n), "aligned_alloc(4096, %#zx)");
        void *q = (void *)0x1234;
        int r = API(posix_memalign)(&q, 256, n);
        CHECK_MSG(r == ENOMEM && q == (void *)0x1234, "posix_memalign(256, %#zx) = %d, %p", n, r,
                  q);
    }
    /* aligned requests whose size plus alignment overflows */
    const size_t aligns[] = {16, 4096, MiB, GiB, (size_t)1 << 40, (size_t)1 << 62,
                             (size_t)1 << 63};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t a = aligns[i];
        size_t ns[] = {SIZE_MAX - a + 1, SIZE_MAX - a / 2, SIZE_MAX, a, (size_t)1 << 63};
        for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
            size_t n = ns[j];
            if (n < ((size_t)1 << 47) && a < ((size_t)1 << 47))
                continue; /* might succeed on a big machine */
            void *q = (void *)0x4321;
            int r = API(posix_memalign)(&q, a, n);
            CHECK_MSG(r == ENOMEM && q == (void *)0x4321,
                      "posix_memalign(%#zx, %#zx) = %d, %p", a, n, r, q);
            errno = 0;
            void *p = API(aligned_alloc)(a, n);
            CHECK_MSG(p == NULL && errno == ENOMEM, "aligned_alloc(%#zx, %#zx) = %p errno %d", a,
                      n, p, errno);
            errno = 0;
            p = API(memalign)(a, n);
            CHECK_MSG(p == NULL && errno == ENOMEM, "memalign(%#zx, %#zx) = %p errno %d", a, n, p,
                      errno);
        }
    }
    if (keep) {
        CHECK_MSG(gmt_check(keep, 777, 99) == (size_t)-1, "failed realloc damaged the old block");
        API(free)(keep);
    }
}

static void test_calloc_overflow(void) {
    struct {
        size_t a, b;
    } cases[] = {
        {SIZE_MAX, SIZE_MAX},
        {SIZE_MAX / 2 + 1, 2},
        {2, SIZE_MAX / 2 + 1},
        {(size_t)1 << 32, (size_t)1 << 32},
        {((size_t)1 << 33) + 1, ((size_t)1 << 31) + 3},
        {SIZE_MAX / 3 + 1, 3},
        {(size_t)PTRDIFF_MAX / 2 + 1, 2}, /* no overflow, but PTRDIFF_MAX + 1 */
        {65537, (size_t)1 << 48},
    };
    void *keep = API(malloc)(3000);
    CHECK(keep != NULL);
    if (keep)
        gmt_fill(keep, 3000, 7);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        errno = 0;
        void *p = API(calloc)(cases[i].a, cases[i].b);
        CHECK_MSG(p == NULL && errno == ENOMEM, "calloc(%#zx, %#zx) = %p errno %d", cases[i].a,
                  cases[i].b, p, errno);
        errno = 0;
        p = API(reallocarray)(NULL, cases[i].a, cases[i].b);
        CHECK_MSG(p == NULL && errno == ENOMEM, "reallocarray(NULL, %#zx, %#zx) = %p errno %d",
                  cases[i].a, cases[i].b, p, errno);
        errno = 0;
        p = API(reallocarray)(keep, cases[i].a, cases[i].b);
        CHECK_MSG(p == NULL && errno == ENOMEM, "reallocarray(p, %#zx, %#zx) = %p errno %d",
                  cases[i].a, cases[i].b, p, errno);
    }
    if (keep) {
        CHECK_MSG(gmt_check(keep, 3000, 7) == (size_t)-1,
                  "failed reallocarray damaged the old block");
    }
    /* reallocarray that fits behaves as realloc */
    void *r = API(reallocarray)(keep, 1000, 5);
    CHECK(r != NULL);
    if (r) {
        CHECK(usable(r) >= 5000);
        CHECK_MSG(gmt_check(r, 3000, 7) == (size_t)-1, "reallocarray lost contents");
        keep = r;
    }
    API(free)(keep);
    /* zero elements: a unique pointer or NULL, never a crash */
    void *z1 = API(calloc)(0, SIZE_MAX);
    void *z2 = API(calloc)(SIZE_MAX, 0);
    void *z3 = API(calloc)(0, 0);
    CHECK(z1 == NULL || z1 != z2);
    API(free)(z1);
    API(free)(z2);
    API(free)(z3);
}

/* ------------------------------------------------------------------ */
/* posix_memalign, aligned_alloc, memalign */

static void test_aligned_one(size_t a, size_t n) {
    char what[64];
    /* posix_memalign: power of two and multiple of sizeof(void *) */
    if (a >= sizeof(void *)) {
        void *p = (void *)0x77;
        int r = API(posix_memalign)(&p, a, n);
        CHECK_MSG(r == 0, "posix_memalign(%zu, %zu) = %d", a, n, r);
        if (r == 0) {
            snprintf(what, sizeof what, "posix_memalign[%zu]", a);
            if (n > 0 || p != NULL)
                check_block(p, n, a, what);
            if (p) {
                size_t u = usable(p);
                gmt_fill(p, u, a + n);
                CHECK(gmt_check(p, u, a + n) == (size_t)-1);
            }
            API(free)(p);
        }
    }
    void *p = API(aligned_alloc)(a, n);
    snprintf(what, sizeof what, "aligned_alloc[%zu]", a);
    if (n > 0 || p != NULL)
        check_block(p, n, a, what);
    if (p) {
        size_t u = usable(p);
        gmt_fill(p, u, a ^ n);
        CHECK(gmt_check(p, u, a ^ n) == (size_t)-1);
    }
    API(free)(p);
    p = API(memalign)(a, n);
    snprintf(what, sizeof what, "memalign[%zu]", a);
    if (n > 0 || p != NULL)
        check_block(p, n, a, what);
    if (p)
        gmt_fill(p, usable(p), 3);
    API(free)(p);
}

static void test_aligned(void) {
    for (int k = 0; k <= 30; k++) {
        size_t a = (size_t)1 << k;
        size_t ns[] = {0, 1, 7, 16, 24, 100, a - 1, a, a + 1, 3 * a + 5, 40000, 70000};
        for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
            size_t n = ns[j];
            if (a >= 64 * MiB && n > a + 1)
                continue; /* keep the address space modest */
            test_aligned_one(a, n);
        }
    }
    /* several aligned blocks live at once stay intact */
    enum { N = 300 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        size_t a = (size_t)1 << (3 + i % 14);
        size_t n = (size_t)(i * 37 % 5000) + 1;
        p[i] = API(aligned_alloc)(a, n);
        CHECK(p[i] != NULL);
        if (p[i]) {
            CHECK_ALIGNED(p[i], a);
            gmt_fill(p[i], usable(p[i]), (uint64_t)i);
        }
    }
    for (int i = 0; i < N; i++) {
        if (p[i]) {
            CHECK_MSG(gmt_check(p[i], usable(p[i]), (uint64_t)i) == (size_t)-1,
                      "aligned block %d damaged", i);
        }
        API(free)(p[i]);
    }
}

static void test_bad_alignment(void) {
    /* posix_memalign: EINVAL unless a power of two multiple of sizeof(void *);
     * *memptr untouched, errno not set. */
    const size_t pm_bad[] = {0,  1,    2,    4,    3,   12,       24,           48,
                             96, 1000, 4097, 6144, 100, SIZE_MAX, SIZE_MAX / 2, ((size_t)1 << 63) + 8};
    for (size_t i = 0; i < sizeof pm_bad / sizeof pm_bad[0]; i++) {
        void *p = (void *)0xabcdef;
        errno = 4242;
        int r = API(posix_memalign)(&p, pm_bad[i], 64);
        CHECK_MSG(r == EINVAL, "posix_memalign(&p, %#zx, 64) = %d, want EINVAL", pm_bad[i], r);
        CHECK_MSG(p == (void *)0xabcdef, "posix_memalign(%#zx) touched *memptr", pm_bad[i]);
        CHECK_MSG(errno == 4242, "posix_memalign(%#zx) set errno to %d", pm_bad[i], errno);
        if (r == 0 && p != (void *)0xabcdef)
            API(free)(p);
    }
    /* aligned_alloc and memalign: the alignment must be a power of two
     * (glibc manual: "EINVAL: alignment is not a power of two").  glibc 2.36
     * itself only rejects what exceeds SIZE_MAX / 2 + 1 and rounds the rest
     * up, so without gomalloc only that case is checked. */
    const size_t bad[] = {3, 12, 24, 48, 96, 1000, 4097, 6144, 100, SIZE_MAX / 2,
                          ((size_t)1 << 63) + 8, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t a = bad[i];
        int must = strict || a > SIZE_MAX / 2 + 1;
        errno = 0;
        void *p = API(aligned_alloc)(a, 64);
        if (must)
            CHECK_MSG(p == NULL && errno == EINVAL, "aligned_alloc(%#zx, 64) = %p errno %d", a, p,
                      errno);
        API(free)(p);
        errno = 0;
        p = API(memalign)(a, 64);
        if (must)
            CHECK_MSG(p == NULL && errno == EINVAL, "memalign(%#zx, 64) = %p errno %d", a, p,
                      errno);
        API(free)(p);
    }
    /* aligned_alloc(0, n): 0 is not a power of two (glibc >= 2.38 and C23) */
    errno = 0;
    void *p = API(aligned_alloc)(0, 64);
    if (strict)
        CHECK_MSG(p == NULL && errno == EINVAL, "aligned_alloc(0, 64) = %p errno %d", p, errno);
    API(free)(p);
    /* memalign(0, n) is accepted by every glibc; either answer is fine, but
     * a block must be usable. */
    errno = 0;
    p = API(memalign)(0, 64);
    CHECK(p != NULL || errno == EINVAL);
    if (p) {
        CHECK(usable(p) >= 64);
        memset(p, 1, 64);
    }
    API(free)(p);
    /* aligned_alloc with a size that is no multiple of the alignment works */
    p = API(aligned_alloc)(64, 10);
    check_block(p, 10, 64, "aligned_alloc(64, 10)");
    API(free)(p);
}

/* ------------------------------------------------------------------ */

static void test_valloc(void) {
    CHECK_EQ(sysconf(_SC_PAGESIZE), 4096);
    const size_t ns[] = {1, 2, 15, 16, 100, 4095, 4096, 4097, 8191, 8192, 8193, 10000, 40000,
                         70000, 100000, MiB + 1, 5 * MiB};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        size_t n = ns[i];
        void *p = API(valloc)(n);
        check_block(p, n, PAGE, "valloc");
        if (p)
            gmt_fill(p, usable(p), n);
        void *q = API(pvalloc)(n);
        size_t rounded = (n + PAGE - 1) & ~(PAGE - 1);
        check_block(q, rounded, PAGE, "pvalloc");
        if (q)
            gmt_fill(q, usable(q), n + 1);
        if (p)
            CHECK(gmt_check(p, usable(p), n) == (size_t)-1);
        if (q)
            CHECK(gmt_check(q, usable(q), n + 1) == (size_t)-1);
        API(free)(p);
        API(free)(q);
    }
    void *p = API(valloc)(0);
    if (p)
        CHECK_ALIGNED(p, PAGE);
    API(free)(p);
    p = API(pvalloc)(0);
    if (p)
        CHECK_ALIGNED(p, PAGE);
    API(free)(p);
    errno = 0;
    p = API(pvalloc)(SIZE_MAX);
    CHECK_MSG(p == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX) = %p errno %d", p, errno);
    errno = 0;
    p = API(pvalloc)(SIZE_MAX - PAGE + 2);
    CHECK_MSG(p == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX-4094) = %p errno %d", p, errno);
    errno = 0;
    p = API(valloc)(SIZE_MAX - 100);
    CHECK_MSG(p == NULL && errno == ENOMEM, "valloc(SIZE_MAX-100) = %p errno %d", p, errno);
}

/* ------------------------------------------------------------------ */
/* realloc */

static void test_realloc_chain(const size_t *sizes, size_t count, uint64_t seed) {
    void *p = NULL;
    size_t cur = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = sizes[i];
        void *q = API(realloc)(p, n);
        if (!CHECK_MSG(q != NULL, "realloc(%p, %zu) from %zu", p, n, cur))
            break;
        CHECK_MSG(usable(q) >= n, "realloc to %zu: usable %zu", n, usable(q));
        CHECK_MSG(((uintptr_t)q & (owed_align(n) - 1)) == 0, "realloc(%zu) misaligned %p", n, q);
        size_t bad = gmt_check_upto(q, cur, n, seed);
        CHECK_MSG(bad == (size_t)-1, "realloc %zu -> %zu lost byte %zu", cur, n, bad);
        gmt_fill(q, n, seed);
        p = q;
        cur = n;
    }
    API(free)(p);
}

static void test_realloc(void) {
    /* realloc(NULL, n) is malloc(n) */
    for (size_t n = 0; n < 2000; n += 7) {
        void *p = API(realloc)(NULL, n);
        CHECK(p != NULL);
        if (n)
            check_block(p, n, owed_align(n), "realloc(NULL)");
        API(free)(p);
    }
    /* realloc(p, 0) frees p and returns NULL (glibc) */
    const size_t zs[] = {1, 8, 15, 16, 100, 5000, 40000, 3 * MiB};
    for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++) {
        void *p = API(malloc)(zs[i]);
        CHECK(p != NULL);
        void *q = API(realloc)(p, 0);
        CHECK_MSG(q == NULL, "realloc(p[%zu], 0) = %p, glibc returns NULL", zs[i], q);
        if (q)
            API(free)(q);
    }
    /* growing and shrinking across tiny, small and large */
    const size_t up[] = {1,     3,     8,      15,     16,     17,      100,      512,
                         1024,  1025,  4096,   8192,   20000,  32768,   32769,    40000,
                         65536, 70000, 100000, 262144, MiB,    MiB + 1, 3 * MiB, 40 * MiB,
                         24 * MiB, MiB, 300000, 32769, 32768, 32767, 10000, 1025, 1024, 100,
                         17,    16,    15,     9,      8,      2,       1,        70000,
                         5,     5 * MiB, 12};
    test_realloc_chain(up, sizeof up / sizeof up[0], 11);
    /* a random walk */
    uint64_t rng = 42;
    size_t walk[3000];
    for (size_t i = 0; i < 3000; i++) {
        uint64_t r = gmt_rand(&rng);
        switch (r % 5) {
        case 0: walk[i] = 1 + r % 15; break;
        case 1: walk[i] = 16 + r % 1000; break;
        case 2: walk[i] = r % 33000; break;
        case 3: walk[i] = 30000 + r % 100000; break;
        default: walk[i] = 1 + r % (2 * MiB); break;
        }
    }
    test_realloc_chain(walk, 3000, 12);

    /* same class (same page count for large objects): same pointer */
    for (size_t n = 1; n <= 300000; n = n < 2048 ? n + 1 : n + n / 50 + 1) {
        void *p = API(malloc)(n);
        if (!CHECK(p != NULL))
            continue;
        size_t u = usable(p);
        gmt_fill(p, n, n);
        void *q = API(realloc)(p, u);
        CHECK_MSG(q == p, "realloc(malloc(%zu), its usable size %zu) moved %p -> %p", n, u, p, q);
        if (!q) {
            API(free)(p);
            continue;
        }
        void *r = API(realloc)(q, n);
        CHECK_MSG(r == q, "realloc back to %zu (same class as %zu) moved %p -> %p", n, u, q, r);
        if (!r) {
            API(free)(q);
            continue;
        }
        CHECK(gmt_check(r, n, n) == (size_t)-1);
        API(free)(r);
    }

    /* a failing realloc leaves the block intact, with ENOMEM */
    const size_t fs[] = {10, 100, 5000, 50000, 2 * MiB};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        void *p = API(malloc)(fs[i]);
        if (!CHECK(p != NULL))
            continue;
        gmt_fill(p, fs[i], 5);
        errno = 0;
        void *q = API(realloc)(p, SIZE_MAX / 2);
        CHECK_MSG(q == NULL && errno == ENOMEM, "realloc(%zu-byte block, SIZE_MAX/2) = %p errno %d",
                  fs[i], q, errno);
        errno = 0;
        q = API(realloc)(p, SIZE_MAX - 10);
        CHECK_MSG(q == NULL && errno == ENOMEM, "realloc(%zu-byte block, SIZE_MAX-10) = %p errno %d",
                  fs[i], q, errno);
        CHECK_MSG(gmt_check(p, fs[i], 5) == (size_t)-1, "failed realloc damaged a %zu-byte block",
                  fs[i]);
        CHECK(usable(p) >= fs[i]);
        API(free)(p);
    }
}

/* ------------------------------------------------------------------ */

static void test_free_and_errno(void) {
    API(free)(NULL);
    errno = EDOM;
    API(free)(NULL);
    CHECK_EQ(errno, EDOM);
    const size_t ns[] = {1, 12, 16, 100, 4000, 32768, 40000, 300000, 8 * MiB};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        void *p = API(malloc)(ns[i]);
        CHECK(p != NULL);
        memset(p, 1, ns[i]);
        errno = EDOM;
        API(free)(p);
        CHECK_MSG(errno == EDOM, "free of a %zu-byte block changed errno to %d", ns[i], errno);
    }
    /* freeing many large blocks (pages going back to the heap, maybe to the
     * OS) keeps errno too */
    void *big[64];
    for (int i = 0; i < 64; i++) {
        big[i] = API(malloc)(MiB + (size_t)i * 8192);
        if (big[i])
            memset(big[i], 2, 4096);
    }
    for (int i = 0; i < 64; i++) {
        errno = ERANGE;
        API(free)(big[i]);
        CHECK_EQ(errno, ERANGE);
    }
    CHECK_EQ(usable(NULL), 0);
}

/* calloc memory is zero, also when it reuses memory a previous owner dirtied */
static void test_calloc_zero(void) {
    const size_t ns[] = {1,     2,     3,     7,     8,      13,     15,      16,      17,
                         24,    32,    48,    64,    100,    128,    200,     512,     1000,
                         1024,  3000,  4096,  8192,  16000,  32768,  32769,   40000,   70000,
                         100000, 262144, MiB, MiB + 4096, 4 * MiB};
    for (int round = 0; round < 60; round++) {
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            size_t n = ns[i];
            if (n >= MiB && round % 10)
                continue;
            void *d[4];
            for (int k = 0; k < 4; k++) {
                d[k] = API(malloc)(n);
                if (d[k])
                    memset(d[k], 0xA5, usable(d[k]));
            }
            for (int k = 0; k < 4; k++)
                API(free)(d[k]);
            for (int k = 0; k < 4; k++) {
                size_t nm = (k & 1) ? n : 1, sz = (k & 1) ? 1 : n;
                d[k] = API(calloc)(nm, sz);
                if (!CHECK_MSG(d[k] != NULL, "calloc(%zu, %zu)", nm, sz))
                    continue;
                size_t bad = gmt_check_zero(d[k], n);
                CHECK_MSG(bad == (size_t)-1, "calloc(%zu) round %d: byte %zu is %#x", n, round, bad,
                          ((uint8_t *)d[k])[bad == (size_t)-1 ? 0 : bad]);
                CHECK_MSG(((uintptr_t)d[k] & (owed_align(n) - 1)) == 0, "calloc(%zu) misaligned",
                          n);
                memset(d[k], 0x5A, usable(d[k]));
            }
            for (int k = 0; k < 4; k++)
                API(free)(d[k]);
        }
    }
    /* big blocks: freed dirty, then calloc'ed back */
    for (int round = 0; round < 4; round++) {
        size_t n = (size_t)(16 + round * 24) * MiB;
        void *p = API(malloc)(n);
        if (!CHECK(p != NULL))
            continue;
        memset(p, 0xEE, n);
        API(free)(p);
        p = API(calloc)(n / 4096, 4096);
        if (!CHECK(p != NULL))
            continue;
        size_t bad = gmt_check_zero(p, n);
        CHECK_MSG(bad == (size_t)-1, "calloc(%zu MiB) byte %zu nonzero", n / MiB, bad);
        API(free)(p);
    }
    /* calloc of n elements of size s */
    for (size_t s = 1; s < 200; s += 13)
        for (size_t m = 1; m < 300; m += 37) {
            void *p = API(malloc)(s * m);
            if (p)
                memset(p, 0xFF, s * m);
            API(free)(p);
            p = API(calloc)(m, s);
            if (CHECK(p != NULL))
                CHECK(gmt_check_zero(p, s * m) == (size_t)-1);
            API(free)(p);
        }
}

/* ------------------------------------------------------------------ */
/* mallinfo, mallinfo2, malloc_stats, malloc_trim, mallopt */

static void test_info(void) {
    struct mallinfo2 before = API(mallinfo2)();
    (void)before;
    enum { N = 16 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = API(malloc)(MiB);
        if (p[i])
            memset(p[i], 3, MiB);
    }
    void *small[1000];
    for (int i = 0; i < 1000; i++)
        small[i] = API(malloc)(100);
    struct mallinfo2 mi = API(mallinfo2)();
    CHECK_MSG(mi.uordblks + mi.hblkhd >= 16 * MiB,
              "mallinfo2: uordblks %zu + hblkhd %zu below the 16 MiB in use", mi.uordblks,
              mi.hblkhd);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo m1 = API(mallinfo)();
#pragma GCC diagnostic pop
    (void)m1;
    for (int i = 0; i < 1000; i++)
        API(free)(small[i]);
    for (int i = 0; i < N; i++)
        API(free)(p[i]);

    /* malloc_stats writes to stderr */
    char path[] = "/tmp/gmtest-stats-XXXXXX";
    int fd = mkstemp(path);
    if (CHECK(fd >= 0)) {
        unlink(path);
        fflush(stderr);
        int saved = dup(2);
        dup2(fd, 2);
        API(malloc_stats)();
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        struct stat st;
        fstat(fd, &st);
        CHECK_MSG(st.st_size > 0, "malloc_stats wrote nothing to stderr");
        close(fd);
    }

    int t = API(malloc_trim)(0);
    CHECK_MSG(t == 0 || t == 1, "malloc_trim(0) = %d", t);
    t = API(malloc_trim)(1 << 20);
    CHECK_MSG(t == 0 || t == 1, "malloc_trim(1 MiB) = %d", t);

    /* mallopt: 1 on success; parameters it does not know are accepted */
    int r = API(mallopt)(M_TRIM_THRESHOLD, 1 << 20);
    CHECK_MSG(r == 1, "mallopt(M_TRIM_THRESHOLD) = %d", r);
    r = API(mallopt)(M_MMAP_THRESHOLD, 1 << 20);
    CHECK_MSG(r == 1, "mallopt(M_MMAP_THRESHOLD) = %d", r);
    r = API(mallopt)(M_ARENA_MAX, 4);
    CHECK_MSG(r == 1, "mallopt(M_ARENA_MAX) = %d", r);
    r = API(mallopt)(12345, 1);
    CHECK_MSG(r == 1, "mallopt(unknown 12345) = %d", r);
    r = API(mallopt)(-77, 0);
    CHECK_MSG(r == 1, "mallopt(unknown -77) = %d", r);
    /* the heap still works afterwards */
    void *q = API(malloc)(123);
    CHECK(q != NULL);
    API(free)(q);
}

static void test_sized_free(void) {
    if (!HAVE_FREE_SIZED || !HAVE_FREE_ALIGNED_SIZED) {
        CHECK_MSG(!strict, "free_sized/free_aligned_sized missing");
        return;
    }
    for (size_t n = 1; n < 100000; n = n * 3 + 1) {
        void *p = API(malloc)(n);
        CHECK(p != NULL);
        memset(p, 9, n);
        API(free_sized)(p, n);
        errno = EDOM;
        API(free_sized)(NULL, 0);
        CHECK_EQ(errno, EDOM);
    }
    for (size_t a = 1; a <= 65536; a *= 4)
        for (size_t n = a; n < 200000; n = n * 5) {
            void *p = API(aligned_alloc)(a, n);
            if (!CHECK(p != NULL))
                continue;
            CHECK_ALIGNED(p, a);
            memset(p, 9, n);
            API(free_aligned_sized)(p, a, n);
        }
    API(free_aligned_sized)(NULL, 64, 64);
}

#ifndef API_GM
/* glibc-internal entry points: the same heap as malloc/free */
static void test_libc_names(void) {
    void *p = __libc_malloc(100);
    check_block(p, 100, 16, "__libc_malloc");
    free(p);
    p = malloc(200);
    __libc_free(p);
    p = __libc_calloc(10, 10);
    if (CHECK(p != NULL))
        CHECK(gmt_check_zero(p, 100) == (size_t)-1);
    p = __libc_realloc(p, 5000);
    check_block(p, 5000, 16, "__libc_realloc");
    p = realloc(p, 20);
    __libc_free(p);
    p = __libc_memalign(256, 100);
    check_block(p, 100, 256, "__libc_memalign");
    free(p);
    p = __libc_valloc(100);
    check_block(p, 100, PAGE, "__libc_valloc");
    free(p);
    p = __libc_pvalloc(100);
    check_block(p, PAGE, PAGE, "__libc_pvalloc");
    __libc_free(p);
    errno = 0;
    p = __libc_malloc(SIZE_MAX);
    CHECK(p == NULL && errno == ENOMEM);
    __libc_free(NULL);
    if (strict) {
        /* these must be gomalloc's, not glibc's: same library as malloc */
        Dl_info a, b;
        void *m = dlsym(RTLD_DEFAULT, "malloc");
        void *lm = dlsym(RTLD_DEFAULT, "__libc_malloc");
        if (m && lm && dladdr(m, &a) && dladdr(lm, &b))
            CHECK_MSG(strcmp(a.dli_fname, b.dli_fname) == 0, "__libc_malloc from %s, malloc from %s",
                      b.dli_fname, a.dli_fname);
    }
}
#endif

/* ------------------------------------------------------------------ */
/* Tiny objects (1-15 bytes) */

static void test_tiny(void) {
    enum { N = 200000 };
    void **p = API(malloc)(N * sizeof(void *));
    uint8_t *len = API(malloc)(N);
    if (!CHECK(p && len))
        return;
    uint64_t rng = 777;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            len[i] = (uint8_t)(1 + gmt_rand(&rng) % 15);
            p[i] = API(malloc)(len[i]);
            if (!p[i])
                continue;
            size_t u = usable(p[i]);
            CHECK_MSG(u >= len[i], "tiny %u: usable %zu", len[i], u);
            if (strict)
                CHECK_MSG(u <= 16, "tiny malloc(%u): usable %zu > 16", len[i], u);
            CHECK_MSG(((uintptr_t)p[i] & (owed_align(len[i]) - 1)) == 0, "tiny %u misaligned %p",
                      len[i], p[i]);
            gmt_fill(p[i], u, (uint64_t)i);
        }
        for (int i = 0; i < N; i++) {
            if (!CHECK(p[i] != NULL))
                continue;
            size_t bad = gmt_check(p[i], usable(p[i]), (uint64_t)i);
            CHECK_MSG(bad == (size_t)-1, "tiny object %d (%u bytes) damaged at %zu", i, len[i],
                      bad);
        }
        /* free in random order: a Fisher-Yates shuffle */
        for (int i = N - 1; i > 0; i--) {
            int j = (int)(gmt_rand(&rng) % (uint64_t)(i + 1));
            void *t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        for (int i = 0; i < N; i++)
            API(free)(p[i]);
        if (check_failures() > 20)
            break;
    }
    API(free)(p);
    API(free)(len);
}

int main(void) {
    strict = gmt_strict();
    setvbuf(stdout, NULL, _IONBF, 0);
    check_say("test_api (%s names, %s)\n", API_NAME[0] ? "gm_" : "standard",
              strict ? "gomalloc rules" : "portable rules only");
    struct {
        const char *name;
        void (*fn)(void);
    } parts[] = {
        {"identity", test_identity},
        {"sizes", test_sizes},
        {"no_overlap", test_no_overlap},
        {"malloc_zero", test_malloc_zero},
        {"impossible", test_impossible},
        {"calloc_overflow", test_calloc_overflow},
        {"aligned", test_aligned},
        {"bad_alignment", test_bad_alignment},
        {"valloc", test_valloc},
        {"realloc", test_realloc},
        {"free_errno", test_free_and_errno},
        {"calloc_zero", test_calloc_zero},
        {"info", test_info},
        {"sized_free", test_sized_free},
#ifndef API_GM
        {"libc_names", test_libc_names},
#endif
        {"tiny", test_tiny},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        unsigned long f0 = check_failures();
        double t0 = gmt_now();
        parts[i].fn();
        check_say("  %-16s %s %.2fs\n", parts[i].name, check_failures() == f0 ? "ok" : "FAILED",
                  gmt_now() - t0);
    }
    return check_done("test_api");
}
