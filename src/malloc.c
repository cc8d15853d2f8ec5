/*
 * The public API: the C allocation functions, exported as gm_* (the standard
 * names are bound to these in override.c).
 *
 * A request takes one of three roads, as in Go's mallocgc:
 *   tiny   1..4 bytes: a piece of the thread's current 16-byte block;
 *   small  up to 32 KiB: a slot of the thread's span for the size class;
 *   large  above: whole pages, a span of its own straight from mheap.
 * free() asks the span map which span holds the pointer, checks that the
 * pointer is the start of a live object, and hands it to the tier that owns
 * that kind of span.  A pointer that fails the checks aborts with a report.
 *
 * errno follows the glibc manual pages; free() never changes it.  No lock is
 * taken here.
 *
 * The heap profiler (mprof.c) costs one countdown per allocation
 * (mprof_countdown before malloc and calloc, mprof_alloc after the others,
 * in each public entry point, so that it knows the caller) and nothing per
 * free: a span holding samples has no fast owner, so its frees take
 * free_other, which tells the profiler.
 */
#include "gomalloc.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "mheap.h"
#include "mprof.h"
#include "options.h"
#include "proc.h"
#include "tiny.h"

/* Sizes beyond this can never be satisfied: refuse them before any rounding
 * can overflow. */
#define MAX_REQUEST ((size_t)PTRDIFF_MAX)

static GM_COLD void *fail_enomem(void) {
    errno = ENOMEM;
    return NULL;
}

static inline void bad_pointer(const char *caller, const void *p) {
    gm_bad_pointer(caller, p, false);
}

/* Where the public entry point was called from: the profile's first frame. */
#define CALLER() __builtin_return_address(0)

/* ---- allocation ---- */

static GM_NOINLINE void *alloc_large(size_t size, size_t align, bool zero) {
    if (size > GM_HEAP_RANGE)
        return fail_enomem();
    size_t npages = (size + GM_PAGE_SIZE - 1) >> GM_PAGE_SHIFT;
    if (npages == 0)
        npages = 1;
    size_t align_pages = align > GM_PAGE_SIZE ? align >> GM_PAGE_SHIFT : 1;
    mcache *mc = gm_tls.mcache;
    if (unlikely(mc->kind == MCACHE_BOOTSTRAP))
        mc = proc_own_cache();
    if (!zero && align_pages == 1 && mc->kind == MCACHE_OWN) {
        mspan *kept = pagecache_take(&mc->pcache, npages, size);
        if (kept)
            return (void *)kept->base;
    }
    if (!mcache_global_init())
        return fail_enomem();
    mspan *s = mheap_alloc_large(npages, align_pages, size, zero);
    if (!s && mcache_give_back_reserves(mc)) {
        /* Out of memory or over a hard limit: what this thread keeps for
         * its own reuse is idle memory; give it back and retry. */
        s = mheap_alloc_large(npages, align_pages, size, zero);
    }
    if (!s)
        return fail_enomem();
    if (zero && !s->zeroed)
        memset((void *)s->base, 0, size);
    return (void *)s->base;
}

/* Sizes 0..8: malloc(0), tiny pieces, the 8-byte class. */
static GM_NOINLINE void *alloc_tiniest(mcache *mc, size_t size) {
    void *p;
    if (size <= GM_TINY_MAX && likely(gm_opt.tiny))
        p = tiny_alloc(mc, size ? size : 1);
    else
        p = mcache_alloc(mc, gm_size_to_class(8));
    return likely(p != NULL) ? p : fail_enomem();
}

static GM_NOINLINE void *alloc_refill(mcache *mc, uintptr_t spc) {
    void *p = mcache_alloc_slow(mc, (unsigned)spc);
    /* A safe point (no lock held, the cache whole) for the background
     * scavenger's lazy start, which allocates. */
    mheap_start_background();
    return likely(p != NULL) ? p : fail_enomem();
}

static inline __attribute__((always_inline)) void *alloc_class(mcache *mc, uintptr_t spc) {
    void *p;
    return likely(mcache_pop(mc, spc, &p)) ? p : alloc_refill(mc, spc);
}

