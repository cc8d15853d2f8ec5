#!/usr/bin/env bash
# test_python: python3 builds dicts, lists, strings, sets, big integers and
# JSON, with threads passing objects around; its digests must not change
# under gomalloc.
. "$(dirname "$0")/lib.sh"
PY=$(command -v python3)
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
same workload "$PY" "$ROOT/tests/progs/workload.py"
# the interpreter's own start-up and teardown, many times over
same startup bash -c 'for i in 1 2 3 4 5; do "$0" -c "import json, re, collections; print(len(json.dumps(list(range(1000)))))"; done' "$PY"
finish
