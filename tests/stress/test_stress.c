/*
 * test_stress: gomalloc under many threads.
 *
 * - Worker threads, one per slot, allocate random sizes (tiny 1-15 B, small,
 *   medium, large up to 2 MiB) with malloc, calloc, aligned_alloc and
 *   realloc, write a pattern derived from each object's address and size,
 *   and check it before every realloc and free.
 * - Objects travel to other slots through queues and are freed (or
 *   realloc'ed, then freed) there: cross-thread frees.
 * - Workers end after a random number of operations and the main thread
 *   starts a new one in their slot while the others run, so spans of exited
 *   threads are freed into by live ones.
 * - The main thread is an idle owner: every FEED_S it allocates FEED_OBJS
 *   objects, hands them to the workers to free, and otherwise makes no
 *   allocator call, so other threads give back the pages their frees empty
 *   in its spans while it sleeps, and its next batch reuses those slots.
 *   Workers now and then call malloc_trim, which does the same for every
 *   thread, busy or not.
 * - The main thread forks while the workers allocate; each child must
 *   malloc and free a lot (and start a thread of its own) and exit 0; the
 *   parent waits with a timeout.
 * - A watchdog (alarm) turns a deadlock into a failure.
 *
 * Built with the standard names (run with LD_PRELOAD) and, with -DAPI_GM,
 * against gomalloc's sources directly for ThreadSanitizer, UBSan and ASan.
 *
 * Options: --seconds S (default 12)  --slots N (default 6)  --no-fork
 *          --no-child-threads  --max-large BYTES (default 2 MiB)
 *          --ops N (a thread does N/10 to 1.1 N operations; default 20000)
 *          --child-rounds N (work of each forked child; default 10)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../check.h"
#include "../common.h"

#define MAX_SLOTS 16
#define QCAP 4096
#define HELD 512
#define FEED_OBJS 300
#define FEED_S 0.25
#define TRIM_EVERY 20000 /* operations of a worker, on average */

static double opt_seconds = 12;
static int opt_slots = 6;
static int opt_fork = 1;
static int opt_child_threads = 1;
static size_t opt_max_large = 2u << 20;
static unsigned long opt_ops = 20000; /* most operations of one thread */
static int opt_child_rounds = 10;

struct obj {
    void *p;
    size_t n;
};

struct queue {
    pthread_mutex_t mu;
    struct obj items[QCAP];
    int head, count;
    char pad[64];
};

static struct queue queues[MAX_SLOTS];

struct slot {
    pthread_t tid;
    int running;       /* a thread is (or was) started and not yet joined */
    int done;          /* set by the thread when it ends (atomic) */
    unsigned gen;
    unsigned long ops; /* operations to do */
};

static struct slot slots[MAX_SLOTS];
static unsigned long total_ops, total_remote, total_threads, total_forks, total_reallocs;

/* ---- the content pattern: a function of address and size ---- */

