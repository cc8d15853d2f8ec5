/*
 * The OS layer.  Owns every system call the allocator makes: mmap/mprotect/
 * madvise for memory, futex for the lock's slow path, clock_gettime for the
 * scavenger's clock, write for reports.  Nothing here allocates, and nothing
 * here takes an allocator lock, so any tier may call it at any time.
 *
 * Memory states follow Go's mem.go: reserved (PROT_NONE, no cost; used only
 * to probe for free address space), committed (mapped read-write and charged
 * to the kernel's commit limit, costs RSS only once touched), released
 * (MADV_DONTNEED: stays committed, RSS returned, reads as zero).  Every call
 * keeps errno as it was and reports failure in its return value.
 */
#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static size_t metadata_bytes;

#ifdef GM_FAULT_INJECT
/* Test builds only (tests/fault/): the armed call of the chosen kinds, and
 * with `sticky` every one after it, fails as the kernel would. */
static unsigned fault_kinds;
static long fault_countdown;
static bool fault_sticky;
static long fault_calls[3];

void gm_fault_arm(unsigned kinds, long nth, bool sticky) {
    __atomic_store_n(&fault_countdown, nth, __ATOMIC_RELAXED);
    fault_sticky = sticky;
    __atomic_store_n(&fault_kinds, kinds, __ATOMIC_RELEASE);
}

long gm_fault_calls(unsigned kind) {
    return __atomic_load_n(&fault_calls[__builtin_ctz(kind)], __ATOMIC_RELAXED);
}

static bool fault_now(unsigned kind) {
    __atomic_fetch_add(&fault_calls[__builtin_ctz(kind)], 1, __ATOMIC_RELAXED);
    if (!(__atomic_load_n(&fault_kinds, __ATOMIC_ACQUIRE) & kind))
        return false;
    long left = __atomic_sub_fetch(&fault_countdown, 1, __ATOMIC_RELAXED);
    return left == 0 || (left < 0 && fault_sticky);
}
#else
#define fault_now(kind) false
#endif

