/*
 * objrss: resident memory per object.  Allocates n objects of one size,
 * writes a byte of each, and prints the growth of the resident set divided
 * by n (metric bytes_per_object), the figure that decides whether packing
 * small objects pays.  Run it for each size of interest, e.g.
 *   for s in $(seq 1 16); do LD_PRELOAD=... build/bench/objrss size=$s; done
 */
#include "common.h"

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "size", 8, "object size (bytes)" },
        { "n", 4000000, "objects" },
    };
    BENCH_ARGS(argc, argv, "objrss: resident bytes per object of one size", o);
    if (o[0].value < 1 || o[1].value < 1)
        bench_fail("bad parameters");
    size_t n = (size_t)o[1].value, size = (size_t)o[0].value;
    unsigned char **p = xmalloc(n * sizeof(*p));
    memset(p, 0xff, n * sizeof(*p)); /* resident before we start (not 0: that may become calloc) */
    long long before = rss_kb();
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        p[i] = xmalloc(size);
        p[i][0] = (unsigned char)i;
    }
    long long after = rss_kb();
    for (size_t i = 0; i < n; i++) {
        sum += p[i][0];
        free(p[i]);
    }
    free(p);
    printf("metric bytes_per_object=%.2f\n", (double)(after - before) * 1024.0 / (double)n);
    bench_ok(sum);
    return 0;
}
