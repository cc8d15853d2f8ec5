/*
 * calloc: large zeroed tables that are used sparsely (hash tables sized
 * for the worst case, bitmaps, sparse matrices).  Blocks between min and
 * max bytes are calloc'ed, a few pages are checked to be zero and a few are
 * written, then the block is freed; a small window keeps some alive so
 * freed, dirtied memory comes back and must be zero again.  An allocator
 * that clears memory the kernel already zeroed pays in time and RSS.
 */
#include "common.h"

#define PAGE 4096u

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "min", 256 << 10, "smallest block (bytes)" },
        { "max", 64 << 20, "largest block (bytes)" },
        { "live", 4, "blocks live at a time" },
        { "iters", 1000, "blocks allocated" },
        { "touch", 8, "random lines checked, then written, per block (<= 64)" },
        { "seed", 1, "random seed" },
    };
    BENCH_ARGS(argc, argv, "calloc: big zeroed blocks, sparsely touched", o);
    size_t min = (size_t)o[0].value, max = (size_t)o[1].value, live = (size_t)o[2].value;
    long long touch = o[4].value;
    if (min < 1 || max < min || live < 1 || o[3].value < 0 || touch < 0 || touch > 64)
        bench_fail("bad parameters");

    rng_t r = rng_seed((uint64_t)o[5].value, 0);
    unsigned char **blk = xmalloc(live * sizeof *blk);
    for (size_t i = 0; i < live; i++)
        blk[i] = NULL;
    uint64_t sum = 0;
    for (long long it = 0; it < o[3].value; it++) {
        size_t i = (size_t)rng_below(&r, live);
        free(blk[i]);
        size_t n = rng_size(&r, min, max);
        unsigned char *p = calloc(1, n);
        if (p == NULL)
            bench_fail("calloc(%zu) returned NULL", n);
        /* the first and last pages and some random lines must read zero; then they are dirtied */
        size_t edge = n < PAGE ? n : PAGE;
        for (size_t k = 0; k < edge; k++)
            if (p[k] != 0 || p[n - 1 - k] != 0)
                bench_fail("calloc(%zu) block not zeroed in its first or last page", n);
        size_t off[64];
        for (long long t = 0; t < touch; t++) {
            off[t] = (size_t)rng_below(&r, n);
            off[t] -= off[t] % 64;
            for (size_t k = off[t]; k < off[t] + 64 && k < n; k++)
                if (p[k] != 0)
                    bench_fail("calloc(%zu) block not zeroed at offset %zu", n, k);
            sum = sum_add(sum, off[t]);
        }
        for (long long t = 0; t < touch; t++)
            memset(p + off[t], 0xa5, off[t] + 64 <= n ? 64 : n - off[t]);
        p[0] = 0x5a;
        p[n - 1] = 0x5a;
        blk[i] = p;
        sum = sum_add(sum, n);
    }
    for (size_t i = 0; i < live; i++)
        free(blk[i]);
    free(blk);
    bench_ok(sum);
    return 0;
}
