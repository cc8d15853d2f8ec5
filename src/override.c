/*
 * Symbol overrides: the standard allocation functions, and the glibc-internal
 * entry points glibc itself calls, bound to gomalloc's gm_* functions.
 *
 * With LD_PRELOAD, or when a program links -lgomalloc, these definitions come
 * before libc's, so every allocation in the process (the program's, libc's,
 * the dynamic loader's once it is running) comes here.  The library is linked
 * with -Bsymbolic-functions, so each of these is a direct jump.  In the
 * library's default build malloc and free are not here: they are aliases of
 * gm_malloc and gm_free in malloc.c (GM_STD_NAMES_IN_MALLOC, see there).
 * No state, no locks.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "gomalloc.h"

#define EXPORT __attribute__((visibility("default")))

/* malloc and free: in the library's default build, aliases of gm_malloc
 * and gm_free in malloc.c (GM_STD_NAMES_IN_MALLOC, see the Makefile). */
#ifndef GM_STD_NAMES_IN_MALLOC
EXPORT void *malloc(size_t size) { return gm_malloc(size); }
EXPORT void free(void *p) { gm_free(p); }
#else
/* What malloc.c refers to, so that a static link that takes malloc.o from
 * the archive takes this file too (and a build that set the macro for one
 * of the two files only fails to link, rather than leave malloc unbound). */
__attribute__((visibility("hidden"))) const char gm_override_anchor = 0;
#endif
EXPORT void *calloc(size_t n, size_t size) { return gm_calloc(n, size); }
EXPORT void *realloc(void *p, size_t size) { return gm_realloc(p, size); }
EXPORT void *reallocarray(void *p, size_t n, size_t size) { return gm_reallocarray(p, n, size); }
EXPORT int posix_memalign(void **out, size_t align, size_t size) {
    return gm_posix_memalign(out, align, size);
}
EXPORT void *aligned_alloc(size_t align, size_t size) { return gm_aligned_alloc(align, size); }
EXPORT void *memalign(size_t align, size_t size) { return gm_memalign(align, size); }
EXPORT void *valloc(size_t size) { return gm_valloc(size); }
EXPORT void *pvalloc(size_t size) { return gm_pvalloc(size); }
EXPORT size_t malloc_usable_size(void *p) { return gm_malloc_usable_size(p); }
EXPORT void free_sized(void *p, size_t size) { gm_free_sized(p, size); }
EXPORT void free_aligned_sized(void *p, size_t align, size_t size) {
    gm_free_aligned_sized(p, align, size);
}
EXPORT int malloc_trim(size_t pad) { return gm_malloc_trim(pad); }
EXPORT int mallopt(int param, int value) { return gm_mallopt(param, value); }
EXPORT struct mallinfo mallinfo(void) { return gm_mallinfo(); }
EXPORT struct mallinfo2 mallinfo2(void) { return gm_mallinfo2(); }
EXPORT void malloc_stats(void) { gm_malloc_stats(); }
EXPORT int malloc_info(int options, FILE *fp) { return gm_malloc_info(options, fp); }

/* glibc's own names for the same functions. */
EXPORT void *__libc_malloc(size_t size) { return gm_malloc(size); }
EXPORT void __libc_free(void *p) { gm_free(p); }
EXPORT void *__libc_calloc(size_t n, size_t size) { return gm_calloc(n, size); }
EXPORT void *__libc_realloc(void *p, size_t size) { return gm_realloc(p, size); }
EXPORT void *__libc_memalign(size_t align, size_t size) { return gm_memalign(align, size); }
EXPORT void *__libc_valloc(size_t size) { return gm_valloc(size); }
EXPORT void *__libc_pvalloc(size_t size) { return gm_pvalloc(size); }
EXPORT int __posix_memalign(void **out, size_t align, size_t size) {
    return gm_posix_memalign(out, align, size);
}