static inline uint64_t pat_seed(const void *p, size_t n) {
    return (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ULL ^ (uint64_t)n * 0xC2B2AE3D27D4EB4FULL;
}

/* Small objects are filled entirely; bigger ones at the head, the tail and
 * 16 bytes in every KiB. */
static void pat_fill(void *vp, size_t n) {
    uint8_t *p = vp;
    uint64_t s = pat_seed(vp, n);
    if (n <= 1024) {
        gmt_fill_range(p, 0, n, s);
        return;
    }
    gmt_fill_range(p, 0, 256, s);
    for (size_t off = 1024; off + 16 <= n - 256; off += 1024)
        gmt_fill_range(p, off, off + 16, s);
    gmt_fill_range(p, n - 256, n, s);
}

/* Checks the pattern an object of n bytes at p got, limited to its first
 * `limit` bytes, against `seed_p` (its address when it was filled). */
static size_t pat_check_as(const void *vp, uintptr_t seed_p, size_t n, size_t limit) {
    const uint8_t *p = vp;
    uint64_t s = pat_seed((const void *)seed_p, n);
    size_t bad, lim = limit < n ? limit : n;
    if (n <= 1024)
        return gmt_check_range(p, 0, lim, s);
    if ((bad = gmt_check_range(p, 0, lim < 256 ? lim : 256, s)) != (size_t)-1)
        return bad;
    for (size_t off = 1024; off + 16 <= n - 256 && off + 16 <= lim; off += 1024)
        if ((bad = gmt_check_range(p, off, off + 16, s)) != (size_t)-1)
            return bad;
    if (n - 256 < lim)
        return gmt_check_range(p, n - 256, lim, s);
    return (size_t)-1;
}

static void obj_check(const struct obj *o, const char *where) {
    size_t bad = pat_check_as(o->p, (uintptr_t)o->p, o->n, o->n);
    CHECK_MSG(bad == (size_t)-1, "%s: object %p (%zu bytes) corrupted at offset %zu", where, o->p,
              o->n, bad);
}

/* ---- sizes ---- */

static size_t pick_size(uint64_t *rng) {
    uint64_t r = gmt_rand(rng);
    unsigned k = (unsigned)(r % 1000);
    r >>= 10;
    if (k < 400)
        return 1 + r % 15;
    if (k < 750)
        return 16 + r % 1009;
    if (k < 920)
        return 1025 + r % (32768 - 1024);
    if (k < 990)
        return 32769 + r % (262144 - 32768);
    return 262145 + r % (opt_max_large - 262144);
}

static struct obj new_obj(uint64_t *rng) {
    struct obj o;
    size_t n = pick_size(rng);
    unsigned how = (unsigned)(gmt_rand(rng) % 16);
    void *p;
    if (how == 0) {
        p = API(calloc)(1, n);
        if (p) {
            size_t bad = gmt_check_zero(p, n <= 65536 ? n : 65536);
            CHECK_MSG(bad == (size_t)-1, "calloc(%zu) = %p not zero at %zu", n, p, bad);
        }
    } else if (how == 1) {
        size_t a = (size_t)1 << (4 + gmt_rand(rng) % 9); /* 16 .. 4096 */
        n = (n + a - 1) & ~(a - 1); /* C11's aligned_alloc wants a multiple */
        p = API(aligned_alloc)(a, n);
        if (p)
            CHECK_MSG(((uintptr_t)p & (a - 1)) == 0, "aligned_alloc(%zu, %zu) = %p", a, n, p);
    } else {
        p = API(malloc)(n);
    }
    CHECK_MSG(p != NULL, "allocation of %zu bytes failed", n);
    if (p && n >= 16)
        CHECK_MSG(((uintptr_t)p & 15) == 0, "%zu-byte object %p not 16-aligned", n, p);
    o.p = p;
    o.n = p ? n : 0;
    if (p)
        pat_fill(p, n);
    return o;
}

static void obj_free(struct obj *o, const char *where) {
    if (!o->p)
        return;
    obj_check(o, where);
    API(free)(o->p);
    o->p = NULL;
}

/* realloc keeps the head; the object then gets the new address's pattern */
static void obj_realloc(struct obj *o, uint64_t *rng, const char *where) {
    if (!o->p)
        return;
    obj_check(o, where);
    size_t n = pick_size(rng);
    uintptr_t old = (uintptr_t)o->p;
    void *q = API(realloc)(o->p, n);
    if (!CHECK_MSG(q != NULL, "realloc(%#lx, %zu) failed", (unsigned long)old, n))
        return;
    size_t keep = n < o->n ? n : o->n;
    size_t bad = pat_check_as(q, old, o->n, keep);
    CHECK_MSG(bad == (size_t)-1, "%s: realloc %zu -> %zu lost byte %zu", where, o->n, n, bad);
    o->p = q;
    o->n = n;
    pat_fill(q, n);
}

/* ---- queues ---- */

static int q_push(int slot, struct obj o) {
    struct queue *q = &queues[slot];
    int ok = 0;
    pthread_mutex_lock(&q->mu);
    if (q->count < QCAP) {
        q->items[(q->head + q->count) % QCAP] = o;
        q->count++;
        ok = 1;
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

static int q_pop_many(int slot, struct obj *out, int max) {
    struct queue *q = &queues[slot];
    int n = 0;
    pthread_mutex_lock(&q->mu);
    while (n < max && q->count > 0) {
        out[n++] = q->items[q->head];
        q->head = (q->head + 1) % QCAP;
        q->count--;
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

static unsigned long drain(int slot, uint64_t *rng) {
    struct obj got[256];
    unsigned long freed = 0;
    int n;
    while ((n = q_pop_many(slot, got, 256)) > 0) {
        for (int i = 0; i < n; i++) {
            if (gmt_rand(rng) % 4 == 0) {
                obj_realloc(&got[i], rng, "remote realloc");
                __atomic_fetch_add(&total_reallocs, 1, __ATOMIC_RELAXED);
            }
            obj_free(&got[i], "remote free");
        }
        freed += (unsigned long)n;
    }
    return freed;
}

/* ---- workers ---- */

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    struct slot *s = &slots[me];
    uint64_t rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)me << 40) ^ ((uint64_t)s->gen << 8) ^ 1;
    struct obj held[HELD];
    int nheld = 0;
    unsigned long remote = 0;
    for (unsigned long i = 0; i < s->ops; i++) {
        unsigned act = (unsigned)(gmt_rand(&rng) % 100);
        if (act < 45 && nheld < HELD) {
            struct obj o = new_obj(&rng);
            if (o.p)
                held[nheld++] = o;
        } else if (act < 70 && nheld > 0) {
            int k = (int)(gmt_rand(&rng) % (uint64_t)nheld);
            obj_free(&held[k], "local free");
            held[k] = held[--nheld];
        } else if (act < 90 && nheld > 0) {
            int k = (int)(gmt_rand(&rng) % (uint64_t)nheld);
            int to = (int)(gmt_rand(&rng) % (uint64_t)opt_slots);
            if (to == me)
                to = (to + 1) % opt_slots;
            if (q_push(to, held[k])) {
                held[k] = held[--nheld];
            } else {
                obj_free(&held[k], "local free (queue full)");
                held[k] = held[--nheld];
            }
        } else if (act < 95 && nheld > 0) {
            int k = (int)(gmt_rand(&rng) % (uint64_t)nheld);
            obj_realloc(&held[k], &rng, "local realloc");
        } else if (gmt_rand(&rng) % (TRIM_EVERY / 5) == 0) {
            API(malloc_trim)(0);
        } else {
            remote += drain(me, &rng);
        }
    }
    /* leave some objects behind for other threads to free after we exit */
    for (int k = 0; k < nheld; k++) {
        int to = (int)(gmt_rand(&rng) % (uint64_t)opt_slots);
        if (k % 2 == 0 && to != me && q_push(to, held[k]))
            continue;
        obj_free(&held[k], "exit free");
    }
    remote += drain(me, &rng);
    __atomic_fetch_add(&total_ops, s->ops, __ATOMIC_RELAXED);
    __atomic_fetch_add(&total_remote, remote, __ATOMIC_RELAXED);
    __atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void start_worker(int i, uint64_t *rng) {
    struct slot *s = &slots[i];
    s->gen++;
    s->ops = opt_ops / 10 + gmt_rand(rng) % opt_ops;
    s->done = 0;
    int r = pthread_create(&s->tid, NULL, worker, (void *)(intptr_t)i);
    if (!CHECK_MSG(r == 0, "pthread_create: %s", strerror(r))) {
        s->running = 0;
        return;
    }
    s->running = 1;
    total_threads++;
}

/* ---- the idle owner ---- */

static unsigned long total_fed;

/* The main thread allocates a batch and hands it all to the workers. */
static void feed_workers(uint64_t *rng) {
    for (int k = 0; k < FEED_OBJS; k++) {
        struct obj o = new_obj(rng);
        if (!o.p)
            continue;
        if (!q_push((int)(gmt_rand(rng) % (uint64_t)opt_slots), o))
            obj_free(&o, "feed free (queue full)");
        else
            total_fed++;
    }
}

/* ---- fork ---- */

static void *child_thread(void *arg) {
    uint64_t rng = (uint64_t)(uintptr_t)arg | 1;
    for (int i = 0; i < 2000 * opt_child_rounds; i++) {
        struct obj o = new_obj(&rng);
        obj_free(&o, "child thread");
    }
    return NULL;
}

static void child_work(unsigned seed) {
    alarm(30);
    unsigned long inherited = check_failures(); /* the parent's, not ours */
    uint64_t rng = 0xABCDEF ^ seed;
    enum { N = 2000 };
    static struct obj objs[N];
    pthread_t t;
    int have_thread = opt_child_threads && pthread_create(&t, NULL, child_thread, (void *)12345) == 0;
    for (int round = 0; round < opt_child_rounds; round++) {
        for (int i = 0; i < N; i++)
            objs[i] = new_obj(&rng);
        for (int i = 0; i < N; i += 2)
            obj_realloc(&objs[i], &rng, "child realloc");
        for (int i = 0; i < N; i++)
            obj_free(&objs[i], "child free");
    }
    if (have_thread)
        pthread_join(t, NULL);
    exit(check_failures() > inherited ? 1 : 0);
}

static void do_fork(unsigned seed) {
    fflush(NULL);
    pid_t pid = fork();
    if (!CHECK_MSG(pid >= 0, "fork: %s", strerror(errno)))
        return;
    if (pid == 0)
        child_work(seed);
    total_forks++;
    double deadline = gmt_now() + 40;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            CHECK_MSG(0, "waitpid: %s", strerror(errno));
            return;
        }
        if (gmt_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            CHECK_MSG(0, "forked child %d made no progress in 40 s (deadlock after fork?)", (int)pid);
            return;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "forked child: %s %d", WIFEXITED(status) ? "exit" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* ---- watchdog ---- */

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_stress: watchdog fired: no progress (deadlock?)\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    _exit(3);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            opt_seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--slots") && i + 1 < argc)
            opt_slots = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-fork"))
            opt_fork = 0;
        else if (!strcmp(argv[i], "--no-child-threads"))
            opt_child_threads = 0;
        else if (!strcmp(argv[i], "--ops") && i + 1 < argc)
            opt_ops = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--child-rounds") && i + 1 < argc)
            opt_child_rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-large") && i + 1 < argc)
            opt_max_large = (size_t)atol(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--slots N] [--no-fork] "
                            "[--no-child-threads] [--max-large BYTES] [--ops N] "
                            "[--child-rounds N]\n", argv[0]);
            return 2;
        }
    }
    if (opt_slots < 2)
        opt_slots = 2;
    if (opt_slots > MAX_SLOTS)
        opt_slots = MAX_SLOTS;
    if (opt_ops < 10)
        opt_ops = 10;
    if (opt_child_rounds < 1)
        opt_child_rounds = 1;
    if (opt_max_large < 262145 + 1)
        opt_max_large = 262145 + 1;
    signal(SIGALRM, on_alarm);
    alarm((unsigned)(opt_seconds * 3 + 60));
    for (int i = 0; i < MAX_SLOTS; i++)
        pthread_mutex_init(&queues[i].mu, NULL);

    double t0 = gmt_now(), next_fork = t0 + 0.3, next_feed = t0;
    uint64_t rng = 4242;
    for (int i = 0; i < opt_slots; i++)
        start_worker(i, &rng);
    unsigned forks = 0;
    while (gmt_now() - t0 < opt_seconds && check_failures() < 20) {
        for (int i = 0; i < opt_slots; i++) {
            if (slots[i].running && __atomic_load_n(&slots[i].done, __ATOMIC_ACQUIRE)) {
                pthread_join(slots[i].tid, NULL);
                slots[i].running = 0;
                start_worker(i, &rng);
            }
        }
        if (gmt_now() > next_feed) {
            feed_workers(&rng);
            next_feed = gmt_now() + FEED_S;
        }
        if (opt_fork && gmt_now() > next_fork) {
            do_fork(forks++);
            next_fork = gmt_now() + 0.5;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < opt_slots; i++)
        if (slots[i].running)
            pthread_join(slots[i].tid, NULL);
    /* what is still queued belongs to nobody now: the main thread frees it */
    for (int i = 0; i < opt_slots; i++)
        total_remote += drain(i, &rng);
    alarm(0);
    check_say("test_stress (%s): %.1fs, %d slots, %lu threads, %lu ops, %lu cross-thread frees, "
              "%lu remote reallocs, %lu forks, %lu objects fed by the main thread\n",
              API_NAME[0] ? "gm_" : "standard", gmt_now() - t0, opt_slots, total_threads,
              total_ops, total_remote, total_reallocs, total_forks, total_fed);
    return check_done("test_stress");
}
