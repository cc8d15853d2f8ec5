/*
 * mcentral: per span class, the spans that no thread cache owns.
 *
 * Spans are owned by the thread cache that allocates from them (mcache.c),
 * for as long as they hold objects or the thread lives.  mcentral is where a
 * span goes when its owner gives it up: at thread exit, when the thread
 * stopped using the class, or in a fork child for the threads that did not
 * survive the fork.  A thread that runs out of its own spans takes one of
 * these before it asks mheap for fresh pages.
 *
 * mcentral holds these spans the way an owner does (mspan.c): frees into
 * them by any thread are remote frees, one atomic OR and no lock, and a span
 * with no free slot is set aside with the same handshake, so that the first
 * free into it pushes it onto the class's revisit stack.
 *
 * Lists (class lock):
 *   partial  unowned spans that had a free slot when last counted;
 *   full     unowned spans set aside;
 *   revisit  set-aside spans freed into since (lock-free stack, pushed by
 *            freers with a CAS, taken whole under the lock).
 * A span is counted again (mspan_recount: the remote frees collected, nlive
 * rebuilt) whenever mcentral takes, hands out or reclaims it; an unowned span
 * whose objects are all freed goes back to mheap when mcentral next looks at
 * it: when a cache asks for a span of its class, or on mcentral_reclaim
 * (malloc_trim, the statistics, the background scavenger).  The freers
 * themselves never do: a remote free must not touch a span once its bit is
 * visible, since from then on the holder may free the span.
 *
 * Ownership changes happen under the class lock (mspan_set_owner).
 *
 * Pages inside a span (mcentral_release_unused_pages): the pages that no
 * object occupies go back to the OS, for malloc_trim and for a thread that
 * took an idle owner's revisit stack (then only pages that other threads'
 * frees emptied).  The caller holds the span in either case; no lock.
 *
 * Locking: one lock per span class, never held while calling mheap (fork
 * preparation alone holds it together with the heap lock, taken after).
 * The lists are read without the lock only to skip an empty class.
 */
#include "mcentral.h"

#include "mheap.h"

typedef struct mcentral {
    gm_lock_t lock;
    mspan *partial; /* doubly linked through next/prev */
    mspan *full;
    mspan *revisit; /* through revisit_next; pushed lock-free */
    char pad[64 - sizeof(gm_lock_t) - 3 * sizeof(mspan *)];
} mcentral;

static mcentral centrals[GM_NUM_SPAN_CLASSES] __attribute__((aligned(64)));

/* Files an unowned span whose counts are current; false if it is empty and
 * must go back to mheap (the caller does that after unlocking). */
static bool file_span(mcentral *c, mspan *s, int32_t live) {
    if (live == 0) {
        s->where = SPAN_ELSEWHERE;
        return false;
    }
    if (!mspan_has_free_slot(s) && mspan_set_aside(s)) {
        s->where = SPAN_CENTRAL_FULL;
        mspan_list_push(&c->full, s);
    } else {
        s->where = SPAN_CENTRAL;
        mspan_list_push(&c->partial, s);
    }
    return true;
}

/* Set-aside spans that were freed into move to the partial list; empty ones
 * are chained on *freed.  Class lock held. */
static void drain_revisit(mcentral *c, mspan **freed) {
    if (!__atomic_load_n(&c->revisit, __ATOMIC_RELAXED))
        return;
    mspan *s = __atomic_exchange_n(&c->revisit, NULL, __ATOMIC_ACQUIRE);
    while (s) {
        mspan *next = s->revisit_next;
        if (s->owner == NULL && s->where == SPAN_CENTRAL_FULL) {
            mspan_list_remove(&c->full, s);
            if (!file_span(c, s, mspan_recount(s))) {
                s->next = *freed;
                *freed = s;
            }
        }
        s = next;
    }
}

static void free_chain(mspan *freed) {
    while (freed) {
        mspan *next = freed->next;
        mheap_free_span(freed);
        freed = next;
    }
}

/* How many unowned spans a cache's request looks at before it takes fresh
 * pages instead: bounds the work one refill does. */
#define ADOPT_TRIES 4

