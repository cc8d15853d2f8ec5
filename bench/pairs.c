/*
 * pairs: the allocator's fast path alone.  n times, malloc(size) and free
 * it at once; or, with size=0, a random churn: 1000 live objects of 8..512
 * bytes, each step freeing a random one and allocating a new random size in
 * its place (the slots are filled first, outside the measured difference).
 * Run under callgrind with two values of n; the difference of the
 * instruction counts divided by the difference of n is the cost of one
 * malloc+free pair, start-up cost cancelling out.
 */
#include "common.h"

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "size", 16, "object size (bytes)" },
        { "n", 100000, "malloc+free pairs" },
    };
    BENCH_ARGS(argc, argv, "pairs: n malloc+free pairs of one size", o);
    size_t size = (size_t)o[0].value;
    if (o[0].value < 0 || o[1].value < 0)
        bench_fail("bad parameters");
    if (size == 0) {
        enum { LIVE = 1000 };
        static unsigned char *live[LIVE];
        uint64_t rng = 0x9e3779b97f4a7c15ull, sum = 0;
        for (int i = 0; i < LIVE; i++)
            live[i] = malloc(8 + (size_t)(i * 7919 % 505));
        for (long long i = 0; i < o[1].value; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            unsigned slot = (unsigned)(rng % LIVE);
            free(live[slot]);
            live[slot] = malloc(8 + (size_t)((rng >> 32) % 505));
            if (live[slot] == NULL)
                bench_fail("malloc returned NULL");
            live[slot][0] = (unsigned char)i;
            sum += live[slot][0];
        }
        bench_ok(sum);
        return 0;
    }

    uint64_t sum = 0;
    for (long long i = 0; i < o[1].value; i++) {
        /* volatile keeps the compiler from pairing malloc with free away */
        unsigned char *volatile p = malloc(size);
        if (p == NULL)
            bench_fail("malloc(%zu) returned NULL", size);
        p[0] = (unsigned char)i;
        sum += p[0];
        free(p);
    }
    bench_ok(sum);
    return 0;
}
