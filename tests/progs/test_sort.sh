#!/usr/bin/env bash
# test_sort: sort(1) on a million generated lines, with two threads and a
# small buffer (temporary files and merges), numerically and by key; the
# output must be identical under gomalloc.
. "$(dirname "$0")/lib.sh"
export LC_ALL=C TMPDIR=$WORK
awk 'BEGIN { x = 1; for (i = 0; i < 1000000; i++) { x = (x * 69069 + 1) % 4294967296;
     printf "%08x %d k%d %s\n", x, x % 100003, i % 977, substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, x % 7 + 1) } }' \
    >"$WORK/in.txt"
note "input: $(wc -l <"$WORK/in.txt") lines, $(du -m "$WORK/in.txt" | cut -f1) MiB"
same plain bash -c 'sort --parallel=2 "$0" | md5sum' "$WORK/in.txt"
same numeric bash -c 'sort -S 16M --parallel=2 -t" " -k2,2n -k1,1 "$0" | md5sum' "$WORK/in.txt"
same keyed bash -c 'sort -u -t" " -k3,3 -k4,4r "$0" | md5sum' "$WORK/in.txt"
finish
