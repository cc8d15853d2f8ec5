/*
 * mheap: the one heap.  It owns the page allocator, the arenas (through
 * arena.c), the mspan structures, large objects, and the scavenger's policy.
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
 * - Scavenger: pages that stayed free for opt.scavenge_delay go back to the OS
 *   (MADV_DONTNEED), checked at most every opt.scavenge_tick on slow paths;
 *   free dirty pages above max(opt.retain, recent peak in-use) go back at
 *   once, where the recent peak covers the last one or two delay windows.  Pages
 *   just freed are the first reused (first fit), so a churn of large objects
 *   keeps its pages resident instead of faulting them in again.
 * - With a memory limit (GOMALLOC_MEMLIMIT_MB, Go's GOMEMLIMIT) the scavenger
 *   keeps in-use plus dirty free pages under 95% of it, releasing
 *   synchronously when an allocation or free would cross it.
 *   GOMALLOC_BACKGROUND=1 adds Go's background scavenger as a thread.
 * - Large objects: the last few freed runs of up to 1 MiB are kept as they
 *   are and handed out again for the same page count (see large_cache).
 *
 * Locking: heap_lock guards everything here.  It is the innermost allocator
 * lock: mcentral drops its own lock before it calls in, and only fork()
 * preparation holds both (mcentral's first).  Nothing here calls up.
 */
#define _GNU_SOURCE
#include "mheap.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "mpagealloc.h"
#include "options.h"
#include "os.h"

static gm_lock_t heap_lock = GM_LOCK_INIT;


static size_t pages_inuse;
static size_t large_inuse_bytes, large_inuse_objects;
static uint64_t large_allocs, large_frees, span_allocs, scavenged_bytes;
static uint64_t spans_inuse[GM_NUM_SPAN_CLASSES];
static uint64_t last_tick;
/* The most pages in use in the current and the previous scavenge-delay
 * window: what the program may well need again soon. */
static size_t peak_cur, peak_prev;
static uint64_t window_start;

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
    return true;
}

static uintptr_t large_cache_take(size_t npages, size_t align_pages) {
    for (unsigned i = 0; i < LARGE_CACHE_SLOTS; i++) {
        uintptr_t base = large_cache[i].base;
        if (base && large_cache[i].npages == npages &&
            (base & ((align_pages << GM_PAGE_SHIFT) - 1)) == 0) {
            large_cache[i].base = 0;
            large_cache_pages -= npages;
            pages_inuse += npages;
            return base;
        }
    }
    return 0;
}

/* ---- pages ---- */

/* When the kernel refuses to release pages (mlocked memory, a seccomp
 * filter), the automatic scavenger waits this long before it asks again, so
 * a process where every madvise fails pays one failed call per interval
 * rather than one per free.  malloc_trim always asks. */
#define RELEASE_RETRY_NS ((uint64_t)1000000000)
static uint64_t release_refused_at;
static bool release_ever_refused;

static bool release_to_os(uintptr_t addr, size_t bytes) {
    if (!os_release((void *)addr, bytes)) {
        release_ever_refused = true;
        release_refused_at = gm_nanotime();
        return false;
    }
    scavenged_bytes += bytes;
    return true;
}

/* Free dirty pages over the retain limit go back now; pages free for longer
 * than the delay go back on each tick. */
static void scavenge_locked(uint64_t now) {
    if (now - window_start >= gm_opt.scavenge_delay_ns) {
        peak_prev = peak_cur;
        peak_cur = pages_inuse;
        window_start = now;
    }
    if (now - last_tick >= gm_opt.scavenge_tick_ns && now > gm_opt.scavenge_delay_ns)
        large_cache_expire(now - gm_opt.scavenge_delay_ns);
    size_t dirty = pagealloc_free_pages() - pagealloc_scav_pages();
    size_t limit = gm_opt.retain_bytes >> GM_PAGE_SHIFT;
    if (limit < peak_cur)
        limit = peak_cur;
    if (limit < peak_prev)
        limit = peak_prev;
    if (release_ever_refused && now - release_refused_at < RELEASE_RETRY_NS)
        return;
    if (gm_opt.memlimit_bytes) {
        /* Go's memory limit: keep in-use plus dirty free pages under 95% of
         * it, whatever their age. */
        size_t goal = (gm_opt.memlimit_bytes >> GM_PAGE_SHIFT) / 20 * 19;
        size_t room = goal > pages_inuse ? goal - pages_inuse : 0;
        if (limit > room)
            limit = room;
    }
    if (dirty > limit)
        dirty -= pagealloc_scavenge(dirty - limit, UINT64_MAX, release_to_os);
    if (dirty && now - last_tick >= gm_opt.scavenge_tick_ns) {
        __atomic_store_n(&last_tick, now, __ATOMIC_RELAXED);
        if (now > gm_opt.scavenge_delay_ns)
            pagealloc_scavenge(SIZE_MAX, now - gm_opt.scavenge_delay_ns, release_to_os);
    }
}

static uintptr_t alloc_pages(size_t npages, size_t align_pages, bool *zeroed) {
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
        a = pagealloc_alloc(npages, align_pages, &nscav);
        if (!a)
            return 0;
    }
    *zeroed = nscav == npages;
    pages_inuse += npages;
    if (pages_inuse > peak_cur)
        peak_cur = pages_inuse;
    gm_note_peak_pages(pages_inuse); /* PeakHeapInuse in the stats (mstats.c) */
    if (gm_opt.memlimit_bytes && nscav < npages)
        scavenge_locked(gm_nanotime()); /* reusing dirty pages may free room under the limit */
    return a;
}

