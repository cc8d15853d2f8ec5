/*
 * mcache: the per-thread cache, and the spans it owns.
 *
 * Ownership (the C counterpart of Go's per-P mcache, under explicit free).
 * A span belongs to the cache that allocates from it until it is empty or
 * the thread exits; then it goes to mcentral (or mheap).  Per span class the
 * owner keeps:
 *   current  alloc[spc], the span the malloc fast path takes slots from;
 *   partial  owned spans with free slots, the next to become current;
 *   full     spans set aside because they had no free slot;
 *   empty    a few spares with no live object.
 * The owner's frees into any of its spans, set-aside ones included, are the
 * fast path (mspan.fast_owner == this cache): a bit test and set, and a push
 * onto the class's slot stack; only tiny
 * spans and spans holding profiler samples free off it.  Other threads'
 * frees set a bit in remote[] with one atomic OR (mspan.c); the owner
 * collects them when its current span has no free slot left of its own
 * frees (Go's sweep).  The
 * first such free into a set-aside span pushes the span onto this cache's
 * revisit stack, which the owner drains on its refills: no span is
 * stranded.  The owner's frees go onto a per-class slot stack, which its
 * malloc takes from, newest first (mcache.h); malloc_trim drops the stacks,
 * gives back the spans that leaves empty, and the pages of the owner's
 * spans that hold no object (only the holder may: it alone hands their
 * slots out).
 *
 * Bounds on what a cache holds back from other threads:
 *   - empty spans: MAX_EMPTY_PER_CLASS spares per class, and at most
 *     MAX_EMPTY_BYTES in all; the others go to mheap the moment they empty;
 *   - partial spans of a class the thread stopped allocating: given back to
 *     mcentral once the class has not refilled for IDLE_REFILLS of the
 *     cache's refills (checked every IDLE_CHECK refills);
 *   - listed slots (the slot stacks, mcache.h): at most 1 MiB of slots a
 *     class (GOMALLOC_THREAD_CACHE), and as many spans kept from emptying, one per
 *     slot at worst; dropped by malloc_trim, by an allocation that finds
 *     no memory, when the class is given back and at exit.
 * A thread that never allocates again keeps its spans until it exits, but
 * not the memory other threads' frees emptied in them: the pages of its
 * set-aside spans that hold only such frees go back to the OS once proc.c
 * finds it idle (mcache_release_others_freed_pages), and its next refill
 * collects those frees (a set-aside span is collected as it comes back).
 *
 * Locking: none on the fast paths and none for the cache's own lists (only
 * its thread touches them).  The revisit stack is pushed with a CAS by other
 * threads (release) and taken whole with an exchange by the owner (acquire),
 * or by a thread releasing an idle owner's pages, which pushes the chain
 * back the same way.
 * mcentral's locks through its API.
 */
#define _GNU_SOURCE
#include "mcache.h"

#include <sched.h>
#include <string.h>

#include "arena.h"
#include "options.h"
#include "tiny.h"
#include "proc.h"

/* Empty spares kept per thread.  Classes of 8 KiB and more hold one to four
 * objects per span, so a churn in them empties and refills spans all the
 * time; a few spares per class keep that off the heap lock and the page
 * allocator.  The total is small next to the heap retained anyway
 * (GOMALLOC_RETAIN_MB), and a class the thread stops using gives its spares
 * back (IDLE_REFILLS). */
#define MAX_EMPTY_PER_CLASS 4
#define MAX_EMPTY_BYTES ((size_t)512 << 10)
/* A class that has not refilled in this many of the cache's refills gives
 * its partial spans and spare back to mcentral; checked this often. */
#define IDLE_REFILLS 4096
#define IDLE_CHECK 1024

/* ---- the slot stacks (mcache.h) ---- */

