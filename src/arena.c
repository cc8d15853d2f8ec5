/*
 * Arenas and the span map.
 *
 * The heap lives in one 1 TiB window of address space, chosen at start-up
 * (the first free candidate among a few high addresses, like Go's arena
 * hints).  Nothing is mapped up front: the heap is mapped read-write and
 * charged to the kernel's commit limit in 4 MiB chunk steps, only when the
 * page allocator runs out, next to the previous step whenever that address
 * range is free (so large objects can span steps) and further up the window
 * when something else lives there.  Address space used is therefore the
 * heap itself plus its metadata, and an impossible request is refused by
 * the kernel's overcommit rules instead of being granted and killed later.
 *
 * The heap starts at a random chunk in the lowest quarter of the window
 * (ASLR: 16 bits of entropy at 4 MiB granularity), so heap addresses differ
 * in every process; the three quarters above leave room to grow.
 *
 * Huge pages: see advise_hugepages.
 *
 * The span map is one flat page -> span table (arena.h) over the range the
 * heap has committed, so spanof() is a subtraction, a shift, a bound test
 * and two loads.  It lives at its home, the top 1 GiB of the window, which
 * the heap never uses: as the heap grows, the entries for its new pages are
 * mapped right after the table's end and npages grows, so nothing moves or
 * is copied (a copy would fault in every page of the new table under the
 * heap lock: 7 ms at 2 GiB of heap on this project's machine).  It is
 * metadata mapped read-write without a commit charge, and touched only
 * where an entry is written.  Only when the heap grows below the table's
 * origin (its window's top is full and it wraps to the bottom), or
 * something else occupies the table's home, is a new table, at least twice
 * the size, made elsewhere: the entries are copied (skipping blocks of
 * zeros, which need no page), the new table is published, and the old one
 * stays mapped for readers that still hold it.  A table is 1/1024 of the
 * heap's address range.  Which 64 MiB arenas hold committed memory is kept
 * in a bitmap, for walks over every span.
 *
 * Locking: everything that changes state here runs under the heap lock.
 * spanof() readers take no lock: see the ordering argument at spanof.
 * Entries are written before the span's memory is handed out and cleared
 * only when the span is freed.
 */
#include "arena.h"

#include <errno.h>
#include <string.h>

#include "options.h"
#include "os.h"

uintptr_t gm_heap_base;

static spanmap no_spanmap; /* before the heap exists: no entries */
struct mspan **gm_spanmap_entries = no_spanmap.entries;

/* Committed 64 MiB arenas, by window offset >> GM_ARENA_SHIFT. */
static uint64_t arena_bits[GM_MAX_ARENAS / 64];

static uintptr_t committed_end; /* end of the most recent mapping step */
static size_t committed_bytes;
static uint64_t os_maps;

/* Candidate windows: far from the program image, libraries, stacks and the
 * brk heap, and off Go's own 0xc000000000 hint in case a Go library is
 * loaded into the same process. */
static const uintptr_t window_hints[] = {
#if defined(GM_TSAN)
    /* ThreadSanitizer allows application memory only in a few ranges. */
    0x7e8000000000ull,
#endif
    0x100000000000ull, 0x200000000000ull, 0x300000000000ull, 0x500000000000ull,
    0x080000000000ull, 0x600000000000ull,
};

/* The heap's first chunk lies this far into the window at most. */
#define ASLR_SPAN (GM_HEAP_RANGE / 4)
/* How often a grow step looks further up the window before giving up. */
#define GROW_PROBES 4096

/* Entries per block the table copy skips when it holds only zeros: a 4 KiB
 * page of them, so a block never written is never touched in the new table. */
#define COPY_BLOCK (4096 / sizeof(struct mspan *))

static size_t spanmap_bytes(size_t npages) {
    return sizeof(spanmap) + npages * sizeof(struct mspan *);
}

static uintptr_t spanmap_home(void) { return gm_heap_base + GM_HEAP_USABLE; }
static size_t home_mapped; /* bytes mapped at the home so far */

