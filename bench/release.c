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
 *                     slow_ppm        pairs of either thread over 1 ms, per
 *                                     million pairs (the longest pair alone
 *                                     is one event, which a busy machine's
 *                                     scheduler can make of any allocator)
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
 *   mode=3 (trace)  as idle, with RSS also sampled for 200 ms before the
 *                   frees, and every 10 ms `calls` malloc+free pairs of
 *                   16-256 bytes after them (calls=0: no allocator call, as
 *                   idle).  Reports idle's three metrics, then one line per
 *                   sample, t=0 being the end of the frees:
 *                     sample t_ms=T rss_kb=R
 * Every mode also reports rss_start_kb and rss_freed_kb (just after the
 * frees).  The idle and trace modes store their samples in an array
 * allocated before the frees, so sampling makes no allocator call.
 */
#include <fcntl.h>
#include <malloc.h>

#include "common.h"

static volatile int stop;
static long long worst_other_ns, other_pairs, other_slow;

/* A pair over this is slow (slow_ppm). */
#define SLOW_PAIR_NS 1000000LL

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Samples: every 50 ms on a 10 ms tick; mode 3 takes PRE_SAMPLES before
 * the frees. */
#define TICK_NS 10000000LL
#define TICKS_PER_SAMPLE 5
#define PRE_SAMPLES 4

struct sample {
    long long t_ns, rss_kb;
};

static struct sample sample_now(void)
{
    struct sample s = {now_ns(), rss_kb()};
    return s;
}

/* Absolute deadlines, so the samples stay on a 50 ms grid however long the
 * calls between them take. */
static void sleep_until(long long t_ns)
{
    struct timespec ts = {(time_t)(t_ns / 1000000000LL), (long)(t_ns % 1000000000LL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* The further calls of mode 3: the small traffic of a program that has
 * freed its big data and goes on running. */
static void small_pairs(long long n)
{
    for (long long i = 0; i < n; i++) {
        /* volatile keeps the compiler from pairing malloc with free away */
        unsigned char *volatile p = xmalloc((size_t)16 << (i % 5));
        p[0] = 1;
        free(p);
    }
}

/* Mode 3: the full heap, sampled before the frees so the trace shows the
 * drop.  Returns the number of samples stored. */
static int sample_before(struct sample *s)
{
    long long t = now_ns();
    for (int i = 0; i < PRE_SAMPLES; i++) {
        sleep_until(t + i * TICK_NS * TICKS_PER_SAMPLE);
        s[i] = sample_now();
    }
    sleep_until(t + PRE_SAMPLES * TICK_NS * TICKS_PER_SAMPLE);
    return PRE_SAMPLES;
}

/* Samples RSS every 50 ms from t0 (the end of the frees) for secs seconds,
 * making `calls` malloc+free pairs every 10 ms.  Returns the number of
 * samples stored. */
static int sample_after(struct sample *s, long long t0, long long secs, long long calls)
{
    int n = 0;
    for (long long tick = 1; tick <= secs * 1000000000LL / TICK_NS; tick++) {
        sleep_until(t0 + tick * TICK_NS);
        small_pairs(calls);
        if (tick % TICKS_PER_SAMPLE == 0)
            s[n++] = sample_now();
    }
    return n;
}

/* The idle metrics, from the samples after the frees.  back_ms counts from
 * the first of them (50 ms), as it always has. */
static void report_idle(const struct sample *s, int n, long long t0, long long start,
                        long long freed)
{
    long long back = -1, at1 = 0;
    for (int i = 0; i < n; i++) {
        if (back < 0 && s[i].rss_kb <= start + (64 << 10))
            back = (s[i].t_ns - t0) / 1000000;
        if (!at1 && s[i].t_ns - t0 >= 1000000000LL)
            at1 = s[i].rss_kb;
    }
    bench_metric("back_ms", back);
    bench_metric("rss_1s_kb", at1);
    bench_metric("rss_end_kb", n > 0 ? s[n - 1].rss_kb : freed);
}

static void print_samples(const struct sample *s, int n, long long t0)
{
    for (int i = 0; i < n; i++)
        printf("sample t_ms=%lld rss_kb=%lld\n", (s[i].t_ns - t0) / 1000000, s[i].rss_kb);
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
        other_pairs++;
        other_slow += t > SLOW_PAIR_NS;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct bench_opt opts[] = {
        {"mode", 0, "0 stall, 1 idle, 2 trim, 3 trace"},
        {"total", 1LL << 30, "bytes allocated then freed"},
        {"seconds", 3, "how long to measure"},
        {"calls", 0, "mode 3: malloc+free pairs every 10 ms after the frees"},
    };
    BENCH_ARGS(argc, argv, "release: returning memory to the OS", opts);
    long long mode = opts[0].value, total = opts[1].value, secs = opts[2].value;
    long long calls = opts[3].value;
    if (mode < 0 || mode > 3 || total < 0 || secs < 0 || calls < 0 || (calls && mode != 3))
        bench_fail("bad parameters (calls= is for mode=3 only)");
    size_t size = mode == 0 ? 64 << 10 : 1000, n = (size_t)total / size;
    char **v = xmalloc(n * sizeof *v);
    /* Room for every sample (mode 3's before the frees, the one at t0, one
     * per 50 ms after), allocated now so that storing one never calls the
     * allocator. */
    long long after_frees = secs * 1000000000LL / (TICK_NS * TICKS_PER_SAMPLE);
    struct sample *s = xmalloc((size_t)(PRE_SAMPLES + 1 + after_frees) * sizeof *s);
    long long start = rss_kb();
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
    int pre = mode == 3 ? sample_before(s) : 0;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    long long t0 = now_ns(), freed = rss_kb();
    s[pre] = (struct sample){t0, freed};
    bench_metric("rss_start_kb", start);
    bench_metric("rss_freed_kb", freed);
    if (mode == 0) {
        long long worst = 0, pairs = 0, slow = 0;
        while (now_ns() - t0 < secs * 1000000000LL) {
            long long a = now_ns();
            char *p = xmalloc(2 << 20);
            memset(p, 1, 4096);
            free(p);
            a = now_ns() - a;
            if (a > worst)
                worst = a;
            pairs++;
            slow += a > SLOW_PAIR_NS;
        }
        stop = 1;
        pthread_join(t, NULL);
        bench_metric("worst_pair_us", worst / 1000);
        bench_metric("worst_other_us", worst_other_ns / 1000);
        bench_metric("slow_ppm", (slow + other_slow) * 1000000 / (pairs + other_pairs + 1));
    } else if (mode == 1 || mode == 3) {
        struct sample *after = s + pre + 1;
        int k = sample_after(after, t0, secs, calls);
        report_idle(after, k, t0, start, freed);
        if (mode == 3)
            print_samples(s, pre + 1 + k, t0);
    } else {
        long long a = now_ns();
        malloc_trim(0);
        bench_metric("trim_us", (now_ns() - a) / 1000);
        bench_metric("rss_trim_kb", rss_kb());
    }
    free(s);
    free(v);
    bench_ok(sum ^ (uint64_t)total ^ (uint64_t)mode);
    return 0;
}
