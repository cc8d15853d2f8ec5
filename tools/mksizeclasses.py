#!/usr/bin/env python3
"""Generate gomalloc's small-object size classes.

The table is built the way the Go runtime builds its own (runtime/mksizeclasses.go):

  * candidate sizes advance in steps of the current alignment: 8 bytes at first,
    16 from 32 B, size/8 from 128 B (bumped at each power of two), 256 from 2 KiB;
  * each candidate gets the fewest 8 KiB pages for which the unused tail of the
    span is at most 1/8 of the span;
  * a candidate whose page count and object count equal those of the previous
    class replaces that class (the larger size is just as cheap);
  * finally every class grows into its tail: the largest multiple of 128 that
    still fits the same number of objects in the same pages.

Two modes:

  default  C-ABI mode. A request of 16 bytes or more must come back 16-byte
           aligned (max_align_t), so the step is 16 from 16 B instead of from
           32 B. This drops Go's 24 B class and nothing else: 67 classes
           counting class 0.
  --go     Go's exact table (8-byte step below 32 B): 68 classes.

Outputs:

  --tsv        the class table as tab-separated text
  --lookup8    the size -> class table for sizes <= 1024, index (size+7)>>3
  --lookup128  the size -> class table for sizes > 1024, index (size-1024+127)>>7
  --out FILE   the C header (src/sizeclasses.h)

Go computes the object index within a span as (offset * divmagic) >> 32 with
divmagic = 0xFFFFFFFF / size + 1 (the --tsv column).  The C header carries a
64-bit magic instead, divmagic64 = 0xFFFFFFFFFFFFFFFF / size + 1: one 64x64-bit
multiplication then gives both the index (the high half of the product) and
whether the offset is a whole multiple of the size (the low half is below the
magic), which free() needs to tell a slot's start from an interior pointer.
The generator proves both exact for every offset of every class and refuses
to emit a table for which they are not.
"""

import argparse
import sys

# Constants shared with the allocator.
PAGE_SHIFT = 13
PAGE_SIZE = 1 << PAGE_SHIFT
MAX_SMALL_SIZE = 32 << 10
SMALL_SIZE_DIV = 8
SMALL_SIZE_MAX = 1024
LARGE_SIZE_DIV = 128

# Limits the runtime relies on (Go's generated MaxObjsPerSpan and
# MaxSizeClassNPages for this table).
MAX_OBJS_PER_SPAN = 1024
MAX_NPAGES = 40   # Go's table needs 10; the C-ABI table's widened spans 40
C_MIN_OBJS = 8    # objects per span at least, in the C-ABI table (widen_spans)
# ... and for the classes up to SMALL_SIZE_MAX (576 B - 1 KiB hold 8-14 in
# Go's 8 KiB spans): a churn of such objects refilled once every 2-4
# allocations (larson: 15% of mallocs); 32 per span cut churn, burst and
# larson times by 7-14% for 1-3% more peak RSS (bench/run.sh, 2 cores).
# Wider spans empty less often, so malloc_trim also returns the pages inside
# a span that hold no object (mcache_trim).
C_MIN_OBJS_SMALL = 32

GO_NUM_CLASSES = 68
C_NUM_CLASSES = 67

HEADER_PATH = "src/sizeclasses.h"
SCRIPT_PATH = "tools/mksizeclasses.py"


class Fail(Exception):
    pass


def is_pow2(x):
    return x > 0 and (x & (x - 1)) == 0


