/*
 * mheap: spans, the page heap and large objects.
 *
 * Offered to mcentral (spans for a size class) and to the public API (large
 * objects, trimming, statistics).  Takes the heap lock internally.
 */
#ifndef GM_MHEAP_H
#define GM_MHEAP_H

#include "common.h"

#include "mspan.h"

GM_INTERNAL bool mheap_init(void);

/* A bare span for span class spc: its pages, and a zeroed struct with base,
 * npages, spanclass and state set and the span map pointing at it.  The
 * slot state is mspan's to set up.  NULL if out of memory. */
GM_INTERNAL mspan *mheap_alloc_small(unsigned spc);

/* A large span of npages whose base is a multiple of align_pages pages.
 * With `zero`, the memory reads as zero (s->zeroed is set). */
GM_INTERNAL mspan *mheap_alloc_large(size_t npages, size_t align_pages, size_t size, bool zero);

/* Returns a small span to the heap (its pages become free). */
GM_INTERNAL void mheap_free_span(mspan *s);

/* Calls fn on every small span in the heap.  Only for a process that has
 * one thread (the fork child); takes no lock, and fn may free the span. */
GM_INTERNAL void mheap_for_each_small_span(void (*fn)(mspan *s, void *arg), void *arg);

/* Frees the large object at p; aborts on a pointer that is not one. */
GM_INTERNAL void mheap_free_large(mspan *s, void *p, const char *caller);

/* The per-thread page cache's side (mpagecache.c).  park: the large
 * object at p is freed and its span kept whole (SPAN_PARKED); false if s is
 * not a live large object at p (nothing changed).  unpark: the kept span
 * holds a new object of size bytes (its memory is dirty).  free_parked:
 * the kept span's pages go back to the heap. */
GM_INTERNAL bool mheap_park_large(mspan *s, const void *p);
GM_INTERNAL void mheap_unpark_large(mspan *s, size_t size);
GM_INTERNAL void mheap_free_parked(mspan *s);
/* Has any span ever been parked? */
GM_INTERNAL bool mheap_ever_parked(void);
/* Calls fn on every parked span; as mheap_for_each_small_span. */
GM_INTERNAL void mheap_for_each_parked_span(void (*fn)(mspan *s, void *arg), void *arg);

/* Resizes a large span in place: grows into free pages that follow it, or
 * frees its tail.  False if it cannot grow. */
GM_INTERNAL bool mheap_resize_large(mspan *s, size_t npages, size_t size);

/* Returns every free page to the OS (malloc_trim), outside the heap lock;
 * returns the bytes released.  No allocator lock held. */
GM_INTERNAL size_t mheap_release_all(void);
/* Gives back to the OS bytes at addr, pages of an in-use small span in
 * which no slot is in use (malloc_trim on a fragmented heap); they stay the
 * span's, and come back zeroed when its slots are used again.  Returns the
 * bytes released (0 if the kernel refused).  No allocator lock held. */
GM_INTERNAL size_t mheap_release_span_pages(uintptr_t addr, size_t bytes);
/* The scavenger's turn on a slow path: a bounded amount of release work.
 * No allocator lock held. */
GM_INTERNAL void mheap_scavenge_tick(void);
/* Starts the background scavenger thread if it is wanted (see
 * mgcscavenge.c for when).  Only at a safe point: no allocator lock held,
 * and the calling thread's cache whole (starting a thread allocates). */
GM_INTERNAL void mheap_start_background(void);
/* The memory limit at run time (0: none). */
GM_INTERNAL void mheap_set_memory_limit(size_t bytes, bool hard);
GM_INTERNAL size_t mheap_get_memory_limit(bool *hard);
/* Work for the background thread, once a tick, told whether the heap was
 * idle for it (initialisation). */
GM_INTERNAL void mheap_set_tick_work(void (*fn)(bool heap_idle));

/* For the scavenger: the heap lock, and the cache of freed large runs,
 * whose pages count as idle but are not free in the page allocator. */
GM_INTERNAL void mheap_lock(void);
GM_INTERNAL void mheap_unlock(void);
GM_INTERNAL size_t mheap_large_cache_pages_locked(void);
GM_INTERNAL void mheap_large_cache_expire_locked(uint64_t older_than);

/* fork() support: take / release / reset the heap lock. */
GM_INTERNAL void mheap_lock_for_fork(void);
GM_INTERNAL void mheap_unlock_after_fork(bool child);

typedef struct mheap_stats {
    size_t sys, inuse, idle, released, meta;
    size_t large_inuse_bytes, large_inuse_objects;
    uint64_t large_allocs, large_frees;
    uint64_t span_allocs, os_maps, scavenged_bytes;
    uint64_t spans_inuse[GM_NUM_SPAN_CLASSES];
} mheap_stats;
GM_INTERNAL void mheap_read_stats(mheap_stats *out);

#endif
