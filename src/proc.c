/*
 * proc: thread caches from birth to death, and the process events around
 * them (Go's procresize and fork hooks, for threads instead of Ps).
 *
 * Each thread owns one mcache, reached through an initial-exec TLS pointer
 * (one word of static TLS, so dlopen() of the library works too).  A new
 * thread's pointer starts at the bootstrap cache, whose spans are the empty
 * span: the first allocation falls into the slow path, which initialises the
 * allocator if needed and gives the thread a cache of its own.  A pthread key
 * destructor gives the spans back when the thread exits; allocations after
 * that (from later destructors) go through a shared orphan cache under a lock.
 *
 * Caches live in slabs that are never unmapped, and a retired cache is
 * reused for a later thread: a stale pointer to one is always safe to read.
 *
 * Threads.  gomalloc relies on nothing but pthreads: every word other
 * threads may write is updated with atomic instructions, whatever the
 * process's thread count (no single-thread shortcuts that a thread made
 * with a raw clone() could break).  A thread must have a TLS block of its
 * own (pthread_create, or clone with CLONE_SETTLS and a libc-made TLS): two
 * threads sharing one TLS pointer would share one cache.
 *
 * fork.  The prepare handler takes every allocator lock; no allocator state
 * is then being changed under a lock.  A cache's own state may still be
 * anything in the child (its thread may have been anywhere in its fast or
 * slow paths), so the child trusts none of the other threads' caches: every
 * span not owned by the surviving thread (or the orphan cache) is rebuilt
 * from its bitmaps and becomes mcentral's, and those caches are retired.
 *
 * Idle threads.  A thread that stops calling keeps its spans; at most every
 * IDLE_LOOK_NS the caches are looked at (by the background thread's tick,
 * and by a thread about to take a span from mcentral or fresh pages), and
 * one that has not refilled since the last look gives back the pages only
 * other threads' frees occupy (proc_release_idle_caches;
 * mcache_release_others_freed_pages).
 *
 * Locking: the registry lock for creating and retiring caches, for the
 * statistics and for the idle look (held while the caches are walked, not
 * while pages go back; malloc_trim holds it throughout); the orphan lock for
 * the orphan cache; init_lock for start-up.
 * Order at fork: init, registry, orphan, then mcentral's and mheap's.
 */
#define _GNU_SOURCE
#include "proc.h"

#include <pthread.h>
#include <string.h>

#include "arena.h"
#include "options.h"
#include "os.h"
#include "tiny.h"

/* Statically initialised: malloc may run before any constructor. */
#define EMPTY_CACHE(k, stacks) { .alloc = { [0 ... GM_NUM_SPAN_CLASSES - 1] = &gm_empty_span }, \
                                 .stack_top = { [0 ... GM_NUM_SPAN_CLASSES - 1] = \
                                                    (listed_slot *)&gm_no_listed_slot }, \
                                 .stack = (stacks), .tiny_off = GM_TINY_BLOCK, .kind = (k) }
/* The orphan cache lists nothing (its stacks hold no slot: capacity 0), but
 * its slow path writes each class's bottom entry.  Zero-initialised, so it
 * costs no file-backed pages, and only the lines written become resident.
 * The bootstrap and dead caches never reach a listing. */
static slot_stack orphan_stacks[GM_NUM_SPAN_CLASSES];
static mcache bootstrap_mcache = EMPTY_CACHE(MCACHE_BOOTSTRAP, NULL);
static mcache dead_mcache = EMPTY_CACHE(MCACHE_DEAD, NULL);
static mcache orphan_mcache = EMPTY_CACHE(MCACHE_OWN, orphan_stacks);
static gm_lock_t orphan_lock = GM_LOCK_INIT;

__thread gm_thread_state gm_tls __attribute__((tls_model("initial-exec"))) = {
    .mcache = &bootstrap_mcache,
};

static gm_lock_t registry_lock = GM_LOCK_INIT;
static mcache *registry;        /* live caches */
static mcache *free_caches;     /* retired structs, linked by next_all */
static char *cache_slab, *cache_slab_end;
/* A cache made here is its struct, then its stacks' blocks, aligned to their
 * size: the slab is 4 KiB-aligned (os_alloc_metadata), and each cache's
 * share of it a multiple of a block. */