/* Maps the home's bytes up to `need` (page aligned).  False if the kernel
 * refuses or something else is mapped there. */
static bool home_map(size_t need) {
    if (need > GM_SPANMAP_HOME_BYTES)
        return false;
    if (need > home_mapped) {
        if (os_alloc_metadata_at(spanmap_home() + home_mapped, need - home_mapped) != 0)
            return false;
        home_mapped = need;
    }
    return true;
}

static size_t home_bytes(size_t npages) { return gm_align_up(spanmap_bytes(npages), 4096); }

/* Makes the span map cover [lo, hi) (arena aligned): in place at its home,
 * or by a larger table elsewhere.  False if the table cannot be mapped. */
static bool spanmap_cover(uintptr_t lo, uintptr_t hi) {
    spanmap *old = spanmap_of_entries(gm_spanmap_entries);
    uintptr_t old_end = old->origin + (old->npages << GM_PAGE_SHIFT);
    if (old->npages && lo >= old->origin && hi <= old_end)
        return true;
    if (old->npages == 0 || ((uintptr_t)old == spanmap_home() && lo >= old->origin)) {
        spanmap *m = (spanmap *)spanmap_home();
        uintptr_t origin = old->npages ? old->origin : lo;
        size_t npages = (hi - origin) >> GM_PAGE_SHIFT;
        if (home_map(home_bytes(npages))) {
            if (old->npages == 0) {
                m->origin = origin;
                __atomic_store_n(&m->npages, npages, __ATOMIC_RELAXED);
                __atomic_store_n(&gm_spanmap_entries, m->entries, __ATOMIC_RELEASE);
            } else {
                __atomic_store_n(&m->npages, npages, __ATOMIC_RELEASE);
            }
            return true;
        }
    }
    if (old->npages) {
        lo = lo < old->origin ? lo : old->origin;
        hi = hi > old_end ? hi : old_end;
        /* At least double, so the copies cost O(1) per entry overall. */
        size_t want = 2 * (old->npages << GM_PAGE_SHIFT);
        if (hi - lo < want)
            hi = lo + want;
    }
    uintptr_t heap_end = gm_heap_base + GM_HEAP_USABLE;
    if (hi > heap_end)
        hi = heap_end;
    size_t npages = (hi - lo) >> GM_PAGE_SHIFT;
    spanmap *m = os_alloc_metadata(spanmap_bytes(npages));
    if (!m)
        return false;
    m->origin = lo;
    m->npages = npages;
    size_t shift = (old->origin - lo) >> GM_PAGE_SHIFT; /* old entry i is new entry shift + i */
    for (size_t i = 0; i < old->npages; i += COPY_BLOCK) {
        size_t n = old->npages - i < COPY_BLOCK ? old->npages - i : COPY_BLOCK;
        for (size_t j = 0; j < n; j++) {
            if (old->entries[i + j]) {
                memcpy(&m->entries[shift + i], &old->entries[i], n * sizeof(struct mspan *));
                break;
            }
        }
    }
    __atomic_store_n(&gm_spanmap_entries, m->entries, __ATOMIC_RELEASE);
    return true;
}

static bool add_arena_metadata(uintptr_t start, size_t bytes) {
    uintptr_t lo = gm_align_down(start, GM_ARENA_SIZE);
    uintptr_t hi = gm_align_up(start + bytes, GM_ARENA_SIZE);
    if (!spanmap_cover(lo, hi))
        return false;
    for (uintptr_t a = lo; a < hi; a += GM_ARENA_SIZE) {
        size_t ai = (a - gm_heap_base) >> GM_ARENA_SHIFT;
        arena_bits[ai / 64] |= (uint64_t)1 << (ai % 64);
    }
    return true;
}

bool arena_present(size_t ai) {
    return ai < GM_MAX_ARENAS && (arena_bits[ai / 64] >> (ai % 64) & 1);
}

/* A window whose start region is free right now; 0 if none is.  The probe
 * is unmapped again: nothing is kept until the heap first grows. */
