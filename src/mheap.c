/*
 * mheap: the one heap.  It owns the page allocator, the arenas (through
 * arena.c), the mspan structures and large objects; the scavenger
 * (mgcscavenge.c) works on its free pages.
 *
 * - Pages: 8 KiB.  A span is a run of pages; small-object spans come in the
 *   page count of their size class, large spans in whatever a request needs
 *   (aligned when asked).  Free pages coalesce implicitly in the page
 *   allocator's bitmaps.
 * - Span structs come from a metadata allocator fed by os_alloc_metadata and
 *   recycled through free lists keyed by struct size; they are never unmapped,
 *   so a stale pointer to one is always safe to read.  mheap hands out bare
 *   spans (pages, a zeroed struct, the span map); the slot state and its
 *   ownership are mspan's and mcache's business.
 * - The scavenger (mgcscavenge.c) decides when free pages go back to the OS
 *   and does that work outside the heap lock; mheap tells it, under the
 *   lock, what went into and out of use (scav_*_locked), and gives it a
 *   bounded turn (scav_assist) after it has dropped the lock on its large
 *   paths and before mcentral asks for a span.  Pages just freed are the
 *   first reused (first fit), so a churn of large objects keeps its pages
 *   resident instead of faulting them in again.
 * - Large objects: the last few freed runs of up to 1 MiB are kept as they
 *   are and handed out again for the same page count (see large_cache).
 *
 * Locking: heap_lock guards everything here, and the scavenger's [heap]
 * state (it takes the lock through mheap_lock).  It is the innermost
 * allocator lock: mcentral drops its own lock before it calls in, and only
 * fork() preparation holds both (mcentral's first).  Nothing here calls up,
 * and no system call that may take long (madvise) or allocate
 * (pthread_create) runs under it: those happen after it is dropped.
 */
#define _GNU_SOURCE
#include "mheap.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "mgcscavenge.h"
#include "mpagealloc.h"
#include "options.h"
#include "os.h"

static gm_lock_t heap_lock = GM_LOCK_INIT;


static size_t pages_inuse;
static size_t large_inuse_bytes, large_inuse_objects;
static uint64_t large_allocs, large_frees, span_allocs;
static uint64_t spans_inuse[GM_NUM_SPAN_CLASSES];

/* ---- metadata allocator for span structs ---- */

#define META_SLAB (256 * 1024)
#define META_KINDS 8
static struct { size_t size; mspan *free; } meta_kinds[META_KINDS];
static char *meta_cur, *meta_end;

static void *meta_bump(size_t size) {
    size = gm_align_up(size, 64);
    if ((size_t)(meta_end - meta_cur) < size) {
        size_t slab = size > META_SLAB ? size : META_SLAB;
        char *p = os_alloc_metadata(slab);
        if (!p)
            return NULL;
        meta_cur = p;
        meta_end = p + slab;
    }
    void *r = meta_cur;
    meta_cur += size;
    return r;
}

/* Zeroes a recycled struct.  A thread freeing into the span's previous life
 * may still read `full` and `owner` just after its last free (mspan.c,
 * "Setting aside"): those two are cleared with atomic stores, so the late
 * read sees either value and never a torn one. */
static void span_struct_clear(mspan *s, size_t size) {
    size_t owner_at = offsetof(mspan, owner), full_at = offsetof(mspan, full);
    memset(s, 0, owner_at);
    memset((char *)s + owner_at + sizeof s->owner, 0, full_at - owner_at - sizeof s->owner);
    memset((char *)s + full_at + sizeof s->full, 0, size - full_at - sizeof s->full);
    __atomic_store_n(&s->owner, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&s->full, 0, __ATOMIC_RELAXED);
}

static mspan *span_struct_alloc(size_t size) {
    mspan *s = NULL;
    for (int i = 0; i < META_KINDS; i++) {
        if (meta_kinds[i].size == size && meta_kinds[i].free) {
            s = meta_kinds[i].free;
            meta_kinds[i].free = s->next;
            break;
        }
    }
    if (!s)
        s = meta_bump(size);
    if (s)
        span_struct_clear(s, size);
    return s;
}

static void span_struct_free(mspan *s) {
    size_t size = mspan_struct_size(s->spanclass);
    for (int i = 0; i < META_KINDS; i++) {
        if (meta_kinds[i].size == size || meta_kinds[i].size == 0) {
            meta_kinds[i].size = size;
            s->next = meta_kinds[i].free;
            meta_kinds[i].free = s;
            return;
        }
    }
    /* More struct sizes than kinds cannot happen (5 bitmap sizes, tiny, large). */
}

