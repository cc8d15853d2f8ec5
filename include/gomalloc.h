/*
 * gomalloc: the Go runtime's memory allocator as a C malloc.
 *
 * Loaded with LD_PRELOAD, or linked with -lgomalloc, the library replaces the
 * standard allocation functions (malloc, free, ...).  The same functions are
 * also exported under a gm_ prefix, declared here, for programs that want to
 * call gomalloc explicitly, side by side with another allocator.
 *
 * Every gm_ function behaves as its standard namesake documented in the glibc
 * manual pages, including errno.
 */
#ifndef GOMALLOC_H
#define GOMALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <malloc.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The release; the one place it is written (the Makefile reads it here). */
#define GOMALLOC_VERSION "0.1.0"

#define GM_API __attribute__((visibility("default")))

/* The library's version, GOMALLOC_VERSION as it was built: compare the two
 * to see which gomalloc a program really runs on. */
GM_API const char *gm_version(void);

/* Built-in options: a program may define this string, in the GOMALLOC_CONF
 * syntax, e.g.  const char *gomalloc_conf = "stats:1,memlimit:2G";
 * GOMALLOC_CONF and the GOMALLOC_<NAME> variables override it.  The
 * program must be linked with -lgomalloc (or -rdynamic) for a preloaded
 * library to see it. */
extern const char *gomalloc_conf;

GM_API void *gm_malloc(size_t size);
GM_API void gm_free(void *ptr);
GM_API void *gm_calloc(size_t nmemb, size_t size);
GM_API void *gm_realloc(void *ptr, size_t size);
GM_API void *gm_reallocarray(void *ptr, size_t nmemb, size_t size);
GM_API int gm_posix_memalign(void **memptr, size_t alignment, size_t size);
GM_API void *gm_aligned_alloc(size_t alignment, size_t size);
GM_API void *gm_memalign(size_t alignment, size_t size);
GM_API void *gm_valloc(size_t size);
GM_API void *gm_pvalloc(size_t size);
GM_API size_t gm_malloc_usable_size(void *ptr);
GM_API void gm_free_sized(void *ptr, size_t size);
GM_API void gm_free_aligned_sized(void *ptr, size_t alignment, size_t size);
GM_API int gm_malloc_trim(size_t pad);
GM_API int gm_mallopt(int param, int value);
GM_API struct mallinfo gm_mallinfo(void);
GM_API struct mallinfo2 gm_mallinfo2(void);
GM_API void gm_malloc_stats(void);

/* A snapshot of the heap, in Go's vocabulary (runtime.MemStats).
 *
 * Versioned: fields are only ever added at the end.  gm_get_heap_stats()
 * passes the size of the struct the program was compiled with, the library
 * fills in that much (or all it knows, if less) and says how much in `size`,
 * so a program built against an older header keeps working with a newer
 * library, and the other way round. */
#define GM_HEAP_STATS_VERSION 2
typedef struct gm_heap_stats {
    uint32_t size;         /* bytes filled in by the library */
    uint32_t version;      /* GM_HEAP_STATS_VERSION of the library */
    /* version 1 */
    size_t heap_sys;       /* bytes of heap address space mapped for use */
    size_t heap_inuse;     /* bytes in spans that hold objects */
    size_t heap_idle;      /* bytes in free pages (heap_sys - heap_inuse) */
    size_t heap_released;  /* bytes of idle pages not resident (released or never touched) */
    size_t heap_alloc;     /* bytes of live objects (by size class size) */
    size_t heap_objects;   /* live objects */
    size_t meta_sys;       /* bytes mapped for allocator metadata */
    uint64_t mallocs;      /* objects allocated, ever */
    uint64_t frees;        /* objects freed, ever */
    uint64_t mcache_refills;   /* spans handed to thread caches by mcentral */
    uint64_t mcentral_grows;   /* spans mcentral had to ask mheap for */
    uint64_t mheap_allocs;     /* spans allocated by mheap (small and large) */
    uint64_t os_maps;          /* times the heap mapped more memory from the OS */
    uint64_t scavenged_bytes;  /* bytes returned to the OS by the scavenger, ever */
    /* version 2 */
    size_t rss;                /* resident memory of the process (VmRSS) */
    size_t peak_rss;           /* its peak (VmHWM) */
    size_t peak_heap_inuse;    /* the most bytes ever in spans */
    uint64_t spans_inuse;      /* spans holding objects (small and large) */
} gm_heap_stats;

GM_API void gm_get_heap_stats_sized(gm_heap_stats *out, size_t size);
#define gm_get_heap_stats(out) gm_get_heap_stats_sized((out), sizeof *(out))

/* A memory limit on the heap, like Go's GOMEMLIMIT (0 removes it).  Soft
 * (hard == 0): free memory goes back to the OS so that in-use plus retained
 * free memory stays under 95% of it, as far as the program's live memory
 * allows.  Hard: in addition, an allocation that would put the memory in
 * use over the limit fails with ENOMEM.  Returns 0, or -1 if the allocator
 * cannot start.  The default comes from GOMALLOC_MEMLIMIT_MB and
 * GOMALLOC_MEMLIMIT_HARD, else from the cgroup's memory limit. */
GM_API int gm_set_memory_limit(size_t bytes, int hard);
/* The current limit in bytes (0: none); *hard (if not NULL) says whether it
 * is hard. */
GM_API size_t gm_get_memory_limit(int *hard);

/* Writes the full Go-style heap report (as malloc_stats) to a file descriptor. */
GM_API void gm_print_stats(int fd);

/* The statistics as one JSON object (runtime.MemStats names, plus RSS,
 * PeakRSS, PeakHeapInuse, options and version) into buf, NUL-terminated and
 * cut at len.  Returns the length of the whole object, as snprintf does. */
GM_API size_t gm_stats_json(char *buf, size_t len);

/* Writes the heap profile (a gzipped pprof protobuf) to path now.  Needs
 * profiling on (GOMALLOC_PROFILE or GOMALLOC_PROFILE_RATE).  0 on success,
 * -1 on failure. */
GM_API int gm_profile_write(const char *path);

/* Draws the heap (arenas, chunks, spans) as an SVG picture into fd.
 * 0 on success, -1 on failure. */
GM_API int gm_heap_map(int fd);

/* glibc's malloc_info: gomalloc's state as XML. */
GM_API int gm_malloc_info(int options, FILE *fp);

#ifdef __cplusplus
}
#endif
#endif
