/*
 * mheap: the one heap.  It owns the page allocator, the arenas (through
 * arena.c), the mspan structures and large objects; the scavenger
 * (mgcscavenge.c) works on its free pages.
 *
 * - Pages: 8 KiB.  A span is a run of pages; small-object spans come in the
 *   page count of their size class, large spans in whatever a request needs
 *   (aligned when asked).  Free pages coalesce implicitly in the page
 *   allocator's bitmaps.
 * - Span structs come from slabs of metadata, one struct size per slab,
 *   recycled through per-slab free lists; the pages of a slab with no struct
 *   in use go back to the OS on malloc_trim and when the heap is idle, but
 *   are never unmapped, so a stale pointer to a struct is always safe to
 *   read.  mheap hands out bare spans (pages, a zeroed struct, the span
 *   map); the slot state and its ownership are mspan's and mcache's
 *   business.
 * - The scavenger (mgcscavenge.c) decides when free pages go back to the OS
 *   and does that work outside the heap lock; mheap tells it, under the
 *   lock, what went into and out of use (scav_*_locked), and gives it a
 *   bounded turn (scav_assist) after it has dropped the lock on its large
 *   paths and before mcentral asks for a span.  Pages just freed are the
 *   first reused (first fit), so a churn of large objects keeps its pages
 *   resident instead of faulting them in again.
 * - Large objects: the last few freed runs of up to 1 MiB are kept as they
 *   are and handed out again for the same page count (see large_cache).
 *   Before that, a thread's page cache (mpagecache.c) may keep the span
 *   whole: its state goes SPAN_LARGE -> SPAN_PARKED and back without the
 *   heap lock, by CAS (large_leave), which is also how every large free
 *   begins, so that of two frees of one block exactly one succeeds.
 *
 * Locking: heap_lock guards everything here, and the scavenger's [heap]
 * state (it takes the lock through mheap_lock), except a large span's
 * state, which moves by CAS as above (LARGE -> DEAD only under the lock).  It is the innermost
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

/* ---- metadata allocator for span structs ----
 *
 * Span structs come in a few sizes (one per slot-bitmap size, tiny, large).
 * They are cut from 256 KiB slabs, each holding structs of one size, aligned
 * so that a struct finds its slab by masking its address.  A slab's header
 * sits in its first bytes; a slab with free structs is on its kind's list.
 * A slab whose structs are all free can give its pages, all but the first
 * (the header's), back to the OS (meta_release_empty: malloc_trim and an
 * idle heap): a GiB of small objects needs about 26 MiB of structs.  The
 * pages stay mapped, so a stale pointer to a struct still reads safely (it
 * reads zeros, as a cleared struct would). */

#define META_SLAB ((size_t)256 << 10)
#define META_PAGE ((size_t)4096) /* the OS page: the unit given back */
#define META_KINDS 8

typedef struct meta_slab {
    struct meta_slab *next, *prev; /* its kind's list of slabs with room */
    mspan *free;                   /* freed structs */
    char *bump;                    /* never-used space starts here */
    uint32_t size;                 /* struct size */
    uint32_t nlive;                /* structs handed out */
    bool listed;                   /* on its kind's list */
} meta_slab;

/* Per struct size: slabs with room (doubly linked), and slabs given back to
 * the OS (linked through next), used only when no slab with room is left,
 * so that resident memory is used first. */
static struct { size_t size; meta_slab *avail, *clean; } meta_kinds[META_KINDS];
/* Slabs being given back, the lock dropped meanwhile. */
#define META_BATCH 32
static meta_slab *meta_inflight[META_BATCH];
static unsigned meta_ninflight;

#define META_FIRST ((sizeof(meta_slab) + 63) & ~(size_t)63)

static meta_slab *meta_slab_of(const void *s) {
    return (meta_slab *)((uintptr_t)s & ~(uintptr_t)(META_SLAB - 1));
}

static bool meta_slab_has_room(const meta_slab *m) {
    return m->free || (size_t)((char *)m + META_SLAB - m->bump) >= m->size;
}

static void meta_list_add(unsigned kind, meta_slab *m) {
    m->prev = NULL;
    m->next = meta_kinds[kind].avail;
    if (m->next)
        m->next->prev = m;
    meta_kinds[kind].avail = m;
    m->listed = true;
}

static void meta_list_remove(unsigned kind, meta_slab *m) {
    if (m->prev)
        m->prev->next = m->next;
    else
        meta_kinds[kind].avail = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->listed = false;
}

static void meta_clean_push(unsigned kind, meta_slab *m) {
    m->next = meta_kinds[kind].clean;
    meta_kinds[kind].clean = m;
}

static unsigned meta_kind(size_t size) {
    for (unsigned i = 0; i < META_KINDS; i++) {
        if (meta_kinds[i].size == size || meta_kinds[i].size == 0) {
            meta_kinds[i].size = size;
            return i;
        }
    }
    /* More struct sizes than kinds cannot happen (5 bitmap sizes, tiny, large). */
    gm_fatal("span struct sizes exceed the metadata kinds", NULL);
}

