/*
 * mspan: a run of pages holding objects of one size class, or one large
 * object, and the rules for the state of its slots (Go keeps these as
 * mspan methods).  See mspan.c for the protocol and its memory ordering.
 *
 * Offered to mcache (the owner's inline fast paths and the out-of-line
 * operations around them), to mcentral (spans no thread owns) and to mheap
 * (struct sizes, the large-span fields).
 */
#ifndef GM_MSPAN_H
#define GM_MSPAN_H

#include "common.h"
#include "sizeclasses.h"

/* Span classes: the size classes, plus one more for the tiny allocator's
 * 16-byte blocks (their spans carry per-block piece masks). */
#define GM_TINY_SPAN_CLASS GM_NUM_SIZE_CLASSES
#define GM_NUM_SPAN_CLASSES (GM_NUM_SIZE_CLASSES + 1)
#define GM_TINY_BLOCK 16

/* Slot bitmaps are words of 64 slots; a span has at most this many. */
#define SPAN_MAX_WORDS (GM_MAX_OBJS_PER_SPAN / 64)

/* SPAN_PARKED: a large span whose object was freed into a thread's page
 * cache (mpagecache.c); its pages stay with it. */
enum { SPAN_DEAD = 0, SPAN_SMALL = 1, SPAN_LARGE = 2, SPAN_PARKED = 3 };

/* Where a small span is; written only by whoever holds it (its owner, or
 * mcentral under its lock). */
enum {
    SPAN_CURRENT = 1,      /* its owner allocates from it */
    SPAN_PARTIAL,          /* owned, on the owner's partial list */
    SPAN_FULL,             /* owned, set aside on the owner's full list */
    SPAN_EMPTY,            /* owned, no live object, kept as the class's spare */
    SPAN_CENTRAL,          /* unowned, on mcentral's list, has free slots */
    SPAN_CENTRAL_FULL,     /* unowned, on mcentral's full list */
    SPAN_ELSEWHERE,        /* in transit (being adopted or released) */
};

/* While a span is its owner's current span, nlive carries this bias, so an
 * owner's free never sees it reach zero: a malloc/free churn of one object
 * stays on the fast paths. */
#define SPAN_CURRENT_BIAS (1 << 20)

struct mcache;

typedef struct mspan {
    /* First line: the holder's slow paths, mheap and mcentral. */
    struct mspan *next, *prev;  /* holder's list (owner, mcentral, mheap) */
    struct mspan *revisit_next; /* link in the owner's revisit stack */
    uint32_t *tiny_alloc;  /* tiny spans: per block, piece starts | piece ends << 16 */
    uint32_t *tiny_freed;  /* tiny spans: per block, freed piece starts | final starts << 16 */
    size_t large_size;     /* large spans: bytes asked for (stats) */
    uint16_t nelems;
    uint8_t state;         /* SPAN_DEAD / SMALL / LARGE / PARKED (mheap) */
    uint8_t where;         /* SPAN_CURRENT ... (holder) */
    uint8_t nopen;         /* owner: words opened for allocation so far */
    uint8_t nwords;        /* slot words (a power of two) */
    uint8_t zeroed;        /* large spans: memory known zero (fresh from the OS) */
    uint8_t guarded;       /* hardened build: a guard page follows the span (mheap) */
    uint32_t npages;
    int32_t nlive_aside;   /* owner: while set aside, 1 + the real nlive minus nlive; else 0 */

    /* Second line: what a free that is not the owner's fast one reads
     * besides the hot line (free_other, the remote free). */
    struct mcache *owner __attribute__((aligned(64))); /* NULL when mcentral holds it */
    uint32_t full;         /* 1: set aside full, owner wants a call (other threads
                            * write it, with the first free into a set-aside span) */
    uint32_t aside_released; /* while set aside: other threads' frees counted when its
                              * pages were last released for an idle owner (written by
                              * whoever holds it off the revisit stack) */
    uint8_t sampled;       /* nonzero: holds blocks sampled by the heap profiler,
                            * and free() must tell mprof.c (such a span has no
                            * fast owner).  Written by mprof under its lock (a
                            * count of live samples), cleared when the span is
                            * set up. */

    /* The hot line: everything the owner's malloc and free touch, the first
     * slot words included, so that for a span of at most 64 slots (every
     * class from 128 bytes on) each of them reads and writes this one line.
     * With a heap larger than the cache, a free's loads are a chain (span
     * map, then span, then slot words), and each link can miss. */
    uintptr_t base __attribute__((aligned(64)));
    struct mcache *fast_owner; /* the owner, for a small class's span that a
                                * cache owns (the owner's frees take the fast
                                * path); NULL when unowned, tiny, large or dead */
    uint64_t divmagic;     /* the class's gm_class_divmagic64 (mspan_slot_of) */
    uint64_t *cur;         /* holder: free word of the word in circulation (cur_w),
                            * the one malloc takes slots from; zero when it is used
                            * up, and then the slow path looks for another */
    uint16_t elemsize;     /* slot size; 0 for large spans */
    uint8_t spanclass;     /* 0: large */
    uint8_t cur_w;         /* holder: the index of the word cur points into */
    int32_t nlive;         /* owner: slots handed out and not yet freed back to it
                            * (while set aside: the owner frees still awaited
                            * before it takes the span back; see nlive_aside) */

    /* Slot words, three per 64-slot word w (SPAN_WORDS_PER_W apart):
     *   free   1 = slot free, in a word open for allocation (holder writes,
     *          others read)
     *   fresh  1 = slot never handed out (holder writes; only the wording
     *          of a bad free's report depends on it)
     *   remote 1 = slot freed by another thread and not yet collected (atomic
     *          OR; holder takes them), or blocked: no free of it is valid
     *          (every slot of a word not yet opened, the bits past the last
     *          slot, and all of an extra triple past the last word, which a
     *          pointer into a span's tail reads; mspan.c)
     * Word 0's three end the hot line: the owner's free reads two of them,
     * and a thread-local workload never writes remote[] at all (a remote
     * free's OR lands in the line the owner works in, as it would in any
     * line holding the word). */
    uint64_t words[];
} mspan;

