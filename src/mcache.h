/*
 * mcache: the per-thread cache.  One current span per span class and the
 * tiny block; allocation from it takes no lock and no atomic
 * read-modify-write.
 *
 * Offered to the public API (malloc.c): the inline fast paths below, the
 * out-of-line refills, and frees.
 */
#ifndef GM_MCACHE_H
#define GM_MCACHE_H

#include "mcentral.h"

typedef struct mcache {
    mspan *alloc[GM_NUM_SPAN_CLASSES];

    /* The tiny block pieces are cut from: its address, the next free offset
     * (GM_TINY_BLOCK when there is no block), and its metadata words. */
    uintptr_t tiny;
    uint32_t tiny_off;
    uint32_t tiny_word;     /* our copy of *tiny_alloc: piece starts | piece ends << 16 */
    uint32_t *tiny_alloc;
    uint32_t *tiny_freed;

    /* Counters, written by the owning thread only. */
    uint64_t nmalloc[GM_NUM_SPAN_CLASSES];
    uint64_t nfree[GM_NUM_SPAN_CLASSES];
    uint64_t tiny_allocs, tiny_frees;
    uint64_t refills;

    struct mcache *next_all, *prev_all;  /* registry of live caches */
    uint8_t kind;                        /* MCACHE_* */
} mcache;

/* A thread's cache pointer is one of: its own cache, the bootstrap cache (no
 * cache yet), or the dead cache (the thread is exiting). */
enum { MCACHE_OWN = 0, MCACHE_BOOTSTRAP = 1, MCACHE_DEAD = 2 };

/* This thread's cache.  Starts at a shared empty cache whose spans are all
 * full, so the first allocation falls into the slow path, which creates it. */
extern __thread mcache *gm_tls_mcache GM_INTERNAL __attribute__((tls_model("initial-exec")));

GM_INTERNAL void *mcache_alloc_slow(mcache *mc, unsigned spc);
GM_INTERNAL void *mcache_alloc_tiny_slow(mcache *mc, size_t size);

static inline void *mcache_alloc(mcache *mc, unsigned spc) {
    mspan *s = mc->alloc[spc];
    uint64_t cache = s->alloc_cache;
    if (likely(cache != 0)) {
        unsigned bit = (unsigned)__builtin_ctzll(cache);
        uint32_t idx = s->freeindex + bit;
        /* Go's nextFreeFast: stay inside the cached 64-slot window. */
        if (likely(idx < s->nelems && ((idx + 1) & 63) != 0)) {
            s->alloc_cache = cache >> (bit + 1);
            __atomic_store_n(&s->freeindex, idx + 1, __ATOMIC_RELAXED);
            s->owner_delta++;
            mc->nmalloc[spc]++;
            return (void *)(s->base + (uintptr_t)idx * s->elemsize);
        }
    }
    return mcache_alloc_slow(mc, spc);
}

/* A piece of `size` (1..15) bytes, aligned to the largest power of two not
 * above size (at most 8), packed into the current 16-byte block. */
static inline void *mcache_alloc_tiny(mcache *mc, size_t size) {
    uint32_t align = (uint32_t)1 << (31 - __builtin_clz((unsigned)size));
    if (align > 8)
        align = 8;
    uint32_t off = (mc->tiny_off + align - 1) & ~(align - 1);
    if (likely(off + size <= GM_TINY_BLOCK)) {
        uint32_t end = off + (uint32_t)size;
        uint32_t word = mc->tiny_word | ((uint32_t)1 << off) | ((uint32_t)1 << (end - 1 + 16));
        mc->tiny_word = word;
        __atomic_store_n(mc->tiny_alloc, word, __ATOMIC_RELEASE);
        mc->tiny_off = end;
        mc->tiny_allocs++;
        return (void *)(mc->tiny + off);
    }
    return mcache_alloc_tiny_slow(mc, size);
}

GM_INTERNAL void mcache_free_foreign(mcache *mc, mspan *s, uint32_t idx, const char *caller);
GM_INTERNAL __attribute__((noreturn)) void mcache_bad_free(mspan *s, uint32_t idx,
                                                           const char *caller);

/* Frees the small object at slot idx of s (s->spanclass != 0).  Into our own
 * span: plain stores.  Into anyone else's: mcentral's lock-free protocol. */
static inline void mcache_free_small(mspan *s, uint32_t idx, const char *caller) {
    mcache *mc = gm_tls_mcache;
    if (likely(__atomic_load_n(&s->owner, __ATOMIC_RELAXED) == mc)) {
        uint32_t w = idx >> 6;
        uint64_t bit = (uint64_t)1 << (idx & 63);
        if (unlikely(!span_slot_live(s, idx)))
            mcache_bad_free(s, idx, caller);
        __atomic_store_n(span_bits(s, w, SPAN_LOCAL), *span_bits(s, w, SPAN_LOCAL) | bit, __ATOMIC_RELAXED);
        s->owner_delta--;
        mc->nfree[s->spanclass]++;
        return;
    }
    mcache_free_foreign(mc, s, idx, caller);
}
/* Frees the tiny piece at p in tiny span s. */
GM_INTERNAL void mcache_free_tiny(mspan *s, void *p, const char *caller);
/* Bytes usable at tiny piece p (aborts if p is not a live piece). */
GM_INTERNAL size_t mcache_tiny_usable(mspan *s, void *p, const char *caller);

/* Gives this thread's spans back to mcentral (thread exit). */
GM_INTERNAL void mcache_flush(mcache *mc);
/* malloc_trim: flush this thread's cache, and mcentral's spare spans go back
 * to mheap. */
GM_INTERNAL void mcache_trim(void);

/* Totals over all caches, live and retired. */
typedef struct mcache_stats {
    uint64_t nmalloc[GM_NUM_SPAN_CLASSES];
    uint64_t nfree[GM_NUM_SPAN_CLASSES];
    uint64_t tiny_allocs, tiny_frees, refills;
    size_t spare_bytes; /* empty spans mcentral keeps: idle, though not in mheap */
} mcache_stats;
GM_INTERNAL void mcache_read_stats(mcache_stats *out);

/* Initialises the allocator (once); false if the heap cannot be set up. */
GM_INTERNAL bool mcache_global_init(void);

#endif