/* A class's stack holds at most GOMALLOC_THREAD_CACHE bytes of slots (1
 * MiB unless set), and at most SLOT_STACK - 1 slots: a thread that stops
 * allocating keeps what its stacks list until it exits, trims or runs out
 * of memory, and this bounds it, at 26 MiB a thread with the default (127
 * slots of every class up to 8 KiB, 1 MiB of each larger one; 11 MiB when
 * stacks held 31 slots; in slots: the spans they keep from emptying are
 * the other part of the bound, in this file's opening).  Measured with
 * build/bench (5 or 3 interleaved runs, medians): thread-local churn of
 * 4 B-32 KiB, 1 thread, took 0.337 s and 17.1 MiB of peak RSS before the
 * stacks, 0.198 s and 10.1 MiB with 31 slots of every class, 0.202 s and
 * 12.5 MiB with 512 KiB a class (16 slots at 32 KiB), 0.214 s and 17.1
 * MiB with 256 KiB, 0.335 s with 32 KiB: the large classes are where
 * reuse pays, in time and in memory (a slot taken back is one not taken
 * from a span not yet touched).  A smaller stack starts higher in its
 * block: its bottom entry, always zero, is entry[SLOT_STACK - 1 -
 * capacity], and the pop and the full test are unchanged.  Set per cache
 * when it is set up, so it never changes under a stack. */
static unsigned capacity_for(unsigned spc) {
    size_t size = spc == GM_TINY_SPAN_CLASS ? GM_TINY_BLOCK : gm_class_size[spc];
    size_t n = size ? gm_opt.thread_cache_bytes / size : 0; /* class 0 (large) lists nothing */
    return n >= SLOT_STACK - 1 ? SLOT_STACK - 1 : n ? (unsigned)n : 1;
}

unsigned mcache_stack_capacity(const mcache *mc, unsigned spc) { return mc->stack_capacity[spc]; }

static listed_slot *stack_bottom(mcache *mc, unsigned spc) {
    return &mc->stack[spc].entry[SLOT_STACK - 1 - mc->stack_capacity[spc]];
}

static void stack_reset(mcache *mc, unsigned spc) { mc->stack_top[spc] = stack_bottom(mc, spc); }

unsigned mcache_listed(mcache *mc, unsigned spc) {
    listed_slot *top = mc->stack_top[spc];
    return top == &gm_no_listed_slot ? 0 : (unsigned)(top - stack_bottom(mc, spc));
}

/* What a cache's stacks point at until the first slow path of a class sets
 * its stack up (list_circulating): an empty entry.  No push can come first:
 * a cache frees on the fast path only into spans it got through its slow
 * path (refill is the only caller of mcentral_cache_span), and the slow
 * path always lists. */
const listed_slot gm_no_listed_slot;

/* Drops the entries [from, to) of a stack: the slots are only free now.
 * (Entries above the top are never read, so they are left as they are.) */
static void drop_listed(mcache *mc, const listed_slot *from, const listed_slot *to) {
    for (const listed_slot *e = from; e < to; e++) {
        mspan *s;
        if (mspan_unlist(e->ref, &s))
            mcache_span_emptied(mc, s);
    }
}

/* Drops spc's whole stack: before the class's spans leave the cache. */
static void forget_listed(mcache *mc, unsigned spc) {
    listed_slot *top = mc->stack_top[spc];
    if (top == &gm_no_listed_slot)
        return;
    stack_reset(mc, spc);
    drop_listed(mc, mc->stack_top[spc] + 1, top + 1);
}

void mcache_list_full(mcache *mc, uintptr_t spc, uintptr_t ref, const void *p) {
    /* The older half goes (a long run of frees keeps its newest), the rest
     * moves down, the new slot on top. */
    listed_slot *bottom = stack_bottom(mc, (unsigned)spc);
    unsigned capacity = mc->stack_capacity[spc];
    unsigned old = (capacity + 1) / 2, keep = capacity - old; /* old >= 1: room for the new one */
    drop_listed(mc, bottom + 1, bottom + 1 + old);
    memmove(bottom + 1, bottom + 1 + old, keep * sizeof *bottom);
    bottom[keep + 1] = (listed_slot){ref, (void *)p};
    mc->stack_top[spc] = &bottom[keep + 1];
}

/* spc's stack is empty: lists the free slots of the current span's word in
 * circulation but its lowest, which the caller takes, lowest on top. */