_Static_assert(offsetof(mspan, base) % 64 == 0 &&
                   offsetof(mspan, words) + 3 * sizeof(uint64_t) <= offsetof(mspan, base) + 64,
               "the fast paths' span fields and the first slot words share one cache line");
_Static_assert(offsetof(mspan, owner) < offsetof(mspan, full) &&
                   offsetof(mspan, sampled) < offsetof(mspan, owner) + 64,
               "mheap clears the struct around owner, then full; a remote free reads one "
               "cold line");
_Static_assert(GM_MAX_SMALL_SIZE <= UINT16_MAX, "elemsize holds every size class");

#define SPAN_WORDS_PER_W 3
static inline uint64_t *span_free_word(const mspan *s, uintptr_t w) {
    return (uint64_t *)&s->words[SPAN_WORDS_PER_W * w];
}
static inline uint64_t *span_fresh_word(const mspan *s, uintptr_t w) {
    return (uint64_t *)&s->words[SPAN_WORDS_PER_W * w + 1];
}
static inline uint64_t *span_remote_word(const mspan *s, uintptr_t w) {
    return (uint64_t *)&s->words[SPAN_WORDS_PER_W * w + 2];
}

/* The span every cache starts with: no free slot, so the allocation fast
 * path falls through to the refill without a NULL test. */
extern mspan gm_empty_span GM_INTERNAL;

/* Bytes of struct (with its slot words) a span of span class spc needs;
 * spc 0 for large spans. */
GM_INTERNAL size_t mspan_struct_size(unsigned spc);

/* Sets up the slot state of a fresh span of class spc (all slots free,
 * no owner); base, npages and state were set by mheap. */
GM_INTERNAL void mspan_init_small(mspan *s, unsigned spc);

/* ---- the owner's fast paths ---- */

/* Owner-only statistics counter: one writer, read by others with relaxed
 * loads.  A single increment instruction is, to a reader, one aligned
 * store of the new value (what a relaxed atomic store would be) and costs a
 * third of a separate load, add and store. */
static inline void gm_count(uint64_t *c) {
#if defined(__x86_64__)
    __asm__("incq %0" : "+m"(*c));
#else
    __atomic_store_n(c, *c + 1, __ATOMIC_RELAXED);
#endif
}

/* Owner-only bitmap update that other threads read: the same argument. */
static inline void gm_and_owned(uint64_t *w, uint64_t bits) {
#if defined(__x86_64__)
    __asm__("andq %1, %0" : "+m"(*w) : "r"(bits));
#else
    __atomic_store_n(w, *w & bits, __ATOMIC_RELAXED);
#endif
}