/* ---- recently freed large runs ----
 *
 * A program that frees a large block often asks for one of the same size
 * soon after (buffers, per-request arrays).  The last few freed runs stay
 * allocated in the page allocator and are handed out again as they are, with
 * no search and no summary updates.  They count as idle, and go back to the
 * page allocator after the scavenge delay, when the table is full, or on
 * malloc_trim. */

#define LARGE_CACHE_SLOTS 8
#define LARGE_CACHE_MAX_PAGES ((size_t)(1 << 20) >> GM_PAGE_SHIFT) /* 8 MiB at most in all */

static struct { uintptr_t base; size_t npages; uint64_t freed_at; } large_cache[LARGE_CACHE_SLOTS];

static size_t large_cache_pages;

static void large_cache_evict(unsigned i) {
    pagealloc_free(large_cache[i].base, large_cache[i].npages, large_cache[i].freed_at);
    large_cache_pages -= large_cache[i].npages;
    large_cache[i].base = 0;
}

static void large_cache_expire(uint64_t older_than) {
    for (unsigned i = 0; i < LARGE_CACHE_SLOTS; i++)
        if (large_cache[i].base && large_cache[i].freed_at <= older_than)
            large_cache_evict(i);
}

static bool large_cache_put(uintptr_t base, size_t npages) {
    if (npages > LARGE_CACHE_MAX_PAGES)
        return false;
    unsigned victim = 0;
    for (unsigned i = 0; i < LARGE_CACHE_SLOTS; i++) {
        if (!large_cache[i].base) {
            victim = i;
            goto put;
        }
        if (large_cache[i].freed_at < large_cache[victim].freed_at)
            victim = i;
    }
    large_cache_evict(victim);
put:
    large_cache[victim].base = base;
    large_cache[victim].npages = npages;
    large_cache[victim].freed_at = gm_nanotime();
    large_cache_pages += npages;
    pages_inuse -= npages;
    scav_note_locked(pages_inuse);
    return true;
}

static uintptr_t large_cache_take(size_t npages, size_t align_pages) {
    for (unsigned i = 0; i < LARGE_CACHE_SLOTS; i++) {
        uintptr_t base = large_cache[i].base;
        if (base && large_cache[i].npages == npages &&
            (base & ((align_pages << GM_PAGE_SHIFT) - 1)) == 0 &&
            scav_admit_locked(pages_inuse, npages)) {
            large_cache[i].base = 0;
            large_cache_pages -= npages;
            pages_inuse += npages;
            return base;
        }
    }
    return 0;
}

/* ---- pages ---- */

static uintptr_t alloc_pages(size_t npages, size_t align_pages, bool *zeroed) {
    if (!scav_admit_locked(pages_inuse, npages))
        return 0; /* over a hard memory limit: ENOMEM */
    size_t nscav = 0;
    uintptr_t a = pagealloc_alloc(npages, align_pages, &nscav);
    if (!a && large_cache_pages) {
        /* Before the heap grows, the cached runs go back to the pool. */
        large_cache_expire(UINT64_MAX);
        a = pagealloc_alloc(npages, align_pages, &nscav);
    }
    if (!a) {
        size_t want = npages + (align_pages > 1 ? align_pages : 0);
        if (want > (GM_HEAP_RANGE >> GM_PAGE_SHIFT))
            return 0;
        size_t bytes = want << GM_PAGE_SHIFT;
        if (bytes < gm_opt.grow_bytes)
            bytes = gm_opt.grow_bytes;
        uintptr_t addr;
        size_t got;
        if (!arena_grow(bytes, &addr, &got) || !pagealloc_grow(addr, got >> GM_PAGE_SHIFT))
            return 0;
        scav_note_grow_locked(arena_committed_bytes());
        a = pagealloc_alloc(npages, align_pages, &nscav);
        if (!a)
            return 0;
    }
    *zeroed = nscav == npages;
    pages_inuse += npages;
    scav_note_locked(pages_inuse);
    gm_note_peak_pages(pages_inuse); /* PeakHeapInuse in the stats (mstats.c) */
    return a;
}

static void free_pages(uintptr_t base, size_t npages) {
    pagealloc_free(base, npages, gm_nanotime());
    pages_inuse -= npages;
    scav_note_locked(pages_inuse);
}


/* ---- the API ---- */

bool mheap_init(void) {
    gm_lock(&heap_lock);
    bool ok = arena_init() && pagealloc_init(gm_heap_base);
    if (ok)
        scav_init();
    gm_unlock(&heap_lock);
    return ok;
}

/* The hardened build ends every small-object span with a guard page
 * (PROT_NONE, not part of the span): a linear overflow off the span's last
 * slot faults instead of running into the next span.  The page is taken
 * with the span and given back with it; when the kernel refuses to protect
 * it (too many mappings), the span simply has no guard, and when it refuses
 * to make it accessible again, the page is kept out of use for good. */