#define CACHE_STACKS_AT ((sizeof(mcache) + sizeof(slot_stack) - 1) & ~(sizeof(slot_stack) - 1))
#define CACHE_SIZE (CACHE_STACKS_AT + GM_NUM_SPAN_CLASSES * sizeof(slot_stack))
#define CACHE_SLAB ((size_t)1 << 20) /* several caches a mapping (about 150 KiB each) */
_Static_assert(CACHE_SLAB >= CACHE_SIZE, "a slab holds at least one cache");
_Static_assert(4096 % sizeof(slot_stack) == 0, "the stacks' blocks stay aligned");
static mcache_stats retired;    /* counters of exited threads */
/* Frees by threads without a cache of their own (atomic). */
static uint64_t shared_nfree[GM_NUM_SPAN_CLASSES];
static uint64_t shared_tiny_frees;
static uint64_t shared_remote_frees;

static gm_lock_t init_lock = GM_LOCK_INIT;
static int initialized;
static int atfork_registered;
static pthread_key_t thread_key;
static bool thread_key_ok;

static void thread_exit(void *arg);

static mcache *cache_create(void) {
    if (!mcache_global_init())
        return NULL;
    gm_lock(&registry_lock);
    mcache *mc = free_caches;
    if (mc) {
        free_caches = mc->next_all;
    } else {
        size_t sz = CACHE_SIZE;
        if ((size_t)(cache_slab_end - cache_slab) < sz) {
            cache_slab = os_alloc_metadata(CACHE_SLAB);
            cache_slab_end = cache_slab ? cache_slab + CACHE_SLAB : NULL;
        }
        if (!cache_slab) {
            gm_unlock(&registry_lock);
            return NULL;
        }
        mc = (mcache *)cache_slab;
        mc->stack = (slot_stack *)(cache_slab + CACHE_STACKS_AT);
        cache_slab += sz;
    }
    mcache_reset(mc, MCACHE_OWN);
    mc->next_all = registry;
    if (registry)
        registry->prev_all = mc;
    registry = mc;
    gm_unlock(&registry_lock);
    /* Publish before pthread_setspecific, which may itself allocate. */
    gm_tls.mcache = mc;
    if (thread_key_ok)
        pthread_setspecific(thread_key, mc);
    return mc;
}

static void retire_counters(const mcache *mc) {
    for (unsigned i = 0; i < GM_NUM_SPAN_CLASSES; i++) {
        retired.nmalloc[i] += mc->nmalloc[i];
        retired.nfree[i] += mc->nfree[i];
    }
    retired.tiny_allocs += mc->tiny_allocs;
    retired.tiny_frees += mc->tiny_frees;
    retired.refills += mc->refills;
    retired.remote_frees += mc->remote_frees;
    retired.large_hits += mc->pcache.hits;
    retired.large_kept += mc->pcache.kept;
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
    gm_tls.mcache = &dead_mcache;
    mcache_release_all(mc);
    gm_lock(&registry_lock);
    cache_retire_locked(mc);
    gm_unlock(&registry_lock);
}

/* ---- idle threads ---- */

/* How often caches are looked at for idleness: a cache that did not refill
 * between two looks (so for at least this long) counts as idle.  Short,
 * because what it serves is fast: in larson the main thread fills the pool
 * and then only waits, and the workers free all of it within a few
 * milliseconds while they fill their own spans; its pages must go back
 * while that happens, or the peak holds both.  Peak RSS of larson (3 runs,
 * medians, 1/2/4 threads): 10.7 / 10.9 / 15.8 MiB with looks 100 ms apart
 * from the background thread alone, 8.6 / 10.5 / 14.7 with 1 ms, 9.4 /
 * 10.1 / 14.5 with 5 ms, 10.2 / 11.8 / 15.3 with 20 ms.  A thread merely
 * waiting for a core counts as idle too: madvise calls in larson with 4
 * threads on 2 cores were 196 with 100 ms, 17,706 with 1 ms, 1,000 with 5
 * ms and 220 with 20 ms.  Only pages that hold nothing but other threads'
 * frees go back, so an owner that wakes up loses nothing it had. */