/* Trailing zeros of x != 0, as a word: the builtin's int result would
 * cost a sign extension at each use as an index.  (A CPU without BMI1 runs
 * tzcnt as bsf, which gives the same count for x != 0.) */
static inline uintptr_t gm_ctz64(uint64_t x) {
#if defined(__x86_64__)
    uint64_t n;
    __asm__("tzcnt %1, %0" : "=r"(n) : "rm"(x) : "cc");
    return n;
#else
    return (uintptr_t)(unsigned)__builtin_ctzll(x);
#endif
}

/* x with bit n mod 64 set.  On x86-64 one bts, which takes the bit number
 * modulo 64 itself: the compiler's version masks n first, in a register of
 * its own. */
static inline uint64_t gm_set_bit(uint64_t x, uintptr_t n) {
#if defined(__x86_64__)
    __asm__("btsq %1, %0" : "+r"(x) : "r"(n) : "cc");
    return x;
#else
    return x | ((uint64_t)1 << (n & 63));
#endif
}

/* x with bit n mod 64 clear (one btr, as gm_set_bit). */
static inline uint64_t gm_clear_bit(uint64_t x, uintptr_t n) {
#if defined(__x86_64__)
    __asm__("btrq %1, %0" : "+r"(x) : "r"(n) : "cc");
    return x;
#else
    return x & ~((uint64_t)1 << (n & 63));
#endif
}

/* Has the word in circulation a free slot?  (When it has none, the slow
 * path looks at the span's other words: mspan_replenish.) */
static inline bool mspan_can_alloc_fast(const mspan *s) { return *s->cur != 0; }

/* Takes the lowest free slot of the word in circulation
 * (mspan_can_alloc_fast must be true). */
static inline void *mspan_alloc_fast(mspan *s) {
    uint64_t *trio = s->cur;
    uint64_t f = trio[0];
    uint64_t rest = f & (f - 1);
    /* Relaxed atomic store: other threads read the free word to check
     * their frees (mspan.c). */
    __atomic_store_n(&trio[0], rest, __ATOMIC_RELAXED);
    /* No longer fresh.  rest also clears the fresh bits past the last slot
     * (never free), which no check reads: those slots are blocked. */
    gm_and_owned(&trio[1], rest);
    s->nlive++;
    uintptr_t idx = (uintptr_t)s->cur_w * 64 + gm_ctz64(f);
    return (void *)(s->base + idx * s->elemsize);
}

/* The free slots of the word in circulation, as bits, the index of that
 * word's first slot, and its fresh bits: what mcache lists on a class's
 * slot stack.  The slots stay free in the bitmap until mspan_take_listed
 * takes them. */
static inline uint64_t mspan_circulating_free(const mspan *s, uintptr_t *first, uint64_t *fresh) {
    *first = (uintptr_t)s->cur_w * 64;
    *fresh = s->cur[1];
    return *s->cur;
}

/* Slots on the owner's slot stack (mcache.h) are "listed": free in the
 * bitmap, and counted in nlive as if handed out, so that taking one back
 * needs neither the span nor its count, only the slot's free word.
 *
 * A listed slot's reference is that word's address << SPAN_LISTED_SHIFT,
 * SPAN_LISTED_FRESH if the slot was never handed out when it was listed,
 * and the slot's index, whose low 6 bits are its bit in the word, so that
 * a bit instruction given the reference needs no mask.  (User-space
 * addresses are below 2^53 on every x86-64 paging mode Linux gives user
 * space by default: 2^47, or 2^56 only for a mapping asked for that high,
 * which the heap never asks for.)
 *
 * A slot's fresh bit is cleared when it is listed, not when it is taken:
 * the pop then writes only the free word.  While a fresh slot is listed and
 * not taken, only its entry says it was never handed out: mspan_slot_ever
 * asks the owner's stack (mspan_set_listed_probe), and a dropped entry
 * gives the bit back (mspan_unlist). */
