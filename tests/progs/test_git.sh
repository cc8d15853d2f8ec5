#!/usr/bin/env bash
# test_git: git init, many commits, a branch and a merge, log, gc and fsck
# in a temporary repository, once plainly and once under gomalloc; with
# fixed identities and dates the commit ids and logs must be identical.
. "$(dirname "$0")/lib.sh"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME=$WORK
export GIT_AUTHOR_NAME=gomalloc GIT_AUTHOR_EMAIL=test@gomalloc.invalid
export GIT_COMMITTER_NAME=gomalloc GIT_COMMITTER_EMAIL=test@gomalloc.invalid
export GIT_AUTHOR_DATE='2024-01-01T00:00:00 +0000' GIT_COMMITTER_DATE='2024-01-01T00:00:00 +0000'
export LC_ALL=C TZ=UTC

cat >"$WORK/script.sh" <<'SCRIPT'
set -e
repo=$1
rm -rf "$repo"
git init -q -b main "$repo"
cd "$repo"
git config gc.auto 0
mkdir -p dir0 dir1 dir2 dir3
for c in $(seq 1 25); do
    # 12 files of 301 lines each, in one process (git is what is tested)
    awk -v c="$c" 'BEGIN { for (f = 1; f <= 12; f++) { out = "dir" (f % 4) "/file" f ".txt"
        for (i = c * f; i <= c * f + 300; i++) print "line " c " " f " " i > out; close(out) } }'
    git add -A
    git commit -q -m "commit $c"
done
git checkout -q -b side HEAD~5
echo side >side.txt
git add side.txt
git commit -q -m side
git checkout -q main
git merge -q --no-edit side
git tag -a v1 -m "tag v1"
git log --stat --format='%H %s' | head -400
git log --graph --oneline --all
git rev-parse HEAD HEAD^{tree}
git gc -q --prune=now
git fsck --full --strict 2>&1
git count-objects -v | grep -E '^(count|in-pack|packs|garbage)'
git diff HEAD~10 HEAD --stat | tail -3
git show --format='%H' v1 | head -3
git ls-tree -r HEAD | wc -l
SCRIPT
same git bash "$WORK/script.sh" "$WORK/repo"
finish
