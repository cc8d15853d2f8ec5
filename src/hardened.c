/*
 * The hardened build (-DGM_HARDENED, build/libgomalloc-hardened.so): a layer
 * over the ordinary allocator that catches heap misuse the default build
 * cannot see.  It exports the gm_* API and calls malloc.c's functions, which
 * that build renames gm_raw_* (hardened.h); no tier below is changed, and
 * the default build does not compile this file at all.
 *
 * Every block the program gets is the start of an inner block of u usable
 * bytes, asked for with room to spare:
 *
 *   small (u <= 32 KiB)  [ data: size | canary bytes ... | tail 16 B ]
 *   large                [ data: size | canary bytes ... | tail 16 B | guard page ]
 *
 * The tail holds the requested size and a check word: both keyed by a
 * per-process secret (from the kernel's AT_RANDOM), so a stray write cannot
 * forge them.  Canary bytes follow the data (at least one, at most
 * CANARY_WINDOW: an overflow that runs on from the data crosses them first),
 * so an overflow of even one byte changes a canary or the tail; the guard
 * page (PROT_NONE) stops a long one at once.  Canaries and tail are checked
 * on free, realloc and malloc_usable_size.
 *
 * free() checks the block, then keeps it in a quarantine instead of handing
 * it back.  Blocks up to FILL_MAX are filled with FREED_BYTE and their tail
 * says "freed"; when the quarantine is full a randomly chosen one leaves it:
 * the filling is checked ("use-after-free write"), the mark erased, and the
 * block goes to the inner allocator, which alone hands it out again.  Bigger
 * blocks are sealed instead: PROT_NONE, their pages given back
 * (MADV_DONTNEED), so any access faults while they wait (filled like the
 * others if mprotect refuses).  A block whose pages the kernel will not
 * make accessible again when it leaves (a guard page, or a sealed block) is
 * never given back.  A second free of
 * a block in quarantine finds the "freed" tail (or the entry, for sealed
 * blocks): "double free".  free_sized and free_aligned_sized (which C++
 * sized delete calls) compare the size given with the one stored.
 *
 * Pointers the inner allocator does not know are reported by it (malloc.c),
 * under the name of the call the program made (gm_hardened_bad_pointer).
 * Reports say what was found, in which call, at which address, and the
 * block's size, then abort.
 *
 * Locking: one lock guards the quarantine; it is taken before any inner
 * allocator lock (an evicted block is freed after the lock is dropped) and
 * never around a call that can report.  fork(): the lock is held across it;
 * a free made by another fork handler while it is held skips the quarantine.
 */
#ifdef GM_HARDENED
#define _GNU_SOURCE
#include "hardened.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "os.h"
#include "sizeclasses.h"

#define TAIL_BYTES 16          /* size word and check word */
#define MIN_CANARY 1           /* canary bytes always present after the data */
#define CANARY_WINDOW 64       /* ... and at most this many are written and checked */
#define OVERHEAD (TAIL_BYTES + MIN_CANARY)
#define GUARD_BYTES 4096       /* the system page after a large block */
#define FREED_BYTE 0xdb        /* what freed small blocks read as */
#define FREED_SIZE (~(uint64_t)0)
#define QUARANTINE_SLOTS 1024  /* filled blocks held back at most ... */
#define QUARANTINE_BYTES ((size_t)4 << 20) /* ... and their bytes at most */
#define SEALED_SLOTS 16        /* blocks above FILL_MAX held back (address space only) */
#define SEALED_BYTES ((size_t)256 << 20)
#define FILL_MAX ((size_t)256 << 10) /* freed blocks up to this are filled, larger ones sealed */
#define MAX_REQUEST ((size_t)PTRDIFF_MAX)
#define GROWTH_ROOM_DIV 4      /* a large block moved by realloc gets 1/4 more room */
#define NONZERO_CANARY 0xa5    /* stands in for a zero byte of the canary key */

/* glibc keeps this true while the process has one thread.  Weak: with an
 * older libc it is missing, and we assume threads. */
extern char __libc_single_threaded __attribute__((weak));

static inline bool single_threaded(void) {
    return &__libc_single_threaded && __atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED);
}

/* ---- the per-process secret ---- */

static uint64_t key_size, key_check, key_canary;

