/*
 * Statistics: the Go-style picture of the heap (runtime.MemStats names),
 * gathered from each tier's counters, for gm_get_heap_stats, malloc_stats,
 * mallinfo/mallinfo2 and the report at exit (GOMALLOC_STATS=1).
 *
 * Counters are kept where the work happens: per thread cache (plain stores
 * by the owner, summed here with relaxed loads), per heap (under its lock).
 * Reports are formatted on the stack and written with write(2): no malloc,
 * no stdio, so they are safe at exit and from any thread.
 */
#include <string.h>
#include <unistd.h>

#include "gomalloc.h"
#include "proc.h"
#include "mheap.h"
#include "options.h"

typedef struct snapshot {
    gm_heap_stats h;
    mheap_stats heap;
    mcache_stats caches;
} snapshot;

static void take_snapshot(snapshot *s) {
    memset(s, 0, sizeof *s);
    mcache_read_stats(&s->caches); /* first: it returns empty unowned spans to mheap */
    mheap_read_stats(&s->heap);
    gm_heap_stats *h = &s->h;
    h->heap_sys = s->heap.sys;
    size_t spare = s->caches.spare_bytes < s->heap.inuse ? s->caches.spare_bytes : s->heap.inuse;
    h->heap_inuse = s->heap.inuse - spare;
    h->heap_idle = s->heap.idle + spare;
    h->heap_released = s->heap.released;
    h->meta_sys = s->heap.meta;
    uint64_t small_mallocs = 0, small_frees = 0;
    for (unsigned c = 1; c < GM_NUM_SIZE_CLASSES; c++) {
        uint64_t m = s->caches.nmalloc[c], f = s->caches.nfree[c];
        small_mallocs += m;
        small_frees += f;
        if (m > f) {
            h->heap_alloc += (m - f) * gm_class_size[c];
            h->heap_objects += m - f;
        }
    }
    /* Counters of different threads are read at slightly different times:
     * never let a difference go below zero. */
    uint64_t bm = s->caches.nmalloc[GM_TINY_SPAN_CLASS], bf = s->caches.nfree[GM_TINY_SPAN_CLASS];
    h->heap_alloc += (bm > bf ? bm - bf : 0) * GM_TINY_BLOCK;
    if (s->caches.tiny_allocs > s->caches.tiny_frees)
        h->heap_objects += s->caches.tiny_allocs - s->caches.tiny_frees;
    h->heap_alloc += s->heap.large_inuse_bytes;
    h->heap_objects += s->heap.large_inuse_objects;
    h->mallocs = small_mallocs + s->caches.tiny_allocs + s->heap.large_allocs;
    h->frees = small_frees + s->caches.tiny_frees + s->heap.large_frees;
    h->mcache_refills = s->caches.refills;
    uint64_t small_spans = s->heap.span_allocs - s->heap.large_allocs;
    h->mcentral_grows = small_spans;
    h->mheap_allocs = s->heap.span_allocs;
    h->os_maps = s->heap.os_maps;
    h->scavenged_bytes = s->heap.scavenged_bytes;
}

void gm_get_heap_stats(gm_heap_stats *out) {
    snapshot s;
    take_snapshot(&s);
    *out = s.h;
}

/* ---- the report ---- */

typedef struct out {
    int fd;
    char buf[4096];
    size_t len;
} out;

static void flush(out *o) {
    gm_write_all(o->fd, o->buf, o->len);
    o->len = 0;
}

#define emit(o, ...)                                                               \
    do {                                                                           \
        if ((o)->len > sizeof (o)->buf - 256)                                      \
            flush(o);                                                              \
        (o)->len += (size_t)gm_snprintf((o)->buf + (o)->len,                       \
                                        sizeof (o)->buf - (o)->len, __VA_ARGS__);  \
    } while (0)

/* "123.4 MiB" into buf. */
static const char *human(char *buf, size_t size, uint64_t bytes) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    uint64_t scaled = bytes * 10;
    while (scaled >= 10240 && u < 4) {
        scaled /= 1024;
        u++;
    }
    gm_snprintf(buf, size, "%llu.%llu %s", (unsigned long long)(scaled / 10),
                (unsigned long long)(scaled % 10), units[u]);
    return buf;
}

