/*
 * test_span_protocol: the span ownership protocol, driven step by step.
 *
 * Built with gomalloc's sources (not the overrides), so it can play several
 * threads from one: switching gm_tls.mcache between two caches A and B makes
 * each gm_ call run as "thread A" or "thread B", and every interleaving below
 * happens in the order written, deterministically:
 *
 *  1. owner allocation exhausts a span, which is set aside full;
 *  2. another thread's first free into it pushes it onto the owner's revisit
 *     stack, exactly once;
 *  3. the owner's next refill finds it there and reuses the freed slots;
 *  4. the owner's own free into a set-aside span takes it back (CAS);
 *  5. the Dekker race of setting aside: owner's flag store, the freer's OR,
 *     the freer's CAS win, the owner's CAS loss;
 *  6. thread exit with spans in every state, then late frees by another
 *     thread: every span ends unowned, and goes back to mheap once mcentral
 *     finds it empty;
 *  7. misuse: double frees on the owner's path, the remote path, and the
 *     owner-then-remote and remote-then-owner mixes (found at collection),
 *     each reported as "double free" (in a child);
 *  8. fork while another (real) thread's cache is half-way through moving a
 *     span: the child rebuilds ownership from the spans themselves, frees
 *     every object of the dead thread, hands no slot out twice, and ends
 *     with every span back in mheap;
 *  9. the slot stack: the owner's frees come back newest first, free in
 *     the bitmap and still counted in their span; a remote free does not
 *     enter it; a span whose only slots in use are listed is not empty;
 *     a full stack drops its older half, counting those slots down; malloc_trim
 *     and thread exit drop the listed slots, and the spans go; a slot listed
 *     but never handed out is an invalid pointer to free, on the stack or
 *     dropped from it, by its owner or another thread;
 * 10. an idle owner: another thread takes the set-aside spans off its
 *     revisit stack and gives back the pages that only other threads' frees
 *     emptied (not a page holding a live slot, nor one holding a slot the
 *     owner freed itself, which its slot stack may hand out), once per new
 *     free; the spans go back on the stack, and the owner's next refill
 *     collects those frees and hands the slots out again;
 * 11. blocked slots: a free of a slot in a word not yet opened, or past the
 *     last slot, is an invalid pointer on either path, and a collection
 *     keeps the blocked bits;
 * 12. the word in circulation: the slow path lists slots from one word,
 *     lowest first, and malloc takes them after the owner's own frees
 *     (newest first, whatever their words); other threads' frees are
 *     collected only when no free slot of the owner's is left, and then the
 *     span is full.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gomalloc.h"
#include "arena.h"
#include "mheap.h"
#include "proc.h"
#include "options.h"

#include "../check.h"

#define SIZE 2048 /* a class with 8 slots per 16 KiB span */

static slot_stack A_stacks[GM_NUM_SPAN_CLASSES], B_stacks[GM_NUM_SPAN_CLASSES];
static mcache A = {.stack = A_stacks}, B = {.stack = B_stacks};
static unsigned spc;

static void as(mcache *mc) { gm_tls.mcache = mc; }

static uint64_t spans_in_use_of(unsigned c) {
    mheap_stats st;
    mheap_read_stats(&st);
    return st.spans_inuse[c];
}

static uint64_t spans_in_use(void) { return spans_in_use_of(spc); }

static mspan *span_of(void *p) { return spanof(p); }

