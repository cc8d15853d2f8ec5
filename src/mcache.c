/*
 * mcache: the per-thread cache, with the tiny allocator.
 *
 * Each thread owns one mcache, reached through an initial-exec TLS pointer
 * (one word of static TLS, so dlopen() of the library works too).  A new
 * thread's pointer starts at the bootstrap cache, whose spans are the empty
 * span: the first allocation falls into the slow path, which initialises the
 * allocator if needed and gives the thread a cache of its own.  A pthread key
 * destructor gives the spans back when the thread exits; allocations after
 * that (from later destructors) go through a shared orphan cache under a lock.
 *
 * Tiny objects (Go's tiny allocator): requests under 16 bytes are cut from the
 * current 16-byte block, each aligned to the largest power of two not above
 * its size.  Unlike Go, pieces are freed one by one.  Per block, the span
 * keeps two words outside user memory: tiny_alloc (a bit at each piece's
 * first byte, and in the high half a bit at each piece's last byte, so a
 * piece's usable size is exact and never changes), written only by the cache
 * holding the block; and tiny_freed, set only by atomic OR: the starts of
 * freed pieces in its low half and, once the holder has moved on, the final
 * piece starts in its high half.  One word thus tells whether every piece is
 * freed and the block released, and whoever's atomic OR completes that
 * picture frees the block; nobody reads the span after losing that race.  The holder
 * frees the newest piece of its own block by taking it back (moving the
 * offset down), so a malloc/free pair of tiny objects stays in one block.
 *
 * Initialisation (mcache_global_init, first allocation or load time,
 * whichever is first) is the one place that sets up the tiers below directly:
 * options, mheap, the thread key, fork handlers, the background scavenger.
 *
 * Locking: none on the fast paths; the registry lock for creating and
 * retiring caches; mcentral's locks through its API.
 */
#define _GNU_SOURCE
#include "mcache.h"

#include <pthread.h>
#include <string.h>

#include "arena.h"
#include "options.h"
#include "os.h"

/* Statically initialised: malloc may run before any constructor. */
#define EMPTY_CACHE(k) { .alloc = { [0 ... GM_NUM_SPAN_CLASSES - 1] = &gm_empty_span }, \
                         .tiny_off = GM_TINY_BLOCK, .kind = (k) }
static mcache bootstrap_mcache = EMPTY_CACHE(MCACHE_BOOTSTRAP);
static mcache dead_mcache = EMPTY_CACHE(MCACHE_DEAD);
static mcache orphan_mcache = EMPTY_CACHE(MCACHE_OWN);
static gm_lock_t orphan_lock = GM_LOCK_INIT;

__thread mcache *gm_tls_mcache __attribute__((tls_model("initial-exec"))) = &bootstrap_mcache;

static gm_lock_t registry_lock = GM_LOCK_INIT;
static mcache *registry;        /* live caches */
static mcache *free_caches;     /* retired structs, linked by next_all */
static char *cache_slab, *cache_slab_end;
static mcache_stats retired;    /* counters of exited threads */
/* Frees by threads without a cache of their own (atomic). */
static uint64_t shared_nfree[GM_NUM_SPAN_CLASSES];
static uint64_t shared_tiny_frees;

static gm_lock_t init_lock = GM_LOCK_INIT;
static int initialized;
static int atfork_registered;
static pthread_key_t thread_key;

static void cache_reset(mcache *mc, uint8_t kind) {
    memset(mc, 0, sizeof *mc);
    for (unsigned i = 0; i < GM_NUM_SPAN_CLASSES; i++)
        mc->alloc[i] = &gm_empty_span;
    mc->tiny_off = GM_TINY_BLOCK;
    mc->kind = kind;
}

/* ---- span operations of the owner ---- */

/* The next free slot at or after freeindex, advancing the 64-slot window
 * (Go's nextFreeIndex); nelems when the span has none left. */