#define IDLE_LOOK_NS ((uint64_t)5000000)
/* Idle caches handled per look; the others wait for the next. */
#define IDLE_PER_LOOK 16

static uint64_t last_idle_look; /* atomic */

size_t proc_release_idle_caches(void) {
    uint64_t now = gm_nanotime(), last = __atomic_load_n(&last_idle_look, __ATOMIC_RELAXED);
    if (now - last < IDLE_LOOK_NS ||
        !__atomic_compare_exchange_n(&last_idle_look, &last, now, false, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
        return 0;
    mcache *idle[IDLE_PER_LOOK];
    int n = 0;
    gm_lock(&registry_lock);
    for (mcache *mc = registry; mc; mc = mc->next_all) {
        uint64_t refills = __atomic_load_n(&mc->refills, __ATOMIC_RELAXED);
        if (refills != mc->idle_mark)
            mc->idle_mark = refills;
        else if (mc != gm_tls.mcache && n < IDLE_PER_LOOK &&
                 __atomic_load_n(&mc->revisit, __ATOMIC_RELAXED))
            idle[n++] = mc;
    }
    gm_unlock(&registry_lock);
    /* Outside the lock (madvise).  Cache structs are never unmapped, and
     * one that has since been retired or reused is still safe to ask: its
     * revisit stack holds only spans of its current owner, if any. */
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += mcache_release_others_freed_pages(idle[i]);
    return bytes;
}

size_t proc_release_others_pages(void) {
    size_t bytes = 0;
    gm_lock(&registry_lock);
    for (mcache *mc = registry; mc; mc = mc->next_all)
        if (mc != gm_tls.mcache)
            bytes += mcache_release_others_freed_pages(mc);
    gm_unlock(&registry_lock);
    return bytes;
}

mcache *proc_own_cache(void) {
    mcache *mc = gm_tls.mcache;
    if (mc->kind == MCACHE_BOOTSTRAP) {
        mcache *own = cache_create();
        if (own)
            mc = own;
    }
    return mc;
}

void *proc_alloc_without_cache(mcache *mc, unsigned spc, size_t tiny_size) {
    if (mc->kind == MCACHE_BOOTSTRAP) {
        mc = cache_create();
        if (!mc)
            return NULL;
        return tiny_size ? tiny_alloc(mc, tiny_size) : mcache_alloc(mc, spc);
    }
    gm_lock(&orphan_lock);
    void *p = tiny_size ? tiny_alloc(&orphan_mcache, tiny_size) : mcache_alloc(&orphan_mcache, spc);
    gm_unlock(&orphan_lock);
    return p;
}

void proc_count_shared_free(unsigned spc) {
    __atomic_fetch_add(&shared_nfree[spc], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&shared_remote_frees, 1, __ATOMIC_RELAXED);
}

void proc_count_shared_tiny_free(void) {
    __atomic_fetch_add(&shared_tiny_frees, 1, __ATOMIC_RELAXED);
}

/* ---- statistics ---- */

static void add_counters(mcache_stats *out, const mcache *mc) {
    for (unsigned i = 0; i < GM_NUM_SPAN_CLASSES; i++) {
        out->nmalloc[i] += __atomic_load_n(&mc->nmalloc[i], __ATOMIC_RELAXED);
        out->nfree[i] += __atomic_load_n(&mc->nfree[i], __ATOMIC_RELAXED);
    }
    out->tiny_allocs += __atomic_load_n(&mc->tiny_allocs, __ATOMIC_RELAXED);
    out->tiny_frees += __atomic_load_n(&mc->tiny_frees, __ATOMIC_RELAXED);
    out->refills += __atomic_load_n(&mc->refills, __ATOMIC_RELAXED);
    out->remote_frees += __atomic_load_n(&mc->remote_frees, __ATOMIC_RELAXED);
    out->spare_bytes += __atomic_load_n(&mc->empty_bytes, __ATOMIC_RELAXED);
    out->large_hits += __atomic_load_n(&mc->pcache.hits, __ATOMIC_RELAXED);
    out->large_kept += __atomic_load_n(&mc->pcache.kept, __ATOMIC_RELAXED);
    out->large_kept_bytes += __atomic_load_n(&mc->pcache.kept_bytes, __ATOMIC_RELAXED);
    out->large_kept_objects += __atomic_load_n(&mc->pcache.kept_objects, __ATOMIC_RELAXED);
}

void mcache_read_stats(mcache_stats *out) {
    mcentral_reclaim(); /* empty unowned spans are not "in use" */
    gm_lock(&registry_lock);
    *out = retired;
    for (mcache *mc = registry; mc; mc = mc->next_all)
        add_counters(out, mc);
    gm_unlock(&registry_lock);
    gm_lock(&orphan_lock);
    add_counters(out, &orphan_mcache);
    gm_unlock(&orphan_lock);
    for (unsigned i = 0; i < GM_NUM_SPAN_CLASSES; i++)
        out->nfree[i] += __atomic_load_n(&shared_nfree[i], __ATOMIC_RELAXED);
    out->tiny_frees += __atomic_load_n(&shared_tiny_frees, __ATOMIC_RELAXED);
    out->remote_frees += __atomic_load_n(&shared_remote_frees, __ATOMIC_RELAXED);
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

static bool survives_fork(const mspan *s) {
    mcache *owner = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
    return owner == &orphan_mcache || (owner != NULL && owner == gm_tls.mcache);
}

/* The child has one thread: the other threads' caches belong to nobody now.
 * Their spans are rebuilt from the bitmaps (whatever the caches' lists said
 * when the fork landed) and go to mcentral; their tiny blocks are given back
 * and the caches retired. */
static void fork_child(void) {
    mcentral_unlock_all_after_fork(true);
    gm_lock_reinit(&orphan_lock);
    gm_lock_reinit(&registry_lock);
    gm_lock_reinit(&init_lock);
    mcache *self = gm_tls.mcache;
    mcentral_rehome_after_fork(survives_fork);
    mcache_after_fork(self);
    mcache *mc = registry;
    while (mc) {
        mcache *next = mc->next_all;
        if (mc != self) {
            tiny_release(mc);
            cache_retire_locked(mc); /* reset when a new thread takes it */
        }
        mc = next;
    }
}

/* Set up at load time when we can: fork handlers registered before anyone
 * else's run last on fork's prepare side, so no other handler can allocate
 * while ours hold the allocator's locks. */
__attribute__((constructor(101))) static void init_at_load(void) {
    gm_lock(&init_lock);
    options_init(); /* environ is set by now, even if malloc ran before it */
    gm_unlock(&init_lock);
    mcache_global_init();
    mheap_start_background();
}

/* The background scavenger's work once a tick: the pages that idle
 * threads' spans hold only freed objects in go back, and on an idle heap
 * so do the unowned spans remote frees emptied. */
static void background_tick(bool heap_idle) {
    if (heap_idle)
        mcentral_reclaim();
    proc_release_idle_caches();
}

bool mcache_global_init(void) {
    if (likely(__atomic_load_n(&initialized, __ATOMIC_ACQUIRE)))
        return true;
    gm_lock(&init_lock);
    if (!initialized) {
        options_init();
        mspan_set_listed_probe(mcache_listed_fresh);
        if (!mheap_init()) {
            gm_unlock(&init_lock);
            return false;
        }
        /* Without a key, exiting threads cannot give their spans back: they
         * stay with the dead caches (a leak, reported once), never misused. */
        thread_key_ok = pthread_key_create(&thread_key, thread_exit) == 0;
        /* Unowned spans emptied by other threads' frees go back to mheap when
         * mcentral looks; an idle heap's background thread asks it to, and
         * looks for idle threads' pages every tick. */
        mheap_set_tick_work(background_tick);
        if (!thread_key_ok)
            gm_warn("pthread_key_create failed: exiting threads will keep their memory");
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