void gm_print_stats(int fd) {
    snapshot s;
    take_snapshot(&s);
    const gm_heap_stats *h = &s.h;
    out o = {.fd = fd};
    char b[32];
    emit(&o, "gomalloc heap report (pid %d)\n", (int)getpid());
    emit(&o, "  HeapSys      %14s  heap memory mapped from the OS\n", human(b, sizeof b, h->heap_sys));
    emit(&o, "  HeapInuse    %14s  in spans holding objects\n", human(b, sizeof b, h->heap_inuse));
    emit(&o, "  HeapIdle     %14s  in free pages\n", human(b, sizeof b, h->heap_idle));
    emit(&o, "  HeapReleased %14s  free pages returned to the OS\n", human(b, sizeof b, h->heap_released));
    emit(&o, "  HeapAlloc    %14s  live objects, by size class\n", human(b, sizeof b, h->heap_alloc));
    emit(&o, "  HeapObjects  %14llu\n", (unsigned long long)h->heap_objects);
    emit(&o, "  MetaSys      %14s  metadata address space (resident only where touched)\n", human(b, sizeof b, h->meta_sys));
    emit(&o, "  Mallocs      %14llu\n", (unsigned long long)h->mallocs);
    emit(&o, "  Frees        %14llu\n", (unsigned long long)h->frees);
    emit(&o, "  Scavenged    %14s  returned to the OS, ever\n", human(b, sizeof b, h->scavenged_bytes));
    uint64_t small = h->mallocs - s.heap.large_allocs;
    emit(&o, "tiers: mcache %llu (tiny %llu), refills %llu, mheap spans %llu "
             "(large %llu), OS maps %llu\n",
         (unsigned long long)small, (unsigned long long)s.caches.tiny_allocs,
         (unsigned long long)h->mcache_refills, (unsigned long long)h->mheap_allocs,
         (unsigned long long)s.heap.large_allocs, (unsigned long long)h->os_maps);
    emit(&o, "frees: %llu, into another thread's or no thread's span %llu\n",
         (unsigned long long)h->frees, (unsigned long long)s.caches.remote_frees);
    emit(&o, "%5s %7s %12s %8s %14s %14s\n", "class", "size", "objects", "spans", "mallocs", "frees");
    for (unsigned c = 1; c < GM_NUM_SPAN_CLASSES; c++) {
        uint64_t m = s.caches.nmalloc[c], f = s.caches.nfree[c];
        if (!m && !s.heap.spans_inuse[c])
            continue;
        bool tiny = c == GM_TINY_SPAN_CLASS;
        char cls[12];
        gm_snprintf(cls, sizeof cls, "%u", c);
        emit(&o, "%5s %7u %12llu %8llu %14llu %14llu\n", tiny ? "tiny" : cls,
             tiny ? GM_TINY_BLOCK : gm_class_size[c],
             (unsigned long long)(m > f ? m - f : 0),
             (unsigned long long)s.heap.spans_inuse[c], (unsigned long long)m,
             (unsigned long long)f);
    }
    emit(&o, "%5s %7s %12llu %8llu %14llu %14llu\n", "large", "-",
         (unsigned long long)s.heap.large_inuse_objects,
         (unsigned long long)s.heap.large_inuse_objects,
         (unsigned long long)s.heap.large_allocs, (unsigned long long)s.heap.large_frees);
    flush(&o);
}

void gm_malloc_stats(void) { gm_print_stats(2); }

static int clamp_int(size_t v) { return v > INT32_MAX ? INT32_MAX : (int)v; }

struct mallinfo2 gm_mallinfo2(void) {
    snapshot s;
    take_snapshot(&s);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = s.h.heap_sys;
    mi.ordblks = 1;
    mi.hblks = s.heap.large_inuse_objects;
    mi.hblkhd = s.heap.large_inuse_bytes;
    mi.uordblks = s.h.heap_alloc;
    mi.fordblks = s.h.heap_sys > s.h.heap_alloc ? s.h.heap_sys - s.h.heap_alloc : 0;
    mi.keepcost = s.h.heap_idle - s.h.heap_released;
    return mi;
}

struct mallinfo gm_mallinfo(void) {
    struct mallinfo2 m2 = gm_mallinfo2();
    struct mallinfo mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = clamp_int(m2.arena);
    mi.ordblks = clamp_int(m2.ordblks);
    mi.hblks = clamp_int(m2.hblks);
    mi.hblkhd = clamp_int(m2.hblkhd);
    mi.uordblks = clamp_int(m2.uordblks);
    mi.fordblks = clamp_int(m2.fordblks);
    mi.keepcost = clamp_int(m2.keepcost);
    return mi;
}

__attribute__((destructor)) static void report_at_exit(void) {
    options_init(); /* in case nothing was ever allocated */
    if (gm_opt.stats_at_exit)
        gm_print_stats(gm_opt.stats_fd);
}
