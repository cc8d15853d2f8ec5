/*
 * test_calloc_refused: calloc returns zeros even when the kernel refuses to
 * release pages.
 *
 * MADV_DONTNEED fails on mlocked memory and under a seccomp filter that
 * denies madvise.  Pages the allocator failed to release still hold their
 * old bytes, so they must stay "dirty" and calloc must clear them.  Each
 * scenario runs in a child of its own (mlockall and seccomp cannot be
 * undone):
 *
 *  mlockall   mlockall(MCL_CURRENT | MCL_FUTURE) first;
 *  seccomp    a filter that makes madvise fail with EPERM;
 *  mlock      one buffer mlock()ed and freed while still locked.
 *
 * In each, for several sizes (small, large under and over the size where
 * calloc zeroes by releasing, and larger than the freed-run cache), a block
 * is filled with a secret, freed, the heap trimmed (or not), and a calloc of
 * the same size must read all zero.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check.h"

#define SECRET 0xA5

static const size_t sizes[] = {1000, 20000, 64 << 10, 256 << 10, 1 << 20, 3 << 20, 12 << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static size_t first_nonzero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return i;
    return (size_t)-1;
}

/* Fill, free, maybe trim, calloc: the calloc must read zero. */
static void round_trip(const char *scenario, size_t size, int trim, int lock_buffer) {
    unsigned char *p = malloc(size);
    if (!CHECK_MSG(p != NULL, "%s: malloc(%zu)", scenario, size))
        return;
    memset(p, SECRET, size);
    if (lock_buffer && mlock(p, size) != 0) {
        CHECK_MSG(0, "%s: mlock(%zu): errno %d", scenario, size, errno);
        free(p);
        return;
    }
    free(p);
    if (trim)
        malloc_trim(0);
    unsigned char *q = calloc(1, size);
    if (!CHECK_MSG(q != NULL, "%s: calloc(%zu)", scenario, size))
        return;
    size_t bad = first_nonzero(q, size);
    CHECK_MSG(bad == (size_t)-1, "%s: calloc(%zu) after free%s: byte %zu is 0x%02x (same block: %s)",
              scenario, size, trim ? " and trim" : "", bad, bad == (size_t)-1 ? 0 : q[bad],
              q == p ? "yes" : "no");
    if (lock_buffer)
        munlock(q, size);
    free(q);
}

static void all_sizes(const char *scenario, int lock_buffer) {
    for (int trim = 0; trim < 2; trim++)
        for (size_t i = 0; i < NSIZES; i++)
            round_trip(scenario, sizes[i], trim, lock_buffer);
}

static int deny_madvise(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

/* Runs one scenario in a child; its checks count there, its exit status here. */
static void scenario(const char *name, int (*setup)(void), int lock_buffer) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (setup && setup() != 0) {
            CHECK_MSG(0, "%s: setup failed: %s", name, strerror(errno));
            _exit(1);
        }
        /* The refusal is real: madvise itself now fails on heap memory. */
        if (setup) {
            void *probe = malloc(1 << 20);
            memset(probe, 1, 1 << 20);
            void *page = (void *)(((uintptr_t)probe + 4095) & ~(uintptr_t)4095);
            CHECK_MSG(madvise(page, 4096, MADV_DONTNEED) != 0, "%s: madvise still succeeds", name);
            free(probe);
        }
        all_sizes(name, lock_buffer);
        _exit(check_done(name) ? 1 : 0);
    }
    int status = 0;
    CHECK_MSG(pid > 0 && waitpid(pid, &status, 0) == pid, "%s: fork/wait", name);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child failed (status 0x%x)", name,
              status);
    printf("%s: %s\n", name, WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "FAILED");
}

static int lock_all(void) { return mlockall(MCL_CURRENT | MCL_FUTURE); }

int main(void) {
    scenario("plain", NULL, 0);
    scenario("mlock", NULL, 1);
    scenario("mlockall", lock_all, 0);
    scenario("seccomp", deny_madvise, 0);
    return check_done("calloc_refused");
}