static void free_pages(uintptr_t base, size_t npages) {
    uint64_t now = gm_nanotime();
    pagealloc_free(base, npages, now);
    pages_inuse -= npages;
    scavenge_locked(now);
}


/* ---- the API ---- */

bool mheap_init(void) {
    gm_lock(&heap_lock);
    bool ok = arena_init() && pagealloc_init(gm_heap_base);
    gm_unlock(&heap_lock);
    return ok;
}

mspan *mheap_alloc_small(unsigned spc) {
    unsigned sc = spc == GM_TINY_SPAN_CLASS ? gm_size_to_class(GM_TINY_BLOCK) : spc;
    size_t npages = gm_class_npages[sc];

    gm_lock(&heap_lock);
    bool zeroed; /* small objects are cleared by calloc itself */
    uintptr_t base = alloc_pages(npages, 1, &zeroed);
    mspan *s = base ? span_struct_alloc(mspan_struct_size(spc)) : NULL;
    if (!s) {
        if (base)
            free_pages(base, npages);
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
    if (zero && !zeroed && (npages << GM_PAGE_SHIFT) >= ZERO_BY_RELEASE_BYTES)
        zeroed = os_release((void *)base, npages << GM_PAGE_SHIFT); /* else calloc clears it */
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
    return s;
}

void mheap_free_span(mspan *s) {
    gm_lock(&heap_lock);
    spanmap_set(s->base, s->npages, NULL);
    __atomic_store_n(&s->state, SPAN_DEAD, __ATOMIC_RELAXED);
    spans_inuse[s->spanclass]--;
    uintptr_t base = s->base;
    size_t npages = s->npages;
    span_struct_free(s);
    free_pages(base, npages);
    gm_unlock(&heap_lock);
}

void mheap_free_large(mspan *s, void *p, const char *caller) {
    gm_lock(&heap_lock);
    if (s->state != SPAN_LARGE || s->base != (uintptr_t)p) {
        bool freed = s->state == SPAN_DEAD;
        gm_unlock(&heap_lock);
        gm_bad_pointer(caller, p, freed);
    }
    spanmap_set(s->base, 1, NULL);
    __atomic_store_n(&s->state, SPAN_DEAD, __ATOMIC_RELAXED);
    large_frees++;
    large_inuse_objects--;
    large_inuse_bytes -= (size_t)s->npages << GM_PAGE_SHIFT;
    uintptr_t base = s->base;
    size_t npages = s->npages;
    span_struct_free(s);
    if (large_cache_put(base, npages))
        scavenge_locked(gm_nanotime()); /* an eviction may have freed pages */
    else
        free_pages(base, npages);
    gm_unlock(&heap_lock);
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
        ok = pagealloc_alloc_at(end, more, &nscav);
        if (!ok && end == arena_committed_end()) {
            /* The block ends the heap: grow the heap under it. */
            uintptr_t addr;
            size_t got;
            ok = arena_grow(more << GM_PAGE_SHIFT, &addr, &got) &&
                 pagealloc_grow(addr, got >> GM_PAGE_SHIFT) && addr == end &&
                 pagealloc_alloc_at(end, more, &nscav);
        }
        if (ok) {
            pages_inuse += more;
            if (pages_inuse > peak_cur)
                peak_cur = pages_inuse;
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
    gm_lock(&heap_lock);
    large_cache_expire(UINT64_MAX);
    size_t n = pagealloc_scavenge(SIZE_MAX, UINT64_MAX, release_to_os);
    gm_unlock(&heap_lock);
    return n << GM_PAGE_SHIFT;
}

void mheap_scavenge_tick(void) {
    uint64_t now = gm_nanotime();
    if (now - __atomic_load_n(&last_tick, __ATOMIC_RELAXED) < gm_opt.scavenge_tick_ns)
        return;
    if (!gm_trylock(&heap_lock))
        return;
    scavenge_locked(now);
    gm_unlock(&heap_lock);
}

/* Go's background scavenger, as a thread: wakes every tick and releases the
 * pages that stayed free past the delay.  Off by default: a library that
 * starts threads surprises some programs (unshare(), seccomp sandboxes), and
 * the slow paths already release memory while the program allocates. */
static void *background_scavenger(void *arg) {
    (void)arg;
    for (;;) {
        struct timespec ts = {
            .tv_sec = (time_t)(gm_opt.scavenge_tick_ns / 1000000000u),
            .tv_nsec = (long)(gm_opt.scavenge_tick_ns % 1000000000u),
        };
        nanosleep(&ts, NULL);
        gm_lock(&heap_lock);
        scavenge_locked(gm_nanotime());
        gm_unlock(&heap_lock);
    }
    return NULL;
}

void mheap_start_background(void) {
    static int started;
    if (!gm_opt.background || __atomic_exchange_n(&started, 1, __ATOMIC_ACQ_REL))
        return;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_create(&t, &attr, background_scavenger, NULL);
    pthread_attr_destroy(&attr);
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
    out->scavenged_bytes = scavenged_bytes;
    memcpy(out->spans_inuse, spans_inuse, sizeof spans_inuse);
    gm_unlock(&heap_lock);
}