static uint32_t span_next_free(mspan *s) {
    uint64_t cache = s->alloc_cache;
    uint32_t fi = s->freeindex;
    while (cache == 0) {
        fi = (fi + 64) & ~63u;
        if (fi >= s->nelems) {
            __atomic_store_n(&s->freeindex, s->nelems, __ATOMIC_RELAXED);
            return s->nelems;
        }
        cache = ~*span_bits(s, fi >> 6, SPAN_ALLOC);
    }
    uint32_t bit = (uint32_t)__builtin_ctzll(cache);
    uint32_t idx = fi + bit;
    if (idx >= s->nelems) {
        s->alloc_cache = 0;
        __atomic_store_n(&s->freeindex, s->nelems, __ATOMIC_RELAXED);
        return s->nelems;
    }
    uint32_t next = idx + 1;
    if ((next & 63) == 0)
        s->alloc_cache = next < s->nelems ? ~*span_bits(s, next >> 6, SPAN_ALLOC) : 0;
    else
        s->alloc_cache = cache >> (bit + 1);
    __atomic_store_n(&s->freeindex, next, __ATOMIC_RELAXED);
    return idx;
}

/* Every slot has been handed out: take the frees (ours and other threads')
 * and start over from slot 0.  Returns the number of free slots found. */
static uint32_t span_sweep_exhausted(mspan *s) {
    uint32_t nfree = 0;
    uint32_t nw = (s->nelems + 63u) / 64u;
    for (uint32_t w = 0; w < nw; w++) {
        uint64_t full = ~(uint64_t)0;
        if (w == nw - 1 && (s->nelems & 63))
            full = ((uint64_t)1 << (s->nelems & 63)) - 1;
        uint64_t r = 0;
        if (__atomic_load_n(span_bits(s, w, SPAN_REMOTE), __ATOMIC_RELAXED))
            r = gm_exchange64(span_bits(s, w, SPAN_REMOTE), 0);
        uint64_t freed = (*span_bits(s, w, SPAN_LOCAL) | r) & full;
        __atomic_store_n(span_bits(s, w, SPAN_LOCAL), 0, __ATOMIC_RELAXED);
        __atomic_store_n(span_bits(s, w, SPAN_ALLOC), full & ~freed, __ATOMIC_RELAXED);
        nfree += (uint32_t)__builtin_popcountll(freed);
    }
    __atomic_store_n(&s->freeindex, 0, __ATOMIC_RELEASE);
    s->alloc_cache = ~*span_bits(s, 0, SPAN_ALLOC);
    /* Settle our count into live now, not only when we give the span back:
     * a thread may keep a span for ever while other threads free into it,
     * and neither count may drift without bound meanwhile. */
    gm_fetch_add64(&s->live, s->owner_delta);
    s->owner_delta = 0;
    return nfree;
}

/* ---- thread caches ---- */

static void thread_exit(void *arg);

static mcache *cache_create(void) {
    if (!mcache_global_init())
        return NULL;
    gm_lock(&registry_lock);
    mcache *mc = free_caches;
    if (mc) {
        free_caches = mc->next_all;
    } else {
        size_t sz = gm_align_up(sizeof(mcache), 64);
        if ((size_t)(cache_slab_end - cache_slab) < sz) {
            cache_slab = os_alloc_metadata(64 * 1024);
            cache_slab_end = cache_slab ? cache_slab + 64 * 1024 : NULL;
        }
        if (!cache_slab) {
            gm_unlock(&registry_lock);
            return NULL;
        }
        mc = (mcache *)cache_slab;
        cache_slab += sz;
    }
    cache_reset(mc, MCACHE_OWN);
    mc->next_all = registry;
    if (registry)
        registry->prev_all = mc;
    registry = mc;
    gm_unlock(&registry_lock);
    /* Publish before pthread_setspecific, which may itself allocate. */
    gm_tls_mcache = mc;
    pthread_setspecific(thread_key, mc);
    return mc;
}

/* Moves on from the current tiny block.  The cache forgets the block before
 * it touches the block's words, and adopts a new one only after they are
 * set (tiny_adopt): a fork() from another thread may copy this cache at any
 * instant, and the child gives the cache's block back (fork_child), so it
 * must never find a block without its words. */
static void tiny_release(mcache *mc) {
    uintptr_t block = mc->tiny;
    if (!block)
        return;
    uint32_t starts = mc->tiny_word & 0xffff;
    uint32_t *freed = mc->tiny_freed;
    __atomic_store_n(&mc->tiny, 0, __ATOMIC_RELEASE);
    mc->tiny_off = GM_TINY_BLOCK;
    mc->tiny_word = 0;
    mc->tiny_alloc = mc->tiny_freed = NULL;
    uint32_t old = gm_fetch_or32(freed, starts << 16);
    if ((old & 0xffff) == starts) {
        mspan *s = spanof((void *)block);
        mcache_free_small(s, (uint32_t)((block - s->base) / GM_TINY_BLOCK), "free");
    }
}

