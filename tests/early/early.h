/*
 * early.h: the allocation work test_early does before main, shared by the
 * test program and the libraries it loads (each includes it on its own).
 *
 * early_work() runs in a constructor (or from .preinit_array): it mallocs,
 * callocs, reallocs through several size classes and into large sizes,
 * allocates aligned blocks, frees most of it, and keeps a realloc'ed block
 * and a set of objects of many sizes alive, each filled with a pattern.
 * early_verify() runs later (in main or in a destructor): the kept objects
 * must still hold their patterns; it reallocs one and frees them all.
 *
 * Errors are counted in the state and the first one is kept as text; no
 * allocation is needed to record them.
 */
#ifndef GM_TEST_EARLY_H
#define GM_TEST_EARLY_H

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"

#define EARLY_NKEEP 48

struct early_state {
    const char *name;
    int ran;      /* early_work finished */
    int verified; /* early_verify finished */
    int errors;
    char msg[256]; /* the first error */
    uint64_t seed;
    void *keep; /* the realloc'ed block */
    size_t keep_size;
    void *many[EARLY_NKEEP];
    size_t many_size[EARLY_NKEEP];
};

#define EARLY_ERR(st, ...)                                                        \
    do {                                                                          \
        if ((st)->errors++ == 0)                                                  \
            snprintf((st)->msg, sizeof (st)->msg, __VA_ARGS__);                   \
    } while (0)

/* Hides a pointer from the compiler so nothing is optimised away. */
static inline void *early_launder(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

static inline size_t early_many_size(unsigned i) {
    /* 1 B .. ~600 KiB, tiny, small and large. */
    size_t n = 1;
    for (unsigned k = 0; k < i; k++)
        n = n + n / 3 + 1;
    return n;
}

static inline void early_work(struct early_state *st, const char *name, uint64_t seed) {
    st->name = name;
    st->seed = seed;

    /* malloc and free of every kind of size */
    static const size_t sizes[] = {0, 1, 5, 8, 15, 16, 24, 100, 1000, 4096, 5000, 32768,
                                   32769, 100000, 1 << 20};
    void *p[sizeof sizes / sizeof sizes[0]];
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p[i] = early_launder(malloc(sizes[i]));
        if (!p[i]) {
            EARLY_ERR(st, "%s: malloc(%zu) = NULL (errno %d)", name, sizes[i], errno);
            continue;
        }
        gmt_fill(p[i], sizes[i], seed + i);
        if (malloc_usable_size(p[i]) < sizes[i])
            EARLY_ERR(st, "%s: malloc_usable_size(malloc(%zu)) = %zu", name, sizes[i],
                      malloc_usable_size(p[i]));
    }
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (p[i] && gmt_check(p[i], sizes[i], seed + i) != (size_t)-1)
            EARLY_ERR(st, "%s: malloc(%zu) block corrupted", name, sizes[i]);
        free(p[i]);
    }
    free(NULL);

    /* calloc */
    unsigned char *c = early_launder(calloc(300, 7));
    if (!c)
        EARLY_ERR(st, "%s: calloc(300, 7) = NULL", name);
    else if (gmt_check_zero(c, 2100) != (size_t)-1)
        EARLY_ERR(st, "%s: calloc(300, 7) not zeroed", name);
    free(c);
    c = early_launder(calloc(1, 200000));
    if (!c || gmt_check_zero(c, 200000) != (size_t)-1)
        EARLY_ERR(st, "%s: calloc(1, 200000) NULL or not zeroed", name);
    free(c);

    /* aligned */
    void *a = NULL;
    int rc = posix_memalign(&a, 64, 200);
    if (rc != 0 || !a || ((uintptr_t)a & 63))
        EARLY_ERR(st, "%s: posix_memalign(64, 200) = %d, %p", name, rc, a);
    free(a);
    a = early_launder(aligned_alloc(4096, 8192));
    if (!a || ((uintptr_t)a & 4095))
        EARLY_ERR(st, "%s: aligned_alloc(4096, 8192) = %p", name, a);
    free(a);
    a = early_launder(memalign(65536, 100));
    if (!a || ((uintptr_t)a & 65535))
        EARLY_ERR(st, "%s: memalign(65536, 100) = %p", name, a);
    free(a);

    /* strdup: libc allocating on our behalf */
    char *s = early_launder(strdup("allocated before main"));
    if (!s || strcmp(s, "allocated before main") != 0)
        EARLY_ERR(st, "%s: strdup failed", name);
    free(s);

    /* a realloc chain through the classes and into large sizes, kept */
    static const size_t steps[] = {10, 100, 5000, 70000, 300, 3000};
    void *r = early_launder(realloc(NULL, steps[0]));
    size_t have = steps[0];
    if (r)
        gmt_fill(r, have, seed ^ 0xabc);
    for (unsigned i = 1; r && i < sizeof steps / sizeof steps[0]; i++) {
        void *q = early_launder(realloc(r, steps[i]));
        if (!q) {
            EARLY_ERR(st, "%s: realloc(%zu -> %zu) = NULL", name, have, steps[i]);
            break;
        }
        size_t common = have < steps[i] ? have : steps[i];
        if (gmt_check(q, common, seed ^ 0xabc) != (size_t)-1)
            EARLY_ERR(st, "%s: realloc(%zu -> %zu) lost the contents", name, have, steps[i]);
        r = q;
        have = steps[i];
        gmt_fill(r, have, seed ^ 0xabc);
    }
    if (!r)
        EARLY_ERR(st, "%s: realloc(NULL, 10) = NULL", name);
    st->keep = r;
    st->keep_size = have;

    /* objects of many sizes: allocate all, free every other one, keep the rest */
    for (unsigned i = 0; i < EARLY_NKEEP; i++) {
        st->many_size[i] = early_many_size(i);
        st->many[i] = early_launder(malloc(st->many_size[i]));
        if (!st->many[i])
            EARLY_ERR(st, "%s: malloc(%zu) = NULL", name, st->many_size[i]);
        else
            gmt_fill(st->many[i], st->many_size[i], seed * 31 + i);
    }
    for (unsigned i = 0; i < EARLY_NKEEP; i += 2) {
        free(st->many[i]);
        st->many[i] = NULL;
    }
    st->ran = 1;
}