/* Up to GM_SMALL_SIZE_MAX (1 KiB): the table with an entry per byte. */
static inline __attribute__((always_inline)) void *alloc_smallest(size_t size) {
    mcache *mc = gm_tls.mcache;
    uintptr_t spc = gm_size_to_class1[size];
    if (unlikely(spc <= 1))
        return alloc_tiniest(mc, size);
    return alloc_class(mc, spc);
}

/* Up to GM_MAX_SMALL_SIZE (32 KiB). */
static inline __attribute__((always_inline)) void *alloc_small(size_t size) {
    if (likely(size <= GM_SMALL_SIZE_MAX))
        return alloc_smallest(size);
    uintptr_t spc = gm_size_to_class128[(size - GM_SMALL_SIZE_MAX + GM_LARGE_SIZE_DIV - 1) /
                                        GM_LARGE_SIZE_DIV];
    return alloc_class(gm_tls.mcache, spc);
}

static inline __attribute__((always_inline)) void *malloc_impl(size_t size) {
    if (likely(size <= GM_SMALL_SIZE_MAX))
        return alloc_smallest(size);
    if (likely(size <= GM_MAX_SMALL_SIZE))
        return alloc_small(size);
    if (unlikely(size > MAX_REQUEST))
        return fail_enomem();
    return alloc_large(size, 1, false);
}

/* The sampled roads: out of line, so the fast paths keep no frame for
 * them; the countdown has already been taken.  They are entered by a tail
 * call, so their own return address is the program's (were the call not a
 * tail call, the stack would show one frame of the entry point more). */
static GM_NOINLINE void *malloc_sampled(size_t size) {
    return mprof_alloc_slow(malloc_impl(size), size, CALLER());
}

void *gm_malloc(size_t size) {
    if (unlikely(mprof_countdown(size)))
        return malloc_sampled(size);
    return malloc_impl(size);
}

static inline void *calloc_impl(size_t total) {
    if (total > GM_MAX_SMALL_SIZE)
        return alloc_large(total, 1, true);
    void *p = alloc_small(total);
    if (likely(p))
        memset(p, 0, total);
    return p;
}

static GM_NOINLINE void *calloc_sampled(size_t total) {
    return mprof_alloc_slow(calloc_impl(total), total, CALLER());
}

void *gm_calloc(size_t nmemb, size_t size) {
    size_t total;
    if (unlikely(__builtin_mul_overflow(nmemb, size, &total) || total > MAX_REQUEST))
        return fail_enomem();
    if (unlikely(mprof_countdown(total)))
        return calloc_sampled(total);
    return calloc_impl(total);
}

/* An object of `size` bytes whose address is a multiple of align (a power of
 * two).  Small requests pick the first size class that is a multiple of the
 * alignment: spans start on a page, so every slot is aligned. */
static void *alloc_aligned(size_t align, size_t size) {
    if (unlikely(size > MAX_REQUEST || align > GM_HEAP_RANGE))
        return fail_enomem();
    if (align <= GM_MIN_ALIGN && (size >= GM_MIN_ALIGN || align <= 1))
        return malloc_impl(size);
    size_t need = size > align ? size : align;
    if (align <= GM_PAGE_SIZE && need <= GM_MAX_SMALL_SIZE) {
        for (unsigned c = gm_size_to_class(need); c < GM_NUM_SIZE_CLASSES; c++) {
            if (gm_class_size[c] % align == 0) {
                void *p = mcache_alloc(gm_tls.mcache, c);
                return p ? p : fail_enomem();
            }
        }
    }
    return alloc_large(size ? size : 1, align, false);
}

static inline bool is_pow2(size_t x) { return x && !(x & (x - 1)); }