mspan *mcentral_cache_span(unsigned spc, struct mcache *owner) {
    mcentral *c = &centrals[spc];
    if (__atomic_load_n(&c->partial, __ATOMIC_RELAXED) ||
        __atomic_load_n(&c->revisit, __ATOMIC_RELAXED)) {
        mspan *freed = NULL, *got = NULL;
        gm_lock(&c->lock);
        drain_revisit(c, &freed);
        for (int tries = 0; tries < ADOPT_TRIES && c->partial; tries++) {
            mspan *s = c->partial;
            mspan_list_remove(&c->partial, s);
            int32_t live = mspan_recount(s);
            if (live > 0 && mspan_has_free_slot(s)) {
                s->where = SPAN_ELSEWHERE;
                mspan_set_owner(s, owner);
                got = s;
                break;
            }
            if (!file_span(c, s, live)) { /* empty: back to mheap */
                s->next = freed;
                freed = s;
            }
        }
        gm_unlock(&c->lock);
        free_chain(freed);
        if (got)
            return got;
    }
    mheap_scavenge_tick();
    mspan *s = mheap_alloc_small(spc);
    if (!s)
        return NULL;
    mspan_init_small(s, spc);
    s->where = SPAN_ELSEWHERE;
    mspan_set_owner(s, owner);
    return s;
}

void mcentral_abandon(mspan *s) {
    mcentral *c = &centrals[s->spanclass];
    gm_lock(&c->lock);
    mspan_set_owner(s, NULL);
    bool kept = file_span(c, s, mspan_recount(s));
    gm_unlock(&c->lock);
    if (!kept)
        mheap_free_span(s);
}

void mcentral_release_empty(mspan *s) {
    mcentral *c = &centrals[s->spanclass];
    gm_lock(&c->lock); /* ownership changes only under the class lock */
    mspan_set_owner(s, NULL);
    s->where = SPAN_ELSEWHERE;
    gm_unlock(&c->lock);
    mheap_free_span(s);
}

void mcentral_revisit_push(mspan *s) {
    mcentral *c = &centrals[s->spanclass];
    mspan *head = __atomic_load_n(&c->revisit, __ATOMIC_RELAXED);
    do
        s->revisit_next = head;
    while (!__atomic_compare_exchange_n(&c->revisit, &head, s, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
}

size_t mcentral_reclaim(void) {
    size_t bytes = 0;
    for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES; spc++) {
        mcentral *c = &centrals[spc];
        if (!__atomic_load_n(&c->partial, __ATOMIC_RELAXED) &&
            !__atomic_load_n(&c->revisit, __ATOMIC_RELAXED))
            continue;
        mspan *freed = NULL;
        gm_lock(&c->lock);
        drain_revisit(c, &freed);
        /* Re-filing pushes onto the list being walked: detach it first.
         * The head is stored atomically: it is read without the lock. */
        mspan *s = c->partial;
        __atomic_store_n(&c->partial, NULL, __ATOMIC_RELAXED);
        while (s) {
            mspan *next = s->next;
            s->next = s->prev = NULL;
            if (!file_span(c, s, mspan_recount(s))) {
                s->next = freed;
                freed = s;
            }
            s = next;
        }
        gm_unlock(&c->lock);
        for (mspan *f = freed; f; f = f->next)
            bytes += (size_t)f->npages << GM_PAGE_SHIFT;
        free_chain(freed);
    }
    return bytes;
}

size_t mcentral_release_unused_pages(mspan *s, bool others_only) {
    size_t bytes = 0;
    /* A span of one page of its owner's goes back whole when it empties;
     * an idle owner's never does. */
    if ((s->npages < 2 && !others_only) || s->spanclass == GM_TINY_SPAN_CLASS)
        return 0;
    for (uint32_t pg = 0, n; (n = mspan_next_unused_pages(s, &pg, others_only)) != 0; pg += n)
        bytes += mheap_release_span_pages(s->base + ((uintptr_t)pg << GM_PAGE_SHIFT),
                                          (size_t)n << GM_PAGE_SHIFT);
    return bytes;
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

struct rehome_arg {
    bool (*keep)(const mspan *s);
};

static void rehome(mspan *s, void *arg) {
    if (((struct rehome_arg *)arg)->keep(s))
        return;
    mcentral *c = &centrals[s->spanclass];
    mspan_set_owner(s, NULL);
    s->next = s->prev = NULL;
    if (!file_span(c, s, mspan_recount(s)))
        mheap_free_span(s);
}

void mcentral_rehome_after_fork(bool (*keep)(const mspan *s)) {
    /* The lists may hold spans that dead threads were moving: rebuild them
     * from every span in the heap. */
    for (unsigned i = 0; i < GM_NUM_SPAN_CLASSES; i++)
        centrals[i].partial = centrals[i].full = centrals[i].revisit = NULL;
    struct rehome_arg arg = {keep};
    mheap_for_each_small_span(rehome, &arg);
}
