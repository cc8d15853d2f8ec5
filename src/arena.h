/*
 * Arenas and the span map: the heap's address space and the O(1) question
 * "which span holds this address?" that free() asks.
 *
 * Offered to mheap (growth, span map updates) and, for lookups only, to the
 * tiers above (spanof is lock-free).
 */
#ifndef GM_ARENA_H
#define GM_ARENA_H

#include "common.h"

struct mspan;

/* Per-arena metadata: the span of every page (Go's heapArena.spans).  A page
 * of a small-object span maps to its span; a large span maps only its first
 * page, so an interior pointer into a large object finds nothing. */
typedef struct heaparena {
    struct mspan *spans[GM_ARENA_PAGES];
} heaparena;

/* The heap window: all arenas lie in [gm_heap_base, gm_heap_base + 1 TiB). */
extern uintptr_t gm_heap_base GM_INTERNAL;
extern heaparena *gm_arenas[GM_MAX_ARENAS] GM_INTERNAL;

/* The span holding address p, or NULL: two dependent loads, no lock. */
static inline struct mspan *spanof(const void *p) {
    uintptr_t off = (uintptr_t)p - __atomic_load_n(&gm_heap_base, __ATOMIC_RELAXED);
    uintptr_t ai = off >> GM_ARENA_SHIFT; /* the window check and the index in one shift */
    if (unlikely(ai >= GM_MAX_ARENAS))
        return NULL;
    heaparena *a = __atomic_load_n(&gm_arenas[ai], __ATOMIC_ACQUIRE);
    if (unlikely(a == NULL))
        return NULL;
    return __atomic_load_n(&a->spans[(off >> GM_PAGE_SHIFT) & (GM_ARENA_PAGES - 1)],
                           __ATOMIC_ACQUIRE);
}

/* Chooses the heap window and the heap's random start in it; maps nothing.
 * Heap lock held. */
GM_INTERNAL bool arena_init(void);

/* Commits at least `bytes` (rounded up to whole chunks) of new heap memory,
 * right after the previous step when that range is free, else further up the
 * window.  Returns the chunk-aligned start and the committed size; false
 * when the kernel refuses the commit or the window has no room.  Heap lock
 * held. */
GM_INTERNAL bool arena_grow(size_t bytes, uintptr_t *addr, size_t *got);

/* The end of the committed heap: growing from here is contiguous. */
GM_INTERNAL uintptr_t arena_committed_end(void);

/* Points every page in [base, base + npages pages) at s (NULL to clear). */
GM_INTERNAL void spanmap_set(uintptr_t base, size_t npages, struct mspan *s);

/* Bytes of heap address space committed so far (Go's HeapSys). */
GM_INTERNAL size_t arena_committed_bytes(void);
GM_INTERNAL uint64_t arena_os_maps(void);

#endif
