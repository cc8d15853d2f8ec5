/*
 * Statistics: the Go-style picture of the heap (runtime.MemStats names),
 * gathered from each tier's counters, for gm_get_heap_stats, malloc_stats,
 * mallinfo/mallinfo2, malloc_info (XML), gm_stats_json (JSON) and the
 * reports at exit.  Also the observability options (GOMALLOC_STATS=json,
 * GOMALLOC_PROFILE..., GOMALLOC_HEAP_MAP) and what is written at exit.
 *
 * Counters are kept where the work happens: per thread cache (plain stores
 * by the owner, summed here with relaxed loads), per heap (under its lock).
 * Reports are formatted on the stack and written with write(2): no malloc,
 * no stdio (malloc_info alone writes to the caller's FILE, from a stack
 * buffer, with no allocator lock held), so they are safe at exit and from
 * any thread.
 *
 * Where reports go.  Only to descriptors gomalloc owns: the close-on-exec
 * duplicate of stderr made when the options were read, checked by identity
 * (os_fd_is_ours) before each write, or a file opened at the time of
 * writing (GOMALLOC_STATS_FILE, GOMALLOC_PROFILE, GOMALLOC_HEAP_MAP).  If
 * stderr was closed at start, or the program closed the duplicate, the
 * report is dropped rather than written into one of the program's files.
 * With GOMALLOC_STATS_PID set (the launcher sets it to the pid it execs),
 * only that process writes its reports at exit: not its forked children,
 * not the programs it starts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "gomalloc.h"
#include "proc.h"
#include "tiny.h"
#include "mheap.h"
#include "mprof.h"
#include "options.h"
#include "os.h"

gm_obs_options gm_obs;
size_t gm_peak_pages;

/* ---- options ---- */

