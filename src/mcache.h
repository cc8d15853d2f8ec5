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

/* The slot stack.  Per span class the cache lists free slots of its own
 * spans, newest on top, and malloc takes the top one: the slot the owner
 * freed last, whose lines are the likeliest to be in cache, as a free
 * list's head would be.  The owner's free pushes the slot it frees; when a
 * class's stack is empty, the slow path lists the free slots of its
 * current span's word in circulation, lowest on top (so a fresh span still
 * fills from its start), and malloc pops them until the stack is empty
 * again.  Empty is rare, so the test is well predicted even when requests
 * jump between classes at random.
 *
 * A listed slot is free in its span's bitmap, which stays the truth: a
 * double free of a listed slot fails the bitmap test as any other does,
 * and taking one clears its bit.  It also stays counted in its span's
 * nlive (mspan.h), so neither the push nor the pop touches the span's
 * count, and a span with a listed slot is never empty: no span leaves the
 * cache while the stack points into it.  The list is never written into
 * user memory.  An entry is the slot's reference (mspan_listed_ref) and its
 * address; a zero reference is none.
 *
 * The stack sits at the top of its block, above a bottom entry that is
 * always zero (entry[0] when it lists SLOT_STACK - 1 slots; fewer for the
 * large classes or with a small GOMALLOC_THREAD_CACHE, mcache.c), so
 * malloc finds "empty" in the entry it loads anyway, and stack_top points
 * at the top entry (at the bottom one when empty): a pop is a load, a test
 * and a decrement of the pointer.
 * Stacks are aligned blocks of their own size, so "full" is the next
 * entry's address being a block's start.  A push onto a full stack first
 * drops its older half (mcache_list_full), so that a long run of frees
 * keeps its newest and the test flips once in 64 pushes, not on every free
 * of a class whose run outgrew the stack.  A dropped slot is only free; its
 * span is counted down (its reference gives the span with no load:
 * mspan_of_listed), and a span that this empties is handled as an emptied
 * span.  Before a class's spans leave the cache, its stack is dropped
 * whole.
 *
 * Measured against the bitmap alone (build/bench, 2 cores, interleaved
 * runs, medians of wall time): thread-local churn 0.312 -> 0.196 s, churn
 * of 8-512 B 0.145 -> 0.130 s, larson with 1 thread 0.118 -> 0.112 s.
 * Where a program frees long runs of one class and allocates them again
 * it loses: each block beyond the stack is listed, dropped and listed
 * again from the bitmap, and the blocks come back in the order they were
 * freed rather than in address order.  bursts of 8 B-1 KiB 0.288 -> 0.347 s
 * (callgrind, bursts rounds=2000: 476.9 -> 536.5 M instructions), the
 * compiler model 0.230 -> 0.238 s.  (Leaving the frees past a full stack
 * to the bitmap instead of dropping half: compiler 0.225 s, bursts 0.395 s,
 * its full test flipping on a third of the frees.)
 *
 * SLOT_STACK entries a class, 16 bytes each: 128, 134 KiB of blocks a
 * cache, of which a thread touches those of the classes it uses (a stack
 * is set up by its class's first listing).  A deeper stack lists, drops
 * and lists again fewer of a run's slots: callgrind, bursts rounds=2000,
 * 535.6 M instructions with 32 entries, 508.2 with 64, 489.3 with 128,
 * 473.2 with 256; the compiler model (nodes=50K modules=4) 209.9 -> 204.7
 * with 128, churn of 8-512 B (iters=600K) 155.2 -> 153.2.  128 takes most
 * of it at half the blocks of 256. */
#define SLOT_STACK 128 /* a power of two */

typedef struct listed_slot {
    uintptr_t ref; /* mspan_listed_ref; 0: none */
    void *p;
} listed_slot;