#ifdef GM_HARDENED
#define SPAN_GUARD_PAGES 1
#else
#define SPAN_GUARD_PAGES 0
#endif

mspan *mheap_alloc_small(unsigned spc) {
    unsigned sc = spc == GM_TINY_SPAN_CLASS ? gm_size_to_class(GM_TINY_BLOCK) : spc;
    size_t npages = gm_class_npages[sc];

    gm_lock(&heap_lock);
    bool zeroed; /* small objects are cleared by calloc itself */
    uintptr_t base = alloc_pages(npages + SPAN_GUARD_PAGES, 1, &zeroed);
    mspan *s = base ? span_struct_alloc(mspan_struct_size(spc)) : NULL;
    if (!s) {
        if (base)
            free_pages(base, npages + SPAN_GUARD_PAGES);
        gm_unlock(&heap_lock);
        return NULL;
    }
    s->base = base;
    s->npages = (uint32_t)npages;
    s->spanclass = (uint8_t)spc;
    s->state = SPAN_SMALL;
    spanmap_set(base, npages, s);
    span_allocs++;
    spans_inuse[spc]++;
    gm_unlock(&heap_lock);
    if (SPAN_GUARD_PAGES)
        s->guarded = os_protect((void *)(base + (npages << GM_PAGE_SHIFT)),
                                SPAN_GUARD_PAGES << GM_PAGE_SHIFT, false);
    return s;
}

/* Dirty runs at least this large are zeroed by giving them back to the OS
 * rather than by memset: calloc'ed memory that is never touched then costs
 * nothing, and memory that is touched costs a page fault instead of a store. */
#define ZERO_BY_RELEASE_BYTES ((size_t)128 << 10)

mspan *mheap_alloc_large(size_t npages, size_t align_pages, size_t size, bool zero) {
    gm_lock(&heap_lock);
    bool zeroed = false;
    uintptr_t base = large_cache_take(npages, align_pages);
    if (!base)
        base = alloc_pages(npages, align_pages, &zeroed);
    mspan *s = base ? span_struct_alloc(mspan_struct_size(0)) : NULL;
    if (!s) {
        if (base)
            free_pages(base, npages);
        gm_unlock(&heap_lock);
        return NULL;
    }
    s->base = base;
    s->npages = (uint32_t)npages;
    s->state = SPAN_LARGE;
    s->zeroed = zeroed;
    s->nelems = 1;
    s->large_size = size;
    spanmap_set(base, 1, s);
    span_allocs++;
    large_allocs++;
    large_inuse_objects++;
    large_inuse_bytes += npages << GM_PAGE_SHIFT;
    gm_unlock(&heap_lock);
    /* The run is ours alone now: zero it (else calloc clears it) and do
     * the scavenger's turn with no lock held. */
    if (zero && !zeroed && (npages << GM_PAGE_SHIFT) >= ZERO_BY_RELEASE_BYTES)
        s->zeroed = os_release((void *)base, npages << GM_PAGE_SHIFT);
    scav_assist();
    scav_start_background();
    return s;
}

void mheap_free_span(mspan *s) {
    size_t guard = 0;
    if (SPAN_GUARD_PAGES) {
        uintptr_t at = s->base + ((uintptr_t)s->npages << GM_PAGE_SHIFT);
        guard = !s->guarded || os_protect((void *)at, SPAN_GUARD_PAGES << GM_PAGE_SHIFT, true)
                    ? SPAN_GUARD_PAGES
                    : 0; /* still inaccessible: never reused */
    }
    gm_lock(&heap_lock);
    spanmap_set(s->base, s->npages, NULL);
    __atomic_store_n(&s->state, SPAN_DEAD, __ATOMIC_RELAXED);
    spans_inuse[s->spanclass]--;
    uintptr_t base = s->base;
    size_t npages = s->npages;
    span_struct_free(s);
    free_pages(base, npages + guard);
    gm_unlock(&heap_lock);
}

/* What a freed large block's first page maps to until the page is used
 * again: a second free of the block then finds it and is reported as a
 * double free, not an invalid pointer.  Never a real span (state DEAD). */
static mspan freed_large = {.state = SPAN_DEAD};

