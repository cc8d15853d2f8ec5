/*
 * Checks the generated size class table (src/sizeclasses.h) on its own:
 *   - gm_size_to_class gives, for every size 0..GM_MAX_SMALL_SIZE, the smallest
 *     class that holds it (and class 0 for size 0);
 *   - every class of 16 bytes or more is a multiple of 16 (C-ABI alignment);
 *   - the objects fit their span, within the per-span limits;
 *   - divmagic64 yields the exact object index for every offset in a span, and
 *     tells exactly which offsets start an object.
 *
 * Build: gcc -std=c11 -O2 -Wall -Wextra -Isrc tests/unit/test_sizeclasses.c
 * Prints one line per failed check (the first MAX_REPORTS of them) and ends with
 * "N passed, M failed"; exits non-zero on any failure.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "sizeclasses.h"

#define PAGE_SIZE 8192u
#define MAX_NPAGES 40u
#define MAX_REPORTS 50

static unsigned long passed, failed;

static void check(int ok, const char *fmt, ...)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    if (failed <= MAX_REPORTS) {
        va_list ap;
        va_start(ap, fmt);
        fputs("FAIL: ", stdout);
        vprintf(fmt, ap);
        fputc('\n', stdout);
        va_end(ap);
    } else if (failed == MAX_REPORTS + 1) {
        puts("FAIL: (further failures not shown)");
    }
}

/* Reference answer: the first class whose size holds the request. */
static unsigned smallest_class(size_t size)
{
    if (size == 0)
        return 0;
    for (unsigned c = 1; c < GM_NUM_SIZE_CLASSES; c++)
        if (gm_class_size[c] >= size)
            return c;
    return GM_NUM_SIZE_CLASSES; /* none: reported as a failure */
}

static void check_constants(void)
{
    check(GM_NUM_SIZE_CLASSES == 67, "GM_NUM_SIZE_CLASSES is %d, expected 67", GM_NUM_SIZE_CLASSES);
    check(GM_MIN_ALIGN == 16, "GM_MIN_ALIGN is %d, expected 16", GM_MIN_ALIGN);
    check(GM_MAX_SMALL_SIZE == 32768, "GM_MAX_SMALL_SIZE is %d", GM_MAX_SMALL_SIZE);
    check(sizeof gm_size_to_class1 == 1025, "gm_size_to_class1 has %zu entries, expected 1025",
          sizeof gm_size_to_class1);
    check(sizeof gm_size_to_class128 == 249, "gm_size_to_class128 has %zu entries, expected 249",
          sizeof gm_size_to_class128);
    check(gm_class_size[0] == 0 && gm_class_npages[0] == 0 && gm_class_nobjs[0] == 0 &&
              gm_class_divmagic64[0] == 0,
          "class 0 entries are not all 0");
    check(gm_class_size[GM_NUM_SIZE_CLASSES - 1] == GM_MAX_SMALL_SIZE,
          "largest class is %" PRIu32 ", expected %d", gm_class_size[GM_NUM_SIZE_CLASSES - 1],
          GM_MAX_SMALL_SIZE);
}

static void check_classes(void)
{
    unsigned max_objs = 0;
    for (unsigned c = 1; c < GM_NUM_SIZE_CLASSES; c++) {
        uint32_t size = gm_class_size[c];
        uint32_t span = (uint32_t)gm_class_npages[c] * PAGE_SIZE;
        uint32_t nobjs = gm_class_nobjs[c];

        check(size > gm_class_size[c - 1], "class %u: size %" PRIu32 " not above class %u's %" PRIu32,
              c, size, c - 1, gm_class_size[c - 1]);
        check(size < 16 || size % 16 == 0, "class %u: size %" PRIu32 " not a multiple of 16", c, size);
        check(size % GM_SMALL_SIZE_DIV == 0, "class %u: size %" PRIu32 " not a multiple of %d", c,
              size, GM_SMALL_SIZE_DIV);
        check(size <= GM_SMALL_SIZE_MAX || size % GM_LARGE_SIZE_DIV == 0,
              "class %u: size %" PRIu32 " not a multiple of %d", c, size, GM_LARGE_SIZE_DIV);
        check(gm_class_npages[c] >= 1 && gm_class_npages[c] <= MAX_NPAGES,
              "class %u: %u pages per span", c, (unsigned)gm_class_npages[c]);
        check(nobjs >= 1 && nobjs <= 1024 && nobjs <= GM_MAX_OBJS_PER_SPAN,
              "class %u: %" PRIu32 " objects per span", c, nobjs);
        if (size == 0)
            continue;
        uint32_t tail = span - (span / size) * size;
        check((uint64_t)nobjs * size + tail <= span, "class %u: %" PRIu32 " x %" PRIu32
              " + tail %" PRIu32 " exceeds span %" PRIu32, c, nobjs, size, tail, span);
        check(nobjs == span / size, "class %u: nobjs %" PRIu32 ", span holds %" PRIu32, c, nobjs,
              span / size);
        check(tail <= span / 8, "class %u: tail waste %" PRIu32 " above 1/8 of span %" PRIu32, c,
              tail, span);
        check(gm_class_divmagic64[c] == UINT64_MAX / size + 1,
              "class %u: divmagic64 0x%016" PRIx64 ", expected 0x%016" PRIx64, c,
              gm_class_divmagic64[c], UINT64_MAX / size + 1);
        if (nobjs > max_objs)
            max_objs = nobjs;
    }
    check(max_objs == GM_MAX_OBJS_PER_SPAN, "GM_MAX_OBJS_PER_SPAN is %d, table's largest is %u",
          GM_MAX_OBJS_PER_SPAN, max_objs);
}

static void check_lookup(void)
{
    for (size_t size = 0; size <= GM_MAX_SMALL_SIZE; size++) {
        unsigned got = gm_size_to_class(size);
        unsigned want = smallest_class(size);
        check(got == want, "size %zu: class %u (%" PRIu32 " B), expected class %u", size, got,
              got < GM_NUM_SIZE_CLASSES ? gm_class_size[got] : 0, want);
    }
}

/* One check per class: every offset 0..span maps to its exact object index
 * (the high half of offset * divmagic64), and the low half is below the magic
 * exactly at the offsets that start an object. */
static void check_divmagic(void)
{
    for (unsigned c = 1; c < GM_NUM_SIZE_CLASSES; c++) {
        uint32_t size = gm_class_size[c];
        uint32_t span = (uint32_t)gm_class_npages[c] * PAGE_SIZE;
        uint64_t magic = gm_class_divmagic64[c];
        uint32_t bad = 0, first_bad = 0;
        for (uint32_t off = 0; off <= span; off++) {
            unsigned __int128 product = (unsigned __int128)off * magic;
            int starts = (uint64_t)product < magic;
            if ((uint64_t)(product >> 64) != off / size || starts != (off % size == 0)) {
                if (bad++ == 0)
                    first_bad = off;
            }
        }
        check(bad == 0, "class %u (%" PRIu32 " B): divmagic64 wrong at %" PRIu32
              " offsets, first %" PRIu32, c, size, bad, first_bad);
    }
}

int main(void)
{
    check_constants();
    check_classes();
    check_lookup();
    check_divmagic();
    printf("%lu passed, %lu failed\n", passed, failed);
    return failed ? 1 : 0;
}
