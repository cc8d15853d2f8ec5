/*
 * Definitions every tier shares: the page geometry, branch hints, a small
 * futex lock that never allocates, and the clock the scavenger paces by.
 */
#ifndef GM_COMMON_H
#define GM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Built with ThreadSanitizer (gcc says so one way, clang another). */
#if defined(__SANITIZE_THREAD__)
#define GM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GM_TSAN 1
#endif
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define GM_INTERNAL __attribute__((visibility("hidden")))
#define GM_NOINLINE __attribute__((noinline))
#define GM_COLD __attribute__((cold, noinline))

/* The heap's unit of address space: Go's 8 KiB page. */
#define GM_PAGE_SHIFT 13
#define GM_PAGE_SIZE ((size_t)1 << GM_PAGE_SHIFT)

/* Page allocator chunk: 512 pages, 4 MiB; the heap also grows in these steps. */
#define GM_CHUNK_SHIFT 22
#define GM_CHUNK_SIZE ((size_t)1 << GM_CHUNK_SHIFT)
#define GM_CHUNK_PAGES (GM_CHUNK_SIZE >> GM_PAGE_SHIFT)

/* Arenas are 64 MiB; the heap lives in one 1 TiB window of address space. */
#define GM_ARENA_SHIFT 26
#define GM_ARENA_SIZE ((size_t)1 << GM_ARENA_SHIFT)
#define GM_ARENA_PAGES (GM_ARENA_SIZE >> GM_PAGE_SHIFT)
#define GM_HEAP_RANGE_SHIFT 40
#define GM_HEAP_RANGE ((size_t)1 << GM_HEAP_RANGE_SHIFT)
#define GM_MAX_ARENAS (GM_HEAP_RANGE >> GM_ARENA_SHIFT)

/* Bits set in x.  The library is built for baseline x86-64, which has no
 * popcnt instruction, and the compiler's builtin would then call libgcc:
 * this is the same count in a dozen inline ALU operations (the classic
 * SWAR sum of bit pairs, nibbles and bytes). */
static inline unsigned gm_popcount64(uint64_t x) {
#if defined(__POPCNT__)
    return (unsigned)__builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
#endif
}

static inline uintptr_t gm_align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }
static inline uintptr_t gm_align_down(uintptr_t x, uintptr_t a) { return x & ~(a - 1); }

static inline uint32_t gm_fetch_or32(uint32_t *p, uint32_t v) {
    return __atomic_fetch_or(p, v, __ATOMIC_ACQ_REL);
}

/* This thread's allocator state, in one block of initial-exec TLS (a few
 * words of static TLS, so dlopen() of the library works too): its cache
 * (mcache.h) and the heap profiler's countdown (mprof.h).  Together, the
 * fast paths find both with one load of the block's offset. */
struct mcache;
typedef struct gm_thread_state {
    struct mcache *mcache;
    intptr_t prof_countdown;
} gm_thread_state;
extern __thread gm_thread_state gm_tls GM_INTERNAL __attribute__((tls_model("initial-exec")));

/* A lock for allocator state: a futex word, 0 free, 1 held, 2 held with waiters.
 * It never allocates, and after fork() the child resets it by storing 0. */
typedef struct { int word; } gm_lock_t;
#define GM_LOCK_INIT { 0 }
GM_INTERNAL void gm_lock_slow(gm_lock_t *l);
GM_INTERNAL void gm_unlock_wake(gm_lock_t *l);

static inline void gm_lock(gm_lock_t *l) {
    int expected = 0;
    if (likely(__atomic_compare_exchange_n(&l->word, &expected, 1, false,
                                           __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)))
        return;
    gm_lock_slow(l);
}

static inline bool gm_trylock(gm_lock_t *l) {
    int expected = 0;
    return __atomic_compare_exchange_n(&l->word, &expected, 1, false,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void gm_unlock(gm_lock_t *l) {
    if (unlikely(__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) == 2))
        gm_unlock_wake(l);
}

static inline void gm_lock_reinit(gm_lock_t *l) { l->word = 0; }

/* The most heap pages ever in spans (PeakHeapInuse), kept by mheap under
 * its lock, read by mstats.c without it. */
extern size_t gm_peak_pages GM_INTERNAL;
static inline void gm_note_peak_pages(size_t pages) {
    if (pages > __atomic_load_n(&gm_peak_pages, __ATOMIC_RELAXED))
        __atomic_store_n(&gm_peak_pages, pages, __ATOMIC_RELAXED);
}

/* Monotonic nanoseconds (vDSO, no system call). */
GM_INTERNAL uint64_t gm_nanotime(void);

/* Writes "gomalloc: warning: msg" on stderr. */
GM_INTERNAL __attribute__((cold)) void gm_warn(const char *msg);

/* Reports a fatal misuse or internal error on stderr and aborts. */
GM_INTERNAL __attribute__((noreturn, cold)) void gm_fatal(const char *msg, const void *addr);

/* Reports a bad pointer passed to `caller` ("free", "realloc", ...) and
 * aborts: "double free" when free() gets a pointer to an object that was
 * already freed, "invalid pointer" otherwise. */
GM_INTERNAL __attribute__((noreturn, cold)) void gm_bad_pointer(const char *caller, const void *p,
                                                                bool already_freed);
/* The same, with what the allocator knows of the block: its size (the
 * slot size of its class, or a large block's), whether p is inside it
 * rather than at its start, and whether it was freed. */
GM_INTERNAL __attribute__((noreturn, cold)) void gm_bad_pointer_hint(const char *caller,
                                                                     const void *p,
                                                                     bool already_freed,
                                                                     size_t block_size,
                                                                     bool interior);

/* Formats into buf like a tiny snprintf: %s %d %u %zu %llu %p %x and widths. */
GM_INTERNAL int gm_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
GM_INTERNAL void gm_write_all(int fd, const char *s, size_t n);

#endif