static void list_circulating(mcache *mc, unsigned spc, mspan *s) {
    uintptr_t first;
    uint64_t fresh, bits = mspan_circulating_free(s, &first, &fresh);
    bits &= bits - 1;
    unsigned n = (unsigned)gm_popcount64(bits), capacity = mc->stack_capacity[spc];
    for (; n > capacity; n--) /* the highest stay free in the word */
        bits &= ~((uint64_t)1 << (63 - __builtin_clzll(bits)));
    /* Within one word a slot's reference and address are the word's first
     * slot's plus its bit. */
    uintptr_t ref0 = mspan_listed_ref(s, first);
    char *p0 = mspan_slot_address(s, first);
    size_t size = s->elemsize;
    listed_slot *entry = stack_bottom(mc, spc);
    entry[0].ref = 0; /* the bottom entry: its first listing sets it */
    /* A word's listed slots are most often all fresh (a word just opened)
     * or none (the owner's frees): then one flag for all. */
    uint64_t fresh_listed = fresh & bits, f = bits;
    if (fresh_listed == 0 || fresh_listed == bits) {
        uintptr_t flag = fresh_listed ? SPAN_LISTED_FRESH : 0;
        for (unsigned k = n; k > 0; k--, f &= f - 1) {
            uintptr_t bit = gm_ctz64(f);
            entry[k] = (listed_slot){ref0 | bit | flag, p0 + bit * size};
        }
    } else {
        for (unsigned k = n; k > 0; k--, f &= f - 1) {
            uintptr_t bit = gm_ctz64(f);
            entry[k] = (listed_slot){ref0 | bit | ((fresh >> bit) & 1) * SPAN_LISTED_FRESH,
                                     p0 + bit * size};
        }
    }
    mspan_list_circulating(s, bits);
    mc->stack_top[spc] = &entry[n];
}

bool mcache_listed_fresh(const mspan *s, uint32_t idx) {
    /* A report's question, on its way to abort: another thread's stack is
     * read as it is (relaxed loads), and a slot its owner takes or lists at
     * this very moment may get the other word. */
    const mcache *mc = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
    if (mc == NULL)
        return false;
    uintptr_t want = mspan_listed_ref(s, idx) | SPAN_LISTED_FRESH;
    if (mc->stack == NULL)
        return false;
    const listed_slot *entry = mc->stack[s->spanclass].entry;
    const listed_slot *top = __atomic_load_n(&mc->stack_top[s->spanclass], __ATOMIC_RELAXED);
    if (top < entry || top >= entry + SLOT_STACK)
        return false; /* a cache set up statically, with nothing listed */
    for (const listed_slot *e = entry + 1; e <= top; e++)
        if (__atomic_load_n(&e->ref, __ATOMIC_RELAXED) == want)
            return true;
    return false;
}

void mcache_reset(mcache *mc, uint8_t kind) {
    /* Not the stacks' blocks: a stack is set up by its class's first slow
     * path, so a thread touches the blocks of the classes it uses and no
     * more (all of them are 134 KiB). */
    slot_stack *stack = mc->stack;
    memset(mc, 0, sizeof *mc);
    mc->stack = stack;
    for (unsigned i = 0; i < GM_NUM_SPAN_CLASSES; i++) {
        mc->alloc[i] = &gm_empty_span;
        mc->stack_capacity[i] = (uint8_t)capacity_for(i);
        mc->stack_top[i] = (listed_slot *)&gm_no_listed_slot;
    }
    mc->tiny_off = GM_TINY_BLOCK;
    mc->kind = kind;
}

/* ---- the owner's lists ---- */

static size_t span_bytes(const mspan *s) { return (size_t)s->npages << GM_PAGE_SHIFT; }

/* The owner's free has landed in a span it set aside (the free is done):
 * take the span back to the partial list, unless another thread's free is
 * already pushing it to us (then the revisit drain moves it).  Returns true
 * if the span is now on the partial list. */
static bool unset_aside(mcache *mc, mspan *s) {
    mspan_unpark_nlive(s);
    if (!__atomic_load_n(&s->full, __ATOMIC_RELAXED) || !mspan_reclaim_set_aside(s))
        return false;
    mclass *cls = &mc->classes[s->spanclass];
    mspan_list_remove(&cls->full, s);
    s->where = SPAN_PARTIAL;
    mspan_list_push(&cls->partial, s);
    return true;
}

