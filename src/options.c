/*
 * Options.  Read from the environment once, when the allocator initialises
 * (the first malloc), without allocating: environ is scanned directly.
 * Unknown or malformed values keep the default.
 */
#include "options.h"

#include "os.h"

#include <string.h>

extern char **environ;

gm_options gm_opt = {
    .tiny = true,
    .stats_at_exit = false,
    .stats_fd = 2,
    .scavenge_delay_ns = 500ull * 1000000,
    .scavenge_tick_ns = 100ull * 1000000,
    .retain_bytes = (size_t)64 << 20,
    .grow_bytes = GM_CHUNK_SIZE,
};

static const char *env(const char *name) {
    size_t n = strlen(name);
    if (!environ)
        return NULL;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static bool env_u64(const char *name, uint64_t *out) {
    const char *v = env(name);
    if (!v || !*v)
        return false;
    uint64_t x = 0;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || x > UINT64_MAX / 10 - 10)
            return false;
        x = x * 10 + (uint64_t)(*v - '0');
    }
    *out = x;
    return true;
}

void options_init(void) {
    /* Once, since other threads may be reading gm_opt by now; but a call
     * made before libc has set up environ (the dynamic loader allocates that
     * early) does not count, and the next one reads the environment. */
    static int done;
    if (!environ || __atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL))
        return;
    uint64_t v;
    if (env_u64("GOMALLOC_TINY", &v))
        gm_opt.tiny = v != 0;
    if (env_u64("GOMALLOC_STATS", &v) && v != 0 && !gm_opt.stats_at_exit) {
        gm_opt.stats_at_exit = true;
        gm_opt.stats_fd = os_dup_high(2);
    }
    if (env_u64("GOMALLOC_SCAVENGE_DELAY_MS", &v) && v < UINT64_MAX / 1000000)
        gm_opt.scavenge_delay_ns = v * 1000000;
    if (env_u64("GOMALLOC_RETAIN_MB", &v) && v < ((uint64_t)1 << 40))
        gm_opt.retain_bytes = (size_t)v << 20;
    if (env_u64("GOMALLOC_BACKGROUND", &v))
        gm_opt.background = v != 0;
    if (env_u64("GOMALLOC_MEMLIMIT_MB", &v) && v < ((uint64_t)1 << 40))
        gm_opt.memlimit_bytes = (size_t)v << 20;
    if (gm_opt.scavenge_delay_ns < gm_opt.scavenge_tick_ns)
        gm_opt.scavenge_tick_ns = gm_opt.scavenge_delay_ns ? gm_opt.scavenge_delay_ns : 1;
}
