/*
 * The page allocator.  It owns the state of every 8 KiB page of the heap
 * window [base, base + GM_HEAP_RANGE): in use or free, and for a free page
 * whether it has been handed back to the OS (scavenged, so it reads as zero).
 *
 * Pages are grouped into chunks of 512 (4 MiB).  Every chunk has two 512-bit
 * maps, alloc (1 = in use) and scav (1 = free and released), the time of the
 * last free into it, and the number of its free pages not yet released.
 *
 * Above the chunks sits an implicit radix tree of summaries, one array per
 * level: 64 root entries of 16 GiB, then 8 children per entry, down to one
 * leaf per chunk (2^18 leaves).  A summary gives three free runs of its
 * region in pages: the run at its start, the longest run, the run at its end.
 * That is all a first-fit search needs: the earliest run of n pages either
 * lies inside a single entry (its max is >= n, so descend into it) or crosses
 * entries (the end of one entry plus the starts of those after it).  Freeing
 * only clears bits and recomputes the summaries above them, so neighbouring
 * free runs coalesce without any extra work.  A hint, the lowest page that
 * may be free, lets searches skip the packed bottom of the heap; aligned
 * requests repeat the search from the next aligned page after each miss.
 *
 * Invariants:
 *  - each inner summary is the merge of its 8 children, and each leaf agrees
 *    with its chunk's alloc map;
 *  - chunks never grown into the heap count as fully in use: their summaries
 *    are zero and their maps are never consulted;
 *  - every page below `hint` is in use or not grown;
 *  - a scav bit is only ever set on a free page; nunscav[c] counts the free
 *    pages of chunk c whose scav bit is clear, and bit c of `dirty` is set
 *    exactly when that count is nonzero.
 *
 * The summary levels above the leaves and the chunk bitmaps (about 0.5 MiB
 * of address space) are mapped by pagealloc_init as lazily-touched zero
 * pages; the per-chunk state (maps, leaves, times, counts) lives in 2 GiB
 * segments mapped as the heap first grows into them, so the page
 * allocator's address space follows the heap's size, not the window's.  There
 * is no lock here: mheap calls in with the heap lock held.  Nothing here
 * calls malloc or stdio.
 */
#include "mpagealloc.h"

#include "os.h"

#define CP GM_CHUNK_PAGES                                            /* pages per chunk */
#define WORDS 8                                                      /* map words per chunk */
#define NCHUNKS ((size_t)1 << (GM_HEAP_RANGE_SHIFT - GM_CHUNK_SHIFT)) /* 2^18 */
#define NPAGES ((size_t)1 << (GM_HEAP_RANGE_SHIFT - GM_PAGE_SHIFT))
#define LEVELS 5
#define FANOUT_BITS 3
#define NONE SIZE_MAX

/* log2 of the chunks under one entry of level l (root 12, leaf 0). */
#define LEVEL_SHIFT(l) (FANOUT_BITS * (LEVELS - 1 - (l)))
_Static_assert(6 + LEVEL_SHIFT(0) == GM_HEAP_RANGE_SHIFT - GM_CHUNK_SHIFT,
               "root level must have 64 entries");
_Static_assert(GM_CHUNK_PAGES == 512, "chunk maps assume 512 pages");

typedef struct { uint32_t start, max, end; } psum_t;
typedef struct { uint64_t alloc[WORDS], scav[WORDS]; } chunk_t;

/* Per-chunk state, in segments of SEG_CHUNKS chunks (2 GiB of heap), each
 * mapped the first time the heap grows into it: address space for metadata
 * follows the heap instead of covering the whole window up front. */
#define SEG_SHIFT 9
#define SEG_CHUNKS ((size_t)1 << SEG_SHIFT)
#define NSEGS (NCHUNKS / SEG_CHUNKS)
_Static_assert(SEG_CHUNKS % (1 << FANOUT_BITS) == 0, "a leaf's siblings share its segment");
typedef struct {
    chunk_t chunk[SEG_CHUNKS];
    psum_t leaf[SEG_CHUNKS];         /* the tree's bottom level */
    uint64_t last_free[SEG_CHUNKS];  /* time of the last free into the chunk */
    uint16_t nunscav[SEG_CHUNKS];    /* free pages of the chunk not yet released */
} seg_t;