void mcache_span_emptied(mcache *mc, mspan *s) {
    mclass *cls = &mc->classes[s->spanclass];
    switch (s->where) {
    case SPAN_PARTIAL:
        mspan_list_remove(&cls->partial, s);
        break;
    case SPAN_FULL:
        /* nlive was parked: the first free by the owner since it was set
         * aside, or a later one while a revisit push is pending. */
        if (!unset_aside(mc, s) || s->nlive != 0)
            return;
        mspan_list_remove(&cls->partial, s);
        break;
    default:
        return; /* current (biased, cannot happen) or already handled */
    }
    if (cls->nempty < MAX_EMPTY_PER_CLASS && mc->empty_bytes + span_bytes(s) <= MAX_EMPTY_BYTES) {
        s->where = SPAN_EMPTY;
        s->next = cls->empty;
        cls->empty = s;
        cls->nempty++;
        mc->empty_bytes += span_bytes(s);
        return;
    }
    mcentral_release_empty(s);
}

/* A set-aside span whose full flag another thread has cleared comes back
 * to its class's partial list (or spares, if nothing in it is live).  The
 * other threads' frees are collected now: a span they emptied while its
 * owner allocated elsewhere goes back at once, rather than sit on the
 * partial list until the owner gets to it. */
static void back_from_aside(mcache *mc, mspan *s) {
    mclass *cls = &mc->classes[s->spanclass];
    mspan_unpark_nlive(s);
    mspan_collect(s);
    mspan_list_remove(&cls->full, s);
    s->where = SPAN_PARTIAL;
    mspan_list_push(&cls->partial, s);
    if (s->nlive == 0)
        mcache_span_emptied(mc, s);
}

/* Moves the spans other threads have pushed back to us onto their partial
 * lists. */
static void revisit_drain(mcache *mc) {
    if (!__atomic_load_n(&mc->revisit, __ATOMIC_RELAXED))
        return;
    mspan *s = __atomic_exchange_n(&mc->revisit, NULL, __ATOMIC_ACQUIRE);
    while (s) {
        mspan *next = s->revisit_next;
        if (s->owner == mc && s->where == SPAN_FULL)
            back_from_aside(mc, s);
        s = next;
    }
}

/* A remote free won the CAS of a set-aside span: the holder that set it
 * aside still holds it (it waits for such pushes before it lets go). */
static void revisit_push(mspan *s) {
    mcache *owner = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);
    if (owner == NULL) {
        mcentral_revisit_push(s);
        return;
    }
    mspan *head = __atomic_load_n(&owner->revisit, __ATOMIC_RELAXED);
    do
        s->revisit_next = head;
    while (!__atomic_compare_exchange_n(&owner->revisit, &head, s, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
}

/* ---- giving spans up ---- */

static void release_spares(mcache *mc, mclass *cls) {
    while (cls->empty) {
        mspan *s = cls->empty;
        cls->empty = s->next;
        mc->empty_bytes -= span_bytes(s);
        mcentral_release_empty(s);
    }
    cls->nempty = 0;
}

static void give_back_class(mcache *mc, unsigned spc, bool keep_current) {
    mclass *cls = &mc->classes[spc];
    forget_listed(mc, spc);
    while (cls->partial) {
        mspan *s = cls->partial;
        mspan_list_remove(&cls->partial, s);
        mcentral_abandon(s);
    }
    release_spares(mc, cls);
    if (!keep_current && mc->alloc[spc] != &gm_empty_span) {
        mspan *s = mc->alloc[spc];
        mc->alloc[spc] = &gm_empty_span;
        mcentral_abandon(s);
    }
}

/* Classes the thread has stopped allocating give their spans back. */
static void give_back_idle(mcache *mc) {
    for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES; spc++) {
        mclass *cls = &mc->classes[spc];
        if ((cls->partial || cls->empty) && mc->refills - cls->last_refill > IDLE_REFILLS)
            give_back_class(mc, spc, true);
    }
}

void mcache_release_all(mcache *mc) {
    tiny_release(mc);
    for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES; spc++)
        forget_listed(mc, spc);
    /* A set-aside span either comes back to us now (our CAS wins), or
     * another thread's free is pushing it onto our revisit stack: wait for
     * those pushes, so that no push can target this cache once it is gone. */
    bool pending = false;
    for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES; spc++) {
        mclass *cls = &mc->classes[spc];
        for (mspan *s = cls->full, *next; s; s = next) {
            next = s->next;
            if (mspan_reclaim_set_aside(s)) {
                mspan_list_remove(&cls->full, s);
                mcentral_abandon(s);
            } else {
                pending = true;
            }
        }
    }
    while (pending) {
        revisit_drain(mc);
        pending = false;
        for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES && !pending; spc++)
            pending = mc->classes[spc].full != NULL;
        if (pending)
            sched_yield(); /* the pusher is between its CAS and its push */
    }
    for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES; spc++)
        give_back_class(mc, spc, false);
    pagecache_flush(&mc->pcache);
}

