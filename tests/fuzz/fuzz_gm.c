/*
 * fuzz_gm: a libFuzzer target over gomalloc's gm_ API.
 *
 * Each input is a program: a stream of operations (malloc, calloc, realloc,
 * reallocarray, the aligned allocators, free, free_sized,
 * free_aligned_sized, malloc_usable_size, malloc_trim, impossible sizes,
 * frees and allocations made by a second thread) on up to MAX_LIVE blocks.
 * A shadow model keeps every live block's size, alignment and seed, and
 * after every step the target checks what the API promises:
 *   - contents: each block holds exactly what was written to it (all of it
 *     up to WHOLE bytes, a sample of every page beyond); realloc keeps the
 *     old bytes up to the smaller size; calloc memory reads as zero, even
 *     when it is recycled;
 *   - alignment: 16 for sizes of 16 or more, the largest power of two not
 *     above the size below that, the requested one for aligned calls;
 *   - malloc_usable_size >= size (== size in the hardened build);
 *   - errno: ENOMEM with every NULL for an impossible size, EINVAL for a bad
 *     alignment, unchanged by free;
 *   - frees from another thread (the second thread frees, or allocates and
 *     hands over, on request).
 * A broken promise aborts with a message; gomalloc's own reports abort too.
 * Every input frees what it allocated, so inputs are independent.
 *
 * Built by tests/fuzz/run.sh, with -DFUZZ_HARDENED against the hardened
 * build.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gomalloc.h"

#define MAX_LIVE 48
#define WHOLE 4096          /* blocks up to this are filled and checked whole */
#define PAGE_SAMPLE 4096    /* beyond it, one byte per this many, and the ends */
#define END_BYTES 64
#define HARMLESS_ERRNO 4242

typedef struct live {
    unsigned char *p;
    size_t size;
    size_t align;  /* asked for (0: plain malloc rules) */
    uint8_t seed;
    bool aligned_call; /* from an aligned allocator: free_aligned_sized applies */
} live;

static live L[MAX_LIVE];

static __attribute__((noreturn)) void broken(const char *what, size_t a, size_t b) {
    fprintf(stderr, "fuzz_gm: %s (%zu, %zu)\n", what, a, b);
    abort();
}

/* ---- the input ---- */

typedef struct input {
    const uint8_t *d;
    size_t n, at;
} input;

static unsigned byte(input *in) { return in->at < in->n ? in->d[in->at++] : 0; }

/* Sizes weighted toward the interesting: tiny, small, page-sized, large. */
static size_t size_of(input *in) {
    unsigned sel = byte(in), lo = byte(in), hi = byte(in);
    size_t v = lo | (hi << 8);
    switch (sel & 7) {
    case 0: return v % 17;                 /* 0..16: tiny and the first classes */
    case 1: case 2: return v % 1025;       /* small */
    case 3: return v % 40000;              /* up to and past 32 KiB */
    case 4: return (size_t)(v % 64) << 10; /* page multiples up to 64 KiB */
    case 5: return v % 20 == 0 ? (size_t)(v % 3 + 1) << 20 : v % 300; /* rarely MiBs */
    case 6: return (v % 5) * 16;
    default: return v % 100;
    }
}

static size_t align_of(input *in) {
    unsigned k = byte(in) % 14; /* 1 .. 8 KiB, a few beyond */
    return (size_t)1 << (k < 12 ? k : k + 4);
}

/* ---- contents ---- */

static inline uint8_t pat(uint8_t seed, size_t i) { return (uint8_t)(seed * 31 + i + (i >> 8)); }

static size_t next_pos(size_t i, size_t n) {
    if (n <= WHOLE || i < END_BYTES || i + 1 >= n - END_BYTES)
        return i + 1;
    size_t nx = i + PAGE_SAMPLE;
    return nx < n - END_BYTES ? nx : n - END_BYTES;
}

static void fill(unsigned char *p, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i = next_pos(i, n))
        p[i] = pat(seed, i);
}

static void verify_prefix(const live *b, size_t upto) {
    for (size_t i = 0; i < b->size; i = next_pos(i, b->size)) {
        if (i >= upto)
            break;
        if (b->p[i] != pat(b->seed, i))
            broken("block contents changed: size, offset", b->size, i);
    }
}