static struct {
    uintptr_t base;
    psum_t *sum[LEVELS - 1];  /* levels above the leaves */
    seg_t *seg[NSEGS];
    uint64_t *grown;     /* bit per chunk: part of the heap */
    uint64_t *dirty;     /* bit per chunk: nunscav != 0 */
    size_t lo, hi;       /* grown chunks all lie in [lo, hi) */
    size_t hint;         /* every page below this one is in use or not grown */
    size_t total, nfree, nscav;
} pa;

static const psum_t sum_full = { CP, CP, CP };

#define SEG(c) (*pa.seg[(c) >> SEG_SHIFT])
#define SEGI(c) ((c) & (SEG_CHUNKS - 1))
static inline chunk_t *chunk_of(size_t c) { return &SEG(c).chunk[SEGI(c)]; }
/* Entry i of level l.  A leaf is only ever read for a grown chunk or a
 * sibling of one (same segment), so its segment exists. */
static inline psum_t *sum_at(int l, size_t i) {
    return l == LEVELS - 1 ? &SEG(i).leaf[SEGI(i)] : &pa.sum[l][i];
}

static inline size_t entry_pages(int l) { return CP << LEVEL_SHIFT(l); }
static inline bool bit_test(const uint64_t *b, size_t i) { return b[i >> 6] >> (i & 63) & 1; }
static inline void bit_set(uint64_t *b, size_t i) { b[i >> 6] |= (uint64_t)1 << (i & 63); }
static inline void bit_clear(uint64_t *b, size_t i) { b[i >> 6] &= ~((uint64_t)1 << (i & 63)); }

/* Bits [lo, hi) of word w of a chunk map, for 0 <= lo < hi <= 512. */
static inline uint64_t word_mask(size_t w, size_t lo, size_t hi) {
    size_t a = w * 64 > lo ? 0 : lo - w * 64;
    size_t b = hi - w * 64 >= 64 ? 64 : hi - w * 64;
    return (~(uint64_t)0 >> (64 - (b - a))) << a;
}

/* ---- summaries ---- */

static psum_t chunk_summary(const uint64_t *a) {
    uint32_t start = 0, max = 0, run = 0;
    bool at_start = true;
    for (int w = 0; w < WORDS; w++) {
        uint64_t x = a[w];
        if (x == 0) {
            run += 64;
            continue;
        }
        run += (uint32_t)__builtin_ctzll(x);
        if (at_start) start = run, at_start = false;
        if (run > max) max = run;
        run = (uint32_t)__builtin_clzll(x);
        /* Zero runs strictly inside the word, one per step: drop the low
         * zeros, then repeatedly drop ones and measure the zeros above them.
         * y & (y + 1) is nonzero while a zero lies below some one. */
        uint64_t y = x >> __builtin_ctzll(x);
        while (max < 62 && (y & (y + 1))) {
            y >>= __builtin_ctzll(~y);
            uint32_t z = (uint32_t)__builtin_ctzll(y);
            if (z > max) max = z;
            y >>= z;
        }
    }
    if (at_start) start = run;
    if (run > max) max = run;
    return (psum_t){ start, max, run };
}

static psum_t merge(const psum_t *c, uint32_t child_pages) {
    uint32_t start = c[0].start, max = c[0].max, end = c[0].end, whole = child_pages;
#pragma GCC unroll 8
    for (int i = 1; i < 1 << FANOUT_BITS; i++, whole += child_pages) {
        psum_t x = c[i];
        if (start == whole) start += x.start;       /* all children so far free */
        if (end + x.start > max) max = end + x.start; /* run across the boundary */
        if (x.max > max) max = x.max;
        end = x.start == child_pages ? end + child_pages : x.end;
    }
    return (psum_t){ start, max, end };
}

/* Sets leaf c; true if that changed it. */
static bool set_leaf(size_t c, psum_t s) {
    psum_t *d = sum_at(LEVELS - 1, c);
    bool changed = s.start != d->start || s.max != d->max || s.end != d->end;
    *d = s;
    return changed;
}

