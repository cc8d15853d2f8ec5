/*
 * The tiny allocator: requests of a few bytes packed into 16-byte blocks.
 *
 * Offered to the public API (malloc.c): the inline fast path and the
 * out-of-line refill, frees and sizes; to the rest of the mcache tier:
 * giving a cache's block back.
 */
#ifndef GM_TINY_H
#define GM_TINY_H

#include "mcache.h"

/* Requests up to this many bytes are packed.  Above it packing would cost
 * more than the 8-byte size class: a block's two metadata words (8 bytes)
 * are paid back only when at least four pieces share a block. */
#define GM_TINY_MAX 4

GM_INTERNAL void *tiny_alloc_slow(mcache *mc, size_t size);

/* A piece of `size` (1..GM_TINY_MAX) bytes, aligned to the largest power of
 * two not above size, packed into the current 16-byte block. */
static inline void *tiny_alloc(mcache *mc, size_t size) {
    uint32_t align = (uint32_t)1 << (31 - __builtin_clz((unsigned)size));
    uint32_t off = (mc->tiny_off + align - 1) & ~(align - 1);
    if (likely(off + size <= GM_TINY_BLOCK)) {
        uint32_t end = off + (uint32_t)size;
        uint32_t word = mc->tiny_word | ((uint32_t)1 << off) | ((uint32_t)1 << (end - 1 + 16));
        mc->tiny_word = word;
        __atomic_store_n(mc->tiny_alloc, word, __ATOMIC_RELEASE);
        mc->tiny_off = end;
        gm_count(&mc->tiny_allocs);
        return (void *)(mc->tiny + off);
    }
    return tiny_alloc_slow(mc, size);
}

/* Frees the tiny piece at p in tiny span s. */
GM_INTERNAL void tiny_free(mspan *s, void *p, const char *caller);
/* Bytes usable at tiny piece p (aborts if p is not a live piece). */
GM_INTERNAL size_t tiny_usable(mspan *s, void *p, const char *caller);
/* The cache moves on from its block (thread exit, fork, a new block). */
GM_INTERNAL void tiny_release(mcache *mc);

#endif
