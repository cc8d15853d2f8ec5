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
 * Each 64 MiB arena the heap touches gets a heaparena with its page -> span
 * table; gm_arenas indexes them by (address - window base) >> 26, so spanof()
 * is two loads.
 *
 * Locking: everything that changes state here runs under the heap lock.
 * spanof() readers take no lock: arena pointers are published with release
 * stores and never retracted; span map entries are written before the span's
 * memory is handed out and cleared only when the span is freed.
 */
#include "arena.h"

#include <errno.h>

#include "options.h"
#include "os.h"

uintptr_t gm_heap_base;
heaparena *gm_arenas[GM_MAX_ARENAS];

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

static bool add_arena_metadata(uintptr_t start, size_t bytes) {
    uintptr_t first = gm_align_down(start, GM_ARENA_SIZE);
    for (uintptr_t a = first; a < start + bytes; a += GM_ARENA_SIZE) {
        size_t idx = (a - gm_heap_base) >> GM_ARENA_SHIFT;
        if (idx >= GM_MAX_ARENAS)
            return false;
        if (gm_arenas[idx])
            continue;
        heaparena *ha = os_alloc_metadata(sizeof(heaparena));
        if (!ha)
            return false;
        __atomic_store_n(&gm_arenas[idx], ha, __ATOMIC_RELEASE);
    }
    return true;
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
    uintptr_t window_end = gm_heap_base + GM_HEAP_RANGE;
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
    for (size_t i = 0; i < npages; i++) {
        uintptr_t off = base + (i << GM_PAGE_SHIFT) - gm_heap_base;
        heaparena *a = gm_arenas[off >> GM_ARENA_SHIFT];
        __atomic_store_n(&a->spans[(off >> GM_PAGE_SHIFT) & (GM_ARENA_PAGES - 1)], s,
                         __ATOMIC_RELEASE);
    }
}

size_t arena_committed_bytes(void) { return committed_bytes; }
uint64_t arena_os_maps(void) { return os_maps; }