static void test_set_aside_and_revisit(void) {
    void *p[8];
    as(&A);
    for (int i = 0; i < 8; i++)
        p[i] = gm_malloc(SIZE);
    mspan *s = span_of(p[0]);
    CHECK(s->nelems == 8 && span_of(p[7]) == s);
    CHECK(s->where == SPAN_CURRENT && s->fast_owner == &A);

    /* 1: the ninth allocation sets s aside */
    void *q = gm_malloc(SIZE);
    mspan *s2 = span_of(q);
    CHECK(s2 != s);
    CHECK(s->where == SPAN_FULL && A.classes[spc].full == s);
    CHECK(s->full == 1 && s->fast_owner == &A && s->nlive == 2 && s->nlive_aside == 7);

    /* 2: thread B frees into it: one push, then plain remote frees */
    as(&B);
    gm_free(p[3]);
    CHECK(A.revisit == s && s->full == 0 && s->revisit_next == NULL);
    uint64_t blocked = ~(uint64_t)0 << 8; /* the bits past the 8 slots */
    CHECK(*span_remote_word(s, 0) == (blocked | 1u << 3));
    gm_free(p[5]);
    CHECK(A.revisit == s && s->revisit_next == NULL);
    CHECK(*span_remote_word(s, 0) == (blocked | 1u << 3 | 1u << 5));

    /* 3: A uses up s2; its refill drains the revisit stack and reuses s */
    as(&A);
    void *r[7];
    for (int i = 0; i < 7; i++)
        r[i] = gm_malloc(SIZE);
    CHECK(span_of(r[6]) == s2);
    void *again = gm_malloc(SIZE);
    CHECK(again == p[3]);
    CHECK(A.revisit == NULL && s->where == SPAN_CURRENT && s->fast_owner == &A);
    CHECK(s2->where == SPAN_FULL);
    void *again2 = gm_malloc(SIZE);
    CHECK(again2 == p[5]);
    p[3] = again;
    p[5] = again2;

    /* 4: s is full again; the next allocation sets it aside, and A's own
     * frees into it take it back, without the revisit stack, once a quarter
     * of its slots (2) are free and off the slot stack */
    void *t = gm_malloc(SIZE);
    CHECK(span_of(t) != s && s->where == SPAN_FULL);
    gm_free(p[1]);
    gm_free(p[2]);
    /* listed (9): still counted in the span, which stays set aside */
    CHECK(s->where == SPAN_FULL && s->full == 1 && s->nlive == 2);
    /* dropped from the stack (here by malloc_trim, as by a full stack):
     * now they count down */
    gm_malloc_trim(0);
    CHECK(s->where == SPAN_PARTIAL && s->full == 0 && s->fast_owner == &A);
    CHECK(s->nlive == 6 && s->nlive_aside == 0);
    CHECK(A.revisit == NULL);
    p[1] = p[2] = NULL;

    /* 6: A exits with spans current (t's), partial (s) and full (s2) */
    uint64_t before = spans_in_use();
    CHECK(before >= 3);
    mcache_release_all(&A);
    CHECK(s->owner == NULL && s2->owner == NULL && span_of(t)->owner == NULL);
    CHECK(s->where == SPAN_CENTRAL || s->where == SPAN_CENTRAL_FULL);
    /* late frees of A's objects by B: remote frees into unowned spans */
    as(&B);
    for (int i = 0; i < 8; i++)
        if (p[i])
            gm_free(p[i]);
    gm_free(q);
    for (int i = 0; i < 7; i++)
        gm_free(r[i]);
    gm_free(t);
    mcentral_reclaim(); /* collects those frees: every span is empty */
    CHECK(spans_in_use() == 0);
    mcache_release_all(&B);
    mcache_reset(&A, MCACHE_OWN);
    mcache_reset(&B, MCACHE_OWN);
}

/* 5: the set-aside race, one step at a time. */
static void test_dekker(void) {
    as(&A);
    void *p[9];
    for (int i = 0; i < 9; i++)
        p[i] = gm_malloc(SIZE);
    mspan *s = span_of(p[0]);
    CHECK(s->where == SPAN_FULL); /* set aside by the ninth */

    /* freer first: the owner's check sees the bit and keeps the span */
    mspan *c = span_of(p[8]); /* current, 7 free slots */
    for (int i = 0; i < 7; i++)
        (void)gm_malloc(SIZE);
    CHECK(!mspan_can_alloc_fast(c) && !mspan_has_free_slot(c));
    as(&B);
    CHECK(!mspan_free_remote(c, p[8], 0, "free")); /* c->full is 0: no push */
    as(&A);
    CHECK(!mspan_set_aside(c)); /* sees the remote bit, wins its CAS, keeps c */
    CHECK(c->full == 0 && c->fast_owner == &A && c->nlive_aside == 0);

    /* owner's flag store, then the freer's OR and CAS win, then the owner's
     * check: its CAS loses and the span is the freer's to push */
    uint32_t idx = mspan_index(c, p[8]);
    __atomic_store_n(&c->full, 1, __ATOMIC_SEQ_CST); /* owner: step 1 */
    mspan_collect(c); /* the slot freed above is collected... */
    *span_free_word(c, 0) &= ~((uint64_t)1 << idx); /* ...and handed out again */
    c->nlive++;
    as(&B);
    CHECK(mspan_free_remote(c, p[8], idx, "free")); /* freer: OR, sees full, wins */
    as(&A);
    CHECK(!mspan_reclaim_set_aside(c)); /* owner: its CAS loses */
    CHECK(c->full == 0);
    /* the race over, put c back as the owner's current span */
    mspan_collect(c);
    mspan_set_owner(c, &A);
    mcache_release_all(&A);
    as(&B);
    for (int i = 0; i < 8; i++)
        gm_free(p[i]);
    mcache_release_all(&B);
    mcache_reset(&A, MCACHE_OWN);
    mcache_reset(&B, MCACHE_OWN);
}

