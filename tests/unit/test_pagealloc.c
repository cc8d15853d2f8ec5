/*
 * Unit test of the page allocator (src/mpagealloc.c) against a brute-force
 * model: one byte of state per page of a fixed set of candidate chunks.
 * The allocator never touches heap memory, so the window base is just a
 * number.  Usage: test_pagealloc [seed]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpagealloc.h"

#define CP GM_CHUNK_PAGES
#define BASE ((uintptr_t)1 << 40)
#define BASE_PAGE (BASE >> GM_PAGE_SHIFT)
#define TOP_CHUNK (GM_HEAP_RANGE >> GM_CHUNK_SHIFT)

static unsigned long passed, failed;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) {                                                            \
            passed++;                                                          \
        } else {                                                               \
            if (failed++ < 20) {                                               \
                printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);         \
                printf(__VA_ARGS__);                                           \
                printf("\n");                                                  \
            }                                                                  \
        }                                                                      \
    } while (0)

static uint64_t rng;
static uint64_t rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng * 0x2545F4914F6CDD1Dull;
}
static size_t rnd_range(size_t lo, size_t hi) { return lo + (size_t)(rnd() % (hi - lo + 1)); }

static uintptr_t chunk_addr(size_t c) { return BASE + c * GM_CHUNK_SIZE; }
static uintptr_t page_addr(size_t p) { return BASE + (p << GM_PAGE_SHIFT); }

/* ---- release recording ---- */

static struct { uintptr_t addr; size_t bytes; } calls[1 << 16];
static size_t ncalls;
static bool record(uintptr_t addr, size_t bytes) {
    if (ncalls < sizeof calls / sizeof calls[0]) calls[ncalls].addr = addr, calls[ncalls].bytes = bytes;
    ncalls++;
    return true;
}

/* The OS refusing every release (mlocked memory, a seccomp filter). */
static size_t nrefused;
static bool refuse(uintptr_t addr, size_t bytes) {
    (void)addr, (void)bytes;
    nrefused++;
    return false;
}

/* ---- the model ---- */

enum { FREE, SCAV, USED };
#define MAXCH 320
static struct mchunk { size_t idx; bool grown; uint64_t last_free; uint8_t pg[CP]; } mc[MAXCH];
static int nmc;

