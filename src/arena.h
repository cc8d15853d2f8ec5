/*
 * Arenas and the span map: the heap's address space and the O(1) question
 * "which span holds this address?" that free() asks.
 *
 * Offered to mheap (growth, span map updates) and, for lookups only, to the
 * tiers above (spanof is lock-free).
 */
#ifndef GM_ARENA_H
#define GM_ARENA_H

#include "common.h"

struct mspan;

/* The span map: the span of every heap page (Go's heapArena.spans, in one
 * flat table).  A page of a small-object span maps to its span; a large
 * span maps only its first page, so an interior pointer into a large object
 * finds nothing.  Entry i is the page at origin + i pages; the table covers
 * the heap's committed range and grows with it: in place at its home at the
 * top of the window (npages grows; the entries already there stay), or,
 * when that cannot be, as a new table.  A table once replaced is never
 * changed again and never unmapped, so a reader holding it still finds
 * every span that existed when it was replaced. */
typedef struct spanmap {
    uintptr_t origin;          /* address of entry 0's page */
    size_t npages;             /* entries (grows at home: atomic) */
    struct mspan *entries[];
} spanmap;

/* The current table, published as the address of its entries (the header
 * lies just below them), so that spanof indexes the very pointer it loaded;
 * never NULL (an empty table before the heap exists). */
extern struct mspan **gm_spanmap_entries GM_INTERNAL;

static inline spanmap *spanmap_of_entries(struct mspan **entries) {
    return (spanmap *)((char *)entries - offsetof(spanmap, entries));
}

static inline spanmap *spanmap_current(void) {
    return spanmap_of_entries(__atomic_load_n(&gm_spanmap_entries, __ATOMIC_ACQUIRE));
}

/* The heap window: all heap memory lies in [gm_heap_base, gm_heap_base +
 * GM_HEAP_USABLE); the span map's home takes the rest of the 1 TiB, room
 * for a table that covers the whole window (8 bytes per 8 KiB page) and one
 * arena's more, which keeps the heap's end arena aligned. */
extern uintptr_t gm_heap_base GM_INTERNAL;
#define GM_SPANMAP_HOME_BYTES ((GM_HEAP_RANGE >> (GM_PAGE_SHIFT - 3)) + GM_ARENA_SIZE)
#define GM_HEAP_USABLE (GM_HEAP_RANGE - GM_SPANMAP_HOME_BYTES)

/* The span holding address p, or NULL: the table, then its entry; no lock,
 * no test of the window (an address outside the table's range, below its
 * origin included, gives an index past its end).  NULL in particular finds
 * nothing, which free() relies on: 0 - origin wraps to an index far past
 * any table's end (origins are user-space heap addresses, below 2^47), and
 * the empty table before the heap has no entries.
 *
 * Ordering: the table (gm_spanmap_entries) is loaded with acquire, pairing
 * with the release store that published it (its origin, length and copied
 * entries were written before); so is npages, pairing with the release store that
 * grows the table in place after mapping the new entries.  A pointer this
 * thread may free was handed out after its span's entry was written, in
 * whatever table was current then and within its npages; any table
 * published later carries the entry, and neither an earlier table nor an
 * earlier npages can be loaded here (the handing out happened after the
 * store that replaced them, and a load cannot see a value older than one
 * that happens before it).  The entry itself is loaded with acquire,
 * pairing with spanmap_set's release store, so the span's fields written
 * before it are visible. */
static inline struct mspan *spanof(const void *p) {
    struct mspan **entries = __atomic_load_n(&gm_spanmap_entries, __ATOMIC_ACQUIRE);
    const spanmap *m = spanmap_of_entries(entries);
    uintptr_t pg = ((uintptr_t)p - m->origin) >> GM_PAGE_SHIFT;
    if (unlikely(pg >= __atomic_load_n(&m->npages, __ATOMIC_ACQUIRE)))
        return NULL;
    return __atomic_load_n(&entries[pg], __ATOMIC_ACQUIRE);
}

/* Chooses the heap window and the heap's random start in it; maps nothing.
 * Heap lock held. */
GM_INTERNAL bool arena_init(void);

/* Commits at least `bytes` (rounded up to whole chunks) of new heap memory,
 * right after the previous step when that range is free, else further up the
 * window.  Returns the chunk-aligned start and the committed size; false
 * when the kernel refuses the commit or the window has no room.  Heap lock
 * held. */
GM_INTERNAL bool arena_grow(size_t bytes, uintptr_t *addr, size_t *got);

/* The end of the committed heap: growing from here is contiguous. */
GM_INTERNAL uintptr_t arena_committed_end(void);

/* Points every page in [base, base + npages pages) at s (NULL to clear).
 * The pages lie in a range arena_grow committed.  Heap lock held. */
GM_INTERNAL void spanmap_set(uintptr_t base, size_t npages, struct mspan *s);

/* Is any of the 64 MiB arena at window offset ai << GM_ARENA_SHIFT
 * committed?  (For walks over every span, under the heap lock or in a
 * process of one thread.) */
GM_INTERNAL bool arena_present(size_t ai);

/* Bytes of heap address space committed so far (Go's HeapSys). */
GM_INTERNAL size_t arena_committed_bytes(void);
GM_INTERNAL uint64_t arena_os_maps(void);

#endif