/* The pages of this cache's spans of class spc in which no slot is in use
 * go back to the OS. */
static size_t release_unused_pages(mcache *mc, unsigned spc) {
    size_t bytes = 0;
    if (mc->alloc[spc] != &gm_empty_span)
        bytes += mcentral_release_unused_pages(mc->alloc[spc], false);
    for (mspan *s = mc->classes[spc].partial; s; s = s->next)
        bytes += mcentral_release_unused_pages(s, false);
    for (mspan *s = mc->classes[spc].full; s; s = s->next)
        bytes += mcentral_release_unused_pages(s, false);
    return bytes;
}

size_t mcache_release_others_freed_pages(mcache *mc) {
    if (!__atomic_load_n(&mc->revisit, __ATOMIC_RELAXED))
        return 0;
    /* Taken whole, as the owner's drain takes it.  While the chain is ours
     * the owner cannot find these spans: none becomes current, and of their
     * slots it can hand out only those it freed itself (its slot stack),
     * which others_only leaves alone.  An owner that exits meanwhile waits
     * for them (mcache_release_all).  Acquire: the pushers' view of the
     * spans, and through the set-aside handshake the owner's. */
    mspan *chain = __atomic_exchange_n(&mc->revisit, NULL, __ATOMIC_ACQUIRE);
    if (!chain)
        return 0;
    size_t bytes = 0;
    mspan *last = chain;
    for (mspan *s = chain; s; s = s->revisit_next) {
        last = s;
        if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) != mc || s->where != SPAN_FULL)
            continue; /* the owner's drain skips it too */
        uint32_t freed = mspan_count_remote(s);
        if (freed == s->aside_released)
            continue; /* no free since we last looked */
        s->aside_released = freed;
        bytes += mcentral_release_unused_pages(s, true);
    }
    /* Back on the stack, ahead of what was pushed meanwhile; release: the
     * owner's drain sees our writes. */
    mspan *head = __atomic_load_n(&mc->revisit, __ATOMIC_RELAXED);
    do
        last->revisit_next = head;
    while (!__atomic_compare_exchange_n(&mc->revisit, &head, chain, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
    return bytes;
}

bool mcache_give_back_reserves(mcache *mc) {
    if (mc->kind != MCACHE_OWN)
        return false;
    bool any = mc->pcache.n != 0 || mc->empty_bytes != 0;
    for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES; spc++) {
        any |= mc->stack_top[spc]->ref != 0;
        forget_listed(mc, spc);
        release_spares(mc, &mc->classes[spc]);
    }
    pagecache_flush(&mc->pcache);
    return any;
}

size_t mcache_trim(void) {
    mcache *mc = gm_tls.mcache;
    size_t bytes = 0;
    if (mc->kind == MCACHE_OWN) {
        revisit_drain(mc);
        mcache_give_back_reserves(mc);
        for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES; spc++)
            bytes += release_unused_pages(mc, spc);
    }
    mcentral_reclaim();
    bytes += proc_release_others_pages();
    return bytes;
}

void mcache_after_fork(mcache *mc) {
    if (mc->kind != MCACHE_OWN) {
        pagecache_after_fork(NULL);
        return;
    }
    pagecache_after_fork(&mc->pcache);
    revisit_drain(mc);
    /* A thread that did not survive the fork may have won a set-aside span's
     * CAS without pushing it: such spans are ours to take back. */
    for (unsigned spc = 1; spc < GM_NUM_SPAN_CLASSES; spc++) {
        mclass *cls = &mc->classes[spc];
        for (mspan *s = cls->full, *next; s; s = next) {
            next = s->next;
            if (__atomic_load_n(&s->full, __ATOMIC_RELAXED) == 0)
                back_from_aside(mc, s);
        }
    }
    __atomic_store_n(&mc->revisit, NULL, __ATOMIC_RELAXED);
}

/* ---- refills ---- */

/* The current span of spc has run out: collect what other threads freed
 * into it, or set it aside.  True if it has a free slot again. */
