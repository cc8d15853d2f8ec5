/*
 * early_dl: a library test_early loads with dlopen() at run time.  Its
 * constructor allocates objects of many sizes and keeps them; its destructor
 * (run by dlclose) checks and frees them, and reports through the int the
 * program registered with gmt_dl_report_to(): 1 when all was well, 2 + the
 * number of errors otherwise.
 */
#define _GNU_SOURCE
#include "early.h"

static struct early_state state;
static int *report;
static unsigned init_count;

__attribute__((visibility("default"))) void gmt_dl_report_to(int *where) { report = where; }

__attribute__((visibility("default"))) const char *gmt_dl_message(void) {
    return state.errors ? state.msg : "";
}

__attribute__((visibility("default"))) int gmt_dl_errors(void) { return state.errors; }

__attribute__((constructor)) static void early_dl_init(void) {
    init_count++;
    early_work(&state, "dlopen'ed library constructor", 0x9191 + init_count);
}

__attribute__((destructor)) static void early_dl_fini(void) {
    early_verify(&state, NULL);
    if (report)
        *report = state.errors ? 2 + state.errors : 1;
}
