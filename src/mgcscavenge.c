/*
 * The scavenger (Go's mgcscavenge.go): it decides when free heap pages go
 * back to the OS, does that work without holding the heap lock, runs the
 * background thread, and keeps the memory limit.
 *
 * What goes back, and when:
 *  - pages that stayed free for opt.scavenge_delay (the background thread
 *    looks every BG_TICK_NS; without it the slow paths look every tick);
 *  - at once, dirty free pages above the retained headroom, max(opt.retain,
 *    the most pages in use in the current and previous delay window);
 *  - with a memory limit L (GOMALLOC_MEMLIMIT_MB, gm_set_memory_limit, or
 *    the cgroup's memory.max / memory.limit_in_bytes), at once, whatever
 *    puts in-use plus dirty free pages over 95% of L (Go's GOMEMLIMIT goal);
 *  - on malloc_trim, every free page.
 * Huge pages: outside the memory limit and trim, a 2 MiB region with 96% or
 * more of its pages in use is left whole (its few free pages would cost the
 * whole huge page); releases go from the top of the heap down in runs up to
 * 2 MiB, so fully free regions go back whole.
 *
 * How (Go's scavengeOne): under the heap lock a run of free, unreleased
 * pages is taken in the page allocator (marked in use, so nobody hands it
 * out or releases it twice); the lock is dropped for madvise; the lock is
 * taken again to free the run as released (or as dirty, if the kernel
 * refused).  So no allocation ever waits on madvise.
 *
 * Who releases.  A program thread's madvise is paid by that thread's
 * allocation: in a virtual machine a release of 1 MiB took 50-100 us, but
 * now and then several ms (the TLB flush waits for the other CPUs).  So
 * while the background thread gets turns, it alone releases, the headroom
 * excess a large free leaves included; the program's slow paths
 * (scav_assist, at most ASSIST_PAGES per call) release only for a memory
 * limit, or everything when there is no thread or it is starved (below).
 * While the program uses the heap the thread does not take the heap lock at
 * all: heap operations take runs for it (the excess they find, and aged
 * pages when it asks; hand_off_locked, the release slots below), and later
 * ones give them back released.  Work done to keep a soft limit is capped
 * at ASSIST_CPU_PERCENT of the time, as Go's CPU limiter caps scavenging
 * assists, so a limit below the live set degrades gracefully instead of
 * thrashing.  A hard limit (GOMALLOC_MEMLIMIT_HARD=1) is not capped, and an
 * allocation that would put the pages in use over it fails with ENOMEM.
 *
 * The background thread (GOMALLOC_BACKGROUND, on by default) is Go's
 * background scavenger: it works for at most 1% of the time while the
 * program uses the heap, 25% while the heap has been idle for a whole
 * BG_TICK_NS (nothing else wants the time then, and an idle program should
 * get its memory back within about a second) or while it has runs handed
 * over (the excess, which the program's threads would otherwise release),
 * in bursts of at most BG_BURST_NS with rests in proportion.  It runs at
 * SCHED_IDLE: only on a CPU nothing else wants, and it gives the CPU up the
 * moment a program thread wakes.  A releasing thread can hold its CPU far
 * longer than its own work takes (madvise waits for the other CPUs to flush
 * their TLBs, and in a virtual machine a CPU may be away), and at any other
 * priority that time was taken from the program: on 2 busy cores 1-3 of
 * every million malloc/free pairs waited 5-30 ms.  When the CPUs stay busy
 * and the thread gets no turn for BG_STARVED_NS, the program's slow paths
 * do the aged releases themselves, a bounded amount per call, as they do
 * without the thread.  At the start of every tick it first runs the work the tiers
 * above registered, told whether the heap was idle for the tick: every
 * tick, idle threads' spans give back the pages other threads' frees
 * emptied; on an idle heap, mcentral also hands back the unowned spans such
 * frees emptied, and mheap its empty span-struct slabs.  It starts lazily, at
 * the first safe point (see scav_start_background) after the heap has
 * first mapped BG_START_BYTES: a program whose heap stays smaller
 * never gets a thread, and its free memory goes back on its slow paths or
 * on malloc_trim.  A forked child whose parent ran the thread starts its own
 * from the fork handler.
 *
 * Invariants: a page is released by at most one thread at a time (it is
 * in use in the page allocator while taken); every taken run is listed in
 * `inflight` until it is returned, so a forked child can give back the runs
 * whose releasing threads it did not inherit; a page is marked released
 * only after madvise succeeded.
 *
 * Locking: state marked [heap] is guarded by the heap lock (mheap's, taken
 * here through mheap_lock); the rest is atomic, relaxed unless noted.  The
 * heap lock is never held across a system call that can take long (madvise)
 * or one that allocates (pthread_create).
 */
