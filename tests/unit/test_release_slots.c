/*
 * test_release_slots: the scavenger's release slots, driven step by step.
 *
 * The scavenger's source is included here, so the test can read its slots
 * and play the background thread itself: bg_state is set to running, but
 * no thread exists, and the test calls release_handed() where the thread
 * would.  Built with fault injection (GM_FAULT_INJECT), to make madvise
 * fail on demand.  Each step happens in the order written:
 *
 *  1. a heap operation that finds dirty pages over the headroom hands runs
 *     to the thread: HAND_MAX slots HANDED, the dirty pages gone from the
 *     page allocator's free count, and no more than HAND_MAX at once;
 *  2. the thread releases them with no lock held: DONE, but the pages are
 *     not counted released until a heap operation returns them, which also
 *     hands the next runs over;
 *  3. a refused madvise: that run goes back dirty (REFUSED), its old bytes
 *     are still there, calloc over them still returns zeros, and no run is
 *     handed over until the retry interval has passed;
 *  4. malloc_trim releases the runs still HANDED itself, and leaves no slot
 *     in use;
 *  5. aged runs: with no excess, a heap operation hands runs over only when
 *     the thread has asked (hand_aged) and pages are old enough; a request
 *     that finds none is dropped;
 *  6. a fork child: runs HANDED, BUSY and DONE in the parent all come back
 *     (as dirty) in the child, whose slots are then all free.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/mgcscavenge.c"

#include "gomalloc.h"
#include "proc.h"

#include "../check.h"

#define BLOCK ((size_t)4 << 20) /* above what a thread's page cache keeps */
#define NBLOCKS 16

static void *blocks[NBLOCKS];

static int count_state(int state) {
    int n = 0;
    for (int i = 0; i < INFLIGHT_MAX; i++)
        n += __atomic_load_n(&inflight[i].state, __ATOMIC_RELAXED) == state;
    return n;
}

static size_t released_bytes(void) {
    gm_heap_stats h;
    gm_get_heap_stats(&h);
    return h.heap_released;
}

/* No headroom: every dirty free page is over it. */
static void forget_peaks(void) {
    mheap_lock();
    gm_opt.retain_bytes = 0;
    peak_cur = peak_prev = 0;
    mheap_unlock();
}

/* A heap operation: a large block allocated and freed. */
static void heap_op(void) {
    forget_peaks();
    void *p = gm_malloc(BLOCK);
    CHECK(p != NULL);
    forget_peaks();
    gm_free(p);
}

/* The same, with the headroom as it is. */
static void heap_op_as_is(void) {
    void *p = gm_malloc(BLOCK);
    CHECK(p != NULL);
    gm_free(p);
}

static void fill_and_free(unsigned char byte) {
    for (int i = 0; i < NBLOCKS; i++) {
        blocks[i] = gm_malloc(BLOCK);
        CHECK(blocks[i] != NULL);
        if (blocks[i])
            memset(blocks[i], byte, BLOCK);
    }
    for (int i = 0; i < NBLOCKS; i++)
        gm_free(blocks[i]);
}