static void tiny_adopt(mcache *mc, uintptr_t block, uint32_t *alloc, uint32_t *freed) {
    __atomic_store_n(freed, 0, __ATOMIC_RELAXED);
    __atomic_store_n(alloc, 0, __ATOMIC_RELAXED);
    mc->tiny_off = 0;
    mc->tiny_word = 0;
    mc->tiny_alloc = alloc;
    mc->tiny_freed = freed;
    __atomic_store_n(&mc->tiny, block, __ATOMIC_RELEASE);
}

void mcache_flush(mcache *mc) {
    tiny_release(mc);
    for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES; spc++) {
        mspan *s = mc->alloc[spc];
        if (s != &gm_empty_span) {
            mc->alloc[spc] = &gm_empty_span;
            mcentral_uncache_span(s);
        }
    }
}

void mcache_trim(void) {
    mcache *mc = gm_tls_mcache;
    if (mc->kind == MCACHE_OWN)
        mcache_flush(mc);
    mcentral_release_spares();
}

static void retire_counters(const mcache *mc) {
    for (unsigned i = 0; i < GM_NUM_SPAN_CLASSES; i++) {
        retired.nmalloc[i] += mc->nmalloc[i];
        retired.nfree[i] += mc->nfree[i];
    }
    retired.tiny_allocs += mc->tiny_allocs;
    retired.tiny_frees += mc->tiny_frees;
    retired.refills += mc->refills;
}

/* Takes mc out of the registry; registry lock held. */
static void cache_retire_locked(mcache *mc) {
    retire_counters(mc);
    if (mc->prev_all)
        mc->prev_all->next_all = mc->next_all;
    else
        registry = mc->next_all;
    if (mc->next_all)
        mc->next_all->prev_all = mc->prev_all;
    mc->next_all = free_caches;
    free_caches = mc;
}

static void thread_exit(void *arg) {
    mcache *mc = arg;
    gm_tls_mcache = &dead_mcache;
    mcache_flush(mc);
    gm_lock(&registry_lock);
    cache_retire_locked(mc);
    gm_unlock(&registry_lock);
}

/* ---- slow paths ---- */

static void *alloc_without_own_cache(mcache *mc, unsigned spc, size_t tiny_size) {
    if (mc->kind == MCACHE_BOOTSTRAP) {
        mc = cache_create();
        if (!mc)
            return NULL;
        return tiny_size ? mcache_alloc_tiny(mc, tiny_size) : mcache_alloc(mc, spc);
    }
    gm_lock(&orphan_lock);
    void *p = tiny_size ? mcache_alloc_tiny(&orphan_mcache, tiny_size)
                        : mcache_alloc(&orphan_mcache, spc);
    gm_unlock(&orphan_lock);
    return p;
}

void *mcache_alloc_slow(mcache *mc, unsigned spc) {
    if (unlikely(mc->kind != MCACHE_OWN))
        return alloc_without_own_cache(mc, spc, 0);
    mspan *s = mc->alloc[spc];
    uint32_t idx;
    if (s != &gm_empty_span) {
        idx = span_next_free(s);
        if (idx < s->nelems)
            goto found;
        /* Keep the span if the sweep found a worthwhile number of free
         * slots (the same mark mcentral lists spans at); otherwise trade it
         * for one with more room. */
        uint32_t enough = s->nelems / 4 ? s->nelems / 4 : 1;
        if (span_sweep_exhausted(s) >= enough) {
            idx = span_next_free(s);
            goto found;
        }
        mc->alloc[spc] = &gm_empty_span;
        mcentral_uncache_span(s);
    }
    s = mcentral_cache_span(spc, mc);
    if (!s)
        return NULL;
    mc->alloc[spc] = s;
    mc->refills++;
    idx = span_next_free(s);
    if (unlikely(idx >= s->nelems))
        gm_fatal("internal error: mcentral handed out a full span", (void *)s->base);
found:
    s->owner_delta++;
    mc->nmalloc[spc]++;
    return (void *)(s->base + (uintptr_t)idx * s->elemsize);
}