static uint64_t mix64(uint64_t x) { /* a strong 64-bit finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The keys come from the 16 random bytes the kernel gives every process;
 * every thread derives the same values, so a race to set them is benign. */
static GM_COLD void keys_init(void) {
    uint64_t r[2] = {0, 0};
    const void *rnd = (const void *)getauxval(AT_RANDOM);
    if (rnd)
        memcpy(r, rnd, sizeof r);
    else
        r[0] = gm_nanotime();
    /* No canary byte is zero: an off-by-one that writes a string's
     * terminator is the most common overflow of all. */
    uint64_t canary = mix64(r[0] ^ 0x6a09e667f3bcc909ULL);
    for (int i = 0; i < 64; i += 8)
        if (((canary >> i) & 0xff) == 0)
            canary |= (uint64_t)NONZERO_CANARY << i;
    __atomic_store_n(&key_size, mix64(r[1] + 0x3c6ef372fe94f82bULL), __ATOMIC_RELAXED);
    __atomic_store_n(&key_check, mix64(r[0] ^ r[1]), __ATOMIC_RELAXED);
    __atomic_store_n(&key_canary, canary, __ATOMIC_RELEASE);
}

static inline void keys(void) {
    if (unlikely(__atomic_load_n(&key_canary, __ATOMIC_ACQUIRE) == 0))
        keys_init();
}

static inline uint64_t check_word(uintptr_t p, uint64_t size) {
    return mix64(p ^ key_check ^ (size * 0x9e3779b97f4a7c15ULL));
}

/* Canary byte i bytes into block p: the secret's bytes, in an order that
 * depends on the address. */
static inline uint8_t canary_byte(uintptr_t p, size_t i) {
    return (uint8_t)(key_canary >> (((p >> 4) + i) & 7) * 8);
}

/* ---- reports ---- */

static __attribute__((noreturn, cold)) void report(const char *caller, const char *what,
                                                   const void *p, const char *detail) {
    char buf[320];
    int n = gm_snprintf(buf, sizeof buf, "gomalloc: %s(): %s %p%s%s\n", caller, what, p,
                        detail[0] ? ": " : "", detail);
    gm_write_all(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    abort();
}

static __thread const char *tls_caller; /* the call the program made */

void gm_hardened_bad_pointer(const char *caller, const void *p, bool already_freed) {
    const char *c = tls_caller ? tls_caller : caller;
    tls_caller = NULL;
    gm_bad_pointer(c, p, already_freed);
}

/* ---- block layout ---- */

typedef struct block {
    uintptr_t p;
    size_t usable; /* the inner block's */
    size_t end;    /* offset of the tail: data and canaries lie before it */
    size_t size;   /* requested */
    bool large;
} block;

static inline size_t tail_offset(size_t usable) {
    return (usable > GM_MAX_SMALL_SIZE ? usable - GUARD_BYTES : usable) - TAIL_BYTES;
}

/* Inner bytes to ask for, so that `size` bytes, a canary and the tail fit,
 * and a guard page when the block will be large.  0: impossible. */
static size_t inner_size(size_t size) {
    if (size > MAX_REQUEST - OVERHEAD - 2 * GUARD_BYTES)
        return 0;
    size_t need = size + OVERHEAD;
    if (need <= GM_MAX_SMALL_SIZE)
        return need;
    return gm_align_up(need, GUARD_BYTES) + GUARD_BYTES;
}

/* Where a block's canaries stop: a run of CANARY_WINDOW bytes right after
 * the data is enough, since an overflow that runs on from the data crosses
 * it first; the bytes beyond, up to the tail, are left as they are (a large
 * block can have kilobytes there, and a growing realloc even more). */
static inline size_t canary_end(size_t size, size_t end) {
    return end - size > CANARY_WINDOW ? size + CANARY_WINDOW : end;
}

/* Lays out an inner block for `size` bytes: canaries and tail. */
static void seal(uintptr_t p, size_t usable, size_t size) {
    size_t end = tail_offset(usable);
    unsigned char *c = (unsigned char *)p;
    for (size_t i = size; i < canary_end(size, end); i++)
        c[i] = canary_byte(p, i);
    uint64_t tail[2] = {check_word(p, size), size ^ key_size};
    memcpy(c + end, tail, sizeof tail);
}

/* The guard page at the end of a large block: PROT_NONE while the block
 * lives.  Too many mappings (vm.max_map_count) or a seccomp filter can make
 * mprotect fail.  Setting it: the block then has its canaries but no guard.
 * Lifting it: the caller must not give the block back (keep_out). */
static bool guard(uintptr_t p, size_t usable, bool on) {
    return os_protect((void *)(p + usable - GUARD_BYTES), GUARD_BYTES, !on);
}

/* A block leaving quarantine whose pages the kernel would not make
 * accessible again: given back, it would fault in its next owner's hands,
 * so it stays out of use for the rest of the process (the inner heap keeps
 * it as allocated), said once. */
static void keep_out(void) {
    static int warned;
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        gm_warn("hardened: mprotect refused to make a freed block accessible again; "
                "such blocks are kept out of use");
}

enum tail_state { TAIL_LIVE, TAIL_FREED, TAIL_BAD };

static enum tail_state read_tail(uintptr_t p, size_t end, size_t *size) {
    uint64_t tail[2];
    memcpy(tail, (const void *)(p + end), sizeof tail);
    uint64_t s = tail[1] ^ key_size;
    if (s == FREED_SIZE && tail[0] == check_word(p, FREED_SIZE))
        return TAIL_FREED;
    if (s <= end && tail[0] == check_word(p, s)) {
        *size = (size_t)s;
        return TAIL_LIVE;
    }
    return TAIL_BAD;
}

static bool in_sealed_quarantine(uintptr_t p);

/* The live block at p, checked whole, or a report naming `caller`. */
static block check_block(void *ptr, const char *caller) {
    keys();
    uintptr_t p = (uintptr_t)ptr;
    tls_caller = caller; /* the inner lookup reports under the program's call */
    size_t usable = gm_raw_malloc_usable_size(ptr);
    tls_caller = NULL;
    block b = {.p = p, .usable = usable, .end = tail_offset(usable), .size = 0,
               .large = usable > GM_MAX_SMALL_SIZE};
    char d[160];
    if (usable > FILL_MAX && in_sealed_quarantine(p)) {
        gm_snprintf(d, sizeof d, "a large block of %zu usable bytes, freed and in quarantine",
                    usable);
        report(caller, "double free", ptr, d);
    }
    switch (read_tail(p, b.end, &b.size)) {
    case TAIL_FREED:
        gm_snprintf(d, sizeof d, "a block of %zu usable bytes, freed and in quarantine", usable);
        report(caller, "double free", ptr, d);
    case TAIL_BAD:
        gm_snprintf(d, sizeof d, "the bookkeeping after the data was overwritten "
                    "(bytes %zu..%zu of a block of %zu)", b.end, b.end + TAIL_BYTES - 1, usable);
        report(caller, "heap overflow", ptr, d);
    case TAIL_LIVE:
        break;
    }
    const unsigned char *c = (const unsigned char *)p;
    for (size_t i = b.size; i < canary_end(b.size, b.end); i++) {
        if (c[i] != canary_byte(p, i)) {
            gm_snprintf(d, sizeof d, "byte %zu of a %zu-byte block (%zu usable) was written",
                        i, b.size, usable);
            report(caller, "heap overflow", ptr, d);
        }
    }
    return b;
}

/* An underflow of p first overwrites the size word at the very end of the
 * block below it (the tail is check word, then size word).  When that block
 * is one of ours, live or freed, its check word is intact and names it: a
 * freed block's exactly, a live block's once its size is read back from the
 * low bytes of the size word (small sizes fit in two).  So an underflow of
 * up to 6 bytes is caught here, at free; longer ones when the block below is
 * checked.  A slot never handed out holds anything and says nothing.
 * Only while the process has one thread: another thread may be writing that
 * tail right now, and a half-written one must not read as an underflow. */
#define SIZE_LOW_MASK 0xffffu

static void check_below(uintptr_t p, size_t usable, const char *caller) {
    if (usable > GM_MAX_SMALL_SIZE || p % GM_PAGE_SIZE == 0 || !single_threaded())
        return; /* large, or perhaps the first block of its span: nothing of ours below */
    uintptr_t prev = p - usable;
    size_t end = tail_offset(usable), s;
    if (read_tail(prev, end, &s) != TAIL_BAD)
        return;
    uint64_t tail[2];
    memcpy(tail, (const void *)(prev + end), sizeof tail);
    uint64_t low = (tail[1] ^ key_size) & SIZE_LOW_MASK;
    if (tail[0] == check_word(prev, FREED_SIZE) ||
        (low <= end && tail[0] == check_word(prev, low))) {
        char d[128];
        gm_snprintf(d, sizeof d, "the bytes just before a block of %zu usable bytes were written",
                    usable);
        report(caller, "heap underflow", (void *)p, d);
    }
}

/* Offset of the first byte in [0, end) of p that is not FREED_BYTE, or end.
 * end is a multiple of 16 (tails sit at the end of 16-byte-aligned blocks):
 * compare words, then find the byte. */
#define FREED_WORD (0x0101010101010101ULL * FREED_BYTE)

static size_t first_unfreed(uintptr_t p, size_t end) {
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < end / 8; i++) {
        if (w[i] != FREED_WORD) {
            size_t at = i * 8;
            while (((const unsigned char *)p)[at] == FREED_BYTE)
                at++;
            return at;
        }
    }
    return end;
}

/* ---- handing out ---- */

static void *finish(void *ptr, size_t size) {
    if (!ptr)
        return NULL;
    uintptr_t p = (uintptr_t)ptr;
    size_t usable = gm_raw_malloc_usable_size(ptr);
    seal(p, usable, size);
    if (usable > GM_MAX_SMALL_SIZE)
        guard(p, usable, true);
    return ptr;
}

static GM_COLD void *fail_enomem(void) {
    errno = ENOMEM;
    return NULL;
}

void *gm_malloc(size_t size) {
    keys();
    size_t need = inner_size(size);
    if (!need)
        return fail_enomem();
    return finish(gm_raw_malloc(need), size);
}

void *gm_calloc(size_t nmemb, size_t size) {
    keys();
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total))
        return fail_enomem();
    size_t need = inner_size(total);
    if (!need)
        return fail_enomem();
    if (need > GM_MAX_SMALL_SIZE) /* the inner calloc knows which pages are fresh */
        return finish(gm_raw_calloc(1, need), total);
    void *p = finish(gm_raw_malloc(need), total);
    if (p)
        memset(p, 0, total);
    return p;
}

