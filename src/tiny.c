/*
 * The tiny allocator (Go's): requests of up to GM_TINY_MAX bytes are cut
 * from the thread's current 16-byte block, each aligned to the largest
 * power of two not above its size.  Unlike Go, pieces are freed one by one.
 * Per block, the span keeps two words outside user memory: tiny_alloc (a bit
 * at each piece's first byte, and in the high half a bit at each piece's
 * last byte, so a piece's usable size is exact and never changes), written
 * only by the cache holding the block; and tiny_freed, set only by atomic
 * OR: the starts of freed pieces in its low half and, once the holder has
 * moved on, the final piece starts in its high half.  One word thus tells
 * whether every piece is freed and the block released, and whoever's atomic
 * OR completes that picture frees the block; nobody reads the span after
 * losing that race.  The holder frees the newest piece of its own block by
 * taking it back (moving the offset down), so a malloc/free pair of tiny
 * objects stays in one block.
 *
 * Blocks are slots of the tiny span class, allocated and freed through the
 * cache like any other slot.
 *
 * Locking: none.  The words' protocol is above; the block's slot follows
 * mspan's rules.
 */
#include "tiny.h"

#include "arena.h"
#include "proc.h"

/* Moves on from the current tiny block.  The cache forgets the block before
 * it touches the block's words, and adopts a new one only after they are
 * set (tiny_adopt): a fork() from another thread may copy this cache at any
 * instant, and the child gives the cache's block back (fork_child), so it
 * must never find a block without its words. */
void tiny_release(mcache *mc) {
    uintptr_t block = mc->tiny;
    if (!block)
        return;
    uint32_t starts = mc->tiny_word & 0xffff;
    uint32_t *freed = mc->tiny_freed;
    __atomic_store_n(&mc->tiny, 0, __ATOMIC_RELEASE);
    mc->tiny_off = GM_TINY_BLOCK;
    mc->tiny_word = 0;
    mc->tiny_alloc = mc->tiny_freed = NULL;
    uint32_t old = gm_fetch_or32(freed, starts << 16);
    if ((old & 0xffff) == starts) {
        mspan *s = spanof((void *)block);
        mcache_free_small(s, (void *)block, "free");
    }
}

static void tiny_adopt(mcache *mc, uintptr_t block, uint32_t *alloc, uint32_t *freed) {
    __atomic_store_n(freed, 0, __ATOMIC_RELAXED);
    __atomic_store_n(alloc, 0, __ATOMIC_RELAXED);
    mc->tiny_off = 0;
    mc->tiny_word = 0;
    mc->tiny_alloc = alloc;
    mc->tiny_freed = freed;
    __atomic_store_n(&mc->tiny, block, __ATOMIC_RELEASE);
}

void *tiny_alloc_slow(mcache *mc, size_t size) {
    if (unlikely(mc->kind != MCACHE_OWN))
        return proc_alloc_without_cache(mc, 0, size);
    tiny_release(mc);
    void *block = mcache_alloc(mc, GM_TINY_SPAN_CLASS);
    if (!block)
        return NULL;
    mspan *s = spanof(block); /* the current span's, but a listed block need not say so */
    uint32_t b = (uint32_t)(((uintptr_t)block - s->base) / GM_TINY_BLOCK);
    tiny_adopt(mc, (uintptr_t)block, &s->tiny_alloc[b], &s->tiny_freed[b]);
    return tiny_alloc(mc, size);
}

static uint32_t tiny_check(mspan *s, void *p, const char *caller, uint32_t *block) {
    uintptr_t off = (uintptr_t)p - s->base;
    uint32_t b = (uint32_t)(off / GM_TINY_BLOCK);
    uint32_t piece = (uint32_t)(off % GM_TINY_BLOCK);
    if (!mspan_slot_live(s, b)) /* its whole block was freed, or never handed out */
        gm_bad_pointer(caller, p, mspan_slot_ever(s, b));
    if (!(__atomic_load_n(&s->tiny_alloc[b], __ATOMIC_ACQUIRE) & ((uint32_t)1 << piece)))
        gm_bad_pointer(caller, p, (uintptr_t)p == gm_tls.mcache->tiny_taken_back);
    *block = b;
    return piece;
}

/* Freeing the newest piece of the block this thread is cutting from: take it
 * back by moving the block's offset down, with no atomic. */
static bool tiny_take_back(mcache *mc, mspan *s, uint32_t b, uint32_t piece) {
    uint32_t starts = mc->tiny_word & 0xffff;
    uint32_t bit = (uint32_t)1 << piece;
    if (!(starts & bit) || (starts >> piece) != 1)
        return false; /* not a piece, or not the newest one */
    if (__atomic_load_n(&s->tiny_freed[b], __ATOMIC_RELAXED) & bit)
        return false; /* already freed: let the checked path report it */
    uint32_t ends = mc->tiny_word >> 16;
    ends &= ~((uint32_t)1 << (31 - __builtin_clz(ends))); /* the newest piece ends last */
    uint32_t word = (starts & ~bit) | (ends << 16);
    mc->tiny_word = word;
    __atomic_store_n(mc->tiny_alloc, word, __ATOMIC_RELEASE);
    mc->tiny_off = piece;
    mc->tiny_taken_back = (uintptr_t)s->base + b * GM_TINY_BLOCK + piece;
    gm_count(&mc->tiny_frees);
    return true;
}

void tiny_free(mspan *s, void *p, const char *caller) {
    mcache *mc = gm_tls.mcache;
    uintptr_t block = (uintptr_t)p & ~(uintptr_t)(GM_TINY_BLOCK - 1);
    if (mc->tiny == block &&
        tiny_take_back(mc, s, (uint32_t)((block - s->base) / GM_TINY_BLOCK),
                       (uint32_t)((uintptr_t)p % GM_TINY_BLOCK)))
        return;
    uint32_t b, piece = tiny_check(s, p, caller, &b);
    uint32_t bit = (uint32_t)1 << piece;
    uint32_t old = gm_fetch_or32(&s->tiny_freed[b], bit);
    if (old & bit)
        gm_bad_pointer(caller, p, true);
    if (mc->kind == MCACHE_OWN)
        gm_count(&mc->tiny_frees);
    else
        proc_count_shared_tiny_free();
    uint32_t now = old | bit;
    if ((now >> 16) && (now & 0xffff) == (now >> 16))
        mcache_free_small(s, (void *)(s->base + (uintptr_t)b * GM_TINY_BLOCK), caller);
}

size_t tiny_usable(mspan *s, void *p, const char *caller) {
    uint32_t b, piece = tiny_check(s, p, caller, &b);
    if (__atomic_load_n(&s->tiny_freed[b], __ATOMIC_ACQUIRE) & ((uint32_t)1 << piece))
        gm_bad_pointer(caller, p, true);
    uint32_t ends = __atomic_load_n(&s->tiny_alloc[b], __ATOMIC_ACQUIRE) >> 16;
    return (size_t)__builtin_ctz(ends >> piece) + 1;
}

