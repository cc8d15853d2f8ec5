/*
 * early_lib: a shared library for test_early that allocates from its
 * constructor, while the dynamic loader is still starting the program.
 *
 * Built twice: as libgmt_early_link.so (the test program is linked with it,
 * -l) and with -DEARLY_PRE as libgmt_early_pre.so (loaded with LD_PRELOAD,
 * before or after gomalloc).  The constructor runs early_work() and keeps
 * objects the program frees in main; the destructor allocates and frees
 * again after main has returned, and on any problem ends the process with
 * exit status 5.
 */
#define _GNU_SOURCE
#include <unistd.h>

#include "early.h"

#ifdef EARLY_PRE
#define STATE gmt_early_pre_state
#define NAME "preloaded library constructor"
#define SEED 0x5151
#else
#define STATE gmt_early_link_state
#define NAME "linked library constructor"
#define SEED 0x7171
#endif

__attribute__((visibility("default"))) struct early_state STATE;

__attribute__((constructor)) static void early_lib_init(void) { early_work(&STATE, NAME, SEED); }

__attribute__((destructor)) static void early_lib_fini(void) {
    struct early_state late;
    memset(&late, 0, sizeof late);
    early_work(&late, NAME " (destructor)", SEED + 1);
    early_verify(&late, NULL);
    if (late.errors) {
        const char *m = late.msg;
        if (write(2, m, strlen(m)) < 0 || write(2, "\n", 1) < 0)
            _exit(5);
        _exit(5);
    }
}
