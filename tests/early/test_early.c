/*
 * test_early: allocation before main, from the dynamic loader's time, and
 * from libraries loaded and unloaded at run time.
 *
 *  - A function in the executable's .preinit_array (the first user code the
 *    loader runs, before any library constructor), an executable
 *    constructor of priority 101 and a plain one each malloc, calloc,
 *    realloc, allocate aligned blocks and free (early.h), and keep objects
 *    that main checks and frees.  The priority-101 constructor also runs a
 *    thread that allocates, frees and exits before main.
 *  - libgmt_early_link.so (linked with -l) does the same in its constructor,
 *    and libgmt_early_pre.so when preloaded (GMT_EXPECT_PRE=1); main frees
 *    what they kept.  Their destructors allocate again after main.
 *  - The executable's destructor frees an object kept since the
 *    constructor.
 *  - dlopen() of libgmt_early_dl.so, whose constructor allocates and whose
 *    destructor frees, then dlclose(): the destructor must have run and
 *    found its objects intact, and the library must be gone; 60 more
 *    open/close cycles must not leave objects behind.
 *  - The process holds no C++ runtime (libstdc++ is not mapped), so none of
 *    this leans on its start-up allocations.
 *
 * Usage: test_early DIR   (DIR holds libgmt_early_dl.so)
 * Run with LD_PRELOAD=build/libgomalloc.so (or linked with it) and
 * GMTEST_IMPL=gomalloc; then the objects must also be gomalloc's (its
 * gm_malloc_usable_size, found with dlsym, agrees on each, and a foreign
 * pointer would make its free() abort).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "early.h"
#include "gomalloc.h"

extern struct early_state gmt_early_link_state;

static struct early_state preinit_state, ctor101_state, ctor_state, thread_state;
static void *dtor_keep;
static size_t dtor_keep_size = 777;

static void early_preinit(int argc, char **argv, char **envp) {
    (void)argc, (void)argv, (void)envp;
    early_work(&preinit_state, "preinit_array", 0x1111);
}
__attribute__((section(".preinit_array"), used)) static void (*preinit_fn)(int, char **, char **) =
    early_preinit;

static void *early_thread(void *arg) {
    struct early_state *st = arg;
    early_work(st, "thread started by a constructor", 0x2222);
    /* what it keeps is checked and freed by main */
    return NULL;
}

__attribute__((constructor(101))) static void early_ctor101(void) {
    early_work(&ctor101_state, "constructor(101)", 0x3333);
    pthread_t t;
    if (pthread_create(&t, NULL, early_thread, &thread_state) != 0)
        EARLY_ERR(&ctor101_state, "constructor(101): pthread_create failed");
    else
        pthread_join(t, NULL);
}

__attribute__((constructor)) static void early_ctor(void) {
    early_work(&ctor_state, "constructor", 0x4444);
    dtor_keep = malloc(dtor_keep_size);
    if (dtor_keep)
        gmt_fill(dtor_keep, dtor_keep_size, 0x5555);
}

__attribute__((destructor)) static void early_dtor(void) {
    if (!dtor_keep || gmt_check(dtor_keep, dtor_keep_size, 0x5555) != (size_t)-1) {
        check_say("test_early: destructor: object kept since the constructor is lost or corrupted\n");
        _exit(4);
    }
    free(dtor_keep);
    void *p = malloc(123456);
    if (!p) {
        check_say("test_early: destructor: malloc failed\n");
        _exit(4);
    }
    free(p);
}

static void check_state(struct early_state *st, const char *what, size_t (*usable)(void *)) {
    CHECK_MSG(st->ran, "%s: the early work did not run", what);
    if (!st->ran)
        return;
    early_verify(st, usable);
    CHECK_MSG(st->errors == 0, "%s: %d errors, first: %s", what, st->errors, st->msg);
    CHECK_MSG(st->verified, "%s: not verified", what);
}