int main(void) {
    CHECK(mcache_global_init());
    fill_and_free(0xee);
    __atomic_store_n(&bg_state, BG_RUNNING, __ATOMIC_RELAXED); /* the test is the thread */

    /* 1 */
    size_t free_before = pagealloc_free_pages();
    heap_op();
    CHECK(count_state(SLOT_HANDED) == HAND_MAX && slots_handed == HAND_MAX);
    CHECK(pagealloc_free_pages() <= free_before - HAND_MAX * STEP_PAGES);
    heap_op();
    CHECK(count_state(SLOT_HANDED) == HAND_MAX);

    /* 2 */
    size_t rel0 = released_bytes();
    CHECK(release_handed(UINT64_MAX) == HAND_MAX * STEP_PAGES);
    CHECK(count_state(SLOT_DONE) == HAND_MAX && slots_done == HAND_MAX && slots_handed == 0);
    CHECK(released_bytes() == rel0); /* taken still: not yet the page allocator's */
    heap_op();
    CHECK(count_state(SLOT_DONE) == 0 && slots_done == 0);
    CHECK(released_bytes() >= rel0 + HAND_MAX * (STEP_PAGES << GM_PAGE_SHIFT));
    CHECK(count_state(SLOT_HANDED) == HAND_MAX); /* the next runs */

    /* 3: the next madvise fails */
    gm_fault_arm(GM_FAULT_MADVISE, 1, false);
    size_t rel1 = released_bytes();
    CHECK(release_handed(UINT64_MAX) == (HAND_MAX - 1) * STEP_PAGES);
    CHECK(count_state(SLOT_REFUSED) == 1 && count_state(SLOT_DONE) == HAND_MAX - 1);
    uintptr_t refused = 0;
    for (int i = 0; i < INFLIGHT_MAX; i++)
        if (inflight[i].state == SLOT_REFUSED)
            refused = inflight[i].addr;
    CHECK(refused && *(unsigned char *)refused == 0xee); /* never released */
    heap_op();
    CHECK(count_state(SLOT_REFUSED) == 0 && count_state(SLOT_DONE) == 0);
    CHECK(ever_refused);
    CHECK(released_bytes() >= rel1 + (HAND_MAX - 1) * (STEP_PAGES << GM_PAGE_SHIFT));
    CHECK(count_state(SLOT_HANDED) == 0); /* within the retry interval */
    /* the refused run is dirty: calloc clears whatever it hands out of it */
    for (int i = 0; i < NBLOCKS; i++) {
        blocks[i] = gm_calloc(1, BLOCK);
        CHECK(blocks[i] != NULL);
        for (size_t off = 0; blocks[i] && off < BLOCK; off += 4096)
            if (!CHECK(((unsigned char *)blocks[i])[off] == 0))
                break;
    }
    for (int i = 0; i < NBLOCKS; i++)
        gm_free(blocks[i]);
    mheap_lock();
    refused_at -= RELEASE_RETRY_NS; /* the interval has passed */
    mheap_unlock();
    heap_op();
    CHECK(count_state(SLOT_HANDED) == HAND_MAX);

    /* 4 */
    gm_malloc_trim(0);
    CHECK(count_state(SLOT_FREE) == INFLIGHT_MAX && slots_handed == 0 && slots_done == 0);
    CHECK(dirty_pages() == 0);

    /* 5 */
    fill_and_free(0x22);
    uint64_t delay = gm_opt.scavenge_delay_ns;
    mheap_lock();
    gm_opt.retain_bytes = (size_t)1 << 40; /* no excess */
    gm_opt.scavenge_delay_ns = (uint64_t)3600 * 1000000000; /* nothing aged */
    mheap_unlock();
    __atomic_store_n(&hand_aged, 1, __ATOMIC_RELAXED);
    heap_op_as_is();
    CHECK(count_state(SLOT_HANDED) == 0 && hand_aged == 0);
    mheap_lock();
    gm_opt.scavenge_delay_ns = 0; /* everything aged */
    mheap_unlock();
    heap_op_as_is();
    CHECK(count_state(SLOT_HANDED) == 0); /* not asked */
    __atomic_store_n(&hand_aged, 1, __ATOMIC_RELAXED);
    heap_op_as_is();
    CHECK(count_state(SLOT_HANDED) == HAND_MAX && hand_aged == 1);
    mheap_lock();
    gm_opt.scavenge_delay_ns = delay;
    mheap_unlock();
    gm_malloc_trim(0);
    CHECK(count_state(SLOT_FREE) == INFLIGHT_MAX);

    /* 6: one slot of each state, then fork */
    fill_and_free(0x11);
    heap_op();
    CHECK(count_state(SLOT_HANDED) == HAND_MAX);
    int busy = -1, done = -1;
    for (int i = 0; i < INFLIGHT_MAX && (busy < 0 || done < 0); i++) {
        if (inflight[i].state != SLOT_HANDED)
            continue;
        if (busy < 0)
            busy = i;
        else
            done = i;
    }
    inflight[busy].state = SLOT_BUSY; /* a release under way */
    __atomic_fetch_sub(&slots_handed, 1, __ATOMIC_RELAXED);
    inflight[done].state = SLOT_DONE; /* released, not returned */
    __atomic_fetch_sub(&slots_handed, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&slots_done, 1, __ATOMIC_RELAXED);
    size_t free_parent = pagealloc_free_pages();
    pid_t pid = fork();
    if (pid == 0) {
        fork_child(); /* what the atfork handler runs */
        int bad = count_state(SLOT_FREE) != INFLIGHT_MAX || slots_handed || slots_done ||
                  pagealloc_free_pages() != free_parent + HAND_MAX * STEP_PAGES;
        _exit(bad);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return check_done("release_slots");
}