/* Checks and frees what early_work kept.  `usable` is a second opinion on
 * malloc_usable_size (gomalloc's gm_ function when available, else NULL):
 * both must agree, which shows the objects are gomalloc's. */
static inline void early_verify(struct early_state *st, size_t (*usable)(void *)) {
    const char *name = st->name ? st->name : "?";
    if (!st->ran) {
        EARLY_ERR(st, "%s: the early work never ran", name);
        return;
    }
    if (st->keep) {
        if (gmt_check(st->keep, st->keep_size, st->seed ^ 0xabc) != (size_t)-1)
            EARLY_ERR(st, "%s: kept realloc'ed block corrupted", name);
        if (usable && usable(st->keep) != malloc_usable_size(st->keep))
            EARLY_ERR(st, "%s: kept block: gm_malloc_usable_size %zu != malloc_usable_size %zu",
                      name, usable(st->keep), malloc_usable_size(st->keep));
        void *q = early_launder(realloc(st->keep, st->keep_size * 20));
        if (!q)
            EARLY_ERR(st, "%s: realloc of the kept block = NULL", name);
        else {
            if (gmt_check(q, st->keep_size, st->seed ^ 0xabc) != (size_t)-1)
                EARLY_ERR(st, "%s: realloc of the kept block lost the contents", name);
            free(q);
        }
        st->keep = NULL;
    }
    for (unsigned i = 0; i < EARLY_NKEEP; i++) {
        if (!st->many[i])
            continue;
        if (gmt_check(st->many[i], st->many_size[i], st->seed * 31 + i) != (size_t)-1)
            EARLY_ERR(st, "%s: kept object %u (%zu B) corrupted", name, i, st->many_size[i]);
        if (malloc_usable_size(st->many[i]) < st->many_size[i])
            EARLY_ERR(st, "%s: kept object %u: usable size %zu < %zu", name, i,
                      malloc_usable_size(st->many[i]), st->many_size[i]);
        if (usable && usable(st->many[i]) != malloc_usable_size(st->many[i]))
            EARLY_ERR(st, "%s: kept object %u: gm_ and standard usable sizes differ", name, i);
        free(st->many[i]);
        st->many[i] = NULL;
    }
    st->verified = 1;
}

#endif