/* 7 and 11: each misuse in a child, which must abort with the report. */
static void expect_report(const char *what, void (*misuse)(void), const char *report) {
    int fds[2];
    if (!CHECK(pipe(fds) == 0))
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        misuse();
        _exit(0);
    }
    close(fds[1]);
    char buf[512] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    (void)n;
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "%s: child status 0x%x", what, st);
    CHECK_MSG(strstr(buf, report) != NULL, "%s: report '%s'", what, buf);
}

static void expect_double_free(const char *what, void (*misuse)(void)) {
    expect_report(what, misuse, "free(): double free 0x");
}

static void expect_invalid(const char *what, void (*misuse)(void)) {
    expect_report(what, misuse, "free(): invalid pointer 0x");
}

static void owner_twice(void) {
    as(&A);
    void *p = gm_malloc(SIZE);
    gm_free(p);
    gm_free(p);
}

static void remote_twice(void) {
    as(&A);
    void *p = gm_malloc(SIZE);
    as(&B);
    gm_free(p);
    gm_free(p);
}

static void owner_then_remote(void) {
    as(&A);
    void *p = gm_malloc(SIZE);
    gm_free(p);
    as(&B);
    gm_free(p);
}

static void remote_then_owner(void) {
    as(&A);
    void *p = gm_malloc(SIZE);
    as(&B);
    gm_free(p); /* a remote bit */
    as(&A);
    gm_free(p); /* the owner's check sees the remote bit */
}

/* 11: blocked slots.  A span of 48-byte slots has 170 of them in three
 * words: until a word is opened all its slots are blocked in remote[], and
 * in the last word so are the 22 bits past slot 169.  A free of any of them
 * is an invalid pointer, on the owner's path and on the remote one. */
#define BLOCKED_SIZE 48
static slot_stack C_stacks[GM_NUM_SPAN_CLASSES];
static mcache C = {.stack = C_stacks};

/* C's first allocation of the class, from a span no one has used: its
 * first slot, with only word 0 open (else the test is wrong: exit 3, which
 * the callers' checks report). */
static mspan *fresh_span(void **first) {
    as(&C);
    *first = gm_malloc(BLOCKED_SIZE);
    mspan *s = span_of(*first);
    if (*first != (void *)s->base || s->nopen != 1)
        _exit(3);
    return s;
}

static void unopened_by_owner(void) {
    void *p;
    mspan *s = fresh_span(&p);
    gm_free((char *)s->base + 64 * BLOCKED_SIZE); /* slot 64: word 1, not open */
}

static void unopened_by_other(void) {
    void *p;
    mspan *s = fresh_span(&p);
    as(&B);
    gm_free((char *)s->base + 130 * BLOCKED_SIZE); /* word 2, not open */
}

/* The owner opens all three words (170 allocations), then frees slot 170,
 * which lies inside the span's pages but past its last slot. */
static void *past_last(void) {
    void *p[170];
    for (int i = 0; i < 170; i++)
        p[i] = gm_malloc(BLOCKED_SIZE);
    mspan *s = span_of(p[0]);
    if (span_of(p[169]) != s || s->nopen != 3)
        _exit(3); /* not one span from its start: the test is wrong */
    return (char *)s->base + 170 * BLOCKED_SIZE;
}

static void past_last_by_owner(void) {
    as(&C);
    gm_free(past_last());
}

static void past_last_by_other(void) {
    as(&C);
    void *q = past_last();
    as(&B);
    gm_free(q);
}