#define _GNU_SOURCE
#include "mgcscavenge.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>

#include "mheap.h"
#include "mpagealloc.h"
#include "options.h"
#include "os.h"

/* An assist releases at most this much per call: about 50-100 us of
 * madvise on this machine, far under the 1 ms an allocation may wait. */
#define ASSIST_PAGES ((size_t)(1 << 20) >> GM_PAGE_SHIFT)
/* One take/release/return step: a huge page. */
#define STEP_PAGES ((size_t)(2 << 20) >> GM_PAGE_SHIFT)
/* Soft-limit assists may use this share of the time, measured per window. */
#define ASSIST_CPU_PERCENT 10
#define ASSIST_WINDOW_NS ((uint64_t)100000000)
/* The background thread's period and its work per period. */
#define BG_TICK_NS ((uint64_t)100000000)
#define BG_BUSY_PERCENT 1
#define BG_IDLE_PERCENT 25
/* The longest stretch of work between two rests: the share is taken as
 * many short bursts, rest in between (at 25%: 1 ms of work, 3 ms of rest),
 * not as one long burst per tick, so that the thread is never long in the
 * way when it does run beside the program (SCHED_BATCH or SCHED_OTHER, if
 * SCHED_IDLE was refused). */
#define BG_BURST_NS ((uint64_t)1000000)
/* The background thread has had no turn for this long (busy CPUs keep a
 * SCHED_IDLE thread waiting): the slow paths release aged pages instead. */
#define BG_STARVED_NS (3 * BG_TICK_NS)
/* The heap size from which the background thread is worth having. */
#define BG_START_BYTES ((size_t)64 << 20)
/* After the kernel refused a release (mlocked memory, a seccomp filter),
 * automatic scavenging waits this long before asking again, so a process
 * where every madvise fails pays one failed call per interval.  malloc_trim
 * always asks. */
#define RELEASE_RETRY_NS ((uint64_t)1000000000)
/* The memory limit's goal is 95% of it, as Go's. */
#define LIMIT_GOAL(pages) ((pages) / 20 * 19)

/* Work the heap's state asks for now (pending). */
enum { PENDING_NONE, PENDING_HEADROOM, PENDING_LIMIT };

/* [heap] */
static size_t inuse;                 /* pages in use, as mheap last said */
static size_t peak_cur, peak_prev;   /* most in use in this / the last delay window */
static uint64_t window_start;
static size_t limit_pages;           /* 0: no limit */
static bool limit_hard;
static uint64_t refused_at;
static bool ever_refused;
static uint64_t assist_window, assist_ns; /* soft-limit assist time in this window */
/* Runs taken for release right now, each in a slot:
 *   FREE -> BUSY      under the heap lock: a thread takes a run to release
 *                     it itself (then BUSY -> FREE under the lock again);
 *   FREE -> HANDED    under the heap lock: a heap operation takes a run
 *                     for the background thread (hand_off_locked);
 *   HANDED -> BUSY    a CAS, no lock: whoever releases it (the background
 *                     thread, or malloc_trim);
 *   BUSY -> DONE / REFUSED   release store, no lock: madvise succeeded or not;
 *   DONE / REFUSED -> FREE   under the heap lock: the run goes back to the
 *                     page allocator, released or dirty (return_done_locked).
 * The acquire/release pairs on `state` order the run's fields with it.  A
 * fork() in the middle of a release would leave runs taken for good in the
 * child, which has no thread to give them back: the child handler returns
 * every slot's run (as dirty). */
