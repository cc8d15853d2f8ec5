/*
 * mheap: spans, the page heap and large objects.
 *
 * Offered to mcentral (spans for a size class) and to the public API (large
 * objects, trimming, statistics).  Takes the heap lock internally.
 */
#ifndef GM_MHEAP_H
#define GM_MHEAP_H

#include "common.h"
#include "sizeclasses.h"

/* Span classes: the size classes, plus one more for the tiny allocator's
 * 16-byte blocks (their spans carry per-block piece masks). */
#define GM_TINY_SPAN_CLASS GM_NUM_SIZE_CLASSES
#define GM_NUM_SPAN_CLASSES (GM_NUM_SIZE_CLASSES + 1)
#define GM_TINY_BLOCK 16

enum { SPAN_DEAD = 0, SPAN_SMALL = 1, SPAN_LARGE = 2 };

/* The bias that marks a span's `live` counter as owned by an mcache. */
#define SPAN_OWNED_BIAS ((int64_t)1 << 40)

struct mcache;

/*
 * A span: a run of pages holding objects of one class, or one large object.
 * All metadata is here, outside user memory.  See mcentral.c for who may
 * touch which field when.
 */
typedef struct mspan {
    /* First line: what every free reads and the owner's fast path writes. */
    uintptr_t base;
    uint32_t elemsize;
    uint32_t divmagic;
    uint16_t nelems;
    uint8_t spanclass;     /* 0: large */
    uint8_t state;         /* SPAN_* */
    uint32_t freeindex;    /* owner: slots below are allocated (or freed since) */
    uint64_t alloc_cache;  /* owner: ~allocbits from freeindex, for ctz */
    struct mcache *owner;  /* NULL when not in an mcache */
    uint64_t *bits;        /* slot bitmaps, interleaved per 64-slot word w:
                            * bits[3w] allocbits (owner writes; 1 = allocated),
                            * bits[3w+1] localfree (owner's frees since its sweep),
                            * bits[3w+2] remotefree (others' frees, atomic OR) */
    int32_t owner_delta;   /* owner: handed out minus freed locally, this ownership */
    uint16_t nwords;       /* 64-slot words */
    uint8_t zeroed;        /* large spans: memory known zero (fresh from the OS) */
    uint8_t listed;        /* in its mcentral's partial list, or a spare (mcentral lock) */

    /* Second line: what other threads write when they free. */
    int64_t live __attribute__((aligned(64))); /* live objects, + SPAN_OWNED_BIAS while owned */
    uint32_t gen;          /* bumped each time the span goes back to mheap */
    uint32_t npages;
    struct mspan *next, *prev; /* mcentral partial list; mheap free list */
    size_t large_size;     /* large spans: bytes asked for (stats) */
    uint32_t *tiny_alloc;  /* tiny spans: per block, piece starts | piece ends << 16 */
    uint32_t *tiny_freed;  /* tiny spans: per block, freed piece starts | final starts << 16 */
} mspan;

enum { SPAN_ALLOC = 0, SPAN_LOCAL = 1, SPAN_REMOTE = 2 };

/* Word w (slots 64w..64w+63) of one of a span's three slot bitmaps. */
static inline uint64_t *span_bits(const mspan *s, uint32_t w, int which) {
    return &s->bits[3 * w + (uint32_t)which];
}

/* The span a thread cache starts with: no free slot, so the fast path falls
 * through to the refill without a NULL test. */
extern mspan gm_empty_span GM_INTERNAL;

GM_INTERNAL bool mheap_init(void);

/* A fresh span for span class spc, owned by `owner`; NULL if out of memory. */
GM_INTERNAL mspan *mheap_alloc_small(unsigned spc, struct mcache *owner);

/* A large span of npages whose base is a multiple of align_pages pages.
 * With `zero`, the memory reads as zero (s->zeroed is set). */
GM_INTERNAL mspan *mheap_alloc_large(size_t npages, size_t align_pages, size_t size, bool zero);

/* Returns a span to the heap (its pages become free). */
GM_INTERNAL void mheap_free_span(mspan *s);

/* Frees the large object at p; aborts on a pointer that is not one. */
GM_INTERNAL void mheap_free_large(mspan *s, void *p, const char *caller);

/* Resizes a large span in place: grows into free pages that follow it, or
 * frees its tail.  False if it cannot grow. */
GM_INTERNAL bool mheap_resize_large(mspan *s, size_t npages, size_t size);

/* Returns free pages to the OS: all of them (malloc_trim), or, from time to
 * time, those that stayed free long enough (called on slow paths). */
GM_INTERNAL size_t mheap_release_all(void);
GM_INTERNAL void mheap_scavenge_tick(void);

/* Starts the background scavenger thread (GOMALLOC_BACKGROUND=1), which runs
 * the scavenger's tick even while the program makes no allocation.  Call
 * with no allocator lock held: creating a thread allocates. */
GM_INTERNAL void mheap_start_background(void);

/* fork() support: take / release / reset the heap lock. */
GM_INTERNAL void mheap_lock_for_fork(void);
GM_INTERNAL void mheap_unlock_after_fork(bool child);

typedef struct mheap_stats {
    size_t sys, inuse, idle, released, meta;
    size_t large_inuse_bytes, large_inuse_objects;
    uint64_t large_allocs, large_frees;
    uint64_t span_allocs, os_maps, scavenged_bytes;
    uint64_t spans_inuse[GM_NUM_SPAN_CLASSES];
} mheap_stats;
GM_INTERNAL void mheap_read_stats(mheap_stats *out);

#endif
