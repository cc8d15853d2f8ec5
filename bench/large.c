/*
 * large: big buffers (file contents, images, decompression windows).  A few
 * large objects, log-uniform between min and max, are live at a time; each
 * step frees one and allocates a replacement, touching every page of it.
 * Allocators that hand pages back to the OS pay in page faults; those that
 * keep them pay in RSS.
 */
#include "common.h"

int main(int argc, char **argv)
{
    struct bench_opt o[] = {
        { "min", 64 << 10, "smallest object size (bytes)" },
        { "max", 64 << 20, "largest object size (bytes)" },
        { "live", 4, "objects live at a time" },
        { "iters", 300, "replacements" },
        { "seed", 1, "random seed" },
    };
    BENCH_ARGS(argc, argv, "large: allocate, touch and free big objects", o);
    size_t min = (size_t)o[0].value, max = (size_t)o[1].value;
    size_t live = (size_t)o[2].value;
    if (min < OBJ_MIN || max < min || max >= (1ull << 32) || live < 1 || o[3].value < 0)
        bench_fail("bad parameters");

    rng_t r = rng_seed((uint64_t)o[4].value, 0);
    void **slot = xmalloc(live * sizeof *slot);
    uint64_t sum = 0;
    uint32_t seq = 0;
    for (size_t i = 0; i < live; i++) {
        size_t n = rng_size(&r, min, max);
        slot[i] = xmalloc(n);
        obj_fill(slot[i], n, seq++);
    }
    for (long long it = 0; it < o[3].value; it++) {
        size_t i = (size_t)rng_below(&r, live);
        sum = sum_add(sum, obj_check(slot[i], max) ^ (uint64_t)obj_tag(slot[i]) << 32);
        free(slot[i]);
        size_t n = rng_size(&r, min, max);
        slot[i] = xmalloc(n);
        obj_fill(slot[i], n, seq++);
    }
    for (size_t i = 0; i < live; i++) {
        sum = sum_add(sum, obj_check(slot[i], max) ^ (uint64_t)obj_tag(slot[i]) << 32);
        free(slot[i]);
    }
    free(slot);
    bench_ok(sum);
    return 0;
}