static mspan *span_struct_take(size_t size) {
    size = gm_align_up(size, 64);
    unsigned kind = meta_kind(size);
    meta_slab *m = meta_kinds[kind].avail;
    if (!m && (m = meta_kinds[kind].clean) != NULL) {
        meta_kinds[kind].clean = m->next;
        meta_list_add(kind, m);
    } else if (!m) {
        m = os_alloc_metadata_aligned(META_SLAB, META_SLAB);
        if (!m)
            return NULL;
        m->size = (uint32_t)size;
        m->bump = (char *)m + META_FIRST;
        meta_list_add(kind, m);
    }
    mspan *s;
    if (m->free) {
        s = m->free;
        m->free = s->next;
    } else {
        s = (mspan *)m->bump;
        m->bump += size;
    }
    m->nlive++;
    if (!meta_slab_has_room(m))
        meta_list_remove(kind, m);
    return s;
}

static void span_struct_free(mspan *s) {
    meta_slab *m = meta_slab_of(s);
    s->next = m->free;
    m->free = s;
    m->nlive--;
    if (!m->listed)
        meta_list_add(meta_kind(m->size), m);
}

/* Gives back the pages of slabs whose structs are all free, up to
 * META_BATCH per turn of the lock: the madvise runs with the heap lock
 * dropped, the slabs off their list and reset (no free structs, all space
 * unused) meanwhile; then they go on the clean list. */
