/*
 * realloc: buffers that grow by appending (string builders, log buffers,
 * vectors grown without a capacity policy).  Several buffers grow side by
 * side, step bytes at a time, by realloc, up to max bytes; contents are
 * checked after every step and in full at the end.
 */
#include "common.h"

static unsigned char pattern(size_t buf, size_t k)
{
    return (unsigned char)(mix64(buf * 1000003u + k) | 1);
}

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "bufs", 4, "buffers growing side by side" },
        { "step", 1000, "bytes appended per realloc" },
        { "max", 4 << 20, "final buffer size (bytes)" },
        { "rounds", 2, "times the buffers are grown from empty and freed" },
    };
    BENCH_ARGS(argc, argv, "realloc: grow buffers step by step", o);
    size_t nb = (size_t)o[0].value, step = (size_t)o[1].value, max = (size_t)o[2].value;
    if (nb < 1 || step < 1 || max < step || o[3].value < 1)
        bench_fail("bad parameters");

    unsigned char **buf = xmalloc(nb * sizeof *buf);
    uint64_t sum = 0;
    long long moves = 0;
    for (long long round = 0; round < o[3].value; round++) {
        size_t len = 0;
        for (size_t b = 0; b < nb; b++)
            buf[b] = NULL;
        for (size_t k = 0; len + step <= max; k++, len += step) {
            for (size_t b = 0; b < nb; b++) {
                unsigned char *old = buf[b];
                unsigned char *p = realloc(old, len + step);
                if (p == NULL)
                    bench_fail("realloc(%zu) returned NULL", len + step);
                moves += (p != old);
                if (len > 0 && p[len - 1] != pattern(b, k - 1))
                    bench_fail("buffer %zu lost its contents at %zu bytes", b, len);
                memset(p + len, pattern(b, k), step);
                buf[b] = p;
            }
        }
        for (size_t b = 0; b < nb; b++) {
            for (size_t off = 0; off < len; off++)
                if (buf[b][off] != pattern(b, off / step))
                    bench_fail("buffer %zu: wrong byte at %zu", b, off);
            sum = sum_add(sum, len * 31 + b);
            free(buf[b]);
        }
    }
    free(buf);
    bench_metric("moves", moves);
    bench_ok(sum);
    return 0;
}
