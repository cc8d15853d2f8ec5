/*
 * mcentral: per span class, the spans that no thread cache owns and that
 * have free slots (the partial list), and the rules for freeing into spans.
 *
 * Ownership.  A small span is either owned by exactly one mcache (it is that
 * cache's current span for the class) or unowned.  Unowned spans with enough
 * free slots (list_mark) sit in their mcentral's partial list; unowned fuller
 * spans sit nowhere and are found again only through frees.  A few empty
 * spans per class may be kept as spares instead of going back to mheap.
 *
 * Slot state, per span (three bitmaps, outside user memory):
 *   allocbits   written by the owner only.  Slot i is allocated when
 *               i < freeindex or allocbits[i] is set (Go's rule: the owner
 *               hands out slots upward from freeindex without touching bits).
 *   localfree   written by the owner only: its own frees since its last sweep.
 *   remotefree  set with atomic OR by any other thread; taken (exchanged with
 *               0) by the owner when it sweeps.
 * The owner folds the three together when it sweeps (its span is exhausted,
 * or it has just taken the span) and when it gives the span back.  Stores to
 * allocbits happen before the release store of freeindex, so a freer that
 * loads freeindex with acquire never sees a live slot as free.
 *
 * The live counter.  span->live counts live objects while the span is
 * unowned, plus SPAN_OWNED_BIAS while it is owned.  The owner never touches
 * it on its fast paths: it counts handouts minus local frees in owner_delta
 * and adds that when it gives the span back.  A remote free sets its bit and
 * only then decrements live, so live is never below the true count.
 *
 * Who moves a span.  Whoever takes an unowned span's live count down to the
 * list mark (enough of it became free, see list_mark) or from 1 to 0
 * (entirely free) calls reconcile(); so does the owner when it gives a span
 * back.  reconcile() runs under the mcentral lock and looks at the current
 * state: a span that has been taken by a cache meanwhile is left alone, an
 * empty one becomes a spare or goes back to mheap, a partly free one goes
 * into the partial list.  It is idempotent, so an
 * extra call is harmless, and `gen` (bumped when the span returns to mheap)
 * makes a late call on a span that was freed and reused a no-op.  No free
 * takes a lock unless it moves the span.
 *
 * The read-modify-writes go through gm_fetch_* (common.h): plain operations
 * while the process has one thread, locked instructions once it has more.
 *
 * Locking: one lock per span class, released before any call into mheap
 * (fork preparation alone holds it together with the heap lock, taken after).
 */
#include "mcentral.h"

#include "mheap.h"

typedef struct mcentral {
    gm_lock_t lock;
    mspan *partial; /* doubly linked through next/prev */
    mspan *spares;  /* empty spans kept back from mheap, linked by next */
    size_t nspares;
    char pad[64 - sizeof(gm_lock_t) - 2 * sizeof(mspan *) - sizeof(size_t)];
} mcentral;

static mcentral centrals[GM_NUM_SPAN_CLASSES] __attribute__((aligned(64)));

static void list_push(mcentral *c, mspan *s) {
    s->prev = NULL;
    s->next = c->partial;
    if (c->partial)
        c->partial->prev = s;
    c->partial = s;
    s->listed = 1;
}

static void list_remove(mcentral *c, mspan *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        c->partial = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->listed = 0;
}

/* An unowned span joins the partial list once at least a quarter of its
 * slots (at least one) are free: a cache that takes it then gets a run of
 * allocations out of it, instead of one slot per trip through the lock.  The
 * few slots of a span below that mark wait for more frees (bounded waste,
 * like a size class's tail). */
static inline int64_t list_mark(int64_t nelems) {
    int64_t t = nelems / 4;
    return nelems - (t ? t : 1);
}

/* Empty spans kept per class: a few, and no more than 128 KiB of them. */
#define SPARE 2 /* a span's `listed` value while it is a spare */
#define MAX_SPARES 4
#define MAX_SPARE_BYTES ((size_t)128 << 10)