/* Leaves [c0, c1] changed: recompute their ancestors, stopping early at a
 * level where nothing changed. */
static void update_ancestors(size_t c0, size_t c1) {
    for (int l = LEVELS - 1; l > 0; l--) {
        bool changed = false;
        c0 >>= FANOUT_BITS, c1 >>= FANOUT_BITS;
        for (size_t i = c0; i <= c1; i++) {
            psum_t s = merge(sum_at(l, i << FANOUT_BITS), (uint32_t)entry_pages(l)), *d = &pa.sum[l - 1][i];
            changed |= s.start != d->start || s.max != d->max || s.end != d->end;
            *d = s;
        }
        if (!changed) break;
    }
}

/* ---- first-fit search ---- */

/* Scan state, in page indexes: the free run ending at the cursor. */
typedef struct { size_t n, from, run, base; } finder_t;

/* Lowest q with bits q .. q+n-1 of x all clear, or 64; 1 <= n < 64. */
static unsigned find_zeros(uint64_t x, unsigned n) {
    /* Each bit of y left stands for `have` clear bits of x from it upward;
     * every shift-and doubles that, so this takes log2(n) steps. */
    uint64_t y = ~x;
    for (unsigned have = 1; have < n;) {
        unsigned s = have < n - have ? have : n - have;
        y &= y >> s;
        have += s;
    }
    return y ? (unsigned)__builtin_ctzll(y) : 64;
}

static size_t find_in_chunk(finder_t *f, size_t c) {
    const uint64_t *a = chunk_of(c)->alloc;
    size_t p0 = c * CP, w = 0;
    uint64_t below = 0; /* pages under `from` count as in use */
    if (f->from > p0) {
        size_t o = f->from - p0;
        w = o >> 6;
        below = ((uint64_t)1 << (o & 63)) - 1;
        f->run = 0;
    }
    for (; w < WORDS; w++, below = 0) {
        uint64_t x = a[w] | below;
        size_t wp = p0 + w * 64;
        if (x == 0) {
            if (!f->run) f->base = wp;
            if ((f->run += 64) >= f->n) return f->base;
            continue;
        }
        if (f->run + (size_t)__builtin_ctzll(x) >= f->n) return f->run ? f->base : wp;
        if (f->n < 64) {
            unsigned q = find_zeros(x, (unsigned)f->n);
            if (q < 64) return wp + q;
        }
        f->run = (size_t)__builtin_clzll(x);
        f->base = wp + 64 - f->run;
    }
    return NONE;
}

/* Scans entries [i0, i1] of level l in address order, carrying the free
 * run across entries, and descends only where a fit must lie (or where
 * `from` cuts an entry).  Returns the first page of the earliest run of
 * f->n free pages at or above f->from. */
static size_t scan(finder_t *f, int l, size_t i0, size_t i1) {
    size_t ep = entry_pages(l);
    for (size_t i = i0; i <= i1; i++) {
        psum_t s = *sum_at(l, i);
        size_t p0 = i * ep, p1 = p0 + ep;
        if (p0 >= f->from) {
            if (f->run + s.start >= f->n) return f->run ? f->base : p0;
            if (s.max < f->n) { /* no fit inside; the run carries on */
                if (s.start == ep) {
                    if (!f->run) f->base = p0;
                    f->run += ep;
                } else {
                    f->run = s.end;
                    f->base = p1 - s.end;
                }
                continue;
            }
            /* A fit lies inside: the descent below finds it. */
        } else if (s.max < f->n) { /* `from` cuts it: only its end run counts */
            f->run = s.end < p1 - f->from ? s.end : p1 - f->from;
            f->base = p1 - f->run;
            continue;
        }
        size_t r;
        if (l == LEVELS - 1) {
            r = find_in_chunk(f, i);
        } else {
            size_t c0 = i << FANOUT_BITS, cf = f->from / entry_pages(l + 1);
            r = scan(f, l + 1, cf > c0 ? cf : c0, c0 + (1 << FANOUT_BITS) - 1);
        }
        if (r != NONE) return r;
    }
    return NONE;
}

