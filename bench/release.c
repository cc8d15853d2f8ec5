/*
 * release: how an allocator gives memory back to the OS.
 *
 *   mode=0 (stall)  total bytes of 64 KiB blocks are allocated, written and
 *                   freed; then for `seconds` the main thread times
 *                   malloc(2 MiB)+write+free pairs while a second thread
 *                   times malloc(40 KiB)+free pairs, while the allocator is
 *                   (or should be) returning the freed memory.
 *                     worst_pair_us   longest main-thread pair
 *                     worst_other_us  longest second-thread pair
 *   mode=1 (idle)   total bytes of 1000-byte objects are allocated, written
 *                   and freed (by the thread that allocated them); then the
 *                   program makes no allocator call and samples its RSS
 *                   every 50 ms for `seconds`.
 *                     back_ms         time until RSS <= start + 64 MiB (-1: never)
 *                     rss_1s_kb       RSS 1 s after the frees
 *                     rss_end_kb      RSS at the end
 *   mode=2 (trim)   as idle, then malloc_trim(0) at once.
 *                     trim_us         time malloc_trim took
 *                     rss_trim_kb     RSS right after it (start: rss_start_kb)
 * Every mode also reports rss_start_kb and rss_freed_kb (just after the
 * frees).
 */
#include <fcntl.h>
#include <malloc.h>

#include "common.h"

static volatile int stop;
static long long worst_other_ns;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Resident set in KiB, read without allocating (the idle mode must make
 * no allocator call). */
static long long rss_kb_quiet(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *p = strchr(buf, ' ');
    return p ? strtoll(p + 1, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024) : 0;
}

static void *other(void *arg)
{
    (void)arg;
    while (!stop) {
        long long t = now_ns();
        char *p = xmalloc(40 << 10);
        p[0] = 1;
        free(p);
        t = now_ns() - t;
        if (t > worst_other_ns)
            worst_other_ns = t;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_opt opts[] = {
        {"mode", 0, "0 stall, 1 idle, 2 trim"},
        {"total", 1LL << 30, "bytes allocated then freed"},
        {"seconds", 3, "how long to measure"},
    };
    bench_args(argc, argv, "release: returning memory to the OS", opts, 3);
    long long mode = opts[0].value, total = opts[1].value, secs = opts[2].value;
    size_t size = mode == 0 ? 64 << 10 : 1000, n = (size_t)total / size;
    char **v = xmalloc(n * sizeof *v);
    long long start = rss_kb_quiet();
    for (size_t i = 0; i < n; i++) {
        v[i] = xmalloc(size);
        memset(v[i], (int)(i & 0xff), size);
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i += 97)
        sum += (unsigned char)v[i][size - 1];
    pthread_t t;
    if (mode == 0)
        pthread_create(&t, NULL, other, NULL);
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    long long t0 = now_ns(), freed = rss_kb_quiet();
    bench_metric("rss_start_kb", start);
    bench_metric("rss_freed_kb", freed);
    if (mode == 0) {
        long long worst = 0;
        while (now_ns() - t0 < secs * 1000000000LL) {
            long long a = now_ns();
            char *p = xmalloc(2 << 20);
            memset(p, 1, 4096);
            free(p);
            a = now_ns() - a;
            if (a > worst)
                worst = a;
        }
        stop = 1;
        pthread_join(t, NULL);
        bench_metric("worst_pair_us", worst / 1000);
        bench_metric("worst_other_us", worst_other_ns / 1000);
    } else if (mode == 1) {
        long long back = -1, at1 = 0, r = freed;
        while (now_ns() - t0 < secs * 1000000000LL) {
            usleep(50000);
            r = rss_kb_quiet();
            if (back < 0 && r <= start + (64 << 10))
                back = (now_ns() - t0) / 1000000;
            if (!at1 && now_ns() - t0 >= 1000000000LL)
                at1 = r;
        }
        bench_metric("back_ms", back);
        bench_metric("rss_1s_kb", at1);
        bench_metric("rss_end_kb", r);
    } else {
        long long a = now_ns();
        malloc_trim(0);
        bench_metric("trim_us", (now_ns() - a) / 1000);
        bench_metric("rss_trim_kb", rss_kb_quiet());
    }
    free(v);
    bench_ok(sum ^ (uint64_t)total ^ (uint64_t)mode);
    return 0;
}
