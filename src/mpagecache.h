/*
 * mpagecache: the per-thread page cache, in front of mheap for large
 * objects.  See mpagecache.c.
 *
 * Offered to the public API (a large allocation and free without the heap
 * lock) and to mcache, which embeds one per thread and flushes it when the
 * thread exits, trims or forks.
 */
#ifndef GM_MPAGECACHE_H
#define GM_MPAGECACHE_H

#include "mspan.h"

/* Freed large spans a thread keeps, at most this many ... */
#define PAGECACHE_SLOTS 4
/* ... of at most 2 MiB each (the size of a huge page: past it, a request
 * costs enough in page faults that the heap lock does not show) ... */
#define PAGECACHE_MAX_SPAN_PAGES (((size_t)2 << 20) >> GM_PAGE_SHIFT)
/* ... and at most 4 MiB in all: two of the largest, or more smaller ones. */
#define PAGECACHE_MAX_PAGES (((size_t)4 << 20) >> GM_PAGE_SHIFT)

typedef struct pagecache {
    mspan *span[PAGECACHE_SLOTS]; /* oldest first */
    uint64_t kept_at[PAGECACHE_SLOTS];
    uint32_t n;
    uint32_t npages;              /* in all the kept spans */
    /* Owner-only counters (gm_count), read by the statistics. */
    uint64_t hits;                /* allocations served from the cache */
    uint64_t kept;                /* frees that kept their span here */
    uint64_t kept_bytes;          /* now kept (relaxed stores, for the statistics) */
    uint64_t kept_objects;
} pagecache;

/* A kept span of npages pages for a large object of size bytes, or NULL,
 * after giving every kept span back to mheap (none fitted).  The span may
 * be larger by up to an eighth of size (what a size class may waste); its
 * memory is not zeroed. */
GM_INTERNAL mspan *pagecache_take(pagecache *pc, size_t npages, size_t size);
/* Frees the large object p of span s, keeping the span if it fits; aborts
 * on a pointer that is not a live large object (like mheap_free_large). */
GM_INTERNAL void pagecache_free(pagecache *pc, mspan *s, void *p, const char *caller);
/* Gives every kept span back to mheap. */
GM_INTERNAL void pagecache_flush(pagecache *pc);
/* In a forked child: spans the threads that did not survive were keeping
 * go back to mheap (pc is the surviving thread's cache, or NULL). */
GM_INTERNAL void pagecache_after_fork(pagecache *pc);

#endif