/* First page p >= from with [p, p + n) free, or NONE. */
static size_t find(size_t n, size_t from) {
    if (from < pa.hint) from = pa.hint;
    if (from >= pa.hi * CP) return NONE;
    finder_t f = { n, from, 0, 0 };
    return scan(&f, 0, from / entry_pages(0), (pa.hi - 1) >> LEVEL_SHIFT(0));
}

/* ---- range updates ---- */

/* Highest index <= p whose bit in b equals v, or -1. */
static int prev_bit(const uint64_t *b, int p, bool v) {
    while (p >= 0) {
        int w = p >> 6;
        uint64_t x = (v ? b[w] : ~b[w]) & (~(uint64_t)0 >> (63 - (p & 63)));
        if (x) return (w << 6) + 63 - __builtin_clzll(x);
        p = (w << 6) - 1;
    }
    return -1;
}

/* Lowest index >= p whose bit in b equals v, or CP. */
static int next_bit(const uint64_t *b, int p, bool v) {
    while (p < (int)CP) {
        int w = p >> 6;
        uint64_t x = (v ? b[w] : ~b[w]) & (~(uint64_t)0 << (p & 63));
        if (x) return (w << 6) + __builtin_ctzll(x);
        p = (w + 1) << 6;
    }
    return CP;
}

/* Length of the free run of chunk map a that holds pages [lo, hi) (free),
 * and whether it touches the chunk's first and last page. */
static uint32_t run_around(const uint64_t *a, size_t lo, size_t hi, bool *first, bool *last) {
    int rb = prev_bit(a, (int)lo - 1, true) + 1, re = next_bit(a, (int)hi, true);
    *first = rb == 0, *last = re == (int)CP;
    return (uint32_t)(re - rb);
}

/* Marks [p, p + n) in use (all free and grown); returns how many of the
 * pages were scavenged. */
static size_t alloc_range(size_t p, size_t n) {
    size_t c0 = p / CP, c1 = (p + n - 1) / CP, scav = 0;
    bool changed = false;
    for (size_t c = c0; c <= c1; c++) {
        size_t lo = c == c0 ? p % CP : 0, hi = c == c1 ? (p + n - 1) % CP + 1 : CP, s = 0;
        chunk_t *k = chunk_of(c);
        psum_t sum = { 0, 0, 0 }, old = *sum_at(LEVELS - 1, c);
        bool first = false, last = false;
        uint32_t len = hi - lo == CP ? CP : run_around(k->alloc, lo, hi, &first, &last);
        for (size_t w = lo >> 6; w <= (hi - 1) >> 6; w++) {
            uint64_t m = word_mask(w, lo, hi);
            k->alloc[w] |= m;
            if (k->scav[w] & m) {
                s += (size_t)gm_popcount64(k->scav[w] & m);
                k->scav[w] &= ~m;
            }
        }
        SEG(c).nunscav[SEGI(c)] = (uint16_t)(SEG(c).nunscav[SEGI(c)] - (hi - lo - s));
        if (!SEG(c).nunscav[SEGI(c)]) bit_clear(pa.dirty, c);
        /* Cutting into a run shorter than the longest leaves max alone. */
        if (len < old.max)
            sum = (psum_t){ first ? (uint32_t)lo : old.start, old.max, last ? (uint32_t)(CP - hi) : old.end };
        else if (hi - lo < CP)
            sum = chunk_summary(k->alloc);
        changed |= set_leaf(c, sum);
        scav += s;
    }
    if (changed) update_ancestors(c0, c1);
    pa.nfree -= n;
    pa.nscav -= scav;
    return scav;
}