static void meta_release_empty(void) {
    for (unsigned kind = 0; kind < META_KINDS; kind++) {
        for (;;) {
            gm_lock(&heap_lock);
            unsigned n = 0;
            if (!meta_ninflight) { /* one releaser at a time */
                for (meta_slab *m = meta_kinds[kind].avail, *next; m && n < META_BATCH; m = next) {
                    next = m->next;
                    if (m->nlive)
                        continue;
                    meta_list_remove(kind, m);
                    m->free = NULL;
                    m->bump = (char *)m + META_FIRST;
                    meta_inflight[n++] = m;
                }
                meta_ninflight = n;
            }
            gm_unlock(&heap_lock);
            if (!n)
                break;
            for (unsigned i = 0; i < n; i++) /* refused: stays dirty, harmless */
                os_release((char *)meta_inflight[i] + META_PAGE, META_SLAB - META_PAGE);
            gm_lock(&heap_lock);
            for (unsigned i = 0; i < n; i++)
                meta_clean_push(kind, meta_inflight[i]);
            meta_ninflight = 0;
            gm_unlock(&heap_lock);
        }
    }
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
    mspan *s = span_struct_take(size);
    if (s)
        span_struct_clear(s, size);
    return s;
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
    if (SPAN_GUARD_PAGES) {
        /* Marked before the mprotect: a fork child sees the page protected
         * if the call came before the fork, but not a store made after the
         * call, and a span it believed unguarded would give a protected page
         * back to the heap.  Marked and still open is harmless:
         * mheap_free_span lifts the guard of a marked span, and lifting an
         * open page changes nothing. */
        __atomic_store_n(&s->guarded, 1, __ATOMIC_RELAXED); /* a store the call cannot drop */
        s->guarded = os_protect((void *)(base + (npages << GM_PAGE_SHIFT)),
                                SPAN_GUARD_PAGES << GM_PAGE_SHIFT, false);
    }
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
    /* After base (a release): a racing double free's CAS reads it (large_leave). */
    __atomic_store_n(&s->state, SPAN_LARGE, __ATOMIC_RELEASE);
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

/* The end of a large object's life, whoever ends it: LARGE to `to` with a
 * CAS, so that of two frees of one block (here or in a page cache) exactly
 * one wins.  False if s is not a live large object at p.
 *
 * A racing double free may hold a struct that has since been recycled for
 * another block: its CAS then succeeds on that block's state.  The struct's
 * base is written before its state (a release store, in mheap_alloc_large),
 * so after the CAS (an acquire) the base tells: not ours, the state is put
 * back and the free is reported. */
static bool large_leave(mspan *s, const void *p, uint8_t to) {
    uint8_t expect = SPAN_LARGE;
    if (!__atomic_compare_exchange_n(&s->state, &expect, to, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return false;
    if (likely(__atomic_load_n(&s->base, __ATOMIC_RELAXED) == (uintptr_t)p))
        return true;
    __atomic_store_n(&s->state, SPAN_LARGE, __ATOMIC_RELEASE);
    return false;
}

/* Gives a large span's pages back; heap lock held, state already DEAD. */
static void large_release_locked(mspan *s) {
    spanmap_set(s->base, 1, &freed_large);
    large_inuse_objects--;
    large_inuse_bytes -= (size_t)s->npages << GM_PAGE_SHIFT;
    uintptr_t base = s->base;
    size_t npages = s->npages;
    span_struct_free(s);
    if (!large_cache_put(base, npages))
        free_pages(base, npages);
}

void mheap_free_large(mspan *s, void *p, const char *caller) {
    /* The state changes under the lock: a fork cannot land between the
     * object's death and its pages' return (the child would leak them). */
    gm_lock(&heap_lock);
    if (!large_leave(s, p, SPAN_DEAD)) {
        gm_unlock(&heap_lock);
        uint8_t state = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
        if (state == SPAN_LARGE || state == SPAN_PARKED) /* its size is still known */
            gm_bad_pointer_hint(caller, p, state == SPAN_PARKED && s->base == (uintptr_t)p,
                                (size_t)s->npages << GM_PAGE_SHIFT, s->base != (uintptr_t)p);
        gm_bad_pointer(caller, p, state == SPAN_DEAD);
    }
    large_frees++;
    large_release_locked(s);
    gm_unlock(&heap_lock);
    scav_assist();
    scav_start_background();
}

/* Set at the first park: a fork child of a process that never parked a
 * span skips the walk for lost ones.  (A count would cost every large free
 * an atomic add on a line all threads share.) */
static bool ever_parked;

bool mheap_park_large(mspan *s, const void *p) {
    if (!large_leave(s, p, SPAN_PARKED))
        return false;
    if (unlikely(!__atomic_load_n(&ever_parked, __ATOMIC_RELAXED)))
        __atomic_store_n(&ever_parked, true, __ATOMIC_RELAXED);
    return true;
}

void mheap_unpark_large(mspan *s, size_t size) {
    s->large_size = size;
    s->zeroed = false;
    __atomic_store_n(&s->state, SPAN_LARGE, __ATOMIC_RELEASE);
}

void mheap_free_parked(mspan *s) {
    gm_lock(&heap_lock);
    __atomic_store_n(&s->state, SPAN_DEAD, __ATOMIC_RELAXED);
    large_release_locked(s);
    gm_unlock(&heap_lock);
    scav_assist();
}

bool mheap_ever_parked(void) { return __atomic_load_n(&ever_parked, __ATOMIC_RELAXED); }

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
    meta_release_empty();
    scav_start_background();
    return n;
}

size_t mheap_release_span_pages(uintptr_t addr, size_t bytes) {
    return os_release((void *)addr, bytes) ? bytes : 0;
}

void mheap_scavenge_tick(void) { scav_assist(); }

void mheap_start_background(void) { scav_start_background(); }

void mheap_set_memory_limit(size_t bytes, bool hard) { scav_set_limit(bytes, hard); }

size_t mheap_get_memory_limit(bool *hard) { return scav_get_limit(hard); }

/* Once a tick the tiers above do their work; on an idle heap the span
 * structs that freed are then given back too. */
static void (*upper_tick_work)(bool heap_idle);

static void tick_work(bool heap_idle) {
    void (*fn)(bool) = __atomic_load_n(&upper_tick_work, __ATOMIC_ACQUIRE);
    if (fn)
        fn(heap_idle);
    if (heap_idle)
        meta_release_empty();
}

void mheap_set_tick_work(void (*fn)(bool heap_idle)) {
    __atomic_store_n(&upper_tick_work, fn, __ATOMIC_RELEASE);
    scav_set_tick_work(tick_work);
}

void mheap_lock(void) { gm_lock(&heap_lock); }
void mheap_unlock(void) { gm_unlock(&heap_lock); }

size_t mheap_large_cache_pages_locked(void) { return large_cache_pages; }

void mheap_large_cache_expire_locked(uint64_t older_than) {
    if (large_cache_pages)
        large_cache_expire(older_than);
}

/* Calls fn on every span in the given state, by walking the span map over
 * the committed arenas: a span is found at its first page. */
static void for_each_span(uint8_t state, void (*fn)(mspan *s, void *arg), void *arg) {
    for (size_t ai = 0; ai < GM_MAX_ARENAS; ai++) {
        if (!arena_present(ai))
            continue;
        uintptr_t arena_base = gm_heap_base + (ai << GM_ARENA_SHIFT);
        for (size_t pg = 0; pg < GM_ARENA_PAGES;) {
            uintptr_t a = arena_base + (pg << GM_PAGE_SHIFT);
            mspan *s = spanof((void *)a);
            if (s && s->state == state && s->base == a) {
                pg += s->npages; /* read first: fn may free s */
                fn(s, arg);
            } else {
                pg++;
            }
        }
    }
}

void mheap_for_each_small_span(void (*fn)(mspan *s, void *arg), void *arg) {
    for_each_span(SPAN_SMALL, fn, arg);
}

void mheap_for_each_parked_span(void (*fn)(mspan *s, void *arg), void *arg) {
    for_each_span(SPAN_PARKED, fn, arg);
}

void mheap_lock_for_fork(void) { gm_lock(&heap_lock); }

void mheap_unlock_after_fork(bool child) {
    if (child) {
        gm_lock_reinit(&heap_lock);
        for (unsigned i = 0; i < meta_ninflight; i++) /* releases cut short by the fork */
            meta_clean_push(meta_kind(meta_inflight[i]->size), meta_inflight[i]);
        meta_ninflight = 0;
    } else {
        gm_unlock(&heap_lock);
    }
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