void mheap_free_large(mspan *s, void *p, const char *caller) {
    gm_lock(&heap_lock);
    if (s->state != SPAN_LARGE || s->base != (uintptr_t)p) {
        bool freed = s->state == SPAN_DEAD;
        gm_unlock(&heap_lock);
        gm_bad_pointer(caller, p, freed);
    }
    spanmap_set(s->base, 1, &freed_large);
    __atomic_store_n(&s->state, SPAN_DEAD, __ATOMIC_RELAXED);
    large_frees++;
    large_inuse_objects--;
    large_inuse_bytes -= (size_t)s->npages << GM_PAGE_SHIFT;
    uintptr_t base = s->base;
    size_t npages = s->npages;
    span_struct_free(s);
    if (!large_cache_put(base, npages))
        free_pages(base, npages);
    gm_unlock(&heap_lock);
    scav_assist();
    scav_start_background();
}

bool mheap_resize_large(mspan *s, size_t npages, size_t size) {
    bool ok = true;
    gm_lock(&heap_lock);
    size_t old = s->npages;
    uintptr_t end = s->base + (old << GM_PAGE_SHIFT);
    if (npages < old) {
        free_pages(s->base + (npages << GM_PAGE_SHIFT), old - npages);
    } else if (npages > old) {
        size_t nscav, more = npages - old;
        bool admitted = scav_admit_locked(pages_inuse, more);
        ok = admitted && pagealloc_alloc_at(end, more, &nscav);
        if (!ok && admitted && end == arena_committed_end()) {
            /* The block ends the heap: grow the heap under it. */
            uintptr_t addr;
            size_t got;
            ok = arena_grow(more << GM_PAGE_SHIFT, &addr, &got) &&
                 pagealloc_grow(addr, got >> GM_PAGE_SHIFT) && addr == end &&
                 pagealloc_alloc_at(end, more, &nscav);
        }
        if (ok) {
            pages_inuse += more;
            scav_note_locked(pages_inuse);
        }
    }
    if (ok) {
        large_inuse_bytes += (npages << GM_PAGE_SHIFT);
        large_inuse_bytes -= (old << GM_PAGE_SHIFT);
        s->npages = (uint32_t)npages;
        s->large_size = size;
    }
    gm_unlock(&heap_lock);
    return ok;
}

size_t mheap_release_all(void) {
    size_t n = scav_release_all();
    scav_start_background();
    return n;
}

void mheap_scavenge_tick(void) { scav_assist(); }

void mheap_start_background(void) { scav_start_background(); }

void mheap_set_memory_limit(size_t bytes, bool hard) { scav_set_limit(bytes, hard); }

size_t mheap_get_memory_limit(bool *hard) { return scav_get_limit(hard); }

void mheap_set_idle_work(void (*fn)(void)) { scav_set_idle_work(fn); }

void mheap_lock(void) { gm_lock(&heap_lock); }
void mheap_unlock(void) { gm_unlock(&heap_lock); }

size_t mheap_large_cache_pages_locked(void) { return large_cache_pages; }

void mheap_large_cache_expire_locked(uint64_t older_than) {
    if (large_cache_pages)
        large_cache_expire(older_than);
}

void mheap_for_each_small_span(void (*fn)(mspan *s, void *arg), void *arg) {
    for (size_t ai = 0; ai < GM_MAX_ARENAS; ai++) {
        heaparena *ha = __atomic_load_n(&gm_arenas[ai], __ATOMIC_ACQUIRE);
        if (!ha)
            continue;
        uintptr_t arena_base = gm_heap_base + (ai << GM_ARENA_SHIFT);
        for (size_t pg = 0; pg < GM_ARENA_PAGES;) {
            mspan *s = ha->spans[pg];
            uintptr_t a = arena_base + (pg << GM_PAGE_SHIFT);
            if (s && s->state == SPAN_SMALL && s->base == a) {
                pg += s->npages;
                fn(s, arg); /* may free s */
            } else {
                pg++;
            }
        }
    }
}

void mheap_lock_for_fork(void) { gm_lock(&heap_lock); }

void mheap_unlock_after_fork(bool child) {
    if (child)
        gm_lock_reinit(&heap_lock);
    else
        gm_unlock(&heap_lock);
}

void mheap_read_stats(mheap_stats *out) {
    gm_lock(&heap_lock);
    out->sys = arena_committed_bytes();
    out->inuse = pages_inuse << GM_PAGE_SHIFT;
    out->idle = out->sys - out->inuse;
    out->released = pagealloc_scav_pages() << GM_PAGE_SHIFT;
    out->meta = os_metadata_bytes();
    out->large_inuse_bytes = large_inuse_bytes;
    out->large_inuse_objects = large_inuse_objects;
    out->large_allocs = large_allocs;
    out->large_frees = large_frees;
    out->span_allocs = span_allocs;
    out->os_maps = arena_os_maps();
    out->scavenged_bytes = scav_released_bytes();
    memcpy(out->spans_inuse, spans_inuse, sizeof spans_inuse);
    gm_unlock(&heap_lock);
}