static bool current_exhausted(mcache *mc, unsigned spc) {
    mspan *s = mc->alloc[spc];
    for (;;) {
        if (mspan_replenish(s))
            return true;
        s->nlive -= SPAN_CURRENT_BIAS;
        if (mspan_set_aside(s))
            break;
        s->nlive += SPAN_CURRENT_BIAS; /* a remote free raced in: keep it */
    }
    s->where = SPAN_FULL;
    mspan_list_push(&mc->classes[spc].full, s);
    mc->alloc[spc] = &gm_empty_span;
    return false;
}

/* Gives the cache a current span for spc with a free slot; false if out of
 * memory. */
static bool refill(mcache *mc, unsigned spc) {
    mclass *cls = &mc->classes[spc];
    if (mc->alloc[spc] != &gm_empty_span && current_exhausted(mc, spc))
        return true;
    gm_count(&mc->refills);
    cls->last_refill = mc->refills;
    if (mc->refills % IDLE_CHECK == 0) {
        give_back_idle(mc);
        mcentral_reclaim(); /* unowned spans emptied by remote frees go back */
        proc_release_idle_caches(); /* and pages idle threads' spans hold */
    }
    revisit_drain(mc);
    for (;;) {
        mspan *s;
        if ((s = cls->partial) != NULL) {
            mspan_list_remove(&cls->partial, s);
        } else if ((s = cls->empty) != NULL) {
            cls->empty = s->next;
            cls->nempty--;
            s->next = NULL;
            mc->empty_bytes -= span_bytes(s);
        } else {
            /* Before the heap grows for us: the pages idle threads' spans
             * hold only other threads' frees in go back (proc.c). */
            proc_release_idle_caches();
            if ((s = mcentral_cache_span(spc, mc)) == NULL)
                return false;
        }
        s->where = SPAN_CURRENT;
        s->nlive += SPAN_CURRENT_BIAS;
        mc->alloc[spc] = s;
        /* Every span picked here has a free slot, though often not in the
         * word it has in circulation: current_exhausted finds it (and a span
         * with none after all is set aside like any exhausted span). */
        if (mspan_can_alloc_fast(s) || current_exhausted(mc, spc))
            return true;
    }
}

void *mcache_alloc_slow(mcache *mc, unsigned spc) {
    if (unlikely(mc->kind != MCACHE_OWN))
        return proc_alloc_without_cache(mc, spc, 0);
    /* Most trips here only change words: the owner has freed into another
     * word of its current span.  That costs a scan of its words, not a
     * refill.  (The empty span has no open word.) */
    if (!mspan_circulate_own_free(mc->alloc[spc]) && !refill(mc, spc)) {
        /* Out of memory (or over a hard limit): what this thread keeps
         * for its own reuse is idle memory; give it back and retry. */
        if (!mcache_give_back_reserves(mc) || !refill(mc, spc))
            return NULL;
    }
    gm_count(&mc->nmalloc[spc]);
    mspan *s = mc->alloc[spc];
    list_circulating(mc, spc, s);
    return mspan_alloc_fast(s);
}

/* ---- frees off the fast path ---- */

/* The owner frees into a span of its own that is off the fast path: a
 * tiny span (set aside or not). */
static void free_owned_slow(mcache *mc, mspan *s, const void *p, uint32_t idx, const char *caller) {
    mspan_rejoin_fast_path(s, mc);
    int freed = mspan_free_owned(s, idx);
    if (freed == SPAN_FREE_BAD)
        mspan_bad_free(s, p, idx, caller);
    if (freed == SPAN_FREED_EMPTY)
        mcache_span_emptied(mc, s);
}

void mcache_free_slot(mspan *s, const void *p, uint32_t idx, const char *caller) {
    mcache *mc = gm_tls.mcache;
    if (mc->kind == MCACHE_OWN)
        gm_count(&mc->nfree[s->spanclass]);
    else
        proc_count_shared_free(s->spanclass);
    if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) == mc && mc->kind == MCACHE_OWN) {
        free_owned_slow(mc, s, p, idx, caller);
        return;
    }
    if (mc->kind == MCACHE_OWN)
        gm_count(&mc->remote_frees);
    /* After its OR a remote free reads the span at most (the set-aside
     * flag) and never writes it unless it wins that flag's CAS: once its bit
     * is visible, the holder may find the span empty and free it. */
    if (mspan_free_remote(s, p, idx, caller))
        revisit_push(s);
}