void *mcache_alloc_tiny_slow(mcache *mc, size_t size) {
    if (unlikely(mc->kind != MCACHE_OWN))
        return alloc_without_own_cache(mc, 0, size);
    tiny_release(mc);
    void *block = mcache_alloc(mc, GM_TINY_SPAN_CLASS);
    if (!block)
        return NULL;
    mspan *s = mc->alloc[GM_TINY_SPAN_CLASS];
    uint32_t b = (uint32_t)(((uintptr_t)block - s->base) / GM_TINY_BLOCK);
    tiny_adopt(mc, (uintptr_t)block, &s->tiny_alloc[b], &s->tiny_freed[b]);
    return mcache_alloc_tiny(mc, size);
}

/* ---- frees ---- */

void mcache_bad_free(mspan *s, uint32_t idx, const char *caller) {
    gm_bad_pointer(caller, (void *)(s->base + (uintptr_t)idx * s->elemsize), true);
}

void mcache_free_foreign(mcache *mc, mspan *s, uint32_t idx, const char *caller) {
    if (mc->kind == MCACHE_OWN)
        mc->nfree[s->spanclass]++;
    else
        __atomic_fetch_add(&shared_nfree[s->spanclass], 1, __ATOMIC_RELAXED);
    mcentral_free_remote(s, idx, caller);
}

static uint32_t tiny_check(mspan *s, void *p, const char *caller, uint32_t *block) {
    uintptr_t off = (uintptr_t)p - s->base;
    uint32_t b = (uint32_t)(off / GM_TINY_BLOCK);
    uint32_t piece = (uint32_t)(off % GM_TINY_BLOCK);
    if (!span_slot_live(s, b))
        gm_bad_pointer(caller, p, true); /* its whole block was freed */
    if (!(__atomic_load_n(&s->tiny_alloc[b], __ATOMIC_ACQUIRE) & ((uint32_t)1 << piece)))
        gm_bad_pointer(caller, p, false);
    *block = b;
    return piece;
}

/* Freeing the newest piece of the block this thread is cutting from: take it
 * back by moving the block's offset down, with no atomic. */
static bool tiny_take_back(mcache *mc, mspan *s, uint32_t b, uint32_t piece) {
    uint32_t starts = mc->tiny_word & 0xffff;
    uint32_t bit = (uint32_t)1 << piece;
    if (!(starts & bit) || (starts >> piece) != 1)
        return false; /* not a piece, or not the newest one */
    if (__atomic_load_n(&s->tiny_freed[b], __ATOMIC_RELAXED) & bit)
        return false; /* already freed: let the checked path report it */
    uint32_t ends = mc->tiny_word >> 16;
    ends &= ~((uint32_t)1 << (31 - __builtin_clz(ends))); /* the newest piece ends last */
    uint32_t word = (starts & ~bit) | (ends << 16);
    mc->tiny_word = word;
    __atomic_store_n(mc->tiny_alloc, word, __ATOMIC_RELEASE);
    mc->tiny_off = piece;
    mc->tiny_frees++;
    return true;
}

void mcache_free_tiny(mspan *s, void *p, const char *caller) {
    mcache *mc = gm_tls_mcache;
    uintptr_t block = (uintptr_t)p & ~(uintptr_t)(GM_TINY_BLOCK - 1);
    if (mc->tiny == block &&
        tiny_take_back(mc, s, (uint32_t)((block - s->base) / GM_TINY_BLOCK),
                       (uint32_t)((uintptr_t)p % GM_TINY_BLOCK)))
        return;
    uint32_t b, piece = tiny_check(s, p, caller, &b);
    uint32_t bit = (uint32_t)1 << piece;
    uint32_t old = gm_fetch_or32(&s->tiny_freed[b], bit);
    if (old & bit)
        gm_bad_pointer(caller, p, true);
    if (mc->kind == MCACHE_OWN)
        mc->tiny_frees++;
    else
        __atomic_fetch_add(&shared_tiny_frees, 1, __ATOMIC_RELAXED);
    uint32_t now = old | bit;
    if ((now >> 16) && (now & 0xffff) == (now >> 16))
        mcache_free_small(s, b, caller);
}

