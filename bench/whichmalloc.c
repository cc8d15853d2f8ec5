/*
 * whichmalloc: prints the file that provides the malloc and free this
 * process calls, to confirm that an LD_PRELOAD took effect.
 */
#include <dlfcn.h>

#include "common.h"

static const char *owner(void *fn)
{
    Dl_info info;
    if (dladdr(fn, &info) == 0 || info.dli_fname == NULL)
        return "?";
    return info.dli_fname;
}

int main(void)
{
    void *(*volatile m)(size_t) = malloc;
    void (*volatile f)(void *) = free;
    void *p = m(100);
    if (p == NULL)
        bench_fail("malloc failed");
    memset(p, 1, 100);
    f(p);
    printf("malloc %s\nfree %s\n", owner((void *)m), owner((void *)f));
    return 0;
}