static const struct { const char *name; int sig; } signal_names[] = {
    {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
    {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
};

static int parse_signal(const char *v) {
    uint64_t n = 0;
    const char *d = v;
    while (*d >= '0' && *d <= '9' && n < 1000)
        n = n * 10 + (uint64_t)(*d++ - '0');
    if (d != v && *d == 0)
        return n > 0 && n < 65 ? (int)n : 0;
    if (strncmp(v, "SIG", 3) == 0)
        v += 3;
    for (size_t i = 0; i < sizeof signal_names / sizeof *signal_names; i++)
        if (strcmp(v, signal_names[i].name) == 0)
            return signal_names[i].sig;
    return 0;
}

static void copy_path(char *dst, const char *src) {
    if (src && strlen(src) < GM_PATH_MAX)
        strcpy(dst, src);
}

void obs_options_init(void) {
    gm_obs.stats_json = gm_opt.stats_mode == GM_STATS_JSON;
    copy_path(gm_obs.stats_path, gm_opt.stats_file);
    gm_obs.report_pid = gm_opt.stats_pid < INT32_MAX ? (int)gm_opt.stats_pid : 0;
    copy_path(gm_obs.profile_path, gm_opt.profile);
    copy_path(gm_obs.heap_map_path, gm_opt.heap_map);
    gm_obs.leaks = gm_opt.leaks;
    /* Profiling is on with a profile file, a leak report or a rate; a rate
     * of 0 turns it off whatever else asks for it, as in Go. */
    bool rate_set = gm_opt.profile_rate != SIZE_MAX;
    size_t rate = rate_set && gm_opt.profile_rate ? gm_opt.profile_rate : GM_PROFILE_RATE_DEFAULT;
    gm_obs.profile = (gm_obs.profile_path[0] || gm_obs.leaks || rate_set) &&
                     !(rate_set && gm_opt.profile_rate == 0);
    if (gm_opt.profile_signal)
        gm_obs.profile_signal = parse_signal(gm_opt.profile_signal);
    /* Reports on stderr need our own copy of it, taken now. */
    bool to_stderr = gm_obs.leaks || (gm_obs.stats_json && !gm_obs.stats_path[0]);
    if (to_stderr && !os_fd_is_ours(gm_opt.stats_fd))
        gm_opt.stats_fd = os_dup_high(2);
    mprof_install_signal();
    /* Last: a nonzero rate tells the sampler the options are known. */
    __atomic_store_n(&gm_obs.profile_rate, rate, __ATOMIC_RELEASE);
}

bool obs_expand_path(char *out, size_t cap, const char *pattern) {
    size_t n = 0;
    for (const char *p = pattern; *p; p++) {
        char num[24];
        const char *piece = num;
        size_t len;
        if (p[0] == '%' && p[1] == 'p') {
            len = (size_t)gm_snprintf(num, sizeof num, "%d", (int)getpid());
            p++;
        } else {
            piece = p;
            len = 1;
        }
        if (n + len >= cap)
            return false;
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = 0;
    return n > 0;
}

bool obs_this_process_reports(void) {
    return gm_obs.report_pid == 0 || gm_obs.report_pid == (int)getpid();
}

/* ---- the snapshot ---- */

typedef struct snapshot {
    gm_heap_stats h;
    mheap_stats heap;
    mcache_stats caches;
    uint64_t large_spans; /* large spans mheap handed out (heap.large_allocs also
                           * counts page-cache reuses) */
} snapshot;

/* VmRSS and VmHWM from /proc/self/status, in bytes (0 if unreadable). */
static void read_rss(size_t *rss, size_t *peak) {
    char buf[4096];
    *rss = *peak = 0;
    int saved = errno;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    errno = saved;
    if (n <= 0)
        return;
    buf[n] = 0;
    static const struct { const char *key; size_t len; } keys[2] = {{"VmRSS:", 6}, {"VmHWM:", 6}};
    for (int k = 0; k < 2; k++) {
        const char *p = strstr(buf, keys[k].key);
        if (!p)
            continue;
        p += keys[k].len;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t v = 0;
        while (*p >= '0' && *p <= '9')
            v = v * 10 + (size_t)(*p++ - '0');
        *(k ? peak : rss) = v << 10; /* kB */
    }
}

/* Large spans kept in threads' page caches are in use for mheap, but their
 * objects were freed: for the program they are idle memory, like the
 * caches' empty spares, and their allocations and frees count as such. */
static void fold_page_caches(snapshot *s) {
    size_t bytes = s->caches.large_kept_bytes, objects = s->caches.large_kept_objects;
    if (bytes > s->heap.large_inuse_bytes) /* counters read at different times */
        bytes = s->heap.large_inuse_bytes;
    if (objects > s->heap.large_inuse_objects)
        objects = s->heap.large_inuse_objects;
    s->heap.large_inuse_bytes -= bytes;
    s->heap.large_inuse_objects -= objects;
    s->caches.spare_bytes += bytes;
    s->heap.large_allocs += s->caches.large_hits;
    s->heap.large_frees += s->caches.large_kept;
}

static void take_snapshot(snapshot *s) {
    memset(s, 0, sizeof *s);
    mcache_read_stats(&s->caches); /* first: it returns empty unowned spans to mheap */
    mheap_read_stats(&s->heap);
    s->large_spans = s->heap.large_allocs;
    fold_page_caches(s);
    gm_heap_stats *h = &s->h;
    h->size = sizeof *h;
    h->version = GM_HEAP_STATS_VERSION;
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
    uint64_t small_spans = s->heap.span_allocs - s->large_spans;
    h->mcentral_grows = small_spans;
    h->mheap_allocs = s->heap.span_allocs;
    h->os_maps = s->heap.os_maps;
    h->scavenged_bytes = s->heap.scavenged_bytes;
    read_rss(&h->rss, &h->peak_rss);
    h->peak_heap_inuse = __atomic_load_n(&gm_peak_pages, __ATOMIC_RELAXED) << GM_PAGE_SHIFT;
    if (h->peak_heap_inuse < s->heap.inuse)
        h->peak_heap_inuse = s->heap.inuse;
    for (unsigned c = 1; c < GM_NUM_SPAN_CLASSES; c++)
        h->spans_inuse += s->heap.spans_inuse[c];
    h->spans_inuse += s->heap.large_inuse_objects + s->caches.large_kept_objects;
}

void gm_get_heap_stats_sized(gm_heap_stats *out, size_t size) {
    snapshot s;
    take_snapshot(&s);
    if (size > sizeof s.h)
        size = sizeof s.h;
    if (size < sizeof s.h.size + sizeof s.h.version)
        return;
    s.h.size = (uint32_t)size;
    memcpy(out, &s.h, size);
}

/* The 0.1.0 entry point, for programs built before the struct had a size:
 * its layout is version 1 without the size and version words. */
#undef gm_get_heap_stats
GM_API void gm_get_heap_stats(void *out);
void gm_get_heap_stats(void *out) {
    snapshot s;
    take_snapshot(&s);
    memcpy(out, &s.h.heap_sys, offsetof(gm_heap_stats, rss) - offsetof(gm_heap_stats, heap_sys));
}

/* ---- formatting into a buffer ---- */

typedef struct out {
    int fd;          /* flushed here when full; -1: count only (sized buffer) */
    char *dst;       /* gm_stats_json: the caller's buffer */
    size_t dst_cap, total;
    char buf[4096];
    size_t len;
} out;

static void flush(out *o) {
    if (o->fd >= 0) {
        gm_write_all(o->fd, o->buf, o->len);
    } else if (o->dst) {
        for (size_t i = 0; i < o->len; i++, o->total++)
            if (o->total + 1 < o->dst_cap)
                o->dst[o->total] = o->buf[i];
        o->len = 0;
        return;
    }
    o->total += o->len;
    o->len = 0;
}

#define emit(o, ...)                                                               \
    do {                                                                           \
        if ((o)->len > sizeof (o)->buf - 512)                                      \
            flush(o);                                                              \
        int n_ = gm_snprintf((o)->buf + (o)->len, sizeof (o)->buf - (o)->len,      \
                             __VA_ARGS__);                                         \
        size_t room_ = sizeof (o)->buf - (o)->len - 1;                             \
        (o)->len += (size_t)n_ < room_ ? (size_t)n_ : room_;                       \
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

static const char *program_name(void) {
    return program_invocation_name && *program_invocation_name ? program_invocation_name : "?";
}

/* The options in effect, as GOMALLOC_* settings. */
static void describe_options(out *o) {
    emit(o, "TINY=%d SCAVENGE_DELAY_MS=%llu RETAIN_MB=%zu BACKGROUND=%d MEMLIMIT_MB=%zu",
         gm_opt.tiny ? 1 : 0, (unsigned long long)(gm_opt.scavenge_delay_ns / 1000000),
         gm_opt.retain_bytes >> 20, gm_opt.background ? 1 : 0, gm_opt.memlimit_bytes >> 20);
    if (gm_obs.profile)
        emit(o, " PROFILE_RATE=%zu", gm_obs.profile_rate);
    if (gm_obs.profile_path[0])
        emit(o, " PROFILE=%s", gm_obs.profile_path);
    if (gm_obs.leaks)
        emit(o, " LEAKS=1");
    if (gm_obs.heap_map_path[0])
        emit(o, " HEAP_MAP=%s", gm_obs.heap_map_path);
}

/* ---- the text report ---- */

static void print_report(int fd) {
    snapshot s;
    take_snapshot(&s);
    const gm_heap_stats *h = &s.h;
    out o = {.fd = fd};
    char b[32], b2[32];
    emit(&o, "gomalloc %s heap report: %s (pid %d)\n", GOMALLOC_VERSION, program_name(),
         (int)getpid());
    emit(&o, "  options: ");
    describe_options(&o);
    emit(&o, "\n");
    emit(&o, "  RSS          %14s  resident memory of the whole process (peak %s)\n",
         human(b, sizeof b, h->rss), human(b2, sizeof b2, h->peak_rss));
    emit(&o, "  HeapSys      %14s  heap memory mapped from the OS\n", human(b, sizeof b, h->heap_sys));
    emit(&o, "  HeapInuse    %14s  in spans holding objects (peak %s)\n",
         human(b, sizeof b, h->heap_inuse), human(b2, sizeof b2, h->peak_heap_inuse));
    emit(&o, "  HeapIdle     %14s  in free pages\n", human(b, sizeof b, h->heap_idle));
    emit(&o, "  HeapReleased %14s  free pages not resident now\n", human(b, sizeof b, h->heap_released));
    emit(&o, "  HeapAlloc    %14s  live objects, by size class\n", human(b, sizeof b, h->heap_alloc));
    emit(&o, "  HeapObjects  %14llu\n", (unsigned long long)h->heap_objects);
    emit(&o, "  MetaSys      %14s  metadata address space (resident only where touched)\n", human(b, sizeof b, h->meta_sys));
    emit(&o, "  Mallocs      %14llu\n", (unsigned long long)h->mallocs);
    emit(&o, "  Frees        %14llu\n", (unsigned long long)h->frees);
    emit(&o, "  Scavenged    %14s  returned to the OS by the scavenger, over the whole run\n",
         human(b, sizeof b, h->scavenged_bytes));
    if (h->heap_released != h->scavenged_bytes)
        emit(&o, "  (HeapReleased and Scavenged differ: HeapReleased also counts free pages\n"
                 "   never touched since they were mapped, and Scavenged also counts pages\n"
                 "   returned earlier and in use again since)\n");
    if (gm_obs.profile) {
        uint64_t so, sb;
        mprof_inuse(&so, &sb);
        uint64_t remembered, unwound;
        mprof_stack_stats(&remembered, &unwound);
        emit(&o, "  profile: one sample per %zu bytes on average; %llu sampled objects "
                 "(%s) live; stacks: %llu unwound, %llu remembered\n", gm_obs.profile_rate,
             (unsigned long long)so, human(b, sizeof b, sb), (unsigned long long)unwound,
             (unsigned long long)remembered);
    }
    uint64_t small = h->mallocs - s.heap.large_allocs;
    emit(&o, "tiers: mcache %llu (tiny %llu), refills %llu, mheap spans %llu "
             "(large %llu; large reused from thread page caches %llu), OS maps %llu\n",
         (unsigned long long)small, (unsigned long long)s.caches.tiny_allocs,
         (unsigned long long)h->mcache_refills, (unsigned long long)h->mheap_allocs,
         (unsigned long long)s.large_spans, (unsigned long long)s.caches.large_hits,
         (unsigned long long)h->os_maps);
    emit(&o, "frees: %llu, into another thread's or no thread's span %llu\n",
         (unsigned long long)h->frees, (unsigned long long)s.caches.remote_frees);
    emit(&o, "%5s %7s %12s %12s %8s %12s %5s %14s %14s\n", "class", "size", "objects", "bytes",
         "spans", "span bytes", "fill", "mallocs", "frees");
    for (unsigned c = 1; c < GM_NUM_SPAN_CLASSES; c++) {
        uint64_t m = s.caches.nmalloc[c], f = s.caches.nfree[c];
        if (!m && !s.heap.spans_inuse[c])
            continue;
        bool tiny = c == GM_TINY_SPAN_CLASS;
        unsigned sc = tiny ? gm_size_to_class(GM_TINY_BLOCK) : c;
        uint32_t size = tiny ? GM_TINY_BLOCK : gm_class_size[c];
        uint64_t objects = m > f ? m - f : 0;
        uint64_t bytes = objects * size;
        uint64_t span_bytes = s.heap.spans_inuse[c] * gm_class_npages[sc] * GM_PAGE_SIZE;
        char cls[12];
        gm_snprintf(cls, sizeof cls, "%u", c);
        emit(&o, "%5s %7u %12llu %12s %8llu %12s %4llu%% %14llu %14llu\n", tiny ? "tiny" : cls,
             size, (unsigned long long)objects, human(b, sizeof b, bytes),
             (unsigned long long)s.heap.spans_inuse[c], human(b2, sizeof b2, span_bytes),
             (unsigned long long)(span_bytes ? bytes * 100 / span_bytes : 0),
             (unsigned long long)m, (unsigned long long)f);
    }
    emit(&o, "%5s %7s %12llu %12s %8llu %12s %5s %14llu %14llu\n", "large", "-",
         (unsigned long long)s.heap.large_inuse_objects,
         human(b, sizeof b, s.heap.large_inuse_bytes),
         (unsigned long long)s.heap.large_inuse_objects,
         human(b2, sizeof b2, s.heap.large_inuse_bytes), "",
         (unsigned long long)s.heap.large_allocs, (unsigned long long)s.heap.large_frees);
    if (s.caches.tiny_allocs)
        emit(&o, "(tiny: %llu pieces of up to %u bytes allocated, %llu freed, packed into the "
                 "16-byte blocks counted above)\n",
             (unsigned long long)s.caches.tiny_allocs, GM_TINY_MAX,
             (unsigned long long)s.caches.tiny_frees);
    flush(&o);
}

void gm_print_stats(int fd) { print_report(fd); }

void gm_malloc_stats(void) { gm_print_stats(2); }

/* ---- JSON ---- */

static void json_string(out *o, const char *str) {
    emit(o, "\"");
    char piece[8];
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        if (*p == '"' || *p == '\\') {
            piece[0] = '\\';
            piece[1] = (char)*p;
            piece[2] = 0;
        } else if (*p < 0x20) {
            gm_snprintf(piece, sizeof piece, "\\u00%x%x", *p >> 4, *p & 15);
        } else {
            piece[0] = (char)*p;
            piece[1] = 0;
        }
        emit(o, "%s", piece);
    }
    emit(o, "\"");
}

static void write_json(out *o) {
    snapshot s;
    take_snapshot(&s);
    const gm_heap_stats *h = &s.h;
#define U(x) ((unsigned long long)(x))
    emit(o, "{\"Version\":\"%s\",\"Pid\":%d,\"Program\":", GOMALLOC_VERSION, (int)getpid());
    json_string(o, program_name());
    emit(o, ",\"HeapAlloc\":%llu,\"HeapSys\":%llu,\"HeapIdle\":%llu,\"HeapInuse\":%llu,"
            "\"HeapReleased\":%llu,\"HeapObjects\":%llu,\"Mallocs\":%llu,\"Frees\":%llu,",
         U(h->heap_alloc), U(h->heap_sys), U(h->heap_idle), U(h->heap_inuse),
         U(h->heap_released), U(h->heap_objects), U(h->mallocs), U(h->frees));
    emit(o, "\"MetaSys\":%llu,\"Scavenged\":%llu,\"RSS\":%llu,\"PeakRSS\":%llu,"
            "\"PeakHeapInuse\":%llu,\"Spans\":%llu,",
         U(h->meta_sys), U(h->scavenged_bytes), U(h->rss), U(h->peak_rss),
         U(h->peak_heap_inuse), U(h->spans_inuse));
    emit(o, "\"TinyAllocs\":%llu,\"TinyFrees\":%llu,\"LargeAllocs\":%llu,\"LargeFrees\":%llu,"
            "\"LargeInuse\":%llu,",
         U(s.caches.tiny_allocs), U(s.caches.tiny_frees), U(s.heap.large_allocs),
         U(s.heap.large_frees), U(s.heap.large_inuse_bytes));
    emit(o, "\"MCacheRefills\":%llu,\"MHeapAllocs\":%llu,\"OSMaps\":%llu,\"BySize\":[",
         U(h->mcache_refills), U(h->mheap_allocs), U(h->os_maps));
    for (unsigned c = 1; c < GM_NUM_SPAN_CLASSES; c++) {
        bool tiny = c == GM_TINY_SPAN_CLASS;
        emit(o, "%s{\"Size\":%u,\"Mallocs\":%llu,\"Frees\":%llu,\"Spans\":%llu%s}", c > 1 ? "," : "",
             tiny ? GM_TINY_BLOCK : gm_class_size[c], U(s.caches.nmalloc[c]),
             U(s.caches.nfree[c]), U(s.heap.spans_inuse[c]), tiny ? ",\"Tiny\":true" : "");
    }
    emit(o, "],\"Options\":{\"Tiny\":%s,\"ScavengeDelayMs\":%llu,\"RetainMB\":%llu,"
            "\"Background\":%s,\"MemlimitMB\":%llu,\"Profile\":%s,\"ProfileRate\":%llu,"
            "\"Leaks\":%s}}",
         gm_opt.tiny ? "true" : "false", U(gm_opt.scavenge_delay_ns / 1000000),
         U(gm_opt.retain_bytes >> 20), gm_opt.background ? "true" : "false",
         U(gm_opt.memlimit_bytes >> 20), gm_obs.profile ? "true" : "false",
         U(gm_obs.profile_rate), gm_obs.leaks ? "true" : "false");
#undef U
}

size_t gm_stats_json(char *buf, size_t len) {
    out o = {.fd = -1, .dst = buf, .dst_cap = len};
    write_json(&o);
    flush(&o);
    if (len)
        buf[o.total < len ? o.total : len - 1] = 0;
    return o.total;
}

/* ---- malloc_info: glibc's XML shape ---- */

int gm_malloc_info(int options, FILE *fp) {
    if (options != 0 || !fp) {
        errno = EINVAL;
        return -1;
    }
    snapshot s;
    take_snapshot(&s);
    const gm_heap_stats *h = &s.h;
    char line[256];
#define PUT(...) do { gm_snprintf(line, sizeof line, __VA_ARGS__); fputs(line, fp); } while (0)
#define U(x) ((unsigned long long)(x))
    PUT("<malloc version=\"1\">\n");
    PUT("<allocator name=\"gomalloc\" version=\"%s\"/>\n", GOMALLOC_VERSION);
    PUT("<heap nr=\"0\">\n<sizes>\n");
    /* Per class, as glibc lists its bins: the free slots of the class's
     * spans (count) and their bytes (total). */
    uint64_t free_count = 0, free_bytes = 0;
    for (unsigned c = 1; c < GM_NUM_SIZE_CLASSES; c++) {
        uint64_t cap = s.heap.spans_inuse[c] * gm_class_nobjs[c];
        uint64_t m = s.caches.nmalloc[c], f = s.caches.nfree[c];
        uint64_t live = m > f ? m - f : 0;
        uint64_t nfree = cap > live ? cap - live : 0;
        if (!nfree)
            continue;
        PUT("<size from=\"%u\" to=\"%u\" total=\"%llu\" count=\"%llu\"/>\n",
            gm_class_size[c - 1] + 1, gm_class_size[c], U(nfree * gm_class_size[c]), U(nfree));
        free_count += nfree;
        free_bytes += nfree * gm_class_size[c];
    }
    PUT("</sizes>\n");
    PUT("<total type=\"fast\" count=\"%llu\" size=\"%llu\"/>\n", U(free_count), U(free_bytes));
    PUT("<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n",
        U((h->heap_idle >> GM_PAGE_SHIFT)), U(h->heap_idle));
    PUT("<system type=\"current\" size=\"%llu\"/>\n", U(h->heap_sys));
    PUT("<system type=\"max\" size=\"%llu\"/>\n", U(h->heap_sys));
    PUT("<aspace type=\"total\" size=\"%llu\"/>\n", U(h->heap_sys));
    PUT("<aspace type=\"mprotect\" size=\"%llu\"/>\n", U(h->heap_sys));
    PUT("</heap>\n");
    PUT("<total type=\"fast\" count=\"%llu\" size=\"%llu\"/>\n", U(free_count), U(free_bytes));
    PUT("<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n",
        U((h->heap_idle >> GM_PAGE_SHIFT)), U(h->heap_idle));
    PUT("<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>\n",
        U(s.heap.large_inuse_objects), U(s.heap.large_inuse_bytes));
    PUT("<system type=\"current\" size=\"%llu\"/>\n", U(h->heap_sys));
    PUT("<system type=\"max\" size=\"%llu\"/>\n", U(h->heap_sys));
    PUT("<aspace type=\"total\" size=\"%llu\"/>\n", U(h->heap_sys));
    PUT("<aspace type=\"mprotect\" size=\"%llu\"/>\n", U(h->heap_sys));
    PUT("<stats heap_alloc=\"%llu\" heap_inuse=\"%llu\" heap_released=\"%llu\" "
        "heap_objects=\"%llu\" mallocs=\"%llu\" frees=\"%llu\" rss=\"%llu\"/>\n",
        U(h->heap_alloc), U(h->heap_inuse), U(h->heap_released), U(h->heap_objects),
        U(h->mallocs), U(h->frees), U(h->rss));
    PUT("</malloc>\n");
#undef U
#undef PUT
    return ferror(fp) ? -1 : 0;
}

/* ---- mallinfo ---- */

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

/* ---- on demand and at exit ---- */

int gm_profile_write(const char *path) {
    options_init();
    if (!gm_obs.profile || !path) {
        errno = EINVAL;
        return -1;
    }
    return mprof_write_path(path);
}

int gm_heap_map(int fd) { return heapmap_write(fd); }

/* Opens a report file named by pattern (%p: pid); -1 if it cannot. */
static int open_report(const char *pattern) {
    char path[GM_PATH_MAX];
    if (!obs_expand_path(path, sizeof path, pattern))
        return -1;
    int saved = errno;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    errno = saved;
    return fd;
}

__attribute__((destructor)) static void report_at_exit(void) {
    options_init(); /* in case nothing was ever allocated */
    if (!obs_this_process_reports())
        return;
    if (gm_opt.stats_at_exit && os_fd_is_ours(gm_opt.stats_fd))
        gm_print_stats(gm_opt.stats_fd);
    if (gm_obs.stats_json) {
        int fd = gm_obs.stats_path[0] ? open_report(gm_obs.stats_path) : -1;
        if (fd >= 0 || os_fd_is_ours(gm_opt.stats_fd)) {
            out o = {.fd = fd >= 0 ? fd : gm_opt.stats_fd};
            write_json(&o);
            emit(&o, "\n");
            flush(&o);
        }
        if (fd >= 0)
            close(fd);
    }
    if (gm_obs.profile && gm_obs.profile_path[0]) {
        char path[GM_PATH_MAX];
        if (obs_expand_path(path, sizeof path, gm_obs.profile_path))
            mprof_write_path(path);
    }
    if (gm_obs.leaks && os_fd_is_ours(gm_opt.stats_fd))
        mprof_leak_report(gm_opt.stats_fd);
    if (gm_obs.heap_map_path[0]) {
        int fd = open_report(gm_obs.heap_map_path);
        if (fd >= 0) {
            heapmap_write(fd);
            close(fd);
        }
    }
}