#define SPAN_LISTED_SHIFT 11
#define SPAN_LISTED_FRESH ((uintptr_t)1 << 10)
#define SPAN_LISTED_INDEX ((uintptr_t)1023)
_Static_assert(GM_MAX_OBJS_PER_SPAN <= SPAN_LISTED_INDEX + 1, "a slot index fits below the flag");
static inline uintptr_t mspan_listed_ref(const mspan *s, uintptr_t idx) {
    return (uintptr_t)span_free_word(s, idx >> 6) << SPAN_LISTED_SHIFT | idx;
}

/* The address of slot idx. */
static inline char *mspan_slot_address(const mspan *s, uintptr_t idx) {
    return (char *)(s->base + idx * s->elemsize);
}

/* The span of a listed slot, from its reference alone (no load). */
static inline mspan *mspan_of_listed(uintptr_t ref) {
    uintptr_t idx = ref & SPAN_LISTED_INDEX;
    uint64_t *word = (uint64_t *)(ref >> SPAN_LISTED_SHIFT);
    return (mspan *)((char *)(word - SPAN_WORDS_PER_W * (idx >> 6)) - offsetof(mspan, words));
}

/* The slots `bits` of the word in circulation are listed: counted in
 * nlive, no longer fresh. */
static inline void mspan_list_circulating(mspan *s, uint64_t bits) {
    gm_and_owned(s->cur + 1, ~bits);
    s->nlive += (int32_t)gm_popcount64(bits);
}

/* A listed slot is dropped from the stack: it is only free now (and fresh
 * again if it was when listed).  *sp is its span; true if the drop leaves
 * that span empty (never the current span: its count is biased). */
static inline bool mspan_unlist(uintptr_t ref, mspan **sp) {
    mspan *s = mspan_of_listed(ref);
    if (ref & SPAN_LISTED_FRESH) {
        uint64_t *trio = (uint64_t *)(ref >> SPAN_LISTED_SHIFT);
        __atomic_store_n(&trio[1], gm_set_bit(trio[1], ref), __ATOMIC_RELAXED);
    }
    *sp = s;
    return --s->nlive == 0;
}

/* Takes a listed slot (its reference): handed out.  One store: the fresh
 * bit went when the slot was listed. */
static inline void mspan_take_listed(uintptr_t ref) {
    uint64_t *trio = (uint64_t *)(ref >> SPAN_LISTED_SHIFT);
    /* Relaxed atomic store: other threads read the free word to check
     * their frees (mspan.c).  (bts/btr take the bit number mod 64.) */
    __atomic_store_n(&trio[0], gm_clear_bit(trio[0], ref), __ATOMIC_RELAXED);
}

/* The owner's stack, asked by mspan_slot_ever: is slot idx of s listed
 * with SPAN_LISTED_FRESH?  Set once by mcache. */
typedef bool (*mspan_listed_probe)(const mspan *s, uint32_t idx);
GM_INTERNAL void mspan_set_listed_probe(mspan_listed_probe probe);

/* Is p the start of a slot of small span s (p within its pages)?  *idx is
 * its slot index either way (of the slot holding p).  One multiplication:
 * the high half of offset * divmagic is the index, and the low half is
 * below divmagic exactly when the offset is a whole number of slots (the
 * size class generator proves both for every offset in a span). */
static inline bool mspan_slot_of(const mspan *s, const void *p, uintptr_t *idx) {
    uint64_t off = (uintptr_t)p - s->base, magic = s->divmagic, low, high;
#if defined(__x86_64__)
    /* The instruction itself: GCC's 128-bit arithmetic saves two registers
     * it then never uses, on the free fast path. */
    __asm__("mulq %3" : "=a"(low), "=d"(high) : "a"(off), "rm"(magic) : "cc");
#else
    unsigned __int128 product = (unsigned __int128)off * magic;
    low = (uint64_t)product;
    high = (uint64_t)(product >> 64);
#endif
    *idx = (uintptr_t)high;
    return likely(low < magic);
}

/* Slot index of p in small span s; SPAN_BAD_INDEX if p is not a slot start. */
#define SPAN_BAD_INDEX UINT32_MAX
static inline uint32_t mspan_index(const mspan *s, const void *p) {
    uintptr_t idx;
    return mspan_slot_of(s, p, &idx) ? (uint32_t)idx : SPAN_BAD_INDEX;
}

/* Reports a bad free of slot idx (or a non-slot address p) and aborts. */
GM_INTERNAL __attribute__((noreturn, cold)) void mspan_bad_free(const mspan *s, const void *p,
                                                                uint32_t idx, const char *caller);

