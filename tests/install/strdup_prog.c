/*
 * strdup_prog: a C program that gets memory only through libc (strdup),
 * so --as-needed would drop -lgomalloc unless the pkg-config flags keep it.
 * Prints "gomalloc" when its memory is gomalloc's (gm_malloc_usable_size,
 * looked up at run time, accepts it), "other" otherwise.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char *s = strdup("gomalloc test");
    size_t (*usable)(void *) = (size_t (*)(void *))dlsym(RTLD_DEFAULT, "gm_malloc_usable_size");
    printf("%s\n", usable && usable(s) >= strlen(s) + 1 ? "gomalloc" : "other");
    free(s);
    return 0;
}
