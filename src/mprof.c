/*
 * mprof: the sampling heap profiler, after Go's runtime/mprof.go.
 *
 * Sampling.  Each thread counts down the bytes it allocates
 * (gm_tls.prof_countdown, one initial-exec TLS word, decremented inline by
 * malloc.c).  When an allocation takes it to zero or below, that allocation
 * is a sample and the countdown is redrawn from an exponential distribution
 * whose mean is the rate (GOMALLOC_PROFILE_RATE, 512 KiB by default), as
 * Go's nextSample does: sampling is then a Poisson process over bytes, and a
 * sample of s bytes stands for 1 / (1 - exp(-s/rate)) allocations like it
 * (the scaling Go's pprof writer applies).  Rate 1 samples every
 * allocation.  With profiling off the countdown is set so high it never
 * runs out.
 *
 * Stacks.  A sample's call stack is taken by libgcc's DWARF unwinder
 * (_Unwind_Backtrace), linked statically into the library and kept private
 * (-static-libgcc, --exclude-libs), so it needs no frame pointers, and it
 * reads only the .eh_frame_hdr/.eh_frame tables found through
 * dl_iterate_phdr: it never calls malloc.  (glibc's backtrace() would
 * dlopen libgcc_s on first use, which allocates.)  Its limits: code without
 * unwind tables (rare on x86-64, where they are on by default) ends the
 * stack there; JIT code ends it too.  The stack starts at the return address
 * of the public entry point (malloc, calloc, ...), so the allocator's own
 * frames never show.  A thread records no sample while it is taking one,
 * and nothing is sampled before the environment can be read (the first
 * allocations of the dynamic loader).
 *
 * Records.  A bucket per (stack, size), as Go keys them, holds the sampled
 * allocations and frees.  Live samples sit in an open-addressing table
 * (linear probing, deletion by backward shift) from address to bucket.  A
 * sampled block's span is marked (mspan.sampled) so that free() looks the
 * table up only for blocks in marked spans, which also leave their owner's
 * fast path (mspan_leave_fast_path) so that every free into them passes the
 * check.  The mark counts the span's live samples (up to 254; at 255 it
 * stays set until the span is set up anew); the span gets its fast path back
 * at its owner's first free after its last sample is freed
 * (mspan_rejoin_fast_path), or when it next changes hands.  All of it lives in memory from
 * os_alloc_metadata: nothing here calls malloc.
 *
 * Output.  A pprof profile (profile.proto): Go's four heap sample types
 * alloc_objects/count, alloc_space/bytes, inuse_objects/count,
 * inuse_space/bytes, period space/bytes = rate, a "bytes" label with the
 * object size, and the executable mappings of /proc/self/maps so pprof can
 * symbolize from the binaries.  It is gzipped without zlib: deflate's stored
 * blocks (no compression) in a gzip member with its CRC-32.  The file is
 * written next to its final name and renamed into place.
 *
 * Locking: prof_lock guards the buckets, the address table and the writer's
 * static buffers.  It is a leaf: no allocator lock is taken under it, and it
 * is never held while the unwinder runs.  A signal handler that finds it
 * held (by the thread it interrupted, say) leaves the write to whoever
 * releases it.  Fork: the child resets it (handlers registered at the first
 * sample).
 */
#define _GNU_SOURCE
#include "mprof.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

#include "arena.h"
#include "mheap.h"
#include "os.h"

#define MAX_STACK 64             /* frames kept per sample */
#define MAX_SKIP 32              /* frames searched for the entry point's caller */
#define BUCKET_HASH_SIZE (1u << 16)
#define BUCKET_SLAB ((size_t)1 << 20)
#define ADDR_TABLE_MIN_BITS 12
/* Profiling off: a countdown no program will ever allocate through. */
#define COUNTDOWN_NEVER (INTPTR_MAX / 2)
/* Before the options can be read: look again after this many bytes. */
#define COUNTDOWN_RECHECK ((intptr_t)64 << 10)
/* mspan.sampled counts live samples up to this; from there it stays set. */
#define SPAN_SAMPLED_STICKY 255

static __thread bool prof_thread_ready __attribute__((tls_model("initial-exec")));
static __thread bool prof_busy __attribute__((tls_model("initial-exec")));
static __thread uint64_t prof_rng __attribute__((tls_model("initial-exec")));

static gm_lock_t prof_lock = GM_LOCK_INIT;
static int prof_write_pending; /* a signal asked for a profile while prof_lock was held */
static int fork_handlers_registered;

typedef struct bucket {
    struct bucket *hnext, *allnext;
    uint64_t hash, stack_hash;
    size_t size;
    uint64_t allocs, frees;
    uint32_t nstk;
    uintptr_t stk[];
} bucket;

static bucket **bucket_hash;
static bucket *all_buckets;
static size_t nbuckets;
static char *bslab_cur, *bslab_end;

typedef struct { uintptr_t addr; bucket *b; } addr_entry;
static addr_entry *addr_table;
static unsigned addr_bits;
static size_t addr_count;

/* ---- a little floating point without libm ---- */

#define LN2 0.69314718055994530942

/* Natural logarithm of x > 0: x = m * 2^e with m in [1, 2), and
 * ln m = 2 atanh((m - 1) / (m + 1)), whose series converges fast there. */