static void test_blocked_slots(void) {
    void *q[170];
    uint64_t tail = ~(uint64_t)0 << (170 - 128);
    mcache_reset(&C, MCACHE_OWN);
    mspan *s = fresh_span(&q[0]);
    CHECK(s->nelems == 170 && q[0] == (void *)s->base && s->nopen == 1);
    CHECK(*span_remote_word(s, 0) == 0);
    CHECK(*span_remote_word(s, 1) == ~(uint64_t)0 && *span_remote_word(s, 2) == ~(uint64_t)0);
    CHECK(*span_remote_word(s, 4) == ~(uint64_t)0); /* the triple past the last word */
    for (int i = 1; i < 170; i++)
        q[i] = gm_malloc(BLOCKED_SIZE);
    CHECK(s->nopen == 3 && span_of(q[169]) == s);
    CHECK(*span_remote_word(s, 1) == 0 && *span_remote_word(s, 2) == tail);
    CHECK(*span_free_word(s, 2) == 0); /* every slot handed out, none of the tail */
    /* another thread's free; the owner's next malloc collects it, and the
     * blocked bits stay */
    as(&B);
    gm_free(q[150]);
    CHECK(*span_remote_word(s, 2) == (tail | (uint64_t)1 << (150 - 128)));
    as(&C);
    CHECK(gm_malloc(BLOCKED_SIZE) == q[150]);
    CHECK(*span_remote_word(s, 2) == tail && *span_free_word(s, 2) == 0);
    mcache_release_all(&C);
    mcache_reset(&C, MCACHE_OWN);
    expect_invalid("slot of a word not yet opened, by its owner", unopened_by_owner);
    expect_invalid("slot of a word not yet opened, by another thread", unopened_by_other);
    expect_invalid("slot past the last, by its owner", past_last_by_owner);
    expect_invalid("slot past the last, by another thread", past_last_by_other);
}

/* 12: the word in circulation. */
static void test_word_in_circulation(void) {
    void *q[170];
    mcache_reset(&C, MCACHE_OWN);
    mspan *s = fresh_span(&q[0]);
    for (int i = 1; i < 140; i++)
        q[i] = gm_malloc(BLOCKED_SIZE);
    CHECK(s->nopen == 3 && s->cur_w == 2); /* words 0 and 1 used up, 12 slots of word 2 */
    gm_free(q[70]); /* the owner's frees, in words 1 and 0: listed */
    gm_free(q[5]);
    as(&B);
    gm_free(q[3]); /* another thread's, in word 0 */
    as(&C);
    CHECK(gm_malloc(BLOCKED_SIZE) == q[5]); /* the owner's frees, newest first */
    CHECK(gm_malloc(BLOCKED_SIZE) == q[70]);
    for (int i = 140; i < 170; i++) { /* the rest of word 2, lowest first */
        q[i] = gm_malloc(BLOCKED_SIZE);
        CHECK(q[i] == (char *)s->base + (size_t)i * BLOCKED_SIZE);
    }
    CHECK(s->cur_w == 2 && !mspan_can_alloc_fast(s));
    CHECK(*span_remote_word(s, 0) == (uint64_t)1 << 3);      /* not collected yet */
    CHECK(gm_malloc(BLOCKED_SIZE) == q[3] && s->cur_w == 0); /* collected now */
    CHECK(*span_remote_word(s, 0) == 0 && !mspan_has_free_slot(s));
    void *next = gm_malloc(BLOCKED_SIZE);
    CHECK(span_of(next) != s && s->where == SPAN_FULL);
    mcache_release_all(&C);
    mcache_reset(&C, MCACHE_OWN);
}

/* 9: the slot stack. */
#define STACK_SIZE 4096 /* a class with 8 slots per 32 KiB span */

static int listed(mcache *mc, unsigned c) { return (int)mcache_listed(mc, c); }

