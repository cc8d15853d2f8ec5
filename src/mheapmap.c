/*
 * The heap map: a picture of the heap as an SVG document (gm_heap_map,
 * GOMALLOC_HEAP_MAP, `gomalloc --heap-map`).
 *
 * What it shows: every arena of the heap window, each of its committed 4 MiB
 * chunks as a row of 512 pages, and on it every span (coloured by size
 * class, paler the emptier it is; large objects dark), every run of free
 * pages (resident: memory the heap keeps but nobody uses; released: given
 * back to the OS) and every run held without a span (recently freed large
 * runs kept for reuse).  Each span is one SVG element (a rect, or a path
 * when it crosses rows) with class "span" and a tooltip.  A legend gives the
 * states and each size class's count of spans and fill.
 *
 * How it reads the heap: read-only, without the heap lock.  Committed
 * ranges come from /proc/self/maps (the heap's read-write mappings inside
 * its window); spans from the span map (arena.h: a small span maps all its
 * pages, a large one its first page, and span structs are never unmapped,
 * so a stale pointer is safe to read); free and released pages from the
 * page allocator's per-page queries.  While other threads allocate, the
 * picture may be slightly inconsistent (a span drawn as it was a moment
 * ago), never unsafe.  Nothing here calls malloc; output goes through a
 * stack buffer with write(2).
 *
 * Locking: map_lock serialises drawings (the static tables below); no
 * allocator lock is taken.
 */
#define _GNU_SOURCE
#include "mprof.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "mheap.h"
#include "mpagealloc.h"
#include "os.h"

/* Geometry, in SVG user units (pixels). */
#define PAGE_W 2                           /* one 8 KiB page */
#define ROW_H 12                           /* one 4 MiB chunk */
#define ROW_GAP 2
#define ROW_W (PAGE_W * (int)GM_CHUNK_PAGES) /* 1024 */
#define MARGIN 10
#define LABEL_W 90                         /* chunk address labels */
#define ARENA_HEAD 22
#define LEGEND_ROW 16
#define LEGEND_COLS 3

#define MAX_RANGES 256

enum run_kind { RUN_SMALL, RUN_LARGE, RUN_FREE, RUN_RELEASED, RUN_HELD };

typedef struct run {
    uintptr_t base;
    size_t npages;
    enum run_kind kind;
    const mspan *s;
} run;

static gm_lock_t map_lock = GM_LOCK_INIT;
static struct { uintptr_t start, end; } ranges[MAX_RANGES];
static int nranges;

typedef struct class_totals {
    uint64_t spans, live, capacity;
} class_totals;
static class_totals totals[GM_NUM_SPAN_CLASSES];
static uint64_t kind_pages[RUN_HELD + 1], kind_count[RUN_HELD + 1];

/* ---- reading the heap ---- */