static double gm_ln(double x) {
    union { double d; uint64_t u; } v = {.d = x};
    int e = (int)((v.u >> 52) & 0x7ff) - 1023;
    v.u = (v.u & ~((uint64_t)0x7ff << 52)) | ((uint64_t)1023 << 52);
    double t = (v.d - 1) / (v.d + 1), t2 = t * t, term = t, sum = 0;
    for (int k = 1; k < 40; k += 2) {
        sum += term / k;
        term *= t2;
    }
    return 2 * sum + e * LN2;
}

/* e^x for x <= 0: e^x = 2^k e^r with |r| <= ln2 / 2, r's series. */
static double gm_exp_neg(double x) {
    if (x < -700)
        return 0;
    int k = (int)(x / LN2 - 0.5);
    double r = x - k * LN2, term = 1, sum = 1;
    for (int i = 1; i < 24; i++) {
        term *= r / i;
        sum += term;
    }
    union { double d; uint64_t u; } v = {.d = sum};
    v.u += (uint64_t)(int64_t)k << 52;
    return v.d;
}

/* Go's scaleHeapSample: what `count` samples of `bytes` in all stand for. */
static void scale_sample(uint64_t count, uint64_t bytes, size_t rate, int64_t *c, int64_t *b) {
    if (count == 0 || bytes == 0 || rate <= 1) {
        *c = (int64_t)count;
        *b = (int64_t)bytes;
        return;
    }
    double avg = (double)bytes / (double)count;
    double scale = 1 / (1 - gm_exp_neg(-avg / (double)rate));
    *c = (int64_t)((double)count * scale);
    *b = (int64_t)((double)bytes * scale);
}

/* ---- the countdown ---- */

static uint64_t rng_next(void) {
    uint64_t x = prof_rng;
    if (x == 0)
        x = gm_nanotime() ^ ((uintptr_t)&prof_rng * 0x9E3779B97F4A7C15ull) ^ 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    prof_rng = x;
    return x;
}

