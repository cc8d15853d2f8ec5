#!/usr/bin/env bash
# tests/fuzz/setup.sh: makes sure clang with libFuzzer is here, installing
# Debian's clang when it is not (apt-get, as root).  Prints the compiler to
# use on stdout; exits 77 with a message on stderr when it cannot.
set -u
probe() {
    local cc=$1 dir
    command -v "$cc" >/dev/null 2>&1 || return 1
    dir=$(mktemp -d) || return 1
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
        >"$dir/t.c"
    "$cc" -fsanitize=fuzzer "$dir/t.c" -o "$dir/t" >/dev/null 2>&1
    local rc=$?
    rm -rf "$dir"
    return $rc
}
for cc in ${FUZZ_CC:-} clang clang-16 clang-15 clang-14; do
    if probe "$cc"; then
        echo "$cc"
        exit 0
    fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "fuzz: installing clang (apt-get install -y clang)" >&2
    if DEBIAN_FRONTEND=noninteractive apt-get install -y clang >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y clang >&2; }; then
        if probe clang; then
            echo clang
            exit 0
        fi
    fi
fi
echo "fuzz: skipped: no clang with libFuzzer (-fsanitize=fuzzer), and it could not be" \
     "installed (needs root and apt-get: apt-get install -y clang)" >&2
exit 77