static void test_slot_stack(void) {
    unsigned rspc = gm_size_to_class(STACK_SIZE);
    unsigned cap = mcache_stack_capacity(&A, rspc);
    CHECK(cap == SLOT_STACK - 1);
    CHECK(mcache_stack_capacity(&A, gm_size_to_class(32768)) == 32); /* 1 MiB */
    as(&A);
    void *p[8];
    for (int i = 0; i < 8; i++)
        p[i] = gm_malloc(STACK_SIZE);
    mspan *s = span_of(p[0]);
    CHECK(s->nelems == 8 && span_of(p[7]) == s && listed(&A, rspc) == 0);

    /* newest first, even above lower free slots; a listed slot is free in
     * the bitmap and still counted in nlive */
    int32_t live = s->nlive;
    gm_free(p[5]);
    gm_free(p[2]);
    gm_free(p[6]);
    CHECK(listed(&A, rspc) == 3 && s->nlive == live);
    CHECK(!mspan_slot_live(s, 2) && !mspan_slot_live(s, 5) && !mspan_slot_live(s, 6));
    CHECK(gm_malloc(STACK_SIZE) == p[6]);
    CHECK(gm_malloc(STACK_SIZE) == p[2]);
    CHECK(gm_malloc(STACK_SIZE) == p[5]);
    CHECK(listed(&A, rspc) == 0 && s->nlive == live && mspan_slot_live(s, 2));

    /* a remote free does not enter A's stack: A's next slot is the bitmap's */
    as(&B);
    gm_free(p[7]);
    CHECK(listed(&B, rspc) == 0);
    as(&A);
    void *q = gm_malloc(STACK_SIZE); /* s has no free slot of its own: collects p[7] */
    CHECK(q == p[7]);

    /* a span whose only slots in use are listed is not empty: A sets s
     * aside (its next span is s2, whose first word the slow path lists),
     * then frees all of s onto its stack */
    void *r = gm_malloc(STACK_SIZE);
    mspan *s2 = span_of(r);
    CHECK(s2 != s && s->where == SPAN_FULL);
    void *r2[8];
    int nr2 = 0;
    while (listed(&A, rspc) > 0) /* take what was listed of s2 */
        r2[nr2++] = gm_malloc(STACK_SIZE);
    CHECK(nr2 == 7 && span_of(r2[6]) == s2);
    for (int i = 0; i < 8; i++)
        gm_free(p[i]);
    CHECK(listed(&A, rspc) == 8 && s->where == SPAN_FULL && s->nlive != 0);
    CHECK(gm_malloc(STACK_SIZE) == p[7]); /* and its slots come back first */
    gm_free(p[7]);
    for (int i = 0; i < nr2; i++)
        gm_free(r2[i]); /* a full stack: the first of these drops half of it */

    /* a full stack drops its older half: a long run of frees keeps its
     * newest listed, in order, and the dropped slots count down their spans
     * at once */
    void *extra[64], *more[SLOT_STACK + 16];
    int nextra = 0, nmore = (int)cap + 17;
    while (listed(&A, rspc) > 0) /* empty the stack: its slots are in use */
        extra[nextra++] = gm_malloc(STACK_SIZE);
    for (int i = 0; i < nmore; i++)
        more[i] = gm_malloc(STACK_SIZE);
    while (listed(&A, rspc) > 0) /* what the slow path listed meanwhile */
        extra[nextra++] = gm_malloc(STACK_SIZE);
    CHECK(nextra <= 64);
    mspan *first = span_of(more[0]);
    int32_t first_live = first->nlive;
    for (int i = 0; i < nmore; i++)
        gm_free(more[i]);
    int kept = listed(&A, rspc);
    CHECK(kept >= (int)cap / 2 && kept < (int)cap);
    CHECK(first->nlive < first_live); /* more[0] was dropped */
    for (int i = 0; i < (int)cap / 2; i++)
        CHECK(gm_malloc(STACK_SIZE) == more[nmore - 1 - i]);
    for (int i = 0; i < (int)cap / 2; i++)
        gm_free(more[nmore - (int)cap / 2 + i]);
    for (int i = 0; i < nextra; i++)
        gm_free(extra[i]);

    /* the smallest stack (the last class's, whose block the tiny class's
     * follows), one free more than it holds: half of it is dropped, the
     * newest is on top, and nothing is written past the block */
    unsigned big = gm_size_to_class(32768), bigcap = mcache_stack_capacity(&A, big);
    CHECK(big + 1 == GM_TINY_SPAN_CLASS && mcache_stack_capacity(&A, GM_TINY_SPAN_CLASS) == SLOT_STACK - 1);
    void *bb[SLOT_STACK];
    for (unsigned i = 0; i <= bigcap; i++)
        bb[i] = gm_malloc(32768);
    void *bx[SLOT_STACK];
    int nbx = 0;
    while (listed(&A, big) > 0) /* what the slow path listed: in use too */
        bx[nbx++] = gm_malloc(32768);
    for (unsigned i = 0; i <= bigcap; i++)
        gm_free(bb[i]);
    CHECK(listed(&A, big) == (int)(bigcap - (bigcap + 1) / 2 + 1));
    CHECK(A.stack[GM_TINY_SPAN_CLASS].entry[0].ref == 0);
    CHECK(gm_malloc(32768) == bb[bigcap]);
    gm_free(bb[bigcap]);
    for (int i = 0; i < nbx; i++)
        gm_free(bx[i]);

    /* GOMALLOC_THREAD_CACHE=32K, for a cache set up under it: a stack of
     * one 32 KiB slot, which each free empties of the one before (half of
     * one slot rounds up), with the tiny class's stack right above it in
     * memory left alone; and a stack of 8 at 4 KiB */
    size_t saved = gm_opt.thread_cache_bytes;
    gm_opt.thread_cache_bytes = 32 << 10;
    /* A reset leaves the stacks' blocks alone (a stack is set up by its
     * class's first listing, which writes its zero bottom entry): what an
     * earlier life left there must never be popped. */
    memset(C_stacks, 0xa5, sizeof C_stacks); /* the tiny class's block keeps it */
    mcache_reset(&C, MCACHE_OWN);
    gm_opt.thread_cache_bytes = saved;
    CHECK(mcache_stack_capacity(&C, big) == 1 && mcache_stack_capacity(&C, rspc) == 8);
    CHECK(C.stack_top[big] == &gm_no_listed_slot && listed(&C, big) == 0);
    as(&C);
    void *c1 = gm_malloc(32768), *c2 = gm_malloc(32768), *c3 = gm_malloc(32768);
    void *cx[8];
    int ncx = 0;
    while (listed(&C, big) > 0)
        cx[ncx++] = gm_malloc(32768);
    gm_free(c1);
    gm_free(c2);
    gm_free(c3);
    CHECK(listed(&C, big) == 1 && C.stack[GM_TINY_SPAN_CLASS].entry[0].ref == 0xa5a5a5a5a5a5a5a5u);
    CHECK(gm_malloc(32768) == c3);
    gm_free(c3);
    for (int i = 0; i < ncx; i++)
        gm_free(cx[i]);
    mcache_release_all(&C);
    mcache_reset(&C, MCACHE_OWN);
    as(&A);

    /* malloc_trim drops the listed slots: spans with nothing else in use
     * empty (and go back), and the stack starts again at its bottom */
    uint64_t before = spans_in_use_of(rspc);
    gm_malloc_trim(0);
    CHECK(listed(&A, rspc) == 0 && spans_in_use_of(rspc) < before);

    /* thread exit with listed slots: they are dropped, every span let go */
    gm_free(r);
    void *t = gm_malloc(STACK_SIZE);
    gm_free(t);
    CHECK(listed(&A, rspc) >= 1);
    mcache_release_all(&A);
    mspan *ts = span_of(t); /* NULL once its span went back to mheap */
    CHECK(listed(&A, rspc) == 0 && (ts == NULL || ts->owner != &A));
    mcache_reset(&A, MCACHE_OWN);
    mcache_release_all(&B);
    mcache_reset(&B, MCACHE_OWN);
}