#define INFLIGHT_MAX 16
enum { SLOT_FREE, SLOT_BUSY, SLOT_HANDED, SLOT_DONE, SLOT_REFUSED };
static struct { uintptr_t addr; size_t npages; int state; } inflight[INFLIGHT_MAX];
/* Runs handed to the background thread at most (2 MiB each). */
#define HAND_MAX 4

/* atomic */
static int pending;           /* PENDING_*: what the last heap operation left over */
static uint64_t last_tick;    /* the last aged pass made by an assist */
static uint64_t heap_ops;     /* bumped on every heap allocation and free */
static uint64_t released;     /* bytes returned to the OS */
enum { BG_OFF, BG_WANTED, BG_STARTING, BG_RUNNING };
static int bg_state;          /* BG_*; acquire/release between starter and thread */
/* What the tiers above want done once a tick (scav_set_tick_work). */
static void (*tick_work)(bool heap_idle);
static int bg_word;           /* futex the thread sleeps on */
static uint64_t bg_last_turn; /* when the thread last woke and ran */
static int slots_handed;      /* slots HANDED */
static int hand_aged;         /* the thread asks heap operations for aged runs */
static int slots_done;        /* slots DONE or REFUSED */

/* ---- the memory limit from the cgroup ---- */

#define CGROUP_UNLIMITED ((uint64_t)1 << 62) /* v1 writes 2^63 - 4096 for none */

/* The smallest limit in file `name` of dir and its ancestors up to root. */
static uint64_t limit_up_the_tree(char *dir, size_t root_len, const char *name) {
    uint64_t best = 0;
    for (;;) {
        char path[1024], buf[64];
        gm_snprintf(path, sizeof path, "%s/%s", dir, name);
        if (os_read_file(path, buf, sizeof buf) > 0 && buf[0] >= '0' && buf[0] <= '9') {
            uint64_t v = 0;
            for (const char *c = buf; *c >= '0' && *c <= '9' && v < CGROUP_UNLIMITED; c++)
                v = v * 10 + (uint64_t)(*c - '0');
            if (v < CGROUP_UNLIMITED && (best == 0 || v < best))
                best = v;
        }
        char *slash = strrchr(dir + root_len, '/');
        if (!slash)
            return best;
        *slash = 0; /* the parent */
    }
}

/* memory.max (v2) or memory.limit_in_bytes (v1) of our cgroup, 0 if none. */
static uint64_t cgroup_limit(void) {
    char self[2048];
    if (os_read_file("/proc/self/cgroup", self, sizeof self) <= 0)
        return 0;
    const char *v2 = NULL, *v1 = NULL;
    for (char *line = self; *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2) {
            *c2 = 0;
            if (c1 == line + 1 && line[0] == '0' && c2 == c1 + 1)
                v2 = c2 + 1; /* "0::/path" */
            for (char *ctl = c1 + 1; ctl && *ctl; ctl = strchr(ctl, ',') ? strchr(ctl, ',') + 1 : NULL)
                if (strncmp(ctl, "memory", 6) == 0 && (ctl[6] == ',' || ctl[6] == 0))
                    v1 = c2 + 1; /* "N:...,memory,...:/path" */
        }
        if (!end)
            break;
        line = end + 1;
    }
    const char *root = gm_opt.cgroup_root;
    char dir[1024];
    uint64_t lim = 0;
    if (v2) {
        size_t rl = (size_t)gm_snprintf(dir, sizeof dir, "%s", root);
        gm_snprintf(dir + rl, sizeof dir - rl, "%s", strcmp(v2, "/") ? v2 : "");
        lim = limit_up_the_tree(dir, rl, "memory.max");
    }
    if (!lim && v1) {
        size_t rl = (size_t)gm_snprintf(dir, sizeof dir, "%s/memory", root);
        gm_snprintf(dir + rl, sizeof dir - rl, "%s", strcmp(v1, "/") ? v1 : "");
        lim = limit_up_the_tree(dir, rl, "memory.limit_in_bytes");
    }
    return lim;
}

