/*
 * The page allocator: which 8 KiB pages of the heap window are free, and
 * which free pages have been returned to the OS ("scavenged").
 *
 * Offered to mheap (the only caller), always under the heap lock.
 */
#ifndef GM_MPAGEALLOC_H
#define GM_MPAGEALLOC_H

#include "common.h"

/* Sets up the allocator for the window [base, base + GM_HEAP_RANGE).
 * base is GM_ARENA_SIZE aligned.  Metadata is mapped lazily.  False if the
 * metadata reservation fails. */
GM_INTERNAL bool pagealloc_init(uintptr_t base);

/* Adds [addr, addr + npages pages) to the heap: chunk aligned, whole chunks.
 * The pages become free and scavenged (fresh from the OS, known zero). */
GM_INTERNAL bool pagealloc_grow(uintptr_t addr, size_t npages);

/* Address-ordered first fit of npages free pages whose address is a multiple
 * of align_pages pages (a power of two; 1 for no alignment).  Marks them
 * allocated and clears their scavenged bits; *nscav receives how many of them
 * were scavenged (== npages means the whole run is known zero).  0 if none. */
GM_INTERNAL uintptr_t pagealloc_alloc(size_t npages, size_t align_pages, size_t *nscav);

/* Allocates exactly [addr, addr + npages pages) if every page is free. */
GM_INTERNAL bool pagealloc_alloc_at(uintptr_t addr, size_t npages, size_t *nscav);

/* Frees pages; `now` (gm_nanotime) stamps their chunks for the scavenger. */
GM_INTERNAL void pagealloc_free(uintptr_t addr, size_t npages, uint64_t now);

/* Returns free, unscavenged pages to the OS, highest addresses first, in
 * chunks last freed into at or before `older_than`, at most max_pages of
 * them; release(addr, bytes) does the OS work.  Pages are marked scavenged
 * (known zero) only when release() says it succeeded; the first refusal ends
 * the pass.  Returns pages released. */
GM_INTERNAL size_t pagealloc_scavenge(size_t max_pages, uint64_t older_than,
                                      bool (*release)(uintptr_t addr, size_t bytes));

/* The scavenger's two halves of Go's scavengeOne, so the OS work runs
 * without the heap lock.  take: finds the highest run of free, unreleased
 * pages (at most max_pages, inside one chunk last freed into at or before
 * older_than; with keep_dense, never in a huge page with 96% or more of its
 * pages in use) and marks it allocated, so nobody else can hand it out or
 * release it; returns its length (0: none) and start.  return: frees such
 * a run again, as released (known zero) when `released`, else as dirty;
 * the chunk's last-free time is left as it was. */
GM_INTERNAL size_t pagealloc_scav_take(size_t max_pages, uint64_t older_than, bool keep_dense,
                                       uintptr_t *addr);
GM_INTERNAL void pagealloc_scav_return(uintptr_t addr, size_t npages, bool released);

/* Counters, in pages. */
GM_INTERNAL size_t pagealloc_total_pages(void);  /* pages grown into the heap */
GM_INTERNAL size_t pagealloc_free_pages(void);   /* of those, free */
GM_INTERNAL size_t pagealloc_scav_pages(void);   /* of the free, scavenged */

/* Used by tests: is page at addr allocated / scavenged. */
GM_INTERNAL bool pagealloc_page_allocated(uintptr_t addr);
GM_INTERNAL bool pagealloc_page_scavenged(uintptr_t addr);

#endif