static int maps_contain(const char *needle) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            found = 1;
    fclose(f);
    return found;
}

typedef void (*get_stats_fn)(gm_heap_stats *);

static size_t live_objects(get_stats_fn get) {
    gm_heap_stats hs;
    memset(&hs, 0, sizeof hs);
    get(&hs);
    return hs.heap_objects;
}

/* One dlopen/dlclose cycle; returns 0 when the library did all it should. */
static int dl_cycle(const char *path, int verbose) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!CHECK_MSG(h != NULL, "dlopen(%s): %s", path, dlerror()))
        return -1;
    void (*report_to)(int *) = (void (*)(int *))dlsym(h, "gmt_dl_report_to");
    int (*errors)(void) = (int (*)(void))dlsym(h, "gmt_dl_errors");
    const char *(*message)(void) = (const char *(*)(void))dlsym(h, "gmt_dl_message");
    CHECK(report_to && errors && message);
    if (!report_to || !errors || !message) {
        dlclose(h);
        return -1;
    }
    CHECK_MSG(errors() == 0, "dlopen'ed constructor: %s", message());
    int report = 0;
    report_to(&report);
    CHECK_EQ(dlclose(h), 0);
    CHECK_MSG(report == 1, "dlclose: destructor report %d (0: did not run, >1: errors)", report);
    void *again = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    CHECK_MSG(again == NULL, "the library is still loaded after dlclose");
    if (again)
        dlclose(again);
    if (verbose)
        check_say("test_early: dlopen/dlclose: destructor report %d\n", report);
    return report == 1 ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        check_say("usage: %s DIR\n", argv[0]);
        return 2;
    }
    int strict = gmt_strict();
    get_stats_fn get_stats = (get_stats_fn)dlsym(RTLD_DEFAULT, "gm_get_heap_stats");
    size_t (*gm_usable)(void *) = (size_t(*)(void *))dlsym(RTLD_DEFAULT, "gm_malloc_usable_size");
    if (strict) {
        CHECK_MSG(get_stats != NULL, "gomalloc is not loaded (no gm_get_heap_stats)");
        CHECK_MSG(gm_usable != NULL, "gomalloc is not loaded (no gm_malloc_usable_size)");
    } else {
        gm_usable = NULL;
    }

    /* No C++ runtime in the process. */
    CHECK_MSG(maps_contain("libstdc++") == 0, "libstdc++ is mapped into a C program");

    check_state(&preinit_state, "preinit_array", gm_usable);
    check_state(&ctor101_state, "constructor(101)", gm_usable);
    check_state(&thread_state, "thread of constructor(101)", gm_usable);
    check_state(&ctor_state, "constructor", gm_usable);
    check_state(&gmt_early_link_state, "linked library", gm_usable);
    const char *pre = getenv("GMT_EXPECT_PRE");
    if (pre && *pre == '1') {
        struct early_state *ps = (struct early_state *)dlsym(RTLD_DEFAULT, "gmt_early_pre_state");
        if (CHECK_MSG(ps != NULL, "GMT_EXPECT_PRE=1 but libgmt_early_pre.so is not loaded"))
            check_state(ps, "preloaded library", gm_usable);
    }

    /* dlopen at run time */
    char path[4096];
    snprintf(path, sizeof path, "%s/libgmt_early_dl.so", argv[1]);
    dl_cycle(path, 1);
    size_t before = get_stats ? live_objects(get_stats) : 0;
    int bad = 0;
    for (int i = 0; i < 60 && !bad; i++)
        bad = dl_cycle(path, 0) != 0;
    if (get_stats) {
        size_t after = live_objects(get_stats);
        check_say("test_early: live objects before 60 dlopen/dlclose cycles %zu, after %zu\n",
                  before, after);
        CHECK_MSG(after <= before + 16,
                  "60 dlopen/dlclose cycles left %zu objects behind", after - before);
    }
    return check_done("test_early");
}