static void free_range(size_t p, size_t n, uint64_t now) {
    size_t c0 = p / CP, c1 = (p + n - 1) / CP;
    bool changed = false;
    for (size_t c = c0; c <= c1; c++) {
        size_t lo = c == c0 ? p % CP : 0, hi = c == c1 ? (p + n - 1) % CP + 1 : CP;
        chunk_t *k = chunk_of(c);
        for (size_t w = lo >> 6; w <= (hi - 1) >> 6; w++)
            k->alloc[w] &= ~word_mask(w, lo, hi);
        SEG(c).nunscav[SEGI(c)] = (uint16_t)(SEG(c).nunscav[SEGI(c)] + (hi - lo));
        bit_set(pa.dirty, c);
        SEG(c).last_free[SEGI(c)] = now;
        /* The freed pages join one run; only it can change the summary. */
        psum_t sum = sum_full, old = *sum_at(LEVELS - 1, c);
        if (hi - lo < CP) {
            bool first, last;
            uint32_t len = run_around(k->alloc, lo, hi, &first, &last);
            sum = (psum_t){ first ? len : old.start, len > old.max ? len : old.max, last ? len : old.end };
        }
        changed |= set_leaf(c, sum);
    }
    if (changed) update_ancestors(c0, c1);
    pa.nfree += n;
}

/* Are all pages of [p, p + n) grown and in the state `used`? */
static bool range_is(size_t p, size_t n, bool used) {
    size_t c0 = p / CP, c1 = (p + n - 1) / CP;
    for (size_t c = c0; c <= c1; c++) {
        size_t lo = c == c0 ? p % CP : 0, hi = c == c1 ? (p + n - 1) % CP + 1 : CP;
        if (!bit_test(pa.grown, c)) return false;
        const uint64_t *a = chunk_of(c)->alloc;
        for (size_t w = lo >> 6; w <= (hi - 1) >> 6; w++) {
            uint64_t m = word_mask(w, lo, hi);
            if ((a[w] & m) != (used ? m : 0)) return false;
        }
    }
    return true;
}

/* Page index of addr, or NONE if [addr, addr + npages pages) is not a
 * nonempty page-aligned range of the window. */
static size_t page_index(uintptr_t addr, size_t npages) {
    if (addr < pa.base || (addr & (GM_PAGE_SIZE - 1)) || npages == 0) return NONE;
    size_t p = (addr - pa.base) >> GM_PAGE_SHIFT;
    if (p >= NPAGES || npages > NPAGES - p) return NONE;
    return p;
}

/* ---- interface ---- */

bool pagealloc_init(uintptr_t base) {
    size_t nsum = 0;
    for (int l = 0; l < LEVELS - 1; l++) nsum += NCHUNKS >> LEVEL_SHIFT(l);
    size_t bytes = 2 * (NCHUNKS / 8) /* grown, dirty */ + nsum * sizeof(psum_t);
    char *m = os_alloc_metadata(bytes);
    if (!m) return false;
    /* A second init (tests only) starts over with fresh zeroed metadata. */
    pa = (__typeof__(pa)){ .base = base };
    pa.grown = (uint64_t *)m, m += NCHUNKS / 8;
    pa.dirty = (uint64_t *)m, m += NCHUNKS / 8;
    for (int l = 0; l < LEVELS - 1; l++)
        pa.sum[l] = (psum_t *)m, m += (NCHUNKS >> LEVEL_SHIFT(l)) * sizeof(psum_t);
    return true;
}

/* Maps the segments of chunks [c0, c1) that are not mapped yet. */
static bool map_segments(size_t c0, size_t c1) {
    for (size_t g = c0 >> SEG_SHIFT; g <= (c1 - 1) >> SEG_SHIFT; g++) {
        if (pa.seg[g]) continue;
        seg_t *sg = os_alloc_metadata(sizeof(seg_t));
        if (!sg) return false;
        pa.seg[g] = sg;
    }
    return true;
}

bool pagealloc_grow(uintptr_t addr, size_t npages) {
    size_t p = page_index(addr, npages);
    if (p == NONE || p % CP || npages % CP) return false;
    size_t c0 = p / CP, c1 = c0 + npages / CP;
    for (size_t c = c0; c < c1; c++)
        if (bit_test(pa.grown, c)) return false;
    if (!map_segments(c0, c1)) return false;
    for (size_t c = c0; c < c1; c++) {
        bit_set(pa.grown, c);
        for (int w = 0; w < WORDS; w++) chunk_of(c)->alloc[w] = 0, chunk_of(c)->scav[w] = ~(uint64_t)0;
        SEG(c).nunscav[SEGI(c)] = 0;
        SEG(c).last_free[SEGI(c)] = 0;
        *sum_at(LEVELS - 1, c) = sum_full;
    }
    update_ancestors(c0, c1 - 1);
    if (pa.hi == 0 || c0 < pa.lo) pa.lo = c0;
    if (pa.hi == 0 || p < pa.hint) pa.hint = p;
    if (c1 > pa.hi) pa.hi = c1;
    pa.total += npages;
    pa.nfree += npages;
    pa.nscav += npages;
    return true;
}

