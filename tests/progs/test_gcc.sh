#!/usr/bin/env bash
# test_gcc: gcc (driver, cc1, as, ld, all under gomalloc) compiles C files
# at -O2; the objects must be byte-identical to the plain compiler's, and
# a program it builds must print the same.
. "$(dirname "$0")/lib.sh"
export LC_ALL=C
# a generated program: many functions, structs and a table
gen() {
    echo '#include <stdio.h>'
    echo '#include <string.h>'
    for i in $(seq 1 300); do
        echo "struct s$i { int a; long b[$((i % 7 + 1))]; char name[$((i % 13 + 4))]; };"
        echo "static long f$i(long x) { struct s$i s; memset(&s, 0, sizeof s); s.a = (int)x;"
        echo "  for (int k = 0; k < $((i % 7 + 1)); k++) s.b[k] = x * $i + k;"
        echo "  long r = s.a; for (int k = 0; k < $((i % 7 + 1)); k++) r ^= s.b[k] << (k % 5);"
        echo "  return r + (long)sizeof s; }"
    done
    echo 'int main(void) { long t = 0;'
    for i in $(seq 1 300); do echo "  t += f$i(t % 1000 + $i);"; done
    echo '  printf("%ld\n", t); return 0; }'
}
gen >"$WORK/gen.c"
cp "$ROOT/tests/stress/test_stress.c" "$WORK/stress.c"
cp "$ROOT/tests/check.h" "$ROOT/tests/common.h" "$WORK/"
sed -i 's|"\.\./check.h"|"check.h"|; s|"\.\./common.h"|"common.h"|' "$WORK/stress.c"
cd "$WORK"
for f in gen stress; do
    gcc -O2 -c "$f.c" -o "$f.ref.o" || bad "plain gcc failed on $f.c"
    with_gm gcc -O2 -c "$f.c" -o "$f.gm.o" || bad "gcc under gomalloc failed on $f.c"
    cmp -s "$f.ref.o" "$f.gm.o" || bad "$f.o differs under gomalloc"
done
gcc -O1 -g -Wall -o gen.ref gen.c && with_gm gcc -O1 -g -Wall -o gen.gm gen.c || bad "linking gen failed"
same run ./gen.gm
[ "$(./gen.ref)" = "$(./gen.gm)" ] || bad "the program built under gomalloc prints something else"
finish