/* The same report, for a fast path to reach by a jump: it does not return,
 * but is not declared noreturn (and lives in mspan.c, so the compiler cannot
 * find out), so the call is a tail call and the fast path keeps no stack
 * frame for it. */
GM_INTERNAL __attribute__((cold, noinline)) void mspan_bad_free_jump(const mspan *s, const void *p,
                                                                   uint32_t idx,
                                                                   const char *caller);

/* The owner frees slot idx onto its slot stack: the slot becomes free in
 * the bitmap and stays counted in nlive (listed).  The same check as
 * mspan_free_owned; false (and nothing changed) if the free is bad. */
static inline bool mspan_free_listed(mspan *s, uintptr_t idx) {
    uint64_t *trio = span_free_word(s, idx >> 6);
    uint64_t f = trio[0];
    uint64_t others = __atomic_load_n(&trio[2], __ATOMIC_RELAXED);
    if (unlikely(((f | others) >> (idx & 63)) & 1))
        return false;
    __atomic_store_n(&trio[0], gm_set_bit(f, idx), __ATOMIC_RELAXED);
    return true;
}

/* What the owner's free of a slot did. */
enum { SPAN_FREED, SPAN_FREED_EMPTY, SPAN_FREE_BAD };

/* The owner frees slot idx: plain stores.  The slot must be live: handed
 * out, not freed by the owner, not freed by another thread (a slot freed
 * remotely and then by the owner would otherwise be handed out again before
 * the collection could see both frees); else nothing changes and the answer
 * is SPAN_FREE_BAD.  SPAN_FREED_EMPTY: the span has just become empty (nlive
 * reached zero: never for the current span).  The caller reports a bad free;
 * returning it keeps the report's call out of the fast path's frame. */
static inline int mspan_free_owned(mspan *s, uintptr_t idx) {
    uintptr_t w = idx >> 6;
    uint64_t *trio = span_free_word(s, w);
    uint64_t f = trio[0];
    /* Free, freed by another thread, or blocked: one test (mspan.c) */
    uint64_t others = __atomic_load_n(&trio[2], __ATOMIC_RELAXED);
    if (unlikely(((f | others) >> (idx & 63)) & 1))
        return SPAN_FREE_BAD;
    /* The slot waits in its word: the word in circulation first, the others
     * when it runs out (mspan_replenish). */
    __atomic_store_n(&trio[0], gm_set_bit(f, idx), __ATOMIC_RELAXED);
    return unlikely(--s->nlive == 0) ? SPAN_FREED_EMPTY : SPAN_FREED;
}

/* ---- lists of spans (a holder's own lists, through next and prev) ---- */

/* The head is written with a relaxed atomic store: mcentral's lists are
 * read without its lock, to skip an empty class. */
static inline void mspan_list_push(mspan **head, mspan *s) {
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    __atomic_store_n(head, s, __ATOMIC_RELAXED);
}