static struct mchunk *mfind(size_t c) { /* mc is sorted by idx */
    int lo = 0, hi = nmc;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (mc[mid].idx < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < nmc && mc[lo].idx == c ? &mc[lo] : NULL;
}

/* State of global page p: USED for pages outside grown chunks. */
static int mstate(size_t p) {
    struct mchunk *m = mfind(p / CP);
    return m && m->grown ? m->pg[p % CP] : USED;
}

static void mcounts(size_t *total, size_t *nfree, size_t *nscav) {
    *total = *nfree = *nscav = 0;
    for (int i = 0; i < nmc; i++) {
        if (!mc[i].grown) continue;
        *total += CP;
        for (size_t j = 0; j < CP; j++) {
            *nfree += mc[i].pg[j] != USED;
            *nscav += mc[i].pg[j] == SCAV;
        }
    }
}

/* Brute-force aligned first fit; returns the global page or SIZE_MAX. */
static size_t mfirst_fit(size_t n, size_t align) {
    size_t run = 0, start = 0, prev = SIZE_MAX;
    for (int i = 0; i < nmc; i++) {
        if (!mc[i].grown) {
            run = 0;
            continue;
        }
        if (prev == SIZE_MAX || mc[i].idx != prev + 1) run = 0;
        prev = mc[i].idx;
        for (size_t j = 0; j < CP; j++) {
            size_t g = mc[i].idx * CP + j;
            if (mc[i].pg[j] == USED) {
                run = 0;
                continue;
            }
            if (run++ == 0) start = g;
            size_t a = (size_t)gm_align_up(BASE_PAGE + start, align) - BASE_PAGE;
            if (a + n - 1 <= g) return a;
        }
    }
    return SIZE_MAX;
}

static bool mrange_free(size_t p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (mstate(p + i) == USED) return false;
    return true;
}

static size_t malloc_range(size_t p, size_t n) {
    size_t s = 0;
    for (size_t i = 0; i < n; i++) {
        struct mchunk *m = mfind((p + i) / CP);
        s += m->pg[(p + i) % CP] == SCAV;
        m->pg[(p + i) % CP] = USED;
    }
    return s;
}

static void mfree_range(size_t p, size_t n, uint64_t now) {
    for (size_t i = 0; i < n; i++) {
        struct mchunk *m = mfind((p + i) / CP);
        m->pg[(p + i) % CP] = FREE;
        m->last_free = now;
    }
}

static void mgrow(size_t c0, size_t nch) {
    for (size_t c = c0; c < c0 + nch; c++) {
        struct mchunk *m = mfind(c);
        m->grown = true;
        memset(m->pg, SCAV, CP);
    }
}

/* Global pages the scavenger should release, in order. */
static size_t mscav_expect(size_t max, uint64_t older, size_t *out, size_t cap) {
    size_t k = 0;
    for (int i = nmc - 1; i >= 0 && k < max; i--) {
        if (!mc[i].grown || mc[i].last_free > older) continue;
        for (size_t j = CP; j-- > 0 && k < max;)
            if (mc[i].pg[j] == FREE) {
                if (k < cap) out[k] = mc[i].idx * CP + j;
                k++;
            }
    }
    return k;
}

static void model_setup(const size_t (*regions)[2], int nr) {
    nmc = 0;
    for (int r = 0; r < nr; r++)
        for (size_t c = regions[r][0]; c < regions[r][0] + regions[r][1]; c++) {
            mc[nmc].idx = c, mc[nmc].grown = false, mc[nmc].last_free = 0;
            memset(mc[nmc].pg, USED, CP);
            nmc++;
        }
}

/* ---- wrappers that run an operation on both and compare ---- */

static bool grow(size_t c0, size_t nch) {
    bool ok = pagealloc_grow(chunk_addr(c0), nch * CP);
    CHECK(ok, "grow chunk %zu x%zu", c0, nch);
    if (ok) mgrow(c0, nch);
    return ok;
}

static uintptr_t alloc(size_t n, size_t align) {
    size_t want = mfirst_fit(n, align), nscav = 12345;
    uintptr_t got = pagealloc_alloc(n, align, &nscav);
    uintptr_t exp = want == SIZE_MAX ? 0 : page_addr(want);
    CHECK(got == exp, "alloc(%zu, align %zu) = %#lx, want %#lx", n, align, (unsigned long)got,
          (unsigned long)exp);
    if (got && got == exp) {
        size_t s = malloc_range(want, n);
        CHECK(nscav == s, "alloc(%zu) nscav %zu, want %zu", n, nscav, s);
        CHECK((got >> GM_PAGE_SHIFT) % align == 0, "alloc misaligned");
    }
    return got == exp ? got : 0;
}

static bool alloc_at(size_t p, size_t n) {
    bool want = mrange_free(p, n);
    size_t nscav = 12345;
    bool got = pagealloc_alloc_at(page_addr(p), n, &nscav);
    CHECK(got == want, "alloc_at(page %zu, %zu) = %d, want %d", p, n, got, want);
    if (got && want) {
        size_t s = malloc_range(p, n);
        CHECK(nscav == s, "alloc_at nscav %zu, want %zu", nscav, s);
    }
    return got && want;
}

static void pfree(size_t p, size_t n, uint64_t now) {
    pagealloc_free(page_addr(p), n, now);
    mfree_range(p, n, now);
}

static size_t expect_buf[CP * MAXCH];

static size_t scavenge(size_t max, uint64_t older) {
    size_t k = mscav_expect(max, older, expect_buf, sizeof expect_buf / sizeof expect_buf[0]);
    ncalls = 0;
    size_t got = pagealloc_scavenge(max, older, record);
    CHECK(got == k, "scavenge(%zu) released %zu, want %zu", max, got, k);
    size_t e = 0;
    uintptr_t prev = UINTPTR_MAX;
    bool ok = true;
    for (size_t i = 0; i < ncalls && i < sizeof calls / sizeof calls[0]; i++) {
        uintptr_t a = calls[i].addr;
        size_t b = calls[i].bytes;
        if (b == 0 || b % GM_PAGE_SIZE || a % GM_PAGE_SIZE || a + b > prev ||
            (a - BASE) / GM_CHUNK_SIZE != (a + b - 1 - BASE) / GM_CHUNK_SIZE) {
            CHECK(0, "bad release call %#lx +%zu (prev %#lx)", (unsigned long)a, b, (unsigned long)prev);
            ok = false;
            break;
        }
        prev = a;
        for (size_t q = (a + b - BASE) / GM_PAGE_SIZE; q-- > (a - BASE) / GM_PAGE_SIZE;) {
            if (e >= k || expect_buf[e] != q) {
                CHECK(0, "scavenge released page %zu (state %d), want %zu", q, mstate(q),
                      e < k ? expect_buf[e] : (size_t)0);
                ok = false;
                break;
            }
            e++;
        }
        if (!ok) break;
    }
    CHECK(!ok || e == k, "scavenge released %zu pages via calls, want %zu", e, k);
    for (size_t i = 0; i < k && i < sizeof expect_buf / sizeof expect_buf[0]; i++)
        mfind(expect_buf[i] / CP)->pg[expect_buf[i] % CP] = SCAV;
    return got;
}

/* The scavenger's two halves: the run taken is the highest free, dirty
 * run (of chunks old enough), inside one chunk, at most max pages; while
 * taken it is in use; returned, it is released (or still dirty) and its
 * chunk keeps its age. */
static void take_and_return(uint64_t now) {
    size_t max = rnd_range(1, 600);
    uint64_t older = rnd() % 4 ? now - rnd_range(0, now < 300 ? now - 1 : 300) : UINT64_MAX;
    size_t k = mscav_expect(1, older, expect_buf, sizeof expect_buf / sizeof expect_buf[0]);
    uintptr_t a = 0;
    size_t n = pagealloc_scav_take(max, older, false, &a);
    CHECK((n == 0) == (k == 0), "take found %zu pages, the model %zu", n, k);
    if (!n) return;
    size_t p = (a - BASE) >> GM_PAGE_SHIFT;
    CHECK(n <= max && p / CP == (p + n - 1) / CP, "take: %zu pages at %zu (max %zu)", n, p, max);
    CHECK(k == 0 || p + n - 1 == expect_buf[0], "take: top page %zu, want %zu", p + n - 1, expect_buf[0]);
    for (size_t q = p; q < p + n; q++) {
        CHECK(mstate(q) == FREE, "take: page %zu was in state %d", q, mstate(q));
        CHECK(pagealloc_page_allocated(page_addr(q)), "take: page %zu not marked in use", q);
    }
    bool released = rnd() % 4 != 0;
    pagealloc_scav_return(a, n, released);
    if (released)
        for (size_t q = p; q < p + n; q++) mfind(q / CP)->pg[q % CP] = SCAV;
}

/* Compares the counters with the model's; returns the model's free count. */
static size_t check_counters(const char *when) {
    size_t t, f, s;
    mcounts(&t, &f, &s);
    CHECK(pagealloc_total_pages() == t && pagealloc_free_pages() == f && pagealloc_scav_pages() == s,
          "%s: counters total %zu free %zu scav %zu, want %zu %zu %zu", when, pagealloc_total_pages(),
          pagealloc_free_pages(), pagealloc_scav_pages(), t, f, s);
    return f;
}

static void check_page(size_t p) {
    int st = mstate(p);
    bool a = pagealloc_page_allocated(page_addr(p)), s = pagealloc_page_scavenged(page_addr(p));
    CHECK(a == (st == USED) && s == (st == SCAV), "page %zu: allocated %d scavenged %d, model %d", p, a,
          s, st);
}

static void check_all_pages(void) {
    unsigned long f = failed;
    for (int i = 0; i < nmc && failed == f; i++)
        for (size_t j = 0; j < CP && failed == f; j++) check_page(mc[i].idx * CP + j);
}

/* ---- directed cases ---- */

static void directed(void) {
    static const size_t regions[][2] = { { 255, 265 }, { 4094, 4 }, { TOP_CHUNK - 2, 2 } };
    CHECK(pagealloc_init(BASE), "init");
    model_setup(regions, 3);
    CHECK(pagealloc_alloc(1, 1, NULL) == 0, "alloc from an empty heap");
    grow(4094, 4); /* straddles the first root boundary (chunk 4096) */
    check_counters("grow");
    CHECK(pagealloc_page_allocated(chunk_addr(4093)), "ungrown page counts as allocated");
    CHECK(!pagealloc_page_scavenged(chunk_addr(4093)), "ungrown page not scavenged");
    CHECK(!pagealloc_alloc_at(chunk_addr(4093), 1, NULL), "alloc_at on an ungrown page");
    CHECK(!pagealloc_alloc_at(chunk_addr(4097) + 511 * GM_PAGE_SIZE, 2, NULL), "alloc_at past the end");
    CHECK(!pagealloc_grow(chunk_addr(4095), CP), "grow twice");

    /* Fill chunk 4094 except its last 10 pages; a run of 10 + 2 chunks + 5
     * pages must start there and cross the root boundary. */
    alloc_at(4094 * CP, CP - 10);
    uintptr_t a = alloc(10 + 2 * CP + 5, 1);
    CHECK(a == page_addr(4094 * CP + CP - 10), "run across root boundary at %#lx", (unsigned long)a);
    CHECK(!pagealloc_page_allocated(page_addr(4097 * CP + 5)), "page after the run is free");
    /* Only chunk 4097 minus 5 pages is left: a full chunk no longer fits. */
    CHECK(alloc(CP, 1) == 0, "full chunk does not fit");
    alloc(CP - 5, 1);
    CHECK(pagealloc_free_pages() == 0, "heap full");
    alloc(1, 1);
    check_counters("full");
    pfree(4094 * CP + 100, 3 * CP, 7);
    alloc(3 * CP, 1);
    pfree(4094 * CP, 4 * CP, 8); /* everything free again */
    check_counters("all free");
    CHECK(alloc(4 * CP, 1) == chunk_addr(4094), "whole grown range in one run");
    alloc(1, 1);
    pfree(4094 * CP, 4 * CP, 9);

    /* Scavenge: everything in those chunks is free and unreleased. */
    CHECK(scavenge(700, 9) == 700, "partial scavenge");
    CHECK(!pagealloc_page_scavenged(chunk_addr(4096) + 323 * GM_PAGE_SIZE), "low page kept");
    CHECK(pagealloc_page_scavenged(chunk_addr(4096) + 324 * GM_PAGE_SIZE), "high pages first");
    CHECK(scavenge(SIZE_MAX, 8) == 0, "chunks freed too recently are skipped");
    CHECK(scavenge(SIZE_MAX, 9) == 4 * CP - 700, "the rest");
    CHECK(scavenge(SIZE_MAX, UINT64_MAX) == 0, "nothing left");
    check_counters("scavenged");
    size_t ns = 0;
    CHECK(pagealloc_alloc(CP, 1, &ns) == chunk_addr(4094) && ns == CP, "fresh chunk is known zero");
    malloc_range(4094 * CP, CP);

    grow(255, 265);
    grow(TOP_CHUNK - 2, 2);
    check_counters("grow 2");
    /* A run of 260 chunks (~1 GiB) through level-1 boundary 512. */
    CHECK(alloc(260 * CP, 1) == chunk_addr(255), "large run");
    pfree(255 * CP + 7, 260 * CP - 7, 20);
    CHECK(alloc(260 * CP - 7, 1) == chunk_addr(255) + 7 * GM_PAGE_SIZE, "large run again");
    pfree(255 * CP, 260 * CP, 21);

    /* Alignment up to 2^17 pages (1 GiB): chunks 256, 512 and 4096 are the
     * 1 GiB boundaries among the grown chunks. */
    CHECK(alloc(1, (size_t)1 << 17) == chunk_addr(256), "1 GiB aligned");
    CHECK(alloc(1, (size_t)1 << 17) == chunk_addr(512), "next 1 GiB boundary");
    CHECK(alloc(1, (size_t)1 << 17) == chunk_addr(4096), "root boundary");
    CHECK(alloc(1, (size_t)1 << 17) == 0, "no boundary left");
    CHECK(alloc(CP, CP) == chunk_addr(255), "chunk aligned");
    CHECK(alloc(2 * CP, 2 * CP) == chunk_addr(258), "2-chunk aligned skips chunk 257");
    CHECK(alloc(5, 64) == chunk_addr(256) + 64 * GM_PAGE_SIZE, "64-page aligned past the hole");
    for (size_t al = 1; al <= ((size_t)1 << 15); al <<= 1) CHECK(alloc(3, al) != 0, "align %zu", al);
    CHECK(alloc(3, (size_t)1 << 16) == 0, "every 2^16-page boundary is taken");

    /* The last chunks of the window. */
    CHECK(alloc_at((TOP_CHUNK - 2) * CP + 1, 2 * CP - 1), "run to the window's end");
    CHECK(pagealloc_page_allocated(BASE + GM_HEAP_RANGE - GM_PAGE_SIZE), "last page");
    CHECK(!pagealloc_alloc_at(BASE + GM_HEAP_RANGE, 1, NULL), "past the window");
    CHECK(!pagealloc_alloc_at(BASE - GM_PAGE_SIZE, 1, NULL), "below the window");
    check_counters("directed end");
    check_all_pages();
    scavenge(SIZE_MAX, UINT64_MAX);
    check_counters("directed final");
}

/* ---- random operations ---- */

static struct { size_t p, n; } live[1 << 16];
static size_t nlive;

static size_t rnd_size(void) {
    switch (rnd() % 10) {
    case 0: case 1: case 2: case 3: case 4: return rnd_range(1, 16);
    case 5: case 6: case 7: return rnd_range(1, CP);
    default: return rnd_range(1, 3000);
    }
}

static size_t rnd_align(void) {
    if (rnd() % 10 < 6) return 1;
    unsigned k = (unsigned)(rnd() % 4 ? rnd() % 10 : rnd() % 18);
    return (size_t)1 << k;
}

static size_t rnd_grown_page(void) {
    for (;;) {
        struct mchunk *m = &mc[rnd() % (unsigned)nmc];
        if (m->grown) return m->idx * CP + rnd() % CP;
    }
}

static void add_live(size_t p, size_t n) {
    if (n && nlive < sizeof live / sizeof live[0]) live[nlive].p = p, live[nlive].n = n, nlive++;
}

static void random_ops(int nops) {
    /* Region boundaries: bottom of the window, an isolated chunk, level-2/3
     * boundary 64, 1 GiB boundary 256, level-1 boundary 512, root boundary
     * 4096, top of the window. */
    static const size_t regions[][2] = { { 0, 4 },    { 6, 1 },      { 60, 10 },         { 250, 10 },
                                         { 508, 8 }, { 4092, 8 }, { TOP_CHUNK - 4, 4 } };
    static const size_t late[][2] = { { 6, 1 }, { 66, 4 }, { 508, 8 }, { TOP_CHUNK - 4, 4 } };
    CHECK(pagealloc_init(BASE), "init");
    model_setup(regions, 7);
    nlive = 0;
    grow(0, 4), grow(60, 6), grow(250, 10), grow(4092, 8);
    size_t nfree = check_counters("random start");
    uint64_t now = 1;
    int nlate = 0;
    for (int op = 0; op < nops && failed == 0; op++, now++) {
        if (nlate < 4 && op == (nlate + 1) * nops / 6) {
            grow(late[nlate][0], late[nlate][1]);
            nlate++;
        }
        unsigned r = (unsigned)(rnd() % 100);
        bool want_free = nfree < pagealloc_total_pages() / 5;
        if (!want_free && r < 45) {
            size_t n = rnd_size(), al = rnd_align();
            uintptr_t a = alloc(n, al);
            if (a) add_live((a - BASE) >> GM_PAGE_SHIFT, n);
        } else if (!want_free && r < 55) {
            size_t p = rnd_grown_page(), n = rnd_range(1, rnd() % 2 ? 8 : 700);
            if (alloc_at(p, n)) add_live(p, n);
        } else if (r < 92 && nlive) {
            size_t i = rnd() % nlive, p = live[i].p, n = live[i].n;
            live[i] = live[--nlive];
            if (rnd() % 4 == 0 && n > 1) { /* free a piece from the middle */
                size_t k = rnd_range(0, n - 1), m = rnd_range(1, n - k);
                pfree(p + k, m, now);
                add_live(p, k);
                add_live(p + k + m, n - k - m);
            } else {
                pfree(p, n, now);
            }
        } else if (r < 94) {
            /* The OS refuses: nothing may become scavenged (known zero). */
            size_t before = pagealloc_scav_pages();
            nrefused = 0;
            size_t got = pagealloc_scavenge(SIZE_MAX, UINT64_MAX, refuse);
            CHECK(got == 0 && pagealloc_scav_pages() == before,
                  "refused scavenge released %zu pages (scav %zu -> %zu)", got, before,
                  pagealloc_scav_pages());
            CHECK(nrefused <= 1, "a refused pass kept asking: %zu calls", nrefused);
        } else if (rnd() % 2) {
            size_t max = rnd() % 8 ? rnd_range(1, 2000) : SIZE_MAX;
            uint64_t older = rnd() % 8 ? now - rnd_range(0, now < 300 ? now - 1 : 300) : UINT64_MAX;
            scavenge(max, older);
        } else {
            take_and_return(now);
        }
        nfree = check_counters("random op");
        for (int k = 0; k < 16; k++) check_page(rnd_grown_page());
        check_page(rnd() % 2 ? 5 * CP + rnd() % CP : (TOP_CHUNK - 5) * CP + rnd() % CP); /* ungrown */
        if (op % 1000 == 999) check_all_pages();
    }
    /* Drain: free everything, release everything, and the heap is whole. */
    while (nlive) {
        nlive--;
        pfree(live[nlive].p, live[nlive].n, now);
    }
    scavenge(SIZE_MAX, UINT64_MAX);
    CHECK(pagealloc_free_pages() == pagealloc_total_pages() &&
              pagealloc_scav_pages() == pagealloc_total_pages(),
          "drained heap is free and released");
    check_counters("drained");
    check_all_pages();
    CHECK(alloc(4 * CP, 1) == chunk_addr(0), "bottom region whole again");
}

int main(int argc, char **argv) {
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 0x9e3779b97f4a7c15ull;
    rng = seed ? seed : 1;
    printf("test_pagealloc seed %llu\n", (unsigned long long)seed);
    directed();
    random_ops(20000);
    printf("%lu passed, %lu failed\n", passed, failed);
    return failed != 0;
}
