#!/bin/sh
# Checks tools/mksizeclasses.py against its fixed outputs:
#   - in --go mode it reproduces the Go runtime's table and lookup tables
#     (tests/golden/*) byte for byte;
#   - in the default mode it reproduces the checked-in src/sizeclasses.h.
# Prints "N passed, M failed"; exits non-zero on any failure.
set -u

cd "$(dirname "$0")/../.." || exit 2

PY=${PYTHON:-python3}
GEN=tools/mksizeclasses.py
passed=0
failed=0
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM

# compare NAME GOT_FILE WANT_FILE
compare() {
    if cmp -s "$2" "$3"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $1 differs from $3"
        diff "$3" "$2" | head -n 20
    fi
}

# gen NAME OUT_FILE ARGS...
gen() {
    name=$1
    out=$2
    shift 2
    if "$PY" "$GEN" "$@" >"$out" 2>"$tmp/err"; then
        return 0
    fi
    failed=$((failed + 1))
    echo "FAIL: $name: $GEN $* exited non-zero"
    head -n 20 "$tmp/err"
    return 1
}

gen "go tsv" "$tmp/tsv" --go --tsv &&
    compare "go tsv" "$tmp/tsv" tests/golden/go-sizeclasses.tsv
gen "go lookup8" "$tmp/l8" --go --lookup8 &&
    compare "go lookup8" "$tmp/l8" tests/golden/go-size-to-class8.txt
gen "go lookup128" "$tmp/l128" --go --lookup128 &&
    compare "go lookup128" "$tmp/l128" tests/golden/go-size-to-class128.txt

# Regenerate the header with the exact command it records, in a scratch copy
# of the tree so the checked-in file is left alone.
mkdir -p "$tmp/tree/tools" "$tmp/tree/src"
cp "$GEN" "$tmp/tree/tools/"
cmd=$(sed -n '2s|^// Command: ||p' src/sizeclasses.h)
if [ "$cmd" = "python3 tools/mksizeclasses.py --out src/sizeclasses.h" ]; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL: src/sizeclasses.h records an unexpected command: '$cmd'"
fi
if (cd "$tmp/tree" && "$PY" tools/mksizeclasses.py --out src/sizeclasses.h) 2>"$tmp/err"; then
    compare "regenerated header" "$tmp/tree/src/sizeclasses.h" src/sizeclasses.h
else
    failed=$((failed + 1))
    echo "FAIL: header generation exited non-zero"
    head -n 20 "$tmp/err"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