static size_t spare_bytes; /* over all classes, for statistics */

static bool keep_spare(const mcentral *c, const mspan *s) {
    return c->nspares < MAX_SPARES &&
           (c->nspares + 1) * ((size_t)s->npages << GM_PAGE_SHIFT) <= MAX_SPARE_BYTES;
}

static void reconcile(unsigned spc, mspan *s, uint32_t gen) {
    mcentral *c = &centrals[spc];
    gm_lock(&c->lock);
    if (__atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) != gen) {
        gm_unlock(&c->lock);
        return;
    }
    int64_t live = __atomic_load_n(&s->live, __ATOMIC_ACQUIRE);
    if (live >= SPAN_OWNED_BIAS / 2) {
        gm_unlock(&c->lock); /* a cache took it: its owner decides */
        return;
    }
    if (s->listed == SPARE) {
        gm_unlock(&c->lock);
        return;
    }
    if (live == 0) {
        if (s->listed)
            list_remove(c, s);
        if (keep_spare(c, s)) {
            /* A class that empties and refills spans over and over (objects
             * of 8 KiB and more fill only a few per span) then does not go
             * through the heap lock and the page allocator each time. */
            s->next = c->spares;
            c->spares = s;
            c->nspares++;
            s->listed = SPARE;
            __atomic_fetch_add(&spare_bytes, (size_t)s->npages << GM_PAGE_SHIFT, __ATOMIC_RELAXED);
            gm_unlock(&c->lock);
            return;
        }
        __atomic_fetch_add(&s->gen, 1, __ATOMIC_RELEASE);
        gm_unlock(&c->lock);
        mheap_free_span(s);
        return;
    }
    if (live <= list_mark(s->nelems) && !s->listed)
        list_push(c, s);
    gm_unlock(&c->lock);
}

/* The new owner folds in what other threads freed while it was unowned. */
static void sweep_acquired(mspan *s) {
    for (unsigned w = 0; w < s->nwords; w++) {
        if (__atomic_load_n(span_bits(s, w, SPAN_REMOTE), __ATOMIC_RELAXED)) {
            uint64_t r = gm_exchange64(span_bits(s, w, SPAN_REMOTE), 0);
            __atomic_store_n(span_bits(s, w, SPAN_ALLOC), *span_bits(s, w, SPAN_ALLOC) & ~r, __ATOMIC_RELAXED);
        }
    }
    s->alloc_cache = ~*span_bits(s, 0, SPAN_ALLOC);
}

mspan *mcentral_cache_span(unsigned spc, struct mcache *owner) {
    mcentral *c = &centrals[spc];
    gm_lock(&c->lock);
    mspan *s = c->partial;
    if (s) {
        list_remove(c, s);
    } else if ((s = c->spares) != NULL) {
        c->spares = s->next;
        c->nspares--;
        s->next = NULL;
        s->listed = 0;
        __atomic_fetch_sub(&spare_bytes, (size_t)s->npages << GM_PAGE_SHIFT, __ATOMIC_RELAXED);
    }
    if (s) {
        gm_fetch_add64(&s->live, SPAN_OWNED_BIAS);
        __atomic_store_n(&s->owner, owner, __ATOMIC_RELAXED);
        gm_unlock(&c->lock);
        s->owner_delta = 0;
        sweep_acquired(s);
        return s;
    }
    gm_unlock(&c->lock);
    mheap_scavenge_tick();
    return mheap_alloc_small(spc, owner);
}

