#!/usr/bin/env bash
# test_observe: the machine-readable statistics and the heap map.
#  - gm_stats_json parses (python3 json) and agrees with gm_get_heap_stats;
#    GOMALLOC_STATS=json with GOMALLOC_STATS_FILE (%p) and --stats-json too;
#  - malloc_info(0, fp) is XML rooted at <malloc version="1"> naming gomalloc;
#  - the heap map SVG parses and has one element per span;
#  - reports never land in a program's file after it closed stderr (at
#    start, or later together with gomalloc's copy) and opened ~1000 files;
#  - --stats reports the launched process only, --tree every process;
#  - gomalloc explain.
# Environment (set by tests/run.sh): GM_ROOT, GMTEST_BIN.
set -u
ROOT=${GM_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${GMTEST_BIN:-$ROOT/build/tests}
PROG=$BIN/observe_prog
GM=$ROOT/build/gomalloc
fail=0
t=$(mktemp -d /tmp/gmtest-observe.XXXXXX)
trap 'rm -rf "$t"' EXIT
bad() { echo "test_observe: FAIL: $*" >&2; fail=1; }

# 1. JSON on demand agrees with gm_get_heap_stats
"$PROG" json >"$t/json.txt" 2>"$t/json.err" || bad "observe_prog json: $(cat "$t/json.err")"
python3 - "$t/json.txt" <<'PY' || bad "gm_stats_json does not agree with gm_get_heap_stats"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
j, h = json.loads(lines[0]), json.loads(lines[1])
for k in ("HeapAlloc", "HeapSys", "HeapIdle", "HeapInuse", "HeapReleased", "HeapObjects",
          "Mallocs", "Frees", "RSS", "PeakRSS", "PeakHeapInuse", "BySize", "Options", "Version"):
    assert k in j, "missing " + k
for k, v in h.items():
    assert j[k if k != "Spans" else "Spans"] == v, (k, j.get(k), v)
assert j["HeapIdle"] + j["HeapInuse"] == j["HeapSys"]
assert j["RSS"] > 0 and j["PeakRSS"] >= j["RSS"]
assert j["PeakHeapInuse"] >= j["HeapInuse"]
small = sum(c["Mallocs"] for c in j["BySize"] if not c.get("Tiny"))
assert small + j["TinyAllocs"] + j["LargeAllocs"] == j["Mallocs"], "BySize does not add up"
assert all(set(c) >= {"Size", "Mallocs", "Frees"} for c in j["BySize"])
print("json ok:", len(lines[0]), "bytes")
PY

# 2. JSON at exit, from the environment and from the launcher
GOMALLOC_STATS=json GOMALLOC_STATS_FILE="$t/exit.%p.json" "$PROG" json >/dev/null 2>"$t/err"
f=$(ls "$t"/exit.*.json 2>/dev/null | head -1)
[ -s "$t/err" ] && bad "GOMALLOC_STATS=json with a file wrote on stderr: $(head -c 200 "$t/err")"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["Mallocs"] > 0' "${f:-/none}" ||
    bad "GOMALLOC_STATS=json GOMALLOC_STATS_FILE=...%p: no valid JSON file"
"$GM" --stats-json "$t/launch.json" /bin/true || bad "gomalloc --stats-json exited $?"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$t/launch.json" ||
    bad "gomalloc --stats-json: no valid JSON"
GOMALLOC_STATS=json LD_PRELOAD=$ROOT/build/libgomalloc.so /bin/true 2>"$t/err"
python3 -c 'import json,sys; json.loads(open(sys.argv[1]).read())' "$t/err" ||
    bad "GOMALLOC_STATS=json without a file: no JSON on stderr"

# 3. malloc_info
"$PROG" mallinfo >"$t/info.xml" || bad "observe_prog mallinfo exited $?"
python3 - "$t/info.xml" <<'PY' || bad "malloc_info: not the expected XML"
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
assert r.tag == "malloc" and r.get("version") == "1", r.tag
a = r.find("allocator")
assert a is not None and a.get("name") == "gomalloc"
assert int(r.find("heap").find("system").get("size")) > 0
assert r.find("heap/sizes") is not None
print("malloc_info ok")
PY

# 4. the heap map: one element of class "span" per span
spans=$("$PROG" heapmap "$t/map.svg") || bad "observe_prog heapmap exited $?"
python3 - "$t/map.svg" "$spans" <<'PY' || bad "heap map: not one element per span"
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
n = sum(1 for e in r.iter() if "span" in (e.get("class") or "").split())
want = int(sys.argv[2])
print("heap map:", n, "span elements,", want, "spans")
assert n == want, (n, want)
assert r.tag.endswith("svg")
PY
"$GM" --heap-map "$t/exit.svg" "$PROG" json >/dev/null || bad "gomalloc --heap-map exited $?"
python3 -c 'import sys, xml.etree.ElementTree as ET; ET.parse(sys.argv[1])' "$t/exit.svg" ||
    bad "gomalloc --heap-map: no valid SVG"

# 5. never into the program's files
ulimit -n 2048 2>/dev/null
for mode in closed-late closed-at-start; do
    d=$t/fds-$mode
    mkdir -p "$d"
    if [ $mode = closed-at-start ]; then
        GOMALLOC_STATS=1 GOMALLOC_LEAKS=1 LD_PRELOAD=$ROOT/build/libgomalloc.so "$PROG" fds "$d" 2>&-
    else
        GOMALLOC_STATS=1 GOMALLOC_LEAKS=1 LD_PRELOAD=$ROOT/build/libgomalloc.so "$PROG" fds "$d"
    fi
    n=$(ls "$d" | wc -l)
    [ "$n" -ge 950 ] || bad "$mode: the program opened only $n files"
    hit=$(grep -l gomalloc "$d"/* 2>/dev/null | head -3)
    [ -z "$hit" ] || bad "$mode: a report was written into the program's files: $hit"
done

# 6. --stats: the launched process only, unless --tree
n=$("$GM" --stats bash -c '/bin/true; /bin/true; exit 0' 2>&1 | grep -c 'heap report')
[ "$n" -eq 1 ] || bad "gomalloc --stats bash -c ...: $n reports, want 1"
n=$("$GM" --tree --stats bash -c '/bin/true; /bin/true; exit 0' 2>&1 | grep -c 'heap report')
[ "$n" -eq 3 ] || bad "gomalloc --tree --stats bash -c ...: $n reports, want 3"
"$GM" --stats bash -c 'exit 0' 2>"$t/report.txt"
for w in RSS 'peak' 'options:' 'heap report: bash' 'span bytes'; do
    grep -q "$w" "$t/report.txt" || bad "the report lacks \"$w\""
done

# 7. explain
"$GM" explain 20 100 40000 >"$t/explain.txt" 2>&1 || bad "gomalloc explain exited $?"
cat "$t/explain.txt" >&2
grep -q 'class' "$t/explain.txt" && grep -q 'mcache' "$t/explain.txt" && grep -q 'large' "$t/explain.txt" ||
    bad "gomalloc explain: no class / mcache / large in its output"
"$GM" explain --go 24 >"$t/explain-go.txt" 2>&1 || bad "gomalloc explain --go exited $?"
grep -q '24 B' "$t/explain-go.txt" || bad "gomalloc explain --go 24: Go's 24-byte class missing"

[ $fail -eq 0 ] && echo "test_observe: ok" >&2
exit $fail