void scav_init(void) {
    uint64_t lim = gm_opt.memlimit_bytes;
    if (!lim && gm_opt.cgroup)
        lim = cgroup_limit();
    limit_pages = (size_t)(lim >> GM_PAGE_SHIFT);
    limit_hard = gm_opt.memlimit_hard && limit_pages;
}

/* ---- policy ---- */

/* What to release now: up to `pages`, in chunks last freed into at or
 * before older_than; keep_dense leaves dense huge pages whole; `limit` says
 * the memory limit asks for it. */
typedef struct { size_t pages; uint64_t older_than; bool keep_dense, limit; } scav_work;

static size_t dirty_pages(void) { return pagealloc_free_pages() - pagealloc_scav_pages(); }

/* Free pages that may stay resident now. [heap] */
static size_t headroom_locked(bool *by_limit) {
    size_t keep = gm_opt.retain_bytes >> GM_PAGE_SHIFT;
    if (keep < peak_cur) keep = peak_cur;
    if (keep < peak_prev) keep = peak_prev;
    *by_limit = false;
    if (limit_pages) {
        size_t goal = LIMIT_GOAL(limit_pages), used = inuse + mheap_large_cache_pages_locked();
        size_t room = goal > used ? goal - used : 0;
        if (keep > room) {
            keep = room;
            *by_limit = true;
        }
    }
    return keep;
}

static void roll_window_locked(uint64_t now) {
    if (now - window_start >= gm_opt.scavenge_delay_ns) {
        peak_prev = peak_cur;
        peak_cur = inuse;
        window_start = now;
    }
}

static scav_work policy_locked(uint64_t now, bool aged) {
    roll_window_locked(now);
    if (aged && now > gm_opt.scavenge_delay_ns)
        mheap_large_cache_expire_locked(now - gm_opt.scavenge_delay_ns);
    bool by_limit;
    size_t keep = headroom_locked(&by_limit);
    if (by_limit && mheap_large_cache_pages_locked()) {
        mheap_large_cache_expire_locked(UINT64_MAX); /* cached runs count against the limit */
        keep = headroom_locked(&by_limit);
    }
    size_t dirty = dirty_pages();
    if (dirty > keep)
        return (scav_work){ dirty - keep, UINT64_MAX, !by_limit, by_limit };
    if (aged && dirty && now > gm_opt.scavenge_delay_ns)
        return (scav_work){ SIZE_MAX, now - gm_opt.scavenge_delay_ns, true, false };
    return (scav_work){ 0, 0, false, false };
}

bool scav_admit_locked(size_t inuse_pages, size_t npages) {
    return !limit_hard || inuse_pages + npages <= limit_pages;
}

/* ---- release slots ---- */

/* A free slot, or -1.  [heap] */
static int free_slot_locked(void) {
    for (int i = 0; i < INFLIGHT_MAX; i++)
        if (__atomic_load_n(&inflight[i].state, __ATOMIC_RELAXED) == SLOT_FREE)
            return i;
    return -1;
}

/* Runs released without the lock go back to the page allocator.  [heap] */
static void return_done_locked(void) {
    if (!__atomic_load_n(&slots_done, __ATOMIC_RELAXED))
        return;
    for (int i = 0; i < INFLIGHT_MAX; i++) {
        int st = __atomic_load_n(&inflight[i].state, __ATOMIC_ACQUIRE);
        if (st != SLOT_DONE && st != SLOT_REFUSED)
            continue;
        pagealloc_scav_return(inflight[i].addr, inflight[i].npages, st == SLOT_DONE);
        if (st == SLOT_REFUSED)
            ever_refused = true, refused_at = gm_nanotime();
        __atomic_store_n(&inflight[i].state, SLOT_FREE, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&slots_done, 1, __ATOMIC_RELAXED);
    }
}

/* Releases the runs heap operations handed over, with no lock held, until
 * none is left or max_ns has passed.  Returns the pages released. */