static uintptr_t pick_window(uintptr_t offset) {
    for (size_t i = 0; i < sizeof window_hints / sizeof window_hints[0]; i++) {
        void *p = os_reserve_at(window_hints[i] + offset, GM_CHUNK_SIZE);
        if (p) {
            os_unmap(p, GM_CHUNK_SIZE);
            return window_hints[i];
        }
    }
    return 0;
}

bool arena_init(void) {
    uintptr_t offset = (uintptr_t)(os_random() % (ASLR_SPAN / GM_CHUNK_SIZE)) * GM_CHUNK_SIZE;
    uintptr_t base = pick_window(offset);
    if (!base)
        return false;
    gm_heap_base = base;
    committed_end = base + offset;
    return true;
}

/* Huge pages cut TLB misses and page faults (on this project's machine the
 * frag benchmark takes 85x fewer faults and a tenth of the user time with
 * them) but round RSS up to 2 MiB steps: a program that callocs large
 * blocks and touches them sparsely pays whole huge pages (bench/calloc: peak
 * RSS 48 MiB against 2.6 MiB, and 4x the time).  So by default
 * (GOMALLOC_THP=kernel) the heap gives the kernel no advice and its THP
 * mode decides; GOMALLOC_THP=auto asks for them (MADV_HUGEPAGE, which the
 * kernel's usual "madvise" mode honours) on memory mapped once the heap has
 * passed THP_AUTO_BYTES.  The scavenger keeps dense huge pages whole either
 * way.  Metadata never asks (os_alloc_metadata). */
#define THP_AUTO_BYTES ((size_t)64 << 20)

static void advise_hugepages(uintptr_t at, size_t bytes) {
    switch (gm_opt.thp) {
    case GM_THP_AUTO:
        if (committed_bytes >= THP_AUTO_BYTES)
            os_hugepages((void *)at, bytes, true);
        break;
    case GM_THP_ALWAYS: os_hugepages((void *)at, bytes, true); break;
    case GM_THP_NEVER: os_hugepages((void *)at, bytes, false); break;
    default: break; /* GM_THP_KERNEL: no advice */
    }
}

bool arena_grow(size_t bytes, uintptr_t *addr, size_t *got) {
    if (bytes > GM_HEAP_RANGE)
        return false;
    bytes = gm_align_up(bytes, GM_CHUNK_SIZE);
    os_keep_metadata_reserve();
    uintptr_t window_end = gm_heap_base + GM_HEAP_USABLE; /* the span map's home above */
    uintptr_t at = committed_end;
    bool wrapped = false;
    for (int tries = 0;; tries++) {
        if (tries == GROW_PROBES)
            return false;
        if (at + bytes > window_end || at + bytes < at) {
            /* The window above is full: try its bottom, below the random
             * start, once. */
            if (wrapped)
                return false;
            wrapped = true;
            at = gm_heap_base;
            continue;
        }
        int err = os_map_at(at, bytes);
        if (err == 0)
            break;
        if (err != EEXIST)
            return false; /* the kernel refused the commit */
        /* Something else lives here: skip ahead, faster the longer we look. */
        at += GM_CHUNK_SIZE * (size_t)(1 + tries);
    }
    if (!add_arena_metadata(at, bytes)) {
        os_unmap((void *)at, bytes); /* leave no hole we would trip over */
        return false;
    }
    advise_hugepages(at, bytes);
    *addr = at;
    *got = bytes;
    committed_end = at + bytes;
    committed_bytes += bytes;
    os_maps++;
    return true;
}

uintptr_t arena_committed_end(void) { return committed_end; }

void spanmap_set(uintptr_t base, size_t npages, struct mspan *s) {
    spanmap *m = spanmap_of_entries(gm_spanmap_entries);
    size_t first = (base - m->origin) >> GM_PAGE_SHIFT;
    for (size_t i = 0; i < npages; i++)
        __atomic_store_n(&m->entries[first + i], s, __ATOMIC_RELEASE);
}

size_t arena_committed_bytes(void) { return committed_bytes; }
uint64_t arena_os_maps(void) { return os_maps; }