static uintptr_t hex(const char **s) {
    uintptr_t v = 0;
    for (;; (*s)++) {
        char c = **s;
        if (c >= '0' && c <= '9') v = v << 4 | (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v = v << 4 | (uintptr_t)(c - 'a' + 10);
        else return v;
    }
}

/* One line of /proc/self/maps: a read-write mapping inside the heap window
 * joins the committed ranges. */
static bool committed_line(const char *s, void *arg) {
    (void)arg;
    uintptr_t lo = gm_heap_base, hi = gm_heap_base + GM_HEAP_USABLE;
    uintptr_t a = hex(&s);
    if (*s++ != '-')
        return true;
    uintptr_t b = hex(&s);
    if (*s++ != ' ' || s[0] != 'r' || s[1] != 'w' || b <= lo || a >= hi)
        return true;
    if (nranges > 0 && ranges[nranges - 1].end == a) {
        ranges[nranges - 1].end = b < hi ? b : hi;
    } else if (nranges < MAX_RANGES) {
        ranges[nranges].start = a > lo ? a : lo;
        ranges[nranges].end = b < hi ? b : hi;
        nranges++;
    }
    return true;
}

/* The committed parts of the heap window: its read-write mappings. */
static void read_committed(void) {
    nranges = 0;
    if (gm_heap_base)
        os_each_map_line(committed_line, NULL);
}

static const mspan *span_at(uintptr_t page) {
    const mspan *s = spanof((const void *)page);
    /* a freed large block's first page keeps a dead marker (mheap.c) */
    return s && __atomic_load_n(&s->state, __ATOMIC_RELAXED) != SPAN_DEAD ? s : NULL;
}

/* Live objects of a small span and its capacity (tiny spans: 16-byte
 * blocks), counted from its slot words as mspan_recount does: not free,
 * not freed by another thread since, not blocked.  Read without the
 * holder's cooperation, so a span in use may be a few objects off. */
static void span_fill(const mspan *s, uint64_t *live, uint64_t *cap) {
    uint64_t n = 0;
    unsigned nw = s->nwords < SPAN_MAX_WORDS ? s->nwords : SPAN_MAX_WORDS;
    for (unsigned w = 0; w < nw; w++) {
        uint64_t f = __atomic_load_n(span_free_word(s, w), __ATOMIC_RELAXED);
        uint64_t r = __atomic_load_n(span_remote_word(s, w), __ATOMIC_RELAXED);
        n += gm_popcount64(~f & ~r); /* blocked slots are set in r */
    }
    *cap = s->nelems;
    *live = n < *cap ? n : *cap;
}

/* Calls fn for each run of [start, end), in address order. */
static void walk_range(uintptr_t start, uintptr_t end, void (*fn)(const run *, void *), void *arg) {
    uintptr_t p = start;
    while (p < end) {
        run r = {.base = p, .npages = 1};
        const mspan *s = span_at(p);
        if (s) {
            uintptr_t base = __atomic_load_n(&s->base, __ATOMIC_RELAXED);
            size_t np = __atomic_load_n(&s->npages, __ATOMIC_RELAXED);
            if (base > p || base + (np << GM_PAGE_SHIFT) <= p || np == 0)
                np = 1, base = p; /* changing under us: one page, as it is now */
            r.base = p;
            r.npages = (base + (np << GM_PAGE_SHIFT) - p) >> GM_PAGE_SHIFT;
            r.kind = s->spanclass == 0 ? RUN_LARGE : RUN_SMALL;
            r.s = s;
        } else {
            bool alloc = pagealloc_page_allocated(p);
            bool scav = !alloc && pagealloc_page_scavenged(p);
            r.kind = alloc ? RUN_HELD : scav ? RUN_RELEASED : RUN_FREE;
            uintptr_t q = p + GM_PAGE_SIZE;
            while (q < end && !span_at(q) && pagealloc_page_allocated(q) == alloc &&
                   (alloc || pagealloc_page_scavenged(q) == scav))
                q += GM_PAGE_SIZE;
            r.npages = (q - p) >> GM_PAGE_SHIFT;
        }
        if (p + (r.npages << GM_PAGE_SHIFT) > end)
            r.npages = (end - p) >> GM_PAGE_SHIFT;
        fn(&r, arg);
        p += r.npages << GM_PAGE_SHIFT;
    }
}

static void count_run(const run *r, void *arg) {
    (void)arg;
    kind_pages[r->kind] += r->npages;
    kind_count[r->kind]++;
    if (r->kind == RUN_SMALL) {
        unsigned c = r->s->spanclass;
        uint64_t live, cap;
        span_fill(r->s, &live, &cap);
        totals[c].spans++;
        totals[c].live += live;
        totals[c].capacity += cap;
    }
}

/* ---- writing ---- */

typedef struct svg {
    int fd;
    bool err;
    size_t len;
    char buf[4096];
} svg;

static void svg_flush(svg *o) {
    gm_write_all(o->fd, o->buf, o->len);
    o->len = 0;
}

#define put(o, ...)                                                                  \
    do {                                                                             \
        if ((o)->len > sizeof (o)->buf - 400)                                        \
            svg_flush(o);                                                            \
        int n_ = gm_snprintf((o)->buf + (o)->len, sizeof (o)->buf - (o)->len, __VA_ARGS__); \
        size_t room_ = sizeof (o)->buf - (o)->len - 1;                               \
        (o)->len += (size_t)n_ < room_ ? (size_t)n_ : room_;                         \
    } while (0)

static unsigned class_hue(unsigned c) { return (c * 47u) % 360u; }

static const char *const kind_name[] = {"span", "large", "free", "released", "held"};
static const char *const kind_text[] = {
    "span of a size class (paler = emptier)", "large object", "free, resident (kept, unused)",
    "free, released to the OS", "recently freed large run, kept for reuse"};

/* Rows: each committed chunk, in address order, with its top y. */
static struct { uintptr_t chunk; int y; } rows[1 << 14];
static int nrows;

static int row_y_of(uintptr_t chunk, int *y_out) {
    int lo = 0, hi = nrows;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (rows[mid].chunk < chunk) lo = mid + 1;
        else hi = mid;
    }
    if (lo < nrows && rows[lo].chunk == chunk) {
        *y_out = rows[lo].y;
        return 1;
    }
    return 0;
}

/* Does the run lie in one chunk row (a rect), or cross rows (a path)? */
static bool run_is_rect(const run *r) {
    uintptr_t end = r->base + (r->npages << GM_PAGE_SHIFT);
    return gm_align_down(end - 1, GM_CHUNK_SIZE) == gm_align_down(r->base, GM_CHUNK_SIZE);
}

