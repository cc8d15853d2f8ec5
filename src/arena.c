/*
 * Arenas and the span map.
 *
 * The heap lives in one 1 TiB window of address space, chosen at start-up
 * (first free candidate among a few high addresses, like Go's arena hints).
 * Inside it, 64 MiB arenas are reserved PROT_NONE as the heap grows, next to
 * the previous ones whenever possible so large objects can span arenas, and
 * committed read-write in 4 MiB chunk steps.  Each reserved arena gets a
 * heaparena with its page -> span table; gm_arenas indexes them by
 * (address - window base) >> 26, so spanof() is two loads.
 *
 * Locking: everything that changes state here runs under the heap lock.
 * spanof() readers take no lock: arena pointers are published with release
 * stores and never retracted; span map entries are written before the span's
 * memory is handed out and cleared only when the span is freed.
 */
#include "arena.h"

#include "os.h"

uintptr_t gm_heap_base;
heaparena *gm_arenas[GM_MAX_ARENAS];

static uintptr_t reserved_end;  /* end of the current contiguous reservation */
static uintptr_t committed_end; /* [.., committed_end) of it is committed */
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

static bool add_arena_metadata(uintptr_t start, size_t bytes) {
    for (uintptr_t a = start; a < start + bytes; a += GM_ARENA_SIZE) {
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

bool arena_init(void) {
    for (size_t i = 0; i < sizeof window_hints / sizeof window_hints[0]; i++) {
        if (os_reserve_at(window_hints[i], GM_ARENA_SIZE)) {
            gm_heap_base = window_hints[i];
            reserved_end = committed_end = gm_heap_base;
            reserved_end += GM_ARENA_SIZE;
            return add_arena_metadata(gm_heap_base, GM_ARENA_SIZE);
        }
    }
    return false;
}

/* Reserves `bytes` (whole arenas) at the first free place from `from` on. */
static uintptr_t reserve_arenas(uintptr_t from, size_t bytes) {
    uintptr_t limit = gm_heap_base + GM_HEAP_RANGE;
    int tries = 0;
    for (uintptr_t a = from; a + bytes <= limit && a + bytes > a && tries < 4096; tries++) {
        if (os_reserve_at(a, bytes))
            return a;
        /* Something else lives here: skip ahead, faster the longer we look. */
        a += GM_ARENA_SIZE * (size_t)(1 + tries);
    }
    return 0;
}

bool arena_grow(size_t bytes, uintptr_t *addr, size_t *got) {
    if (bytes > GM_HEAP_RANGE)
        return false;
    bytes = gm_align_up(bytes, GM_CHUNK_SIZE);
    uintptr_t start = committed_end;
    if (start + bytes > reserved_end) {
        /* First try to extend the current reservation in place. */
        size_t need = gm_align_up(start + bytes - reserved_end, GM_ARENA_SIZE);
        uintptr_t at = reserved_end;
        uintptr_t window_end = gm_heap_base + GM_HEAP_RANGE;
        if (at + need > window_end || !os_reserve_at(at, need)) {
            /* Something else lives there: start a new run of arenas.  The
             * uncommitted rest of the old reservation stays unused. */
            need = gm_align_up(bytes, GM_ARENA_SIZE);
            at = reserve_arenas(reserved_end + GM_ARENA_SIZE, need);
            if (at == 0)
                return false;
            start = at;
        }
        if (!add_arena_metadata(at, need)) {
            os_unmap((void *)at, need); /* leave no hole we would trip over */
            return false;
        }
        reserved_end = at + need;
        committed_end = start;
    }
    if (!os_commit((void *)start, bytes))
        return false;
    *addr = start;
    *got = bytes;
    committed_end = start + bytes;
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