void mcentral_uncache_span(mspan *s) {
    /* Fold the owner's view into allocbits: everything below freeindex was
     * handed out, minus the owner's own frees. */
    uint32_t fi = s->freeindex;
    for (unsigned w = 0; w < s->nwords; w++) {
        uint64_t handed;
        if (w < fi >> 6)
            handed = ~(uint64_t)0;
        else if (w == fi >> 6)
            handed = ((uint64_t)1 << (fi & 63)) - 1;
        else
            handed = 0;
        uint64_t a = (*span_bits(s, w, SPAN_ALLOC) | handed) & ~*span_bits(s, w, SPAN_LOCAL);
        __atomic_store_n(span_bits(s, w, SPAN_ALLOC), a, __ATOMIC_RELAXED);
        __atomic_store_n(span_bits(s, w, SPAN_LOCAL), 0, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&s->freeindex, 0, __ATOMIC_RELEASE);
    s->alloc_cache = 0;
    __atomic_store_n(&s->owner, NULL, __ATOMIC_RELAXED);
    /* Read what we need before giving up ownership: from then on other
     * threads may free the span and the struct may be reused. */
    uint32_t gen = __atomic_load_n(&s->gen, __ATOMIC_RELAXED);
    unsigned spc = s->spanclass;
    int64_t nelems = s->nelems;
    int64_t delta = s->owner_delta;
    s->owner_delta = 0;
    int64_t live = gm_fetch_add64(&s->live, delta - SPAN_OWNED_BIAS) + delta - SPAN_OWNED_BIAS;
    if (live <= list_mark(nelems))
        reconcile(spc, s, gen);
}

void mcentral_free_remote(mspan *s, uint32_t idx, const char *caller) {
    uint64_t bit = (uint64_t)1 << (idx & 63);
    uint64_t *remote = span_bits(s, idx >> 6, SPAN_REMOTE);
    uint32_t gen = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
    unsigned spc = s->spanclass;
    int64_t nelems = s->nelems;
    int64_t before;
    if (unlikely(!span_slot_live(s, idx)))
        goto bad;
    if (gm_single_threaded()) {
        /* No other thread exists to race with: plain updates (the slot
         * check above has just seen the remote bit clear). */
        *remote |= bit;
        before = s->live--;
    } else {
        if (unlikely(__atomic_fetch_or(remote, bit, __ATOMIC_ACQ_REL) & bit))
            goto bad;
        before = __atomic_fetch_sub(&s->live, 1, __ATOMIC_ACQ_REL);
    }
    if (before < SPAN_OWNED_BIAS / 2 && (before == list_mark(nelems) + 1 || before == 1))
        reconcile(spc, s, gen);
    return;
bad:
    gm_bad_pointer(caller, (void *)(s->base + (uintptr_t)idx * s->elemsize), true);
}

size_t mcentral_spare_bytes(void) { return __atomic_load_n(&spare_bytes, __ATOMIC_RELAXED); }

void mcentral_release_spares(void) {
    for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES; spc++) {
        mcentral *c = &centrals[spc];
        gm_lock(&c->lock);
        mspan *list = c->spares;
        c->spares = NULL;
        c->nspares = 0;
        for (mspan *s = list; s; s = s->next) {
            __atomic_fetch_sub(&spare_bytes, (size_t)s->npages << GM_PAGE_SHIFT, __ATOMIC_RELAXED);
            __atomic_fetch_add(&s->gen, 1, __ATOMIC_RELEASE);
        }
        gm_unlock(&c->lock);
        while (list) {
            mspan *next = list->next;
            list->listed = 0;
            mheap_free_span(list);
            list = next;
        }
    }
}

void mcentral_lock_all_for_fork(void) {
    for (unsigned i = 0; i < GM_NUM_SPAN_CLASSES; i++)
        gm_lock(&centrals[i].lock);
    mheap_lock_for_fork();
}

void mcentral_unlock_all_after_fork(bool child) {
    mheap_unlock_after_fork(child);
    for (unsigned i = GM_NUM_SPAN_CLASSES; i-- > 0;) {
        if (child)
            gm_lock_reinit(&centrals[i].lock);
        else
            gm_unlock(&centrals[i].lock);
    }
}