/* Bytes until the next sample: exponential with mean `rate`. */
static intptr_t next_sample(size_t rate) {
    if (rate <= 1)
        return 0;
    double u = ((double)(rng_next() >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double n = -gm_ln(u) * (double)rate;
    if (n > (double)COUNTDOWN_NEVER)
        return COUNTDOWN_NEVER;
    return (intptr_t)n + 1;
}

/* ---- stacks ---- */

typedef struct walk {
    uintptr_t *pcs;
    uintptr_t *slots;  /* where each pc was read from */
    uintptr_t start;
    int n, skipped;
    bool started;
} walk;

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *ctx, void *arg) {
    walk *w = arg;
    uintptr_t ip = _Unwind_GetIP(ctx);
    if (ip == 0)
        return _URC_END_OF_STACK;
    if (!w->started) {
        if (ip != w->start)
            return ++w->skipped > MAX_SKIP ? _URC_END_OF_STACK : _URC_NO_REASON;
        w->started = true;
    }
    /* libgcc's context for a frame carries the CFA of the frame it was
     * called from, the callee's: on x86-64 the call pushed the return
     * address just below it. */
    w->slots[w->n] = _Unwind_GetCFA(ctx) - sizeof(uintptr_t);
    w->pcs[w->n++] = ip;
    return w->n < MAX_STACK ? _URC_NO_REASON : _URC_END_OF_STACK;
}

/* The stack above the entry point's caller, by the unwinder; slots[i] is
 * the stack word pcs[i] was read from.  0 frames if the walk never reached
 * the caller (no unwind information on the way). */
static int unwind_stack(uintptr_t *pcs, uintptr_t *slots, uintptr_t start) {
    walk w = {.pcs = pcs, .slots = slots, .start = start};
    _Unwind_Backtrace(walk_frame, &w);
    return w.started ? w.n : 0;
}

/* ---- the stack memo (prof_lock held) ----
 *
 * DWARF unwinding costs about a thousand instructions a frame, and a
 * program's samples mostly come from the same few call sites at the same
 * depths: a loop that allocates.  So the last stack taken at each (return
 * address of the entry point, position of the sampling frame on the stack,
 * thread) is remembered with the stack words its return addresses were
 * read from.  A later sample with the same key reuses it if every one of
 * those words still holds the same return address: each frame then returns
 * where it did, and the rest of the walk is determined by them (the frame
 * sizes are the code's).  A stale word, a different caller, a signal
 * frame (whose return address is not at CFA - 8) make it a miss, and the
 * unwinder runs.  The words read lie between the sampling frame and the
 * thread's stack top, inside this thread's stack (the key holds the
 * thread's TLS address, which sits at the top of its stack mapping or, for
 * the main thread, the stack never moves), so reading them is safe.  A
 * stack deeper than MEMO_MAX_SPAN bytes is not remembered.  The argument
 * assumes a thread runs on one stack: a sample taken in a signal handler on
 * an alternate stack is never remembered (the signal frame's return address
 * is not where the check reads), but a program that switches its threads
 * between stacks of its own (fibers) and unmaps one that was sampled could,
 * if another stack later put the sampling frame at the very same address,
 * have a stale word read past its new stack's top. */
#define MEMO_SLOTS 256
#define MEMO_MAX_SPAN ((uintptr_t)1 << 20)

typedef struct stack_memo {
    uintptr_t start, anchor;
    const void *thread;
    uint32_t n;
    uintptr_t pcs[MAX_STACK];
    uintptr_t slots[MAX_STACK];
} stack_memo;

static stack_memo *memo; /* MEMO_SLOTS of them, mapped at the first sample */
static uint64_t memo_hits, memo_misses;

static stack_memo *memo_slot(uintptr_t start, uintptr_t anchor) {
    if (!memo && !(memo = os_alloc_metadata(MEMO_SLOTS * sizeof *memo)))
        return NULL;
    uint64_t h = (start ^ (anchor * 0x9E3779B97F4A7C15ull)) * 0xff51afd7ed558ccdull;
    return &memo[h >> (64 - 8)];
}

static int memo_lookup(uintptr_t *pcs, uintptr_t start, uintptr_t anchor) {
    stack_memo *m = memo_slot(start, anchor);
    if (!m || m->start != start || m->anchor != anchor || m->thread != (const void *)&gm_tls ||
        m->n == 0)
        return 0;
    for (uint32_t i = 0; i < m->n; i++)
        if (*(volatile const uintptr_t *)m->slots[i] != m->pcs[i])
            return 0;
    memcpy(pcs, m->pcs, m->n * sizeof *pcs);
    return (int)m->n;
}

static void memo_store(const uintptr_t *pcs, const uintptr_t *slots, int n, uintptr_t start,
                       uintptr_t anchor) {
    stack_memo *m = memo_slot(start, anchor);
    if (!m)
        return;
    m->n = 0;
    for (int i = 0; i < n; i++) /* every word must hold what the unwinder read */
        if (slots[i] <= anchor || slots[i] - anchor > MEMO_MAX_SPAN ||
            *(const uintptr_t *)slots[i] != pcs[i])
            return;
    m->start = start;
    m->anchor = anchor;
    m->thread = &gm_tls;
    memcpy(m->pcs, pcs, (size_t)n * sizeof *pcs);
    memcpy(m->slots, slots, (size_t)n * sizeof *slots);
    m->n = (uint32_t)n;
}

/* ---- buckets and the address table (prof_lock held) ---- */

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static void *meta_alloc(size_t bytes) {
    if ((size_t)(bslab_end - bslab_cur) < bytes) {
        size_t slab = bytes > BUCKET_SLAB ? bytes : BUCKET_SLAB;
        char *p = os_alloc_metadata(slab);
        if (!p)
            return NULL;
        bslab_cur = p;
        bslab_end = p + slab;
    }
    void *r = bslab_cur;
    bslab_cur += gm_align_up(bytes, 16);
    return r;
}

static bucket *bucket_for(const uintptr_t *pcs, int n, size_t size) {
    if (!bucket_hash && !(bucket_hash = os_alloc_metadata(BUCKET_HASH_SIZE * sizeof(bucket *))))
        return NULL;
    uint64_t sh = 0;
    for (int i = 0; i < n; i++)
        sh = mix(sh, pcs[i]);
    uint64_t h = mix(sh, size);
    size_t slot = h & (BUCKET_HASH_SIZE - 1);
    for (bucket *b = bucket_hash[slot]; b; b = b->hnext)
        if (b->hash == h && b->size == size && b->nstk == (uint32_t)n &&
            memcmp(b->stk, pcs, (size_t)n * sizeof *pcs) == 0)
            return b;
    bucket *b = meta_alloc(sizeof(bucket) + (size_t)n * sizeof *pcs);
    if (!b)
        return NULL;
    b->hash = h;
    b->stack_hash = sh;
    b->size = size;
    b->nstk = (uint32_t)n;
    memcpy(b->stk, pcs, (size_t)n * sizeof *pcs);
    b->hnext = bucket_hash[slot];
    bucket_hash[slot] = b;
    b->allnext = all_buckets;
    all_buckets = b;
    nbuckets++;
    return b;
}

static size_t addr_slot(uintptr_t a, unsigned bits) {
    return (size_t)(((a >> 3) * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

static bool addr_insert(addr_entry *t, unsigned bits, uintptr_t a, bucket *b) {
    size_t mask = ((size_t)1 << bits) - 1;
    for (size_t i = addr_slot(a, bits);; i = (i + 1) & mask) {
        if (t[i].addr == 0 || t[i].addr == a) {
            bool fresh = t[i].addr == 0;
            t[i].addr = a;
            t[i].b = b;
            return fresh;
        }
    }
}

/* Keeps the table at most half full, growing it by doubling. */
static bool addr_reserve(void) {
    if (addr_table && (addr_count + 1) * 2 <= ((size_t)1 << addr_bits))
        return true;
    unsigned bits = addr_table ? addr_bits + 1 : ADDR_TABLE_MIN_BITS;
    addr_entry *t = os_alloc_metadata(sizeof(addr_entry) << bits);
    if (!t)
        return false;
    if (addr_table) {
        for (size_t i = 0; i < ((size_t)1 << addr_bits); i++)
            if (addr_table[i].addr)
                addr_insert(t, bits, addr_table[i].addr, addr_table[i].b);
        os_free_metadata(addr_table, sizeof(addr_entry) << addr_bits);
    }
    addr_table = t;
    addr_bits = bits;
    return true;
}

static bucket *addr_remove(uintptr_t a) {
    if (!addr_table)
        return NULL;
    size_t mask = ((size_t)1 << addr_bits) - 1;
    size_t i = addr_slot(a, addr_bits);
    while (addr_table[i].addr != a) {
        if (addr_table[i].addr == 0)
            return NULL;
        i = (i + 1) & mask;
    }
    bucket *b = addr_table[i].b;
    /* Backward shift: pull later entries of the probe run into the hole. */
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        if (addr_table[j].addr == 0)
            break;
        size_t home = addr_slot(addr_table[j].addr, addr_bits);
        /* j's entry may move to i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            addr_table[i] = addr_table[j];
            i = j;
        }
    }
    addr_table[i].addr = 0;
    addr_table[i].b = NULL;
    addr_count--;
    return b;
}

/* ---- the hooks ---- */


static void fork_prepare(void) { gm_lock(&prof_lock); }
static void fork_parent(void) { gm_unlock(&prof_lock); }
static void fork_child(void) { gm_lock_reinit(&prof_lock); }

/* Registered the first time prof_lock may be taken (a sample, a profile
 * written, a report), outside any lock: pthread_atfork allocates. */
static void ensure_fork_handlers(void) {
    if (!__atomic_load_n(&fork_handlers_registered, __ATOMIC_ACQUIRE) &&
        !__atomic_exchange_n(&fork_handlers_registered, 1, __ATOMIC_ACQ_REL))
        pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static bool options_known(void) { return __atomic_load_n(&gm_obs.profile_rate, __ATOMIC_ACQUIRE) != 0; }

static void prof_unlock(void);

/* The sample's stack: remembered, or unwound (without prof_lock, which it
 * returns held). */
static GM_NOINLINE int sample_stack(uintptr_t *pcs, uintptr_t start) {
    uintptr_t anchor = (uintptr_t)pcs; /* fixed distance above the caller's stack pointer */
    gm_lock(&prof_lock);
    int n = memo_lookup(pcs, start, anchor);
    if (n) {
        memo_hits++;
        return n;
    }
    memo_misses++;
    prof_unlock();
    uintptr_t slots[MAX_STACK];
    n = unwind_stack(pcs, slots, start);
    gm_lock(&prof_lock);
    if (n)
        memo_store(pcs, slots, n, start, anchor);
    if (!n) { /* no unwind information on the way: keep the caller at least */
        pcs[0] = start;
        n = 1;
    }
    return n;
}

static inline __attribute__((always_inline)) void record_sample(void *p, size_t size, uintptr_t start) {
    ensure_fork_handlers(); /* its allocations are not sampled: prof_busy is set */
    mspan *s = spanof(p);
    if (!s)
        return;
    uintptr_t pcs[MAX_STACK];
    int n = sample_stack(pcs, start);
    bucket *b = bucket_for(pcs, n, size);
    if (b && addr_reserve()) {
        if (addr_insert(addr_table, addr_bits, (uintptr_t)p, b))
            addr_count++;
        b->allocs++;
        /* After the insert: whoever frees p saw p handed out, so sees this. */
        uint8_t n = __atomic_load_n(&s->sampled, __ATOMIC_RELAXED);
        if (n < SPAN_SAMPLED_STICKY)
            __atomic_store_n(&s->sampled, (uint8_t)(n + 1), __ATOMIC_RELEASE);
        mspan_leave_fast_path(s, gm_tls.mcache);
    }
    prof_unlock();
}

void *mprof_alloc_slow(void *p, size_t size, void *ret_addr) {
    if (prof_busy) { /* the profiler's own allocations (pthread_atfork) */
        gm_tls.prof_countdown = COUNTDOWN_RECHECK;
        return p;
    }
    if (!options_known()) {
        gm_tls.prof_countdown = COUNTDOWN_RECHECK;
        return p;
    }
    if (!gm_obs.profile) {
        gm_tls.prof_countdown = COUNTDOWN_NEVER;
        return p;
    }
    size_t rate = gm_obs.profile_rate;
    if (!prof_thread_ready) {
        /* A thread's first allocation only starts its countdown (Go draws
         * the first one when the cache is made), except at rate 1. */
        prof_thread_ready = true;
        if (rate > 1) {
            gm_tls.prof_countdown = next_sample(rate);
            return p;
        }
    }
    gm_tls.prof_countdown = next_sample(rate);
    if (!p)
        return p;
    int saved = errno;
    prof_busy = true;
    record_sample(p, size, (uintptr_t)ret_addr);
    prof_busy = false;
    errno = saved;
    return p;
}

void mprof_free(mspan *s, const void *p) {
    gm_lock(&prof_lock);
    bucket *b = addr_remove((uintptr_t)p);
    if (b) {
        b->frees++;
        /* The span's last sample gone: its frees are fast again. */
        uint8_t n = __atomic_load_n(&s->sampled, __ATOMIC_RELAXED);
        if (n > 0 && n < SPAN_SAMPLED_STICKY)
            __atomic_store_n(&s->sampled, (uint8_t)(n - 1), __ATOMIC_RELAXED);
    }
    prof_unlock();
}

void mprof_stack_stats(uint64_t *remembered, uint64_t *unwound) {
    gm_lock(&prof_lock);
    *remembered = memo_hits;
    *unwound = memo_misses;
    prof_unlock();
}

void mprof_inuse(uint64_t *objects, uint64_t *bytes) {
    uint64_t o = 0, by = 0;
    ensure_fork_handlers();
    gm_lock(&prof_lock);
    for (bucket *b = all_buckets; b; b = b->allnext) {
        o += b->allocs - b->frees;
        by += (b->allocs - b->frees) * b->size;
    }
    prof_unlock();
    *objects = o;
    *bytes = by;
}

/* ---- gzip without compression ---- */

#define STORED_MAX 65535 /* the most bytes a stored deflate block holds */

static struct {
    int fd;
    bool err;
    uint32_t crc, isize;
    size_t n;
    uint8_t buf[STORED_MAX];
} gz;

static uint32_t crc_table[256];

static void crc_init(void) {
    if (crc_table[1])
        return;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static void raw_write(const void *p, size_t n) {
    const char *s = p;
    while (n > 0 && !gz.err) {
        ssize_t w = write(gz.fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            gz.err = true;
            break;
        }
        s += w;
        n -= (size_t)w;
    }
}

static void gz_block(bool final) {
    uint8_t h[5] = {final ? 1 : 0, (uint8_t)gz.n, (uint8_t)(gz.n >> 8), (uint8_t)~gz.n,
                    (uint8_t)(~gz.n >> 8)};
    raw_write(h, sizeof h);
    raw_write(gz.buf, gz.n);
    gz.n = 0;
}

static void gz_open(int fd) {
    static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 /* Unix */};
    crc_init();
    gz.fd = fd;
    gz.err = false;
    gz.crc = 0xFFFFFFFFu;
    gz.isize = 0;
    gz.n = 0;
    raw_write(header, sizeof header);
}

static void gz_put(const void *p, size_t n) {
    const uint8_t *s = p;
    gz.isize += (uint32_t)n;
    for (size_t i = 0; i < n; i++)
        gz.crc = crc_table[(gz.crc ^ s[i]) & 0xff] ^ (gz.crc >> 8);
    while (n > 0) {
        size_t k = STORED_MAX - gz.n < n ? STORED_MAX - gz.n : n;
        memcpy(gz.buf + gz.n, s, k);
        gz.n += k;
        s += k;
        n -= k;
        if (gz.n == STORED_MAX)
            gz_block(false);
    }
}

static bool gz_close(void) {
    gz_block(true);
    uint32_t crc = ~gz.crc;
    uint8_t t[8] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24),
                    (uint8_t)gz.isize, (uint8_t)(gz.isize >> 8), (uint8_t)(gz.isize >> 16),
                    (uint8_t)(gz.isize >> 24)};
    raw_write(t, sizeof t);
    return !gz.err;
}

/* ---- protobuf ---- */

enum { WIRE_VARINT = 0, WIRE_BYTES = 2 };

typedef struct pb {
    uint8_t *b;
    size_t n, cap;
} pb;

static void pb_varint(pb *m, uint64_t v) {
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        if (v)
            byte |= 0x80;
        if (m->n < m->cap)
            m->b[m->n] = byte;
        m->n++;
    } while (v);
}

static void pb_int(pb *m, unsigned field, uint64_t v) {
    pb_varint(m, (uint64_t)field << 3 | WIRE_VARINT);
    pb_varint(m, v);
}

static void pb_bytes(pb *m, unsigned field, const void *p, size_t n) {
    pb_varint(m, (uint64_t)field << 3 | WIRE_BYTES);
    pb_varint(m, n);
    for (size_t i = 0; i < n; i++, m->n++)
        if (m->n < m->cap)
            m->b[m->n] = ((const uint8_t *)p)[i];
}

/* Emits message m as field `field` of the top-level Profile. */
static void emit_msg(unsigned field, const pb *m) {
    uint8_t head[16];
    pb h = {head, 0, sizeof head};
    pb_varint(&h, (uint64_t)field << 3 | WIRE_BYTES);
    pb_varint(&h, m->n);
    gz_put(head, h.n);
    gz_put(m->b, m->n < m->cap ? m->n : m->cap);
}

/* profile.proto field numbers */
enum {
    P_SAMPLE_TYPE = 1, P_SAMPLE = 2, P_MAPPING = 3, P_LOCATION = 4, P_STRING = 6,
    P_TIME = 9, P_PERIOD_TYPE = 11, P_PERIOD = 12,
};
enum { VT_TYPE = 1, VT_UNIT = 2 };
enum { S_LOCATION = 1, S_VALUE = 2, S_LABEL = 3 };
enum { L_KEY = 1, L_NUM = 3, L_NUM_UNIT = 4 };
enum { M_ID = 1, M_START = 2, M_LIMIT = 3, M_OFFSET = 4, M_FILE = 5 };
enum { LOC_ID = 1, LOC_MAPPING = 2, LOC_ADDRESS = 3 };

/* The fixed strings, at these indexes of the string table; the mappings'
 * file names follow. */
static const char *const fixed_strings[] = {"", "alloc_objects", "count", "alloc_space", "bytes",
                                            "inuse_objects", "inuse_space", "space"};
enum { STR_ALLOC_OBJECTS = 1, STR_COUNT, STR_ALLOC_SPACE, STR_BYTES, STR_INUSE_OBJECTS,
       STR_INUSE_SPACE, STR_SPACE, STR_FIXED };

static void emit_value_type(unsigned field, uint64_t type, uint64_t unit) {
    uint8_t buf[16];
    pb m = {buf, 0, sizeof buf};
    pb_int(&m, VT_TYPE, type);
    pb_int(&m, VT_UNIT, unit);
    emit_msg(field, &m);
}

/* ---- mappings ---- */

#define MAX_MAPPINGS 512
#define MAP_NAME_MAX 256

static struct mapping {
    uintptr_t start, end, offset;
    char name[MAP_NAME_MAX];
} maps[MAX_MAPPINGS];
static int nmaps;

static uintptr_t parse_hex(const char **s) {
    uintptr_t v = 0;
    for (;; (*s)++) {
        char c = **s;
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16;
        if (d == 16)
            return v;
        v = v << 4 | d;
    }
}

/* One line of /proc/self/maps: "start-end perms offset dev inode   path". */
static void parse_map_line(const char *line) {
    const char *s = line;
    uintptr_t start = parse_hex(&s);
    if (*s++ != '-')
        return;
    uintptr_t end = parse_hex(&s);
    if (*s++ != ' ' || strlen(s) < 5 || s[2] != 'x' || nmaps == MAX_MAPPINGS)
        return;
    s += 5;
    uintptr_t offset = parse_hex(&s);
    for (int field = 0; field < 2 && *s; field++) { /* dev, inode */
        while (*s == ' ')
            s++;
        while (*s && *s != ' ')
            s++;
    }
    while (*s == ' ')
        s++;
    struct mapping *m = &maps[nmaps++];
    m->start = start;
    m->end = end;
    m->offset = offset;
    size_t n = strlen(s);
    if (n >= MAP_NAME_MAX)
        n = MAP_NAME_MAX - 1;
    memcpy(m->name, s, n);
    m->name[n] = 0;
}

static bool map_line(const char *line, void *arg) {
    (void)arg;
    parse_map_line(line);
    return true;
}

static void read_maps(void) {
    nmaps = 0;
    os_each_map_line(map_line, NULL);
}

static int mapping_of(uintptr_t pc) {
    for (int i = 0; i < nmaps; i++)
        if (pc >= maps[i].start && pc < maps[i].end)
            return i + 1;
    return 0;
}

/* ---- the profile ---- */

typedef struct { uintptr_t pc; uint64_t id; } loc_entry;

/* Location id of pc, emitting the Location when it is new. */
static uint64_t location_id(loc_entry *t, unsigned bits, uint64_t *next_id, uintptr_t pc) {
    size_t mask = ((size_t)1 << bits) - 1;
    size_t i = addr_slot(pc, bits);
    while (t[i].pc && t[i].pc != pc)
        i = (i + 1) & mask;
    if (t[i].pc)
        return t[i].id;
    t[i].pc = pc;
    t[i].id = (*next_id)++;
    uint8_t buf[64];
    pb m = {buf, 0, sizeof buf};
    pb_int(&m, LOC_ID, t[i].id);
    int map = mapping_of(pc);
    if (map)
        pb_int(&m, LOC_MAPPING, (uint64_t)map);
    /* A return address: the call is the instruction before it. */
    pb_int(&m, LOC_ADDRESS, pc - 1);
    emit_msg(P_LOCATION, &m);
    return t[i].id;
}

/* prof_lock held. */
static bool write_profile_locked(int fd) {
    read_maps();
    size_t rate = gm_obs.profile_rate;
    gz_open(fd);
    for (size_t i = 0; i < sizeof fixed_strings / sizeof *fixed_strings; i++) {
        uint8_t buf[32];
        pb m = {buf, 0, sizeof buf};
        pb_bytes(&m, P_STRING, fixed_strings[i], strlen(fixed_strings[i]));
        gz_put(buf, m.n);
    }
    for (int i = 0; i < nmaps; i++) {
        uint8_t buf[MAP_NAME_MAX + 8];
        pb m = {buf, 0, sizeof buf};
        pb_bytes(&m, P_STRING, maps[i].name, strlen(maps[i].name));
        gz_put(buf, m.n);
    }
    emit_value_type(P_SAMPLE_TYPE, STR_ALLOC_OBJECTS, STR_COUNT);
    emit_value_type(P_SAMPLE_TYPE, STR_ALLOC_SPACE, STR_BYTES);
    emit_value_type(P_SAMPLE_TYPE, STR_INUSE_OBJECTS, STR_COUNT);
    emit_value_type(P_SAMPLE_TYPE, STR_INUSE_SPACE, STR_BYTES);
    emit_value_type(P_PERIOD_TYPE, STR_SPACE, STR_BYTES);
    {
        uint8_t buf[32];
        pb m = {buf, 0, sizeof buf};
        pb_int(&m, P_PERIOD, rate);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        pb_int(&m, P_TIME, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
        gz_put(buf, m.n);
    }
    for (int i = 0; i < nmaps; i++) {
        uint8_t buf[64];
        pb m = {buf, 0, sizeof buf};
        pb_int(&m, M_ID, (uint64_t)i + 1);
        pb_int(&m, M_START, maps[i].start);
        pb_int(&m, M_LIMIT, maps[i].end);
        pb_int(&m, M_OFFSET, maps[i].offset);
        pb_int(&m, M_FILE, (uint64_t)STR_FIXED + (uint64_t)i);
        emit_msg(P_MAPPING, &m);
    }

    /* Locations are numbered as first met; the scratch table maps pc -> id. */
    size_t frames = 0;
    for (bucket *b = all_buckets; b; b = b->allnext)
        frames += b->nstk;
    unsigned bits = 4;
    while (((size_t)1 << bits) < frames * 2 + 2)
        bits++;
    size_t tbytes = gm_align_up(sizeof(loc_entry) << bits, 4096);
    loc_entry *t = os_alloc_metadata(tbytes);
    if (!t)
        return false;
    uint64_t next_id = 1;
    for (bucket *b = all_buckets; b; b = b->allnext) {
        uint64_t ids[MAX_STACK];
        for (uint32_t i = 0; i < b->nstk; i++)
            ids[i] = location_id(t, bits, &next_id, b->stk[i]);
        uint8_t buf[MAX_STACK * 10 + 128], inner[MAX_STACK * 10 + 16];
        pb m = {buf, 0, sizeof buf}, in = {inner, 0, sizeof inner};
        for (uint32_t i = 0; i < b->nstk; i++)
            pb_varint(&in, ids[i]);
        pb_bytes(&m, S_LOCATION, inner, in.n);
        int64_t v[4];
        uint64_t live = b->allocs - b->frees;
        scale_sample(b->allocs, b->allocs * b->size, rate, &v[0], &v[1]);
        scale_sample(live, live * b->size, rate, &v[2], &v[3]);
        in.n = 0;
        for (int i = 0; i < 4; i++)
            pb_varint(&in, (uint64_t)v[i]);
        pb_bytes(&m, S_VALUE, inner, in.n);
        uint8_t lbuf[32];
        pb l = {lbuf, 0, sizeof lbuf};
        pb_int(&l, L_KEY, STR_BYTES);
        pb_int(&l, L_NUM, b->size);
        pb_bytes(&m, S_LABEL, lbuf, l.n);
        emit_msg(P_SAMPLE, &m);
    }
    os_free_metadata(t, tbytes);
    return gz_close();
}

static int write_profile_file(const char *path) {
    char tmp[GM_PATH_MAX + 16];
    size_t n = strlen(path);
    if (n + 8 >= sizeof tmp)
        return -1;
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    bool ok = write_profile_locked(fd);
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int mprof_write_path(const char *path) {
    int saved = errno;
    ensure_fork_handlers();
    gm_lock(&prof_lock);
    int r = write_profile_file(path);
    prof_unlock();
    errno = saved;
    return r;
}

/* The configured profile file, for this process (prof_lock held). */
static void write_configured_locked(void) {
    char path[GM_PATH_MAX];
    if (gm_obs.profile_path[0] && obs_expand_path(path, sizeof path, gm_obs.profile_path))
        write_profile_file(path);
}

static void prof_unlock(void) {
    /* A signal that found the lock held left the write to us. */
    while (__atomic_load_n(&prof_write_pending, __ATOMIC_ACQUIRE) &&
           __atomic_exchange_n(&prof_write_pending, 0, __ATOMIC_ACQ_REL))
        write_configured_locked();
    gm_unlock(&prof_lock);
}

static void on_profile_signal(int sig) {
    (void)sig;
    int saved = errno;
    if (gm_trylock(&prof_lock)) {
        write_configured_locked();
        prof_unlock();
    } else {
        __atomic_store_n(&prof_write_pending, 1, __ATOMIC_RELEASE);
    }
    errno = saved;
}

/* Called once options are read: the signal handler, if asked for. */
void mprof_install_signal(void) {
    if (!gm_obs.profile || gm_obs.profile_signal <= 0)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_profile_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(gm_obs.profile_signal, &sa, NULL);
}

/* ---- the leak report ---- */

#define LEAK_MAX_STACKS 25
#define LEAK_MAX_FRAMES 16

typedef struct { bucket *first; uint64_t objects, bytes; } leak_group;

static int stack_cmp(const bucket *a, const bucket *b) {
    if (a->stack_hash != b->stack_hash)
        return a->stack_hash < b->stack_hash ? -1 : 1;
    if (a->nstk != b->nstk)
        return a->nstk < b->nstk ? -1 : 1;
    return memcmp(a->stk, b->stk, a->nstk * sizeof(uintptr_t));
}

/* Heapsort: no allocation, no recursion. */
static void sort_buckets(bucket **v, size_t n) {
    for (size_t k = n / 2; k-- > 0;) {
        for (size_t i = k;;) {
            size_t c = 2 * i + 1;
            if (c >= n) break;
            if (c + 1 < n && stack_cmp(v[c], v[c + 1]) < 0) c++;
            if (stack_cmp(v[i], v[c]) >= 0) break;
            bucket *t = v[i]; v[i] = v[c]; v[c] = t;
            i = c;
        }
    }
    for (size_t end = n; end-- > 1;) {
        bucket *t = v[0]; v[0] = v[end]; v[end] = t;
        for (size_t i = 0;;) {
            size_t c = 2 * i + 1;
            if (c >= end) break;
            if (c + 1 < end && stack_cmp(v[c], v[c + 1]) < 0) c++;
            if (stack_cmp(v[i], v[c]) >= 0) break;
            bucket *x = v[i]; v[i] = v[c]; v[c] = x;
            i = c;
        }
    }
}

static void print_frame(int fd, int i, uintptr_t pc) {
    char line[512];
    Dl_info info;
    int n;
    if (dladdr((void *)(pc - 1), &info) && info.dli_fname) {
        const char *mod = strrchr(info.dli_fname, '/');
        mod = mod ? mod + 1 : info.dli_fname;
        if (info.dli_sname)
            n = gm_snprintf(line, sizeof line, "    #%-2d %p %s+0x%zx (%s+0x%zx)\n", i, (void *)pc,
                            info.dli_sname, (size_t)(pc - (uintptr_t)info.dli_saddr), mod,
                            (size_t)(pc - 1 - (uintptr_t)info.dli_fbase));
        else
            n = gm_snprintf(line, sizeof line, "    #%-2d %p (%s+0x%zx)\n", i, (void *)pc, mod,
                            (size_t)(pc - 1 - (uintptr_t)info.dli_fbase));
    } else {
        n = gm_snprintf(line, sizeof line, "    #%-2d %p\n", i, (void *)pc);
    }
    gm_write_all(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void mprof_leak_report(int fd) {
    char line[256];
    int n;
    ensure_fork_handlers();
    gm_lock(&prof_lock);
    size_t rate = gm_obs.profile_rate;
    size_t live = 0;
    for (bucket *b = all_buckets; b; b = b->allnext)
        live += b->allocs != b->frees;
    size_t vbytes = gm_align_up((live + 1) * (sizeof(bucket *) + sizeof(leak_group)), 4096);
    bucket **v = live ? os_alloc_metadata(vbytes) : NULL;
    leak_group *g = v ? (leak_group *)(v + live) : NULL;
    size_t k = 0, ng = 0;
    uint64_t total_objects = 0, total_bytes = 0;
    if (v) {
        for (bucket *b = all_buckets; b; b = b->allnext)
            if (b->allocs != b->frees)
                v[k++] = b;
        sort_buckets(v, k);
        for (size_t i = 0; i < k; i++) {
            int64_t c, by;
            uint64_t l = v[i]->allocs - v[i]->frees;
            scale_sample(l, l * v[i]->size, rate, &c, &by);
            if (ng == 0 || stack_cmp(g[ng - 1].first, v[i]) != 0)
                g[ng++] = (leak_group){.first = v[i]};
            g[ng - 1].objects += (uint64_t)c;
            g[ng - 1].bytes += (uint64_t)by;
            total_objects += (uint64_t)c;
            total_bytes += (uint64_t)by;
        }
        /* Largest first: a selection of the top few is enough. */
        for (size_t i = 0; i < ng && i < LEAK_MAX_STACKS; i++) {
            size_t best = i;
            for (size_t j = i + 1; j < ng; j++)
                if (g[j].bytes > g[best].bytes)
                    best = j;
            leak_group t = g[i]; g[i] = g[best]; g[best] = t;
        }
    }
    n = gm_snprintf(line, sizeof line,
                    "gomalloc leak report (pid %d): %llu bytes in %llu objects still allocated "
                    "at exit, from %zu call stacks%s\n",
                    (int)getpid(), (unsigned long long)total_bytes,
                    (unsigned long long)total_objects, ng,
                    rate > 1 ? " (sampled: estimates; GOMALLOC_PROFILE_RATE=1 is exact)" : "");
    gm_write_all(fd, line, (size_t)n);
    for (size_t i = 0; i < ng && i < LEAK_MAX_STACKS; i++) {
        n = gm_snprintf(line, sizeof line, "%llu bytes in %llu objects allocated at:\n",
                        (unsigned long long)g[i].bytes, (unsigned long long)g[i].objects);
        gm_write_all(fd, line, (size_t)n);
        bucket *b = g[i].first;
        for (uint32_t f = 0; f < b->nstk && f < LEAK_MAX_FRAMES; f++)
            print_frame(fd, (int)f, b->stk[f]);
    }
    if (ng > LEAK_MAX_STACKS) {
        uint64_t rest = 0;
        for (size_t i = LEAK_MAX_STACKS; i < ng; i++)
            rest += g[i].bytes;
        n = gm_snprintf(line, sizeof line, "... and %llu bytes from %zu more call stacks\n",
                        (unsigned long long)rest, ng - LEAK_MAX_STACKS);
        gm_write_all(fd, line, (size_t)n);
    }
    if (v)
        os_free_metadata(v, vbytes);
    prof_unlock();
}
