/*
 * test_span_guard: the hardened build ends every small-object span with a
 * guard page.  Objects of the 256-byte class fill their 8 KiB spans exactly
 * (a 230-byte request is 256 with the hardened layer's 17 bytes of
 * canary and tail), so a write running 4 KiB past the last slot of a span
 * leaves the span; in
 * the hardened build it must fault (SIGSEGV) at once.  The write is done in
 * a child process.  Run with LD_PRELOAD=build/libgomalloc-hardened.so.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check.h"

#define SLOT 256
#define SPAN 8192
#define REQUEST 230

int main(void) {
    char *last = NULL;
    for (int i = 0; i < 64 && !last; i++) {
        char *p = malloc(REQUEST);
        if (!CHECK(p != NULL))
            return check_done("span_guard");
        /* the hardened layer may put its own header first: the slot's
         * offset in the span tells the last slot either way */
        if (((uintptr_t)p & (SPAN - 1)) >= SPAN - SLOT)
            last = p;
    }
    if (!CHECK_MSG(last != NULL, "no object in the last slot of a span"))
        return check_done("span_guard");
    pid_t pid = fork();
    if (pid == 0) {
        volatile char *q = last;
        for (size_t i = 0; i < 4096; i++)
            q[i] = 1;
        _exit(0);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
              "a write 4 KiB past a span's last slot did not fault (status 0x%x)", st);
    return check_done("span_guard");
}
