/*
 * mspan: the state of a small span's slots, and who may change it.
 *
 * C frees explicitly, so where Go finds free slots by sweeping mark bits,
 * a gomalloc span keeps them in bitmaps outside user memory:
 *
 *   free[w]    1 = slot free (in a word open for allocation).  Written by
 *              the span's holder only (its owning cache, or mcentral under
 *              its lock when no cache owns it), with relaxed atomic stores;
 *              read by anyone checking a free.
 *   fresh[w]   1 = slot never handed out: a bad free of such a slot is an
 *              invalid pointer, not a double free.  Holder only, like
 *              free[]; read only to word a report.  Cleared when the slot
 *              is listed on the owner's slot stack (mspan.h), whose entry
 *              then carries it.
 *   remote[w]  slots freed by threads that do not hold the span, set with
 *              one atomic OR each and taken by the holder when it collects
 *              (Go's sweep, done by the owner when it needs slots).  Also
 *              blocked slots, set from the start and never taken: all 64 of
 *              a word not yet opened, the bits past the last slot in the
 *              last word, and the whole extra triple past the last word.
 *
 * So a free of slot i is valid exactly when bit i is clear in both free[w]
 * and remote[w]: one test catches a double free, a slot freed by another
 * thread and not yet collected, a slot never handed out (free, or blocked
 * in a word not yet opened) and a slot past the span's last.
 *
 * Why bitmaps rather than free lists: a free is a bit test and a set, a
 * double free or a never-allocated slot shows in the same test, and a
 * use-after-free write into user memory cannot redirect an allocation:
 * nothing allocator-owned lives there.  The order in which the owner hands
 * slots out is mcache's slot stack (mcache.h): the slots it freed, newest
 * first, and when there are none the free slots of the word in circulation
 * (cur: one word at a time; when it is used up the slow path puts the
 * lowest open word with a free slot in circulation), lowest first.  That
 * keeps a span's live objects toward its start.  Words are opened one at a
 * time (nopen), so a span fills from its start like Go's freeindex, and a
 * span that never gets busy never touches its far pages.
 *
 * Counting.  nlive (holder only) counts slots handed out minus slots freed
 * back to the holder or collected from remote[]; slots on the owner's slot
 * stack ("listed": free in the bitmap) count as handed out, so neither the
 * owner's free that lists a slot nor the malloc that takes it back touches
 * the count, and a span with a listed slot is never empty.  A listed slot
 * counts down when mcache drops it from the stack.  Slots freed remotely and
 * not yet collected still count as live: a span is known empty only once its
 * holder has collected, which it does whenever it runs out of slots, and
 * mcentral does for the spans it holds.  mspan_recount rebuilds nlive from
 * the bitmaps (live = ~free & ~remote in the open words) and picks the word
 * in circulation, so a change of holder never trusts the previous holder's
 * counters (a fork child's dead threads).
 *
 * Setting aside.  When the owner's current span has no slot left, the owner
 * sets it aside (off the fast path, on its full list) and wants to hear about
 * the first remote free into it.  The handshake, with sequentially
 * consistent operations on both sides (a Dekker pair):
 *   owner:  full = 1;            then read every remote[w]
 *   freer:  remote[w] |= bit;    then read full
 * At least one side sees the other's write.  If the owner sees a remote bit
 * it tries to take the span back (CAS full 1 -> 0).  If a freer sees full ==
 * 1 it tries the same CAS; whichever CAS wins decides: the owner keeps the
 * span, or the freer pushes it onto the owner's revisit stack.  Exactly one
 * side acts, and no span is stranded.  The owner itself clears `full` by the
 * same CAS once enough of its own frees have landed in a set-aside span:
 * those frees stay on the fast path (fast_owner is unchanged); nlive was
 * parked to count down the frees awaited (a quarter of the slots), so the
 * last of them sees "empty" and calls the owner's slow path, which puts the
 * real count back (nlive_aside) and moves the span.
 *
 * Ordering of slot reuse.  A freer's OR is a release (sequentially
 * consistent), the holder's exchange an acquire: everything the freer did
 * with the object happens before the slot is handed out again.  Within one
 * thread, the owner's plain and relaxed accesses are ordered by program
 * order; a slot handed to another thread travels with that thread's own
 * synchronisation, which also carries the free bits it needs to check its
 * free, and the unblocking of the slot's word when the owner opened it (a
 * store the owner made before handing the slot out, so the freer's OR, a
 * read-modify-write, comes after it in remote[w]'s order).  The checks
 * other threads make (slot live, not freed) read the holder's words with
 * relaxed loads: exact for a slot that only the checking
 * thread can free, and racy, as any double-free detection must be, for
 * slots freed twice at once.
 */