class SizeClass:
    __slots__ = ("size", "npages")

    def __init__(self, size, npages):
        self.size = size
        self.npages = npages

    @property
    def span_bytes(self):
        return self.npages * PAGE_SIZE

    @property
    def nobjs(self):
        return self.span_bytes // self.size if self.size else 0

    @property
    def tail(self):
        return self.span_bytes - self.nobjs * self.size if self.size else 0

    @property
    def divmagic(self):
        return (0xFFFFFFFF // self.size + 1) & 0xFFFFFFFF if self.size else 0

    @property
    def divmagic64(self):
        return (0xFFFFFFFFFFFFFFFF // self.size + 1) if self.size else 0


def widen_spans(classes):
    """C-ABI mode: give every class at least C_MIN_OBJS objects per span
    (C_MIN_OBJS_SMALL up to SMALL_SIZE_MAX).

    Go's spans for classes of 8 KiB and more hold one to four objects; its
    sweeper frees them in bulk.  Under explicit free, a thread that churns
    such objects would trade a span on nearly every allocation.  The object
    sizes stay Go's; only the span grows, to the fewest pages that hold
    C_MIN_OBJS objects with at most 1/8 of the span left over.  Slots are
    handed out lowest first, so the pages of a wider span are touched only
    as objects fill them.
    """
    for c in classes[1:]:
        want = C_MIN_OBJS_SMALL if c.size <= SMALL_SIZE_MAX else C_MIN_OBJS
        if c.nobjs >= want:
            continue
        span = -(-want * c.size // PAGE_SIZE) * PAGE_SIZE
        while span % c.size > span // 8:
            span += PAGE_SIZE
        c.npages = span // PAGE_SIZE


def build_classes(go_mode):
    """Return the list of classes; entry 0 is the large-object class."""
    classes = [SizeClass(0, 0)]
    # First alignment step at which the step becomes 16 bytes.
    align16_from = 32 if go_mode else 16
    align = 8
    size = align
    while size <= MAX_SMALL_SIZE:
        if is_pow2(size):
            if size >= 2048:
                align = 256
            elif size >= 128:
                align = size // 8
            elif size >= align16_from:
                align = 16
        if not is_pow2(align):
            raise Fail("alignment %d at size %d is not a power of two" % (align, size))

        # Fewest pages whose leftover after packing objects is <= 1/8 of the span.
        span = PAGE_SIZE
        while span % size > span // 8:
            span += PAGE_SIZE
        npages = span // PAGE_SIZE

        prev = classes[-1]
        if len(classes) > 1 and prev.npages == npages and span // prev.size == span // size:
            prev.size = size
        else:
            classes.append(SizeClass(size, npages))
        size += align

    # Grow each class into its tail, keeping LARGE_SIZE_DIV granularity so the
    # 128-byte lookup table stays exact.
    for c in classes[1:]:
        span = c.span_bytes
        grown = (span // (span // c.size)) & ~(LARGE_SIZE_DIV - 1)
        if grown > c.size:
            c.size = grown

    if not go_mode:
        widen_spans(classes)

    want = GO_NUM_CLASSES if go_mode else C_NUM_CLASSES
    if len(classes) != want:
        raise Fail("expected %d size classes, generated %d" % (want, len(classes)))
    check_classes(classes, go_mode)
    return classes


def check_classes(classes, go_mode):
    min_align = 8 if go_mode else 16
    prev = 0
    for i, c in enumerate(classes[1:], 1):
        if c.size <= prev:
            raise Fail("class %d: size %d not above previous %d" % (i, c.size, prev))
        prev = c.size
        if c.size >= 16 and c.size % min_align:
            raise Fail("class %d: size %d not a multiple of %d" % (i, c.size, min_align))
        if c.size > SMALL_SIZE_MAX and c.size % LARGE_SIZE_DIV:
            raise Fail("class %d: size %d not a multiple of %d" % (i, c.size, LARGE_SIZE_DIV))
        if c.size % SMALL_SIZE_DIV:
            raise Fail("class %d: size %d not a multiple of %d" % (i, c.size, SMALL_SIZE_DIV))
        if c.nobjs > MAX_OBJS_PER_SPAN:
            raise Fail("class %d: %d objects per span" % (i, c.nobjs))
        if c.npages > MAX_NPAGES:
            raise Fail("class %d: %d pages per span" % (i, c.npages))
        check_divmagic(i, c)
        check_divmagic64(i, c)
    if classes[-1].size != MAX_SMALL_SIZE:
        raise Fail("largest class is %d, not %d" % (classes[-1].size, MAX_SMALL_SIZE))


def check_divmagic(i, c):
    """Prove floor(n * m / 2^32) == floor(n / d) for all 0 <= n <= span bytes.

    m = floor((2^32 - 1) / d) + 1. If d is a power of two, m = 2^32 / d and the
    product is exact. Otherwise m = ceil(2^32 / d) = (2^32 + e) / d with
    0 < e < d, so n*m / 2^32 = n/d + n*e / (d * 2^32). The floor can only be
    wrong when that excess carries n/d past the next integer; the worst case is
    n mod d == d - 1, where it carries iff n*e >= 2^32. So the formula is exact
    up to n_max iff n_max * e < 2^32.
    """
    d = c.size
    m = c.divmagic
    n_max = c.span_bytes
    e = m * d - (1 << 32)
    if e < 0 or e >= d:
        raise Fail("class %d: bad divmagic 0x%08x for size %d" % (i, m, d))
    if n_max * e >= (1 << 32):
        raise Fail("class %d: divmagic 0x%08x inexact for size %d up to %d" % (i, m, d, n_max))
    # Spot-check the boundaries the proof is about.
    for n in (0, d - 1, d, n_max - 1, n_max, (n_max // d) * d - 1, (n_max // d) * d):
        if n >= 0 and (n * m) >> 32 != n // d:
            raise Fail("class %d: divmagic wrong at offset %d" % (i, n))


def check_divmagic64(i, c):
    """Prove, for all 0 <= n <= span bytes, with P = n * m:
    P >> 64 == n // d, and (P mod 2^64 < m) == (n % d == 0).

    m = floor((2^64 - 1) / d) + 1 = (2^64 + e) / d with 0 <= e < d (e = 0 when
    d is a power of two).  Write n = q*d + r, 0 <= r < d: then
    P = q*2^64 + L with L = q*e + r*m.  If L < 2^64, the high half of P is q
    and its low half is L; L < m when r == 0 and q*e < m, and L >= m when
    r >= 1.  L is largest at the largest q and r = d - 1, so two inequalities
    at q = n_max // d cover every n.
    """
    d = c.size
    m = c.divmagic64
    n_max = c.span_bytes
    e = m * d - (1 << 64)
    if e < 0 or e >= d or m >= (1 << 64):
        raise Fail("class %d: bad divmagic64 0x%016x for size %d" % (i, m, d))
    q_max = n_max // d
    if q_max * e + (d - 1) * m >= (1 << 64) or q_max * e >= m:
        raise Fail("class %d: divmagic64 0x%016x inexact for size %d up to %d" % (i, m, d, n_max))
    for n in (0, 1, d - 1, d, d + 1, n_max - 1, n_max, q_max * d - 1, q_max * d):
        if n < 0:
            continue
        p = n * m
        if p >> 64 != n // d or ((p & ((1 << 64) - 1)) < m) != (n % d == 0):
            raise Fail("class %d: divmagic64 wrong at offset %d" % (i, n))


def lookup8(classes):
    table = []
    for i in range(SMALL_SIZE_MAX // SMALL_SIZE_DIV + 1):
        table.append(first_class_at_least(classes, i * SMALL_SIZE_DIV))
    return table


def lookup1(classes):
    """The class of every size 0..SMALL_SIZE_MAX, indexed by the size itself:
    Go's 8-byte-step table spread to one entry per byte."""
    t8 = lookup8(classes)
    return [t8[(size + SMALL_SIZE_DIV - 1) // SMALL_SIZE_DIV] for size in range(SMALL_SIZE_MAX + 1)]


def lookup128(classes):
    table = []
    for i in range((MAX_SMALL_SIZE - SMALL_SIZE_MAX) // LARGE_SIZE_DIV + 1):
        table.append(first_class_at_least(classes, SMALL_SIZE_MAX + i * LARGE_SIZE_DIV))
    return table


def first_class_at_least(classes, size):
    for j, c in enumerate(classes):
        if c.size >= size:
            return j
    raise Fail("no class holds %d bytes" % size)


def max_waste_pct(classes):
    """Per class: worst waste (round-up of the smallest request plus the tail), in percent."""
    out = [0.0]
    prev = 0
    for c in classes[1:]:
        waste = float((c.size - prev - 1) * c.nobjs + c.tail) / float(c.span_bytes)
        out.append(100 * waste)
        prev = c.size
    return out


def render_tsv(classes, go_mode):
    lines = []
    if go_mode:
        lines.append("# Go runtime size classes (linux/amd64, Go 1.16 through 1.26): "
                     "class 0 is the large-object class.")
        lines.append("# Generated by Go's algorithm with 8-byte minimum alignment, "
                     "8 KiB pages, 32 KiB max small size.")
    else:
        lines.append("# gomalloc size classes, C-ABI mode: class 0 is the large-object class.")
        lines.append("# Generated by Go's algorithm with a 16-byte step from 16 B, "
                     "8 KiB pages, 32 KiB max small size.")
    lines.append("# divmagic = floor(0xFFFFFFFF / bytes_per_obj) + 1; "
                 "object index = (offset * divmagic) >> 32.")
    lines.append("\t".join(["class", "bytes_per_obj", "pages", "bytes_per_span", "objects",
                            "tail_waste", "max_waste_pct", "divmagic"]))
    waste = max_waste_pct(classes)
    for i, c in enumerate(classes[1:], 1):
        lines.append("%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t0x%08x" % (
            i, c.size, c.npages, c.span_bytes, c.nobjs, c.tail, waste[i], c.divmagic))
    return "\n".join(lines) + "\n"


def render_lookup(table):
    # One line, space separated, no trailing newline (the golden files' format).
    return " ".join(str(v) for v in table)


def command_line(go_mode, out):
    args = ["python3", SCRIPT_PATH]
    if go_mode:
        args.append("--go")
    args += ["--out", out]
    return " ".join(args)


def c_array(ctype, name, dim, values, per_line):
    lines = ["static const %s %s[%s] __attribute__((unused)) = {" % (ctype, name, dim)]
    for k in range(0, len(values), per_line):
        lines.append("    " + ", ".join(values[k:k + per_line]) + ",")
    lines.append("};")
    return lines


def render_header(classes, go_mode, out):
    L = []
    L.append("// Code generated by tools/mksizeclasses.py; DO NOT EDIT.")
    L.append("// Command: " + command_line(go_mode, out))
    L.append("")
    if go_mode:
        L.append("/* Go mode: the Go runtime's own table (8-byte step below 32 B). */")
    else:
        L.append("/* C-ABI mode: Go's algorithm with a 16-byte step from 16 B, so every")
        L.append(" * size of 16 bytes or more is 16-byte aligned (Go's 24 B class is gone). */")
    L.append("")
    L.append("// %-5s  %-9s  %-10s  %-7s  %-10s  %-9s" % (
        "class", "bytes/obj", "bytes/span", "objects", "tail waste", "max waste"))
    waste = max_waste_pct(classes)
    for i, c in enumerate(classes[1:], 1):
        L.append("// %5d  %9d  %10d  %7d  %10d  %8.2f%%" % (
            i, c.size, c.span_bytes, c.nobjs, c.tail, waste[i]))
    L.append("")
    L.append("#ifndef GM_SIZECLASSES_H")
    L.append("#define GM_SIZECLASSES_H")
    L.append("")
    L.append("#include <stddef.h>")
    L.append("#include <stdint.h>")
    L.append("")
    n = len(classes)
    max_objs = max(c.nobjs for c in classes[1:])
    min_align = 8 if go_mode else 16
    L.append("#define GM_NUM_SIZE_CLASSES %d      /* including class 0 = large */" % n)
    L.append("#define GM_MAX_SMALL_SIZE %d" % MAX_SMALL_SIZE)
    L.append("#define GM_SMALL_SIZE_DIV %d" % SMALL_SIZE_DIV)
    L.append("#define GM_SMALL_SIZE_MAX %d" % SMALL_SIZE_MAX)
    L.append("#define GM_LARGE_SIZE_DIV %d" % LARGE_SIZE_DIV)
    L.append("#define GM_MAX_OBJS_PER_SPAN %d   /* largest objects count in the table */" % max_objs)
    above = next(i for i, c in enumerate(classes) if i and c.size > SMALL_SIZE_MAX)
    L.append("#define GM_FIRST_CLASS_ABOVE_SMALL_SIZE_MAX %d /* first class over GM_SMALL_SIZE_MAX */"
             % above)
    L.append("#define GM_MAX_OBJS_ABOVE_SMALL_SIZE_MAX %d    /* most objects per span from there on */"
             % max(c.nobjs for c in classes[above:]))
    if go_mode:
        L.append("#define GM_MIN_ALIGN %d              /* alignment guaranteed for sizes >= 16 "
                 "(16 in C mode) */" % min_align)
    else:
        L.append("#define GM_MIN_ALIGN %d             /* alignment guaranteed for sizes >= 16 "
                 "(8 in go mode) */" % min_align)
    L.append("")
    L.append("/* Object size of each class; 0 for class 0 (large objects). */")
    L += c_array("uint32_t", "gm_class_size", "GM_NUM_SIZE_CLASSES",
                 [str(c.size) for c in classes], 8)
    L.append("")
    L.append("/* Pages (8 KiB) per span of each class. */")
    L += c_array("uint8_t", "gm_class_npages", "GM_NUM_SIZE_CLASSES",
                 [str(c.npages) for c in classes], 16)
    L.append("")
    L.append("/* Objects per span of each class. */")
    L += c_array("uint16_t", "gm_class_nobjs", "GM_NUM_SIZE_CLASSES",
                 [str(c.nobjs) for c in classes], 12)
    L.append("")
    L.append("/* 0xFFFFFFFFFFFFFFFF / size + 1.  For every offset within a span of the class,")
    L.append(" * the 128-bit product offset * divmagic64 has the object index as its high")
    L.append(" * half, and a low half below divmagic64 exactly when the offset is a multiple")
    L.append(" * of the size. */")
    L += c_array("uint64_t", "gm_class_divmagic64", "GM_NUM_SIZE_CLASSES",
                 ["0x%016xull" % c.divmagic64 for c in classes], 3)
    L.append("")
    L.append("/* Class of a size <= GM_SMALL_SIZE_MAX, indexed by the size itself.  Go's")
    L.append(" * table has one entry per 8 bytes, indexed by (size + 7) >> 3; one per byte")
    L.append(" * is 1 KiB of table and spares every malloc the rounding (two instructions). */")
    L += c_array("uint8_t", "gm_size_to_class1", "GM_SMALL_SIZE_MAX + 1",
                 [str(v) for v in lookup1(classes)], 32)
    L.append("")
    L.append("/* Class of a size in (GM_SMALL_SIZE_MAX, GM_MAX_SMALL_SIZE], indexed by")
    L.append(" * (size - GM_SMALL_SIZE_MAX + 127) >> 7. */")
    L += c_array("uint8_t", "gm_size_to_class128",
                 "(GM_MAX_SMALL_SIZE - GM_SMALL_SIZE_MAX) / GM_LARGE_SIZE_DIV + 1",
                 [str(v) for v in lookup128(classes)], 16)
    L.append("")
    L.append("/* size must be <= GM_MAX_SMALL_SIZE; returns 0 only for size 0 */")
    L.append("static inline unsigned gm_size_to_class(size_t size)")
    L.append("{")
    L.append("    if (size <= GM_SMALL_SIZE_MAX)")
    L.append("        return gm_size_to_class1[size];")
    L.append("    return gm_size_to_class128[(size - GM_SMALL_SIZE_MAX + GM_LARGE_SIZE_DIV - 1) /")
    L.append("                               GM_LARGE_SIZE_DIV];")
    L.append("}")
    L.append("")
    L.append("#endif /* GM_SIZECLASSES_H */")
    return "\n".join(L) + "\n"


def main(argv):
    p = argparse.ArgumentParser(description="Generate gomalloc's size class tables.")
    p.add_argument("--go", action="store_true",
                   help="Go's table (8-byte step below 32 B) instead of the C-ABI table")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--tsv", action="store_true", help="print the class table as TSV")
    what.add_argument("--lookup8", action="store_true",
                      help="print the size->class table for sizes <= 1024")
    what.add_argument("--lookup128", action="store_true",
                      help="print the size->class table for sizes > 1024")
    what.add_argument("--out", metavar="FILE", help="write the C header to FILE")
    args = p.parse_args(argv)

    try:
        classes = build_classes(args.go)
        if args.tsv:
            text = render_tsv(classes, args.go)
        elif args.lookup8:
            text = render_lookup(lookup8(classes))
        elif args.lookup128:
            text = render_lookup(lookup128(classes))
        else:
            text = render_header(classes, args.go, args.out)
    except Fail as e:
        sys.stderr.write("mksizeclasses: %s\n" % e)
        return 1

    if args.out:
        with open(args.out, "w", encoding="ascii", newline="\n") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