uintptr_t pagealloc_alloc(size_t npages, size_t align_pages, size_t *nscav) {
    if (npages == 0 || npages > pa.nfree) return 0;
    if (align_pages == 0) align_pages = 1;
    /* Alignment is of the address, so of the absolute page number.  Each
     * miss moves the search to the next aligned candidate past it. */
    size_t bp = pa.base >> GM_PAGE_SHIFT, from = 0, p;
    for (;;) {
        if ((p = find(npages, from)) == NONE) return 0;
        size_t a = gm_align_up(bp + p, align_pages) - bp;
        if (a == p) break;
        from = a;
    }
    if (p == pa.hint) pa.hint = p + npages;
    size_t s = alloc_range(p, npages);
    if (nscav) *nscav = s;
    return pa.base + (p << GM_PAGE_SHIFT);
}

bool pagealloc_alloc_at(uintptr_t addr, size_t npages, size_t *nscav) {
    size_t p = page_index(addr, npages);
    if (p == NONE || !range_is(p, npages, false)) return false;
    size_t s = alloc_range(p, npages);
    if (nscav) *nscav = s;
    return true;
}

void pagealloc_free(uintptr_t addr, size_t npages, uint64_t now) {
    if (npages == 0) return;
    size_t p = page_index(addr, npages);
    if (p == NONE || !range_is(p, npages, true))
        gm_fatal("page allocator: freeing pages that are not in use", (const void *)addr);
    free_range(p, npages, now);
    if (p < pa.hint) pa.hint = p;
}

/* Releases free, unreleased runs of chunk c from the top down, at most
 * limit pages.  *refused is set when the OS refused a run: that run keeps
 * its contents, so it stays unscavenged, and the chunk's pass stops. */
static size_t scavenge_chunk(size_t c, size_t limit, bool (*release)(uintptr_t, size_t),
                             bool *refused) {
    chunk_t *k = chunk_of(c);
    uint64_t cand[WORDS];
    for (int w = 0; w < WORDS; w++) cand[w] = ~(k->alloc[w] | k->scav[w]);
    size_t done = 0;
    for (int p = CP - 1; done < limit;) {
        int top = prev_bit(cand, p, true);
        if (top < 0) break;
        int bot = prev_bit(cand, top, false) + 1;
        if ((size_t)(top + 1 - bot) > limit - done) bot = top + 1 - (int)(limit - done);
        if (!release(pa.base + ((c * CP + (size_t)bot) << GM_PAGE_SHIFT),
                     (size_t)(top + 1 - bot) << GM_PAGE_SHIFT)) {
            *refused = true;
            break;
        }
        for (size_t w = (size_t)bot >> 6; w <= (size_t)top >> 6; w++)
            k->scav[w] |= word_mask(w, (size_t)bot, (size_t)top + 1);
        done += (size_t)(top + 1 - bot);
        p = bot - 1;
    }
    SEG(c).nunscav[SEGI(c)] = (uint16_t)(SEG(c).nunscav[SEGI(c)] - done);
    if (!SEG(c).nunscav[SEGI(c)]) bit_clear(pa.dirty, c);
    pa.nscav += done;
    return done;
}

size_t pagealloc_scavenge(size_t max_pages, uint64_t older_than,
                          bool (*release)(uintptr_t addr, size_t bytes)) {
    size_t done = 0;
    bool refused = false;
    for (size_t c = pa.hi; done < max_pages && !refused && c-- > pa.lo;) {
        /* Skip chunks with nothing to release, 64 at a time. */
        uint64_t d = pa.dirty[c >> 6] & (~(uint64_t)0 >> (63 - (c & 63)));
        if (!d) {
            c &= ~(size_t)63;
            continue;
        }
        c = (c & ~(size_t)63) + 63 - (size_t)__builtin_clzll(d);
        if (SEG(c).last_free[SEGI(c)] <= older_than)
            done += scavenge_chunk(c, max_pages - done, release, &refused);
    }
    return done;
}

