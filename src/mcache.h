/*
 * mcache: the per-thread cache.  It owns spans: per span class a current
 * span to allocate from, a list of partial spans, a list of spans set aside
 * full, and one empty spare.  The owner's malloc and free take no lock and
 * make no atomic read-modify-write.
 *
 * Offered to the public API (malloc.c) and the tiny allocator: the inline
 * fast paths below and the out-of-line refills and frees behind them; to
 * proc.c: giving every span up (thread exit, fork).
 */
#ifndef GM_MCACHE_H
#define GM_MCACHE_H

#include "mcentral.h"
#include "mpagecache.h"

/* Per span class, the spans a cache owns besides its current one.  Written
 * by the owning thread only. */
typedef struct mclass {
    mspan *partial;         /* free slots, not current (doubly linked) */
    mspan *full;            /* set aside full (doubly linked) */
    mspan *empty;           /* spares with no live object (linked by next) */
    uint32_t nempty;
    uint64_t last_refill;   /* the cache's refill count when this class last refilled */
} mclass;

/* The reuse ring.  For the classes above GM_SMALL_SIZE_MAX (1 KiB) the
 * owner's malloc first takes back the slot it freed most recently, as a
 * free list would: a block that large spans many cache lines, and the one
 * just freed is the one still in cache (its header line at least).  Below
 * 1 KiB the bitmap's lowest-first order wins instead: small objects share
 * lines, and packing them keeps those lines dense.  Measured on 2 cores,
 * gomalloc before -> with a ring for every class -> with a ring above 1 KiB:
 * thread-local churn of 4 B-32 KiB, 2 threads, 0.66 -> 0.49 -> 0.52 s;
 * bursts of 8 B-1 KiB 0.49 -> 0.60 -> 0.48 s.
 *
 * The ring keeps the last REUSE_RING owner frees of a class as "span
 * address | slot index" (span structs are 64-byte aligned and these classes
 * have fewer than 64 slots per span).  An entry is only a hint: the freed
 * slot stays free in the span's bitmap, where a double free still finds it,
 * and the ring is never written into user memory.  Taking an entry back
 * checks that the span is still this cache's, of this class, not a spare,
 * and the slot still free (the bitmap path may have handed it out since);
 * a stale entry is dropped.  Span structs stay mapped for the life of the
 * process, so reading a stale one is safe, and one that was recycled for
 * this cache passes the checks only as a slot this cache may hand out. */
#define REUSE_RING 8               /* power of two */
#define REUSE_FIRST_CLASS GM_FIRST_CLASS_ABOVE_SMALL_SIZE_MAX
#define REUSE_INDEX_MASK ((uintptr_t)63)
_Static_assert(GM_MAX_OBJS_ABOVE_SMALL_SIZE_MAX <= 64, "reuse entries pack the slot index in 6 bits");
_Static_assert(_Alignof(mspan) >= 64, "reuse entries pack the slot index below the span address");

#define REUSE_CLASSES (GM_NUM_SIZE_CLASSES - REUSE_FIRST_CLASS)

/* A class's ring: a stack that overwrites its oldest entry when full.
 * Entries are "span address | slot index"; 0 is none (taking an entry
 * zeroes it). */
typedef struct reuse_ring {
    uintptr_t slot[REUSE_RING];
} reuse_ring;

typedef struct mcache {
    mspan *alloc[GM_NUM_SPAN_CLASSES]; /* current spans */

    /* The tiny block pieces are cut from: its address, the next free offset
     * (GM_TINY_BLOCK when there is no block), and its metadata words. */
    uintptr_t tiny;
    uint32_t tiny_off;
    uint32_t tiny_word;     /* our copy of *tiny_alloc: piece starts | piece ends << 16 */
    uint32_t *tiny_alloc;
    uint32_t *tiny_freed;
    uintptr_t tiny_taken_back; /* the last piece taken back: freeing it again is a double free */

    /* Counters, written by the owning thread only (gm_count). */
    uint64_t nmalloc[GM_NUM_SPAN_CLASSES];
    uint64_t nfree[GM_NUM_SPAN_CLASSES];
    uint64_t tiny_allocs, tiny_frees;
    uint64_t refills;
    uint64_t remote_frees;  /* frees into spans another holder owns */

    mclass classes[GM_NUM_SPAN_CLASSES];
    size_t empty_bytes;     /* bytes in the empty spares */

    pagecache pcache;       /* large spans this thread freed (mpagecache.c) */

    /* The reuse rings of the classes from REUSE_FIRST_CLASS on, and the
     * newest entry of each.  Owner only. */
    reuse_ring reuse[REUSE_CLASSES] __attribute__((aligned(64)));
    uint8_t reuse_top[REUSE_CLASSES];

    /* Spans set aside full that another thread has since freed into, pushed
     * by that thread (a lock-free stack through mspan.revisit_next). */
    mspan *revisit __attribute__((aligned(64)));

    struct mcache *next_all, *prev_all; /* registry of live caches (proc.c) */
    uint64_t idle_mark;                 /* refills when proc.c last looked (registry lock) */
    uint8_t kind;                       /* MCACHE_* */
} mcache;

/* A thread's cache pointer is one of: its own cache, the bootstrap cache (no
 * cache yet), or the dead cache (the thread is exiting). */
enum { MCACHE_OWN = 0, MCACHE_BOOTSTRAP = 1, MCACHE_DEAD = 2 };