static void check_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i = next_pos(i, n))
        if (p[i])
            broken("calloc memory not zero: size, offset", n, i);
}

static void check_fresh(void *p, size_t size, size_t align) {
    uintptr_t a = (uintptr_t)p;
    size_t want = align;
    if (!want) {
        want = 16;
        if (size < 16) { /* the largest power of two not above size */
            want = 1;
            while (want * 2 <= size)
                want *= 2;
        }
    }
    if (a % want)
        broken("misaligned block: size, alignment", size, want);
    size_t u = gm_malloc_usable_size(p);
#ifdef FUZZ_HARDENED
    if (u != size)
        broken("hardened usable size is not the size: usable, size", u, size);
#else
    if (u < size)
        broken("usable size below the size: usable, size", u, size);
#endif
}

static void adopt(int s, void *p, size_t size, size_t align, uint8_t seed, bool aligned_call) {
    check_fresh(p, size, align);
    L[s] = (live){p, size, align, seed, aligned_call};
    fill(L[s].p, size, seed);
}

/* ---- the second thread ---- */

enum { REQ_NONE, REQ_FREE, REQ_MALLOC };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int req, req_done;
static void *req_ptr;
static size_t req_size;
static pthread_t worker;

static void *worker_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (req == REQ_NONE || req_done)
            pthread_cond_wait(&cv, &mu);
        if (req == REQ_FREE) {
            gm_free(req_ptr);
        } else {
            req_ptr = gm_malloc(req_size);
        }
        req_done = 1;
        pthread_cond_broadcast(&cv);
    }
    return NULL;
}

static void *on_worker(int what, void *p, size_t size) {
    static bool started;
    if (!started) {
        if (pthread_create(&worker, NULL, worker_main, NULL))
            broken("pthread_create", 0, 0);
        started = true;
    }
    pthread_mutex_lock(&mu);
    req = what;
    req_ptr = p;
    req_size = size;
    req_done = 0;
    pthread_cond_broadcast(&cv);
    while (!req_done)
        pthread_cond_wait(&cv, &mu);
    req = REQ_NONE;
    void *r = req_ptr;
    pthread_mutex_unlock(&mu);
    return r;
}

/* ---- operations ---- */

static void drop(int s) {
    memset(&L[s], 0, sizeof L[s]);
}

static void do_free(int s, unsigned how) {
    live *b = &L[s];
    verify_prefix(b, b->size);
    errno = HARMLESS_ERRNO;
    switch (how % 4) {
    case 0: gm_free(b->p); break;
    case 1:
        if (b->aligned_call)
            gm_free_aligned_sized(b->p, b->align, b->size);
        else
            gm_free_sized(b->p, b->size);
        break;
    case 2: on_worker(REQ_FREE, b->p, 0); errno = HARMLESS_ERRNO; break;
    default: gm_free(b->p); break;
    }
    if (errno != HARMLESS_ERRNO)
        broken("free changed errno", (size_t)errno, 0);
    drop(s);
}

static void expect_enomem(void *p, const char *what) {
    if (p || errno != ENOMEM)
        broken(what, (size_t)(uintptr_t)p, (size_t)errno);
}