/* Pages of one 2 MiB half of a chunk (a huge page on x86-64). */
#define HUGE_PAGES (GM_CHUNK_PAGES / 2)
/* A huge page with at least this many pages in use is dense (Go's 96%):
 * releasing its few free pages would split it for little gain. */
#define DENSE_PAGES (HUGE_PAGES * 96 / 100)

/* Clears the candidate bits of chunk k's dense huge pages. */
static void drop_dense(const chunk_t *k, uint64_t *cand) {
    for (int h = 0; h < WORDS; h += WORDS / 2) {
        unsigned used = 0;
        for (int w = h; w < h + WORDS / 2; w++) used += (unsigned)__builtin_popcountll(k->alloc[w]);
        if (used >= DENSE_PAGES)
            for (int w = h; w < h + WORDS / 2; w++) cand[w] = 0;
    }
}

size_t pagealloc_scav_take(size_t max_pages, uint64_t older_than, bool keep_dense, uintptr_t *addr) {
    for (size_t c = pa.hi; max_pages && c-- > pa.lo;) {
        uint64_t d = pa.dirty[c >> 6] & (~(uint64_t)0 >> (63 - (c & 63)));
        if (!d) {
            c &= ~(size_t)63;
            continue;
        }
        c = (c & ~(size_t)63) + 63 - (size_t)__builtin_clzll(d);
        if (SEG(c).last_free[SEGI(c)] > older_than) continue;
        const chunk_t *k = chunk_of(c);
        uint64_t cand[WORDS];
        for (int w = 0; w < WORDS; w++) cand[w] = ~(k->alloc[w] | k->scav[w]);
        if (keep_dense) drop_dense(k, cand);
        int top = prev_bit(cand, CP - 1, true);
        if (top < 0) continue;
        int bot = prev_bit(cand, top, false) + 1;
        if ((size_t)(top + 1 - bot) > max_pages) bot = top + 1 - (int)max_pages;
        size_t p = c * CP + (size_t)bot, n = (size_t)(top + 1 - bot);
        alloc_range(p, n);
        *addr = pa.base + (p << GM_PAGE_SHIFT);
        return n;
    }
    return 0;
}

void pagealloc_scav_return(uintptr_t addr, size_t npages, bool released) {
    size_t p = page_index(addr, npages), c = p / CP, lo = p % CP, hi = lo + npages;
    if (p == NONE || hi > CP || !range_is(p, npages, true))
        gm_fatal("page allocator: returning pages that were not taken", (const void *)addr);
    free_range(p, npages, SEG(c).last_free[SEGI(c)]); /* the chunk's age is unchanged */
    if (p < pa.hint) pa.hint = p;
    if (!released) return;
    chunk_t *k = chunk_of(c);
    for (size_t w = lo >> 6; w <= (hi - 1) >> 6; w++) k->scav[w] |= word_mask(w, lo, hi);
    SEG(c).nunscav[SEGI(c)] = (uint16_t)(SEG(c).nunscav[SEGI(c)] - npages);
    if (!SEG(c).nunscav[SEGI(c)]) bit_clear(pa.dirty, c);
    pa.nscav += npages;
}

size_t pagealloc_total_pages(void) { return pa.total; }
size_t pagealloc_free_pages(void) { return pa.nfree; }
size_t pagealloc_scav_pages(void) { return pa.nscav; }

bool pagealloc_page_allocated(uintptr_t addr) {
    size_t p = page_index(addr & ~(uintptr_t)(GM_PAGE_SIZE - 1), 1);
    return p == NONE || !bit_test(pa.grown, p / CP) || bit_test(chunk_of(p / CP)->alloc, p % CP);
}

bool pagealloc_page_scavenged(uintptr_t addr) {
    size_t p = page_index(addr & ~(uintptr_t)(GM_PAGE_SIZE - 1), 1);
    return p != NONE && bit_test(pa.grown, p / CP) && bit_test(chunk_of(p / CP)->scav, p % CP);
}
