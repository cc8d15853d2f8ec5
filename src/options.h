/*
 * Options: read once at initialisation from, in rising precedence, the
 * program's built-in gomalloc_conf string, the GOMALLOC_CONF variable and
 * the GOMALLOC_<NAME> variables.  Offered to every tier as the read-only
 * struct gm_opt.  To add an option: a field here, a default in gm_opt and
 * one OPT(...) line in the table in options.c.
 */
#ifndef GM_OPTIONS_H
#define GM_OPTIONS_H

#include "common.h"

typedef struct gm_options {
    bool tiny;                  /* GOMALLOC_TINY: pack 1-4 B requests (default 1) */
    bool stats_at_exit;         /* GOMALLOC_STATS: heap report on stderr at exit */
    int stats_fd;               /* where that report goes (a duplicate of stderr) */
    uint64_t scavenge_delay_ns; /* GOMALLOC_SCAVENGE_DELAY_MS: free this long -> OS (500) */
    uint64_t scavenge_tick_ns;  /* how often the delay is checked (100 ms) */
    size_t retain_bytes;        /* GOMALLOC_RETAIN(_MB): free memory always kept resident (64M) */
    size_t grow_bytes;          /* the heap grows by at least this much (4 MiB) */
    size_t thread_cache_bytes;  /* GOMALLOC_THREAD_CACHE: a thread's slot stack, per class (1M) */
    size_t memlimit_bytes;      /* GOMALLOC_MEMLIMIT(_MB): soft limit on resident heap (0: none) */
    bool background;            /* GOMALLOC_BACKGROUND=0: no scavenger thread (default on) */
    bool verbose;               /* GOMALLOC_VERBOSE=1: version, path and options at start-up */
    /* Seeing into the heap (mstats.c, mprof.c, mheapmap.c read these through gm_obs). */
    int stats_mode;             /* GOMALLOC_STATS: 0 off, 1 the report, 2 json */
    const char *stats_file;     /* GOMALLOC_STATS_FILE: where the JSON goes (%p: pid) */
    uint32_t stats_pid;         /* GOMALLOC_STATS_PID: only this process reports (0: any) */
    const char *profile;        /* GOMALLOC_PROFILE: heap profile file (%p: pid) */
    size_t profile_rate;        /* GOMALLOC_PROFILE_RATE: bytes per sample (SIZE_MAX: unset) */
    const char *profile_signal; /* GOMALLOC_PROFILE_SIGNAL: USR2, SIGUSR2 or a number */
    bool leaks;                 /* GOMALLOC_LEAKS=1: leak report at exit */
    const char *heap_map;       /* GOMALLOC_HEAP_MAP: SVG heap map file (%p: pid) */
    bool memlimit_hard;         /* GOMALLOC_MEMLIMIT_HARD=1: ENOMEM beyond the limit */
    bool cgroup;                /* GOMALLOC_CGROUP=0: ignore the cgroup's memory limit */
    const char *cgroup_root;    /* GOMALLOC_CGROUP_ROOT: cgroup file systems (/sys/fs/cgroup) */
    int thp;                    /* GOMALLOC_THP=auto|always|never|kernel: GM_THP_* */
} gm_options;

/* GOMALLOC_STATS values. */
enum { GM_STATS_OFF = 0, GM_STATS_TEXT = 1, GM_STATS_JSON = 2 };

/* Huge pages for the heap (see arena.c): ask for them once the heap is
 * large (auto), on all of it (always), on none of it (never), or leave it
 * to the kernel's setting (kernel). */
enum { GM_THP_AUTO = 0, GM_THP_NEVER = 1, GM_THP_ALWAYS = 2, GM_THP_KERNEL = 3 };

extern gm_options gm_opt GM_INTERNAL;

/* Reads the options; safe before libc has finished starting (a call made
 * before environ exists does nothing, and the next one reads them). */
GM_INTERNAL void options_init(void);

#endif