#include "mspan.h"

#include <string.h>

/* The word the empty span has in circulation: no free slot, ever (nothing
 * writes it: malloc's fast path takes a slot only from a nonzero word). */
static const uint64_t no_free_slot;
mspan gm_empty_span = { .cur = (uint64_t *)&no_free_slot };

static unsigned words_for(unsigned nelems) {
    unsigned w = (nelems + 63) / 64;
    unsigned p = 1;
    while (p < w)
        p <<= 1;
    return p; /* power of two: few distinct struct sizes to recycle */
}

static unsigned class_of_span(unsigned spc) {
    return spc == GM_TINY_SPAN_CLASS ? gm_size_to_class(GM_TINY_BLOCK) : spc;
}

/* The slot words: a triple per 64-slot word and the zero triple, in whole
 * lines (the tiny words follow). */
static size_t words_bytes(unsigned nwords) {
    return gm_align_up((nwords + 1) * SPAN_WORDS_PER_W * sizeof(uint64_t), 64);
}

size_t mspan_struct_size(unsigned spc) {
    if (spc == 0)
        return sizeof(mspan);
    unsigned nwords = words_for(gm_class_nobjs[class_of_span(spc)]);
    size_t size = sizeof(mspan) + words_bytes(nwords);
    if (spc == GM_TINY_SPAN_CLASS)
        size += 2 * (GM_PAGE_SIZE / GM_TINY_BLOCK) * sizeof(uint32_t);
    return size;
}

void mspan_init_small(mspan *s, unsigned spc) {
    unsigned sc = class_of_span(spc);
    unsigned nwords = words_for(gm_class_nobjs[sc]);
    s->elemsize = gm_class_size[sc];
    s->divmagic = gm_class_divmagic64[sc];
    s->nelems = gm_class_nobjs[sc];
    s->spanclass = (uint8_t)spc;
    s->nwords = (uint8_t)nwords;
    s->nopen = 0;
    s->nlive = 0;
    /* Word 0's free word is zero (the struct was cleared): the first malloc
     * takes the slow path, which opens it. */
    s->cur = span_free_word(s, 0);
    s->cur_w = 0;
    /* Every word starts unopened: no slot free, every slot fresh and
     * blocked; so does the extra triple.  (The struct is not yet in the
     * span map: no other thread reads these words.) */
    for (unsigned w = 0; w <= nwords; w++) {
        *span_fresh_word(s, w) = ~(uint64_t)0;
        *span_remote_word(s, w) = ~(uint64_t)0;
    }
    if (spc == GM_TINY_SPAN_CLASS) {
        s->tiny_alloc = (uint32_t *)((char *)s->words + words_bytes(nwords));
        s->tiny_freed = s->tiny_alloc + GM_PAGE_SIZE / GM_TINY_BLOCK;
    }
}

/* ---- bad frees ---- */

static mspan_listed_probe listed_fresh;

void mspan_set_listed_probe(mspan_listed_probe probe) {
    __atomic_store_n(&listed_fresh, probe, __ATOMIC_RELEASE);
}

bool mspan_slot_ever(const mspan *s, uint32_t idx) {
    if ((__atomic_load_n(span_fresh_word(s, idx >> 6), __ATOMIC_RELAXED) >> (idx & 63)) & 1)
        return false;
    mspan_listed_probe probe = __atomic_load_n(&listed_fresh, __ATOMIC_ACQUIRE);
    return !(probe && probe(s, idx));
}

void mspan_bad_free(const mspan *s, const void *p, uint32_t idx, const char *caller) {
    if (idx == SPAN_BAD_INDEX || idx >= s->nelems)
        gm_bad_pointer_hint(caller, p, false, s->elemsize, idx == SPAN_BAD_INDEX);
    bool handed_out = mspan_slot_ever(s, idx);
    gm_bad_pointer_hint(caller, (void *)(s->base + (uintptr_t)idx * s->elemsize), handed_out,
                        s->elemsize, false);
}

void mspan_bad_free_jump(const mspan *s, const void *p, uint32_t idx, const char *caller) {
    mspan_bad_free(s, p, idx, caller);
}

/* ---- the holder's operations ---- */