/* 10: an idle owner's pages. */
static bool slot_in(mspan *s, void *p, uint32_t *idx) {
    if (span_of(p) != s)
        return false;
    *idx = (uint32_t)(((uintptr_t)p - s->base) / SIZE);
    return true;
}

/* Fills a span of the current thread's alone with 8 objects (mcache may
 * hand out a span holding earlier objects first: those go to before[]). */
static mspan *fill_fresh_span(unsigned char **p, void **before, int *nbefore) {
    for (;;) {
        p[0] = gm_malloc(SIZE);
        mspan *t = span_of(p[0]);
        /* a fresh span: the slow path took slot 0 and listed the rest */
        if ((uintptr_t)p[0] == t->base &&
            t->nlive == SPAN_CURRENT_BIAS + 1 + listed(gm_tls.mcache, spc))
            break;
        CHECK(*nbefore < 64);
        before[(*nbefore)++] = p[0];
    }
    for (int i = 1; i < 8; i++)
        p[i] = gm_malloc(SIZE);
    for (int i = 0; i < 8; i++)
        memset(p[i], 0xab, SIZE);
    mspan *s = span_of(p[0]);
    CHECK(s->nelems == 8 && s->npages == 2 && span_of(p[7]) == s); /* slots 0-3: page 0 */
    return s;
}

