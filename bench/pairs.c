/*
 * pairs: the allocator's fast path alone.  n times, malloc(size) and free
 * it at once.  Run under callgrind with two values of n; the difference of
 * the instruction counts divided by the difference of n is the cost of one
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
    if (size < 1 || o[1].value < 0)
        bench_fail("bad parameters");

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
