/*
 * proc: the life of thread caches: creating one for each thread, giving its
 * spans back at thread exit, the shared cache of threads that have none,
 * fork, the allocator's initialisation, and the caches' statistics.
 *
 * Offered to the public API (malloc.c, mstats.c) and to the cache itself.
 */
#ifndef GM_PROC_H
#define GM_PROC_H

#include "mcache.h"

/* Initialises the allocator (once); false if the heap cannot be set up. */
GM_INTERNAL bool mcache_global_init(void);

/* An allocation by a thread whose cache pointer is not its own cache
 * (bootstrap: creates it; dead: the shared orphan cache, under its lock).
 * tiny_size != 0 asks for a tiny piece, else a slot of span class spc. */
GM_INTERNAL void *proc_alloc_without_cache(mcache *mc, unsigned spc, size_t tiny_size);

/* This thread's cache, created if the thread has none yet (a thread whose
 * first allocation is large); the bootstrap cache if that failed, the dead
 * cache while the thread exits. */
GM_INTERNAL mcache *proc_own_cache(void);

/* Threads that stop calling keep their spans, and other threads' frees into
 * them are collected only when the owner refills.  At most every
 * IDLE_LOOK_NS (proc.c) this looks at every cache: one that has not
 * refilled since the previous look gives back the pages of its set-aside
 * spans that only freed objects occupy (mcache_release_others_freed_pages).
 * Called by the background scavenger every tick, by a cache about to take
 * a span from mcentral or fresh pages (the growing thread pays the
 * madvise: what goes back is what it would otherwise add to the peak), and
 * every IDLE_CHECK refills (mcache.c).
 * Returns the bytes released. */
GM_INTERNAL size_t proc_release_idle_caches(void);
/* The same for every other thread's cache, idle or not (malloc_trim): the
 * registry lock is held throughout. */
GM_INTERNAL size_t proc_release_others_pages(void);

/* Frees by threads without a cache of their own, for the statistics. */
GM_INTERNAL void proc_count_shared_free(unsigned spc);
GM_INTERNAL void proc_count_shared_tiny_free(void);

/* Totals over all caches, live and retired. */
typedef struct mcache_stats {
    uint64_t nmalloc[GM_NUM_SPAN_CLASSES];
    uint64_t nfree[GM_NUM_SPAN_CLASSES];
    uint64_t tiny_allocs, tiny_frees, refills;
    uint64_t remote_frees; /* small frees into spans the freeing thread did not own */
    size_t spare_bytes; /* empty spans caches keep: idle, though not in mheap */
    /* Page caches (mpagecache.c): large allocations they served, large
     * frees that kept their span, and the bytes kept now (counted in use by
     * mheap, though idle). */
    uint64_t large_hits, large_kept;
    size_t large_kept_bytes, large_kept_objects;
} mcache_stats;
GM_INTERNAL void mcache_read_stats(mcache_stats *out);

#endif