size_t mcache_tiny_usable(mspan *s, void *p, const char *caller) {
    uint32_t b, piece = tiny_check(s, p, caller, &b);
    if (__atomic_load_n(&s->tiny_freed[b], __ATOMIC_ACQUIRE) & ((uint32_t)1 << piece))
        gm_bad_pointer(caller, p, true);
    uint32_t ends = __atomic_load_n(&s->tiny_alloc[b], __ATOMIC_ACQUIRE) >> 16;
    return (size_t)__builtin_ctz(ends >> piece) + 1;
}

/* ---- statistics ---- */

void mcache_read_stats(mcache_stats *out) {
    gm_lock(&registry_lock);
    *out = retired;
    for (mcache *mc = registry; mc; mc = mc->next_all) {
        for (unsigned i = 0; i < GM_NUM_SPAN_CLASSES; i++) {
            out->nmalloc[i] += __atomic_load_n(&mc->nmalloc[i], __ATOMIC_RELAXED);
            out->nfree[i] += __atomic_load_n(&mc->nfree[i], __ATOMIC_RELAXED);
        }
        out->tiny_allocs += __atomic_load_n(&mc->tiny_allocs, __ATOMIC_RELAXED);
        out->tiny_frees += __atomic_load_n(&mc->tiny_frees, __ATOMIC_RELAXED);
        out->refills += __atomic_load_n(&mc->refills, __ATOMIC_RELAXED);
    }
    gm_unlock(&registry_lock);
    for (unsigned i = 0; i < GM_NUM_SPAN_CLASSES; i++) {
        out->nmalloc[i] += orphan_mcache.nmalloc[i];
        out->nfree[i] += orphan_mcache.nfree[i];
    }
    for (unsigned i = 0; i < GM_NUM_SPAN_CLASSES; i++)
        out->nfree[i] += __atomic_load_n(&shared_nfree[i], __ATOMIC_RELAXED);
    out->tiny_frees += __atomic_load_n(&shared_tiny_frees, __ATOMIC_RELAXED);
    out->spare_bytes = mcentral_spare_bytes();
}

/* ---- initialisation and fork ---- */

static void fork_prepare(void) {
    gm_lock(&init_lock);
    gm_lock(&registry_lock);
    gm_lock(&orphan_lock);
    mcentral_lock_all_for_fork();
}

static void fork_parent(void) {
    mcentral_unlock_all_after_fork(false);
    gm_unlock(&orphan_lock);
    gm_unlock(&registry_lock);
    gm_unlock(&init_lock);
}

/* The child has one thread: the other threads' caches belong to nobody now,
 * so their spans go back to mcentral, as at thread exit. */
static void fork_child(void) {
    mcentral_unlock_all_after_fork(true);
    gm_lock_reinit(&orphan_lock);
    gm_lock_reinit(&registry_lock);
    gm_lock_reinit(&init_lock);
    mcache *self = gm_tls_mcache;
    mcache *mc = registry;
    while (mc) {
        mcache *next = mc->next_all;
        if (mc != self) {
            mcache_flush(mc);
            cache_retire_locked(mc);
        }
        mc = next;
    }
}

/* Set up at load time when we can: fork handlers registered before anyone
 * else's run last on fork's prepare side, so no other handler can allocate
 * while ours hold the allocator's locks. */
__attribute__((constructor(101))) static void init_at_load(void) {
    options_init(); /* environ is set by now, even if malloc ran before it */
    mcache_global_init();
    mheap_start_background();
}

bool mcache_global_init(void) {
    if (likely(__atomic_load_n(&initialized, __ATOMIC_ACQUIRE)))
        return true;
    gm_lock(&init_lock);
    if (!initialized) {
        options_init();
        if (!mheap_init()) {
            gm_unlock(&init_lock);
            return false;
        }
        pthread_key_create(&thread_key, thread_exit);
        __atomic_store_n(&initialized, 1, __ATOMIC_RELEASE);
    }
    gm_unlock(&init_lock);
    /* Registration may allocate, so it happens outside the lock, once. */
    if (!__atomic_exchange_n(&atfork_registered, 1, __ATOMIC_ACQ_REL)) {
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        mheap_start_background();
    }
    return true;
}
