/*
 * The hardened build's seam (see hardened.c).
 *
 * In the hardened build this header is forced in front of every tier below
 * hardened.c (all sources but os.c, hardened.c) with GM_HARDENED_INNER: their
 * bad-pointer reports go through hardened.c, which names the call the
 * program made rather than the inner call hardened.c used.  malloc.c also
 * gets GM_HARDENED_RAW: its public functions are renamed gm_raw_* (hidden),
 * so hardened.c can export the gm_* names and wrap them.
 * The default build never sees this header.
 */
#ifndef GM_HARDENED_H
#define GM_HARDENED_H

#if defined(GM_HARDENED_INNER) && !defined(GM_HARDENED_RAW)
/* In front of a tier: a rename only, and no #include, so that the file's own
 * feature macros (_GNU_SOURCE) still come before any system header.
 * common.h's declaration of gm_bad_pointer then declares the new name. */
#define gm_bad_pointer gm_hardened_bad_pointer
/* The hinted report too: the hardened layer words every report itself. */
#define gm_bad_pointer_hint(caller, p, freed, size, interior) \
    gm_hardened_bad_pointer(caller, p, freed)
#else

#include "gomalloc.h" /* the public declarations first, under their own names */
#include "common.h"

GM_INTERNAL void *gm_raw_malloc(size_t size);
GM_INTERNAL void gm_raw_free(void *ptr);
GM_INTERNAL void *gm_raw_calloc(size_t nmemb, size_t size);
GM_INTERNAL void *gm_raw_realloc(void *ptr, size_t size);
GM_INTERNAL void *gm_raw_reallocarray(void *ptr, size_t nmemb, size_t size);
GM_INTERNAL int gm_raw_posix_memalign(void **memptr, size_t alignment, size_t size);
GM_INTERNAL void *gm_raw_aligned_alloc(size_t alignment, size_t size);
GM_INTERNAL void *gm_raw_memalign(size_t alignment, size_t size);
GM_INTERNAL void *gm_raw_valloc(size_t size);
GM_INTERNAL void *gm_raw_pvalloc(size_t size);
GM_INTERNAL size_t gm_raw_malloc_usable_size(void *ptr);
GM_INTERNAL void gm_raw_free_sized(void *ptr, size_t size);
GM_INTERNAL void gm_raw_free_aligned_sized(void *ptr, size_t alignment, size_t size);
GM_INTERNAL int gm_raw_malloc_trim(size_t pad);

/* malloc.c's bad-pointer reports, in the hardened build. */
GM_INTERNAL __attribute__((noreturn, cold)) void gm_hardened_bad_pointer(const char *caller,
                                                                         const void *p,
                                                                         bool already_freed);

#ifdef GM_HARDENED_INNER
#define gm_bad_pointer gm_hardened_bad_pointer
#define gm_bad_pointer_hint(caller, p, freed, size, interior) \
    gm_hardened_bad_pointer(caller, p, freed)
#endif

#ifdef GM_HARDENED_RAW
#define gm_malloc gm_raw_malloc
#define gm_free gm_raw_free
#define gm_calloc gm_raw_calloc
#define gm_realloc gm_raw_realloc
#define gm_reallocarray gm_raw_reallocarray
#define gm_posix_memalign gm_raw_posix_memalign
#define gm_aligned_alloc gm_raw_aligned_alloc
#define gm_memalign gm_raw_memalign
#define gm_valloc gm_raw_valloc
#define gm_pvalloc gm_raw_pvalloc
#define gm_malloc_usable_size gm_raw_malloc_usable_size
#define gm_free_sized gm_raw_free_sized
#define gm_free_aligned_sized gm_raw_free_aligned_sized
#define gm_malloc_trim gm_raw_malloc_trim
#endif

#endif /* GM_HARDENED_INNER only */
#endif