static uint32_t used_words(const mspan *s) { return ((uint32_t)s->nelems + 63) / 64; }

/* The bits of open word w that stay blocked: those past the last slot. */
static uint64_t blocked_bits(const mspan *s, uint32_t w) {
    uint32_t tail = s->nelems & 63;
    return w == used_words(s) - 1 && tail ? ~(uint64_t)0 << tail : 0;
}

/* Takes the remote frees of open word w (acquire: the freers' writes to
 * the slots come before they are handed out again), leaving the blocked
 * bits. */
static uint64_t take_remote(mspan *s, uint32_t w) {
    uint64_t blocked = blocked_bits(s, w);
    return __atomic_exchange_n(span_remote_word(s, w), blocked, __ATOMIC_ACQUIRE) & ~blocked;
}

/* Has open word w remote frees to collect? */
static bool has_remote(const mspan *s, uint32_t w, int order) {
    return __atomic_load_n(span_remote_word(s, w), order) != blocked_bits(s, w);
}

void mspan_collect(mspan *s) {
    for (uint32_t w = 0; w < s->nopen; w++) {
        if (!has_remote(s, w, __ATOMIC_RELAXED))
            continue;
        uint64_t r = take_remote(s, w);
        uint64_t f = *span_free_word(s, w);
        if (unlikely(f & r)) {
            /* Freed by its holder and by another thread: a double free that
             * raced past both checks.  Reported here, where it shows. */
            uint32_t idx = w * 64 + (uint32_t)__builtin_ctzll(f & r);
            gm_bad_pointer("free", (void *)(s->base + (uintptr_t)idx * s->elemsize), true);
        }
        __atomic_store_n(span_free_word(s, w), f | r, __ATOMIC_RELAXED);
        s->nlive -= (int32_t)gm_popcount64(r);
    }
}

static void circulate(mspan *s, uint32_t w) {
    s->cur = span_free_word(s, w);
    s->cur_w = (uint8_t)w;
}

/* The lowest open word with a free slot, or nopen if there is none. */
static uint32_t lowest_free_word(const mspan *s) {
    uint32_t w = 0;
    while (w < s->nopen && !*span_free_word(s, w))
        w++;
    return w;
}

bool mspan_circulate_own_free(mspan *s) {
    uint32_t w = lowest_free_word(s);
    if (w == s->nopen)
        return false;
    circulate(s, w);
    return true;
}

bool mspan_has_free_slot(const mspan *s) {
    return lowest_free_word(s) < s->nopen || s->nopen < used_words(s);
}

bool mspan_replenish(mspan *s) {
    /* The owner's own frees first, with no atomic; other threads' frees are
     * collected only when no open word holds one of those. */
    if (mspan_circulate_own_free(s))
        return true;
    mspan_collect(s);
    if (mspan_circulate_own_free(s))
        return true;
    uint32_t n = used_words(s);
    if (s->nopen >= n)
        return false;
    uint32_t w = s->nopen++;
    uint64_t blocked = blocked_bits(s, w);
    /* Unblock before any slot of w is handed out (see "Ordering"). */
    __atomic_store_n(span_remote_word(s, w), blocked, __ATOMIC_RELAXED);
    __atomic_store_n(span_free_word(s, w), ~blocked, __ATOMIC_RELAXED);
    circulate(s, w);
    return true;
}

static struct mcache *fast_owner_for(const mspan *s, struct mcache *owner) {
    if (s->spanclass == GM_TINY_SPAN_CLASS || __atomic_load_n(&s->sampled, __ATOMIC_RELAXED))
        return NULL; /* tiny pieces, and profiler samples, free off the fast path */
    return owner;
}

void mspan_set_owner(mspan *s, struct mcache *owner) {
    /* Sequentially consistent: a remote freer that still sees the old owner
     * after its OR knows the new holder's count will include its free. */
    __atomic_store_n(&s->owner, owner, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->fast_owner, fast_owner_for(s, owner), __ATOMIC_RELAXED);
    __atomic_store_n(&s->full, 0, __ATOMIC_RELAXED);
}

bool mspan_set_aside(mspan *s) {
    __atomic_store_n(&s->full, 1, __ATOMIC_SEQ_CST);
    for (uint32_t w = 0; w < s->nopen; w++) {
        if (has_remote(s, w, __ATOMIC_SEQ_CST)) {
            if (mspan_reclaim_set_aside(s))
                return false;
            break; /* the freer that won pushes it for us */
        }
    }
    /* The owner takes the span back once a quarter of its slots are free
     * again (at least one): a refill from it then yields a run of
     * allocations, not one slot per trip through the slow path. */
    int32_t wait = s->nelems / 4 ? s->nelems / 4 : 1;
    if (wait > s->nlive)
        wait = s->nlive;
    s->nlive_aside = s->nlive - wait + 1;
    s->nlive = wait;
    s->aside_released = 0;
    return true;
}