static void test_idle_owner(void) {
    uint64_t at_start = spans_in_use(); /* earlier steps' objects */
    unsigned char *p[8];
    void *before[64];
    int nbefore = 0;
    as(&A);
    mspan *s = fill_fresh_span(p, before, &nbefore);
    void *q = gm_malloc(SIZE);
    CHECK(s->where == SPAN_FULL);

    as(&B);
    CHECK(mcache_release_others_freed_pages(&A) == 0); /* nothing pushed yet */
    gm_free(p[0]);
    gm_free(p[1]);
    gm_free(p[2]);
    CHECK(A.revisit == s);
    CHECK(mcache_release_others_freed_pages(&A) == 0); /* slot 3 is live */
    CHECK(A.revisit == s && s->revisit_next == NULL && s->aside_released == 3);
    CHECK(p[0][0] == 0xab);

    gm_free(p[3]);
    gm_free(p[4]);
    as(&A);
    gm_free(p[5]); /* the owner's own free: listed, A may hand it out */
    as(&B);
    CHECK(mcache_release_others_freed_pages(&A) == GM_PAGE_SIZE); /* page 0 only */
    CHECK(p[0][0] == 0 && p[3][SIZE - 1] == 0);           /* given back: zero */
    CHECK(p[4][0] == 0xab && p[5][0] == 0xab && p[7][0] == 0xab);
    CHECK(A.revisit == s && s->revisit_next == NULL && s->where == SPAN_FULL);
    CHECK(mcache_release_others_freed_pages(&A) == 0); /* no free since */

    /* A wakes up: its stack first (slot 5, then the current span's 7 free
     * slots, listed when q was taken), then the refill that drains the revisit stack, collects the
     * five remote frees and hands out slots 0-4 */
    as(&A);
    uint32_t seen = 0, idx;
    void *got[13];
    for (int i = 0; i < 13; i++) {
        got[i] = gm_malloc(SIZE);
        memset(got[i], 0xcd, SIZE);
        if (slot_in(s, got[i], &idx)) {
            CHECK(!(seen & (1u << idx)));
            seen |= 1u << idx;
        }
    }
    CHECK(seen == 0x3f && A.revisit == NULL);
    CHECK(s->where == SPAN_CURRENT && s->nlive - SPAN_CURRENT_BIAS == 8);
    CHECK(p[6][0] == 0xab && p[7][SIZE - 1] == 0xab);

    /* a set-aside span that other threads emptied is collected when its
     * owner drains the stack, and goes back at once (malloc_trim drains it
     * here, and gives the spares back) */
    unsigned char *r[8];
    mspan *s3 = fill_fresh_span(r, before, &nbefore);
    void *r9 = gm_malloc(SIZE);
    CHECK(s3->where == SPAN_FULL);
    as(&B);
    for (int i = 0; i < 8; i++)
        gm_free(r[i]);
    CHECK(A.revisit == s3);
    uint64_t n = spans_in_use();
    as(&A);
    mcache_trim();
    CHECK(spans_in_use() == n - 1);

    for (int i = 0; i < 13; i++)
        gm_free(got[i]);
    gm_free(p[6]);
    gm_free(p[7]);
    gm_free(q);
    gm_free(r9);
    for (int i = 0; i < nbefore; i++)
        gm_free(before[i]);
    mcache_release_all(&A);
    mcache_release_all(&B);
    mcentral_reclaim();
    CHECK(spans_in_use() == at_start);
    mcache_reset(&A, MCACHE_OWN);
    mcache_reset(&B, MCACHE_OWN);
}

static void listed_owner_twice(void) {
    as(&A);
    void *p = gm_malloc(STACK_SIZE);
    void *q = gm_malloc(STACK_SIZE);
    gm_free(p);
    gm_free(q);
    gm_free(p); /* p is on the stack, and free in the bitmap */
}

static void listed_then_remote(void) {
    as(&A);
    void *p = gm_malloc(STACK_SIZE);
    gm_free(p);
    as(&B);
    gm_free(p);
}

/* A slot the slow path listed but never handed out: its fresh bit has
 * gone to its stack entry, and a free of it is still an invalid pointer,
 * whoever frees it, on the stack or dropped from it.  (A class no other
 * step uses, so its first span is fresh.) */
#define FRESH_SIZE 6144

static char *listed_never_handed_out(void) {
    as(&A);
    char *p = gm_malloc(FRESH_SIZE);
    mspan *s = span_of(p);
    CHECK((uintptr_t)p == s->base && listed(&A, s->spanclass) >= 1);
    CHECK(!mspan_slot_ever(s, 1) && !(*span_fresh_word(s, 0) & 2)); /* the entry says it */
    return p + FRESH_SIZE; /* slot 1 */
}

