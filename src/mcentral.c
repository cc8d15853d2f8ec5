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
 * Lists (class lock):
 *   partial  unowned spans with at least one free slot (SPAN_CENTRAL);
 *   full     unowned spans with none (SPAN_CENTRAL_FULL).
 * While a span is unowned, mcentral is its holder: frees into it take the
 * class lock and update the bitmaps directly (mcentral_free), so an unowned
 * span that becomes empty goes straight back to mheap.  A free that read the
 * old owner just before the span was given up lands in remote[] instead;
 * mspan_recount, run whenever mcentral takes, moves or hands out a span, and
 * mcentral_reclaim (trim, scavenger) collect those.
 *
 * Ownership changes happen under the class lock (mspan_set_owner), so a
 * free that saw no owner and then took the lock sees whether the span is
 * still unowned.
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
    char pad[64 - sizeof(gm_lock_t) - 2 * sizeof(mspan *)];
} mcentral;

static mcentral centrals[GM_NUM_SPAN_CLASSES] __attribute__((aligned(64)));

static void list_push(mspan **head, mspan *s) {
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    __atomic_store_n(head, s, __ATOMIC_RELAXED);
}

static void list_remove(mspan **head, mspan *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        __atomic_store_n(head, s->next, __ATOMIC_RELAXED);
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

static bool has_free_slot(const mspan *s) {
    return s->summary != 0 || s->nopen < ((uint32_t)s->nelems + 63) / 64;
}

/* Files an unowned span whose counts are current; false if it is empty and
 * must go back to mheap (the caller does that after unlocking). */
static bool file_span(mcentral *c, mspan *s, int32_t live) {
    if (live == 0) {
        s->where = SPAN_ELSEWHERE;
        return false;
    }
    if (has_free_slot(s)) {
        s->where = SPAN_CENTRAL;
        list_push(&c->partial, s);
    } else {
        s->where = SPAN_CENTRAL_FULL;
        list_push(&c->full, s);
    }
    return true;
}

mspan *mcentral_cache_span(unsigned spc, struct mcache *owner) {
    mcentral *c = &centrals[spc];
    if (__atomic_load_n(&c->partial, __ATOMIC_RELAXED)) {
        gm_lock(&c->lock);
        mspan *s = c->partial;
        if (s) {
            list_remove(&c->partial, s);
            mspan_recount(s);
            s->where = SPAN_ELSEWHERE;
            mspan_set_owner(s, owner);
            gm_unlock(&c->lock);
            return s;
        }
        gm_unlock(&c->lock);
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

bool mcentral_free(mspan *s, const void *p, uint32_t idx, const char *caller) {
    mcentral *c = &centrals[s->spanclass];
    gm_lock(&c->lock);
    if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) != NULL) {
        gm_unlock(&c->lock);
        return false;
    }
    if (s->where != SPAN_CENTRAL && s->where != SPAN_CENTRAL_FULL) {
        gm_unlock(&c->lock); /* not a live span of ours: a stale pointer */
        mspan_bad_free(s, p, idx, caller);
    }
    mspan_collect(s);
    bool empty = mspan_free_owned(s, p, idx, caller);
    if (s->where == SPAN_CENTRAL_FULL) {
        list_remove(&c->full, s);
        s->where = SPAN_CENTRAL;
        list_push(&c->partial, s);
    }
    if (empty) {
        list_remove(&c->partial, s);
        s->where = SPAN_ELSEWHERE;
    }
    gm_unlock(&c->lock);
    if (empty)
        mheap_free_span(s);
    return true;
}

/* Re-files every span of one list; the empty ones are chained on *freed. */
static void reclaim_list(mcentral *c, mspan **head, mspan **freed) {
    mspan *s = *head;
    while (s) {
        mspan *next = s->next;
        list_remove(head, s);
        if (!file_span(c, s, mspan_recount(s))) {
            s->next = *freed;
            *freed = s;
        }
        s = next;
    }
}

size_t mcentral_reclaim(void) {
    size_t bytes = 0;
    for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES; spc++) {
        mcentral *c = &centrals[spc];
        if (!__atomic_load_n(&c->partial, __ATOMIC_RELAXED) &&
            !__atomic_load_n(&c->full, __ATOMIC_RELAXED))
            continue;
        mspan *freed = NULL;
        gm_lock(&c->lock);
        /* Re-filing pushes onto the lists being walked: detach them first. */
        mspan *partial = c->partial, *full = c->full;
        c->partial = c->full = NULL;
        reclaim_list(c, &partial, &freed);
        reclaim_list(c, &full, &freed);
        gm_unlock(&c->lock);
        while (freed) {
            mspan *next = freed->next;
            bytes += (size_t)freed->npages << GM_PAGE_SHIFT;
            mheap_free_span(freed);
            freed = next;
        }
    }
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
        centrals[i].partial = centrals[i].full = NULL;
    struct rehome_arg arg = {keep};
    mheap_for_each_small_span(rehome, &arg);
}
