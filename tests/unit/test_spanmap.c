/*
 * test_spanmap: the flat page -> span table, its growth and replacement.
 *
 * Built with gomalloc's sources (not the overrides).
 *  1. The heap grows past the range the span map covers: the table grows in
 *     place at its home (same table, more entries), the earlier spans keep
 *     their entries and the new ones are found.
 *  2. Something is mapped where the table would grow next, and the heap
 *     grows again: a new, larger table replaces it.  The old table is still
 *     mapped and still finds every span that existed before (a reader that
 *     loaded it just before the replacement); the new one finds the same
 *     spans at the same pages, and the spans made since, which the old one
 *     does not cover.  Addresses outside the table (below its origin, past
 *     its end, inside a large object, on the stack) find nothing.
 *  3. A thread that frees and allocates while the main thread makes the
 *     table grow several times never sees a pointer it holds map to
 *     another span.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "gomalloc.h"
#include "arena.h"
#include "mspan.h"

#include "../check.h"

#define SMALL 64
#define NSMALL 4096
#define MiB ((size_t)1 << 20)

static void *small[NSMALL];

static size_t npages_of(const spanmap *m) { return __atomic_load_n(&m->npages, __ATOMIC_ACQUIRE); }

static bool covers(const spanmap *m, const void *p) {
    return (uintptr_t)p - m->origin < (npages_of(m) << GM_PAGE_SHIFT);
}

static void test_in_place(void) {
    for (int i = 0; i < NSMALL; i++)
        small[i] = gm_malloc(SMALL);
    spanmap *m = spanmap_current();
    size_t n0 = npages_of(m);
    CHECK(n0 > 0);
    mspan *before[NSMALL];
    for (int i = 0; i < NSMALL; i++)
        before[i] = spanof(small[i]);
    void *big[64];
    int nbig = 0;
    while (nbig < 64 && npages_of(m) == n0)
        big[nbig++] = gm_malloc(32 * MiB);
    CHECK_MSG(npages_of(m) > n0, "the span map never grew (%d blocks of 32 MiB)", nbig);
    CHECK_MSG(spanmap_current() == m, "the table moved");
    for (int i = 0; i < NSMALL; i++)
        CHECK(spanof(small[i]) == before[i] && before[i] != NULL);
    mspan *s = spanof(big[nbig - 1]);
    CHECK(s != NULL && s->base == (uintptr_t)big[nbig - 1]);
    for (int i = 0; i < nbig; i++)
        gm_free(big[i]);
    for (int i = 0; i < NSMALL; i++)
        gm_free(small[i]);
}

static void test_replacement(void) {
    for (int i = 0; i < NSMALL; i++)
        small[i] = gm_malloc(SMALL);
    spanmap *old = spanmap_current();
    /* Occupy the page after the table's end, where it would grow next. */
    uintptr_t next = ((uintptr_t)&old->entries[npages_of(old)] + 4095) & ~(uintptr_t)4095;
    void *block = mmap((void *)next, 4096, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CHECK_MSG(block == (void *)next, "could not map a page at the table's end");
    CHECK(npages_of(old) > 0);
    mspan *before[NSMALL];
    for (int i = 0; i < NSMALL; i++) {
        before[i] = spanof(small[i]);
        CHECK(before[i] != NULL && covers(old, small[i]));
    }
    /* Grow the heap until the table no longer covers it. */
    void *big[64];
    int nbig = 0;
    while (nbig < 64 && spanmap_current() == old)
        big[nbig++] = gm_malloc(32 * MiB);
    spanmap *now = spanmap_current();
    CHECK_MSG(now != old, "the span map was never replaced (%d blocks of 32 MiB)", nbig);
    CHECK(npages_of(now) >= 2 * npages_of(old));
    CHECK(now->origin <= old->origin);
    size_t shift = (old->origin - now->origin) >> GM_PAGE_SHIFT;
    /* Every span the old table knew is in the new one, at the same page
     * (nothing was freed meanwhile); the new one may also know spans made
     * after the replacement, in pages the old one covers too. */
    size_t differ = 0, known = 0;
    for (size_t i = 0; i < npages_of(old); i++) {
        known += old->entries[i] != NULL;
        differ += old->entries[i] && old->entries[i] != now->entries[shift + i];
    }
    CHECK(known >= NSMALL * SMALL / (64 * 1024));
    CHECK_MSG(differ == 0, "%zu entries differ between the old table and the new", differ);
    for (int i = 0; i < NSMALL; i++) {
        /* the old table, as a reader that loaded it before the replacement */
        size_t pg = ((uintptr_t)small[i] - old->origin) >> GM_PAGE_SHIFT;
        CHECK(old->entries[pg] == before[i]);
        CHECK(spanof(small[i]) == before[i]);
    }
    void *last = NULL; /* a block the old table does not cover */
    while (nbig < 64 && !last) {
        big[nbig] = gm_malloc(32 * MiB);
        if (big[nbig] && !covers(old, big[nbig]))
            last = big[nbig];
        nbig++;
    }
    if (!CHECK(last != NULL && covers(now, last)))
        return;
    mspan *s = spanof(last);
    CHECK(s != NULL && s->base == (uintptr_t)last && s->spanclass == 0);
    /* Outside the table: nothing. */
    int on_stack;
    CHECK(spanof(&on_stack) == NULL);
    CHECK(spanof((void *)(now->origin - GM_PAGE_SIZE)) == NULL);
    CHECK(spanof((void *)(now->origin + (npages_of(now) << GM_PAGE_SHIFT))) == NULL);
    CHECK(spanof((char *)last + GM_PAGE_SIZE) == NULL); /* inside a large object */
    for (int i = 0; i < nbig; i++)
        gm_free(big[i]);
    for (int i = 0; i < NSMALL; i++)
        gm_free(small[i]);
    munmap(block, 4096);
}

/* ---- 3: a thread churning while tables are replaced ---- */

static volatile int stop;
static size_t churn_wrong;

static void *churn(void *arg) {
    (void)arg;
    enum { N = 512 };
    void *p[N];
    mspan *s[N];
    for (int i = 0; i < N; i++) {
        p[i] = gm_malloc(SMALL + (size_t)(i % 8) * 16);
        s[i] = spanof(p[i]);
    }
    unsigned k = 0;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        unsigned i = (k++ * 2654435761u) % N;
        if (spanof(p[i]) != s[i])
            churn_wrong++;
        gm_free(p[i]);
        p[i] = gm_malloc(SMALL + (size_t)(i % 8) * 16);
        s[i] = spanof(p[i]);
        if (!s[i] || (uintptr_t)p[i] < s[i]->base)
            churn_wrong++;
    }
    for (int i = 0; i < N; i++)
        gm_free(p[i]);
    return NULL;
}

static void test_concurrent_replacement(void) {
    pthread_t t;
    if (!CHECK(pthread_create(&t, NULL, churn, NULL) == 0))
        return;
    int grown = 0;
    void *held[64];
    int n = 0;
    for (; n < 64 && grown < 3; n++) {
        spanmap *m = spanmap_current();
        size_t np = npages_of(m);
        held[n] = gm_malloc(64 * MiB);
        if (!held[n])
            break;
        grown += spanmap_current() != m || npages_of(m) != np;
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    CHECK_MSG(grown >= 2, "the table grew only %d times", grown);
    CHECK_MSG(churn_wrong == 0, "%zu lookups found the wrong span", churn_wrong);
    for (int i = 0; i < n; i++)
        gm_free(held[i]);
}

int main(void) {
    test_in_place();
    test_replacement();
    test_concurrent_replacement();
    return check_done("test_spanmap");
}
