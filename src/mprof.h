/*
 * Seeing into the heap: the sampling heap profiler (mprof.c), the
 * observability options, and the outputs written at exit (mstats.c,
 * mheapmap.c).
 *
 * Offered to malloc.c: mprof_alloc, the one countdown on the allocation
 * paths, and mprof_free, called for blocks in spans marked `sampled`.
 */
#ifndef GM_MPROF_H
#define GM_MPROF_H

#include "common.h"

/* Go's default MemProfileRate: one sample per 512 KiB allocated. */
#define GM_PROFILE_RATE_DEFAULT ((size_t)512 << 10)
#define GM_PATH_MAX 1024

/* Options of the observability features, read with the other options. */
typedef struct gm_obs_options {
    bool profile;            /* sampling is on (GOMALLOC_PROFILE or GOMALLOC_LEAKS) */
    bool leaks;              /* GOMALLOC_LEAKS=1: leak report at exit */
    bool stats_json;         /* GOMALLOC_STATS=json */
    int profile_signal;      /* GOMALLOC_PROFILE_SIGNAL: write the profile on it (0: none) */
    int report_pid;          /* GOMALLOC_STATS_PID: only this process reports (0: any) */
    size_t profile_rate;     /* GOMALLOC_PROFILE_RATE: bytes per sample on average */
    char profile_path[GM_PATH_MAX];  /* GOMALLOC_PROFILE (%p: pid) */
    char stats_path[GM_PATH_MAX];    /* GOMALLOC_STATS_FILE (%p: pid) */
    char heap_map_path[GM_PATH_MAX]; /* GOMALLOC_HEAP_MAP (%p: pid) */
} gm_obs_options;

extern gm_obs_options gm_obs GM_INTERNAL;

/* Takes these from gm_opt; options_init calls it once. */
GM_INTERNAL void obs_options_init(void);

/* ---- the sampler ---- */

/* Bytes left before this thread's next sample.  Starts at 0, so a thread's
 * first allocation takes the slow path, which sets the real countdown (or,
 * with profiling off, one so large it never runs out). */
/* (gm_tls.prof_countdown, common.h) */

/* The countdown ran out with the allocation of p (NULL if it failed):
 * records p as a sample if profiling is on, and redraws the countdown. */
GM_INTERNAL void *mprof_alloc_slow(void *p, size_t size, void *ret_addr);

/* Takes size off the countdown: true when this allocation is to be sampled
 * (then pass the block to mprof_alloc_slow). */
static inline bool mprof_countdown(size_t size) {
    /* The countdown is never negative at rest (mprof.c re-arms it with a
     * value in 0..COUNTDOWN_NEVER), so "it ran out" is countdown <= size,
     * unsigned: a failing request of an impossible size counts as due, and
     * its slow path re-arms the countdown. */
#if defined(__x86_64__)
    /* One subtraction from the TLS word, whose flags give the answer: the
     * compiler's version loads, subtracts, stores and tests (three
     * instructions more on every malloc). */
    bool due;
    __asm__("subq %2, %0" : "+m"(gm_tls.prof_countdown), "=@ccbe"(due) : "r"(size));
    return due;
#else
    uintptr_t left = (uintptr_t)gm_tls.prof_countdown;
    gm_tls.prof_countdown = (intptr_t)(left - size);
    return left <= size;
#endif
}

/* Called with every block handed out: a subtraction and a branch.  ret_addr
 * is the return address of the public entry point (the caller's code), where
 * the recorded stack starts. */
static inline void *mprof_alloc(void *p, size_t size, void *ret_addr) {
    if (unlikely(mprof_countdown(size)))
        return mprof_alloc_slow(p, size, ret_addr);
    return p;
}

struct mspan;
/* p is being freed and its span s is marked sampled: forget p if it is a
 * sample.  Called before the block is released. */
GM_INTERNAL void mprof_free(struct mspan *s, const void *p);

/* Writes the heap profile (gzipped pprof protobuf) to path; 0 or -1. */
GM_INTERNAL int mprof_write_path(const char *path);
/* The leak report: stacks still holding sampled memory, largest first. */
GM_INTERNAL void mprof_leak_report(int fd);
/* Samples whose stack came from the stack memo, and those unwound. */
GM_INTERNAL void mprof_stack_stats(uint64_t *remembered, uint64_t *unwound);
/* Sampled blocks still live, and their bytes (unscaled). */
GM_INTERNAL void mprof_inuse(uint64_t *objects, uint64_t *bytes);

/* Installs the GOMALLOC_PROFILE_SIGNAL handler, if one was asked for. */
GM_INTERNAL void mprof_install_signal(void);

/* ---- outputs ---- */

/* Replaces %p in pattern by the pid; false if it does not fit. */
GM_INTERNAL bool obs_expand_path(char *out, size_t cap, const char *pattern);
/* Should this process write its reports at exit (GOMALLOC_STATS_PID)? */
GM_INTERNAL bool obs_this_process_reports(void);

/* The SVG heap map (mheapmap.c). */
GM_INTERNAL int heapmap_write(int fd);

#endif