static size_t release_handed(uint64_t max_ns) {
    uint64_t t0 = gm_nanotime();
    size_t done = 0;
    for (int i = 0; i < INFLIGHT_MAX; i++) {
        int st = SLOT_HANDED;
        if (!__atomic_compare_exchange_n(&inflight[i].state, &st, SLOT_BUSY, false,
                                         __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            continue;
        __atomic_fetch_sub(&slots_handed, 1, __ATOMIC_RELAXED);
        size_t n = inflight[i].npages;
        bool ok = os_release((void *)inflight[i].addr, n << GM_PAGE_SHIFT);
        __atomic_fetch_add(&slots_done, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&inflight[i].state, ok ? SLOT_DONE : SLOT_REFUSED, __ATOMIC_RELEASE);
        if (ok) {
            done += n;
            __atomic_fetch_add(&released, (uint64_t)n << GM_PAGE_SHIFT, __ATOMIC_RELAXED);
        }
        if (gm_nanotime() - t0 >= max_ns)
            break;
    }
    return done;
}

/* A heap operation, while the background thread runs, takes runs for it to
 * release (up to `pages` pages, last freed into at or before older_than;
 * HAND_MAX runs outstanding at most) and wakes it.  So the thread never
 * takes the heap lock while the program uses the heap: at SCHED_IDLE it
 * may lose its CPU at any moment, and a program thread would wait on a
 * lock it held for as long as the CPUs stay busy (waits of 100 ms were
 * seen).  Returns true if it handed a run over.  [heap] */
static bool hand_off_locked(size_t pages, uint64_t older_than, bool keep_dense) {
    if (ever_refused && gm_nanotime() - refused_at < RELEASE_RETRY_NS)
        return false; /* the kernel refused lately: ask again later, as scavenge() does */
    bool handed = false;
    while (pages && __atomic_load_n(&slots_handed, __ATOMIC_RELAXED) < HAND_MAX) {
        int slot = free_slot_locked();
        uintptr_t addr = 0;
        size_t n = slot < 0 ? 0
                            : pagealloc_scav_take(pages < STEP_PAGES ? pages : STEP_PAGES,
                                                  older_than,
                                                  keep_dense && gm_opt.thp != GM_THP_NEVER, &addr);
        if (!n)
            break;
        inflight[slot].addr = addr;
        inflight[slot].npages = n;
        __atomic_fetch_add(&slots_handed, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&inflight[slot].state, SLOT_HANDED, __ATOMIC_RELEASE);
        pages = n < pages ? pages - n : 0;
        handed = true;
    }
    if (handed && !__atomic_exchange_n(&bg_word, 1, __ATOMIC_RELAXED))
        os_futex_wake(&bg_word);
    return handed;
}

void scav_note_locked(size_t inuse_pages) {
    inuse = inuse_pages;
    if (inuse > peak_cur)
        peak_cur = inuse;
    __atomic_store_n(&heap_ops, heap_ops + 1, __ATOMIC_RELAXED);
    return_done_locked();
    bool by_limit;
    size_t dirty = dirty_pages(), keep = headroom_locked(&by_limit);
    if (__atomic_load_n(&bg_state, __ATOMIC_RELAXED) == BG_RUNNING) {
        if (dirty <= keep && __atomic_load_n(&hand_aged, __ATOMIC_RELAXED) &&
            __atomic_load_n(&slots_handed, __ATOMIC_RELAXED) < HAND_MAX) {
            /* The thread asks (about once a tick): the peaks' window moves
             * on here too, then aged runs if there is no excess. */
            uint64_t now = gm_nanotime();
            roll_window_locked(now);
            keep = headroom_locked(&by_limit);
            if (dirty <= keep && (now <= gm_opt.scavenge_delay_ns ||
                                  !hand_off_locked(SIZE_MAX, now - gm_opt.scavenge_delay_ns, true)))
                __atomic_store_n(&hand_aged, 0, __ATOMIC_RELAXED); /* nothing aged yet */
        }
        if (dirty > keep) {
            hand_off_locked(dirty - keep, UINT64_MAX, !by_limit);
            dirty = dirty_pages();
        }
    }
    bool work = dirty > keep;
    int p = !work ? PENDING_NONE : by_limit ? PENDING_LIMIT : PENDING_HEADROOM;
    if (p != __atomic_load_n(&pending, __ATOMIC_RELAXED))
        __atomic_store_n(&pending, p, __ATOMIC_RELAXED);
    if (work && by_limit && __atomic_load_n(&bg_state, __ATOMIC_RELAXED) == BG_RUNNING &&
        !__atomic_exchange_n(&bg_word, 1, __ATOMIC_RELAXED))
        os_futex_wake(&bg_word); /* the limit is urgent: do not wait for the tick */
}

void scav_note_grow_locked(size_t heap_bytes) {
    if (heap_bytes >= BG_START_BYTES && gm_opt.background)
        __atomic_compare_exchange_n(&bg_state, &(int){ BG_OFF }, BG_WANTED, false,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* ---- the work ---- */

enum { MODE_ASSIST, MODE_BACKGROUND, MODE_TRIM };

/* Releases pages as the mode's policy asks (with `aged`, also the pages
 * free for longer than the delay), at most max_pages of them, stopping
 * after max_ns; returns pages released.  No lock held. */
static size_t scavenge(int mode, bool aged, size_t max_pages, uint64_t max_ns) {
    uint64_t t0 = gm_nanotime();
    size_t done = mode == MODE_TRIM ? release_handed(UINT64_MAX) : 0;
    while (done < max_pages) {
        mheap_lock();
        return_done_locked();
        uint64_t now = gm_nanotime();
        scav_work w = { 0, 0, false, false };
        if (mode == MODE_TRIM) {
            mheap_large_cache_expire_locked(UINT64_MAX);
            w = (scav_work){ SIZE_MAX, UINT64_MAX, false, false };
        } else if (!ever_refused || now - refused_at >= RELEASE_RETRY_NS) {
            w = policy_locked(now, aged);
            if (mode == MODE_ASSIST && w.limit && !limit_hard) {
                /* Go's CPU limiter, simplified: soft-limit assists get a
                 * share of each window's time; the rest waits for later
                 * assists and the background thread. */
                if (now - assist_window >= ASSIST_WINDOW_NS)
                    assist_window = now, assist_ns = 0;
                if (assist_ns >= ASSIST_WINDOW_NS * ASSIST_CPU_PERCENT / 100)
                    w.pages = 0;
            }
        }
        size_t want = w.pages < max_pages - done ? w.pages : max_pages - done;
        uintptr_t addr = 0;
        size_t n = 0;
        int slot = free_slot_locked();
        if (want && slot >= 0)
            n = pagealloc_scav_take(want < STEP_PAGES ? want : STEP_PAGES, w.older_than,
                                    w.keep_dense && gm_opt.thp != GM_THP_NEVER, &addr);
        if (n) {
            inflight[slot].addr = addr, inflight[slot].npages = n;
            __atomic_store_n(&inflight[slot].state, SLOT_BUSY, __ATOMIC_RELAXED);
        }
        if (!n) {
            if (mode != MODE_TRIM) /* the next heap operation looks again */
                __atomic_store_n(&pending, PENDING_NONE, __ATOMIC_RELAXED);
            mheap_unlock();
            break;
        }
        mheap_unlock();
        uint64_t t1 = gm_nanotime();
        bool ok = os_release((void *)addr, n << GM_PAGE_SHIFT);
        uint64_t t2 = gm_nanotime();
        mheap_lock();
        __atomic_store_n(&inflight[slot].state, SLOT_FREE, __ATOMIC_RELAXED);
        pagealloc_scav_return(addr, n, ok);
        if (!ok)
            ever_refused = true, refused_at = t2;
        if (w.limit)
            assist_ns += t2 - t1;
        mheap_unlock();
        if (!ok)
            break;
        done += n;
        __atomic_fetch_add(&released, (uint64_t)n << GM_PAGE_SHIFT, __ATOMIC_RELAXED);
        if (t2 - t0 >= max_ns)
            break;
    }
    return done;
}

/* Has the background thread had no turn for BG_STARVED_NS?  The clock is
 * read only while it is not running. */
static bool bg_starved(void) {
    uint64_t turn = __atomic_load_n(&bg_last_turn, __ATOMIC_RELAXED);
    return __atomic_load_n(&bg_word, __ATOMIC_RELAXED) == 0 && turn &&
           gm_nanotime() - turn >= BG_STARVED_NS;
}

void scav_assist(void) {
    bool on_our_own = __atomic_load_n(&bg_state, __ATOMIC_RELAXED) != BG_RUNNING || bg_starved();
    if (on_our_own) {
        /* No thread, or one the busy CPUs keep waiting: the slow paths
         * release the aged pages, a bounded amount per call, until a pass
         * finds none; then they look again a tick later. */
        uint64_t now = gm_nanotime(), last = __atomic_load_n(&last_tick, __ATOMIC_RELAXED);
        if (now - last >= gm_opt.scavenge_tick_ns) {
            if (scavenge(MODE_ASSIST, true, ASSIST_PAGES, UINT64_MAX) < ASSIST_PAGES)
                __atomic_store_n(&last_tick, now, __ATOMIC_RELAXED);
            return;
        }
    }
    /* The headroom excess is the thread's while it gets turns; a limit is
     * everybody's business. */
    int p = __atomic_load_n(&pending, __ATOMIC_RELAXED);
    if (p == PENDING_LIMIT || (p == PENDING_HEADROOM && on_our_own))
        scavenge(MODE_ASSIST, false, ASSIST_PAGES, UINT64_MAX);
}

size_t scav_release_all(void) {
    return scavenge(MODE_TRIM, true, SIZE_MAX, UINT64_MAX) << GM_PAGE_SHIFT;
}

uint64_t scav_released_bytes(void) { return __atomic_load_n(&released, __ATOMIC_RELAXED); }

/* ---- the background thread ---- */

static void *bg_main(void *arg) {
    (void)arg;
    /* SCHED_IDLE (see the top of the file).  Refused (a seccomp filter,
     * say): SCHED_BATCH, whose wake-ups at least never preempt a running
     * program thread; refused too, it stays SCHED_OTHER. */
    struct sched_param param = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) != 0)
        pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
    uint64_t ops_seen = 0, next_work = 0, tick_start = 0, rest = BG_TICK_NS;
    bool idle = false, busy_this_tick = false;
    for (;;) {
        /* bg_word is 0 only while we wait: a wake-up costs the heap's
         * side a system call at most once per wait. */
        __atomic_store_n(&bg_word, 0, __ATOMIC_RELAXED);
        os_futex_wait(&bg_word, 0, rest);
        __atomic_store_n(&bg_word, 1, __ATOMIC_RELAXED);
        uint64_t now = gm_nanotime();
        __atomic_store_n(&bg_last_turn, now, __ATOMIC_RELAXED);
        if (now < next_work) {
            /* Woken early (the memory limit): the pace still holds. */
            os_sleep(next_work - now);
            now = gm_nanotime();
        }
        /* Idle: no heap operation of the program's for a whole tick. */
        busy_this_tick |= __atomic_load_n(&heap_ops, __ATOMIC_RELAXED) != ops_seen;
        if (now - tick_start >= BG_TICK_NS) {
            idle = !busy_this_tick;
            busy_this_tick = false;
            tick_start = now;
            /* The heap may still hold spans that other threads' frees
             * emptied: the tiers above hand those back only when asked. */
            void (*work)(bool) = __atomic_load_n(&tick_work, __ATOMIC_ACQUIRE);
            if (work)
                work(idle);
        }
        /* The runs heap operations handed over first: the headroom excess
         * at the idle pace (the work the program's threads would otherwise
         * do), aged pages at the busy pace.  With none, the thread asks the
         * heap operations for aged runs while the program uses the heap,
         * and takes the heap lock itself only once the heap is idle. */
        unsigned pct = idle || __atomic_load_n(&pending, __ATOMIC_RELAXED) != PENDING_NONE
                           ? BG_IDLE_PERCENT
                           : BG_BUSY_PERCENT;
        size_t done = release_handed(BG_BURST_NS);
        if (!done && idle)
            done = scavenge(MODE_BACKGROUND, true, SIZE_MAX, BG_BURST_NS);
        else if (!done)
            __atomic_store_n(&hand_aged, 1, __ATOMIC_RELAXED);
        ops_seen = __atomic_load_n(&heap_ops, __ATOMIC_RELAXED); /* after our own frees */
        /* Go's pacing: after t of work, rest t * (100 - pct) / pct; with
         * nothing to do, a tick. */
        uint64_t spent = gm_nanotime() - now;
        rest = spent * (100 - pct) / pct;
        if (!done || rest > BG_TICK_NS)
            rest = BG_TICK_NS;
        /* an early wake after a round with nothing to do (a hand-off, the
         * memory limit) is served at once */
        next_work = done ? now + spent + rest : 0;
    }
    return NULL;
}

enum { SPAWNED, NOT_NOW, FAILED };

/* pthread_create allocates (the new thread's TLS vector): this runs only
 * at the allocator's safe points, where no allocator lock is held and the
 * calling thread's cache is whole (scav_start_background's callers).  All
 * signals are blocked in the new thread: the program's handlers never run
 * on it. */
static int bg_spawn(void) {
    pthread_attr_t attr;
    sigset_t all, old;
    pthread_t t;
    sigfillset(&all);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    bool ok = pthread_create(&t, &attr, bg_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return ok ? SPAWNED : FAILED;
}

/* In a forked child only the forking thread exists: runs that were being
 * released go back to the heap, and the child starts a thread of its own
 * if the parent had one (its heap, now the child's, was worth it). */
static void fork_child(void) {
    os_fork_child();
    mheap_lock(); /* reset by the allocator's own child handler, which ran first */
    for (int i = 0; i < INFLIGHT_MAX; i++) {
        if (inflight[i].state != SLOT_FREE)
            pagealloc_scav_return(inflight[i].addr, inflight[i].npages, false);
        inflight[i].state = SLOT_FREE;
    }
    slots_handed = slots_done = 0;
    mheap_unlock();
    if (__atomic_load_n(&bg_state, __ATOMIC_RELAXED) == BG_OFF)
        return;
    __atomic_store_n(&bg_state, BG_WANTED, __ATOMIC_RELAXED);
    __atomic_store_n(&bg_word, 0, __ATOMIC_RELAXED);
    scav_start_background();
}

void scav_start_background(void) {
    static int atfork_done;
    if (unlikely(!__atomic_load_n(&atfork_done, __ATOMIC_RELAXED)) &&
        !__atomic_exchange_n(&atfork_done, 1, __ATOMIC_RELAXED))
        pthread_atfork(NULL, NULL, fork_child); /* allocates: here, where that is safe */
    if (likely(__atomic_load_n(&bg_state, __ATOMIC_RELAXED) != BG_WANTED))
        return;
    if (!__atomic_compare_exchange_n(&bg_state, &(int){ BG_WANTED }, BG_STARTING, false,
                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    int r = bg_spawn();
    /* A process that may not start threads (RLIMIT_NPROC, a sandbox) is
     * not asked again: the slow paths and malloc_trim return its memory.
     * Release: the thread's view of the state set up before it. */
    __atomic_store_n(&bg_state, r == SPAWNED ? BG_RUNNING : r == NOT_NOW ? BG_WANTED : BG_OFF,
                     __ATOMIC_RELEASE);
}

/* ---- the limit, set at run time ---- */

void scav_set_limit(size_t bytes, bool hard) {
    mheap_lock();
    limit_pages = bytes >> GM_PAGE_SHIFT;
    limit_hard = hard && limit_pages;
    mheap_unlock();
    __atomic_store_n(&pending, PENDING_LIMIT, __ATOMIC_RELAXED);
    scav_assist();
}

size_t scav_get_limit(bool *hard) {
    mheap_lock();
    size_t b = limit_pages << GM_PAGE_SHIFT;
    if (hard)
        *hard = limit_hard;
    mheap_unlock();
    return b;
}

void scav_set_tick_work(void (*fn)(bool heap_idle)) {
    __atomic_store_n(&tick_work, fn, __ATOMIC_RELEASE);
}