/* The geometry attributes of a run: x/y/width/height, or a path of one
 * rectangle per row it touches. */
static void run_shape(svg *o, const run *r, bool is_rect) {
    uintptr_t p = r->base, end = r->base + (r->npages << GM_PAGE_SHIFT);
    int pieces = 0;
    if (!is_rect)
        put(o, "d=\"");
    while (p < end) {
        uintptr_t chunk = gm_align_down(p, GM_CHUNK_SIZE);
        uintptr_t stop = chunk + GM_CHUNK_SIZE < end ? chunk + GM_CHUNK_SIZE : end;
        int y = 0;
        bool found = row_y_of(chunk, &y);
        int x = MARGIN + LABEL_W + (int)((p - chunk) >> GM_PAGE_SHIFT) * PAGE_W;
        int w = (int)((stop - p) >> GM_PAGE_SHIFT) * PAGE_W;
        if (is_rect)
            put(o, "x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"", x, y, w, found ? ROW_H : 0);
        else if (found)
            put(o, "%sM%d %dh%dv%dh-%dz", pieces++ ? " " : "", x, y, w, ROW_H, w);
        p = stop;
    }
    if (!is_rect)
        put(o, "\"");
}

static void draw_run(const run *r, void *arg) {
    svg *o = arg;
    char what[160];
    char style[64] = "";
    const char *cls = kind_name[r->kind];
    if (r->kind == RUN_SMALL) {
        unsigned c = r->s->spanclass;
        uint64_t live, cap;
        span_fill(r->s, &live, &cap);
        bool tiny = c == GM_TINY_SPAN_CLASS;
        unsigned size = tiny ? GM_TINY_BLOCK : gm_class_size[c];
        unsigned fill = cap ? (unsigned)(live * 100 / cap) : 0;
        gm_snprintf(style, sizeof style, " fill=\"hsl(%u,65%%,%u%%)\"", class_hue(c),
                    85 - fill * 40 / 100);
        gm_snprintf(what, sizeof what, "%s %u (%u B): %zu KiB, %llu of %llu objects in use (%u%%)",
                    tiny ? "tiny class" : "class", c, size, (r->npages << GM_PAGE_SHIFT) >> 10,
                    (unsigned long long)live, (unsigned long long)cap, fill);
    } else if (r->kind == RUN_LARGE) {
        gm_snprintf(what, sizeof what, "large object: %zu KiB asked, %zu KiB of pages",
                    r->s->large_size >> 10, (r->npages << GM_PAGE_SHIFT) >> 10);
    } else {
        gm_snprintf(what, sizeof what, "%s: %zu pages (%zu KiB)", kind_text[r->kind], r->npages,
                    (r->npages << GM_PAGE_SHIFT) >> 10);
    }
    bool is_rect = run_is_rect(r);
    bool span = r->kind == RUN_SMALL || r->kind == RUN_LARGE;
    const char *tag = is_rect ? "rect" : "path";
    put(o, "<%s class=\"%s%s\"%s ", tag, span ? "span " : "", cls, style);
    run_shape(o, r, is_rect);
    put(o, "><title>%p: %s</title></%s>\n", (void *)r->base, what, tag);
}

int heapmap_write(int fd) {
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    int saved = errno;
    gm_lock(&map_lock);
    read_committed();
    memset(totals, 0, sizeof totals);
    memset(kind_pages, 0, sizeof kind_pages);
    memset(kind_count, 0, sizeof kind_count);
    for (int i = 0; i < nranges; i++)
        walk_range(ranges[i].start, ranges[i].end, count_run, NULL);

    /* Legend height: states, then the classes in use in columns. */
    int nclasses = 0;
    for (unsigned c = 1; c < GM_NUM_SPAN_CLASSES; c++)
        nclasses += totals[c].spans != 0;
    int legend_h = 40 + (RUN_HELD + 1) * LEGEND_ROW + 24 +
                   ((nclasses + LEGEND_COLS - 1) / LEGEND_COLS) * LEGEND_ROW + 16;
    /* Rows. */
    nrows = 0;
    int y = MARGIN + legend_h;
    uintptr_t last_arena = 0;
    for (int i = 0; i < nranges; i++) {
        for (uintptr_t c = gm_align_down(ranges[i].start, GM_CHUNK_SIZE); c < ranges[i].end;
             c += GM_CHUNK_SIZE) {
            uintptr_t arena = gm_align_down(c, GM_ARENA_SIZE);
            if (nrows == 0 || arena != last_arena) {
                y += ARENA_HEAD;
                last_arena = arena;
            }
            if (nrows < (int)(sizeof rows / sizeof *rows)) {
                rows[nrows].chunk = c;
                rows[nrows].y = y;
                nrows++;
            }
            y += ROW_H + ROW_GAP;
        }
    }
    int width = MARGIN * 2 + LABEL_W + ROW_W;
    int height = y + MARGIN;

    svg *o = &(svg){.fd = fd};
    put(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    put(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
           "viewBox=\"0 0 %d %d\" font-family=\"monospace\" font-size=\"11\">\n",
        width, height, width, height);
    put(o, "<style>.large{fill:#2b3a55}.free{fill:#f2b134}.released{fill:#ececec}"
           ".held{fill:#b48ead}.chunk{fill:none;stroke:#999;stroke-width:0.5}"
           "rect:hover,path:hover{stroke:#000;stroke-width:1}text{white-space:pre}</style>\n");
    put(o, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    uint64_t spans = 0;
    for (unsigned c = 1; c < GM_NUM_SPAN_CLASSES; c++)
        spans += totals[c].spans;
    put(o, "<text x=\"%d\" y=\"%d\" font-size=\"14\" font-weight=\"bold\">gomalloc heap map: "
           "%s (pid %d): %llu spans, %llu large objects</text>\n",
        MARGIN, MARGIN + 14, program_invocation_short_name, (int)getpid(),
        (unsigned long long)spans, (unsigned long long)kind_count[RUN_LARGE]);
    int ly = MARGIN + 40;
    for (int k = 0; k <= RUN_HELD; k++, ly += LEGEND_ROW) {
        if (k == RUN_SMALL)
            put(o, "<g><rect x=\"%d\" y=\"%d\" width=\"24\" height=\"10\" fill=\"hsl(%u,65%%,55%%)\"/>",
                MARGIN, ly - 9, class_hue(5));
        else
            put(o, "<g><rect class=\"%s\" x=\"%d\" y=\"%d\" width=\"24\" height=\"10\"/>",
                kind_name[k], MARGIN, ly - 9);
        put(o, "<text x=\"%d\" y=\"%d\">%s: %llu runs, %llu KiB</text></g>\n", MARGIN + 32, ly,
            kind_text[k], (unsigned long long)kind_count[k],
            (unsigned long long)((kind_pages[k] << GM_PAGE_SHIFT) >> 10));
    }
    ly += 8;
    put(o, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">size classes in use: class, object "
           "size, spans, fill (objects in use / slots)</text>\n", MARGIN, ly);
    ly += LEGEND_ROW;
    int col = 0, col_w = (width - 2 * MARGIN) / LEGEND_COLS;
    for (unsigned c = 1; c < GM_NUM_SPAN_CLASSES; c++) {
        if (!totals[c].spans)
            continue;
        bool tiny = c == GM_TINY_SPAN_CLASS;
        int x = MARGIN + col * col_w;
        unsigned fill = totals[c].capacity ? (unsigned)(totals[c].live * 100 / totals[c].capacity) : 0;
        put(o, "<g class=\"legend-class\"><rect x=\"%d\" y=\"%d\" width=\"24\" height=\"10\" "
               "fill=\"hsl(%u,65%%,55%%)\"/><text x=\"%d\" y=\"%d\">%s%u</text>"
               "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%u B</text>"
               "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%llu spans</text>"
               "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%u%% full</text></g>\n",
            x, ly - 9, class_hue(c), x + 32, ly, tiny ? "tiny " : "", c, x + 135, ly,
            tiny ? GM_TINY_BLOCK : gm_class_size[c], x + 225, ly,
            (unsigned long long)totals[c].spans, x + 300, ly, fill);
        if (++col == LEGEND_COLS) {
            col = 0;
            ly += LEGEND_ROW;
        }
    }
    /* Arena headings and chunk outlines. */
    last_arena = 0;
    for (int i = 0; i < nrows; i++) {
        uintptr_t arena = gm_align_down(rows[i].chunk, GM_ARENA_SIZE);
        if (i == 0 || arena != last_arena) {
            put(o, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">arena %p (64 MiB: 16 chunks of "
                   "4 MiB, 512 pages of 8 KiB each)</text>\n",
                MARGIN, rows[i].y - 6, (void *)arena);
            last_arena = arena;
        }
        put(o, "<text x=\"%d\" y=\"%d\" font-size=\"9\">%p</text>"
               "<rect class=\"chunk\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n",
            MARGIN, rows[i].y + ROW_H - 2, (void *)rows[i].chunk, MARGIN + LABEL_W, rows[i].y,
            ROW_W, ROW_H);
    }
    for (int i = 0; i < nranges; i++)
        walk_range(ranges[i].start, ranges[i].end, draw_run, o);
    put(o, "</svg>\n");
    svg_flush(o);
    gm_unlock(&map_lock);
    errno = saved;
    return 0;
}