void *os_reserve_at(uintptr_t hint, size_t bytes) {
    if (fault_now(GM_FAULT_MMAP))
        return NULL;
    int saved = errno;
    void *p = mmap((void *)hint, bytes, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    errno = saved;
    if (p == MAP_FAILED)
        return NULL;
    if ((uintptr_t)p != hint) { /* kernels before 4.17 treat the flag as a hint */
        munmap(p, bytes);
        return NULL;
    }
    return p;
}

int os_map_at(uintptr_t addr, size_t bytes) {
    /* Fault injection counts this as the commit step (GM_FAULT_MPROTECT:
     * the commit used to be an mprotect). */
    if (fault_now(GM_FAULT_MPROTECT))
        return ENOMEM;
    int saved = errno;
    /* Read-write and without MAP_NORESERVE: the kernel charges the mapping
     * to the commit limit now, so under its overcommit rules an impossible
     * request fails here (ENOMEM) instead of meeting the OOM killer later. */
    void *p = mmap((void *)addr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    int err = p == MAP_FAILED ? errno : 0;
    errno = saved;
    if (err)
        return err == EEXIST ? EEXIST : ENOMEM;
    if ((uintptr_t)p != addr) { /* kernels before 4.17 treat the flag as a hint */
        munmap(p, bytes);
        return EEXIST;
    }
    return 0;
}

void os_hugepages(void *addr, size_t bytes, bool want) {
    int saved = errno;
    madvise(addr, bytes, want ? MADV_HUGEPAGE : MADV_NOHUGEPAGE); /* advice only */
    errno = saved;
}

bool os_release(void *addr, size_t bytes) {
    if (fault_now(GM_FAULT_MADVISE))
        return false;
    int saved = errno;
    /* The kernel refuses for mlocked pages (EINVAL) and a seccomp filter may
     * deny the call: then the pages keep their contents, and the caller
     * must go on treating them as dirty. */
    bool ok = madvise(addr, bytes, MADV_DONTNEED) == 0;
    errno = saved;
    return ok;
}

/* Address space kept back for metadata.  The heap grows until the kernel
 * refuses (RLIMIT_AS, the commit limit); the metadata that freed heap
 * memory needs to be used again (a span struct of a new size, a segment of
 * page-allocator state) must not then be refused too.  So a reservation
 * is kept (PROT_NONE, refilled by os_keep_metadata_reserve each time the
 * heap grows) and metadata is cut from it when a fresh mapping fails. */
#define META_RESERVE ((size_t)2 << 20)
static gm_lock_t reserve_lock = GM_LOCK_INIT; /* metadata comes from several tiers' locks */
static char *reserve_cur;
static size_t reserve_left;

void os_keep_metadata_reserve(void) {
    if (__atomic_load_n(&reserve_left, __ATOMIC_RELAXED))
        return;
    int saved = errno;
    void *p = mmap(NULL, META_RESERVE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    errno = saved;
    if (p == MAP_FAILED)
        return;
    gm_lock(&reserve_lock);
    if (reserve_left) { /* refilled meanwhile */
        gm_unlock(&reserve_lock);
        os_unmap(p, META_RESERVE);
        return;
    }
    reserve_cur = p;
    __atomic_store_n(&reserve_left, META_RESERVE, __ATOMIC_RELAXED);
    gm_unlock(&reserve_lock);
}

static void *from_reserve(size_t bytes) {
    bytes = (bytes + 4095) & ~(size_t)4095;
    void *p = NULL;
    gm_lock(&reserve_lock);
    if (bytes <= reserve_left && mprotect(reserve_cur, bytes, PROT_READ | PROT_WRITE) == 0) {
        p = reserve_cur;
        reserve_cur += bytes;
        __atomic_store_n(&reserve_left, reserve_left - bytes, __ATOMIC_RELAXED);
    }
    gm_unlock(&reserve_lock);
    return p;
}

void os_fork_child(void) { gm_lock_reinit(&reserve_lock); }

bool os_protect(void *addr, size_t bytes, bool accessible) {
    if (fault_now(GM_FAULT_MPROTECT))
        return false;
    int saved = errno;
    bool ok = mprotect(addr, bytes, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
    errno = saved;
    return ok;
}

bool os_each_map_line(bool (*fn)(const char *line, void *arg), void *arg) {
    int saved = errno;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return false;
    }
    char chunk[1024], line[512];
    size_t len = 0;
    bool more = true;
    ssize_t got;
    while (more && (got = read(fd, chunk, sizeof chunk)) > 0) {
        for (ssize_t i = 0; i < got && more; i++) {
            if (chunk[i] != '\n') {
                if (len + 1 < sizeof line)
                    line[len++] = chunk[i];
                continue;
            }
            line[len] = 0;
            len = 0;
            more = fn(line, arg);
        }
    }
    close(fd);
    errno = saved;
    return true;
}

/* A metadata mapping just made at p: advised off huge pages, and counted.
 * Metadata is touched sparsely: under a kernel THP mode of "always" a huge
 * page would make a few written words cost 2 MiB.  The advice is refused
 * only by a kernel without THP (EINVAL, and then no huge page can back it)
 * or a seccomp filter; the mapping is as usable either way, and a refusal
 * costs at most that memory, so there is nothing to undo. */
static void metadata_mapped(void *p, size_t bytes) {
    (void)madvise(p, bytes, MADV_NOHUGEPAGE);
    __atomic_fetch_add(&metadata_bytes, bytes, __ATOMIC_RELAXED);
}

void *os_alloc_metadata_aligned(size_t bytes, size_t align) {
    if (fault_now(GM_FAULT_MMAP))
        return NULL;
    int saved = errno;
    /* Over-map by the alignment and cut the excess off both ends; from the
     * reserve, the excess is simply left unused. */
    size_t span = bytes + (align > 4096 ? align : 0);
    char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    char *p = NULL;
    if (raw != MAP_FAILED) {
        p = (char *)gm_align_up((uintptr_t)raw, align);
        if (p > raw)
            munmap(raw, (size_t)(p - raw));
        if (raw + span > p + bytes)
            munmap(p + bytes, (size_t)(raw + span - (p + bytes)));
    } else if (__atomic_load_n(&reserve_left, __ATOMIC_RELAXED)) {
        raw = from_reserve(span);
        p = raw ? (char *)gm_align_up((uintptr_t)raw, align) : NULL;
    }
    if (p)
        metadata_mapped(p, bytes);
    errno = saved;
    return p;
}

void *os_alloc_metadata(size_t bytes) { return os_alloc_metadata_aligned(bytes, 4096); }

int os_alloc_metadata_at(uintptr_t addr, size_t bytes) {
    if (fault_now(GM_FAULT_MMAP))
        return ENOMEM;
    int saved = errno;
    void *p = mmap((void *)addr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    int err = p == MAP_FAILED ? errno : 0;
    if (!err && (uintptr_t)p != addr) { /* kernels before 4.17 treat the flag as a hint */
        munmap(p, bytes);
        err = EEXIST;
    }
    if (!err)
        metadata_mapped(p, bytes);
    errno = saved;
    if (err)
        return err == EEXIST ? EEXIST : ENOMEM;
    return 0;
}

void os_unmap(void *addr, size_t bytes) {
    int saved = errno;
    munmap(addr, bytes);
    errno = saved;
}

int os_dup_high(int fd) {
    int saved = errno;
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 900);
    if (d < 0) /* a descriptor limit under 900: any free number will do */
        d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    errno = saved;
    if (d >= 0)
        os_fd_remember(d);
    return d;
}

size_t os_metadata_bytes(void) { return __atomic_load_n(&metadata_bytes, __ATOMIC_RELAXED); }

ssize_t os_read_file(const char *path, char *buf, size_t size) {
    int saved = errno;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = -1;
    if (fd >= 0) {
        n = 0;
        while ((size_t)n + 1 < size) {
            ssize_t r = read(fd, buf + n, size - 1 - (size_t)n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            n += r;
        }
        buf[n] = 0;
        close(fd);
    }
    errno = saved;
    return n;
}

uint64_t os_random(void) {
    uint64_t r = 0;
    int saved = errno;
    long got = syscall(SYS_getrandom, &r, sizeof r, 1 /* GRND_NONBLOCK */);
    errno = saved;
    if (got != (long)sizeof r) { /* no entropy yet: the clock and ASLR'd stack still differ */
        r = gm_nanotime() ^ ((uint64_t)(uintptr_t)&r << 17);
    }
    /* splitmix64 finaliser: spreads whatever entropy there is over all bits */
    r ^= r >> 30, r *= 0xbf58476d1ce4e5b9ull;
    r ^= r >> 27, r *= 0x94d049bb133111ebull;
    return r ^ (r >> 31);
}

void os_futex_wait(int *word, int val, uint64_t timeout_ns) {
    int saved = errno;
    struct timespec ts = { (time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u) };
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
    errno = saved;
}

void os_sleep(uint64_t ns) {
    int saved = errno;
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    errno = saved;
}

void os_futex_wake(int *word) {
    int saved = errno;
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

/* ---- lock slow path (Drepper, "Futexes Are Tricky", mutex 2) ---- */

static long futex(int *uaddr, int op, int val) {
    return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

void gm_lock_slow(gm_lock_t *l) {
    int saved = errno;
    for (int spin = 0; spin < 100; spin++) {
        if (__atomic_load_n(&l->word, __ATOMIC_RELAXED) == 0 && gm_trylock(l)) {
            errno = saved;
            return;
        }
        __builtin_ia32_pause();
    }
    while (__atomic_exchange_n(&l->word, 2, __ATOMIC_ACQUIRE) != 0)
        futex(&l->word, FUTEX_WAIT_PRIVATE, 2);
    errno = saved;
}

void gm_unlock_wake(gm_lock_t *l) {
    int saved = errno;
    futex(&l->word, FUTEX_WAKE_PRIVATE, 1);
    errno = saved;
}

uint64_t gm_nanotime(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- reporting without malloc or stdio ---- */

void gm_write_all(int fd, const char *s, size_t n) {
    int saved = errno;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        s += w;
        n -= (size_t)w;
    }
    errno = saved;
}

static size_t fmt_unsigned(char *tmp, unsigned long long v, unsigned base) {
    size_t n = 0;
    do {
        unsigned d = (unsigned)(v % base);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    return n; /* digits, reversed */
}

int gm_snprintf(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t out = 0;
#define PUT(c) do { if (out + 1 < size) buf[out] = (c); out++; } while (0)
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') { PUT(*f); continue; }
        f++;
        bool left = false;
        if (*f == '-') { left = true; f++; }
        int width = 0;
        while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
        int longs = 0;
        bool sz = false;
        while (*f == 'l') { longs++; f++; }
        if (*f == 'z') { sz = true; f++; }
        char tmp[32];
        size_t n = 0;
        const char *str = NULL;
        bool neg = false;
        switch (*f) {
        case 's': str = va_arg(ap, const char *); if (!str) str = "(null)"; break;
        case 'd': {
            long long v = longs ? va_arg(ap, long long) : va_arg(ap, int);
            if (v < 0) { neg = true; v = -v; }
            n = fmt_unsigned(tmp, (unsigned long long)v, 10);
            break;
        }
        case 'u': case 'x': {
            unsigned long long v = sz ? va_arg(ap, size_t)
                                 : longs ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
            n = fmt_unsigned(tmp, v, *f == 'x' ? 16 : 10);
            break;
        }
        case 'p': {
            uintptr_t v = (uintptr_t)va_arg(ap, void *);
            n = fmt_unsigned(tmp, v, 16);
            tmp[n++] = 'x';
            tmp[n++] = '0';
            break;
        }
        case '%': PUT('%'); continue;
        default: continue;
        }
        size_t len = str ? __builtin_strlen(str) : n + neg;
        int pad = width > (int)len ? width - (int)len : 0;
        if (!left) while (pad-- > 0) PUT(' ');
        if (str) { while (*str) PUT(*str++); }
        else { if (neg) PUT('-'); while (n) PUT(tmp[--n]); }
        if (left) while (pad-- > 0) PUT(' ');
    }
#undef PUT
    if (size) buf[out < size ? out : size - 1] = 0;
    va_end(ap);
    return (int)out;
}

void gm_fatal(const char *msg, const void *addr) {
    char buf[256];
    int n = addr ? gm_snprintf(buf, sizeof buf, "gomalloc: %s %p\n", msg, addr)
                 : gm_snprintf(buf, sizeof buf, "gomalloc: %s\n", msg);
    gm_write_all(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    abort();
}

void gm_warn(const char *msg) {
    char buf[256];
    int n = gm_snprintf(buf, sizeof buf, "gomalloc: warning: %s\n", msg);
    gm_write_all(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

void gm_bad_pointer_hint(const char *caller, const void *p, bool already_freed,
                         size_t block_size, bool interior) {
    char msg[160];
    bool dfree = already_freed && __builtin_strcmp(caller, "free") == 0;
    int n = gm_snprintf(msg, sizeof msg, "gomalloc: %s(): %s %p: ", caller,
                        dfree ? "double free" : "invalid pointer", p);
    if (interior)
        n += gm_snprintf(msg + n, sizeof msg - (size_t)n,
                         "inside a %zu-byte block, not at its start\n", block_size);
    else
        n += gm_snprintf(msg + n, sizeof msg - (size_t)n, "a %zu-byte block, %s\n", block_size,
                         already_freed ? "already freed" : "never handed out");
    gm_write_all(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    abort();
}

void gm_bad_pointer(const char *caller, const void *p, bool already_freed) {
    char msg[64];
    bool dfree = already_freed && __builtin_strcmp(caller, "free") == 0;
    gm_snprintf(msg, sizeof msg, "%s(): %s", caller, dfree ? "double free" : "invalid pointer");
    gm_fatal(msg, p);
}

/* ---- report descriptors ----
 *
 * A duplicate made by os_dup_high is ours only as long as the program has
 * not closed it: a program that closes every descriptor and opens files may
 * get the same number back for a file of its own.  So the duplicate's
 * identity (device and inode) is kept, and checked before each report. */

#define REMEMBERED_FDS 4
static struct { int fd; dev_t dev; ino_t ino; } remembered[REMEMBERED_FDS];
static int nremembered;

void os_fd_remember(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        return;
    int i = __atomic_fetch_add(&nremembered, 1, __ATOMIC_RELAXED);
    if (i >= REMEMBERED_FDS)
        return;
    remembered[i].fd = fd;
    remembered[i].dev = st.st_dev;
    remembered[i].ino = st.st_ino;
}

bool os_fd_is_ours(int fd) {
    if (fd < 0)
        return false;
    int saved = errno;
    struct stat st;
    bool ok = fstat(fd, &st) == 0;
    errno = saved;
    int n = __atomic_load_n(&nremembered, __ATOMIC_RELAXED);
    for (int i = 0; ok && i < n && i < REMEMBERED_FDS; i++)
        if (remembered[i].fd == fd)
            return remembered[i].dev == st.st_dev && remembered[i].ino == st.st_ino;
    return false;
}

void os_free_metadata(void *addr, size_t bytes) {
    os_unmap(addr, bytes);
    __atomic_fetch_sub(&metadata_bytes, bytes, __ATOMIC_RELAXED);
}
