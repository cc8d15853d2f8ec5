#!/usr/bin/env bash
# test_options: the GOMALLOC_* variables, GOMALLOC_CONF and a program's
# built-in gomalloc_conf.
#  - a malformed value or an unknown name gets exactly one warning line that
#    names the variable, the value and what is accepted, and the default is
#    kept (seen in the GOMALLOC_VERBOSE listing);
#  - booleans take 0/1/true/false/on/off/yes/no, sizes K/M/G suffixes, the
#    old *_MB variables still work;
#  - precedence: gomalloc_conf < GOMALLOC_CONF < GOMALLOC_<NAME>;
#  - GOMALLOC_VERBOSE=1 names the version and the library's path;
#  - nothing at all is printed without options.
# Environment (set by tests/run.sh): GM_LIB, GMTEST_BIN.
set -u
ROOT=${GM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
LIB=${GM_LIB:-$ROOT/build/libgomalloc.so}
BIN=${GMTEST_BIN:-$ROOT/build/tests}
PROG=$BIN/conf_prog
VERSION=$(sed -n 's/^#define GOMALLOC_VERSION "\(.*\)"$/\1/p' "$ROOT/include/gomalloc.h")
fail=0
t=$(mktemp -d /tmp/gmtest-options.XXXXXX)
trap 'rm -rf "$t"' EXIT
bad() { echo "test_options: FAIL: $*" >&2; fail=1; }

# gm VAR=VALUE...: runs `true` under gomalloc with the variables; stderr in $t/err.
gm() { env "$@" LD_PRELOAD="$LIB" true 2>"$t/err" >/dev/null || bad "$* : exit status $?"; }
# value NAME: the option's value in the verbose listing in $t/err
value() { awk -v n="$1" '$1 == "gomalloc:" && $2 == n { print $3 }' "$t/err"; }
# source NAME: where the listing says it came from
source_of() { awk -v n="$1" '$1 == "gomalloc:" && $2 == n { print $4 }' "$t/err"; }
warnings() { grep -c '^gomalloc: [^ ]' "$t/err"; }

# expect_value NAME VALUE VAR=VALUE...
expect_value() {
    local name=$1 want=$2
    shift 2
    gm GOMALLOC_VERBOSE=1 "$@"
    [ "$(value "$name")" = "$want" ] || bad "$*: $name is '$(value "$name")', want '$want'"
    [ "$(warnings)" = 0 ] || bad "$*: unexpected warning: $(head -n 3 "$t/err")"
}

# expect_warning VAR=VALUE WORD...: exactly one warning, containing every WORD
expect_warning() {
    local setting=$1
    shift
    gm GOMALLOC_VERBOSE=1 "$setting"
    local n
    n=$(warnings)
    [ "$n" = 1 ] || bad "$setting: $n warning lines, want 1: $(head -n 3 "$t/err")"
    local w
    for w in "$@"; do
        grep '^gomalloc: [^ ]' "$t/err" | grep -qF -- "$w" || bad "$setting: warning lacks '$w': $(head -n 1 "$t/err")"
    done
}

# 0. silence by default
gm
[ -s "$t/err" ] && bad "no options, yet stderr: $(head -c 200 "$t/err")"

# 1. booleans
for v in 1 true TRUE on yes Yes; do expect_value stats on GOMALLOC_STATS=$v; done
for v in 0 false off no NO; do expect_value tiny off GOMALLOC_TINY=$v; done
expect_value tiny on GOMALLOC_TINY=on
expect_value tiny on GOMALLOC_TINY= # empty: unset

# 2. sizes
expect_value memlimit 2G GOMALLOC_MEMLIMIT=2G
expect_value memlimit 2G GOMALLOC_MEMLIMIT=2048M
expect_value memlimit 512K GOMALLOC_MEMLIMIT=512k
expect_value memlimit 100 GOMALLOC_MEMLIMIT=100
expect_value memlimit 1G GOMALLOC_MEMLIMIT_MB=1024
expect_value memlimit 2G GOMALLOC_MEMLIMIT_MB=2G
expect_value retain 16M GOMALLOC_RETAIN_MB=16
expect_value retain 1G GOMALLOC_RETAIN=1GiB
expect_value scavenge_delay_ms 100 GOMALLOC_SCAVENGE_DELAY_MS=100
expect_value scavenge_delay_ms 2000 GOMALLOC_SCAVENGE_DELAY_MS=2s

# 3. malformed values: one warning naming variable, value, what is accepted; default kept
expect_warning GOMALLOC_TINY=maybe GOMALLOC_TINY maybe "on/off" "keeping on"
[ "$(value tiny)" = on ] || bad "GOMALLOC_TINY=maybe changed tiny to $(value tiny)"
expect_warning GOMALLOC_STATS=2 GOMALLOC_STATS "=2" "yes/no"
[ "$(value stats)" = off ] || bad "GOMALLOC_STATS=2 changed stats"
expect_warning GOMALLOC_MEMLIMIT=2X GOMALLOC_MEMLIMIT 2X "K, M, G" "keeping 0"
expect_warning GOMALLOC_MEMLIMIT_MB=lots GOMALLOC_MEMLIMIT_MB lots "MiB"
expect_warning GOMALLOC_RETAIN_MB=-5 GOMALLOC_RETAIN_MB -5 "keeping 64M"
[ "$(value retain)" = 64M ] || bad "GOMALLOC_RETAIN_MB=-5 changed retain"
expect_warning GOMALLOC_MEMLIMIT=99999999999999999999G GOMALLOC_MEMLIMIT 99999999999999999999G
expect_warning GOMALLOC_SCAVENGE_DELAY_MS=1h GOMALLOC_SCAVENGE_DELAY_MS 1h "milliseconds"
[ "$(value scavenge_delay_ms)" = 500 ] || bad "a bad delay changed it"

# 4. unknown names
expect_warning GOMALLOC_STAT=1 GOMALLOC_STAT=1 "unknown" "did you mean GOMALLOC_STATS" "GOMALLOC_MEMLIMIT"
expect_warning GOMALLOC_NOSUCHTHING=1 GOMALLOC_NOSUCHTHING "unknown" "GOMALLOC_TINY"

# 5. GOMALLOC_CONF
expect_value memlimit 2G GOMALLOC_CONF="stats:1,memlimit:2G"
[ "$(value stats)" = on ] || bad "GOMALLOC_CONF stats:1 not applied"
[ "$(source_of memlimit)" = GOMALLOC_CONF ] || bad "memlimit's source: $(source_of memlimit)"
expect_value tiny off GOMALLOC_CONF=" tiny = no , retain:8M"
[ "$(value retain)" = 8M ] || bad "GOMALLOC_CONF retain:8M gave $(value retain)"
expect_value memlimit 1G GOMALLOC_CONF=memlimit:2G GOMALLOC_MEMLIMIT=1G # the variable wins
expect_warning GOMALLOC_CONF=stats:1,tiny:perhaps GOMALLOC_CONF tiny:perhaps "on/off"
[ "$(value stats)" = on ] || bad "the good half of GOMALLOC_CONF was dropped"
expect_warning GOMALLOC_CONF=stat:1 GOMALLOC_CONF stat:1 "unknown" "did you mean stats"
expect_warning GOMALLOC_CONF=stats GOMALLOC_CONF stats "name:value"

# 6. verbose: the version and the library's path
gm GOMALLOC_VERBOSE=1
grep -q "^gomalloc $VERSION: active in pid [0-9]*, loaded from $(readlink -f "$LIB")\$" "$t/err" ||
    grep -q "^gomalloc $VERSION: active in pid [0-9]*, loaded from .*libgomalloc" "$t/err" ||
    bad "GOMALLOC_VERBOSE=1: no version/path line: $(head -n 1 "$t/err")"

# 7. built into the program (conf_prog: "memlimit:3G, tiny:off"), linked -lgomalloc
"$PROG" version >"$t/out" 2>"$t/err" || bad "conf_prog version failed: $(cat "$t/err")"
[ "$(cat "$t/out")" = "$VERSION" ] || bad "gm_version() gave '$(cat "$t/out")', want $VERSION"
GOMALLOC_VERBOSE=1 "$PROG" >"$t/out" 2>"$t/err" || bad "conf_prog failed"
[ "$(value memlimit)" = 3G ] || bad "gomalloc_conf memlimit:3G gave '$(value memlimit)'"
[ "$(value tiny)" = off ] || bad "gomalloc_conf tiny:off gave '$(value tiny)'"
[ "$(source_of memlimit)" = gomalloc_conf ] || bad "source of memlimit: $(source_of memlimit)"
GOMALLOC_VERBOSE=1 GOMALLOC_CONF=memlimit:1G GOMALLOC_TINY=1 "$PROG" >"$t/out" 2>"$t/err"
[ "$(value memlimit)" = 1G ] || bad "GOMALLOC_CONF does not override gomalloc_conf"
[ "$(value tiny)" = on ] || bad "GOMALLOC_TINY does not override gomalloc_conf"
"$PROG" >"$t/out" 2>"$t/err"
[ -s "$t/err" ] && bad "conf_prog without variables printed: $(head -c 200 "$t/err")"

[ $fail -eq 0 ] && echo "test_options: ok" >&2
exit $fail