typedef struct slot_stack {
    listed_slot entry[SLOT_STACK];
} __attribute__((aligned(SLOT_STACK * sizeof(listed_slot)))) slot_stack;

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

    /* The slot stacks (above), the top entry of each, and how many slots
     * each holds at most (set once, with the cache).  Owner only.  The
     * stacks' blocks (GM_NUM_SPAN_CLASSES of them) are not part of the
     * struct: a cache made by proc.c has them right after it, the orphan
     * cache a static array, and the caches that never list (bootstrap,
     * dead) none; mcache_reset keeps the pointer. */
    listed_slot *stack_top[GM_NUM_SPAN_CLASSES] __attribute__((aligned(64)));
    uint8_t stack_capacity[GM_NUM_SPAN_CLASSES];
    slot_stack *stack;

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

extern const listed_slot gm_no_listed_slot GM_INTERNAL;

/* Takes the top slot of spc's stack into *p; false if the stack is empty.
 * (A flag, not a NULL result: the caller then tests the entry it loaded,
 * not the address.) */
static inline bool mcache_pop(mcache *mc, uintptr_t spc, void **p) {
    listed_slot *top = mc->stack_top[spc];
    uintptr_t ref = top->ref;
    if (unlikely(ref == 0))
        return false;
    mc->stack_top[spc] = top - 1;
    gm_count(&mc->nmalloc[spc]);
    mspan_take_listed(ref);
    *p = top->p;
    return true;
}

static inline void *mcache_alloc(mcache *mc, unsigned spc) {
    void *p;
    return likely(mcache_pop(mc, spc, &p)) ? p : mcache_alloc_slow(mc, spc);
}

/* Out of line: pushes a slot onto spc's full stack. */
GM_INTERNAL void mcache_list_full(mcache *mc, uintptr_t spc, uintptr_t ref, const void *p);

/* The owner has freed slot idx (at p) of its span s: on top of the stack. */
static inline void mcache_list_freed(mcache *mc, uintptr_t spc, mspan *s, uintptr_t idx,
                                     const void *p) {
    listed_slot *top = mc->stack_top[spc] + 1;
    uintptr_t ref = mspan_listed_ref(s, idx);
    if (unlikely(((uintptr_t)top & (sizeof(slot_stack) - 1)) == 0)) {
        mcache_list_full(mc, spc, ref, p);
        return;
    }
    top->ref = ref;
    top->p = (void *)p;
    mc->stack_top[spc] = top;
}

/* Out of line: a span of ours that has just become empty. */
GM_INTERNAL void mcache_span_emptied(mcache *mc, mspan *s);
/* Out of line: freeing slot idx (at p) of small span s when the fast path
 * does not apply: a span set aside, a tiny block, another thread's span, or
 * one no thread owns. */
GM_INTERNAL void mcache_free_slot(mspan *s, const void *p, uint32_t idx, const char *caller);

/* The owner's free of p in small span s (fast_owner == mc): a bit test and
 * set, a push onto the slot stack, and no atomic. */
static inline void mcache_free_owned(mcache *mc, mspan *s, const void *p, const char *caller) {
    uintptr_t idx;
    if (unlikely(!mspan_slot_of(s, p, &idx))) {
        mspan_bad_free_jump(s, p, SPAN_BAD_INDEX, caller);
        return;
    }
    if (unlikely(!mspan_free_listed(s, idx))) {
        mspan_bad_free_jump(s, p, (uint32_t)idx, caller);
        return;
    }
    uintptr_t spc = s->spanclass;
    gm_count(&mc->nfree[spc]);
    mcache_list_freed(mc, spc, s, idx, p);
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

/* Out of memory: what mc keeps for its own reuse (listed slots, whose
 * spans may then empty, empty spares, large spans in its page cache) goes
 * back.  False if it kept nothing. */
GM_INTERNAL bool mcache_give_back_reserves(mcache *mc);

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

/* Is slot idx of s on its owner's slot stack, listed while it was still
 * fresh?  (mspan_slot_ever's probe: such a slot was never handed out.) */
GM_INTERNAL bool mcache_listed_fresh(const mspan *s, uint32_t idx);

/* How many slots spc's stack lists at most, and how many it lists now. */
GM_INTERNAL unsigned mcache_stack_capacity(const mcache *mc, unsigned spc);
GM_INTERNAL unsigned mcache_listed(mcache *mc, unsigned spc);

/* Resets mc to an empty cache of the given kind. */
GM_INTERNAL void mcache_reset(mcache *mc, uint8_t kind);

#endif