static void *aligned(size_t align, size_t size) {
    keys();
    size_t need = inner_size(size);
    if (!need)
        return fail_enomem();
    return finish(gm_raw_aligned_alloc(align, need), size);
}

static inline bool is_pow2(size_t x) { return x && !(x & (x - 1)); }

int gm_posix_memalign(void **memptr, size_t alignment, size_t size) {
    if (!is_pow2(alignment) || alignment % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = aligned(alignment, size);
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
    return aligned(alignment, size);
}

void *gm_memalign(size_t alignment, size_t size) {
    if (!is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(alignment, size);
}

#define SYSTEM_PAGE 4096

void *gm_valloc(size_t size) { return aligned(SYSTEM_PAGE, size); }

void *gm_pvalloc(size_t size) {
    size_t rounded;
    if (__builtin_add_overflow(size, SYSTEM_PAGE - 1, &rounded))
        return fail_enomem();
    return aligned(SYSTEM_PAGE, rounded & ~(size_t)(SYSTEM_PAGE - 1));
}

/* ---- the quarantine ---- */

typedef struct qentry {
    uintptr_t p;
    size_t usable;
} qentry;

static gm_lock_t q_lock = GM_LOCK_INIT;
static qentry q_filled[QUARANTINE_SLOTS];
static size_t q_filled_n, q_filled_bytes;
static qentry q_sealed[SEALED_SLOTS];
static size_t q_sealed_n, q_sealed_bytes;
static uint64_t q_rng;           /* xorshift state, under q_lock */
static int q_atfork_registered;
static __thread bool tls_forking; /* this thread holds q_lock for fork() */

static void q_fork_prepare(void) {
    gm_lock(&q_lock);
    tls_forking = true;
}
static void q_fork_parent(void) {
    tls_forking = false;
    gm_unlock(&q_lock);
}
static void q_fork_child(void) {
    tls_forking = false;
    gm_lock_reinit(&q_lock);
}

static size_t q_random(size_t n) {
    if (q_rng == 0)
        q_rng = key_check | 1;
    q_rng ^= q_rng << 13;
    q_rng ^= q_rng >> 7;
    q_rng ^= q_rng << 17;
    return (size_t)(q_rng % n);
}

static bool in_sealed_quarantine(uintptr_t p) {
    bool found = false, locked = !tls_forking; /* a fork handler: q_lock is ours */
    if (locked)
        gm_lock(&q_lock);
    for (size_t i = 0; i < q_sealed_n && !found; i++)
        found = q_sealed[i].p == p;
    if (locked)
        gm_unlock(&q_lock);
    return found;
}

/* Takes a random entry out of q (n entries); q_lock held. */
static qentry q_take(qentry *q, size_t *n, size_t *bytes) {
    size_t i = q_random(*n);
    qentry e = q[i];
    q[i] = q[--*n];
    *bytes -= e.usable;
    return e;
}

/* A filled block leaving quarantine must still be as free() left it. */
static void release_filled(qentry e, const char *caller) {
    size_t end = tail_offset(e.usable), s;
    char d[160];
    if (read_tail(e.p, end, &s) != TAIL_FREED) {
        gm_snprintf(d, sizeof d, "the bookkeeping of a freed block of %zu usable bytes was "
                    "written after it was freed (found when it left quarantine)", e.usable);
        report(caller, "use-after-free write", (void *)e.p, d);
    }
    size_t i = first_unfreed(e.p, end);
    if (i != end) {
        gm_snprintf(d, sizeof d, "byte %zu of a freed block of %zu usable bytes was written "
                    "after it was freed (found when it left quarantine)", i, e.usable);
        report(caller, "use-after-free write", (void *)e.p, d);
    }
    /* Forget the freed mark: once the inner allocator has the memory it may
     * serve it to anyone, and a mark left behind would describe a block that
     * no longer exists. */
    uint64_t none[2] = {0, 0};
    memcpy((void *)(e.p + end), none, sizeof none);
    if (e.usable > GM_MAX_SMALL_SIZE && !guard(e.p, e.usable, false)) {
        keep_out();
        return;
    }
    gm_raw_free((void *)e.p);
}

static void release_sealed(qentry e) {
    if (!os_protect((void *)e.p, e.usable, true)) {
        keep_out();
        return;
    }
    gm_raw_free((void *)e.p);
}

/* Seals a block above FILL_MAX for its stay in quarantine: its pages go back
 * (it waits without costing memory; refused, for mlocked pages say, it only
 * keeps them) and any access faults.  False if mprotect refuses: the block
 * is then filled and checked like a small one. */
static bool seal_away(const block *b) {
    (void)os_release((void *)b->p, b->usable);
    return os_protect((void *)b->p, b->usable, false);
}

/* Puts a checked block in quarantine; whatever it pushes out is freed. */
static void quarantine(const block *b, const char *caller) {
    if (unlikely(!__atomic_load_n(&q_atfork_registered, __ATOMIC_ACQUIRE)) &&
        !__atomic_exchange_n(&q_atfork_registered, 1, __ATOMIC_ACQ_REL)) {
        /* Registered after the inner allocator's handlers, so ours run
         * first on fork's prepare side and take q_lock before its locks. */
        pthread_atfork(q_fork_prepare, q_fork_parent, q_fork_child);
    }
    bool sealed = b->usable > FILL_MAX && seal_away(b);
    if (!sealed) {
        unsigned char *c = (unsigned char *)b->p;
        memset(c, FREED_BYTE, b->end);
        uint64_t tail[2] = {check_word(b->p, FREED_SIZE), FREED_SIZE ^ key_size};
        memcpy(c + b->end, tail, sizeof tail);
    }
    if (tls_forking) { /* a fork handler freeing: q_lock is ours already */
        qentry e = {b->p, b->usable};
        sealed ? release_sealed(e) : release_filled(e, caller);
        return;
    }
    qentry out[2];
    int nout = 0;
    qentry e = {b->p, b->usable};
    gm_lock(&q_lock);
    if (sealed) {
        while (q_sealed_n > 0 &&
               (q_sealed_n == SEALED_SLOTS || q_sealed_bytes + e.usable > SEALED_BYTES) &&
               nout < 2)
            out[nout++] = q_take(q_sealed, &q_sealed_n, &q_sealed_bytes);
        if (q_sealed_n < SEALED_SLOTS && q_sealed_bytes + e.usable <= SEALED_BYTES) {
            q_sealed[q_sealed_n++] = e;
            q_sealed_bytes += e.usable;
            e.p = 0;
        }
    } else {
        while (q_filled_n > 0 &&
               (q_filled_n == QUARANTINE_SLOTS || q_filled_bytes + e.usable > QUARANTINE_BYTES) &&
               nout < 2)
            out[nout++] = q_take(q_filled, &q_filled_n, &q_filled_bytes);
        if (q_filled_n < QUARANTINE_SLOTS && q_filled_bytes + e.usable <= QUARANTINE_BYTES) {
            q_filled[q_filled_n++] = e;
            q_filled_bytes += e.usable;
            e.p = 0;
        }
    }
    gm_unlock(&q_lock);
    /* Released outside the lock: checking and freeing may take a while, and
     * a report must not leave the lock held. */
    for (int i = 0; i < nout; i++)
        sealed ? release_sealed(out[i]) : release_filled(out[i], caller);
    if (e.p) /* did not fit even after making room: straight back */
        sealed ? release_sealed(e) : release_filled(e, caller);
}

/* Empties the quarantine (malloc_trim). */
static void quarantine_flush(void) {
    if (tls_forking) /* a fork handler: q_lock is ours and stays so */
        return;
    for (;;) {
        qentry e;
        bool sealed;
        gm_lock(&q_lock);
        if (q_filled_n) {
            e = q_take(q_filled, &q_filled_n, &q_filled_bytes);
            sealed = false;
        } else if (q_sealed_n) {
            e = q_take(q_sealed, &q_sealed_n, &q_sealed_bytes);
            sealed = true;
        } else {
            gm_unlock(&q_lock);
            return;
        }
        gm_unlock(&q_lock);
        sealed ? release_sealed(e) : release_filled(e, "malloc_trim");
    }
}

/* ---- freeing ---- */

static void free_checked(void *ptr, const char *caller) {
    block b = check_block(ptr, caller);
    check_below(b.p, b.usable, caller);
    quarantine(&b, caller);
}

void gm_free(void *p) {
    if (p)
        free_checked(p, "free");
}

static GM_COLD void size_mismatch(const char *caller, void *p, const char *what, size_t given,
                                  size_t want) {
    char d[128];
    gm_snprintf(d, sizeof d, "%s %zu given, the block has %zu", what, given, want);
    report(caller, "size mismatch", p, d);
}

void gm_free_sized(void *p, size_t size) {
    if (!p)
        return;
    block b = check_block(p, "free_sized");
    if (size != b.size)
        size_mismatch("free_sized", p, "size", size, b.size);
    free_checked(p, "free_sized");
}

void gm_free_aligned_sized(void *p, size_t alignment, size_t size) {
    if (!p)
        return;
    block b = check_block(p, "free_aligned_sized");
    if (size != b.size)
        size_mismatch("free_aligned_sized", p, "size", size, b.size);
    if (!is_pow2(alignment) || b.p % alignment != 0)
        size_mismatch("free_aligned_sized", p, "alignment", alignment,
                      (size_t)1 << __builtin_ctzll(b.p));
    free_checked(p, "free_aligned_sized");
}

size_t gm_malloc_usable_size(void *p) {
    return p ? check_block(p, "malloc_usable_size").size : 0;
}

void *gm_realloc(void *p, size_t size) {
    if (!p)
        return gm_malloc(size);
    if (size == 0) {
        free_checked(p, "realloc");
        return NULL;
    }
    block b = check_block(p, "realloc");
    check_below(b.p, b.usable, "realloc");
    size_t need = inner_size(size);
    if (!need)
        return fail_enomem();
    if (need <= b.usable) { /* fits: move the canaries */
        seal(b.p, b.usable, size);
        return p;
    }
    /* A large block that grows by moving gets room to grow further in
     * place (canaries fill it), so a buffer grown step by step moves a
     * logarithmic number of times, not once per page. */
    size_t room = size > GM_MAX_SMALL_SIZE && size > b.size ? size / GROWTH_ROOM_DIV : 0;
    need = inner_size(size + room);
    if (!need)
        need = inner_size(size);
    void *q = finish(gm_raw_malloc(need), size);
    if (!q)
        return fail_enomem();
    memcpy(q, p, b.size < size ? b.size : size);
    free_checked(p, "realloc");
    return q;
}

void *gm_reallocarray(void *p, size_t nmemb, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total))
        return fail_enomem();
    return gm_realloc(p, total);
}

int gm_malloc_trim(size_t pad) {
    quarantine_flush();
    return gm_raw_malloc_trim(pad);
}

#endif /* GM_HARDENED */