int gm_posix_memalign(void **memptr, size_t alignment, size_t size) {
    if (!is_pow2(alignment) || alignment % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = mprof_alloc(alloc_aligned(alignment, size), size, CALLER());
    errno = saved;
    if (!p)
        return ENOMEM;
    *memptr = p;
    return 0;
}

void *gm_aligned_alloc(size_t alignment, size_t size) {
    if (!is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return mprof_alloc(alloc_aligned(alignment, size), size, CALLER());
}

/* As the manual page says: an alignment that is not a power of two is
 * EINVAL (glibc itself rounds it up). */
void *gm_memalign(size_t alignment, size_t size) {
    if (!is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return mprof_alloc(alloc_aligned(alignment, size), size, CALLER());
}

#define SYSTEM_PAGE 4096

void *gm_valloc(size_t size) {
    return mprof_alloc(alloc_aligned(SYSTEM_PAGE, size), size, CALLER());
}

void *gm_pvalloc(size_t size) {
    size_t rounded;
    if (__builtin_add_overflow(size, SYSTEM_PAGE - 1, &rounded))
        return fail_enomem();
    size_t n = rounded & ~(size_t)(SYSTEM_PAGE - 1);
    return mprof_alloc(alloc_aligned(SYSTEM_PAGE, n), n, CALLER());
}

/* ---- freeing ---- */

static void free_large(mspan *s, void *p, const char *caller) {
    mcache *mc = gm_tls.mcache;
    if (mc->kind == MCACHE_OWN)
        pagecache_free(&mc->pcache, s, p, caller);
    else
        mheap_free_large(s, p, caller);
}

/* Every free but the owner's fast one.  A span holding profiler samples has
 * no fast owner (mspan_leave_fast_path), so its frees come here, where the
 * profiler hears of them before the block is released. */
static GM_NOINLINE void free_other(mspan *s, void *p, const char *caller) {
    if (unlikely(__atomic_load_n(&s->sampled, __ATOMIC_ACQUIRE)))
        mprof_free(s, p);
    unsigned spc = s->spanclass;
    if (likely(spc - 1u < GM_NUM_SIZE_CLASSES - 1u))
        mcache_free_small(s, p, caller);
    else if (spc == GM_TINY_SPAN_CLASS)
        tiny_free(s, p, caller);
    else
        free_large(s, p, caller);
}

/* Hands p to whoever frees it: its owner's fast path, or the others. */
static inline __attribute__((always_inline)) void free_in_span(mspan *s, void *p,
                                                              const char *caller) {
    mcache *mc = gm_tls.mcache;
    if (likely(__atomic_load_n(&s->fast_owner, __ATOMIC_RELAXED) == mc))
        mcache_free_owned(mc, s, p, caller);
    else
        free_other(s, p, caller);
}

/* p has no span: NULL, which free ignores, or not an address this heap
 * handed out.  Out of line: the fast path tests neither. */
static GM_NOINLINE void free_without_span(void *p, const char *caller) {
    if (p != NULL)
        bad_pointer(caller, p);
}

/* Frees p, NULL included: NULL is below every span map's origin, so it has
 * no span (arena.h), and free(NULL) costs the fast path no test of its own. */
static inline __attribute__((always_inline)) void free_impl(void *p, const char *caller) {
    mspan *s = spanof(p);
    if (unlikely(!s)) {
        free_without_span(p, caller);
        return;
    }
    free_in_span(s, p, caller);
}

void gm_free(void *p) { free_impl(p, "free"); }

#ifdef GM_STD_NAMES_IN_MALLOC
/* malloc and free under their C library names are the functions above
 * themselves, not calls to them from override.c (which binds all the other
 * names): a jump fewer on the two busiest entry points.  The library's own
 * build sets the macro (Makefile); the hardened one does not, since its
 * gm_malloc and gm_free are hardened.c's. */
extern __typeof(gm_malloc) malloc __attribute__((alias("gm_malloc"), visibility("default")));
extern __typeof(gm_free) free __attribute__((alias("gm_free"), visibility("default")));

/* A program linked with libgomalloc.a that calls only malloc and free would
 * take this object from the archive and not override.o, and the C library's
 * realloc, calloc, ... would then get gomalloc's blocks.  This reference
 * brings override.o in whenever malloc.o comes. */
extern const char gm_override_anchor;
__attribute__((used)) static const char *const bring_override = &gm_override_anchor;
#endif

void gm_free_sized(void *p, size_t size) {
    (void)size;
    gm_free(p);
}

void gm_free_aligned_sized(void *p, size_t alignment, size_t size) {
    (void)alignment;
    (void)size;
    gm_free(p);
}

/* Bytes usable at p, a live object's start; aborts otherwise. */
static size_t usable_impl(void *p, const char *caller, mspan **span) {
    mspan *s = spanof(p);
    if (unlikely(!s))
        bad_pointer(caller, p);
    *span = s;
    unsigned spc = s->spanclass;
    if (spc == GM_TINY_SPAN_CLASS)
        return tiny_usable(s, p, caller);
    if (spc != 0) {
        uint32_t idx = mspan_index(s, p);
        if (idx == SPAN_BAD_INDEX || !mspan_slot_live(s, idx))
            mspan_bad_free(s, p, idx, caller);
        return s->elemsize;
    }
    uint8_t state = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
    if (state != SPAN_LARGE || s->base != (uintptr_t)p)
        gm_bad_pointer(caller, p, /* freed: dead, or kept by a page cache */
                       state == SPAN_DEAD || (state == SPAN_PARKED && s->base == (uintptr_t)p));
    return (size_t)s->npages << GM_PAGE_SHIFT;
}

size_t gm_malloc_usable_size(void *p) {
    mspan *s;
    return p ? usable_impl(p, "malloc_usable_size", &s) : 0;
}

/* ---- realloc ---- */

static void *realloc_move(void *p, size_t old_usable, size_t size, void *caller) {
    void *q = mprof_alloc(malloc_impl(size), size, caller);
    if (!q)
        return NULL;
    memcpy(q, p, old_usable < size ? old_usable : size);
    free_impl(p, "realloc");
    return q;
}

void *gm_realloc(void *p, size_t size) {
    if (!p)
        return mprof_alloc(malloc_impl(size), size, CALLER());
    if (size == 0) {
        free_impl(p, "realloc");
        return NULL;
    }
    mspan *s;
    size_t usable = usable_impl(p, "realloc", &s);
    if (unlikely(size > MAX_REQUEST))
        return fail_enomem();
    unsigned spc = s->spanclass;
    if (spc == GM_TINY_SPAN_CLASS) {
        if (size <= usable)
            return p;
    } else if (spc != 0) {
        /* Same size class: nothing to do (Go's classes are at most 12.5%
         * apart, so staying never wastes much). */
        if (size <= usable && gm_size_to_class(size) == spc)
            return p;
    } else if (size > GM_MAX_SMALL_SIZE) {
        size_t npages = (size + GM_PAGE_SIZE - 1) >> GM_PAGE_SHIFT;
        if (npages <= s->npages) {
            if (npages == s->npages || mheap_resize_large(s, npages, size))
                return p;
        } else if (mheap_resize_large(s, npages, size)) {
            return p;
        }
    }
    return realloc_move(p, usable, size, CALLER());
}

void *gm_reallocarray(void *p, size_t nmemb, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total))
        return fail_enomem();
    return gm_realloc(p, total);
}

/* ---- glibc extras ---- */

int gm_malloc_trim(size_t pad) {
    (void)pad;
    size_t in_spans = mcache_trim();
    size_t free_pages = mheap_release_all();
    return in_spans > 0 || free_pages > 0;
}

int gm_mallopt(int param, int value) {
    (void)param;
    (void)value;
    return 1;
}

/* ---- memory limit ---- */

int gm_set_memory_limit(size_t bytes, int hard) {
    if (!mcache_global_init())
        return -1;
    mheap_set_memory_limit(bytes, hard != 0);
    mheap_start_background();
    return 0;
}

size_t gm_get_memory_limit(int *hard) {
    if (!mcache_global_init())
        return 0;
    bool h = false;
    size_t b = mheap_get_memory_limit(&h);
    if (hard)
        *hard = h;
    return b;
}