static void listed_fresh_by_owner(void) { gm_free(listed_never_handed_out()); }

static void listed_fresh_by_other(void) {
    char *q = listed_never_handed_out();
    as(&B);
    gm_free(q);
}

static void dropped_fresh_by_owner(void) {
    char *q = listed_never_handed_out();
    gm_malloc_trim(0); /* drops the stack: the slot is fresh in its span again */
    CHECK(*span_fresh_word(span_of(q), 0) & 2);
    gm_free(q);
}

/* 8: fork while another thread's cache is in the middle of moving spans. */
#define T_OBJS 200
static void *t_objs[T_OBJS];
static mcache *t_cache;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void *other_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < T_OBJS; i++) {
        t_objs[i] = gm_malloc(i % 3 ? SIZE : 3); /* class SIZE, and tiny pieces */
        memset(t_objs[i], 0x5a, i % 3 ? SIZE : 3);
    }
    /* free some, so it has partial spans and set-aside ones */
    for (int i = 0; i < T_OBJS; i += 7) {
        gm_free(t_objs[i]);
        t_objs[i] = NULL;
    }
    pthread_mutex_lock(&mu);
    t_cache = gm_tls.mcache;
    stage = 1;
    pthread_cond_broadcast(&cv);
    while (stage != 2)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    void *mine[400];
    for (int i = 0; i < 400; i++) {
        mine[i] = gm_malloc(SIZE);
        for (int j = 0; j < T_OBJS; j++)
            if (t_objs[j] == mine[i])
                CHECK_MSG(0, "slot %p handed out while the dead thread's object lives", mine[i]);
    }
    for (int i = 0; i < 400; i++)
        gm_free(mine[i]);
    return NULL;
}

static void test_fork_midway(void) {
    as(&A); /* main thread plays A: a cache outside the registry, survives as self */
    uint64_t base = spans_in_use();
    pthread_t t;
    pthread_create(&t, NULL, other_thread, NULL);
    pthread_mutex_lock(&mu);
    while (stage != 1)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    /* The fork lands as the thread had taken its current span out of the
     * cache and had not yet filed it anywhere, and as it had unlinked its
     * partial list: the cache's own picture is wrong. */
    t_cache->alloc[spc] = &gm_empty_span;
    t_cache->classes[spc].partial = NULL;
    unsigned long failed_before = check_failures();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* the dead thread's live objects are intact and can all be freed */
        for (int i = 0; i < T_OBJS; i++)
            if (t_objs[i] && ((unsigned char *)t_objs[i])[0] != 0x5a)
                CHECK_MSG(0, "object %d damaged in the child", i);
        pthread_t c;
        pthread_create(&c, NULL, child_thread, NULL); /* may reuse the dead cache */
        pthread_join(c, NULL);
        for (int i = 0; i < T_OBJS; i++)
            if (t_objs[i])
                gm_free(t_objs[i]);
        mcache_release_all(&A);
        gm_malloc_trim(0);
        CHECK_MSG(spans_in_use() <= base, "child: %llu spans of the class in use, want %llu",
                  (unsigned long long)spans_in_use(), (unsigned long long)base);
        check_done("fork child");
        _exit(check_failures() != failed_before);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child failed: status 0x%x", st);
    pthread_mutex_lock(&mu);
    stage = 2;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL);
}

int main(void) {
    CHECK(mcache_global_init());
    spc = gm_size_to_class(SIZE);
    mcache_reset(&A, MCACHE_OWN);
    mcache_reset(&B, MCACHE_OWN);
    test_set_aside_and_revisit();
    test_dekker();
    expect_double_free("owner twice", owner_twice);
    expect_double_free("remote twice", remote_twice);
    expect_double_free("owner then remote", owner_then_remote);
    expect_double_free("remote then owner", remote_then_owner);
    test_fork_midway();
    test_slot_stack();
    expect_double_free("owner twice, on the slot stack", listed_owner_twice);
    expect_double_free("listed, then freed by another thread", listed_then_remote);
    expect_invalid("listed, never handed out, freed by its owner", listed_fresh_by_owner);
    expect_invalid("listed, never handed out, freed by another thread", listed_fresh_by_other);
    expect_invalid("listed, never handed out, dropped, freed", dropped_fresh_by_owner);
    test_idle_owner();
    test_blocked_slots();
    test_word_in_circulation();
    return check_done("span_protocol");
}
