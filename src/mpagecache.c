/*
 * mpagecache: the per-thread page cache.  A thread keeps the large spans
 * its frees return, whole, and hands them out again to its own large
 * allocations of the same page count, with no lock and no page-allocator
 * search.  Go's pageCache (mpagecache.go) gives each P a 64-page chunk of
 * free pages to carve without the heap lock; with explicit free a C
 * program's large blocks come back one by one, so what a thread keeps here
 * is the runs it freed.  A buffer freed and allocated again in a loop, the
 * commonest large-object pattern, then never meets another thread on the
 * heap lock.
 *
 * Bounds: PAGECACHE_SLOTS spans of at most PAGECACHE_MAX_SPAN_PAGES, and
 * PAGECACHE_MAX_PAGES in all, per thread; a kept span older than the
 * scavenge delay goes back to mheap at the thread's next large free, the
 * oldest when the cache is full, all of them when a large malloc of the
 * thread (the only requests that look here: not calloc, not an aligned
 * one) finds none that fits, when the thread exits or calls
 * malloc_trim, and when an allocation of the thread finds no memory
 * (or hits a hard limit: kept spans count as in use).  Another thread's
 * cache is its own: malloc_trim and the scavenger cannot empty it, so a
 * thread that stops calling keeps up to 4 MiB until it exits.
 *
 * States (mheap's): a kept span is SPAN_PARKED.  The free that keeps it
 * moves it from SPAN_LARGE with a CAS (mheap_park_large), as the heap's
 * own free does, so of two frees of one block exactly one succeeds and the
 * other is reported as a double free.  Taking it back is the keeper's
 * alone (mheap_unpark_large).
 *
 * Locking: none; a cache is its thread's alone (mcache embeds it).
 */
#include "mpagecache.h"

#include "mheap.h"
#include "options.h"

/* A power of two: how often a kept free gives the scavenger a turn (its
 * check reads the clock when there is no background thread). */
#define PAGECACHE_TICK_KEEPS 16

/* What the statistics read of a cache while its thread changes it. */
static void publish(pagecache *pc) {
    __atomic_store_n(&pc->kept_bytes, (uint64_t)pc->npages << GM_PAGE_SHIFT, __ATOMIC_RELAXED);
    __atomic_store_n(&pc->kept_objects, pc->n, __ATOMIC_RELAXED);
}

static void drop(pagecache *pc, uint32_t i) {
    mspan *s = pc->span[i];
    pc->npages -= s->npages;
    pc->n--;
    for (uint32_t j = i; j < pc->n; j++) {
        pc->span[j] = pc->span[j + 1];
        pc->kept_at[j] = pc->kept_at[j + 1];
    }
    publish(pc);
}

mspan *pagecache_take(pagecache *pc, size_t npages, size_t size) {
    /* The newest first: its pages are the likeliest to be in the CPU's
     * caches and resident. */
    for (uint32_t i = pc->n; i-- > 0;) {
        mspan *s = pc->span[i];
        if (s->npages >= npages && ((s->npages - npages) << GM_PAGE_SHIFT) <= size / 8) {
            drop(pc, i);
            mheap_unpark_large(s, size);
            gm_count(&pc->hits);
            return s;
        }
    }
    /* A miss: the kept spans did not serve this request, and would go on
     * holding their pages while the heap finds others for it.  They go back
     * first, so that this very allocation can use them (the heap coalesces
     * them with their free neighbours).  Buffers that grow by realloc miss
     * every time: keeping their old runs raised the peak RSS of four
     * buffers grown to 4 MiB from 30 to 41 MiB.  A loop that frees and
     * allocates the same sizes still hits. */
    pagecache_flush(pc);
    return NULL;
}

static void evict(pagecache *pc, uint32_t i) {
    mspan *s = pc->span[i];
    drop(pc, i);
    mheap_free_parked(s);
}

void pagecache_free(pagecache *pc, mspan *s, void *p, const char *caller) {
    size_t npages = s->npages;
    if (npages > PAGECACHE_MAX_SPAN_PAGES || !mheap_park_large(s, p)) {
        mheap_free_large(s, p, caller); /* reports a bad pointer */
        return;
    }
    uint64_t now = gm_nanotime();
    while (pc->n && (pc->n == PAGECACHE_SLOTS || pc->npages + npages > PAGECACHE_MAX_PAGES ||
                     now - pc->kept_at[0] > gm_opt.scavenge_delay_ns))
        evict(pc, 0);
    pc->span[pc->n] = s;
    pc->kept_at[pc->n] = now;
    pc->n++;
    pc->npages += (uint32_t)npages;
    publish(pc);
    gm_count(&pc->kept);
    /* Every PAGECACHE_TICK_KEEPS keeps, the turn a heap free would have
     * given the scavenger: a loop of kept frees must not starve it when
     * there is no background thread. */
    if ((pc->kept & (PAGECACHE_TICK_KEEPS - 1)) == 0)
        mheap_scavenge_tick();
}

void pagecache_flush(pagecache *pc) {
    while (pc->n)
        evict(pc, pc->n - 1);
}

static bool kept_by(const pagecache *pc, const mspan *s) {
    for (uint32_t i = 0; pc && i < pc->n; i++)
        if (pc->span[i] == s)
            return true;
    return false;
}

static void drop_unless_kept(mspan *s, void *arg) {
    if (!kept_by(arg, s))
        mheap_free_parked(s);
}

void pagecache_after_fork(pagecache *pc) {
    /* Trust no other cache's slots (a fork may land mid-update): every
     * parked span the survivor does not hold has lost its keeper.  The walk
     * reads the whole span map, so it is skipped when no span was ever
     * parked. */
    if (mheap_ever_parked())
        mheap_for_each_parked_span(drop_unless_kept, pc);
}
