#!/usr/bin/env bash
# test_ulimit: real programs run with gomalloc under a small address-space
# limit (ulimit -v 60000, about 58 MiB), as they do with glibc: gomalloc
# maps its heap and metadata only as the heap grows.  Also checks that the
# smallest process gomalloc is in stays far below that limit.
set -u
LIB=${GM_LIB:?}
fail=0
for cmd in "ls /" "sh -c true" "sort /etc/passwd"; do
    if (ulimit -v 60000 && LD_PRELOAD=$LIB $cmd >/dev/null); then
        echo "ok: $cmd under ulimit -v 60000"
    else
        echo "FAIL: $cmd under ulimit -v 60000"
        fail=1
    fi
done
vm=$(LD_PRELOAD=$LIB sh -c 'grep VmSize /proc/$$/status' | awk '{print $2}')
echo "sh with gomalloc: VmSize $vm kB"
if [ "${vm:-999999}" -gt 30000 ]; then
    echo "FAIL: VmSize $vm kB"
    fail=1
fi
exit $fail
