#!/usr/bin/env bash
# test_perl: perl builds hashes of arrays, strings and records, sorts and
# tears them down; its digests must not change under gomalloc.
. "$(dirname "$0")/lib.sh"
export PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0
same workload perl "$ROOT/tests/progs/workload.pl"
finish