static void step(input *in, uint8_t *seedctr) {
    unsigned op = byte(in);
    int s = (int)(byte(in) % MAX_LIVE);
    live *b = &L[s];
    uint8_t seed = ++*seedctr;
    if (b->p && (op % 16) < 11 && (op % 16) != 2 && (op % 16) != 9 && (op % 16) != 10) {
        do_free(s, op >> 4);
        return;
    }
    switch (op % 16) {
    case 0: case 1: {
        size_t n = size_of(in);
        void *p = gm_malloc(n);
        if (!p)
            broken("malloc failed", n, (size_t)errno);
        adopt(s, p, n, 0, seed, false);
        break;
    }
    case 3: {
        size_t a = size_of(in) % 64, m = size_of(in) % 600;
        unsigned char *p = gm_calloc(a, m);
        if (!p)
            broken("calloc failed", a, m);
        check_zero(p, a * m);
        check_fresh(p, a * m, 0);
        L[s] = (live){p, a * m, 0, seed, false};
        fill(p, a * m, seed);
        break;
    }
    case 2: case 9: { /* realloc, or reallocarray */
        size_t n = size_of(in);
        unsigned char *p;
        if (op % 16 == 9 && n % 2 == 0)
            p = gm_reallocarray(b->p, n / 2 ? 2 : 1, n / 2 ? n / 2 : n);
        else
            p = gm_realloc(b->p, n);
        if (n == 0 && b->p) { /* glibc's rule: realloc(p, 0) frees and returns NULL */
            if (p)
                broken("realloc(p, 0) returned a block", 0, 0);
            drop(s);
            break;
        }
        if (!p)
            broken("realloc failed", n, (size_t)errno);
        if (b->p) {
            live old = *b;
            old.p = p;
            verify_prefix(&old, n < old.size ? n : old.size);
        }
        adopt(s, p, n, 0, seed, false);
        break;
    }
    case 4: case 5: case 6: case 7: {
        size_t a = align_of(in), n = size_of(in);
        void *p = NULL;
        bool aligned_call = true;
        switch (op % 16) {
        case 4: {
            int rc = gm_posix_memalign(&p, a, n);
            if (a < sizeof(void *)) {
                if (rc != EINVAL)
                    broken("posix_memalign with a small alignment: rc", (size_t)rc, a);
                return;
            }
            if (rc)
                broken("posix_memalign failed", a, n);
            break;
        }
        case 5: p = gm_aligned_alloc(a, n); break;
        case 6: p = gm_memalign(a, n); break;
        default:
            a = 4096;
            aligned_call = false;
            if (byte(in) & 1) {
                p = gm_valloc(n);
            } else {
                p = gm_pvalloc(n);
                n = (n + 4095) & ~(size_t)4095; /* pvalloc's size is whole pages */
            }
            break;
        }
        if (!p)
            broken("aligned allocation failed", a, n);
        adopt(s, p, n, a, seed, aligned_call);
        break;
    }
    case 8: { /* impossible sizes: NULL and ENOMEM, nothing changes */
        errno = 0;
        switch (byte(in) % 5) {
        case 0: expect_enomem(gm_malloc(SIZE_MAX), "malloc(SIZE_MAX)"); break;
        case 1: expect_enomem(gm_malloc((size_t)PTRDIFF_MAX + 1), "malloc(PTRDIFF_MAX+1)"); break;
        case 2: expect_enomem(gm_calloc(SIZE_MAX / 2, 3), "calloc overflow"); break;
        case 3:
            expect_enomem(gm_reallocarray(NULL, SIZE_MAX / 4, 8), "reallocarray overflow");
            break;
        default:
            if (b->p) {
                errno = 0;
                expect_enomem(gm_realloc(b->p, SIZE_MAX - 4096), "realloc(p, huge)");
                verify_prefix(b, b->size);
            }
            break;
        }
        {
            errno = 0;
            void *p = gm_aligned_alloc(3, 16);
            if (p || errno != EINVAL)
                broken("aligned_alloc(3) must fail with EINVAL", (size_t)(uintptr_t)p,
                       (size_t)errno);
        }
        break;
    }
    case 10: /* the second thread allocates, we own it */
        if (!b->p) {
            size_t n = size_of(in);
            void *p = on_worker(REQ_MALLOC, NULL, n);
            if (!p)
                broken("worker malloc failed", n, 0);
            adopt(s, p, n, 0, seed, false);
        } else {
            verify_prefix(b, b->size);
        }
        break;
    case 11:
        if (b->p) {
            size_t u = gm_malloc_usable_size(b->p);
#ifdef FUZZ_HARDENED
            if (u != b->size)
                broken("usable size changed", u, b->size);
#else
            if (u < b->size)
                broken("usable size below size", u, b->size);
#endif
        }
        if (gm_malloc_usable_size(NULL) != 0)
            broken("malloc_usable_size(NULL) != 0", 0, 0);
        break;
    case 12:
        if ((byte(in) & 31) == 0)
            gm_malloc_trim(0);
        break;
    default:
        if (b->p)
            verify_prefix(b, b->size);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    input in = {data, size, 0};
    uint8_t seedctr = 0;
    while (in.at < in.n)
        step(&in, &seedctr);
    for (int s = 0; s < MAX_LIVE; s++)
        if (L[s].p)
            do_free(s, (unsigned)s);
    return 0;
}