bool mspan_reclaim_set_aside(mspan *s) {
    uint32_t one = 1;
    return __atomic_compare_exchange_n(&s->full, &one, 0, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_RELAXED);
}

int32_t mspan_recount(mspan *s) {
    int32_t live = 0;
    for (uint32_t w = 0; w < s->nopen; w++) { /* the others hold no live slot */
        uint64_t r = take_remote(s, w);
        uint64_t f = *span_free_word(s, w);
        if (unlikely(f & r)) {
            uint32_t idx = w * 64 + (uint32_t)__builtin_ctzll(f & r);
            gm_bad_pointer("free", (void *)(s->base + (uintptr_t)idx * s->elemsize), true);
        }
        f |= r;
        __atomic_store_n(span_free_word(s, w), f, __ATOMIC_RELAXED);
        live += (int32_t)gm_popcount64(~f & ~blocked_bits(s, w));
    }
    if (!mspan_circulate_own_free(s))
        circulate(s, 0); /* used up, or not yet opened: zero either way */
    s->nlive = live;
    s->nlive_aside = 0;
    return live;
}

/* others_only: freed by another thread and not collected (acquire: that
 * thread's last writes to the slot come before its free, and so before the
 * pages are given back).  Else: free in the holder's words, or never handed
 * out. */
static bool slot_unused(const mspan *s, uint32_t i, bool others_only) {
    uint64_t bit = (uint64_t)1 << (i & 63);
    if (others_only)
        return __atomic_load_n(span_remote_word(s, i >> 6), __ATOMIC_ACQUIRE) & bit;
    uint64_t f = __atomic_load_n(span_free_word(s, i >> 6), __ATOMIC_RELAXED);
    uint64_t fresh = __atomic_load_n(span_fresh_word(s, i >> 6), __ATOMIC_RELAXED);
    return ((f | fresh) & bit) != 0;
}

/* Every slot that overlaps page pg is unused (a slot may straddle pages). */
static bool page_unused(const mspan *s, uint32_t pg, bool others_only) {
    uintptr_t start = (uintptr_t)pg << GM_PAGE_SHIFT;
    uint32_t first = (uint32_t)(start / s->elemsize);
    uint32_t last = (uint32_t)((start + GM_PAGE_SIZE - 1) / s->elemsize);
    for (uint32_t i = first; i <= last && i < s->nelems; i++)
        if (!slot_unused(s, i, others_only))
            return false;
    return true;
}

uint32_t mspan_next_unused_pages(const mspan *s, uint32_t *from, bool others_only) {
    uint32_t pg = *from, n = 0;
    while (pg < s->npages && !page_unused(s, pg, others_only))
        pg++;
    while (pg + n < s->npages && page_unused(s, pg + n, others_only))
        n++;
    *from = pg;
    return n;
}

uint32_t mspan_count_remote(const mspan *s) {
    uint32_t n = 0;
    for (uint32_t w = 0; w < s->nopen; w++)
        n += gm_popcount64(__atomic_load_n(span_remote_word(s, w), __ATOMIC_RELAXED) &
                           ~blocked_bits(s, w));
    return n;
}

/* ---- other threads ---- */

bool mspan_free_remote(mspan *s, const void *p, uint32_t idx, const char *caller) {
    uint32_t w = idx >> 6;
    uint64_t bit = (uint64_t)1 << (idx & 63);
    uint64_t f = __atomic_load_n(span_free_word(s, w), __ATOMIC_RELAXED);
    if (unlikely(f & bit)) /* freed by its holder, or never handed out */
        mspan_bad_free(s, p, idx, caller);
    /* Already set: freed by another thread, or blocked */
    if (unlikely(__atomic_fetch_or(span_remote_word(s, w), bit, __ATOMIC_SEQ_CST) & bit))
        mspan_bad_free(s, p, idx, caller);
    if (likely(!__atomic_load_n(&s->full, __ATOMIC_SEQ_CST)))
        return false;
    uint32_t one = 1;
    return __atomic_compare_exchange_n(&s->full, &one, 0, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_RELAXED);
}