static inline void mspan_list_remove(mspan **head, mspan *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        __atomic_store_n(head, s->next, __ATOMIC_RELAXED);
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

/* ---- the owner's slow operations (mspan.c) ---- */

/* The word in circulation is used up: puts the lowest open word with a
 * free slot (the owner's frees, and other threads' already collected) in
 * circulation, with no atomic and no other work.  False if there is none
 * (cur is left at a used-up word).  Owner frees land in whichever word
 * holds the slot, so this is the common way back to the fast path. */
GM_INTERNAL bool mspan_circulate_own_free(mspan *s);

/* Makes slots available again when the word in circulation is used up:
 * mspan_circulate_own_free, else other threads' frees are collected and
 * looked for the same way, else the next unused word is opened.  False if
 * the span has no free slot at all. */
GM_INTERNAL bool mspan_replenish(mspan *s);

/* Has the span a free slot in its open words, or a word still to open?
 * (Other threads' frees count once collected.) */
GM_INTERNAL bool mspan_has_free_slot(const mspan *s);

/* Collects other threads' frees into the free words (owner or holder). */
GM_INTERNAL void mspan_collect(mspan *s);

/* Sets an exhausted span aside: from now on the first free by another
 * thread pushes it onto the owner's revisit stack, and the owner's own frees
 * leave the fast path once a quarter of its slots are free (nlive counts
 * down the frees awaited, the rest is parked in nlive_aside).  False when a
 * remote free raced in and the owner keeps the span (it has a slot again). */
GM_INTERNAL bool mspan_set_aside(mspan *s);

/* Puts a set-aside span's real live count back. */
static inline void mspan_unpark_nlive(mspan *s) {
    if (s->nlive_aside) {
        s->nlive += s->nlive_aside - 1;
        s->nlive_aside = 0;
    }
}

/* The owner wants its set-aside span back (its own free landed there, or it
 * is exiting).  True if it got it; false if another thread's free is already
 * pushing it onto the revisit stack, where the owner will find it. */
GM_INTERNAL bool mspan_reclaim_set_aside(mspan *s);

/* The next run of pages of small span s, from page *from on, in which no
 * slot is in use: each is free in the holder's words or was never handed
 * out (frees by other threads not yet collected count as in use).  Returns
 * the run's length in pages (0: none) and sets *from to its first page.
 * Only the span's holder may give such pages back, since only it hands
 * their slots out; they read as zero afterwards, which no free slot minds.
 *
 * With others_only, a slot counts as unused only if another thread freed it
 * and the holder has not collected that free yet: what a thread may release
 * in a set-aside span it has taken off its owner's revisit stack.  While the
 * span is off the stack its owner collects nothing from it, and of its
 * slots hands out only those it freed itself (its slot stack).
 */
GM_INTERNAL uint32_t mspan_next_unused_pages(const mspan *s, uint32_t *from, bool others_only);

/* Frees by other threads not yet collected (the bits in remote[]). */
GM_INTERNAL uint32_t mspan_count_remote(const mspan *s);

/* Ownership changes (mcache, mcentral under its lock, fork). */
GM_INTERNAL void mspan_set_owner(mspan *s, struct mcache *owner);
/* Recounts live slots from the bitmaps, collecting other threads' frees,
 * and puts the lowest open word with a free slot in circulation; used when a
 * span changes holder, so nothing depends on a previous holder's counters.
 * Returns the live count. */
GM_INTERNAL int32_t mspan_recount(mspan *s);

/* ---- other threads ---- */

/* Frees slot idx of a span owned by another cache: one atomic OR on the
 * span.  Returns true for the first free into a set-aside span: the caller
 * must then push s onto its owner's revisit stack. */
GM_INTERNAL bool mspan_free_remote(mspan *s, const void *p, uint32_t idx, const char *caller);

/* Is slot idx allocated and not freed?  Exact for the owner and for a slot
 * only the calling thread can free. */
static inline bool mspan_slot_live(const mspan *s, uint32_t idx) {
    uint32_t w = idx >> 6;
    uint64_t bit = (uint64_t)1 << (idx & 63);
    uint64_t f = __atomic_load_n(span_free_word(s, w), __ATOMIC_RELAXED);
    uint64_t r = __atomic_load_n(span_remote_word(s, w), __ATOMIC_RELAXED);
    return ((f | r) & bit) == 0;
}

/* The heap profiler has sampled a block of s that this thread's cache (me)
 * just handed out: frees into s leave the owner's fast path, so that they
 * reach the profiler.  Only the owner writes fast_owner, and me is it if it
 * is anyone's. */
static inline void mspan_leave_fast_path(mspan *s, struct mcache *me) {
    if (__atomic_load_n(&s->fast_owner, __ATOMIC_RELAXED) == me && me != NULL)
        __atomic_store_n(&s->fast_owner, NULL, __ATOMIC_RELAXED);
}

/* The owner (me), freeing off the fast path into its span s: once the
 * profiler's samples in s are all freed, s takes the fast path again.
 * Samples in s are only ever added by its owner's allocations, so none can
 * appear between the check and the store. */
static inline void mspan_rejoin_fast_path(mspan *s, struct mcache *me) {
    if (__atomic_load_n(&s->fast_owner, __ATOMIC_RELAXED) == NULL &&
        s->spanclass != GM_TINY_SPAN_CLASS && __atomic_load_n(&s->sampled, __ATOMIC_ACQUIRE) == 0)
        __atomic_store_n(&s->fast_owner, me, __ATOMIC_RELAXED);
}

/* Was slot idx ever handed out?  (The label of a bad free.) */
GM_INTERNAL bool mspan_slot_ever(const mspan *s, uint32_t idx);

#endif