/* This thread's cache is gm_tls.mcache (common.h).  It starts at a shared
 * empty cache whose spans are all the empty span, so the first allocation
 * falls into the slow path, which creates it. */

GM_INTERNAL void *mcache_alloc_slow(mcache *mc, unsigned spc);

static inline void *mcache_alloc(mcache *mc, unsigned spc) {
    mspan *s = mc->alloc[spc];
    if (unlikely(!mspan_can_alloc_fast(s)))
        return mcache_alloc_slow(mc, spc);
    gm_count(&mc->nmalloc[spc]);
    return mspan_alloc_fast(s);
}

/* malloc of a class from REUSE_FIRST_CLASS on: the slot this cache freed
 * most recently, if it is still free; NULL if there is none (the caller
 * then takes the current span's). */
static inline void *mcache_reuse_take(mcache *mc, unsigned spc) {
    unsigned c = spc - REUSE_FIRST_CLASS, top = mc->reuse_top[c];
    uintptr_t e = mc->reuse[c].slot[top];
    if (e == 0)
        return NULL;
    mc->reuse[c].slot[top] = 0;
    mc->reuse_top[c] = (uint8_t)((top - 1) & (REUSE_RING - 1));
    mspan *s = (mspan *)(e & ~REUSE_INDEX_MASK);
    /* fast_owner first: only once the span is known to be ours are its
     * holder fields ours to read */
    if (__atomic_load_n(&s->fast_owner, __ATOMIC_RELAXED) != mc || s->spanclass != spc ||
        s->where == SPAN_EMPTY)
        return NULL;
    void *p = mspan_take_slot(s, (uint32_t)(e & REUSE_INDEX_MASK));
    if (likely(p != NULL))
        gm_count(&mc->nmalloc[spc]);
    return p;
}

/* Out of line: records the owner's free of slot idx of s (a class from
 * REUSE_FIRST_CLASS on) in the class's reuse ring.  Out of line, so that
 * the free fast path of the smaller classes keeps no registers for it. */
GM_INTERNAL void mcache_reuse_push(mcache *mc, mspan *s, uintptr_t idx);

/* Out of line: a span of ours that has just become empty. */
GM_INTERNAL void mcache_span_emptied(mcache *mc, mspan *s);
/* Out of line: freeing slot idx (at p) of small span s when the fast path
 * does not apply: a span set aside, a tiny block, another thread's span, or
 * one no thread owns. */
GM_INTERNAL void mcache_free_slot(mspan *s, const void *p, uint32_t idx, const char *caller);

/* The owner's free of p in small span s (fast_owner == mc): a bit test and
 * set, and no atomic. */
static inline void mcache_free_owned(mcache *mc, mspan *s, const void *p, const char *caller) {
    uintptr_t idx;
    if (unlikely(!mspan_slot_of(s, p, &idx))) {
        mspan_bad_free_jump(s, p, SPAN_BAD_INDEX, caller);
        return;
    }
    /* The count is taken after the bitmap's stores (before them, its store
     * made the compiler load the free word again), once in each arm: with
     * one count after a shared "bad" test the compiler lays the path out
     * worse (113 instructions per 16 B pair against 110). */
    int freed = mspan_free_owned(s, idx);
    if (likely(freed == SPAN_FREED)) {
        uintptr_t spc = s->spanclass;
        gm_count(&mc->nfree[spc]);
        if (spc >= REUSE_FIRST_CLASS) /* the class just loaded; never tiny (no fast owner) */
            mcache_reuse_push(mc, s, idx);
    } else if (freed == SPAN_FREED_EMPTY) {
        gm_count(&mc->nfree[s->spanclass]);
        mcache_span_emptied(mc, s);
    } else {
        mspan_bad_free_jump(s, p, (uint32_t)idx, caller);
    }
}

/* Frees p, a pointer into small span s of another holder, or set aside,
 * or tiny (the block's free). */
static inline void mcache_free_small(mspan *s, const void *p, const char *caller) {
    uint32_t idx = mspan_index(s, p);
    if (unlikely(idx == SPAN_BAD_INDEX))
        mspan_bad_free(s, p, idx, caller);
    mcache_free_slot(s, p, idx, caller);
}

/* Another thread's view of cache mc (one that seems idle, or any, for
 * malloc_trim): the pages of the set-aside spans on its revisit stack that
 * other threads' frees have emptied go back to the OS.  The spans stay mc's
 * (only its thread may move them); taking the stack briefly keeps the
 * owner's refills off them.  Returns the bytes released. */
GM_INTERNAL size_t mcache_release_others_freed_pages(mcache *mc);

/* Gives every span of mc up (thread exit): to mcentral, or to mheap. */
GM_INTERNAL void mcache_release_all(mcache *mc);
/* malloc_trim: this thread's empty spares go back, so do the pages of its
 * spans in which no slot is in use, mcentral's unowned spans are reclaimed,
 * and every other thread's set-aside spans give back the pages that only
 * freed objects occupy (mcache_release_others_freed_pages).  Returns the
 * bytes of span pages released. */
GM_INTERNAL size_t mcache_trim(void);
/* fork child: the surviving thread's cache (of any kind) finds the spans
 * that a dead thread was pushing to it, and the large spans dead threads
 * kept go back to mheap. */
GM_INTERNAL void mcache_after_fork(mcache *mc);

/* Resets mc to an empty cache of the given kind. */
GM_INTERNAL void mcache_reset(mcache *mc, uint8_t kind);

#endif
