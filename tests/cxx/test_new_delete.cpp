/*
 * test_new_delete: gomalloc's own operator new and delete, every form, in a
 * program linked -lgomalloc under -Wl,--as-needed (the library must stay
 * linked because the program's news bind to it) or run under LD_PRELOAD.
 *
 *  - every form of new and delete: plain, array, nothrow, sized, aligned,
 *    aligned+sized, aligned nothrow; each object is gomalloc's (gomalloc's
 *    gm_malloc_usable_size, found with dlsym so the test does not link it,
 *    accepts it, and the heap's malloc count grows);
 *  - aligned new honours 16 B .. 64 KiB alignments;
 *  - impossible sizes throw std::bad_alloc (plain, array, aligned), and the
 *    nothrow forms return nullptr;
 *  - the new-handler loop: a handler is called again after each failed try
 *    until it uninstalls itself, then bad_alloc is thrown; an exception
 *    from the handler comes out of new; under nothrow new a throwing
 *    handler gives nullptr;
 *  - a handler that frees a reserve and uninstalls itself runs once.
 */
#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "gomalloc.h"

static unsigned long checks, failures;
#define EXPECT(cond)                                                                   \
    do {                                                                               \
        checks++;                                                                      \
        if (!(cond)) {                                                                 \
            failures++;                                                                \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                              \
    } while (0)

/* Looked up at run time, so that only operator new keeps the library linked. */
static size_t (*gm_usable)(void *);
static void (*gm_stats)(gm_heap_stats *);

template <typename T> static T *opaque(T *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}
static size_t opaque_size(size_t n) {
    __asm__ volatile("" : "+r"(n));
    return n;
}

static bool ours(void *p, size_t n) { return p && gm_usable(p) >= n; }
static bool aligned(const void *p, size_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

static uint64_t mallocs() {
    gm_heap_stats s;
    gm_stats(&s);
    return s.mallocs;
}

struct alignas(64) Line { char c[64]; };
struct alignas(4096) Page { char c[4096]; };

static void forms() {
    uint64_t before = mallocs();
    void *p = ::operator new(100);
    EXPECT(ours(p, 100));
    ::operator delete(p);
    p = ::operator new[](200);
    EXPECT(ours(p, 200));
    ::operator delete[](p);
    p = ::operator new(300, std::nothrow);
    EXPECT(ours(p, 300));
    ::operator delete(p, std::nothrow);
    p = ::operator new[](400, std::nothrow);
    EXPECT(ours(p, 400));
    ::operator delete[](p, std::nothrow);
    p = ::operator new(500);
    EXPECT(ours(p, 500));
    ::operator delete(p, size_t(500));
    p = ::operator new[](600);
    EXPECT(ours(p, 600));
    ::operator delete[](p, size_t(600));
    for (size_t al = 16; al <= 65536; al *= 4) {
        std::align_val_t a{al};
        p = ::operator new(700, a);
        EXPECT(ours(p, 700) && aligned(p, al));
        ::operator delete(p, a);
        p = ::operator new[](800, a);
        EXPECT(ours(p, 800) && aligned(p, al));
        ::operator delete[](p, a);
        p = ::operator new(900, a, std::nothrow);
        EXPECT(ours(p, 900) && aligned(p, al));
        ::operator delete(p, a, std::nothrow);
        p = ::operator new[](1000, a, std::nothrow);
        EXPECT(ours(p, 1000) && aligned(p, al));
        ::operator delete[](p, a, std::nothrow);
        p = ::operator new(1100, a);
        EXPECT(ours(p, 1100) && aligned(p, al));
        ::operator delete(p, size_t(1100), a);
        p = ::operator new[](1200, a);
        EXPECT(ours(p, 1200) && aligned(p, al));
        ::operator delete[](p, size_t(1200), a);
    }
    /* new-expressions */
    int *i = opaque(new int(7));
    EXPECT(ours(i, sizeof(int)) && *i == 7);
    delete i;
    char *s = opaque(new char[opaque_size(5000)]);
    EXPECT(ours(s, 5000));
    delete[] s;
    Line *l = opaque(new Line);
    EXPECT(ours(l, sizeof(Line)) && aligned(l, 64));
    delete l;
    Page *pg = opaque(new Page[3]);
    EXPECT(ours(pg, 3 * sizeof(Page)) && aligned(pg, 4096));
    delete[] pg;
    int *n = opaque(new (std::nothrow) int[10]);
    EXPECT(ours(n, 10 * sizeof(int)));
    delete[] n;
    p = ::operator new(0);
    EXPECT(p != nullptr);
    ::operator delete(p);
    EXPECT(mallocs() - before >= 40);
}

/* Far beyond any heap: every try fails. */
static const size_t HUGE_SIZE = size_t(1) << 62;

template <typename F> static bool throws_bad_alloc(F f) {
    try {
        f();
    } catch (const std::bad_alloc &) {
        return true;
    } catch (...) {
        return false;
    }
    return false;
}

static void impossible() {
    EXPECT(throws_bad_alloc([] { ::operator delete(::operator new(opaque_size(HUGE_SIZE))); }));
    EXPECT(throws_bad_alloc([] { ::operator delete[](::operator new[](opaque_size(HUGE_SIZE))); }));
    EXPECT(throws_bad_alloc([] {
        ::operator delete(::operator new(opaque_size(HUGE_SIZE), std::align_val_t(64)), std::align_val_t(64));
    }));
    EXPECT(throws_bad_alloc([] { delete[] opaque(new char[opaque_size(HUGE_SIZE)]); }));
    EXPECT(::operator new(opaque_size(HUGE_SIZE), std::nothrow) == nullptr);
    EXPECT(::operator new[](opaque_size(HUGE_SIZE), std::nothrow) == nullptr);
    EXPECT(::operator new(opaque_size(HUGE_SIZE), std::align_val_t(4096), std::nothrow) == nullptr);
    EXPECT(::operator new[](opaque_size(HUGE_SIZE), std::align_val_t(4096), std::nothrow) == nullptr);
}

static int handler_calls;
static const int HANDLER_ROUNDS = 3;

/* Called on each failure; gives up (uninstalls itself) after a few. */
static void counting_handler() {
    if (++handler_calls == HANDLER_ROUNDS)
        std::set_new_handler(nullptr);
}

struct handler_error : std::bad_alloc {};
static void throwing_handler() {
    handler_calls++;
    throw handler_error();
}

/* A reserve the handler gives back. */
static void *reserve;
static void releasing_handler() {
    handler_calls++;
    std::free(reserve);
    reserve = nullptr;
    std::set_new_handler(nullptr);
}

static void handlers() {
    handler_calls = 0;
    std::set_new_handler(counting_handler);
    EXPECT(throws_bad_alloc([] { ::operator delete(::operator new(opaque_size(HUGE_SIZE))); }));
    EXPECT(handler_calls == HANDLER_ROUNDS);

    handler_calls = 0;
    std::set_new_handler(counting_handler);
    EXPECT(::operator new(opaque_size(HUGE_SIZE), std::nothrow) == nullptr);
    EXPECT(handler_calls == HANDLER_ROUNDS);

    handler_calls = 0;
    std::set_new_handler(counting_handler);
    EXPECT(throws_bad_alloc([] {
        ::operator delete[](::operator new[](opaque_size(HUGE_SIZE), std::align_val_t(256)),
                            std::align_val_t(256));
    }));
    EXPECT(handler_calls == HANDLER_ROUNDS);

    /* the handler's own exception comes out of new */
    handler_calls = 0;
    std::set_new_handler(throwing_handler);
    bool caught = false;
    try {
        ::operator delete(::operator new(opaque_size(HUGE_SIZE)));
    } catch (const handler_error &) {
        caught = true;
    }
    EXPECT(caught && handler_calls == 1);
    /* ... and nothrow new turns it into nullptr */
    handler_calls = 0;
    EXPECT(::operator new(opaque_size(HUGE_SIZE), std::nothrow) == nullptr);
    EXPECT(::operator new[](opaque_size(HUGE_SIZE), std::align_val_t(64), std::nothrow) == nullptr);
    EXPECT(handler_calls == 2);
    std::set_new_handler(nullptr);

    /* a handler that gives memory back (and then up) is called once */
    handler_calls = 0;
    reserve = std::malloc(1 << 20);
    std::set_new_handler(releasing_handler);
    EXPECT(throws_bad_alloc([] { ::operator delete(::operator new(opaque_size(HUGE_SIZE))); }));
    EXPECT(handler_calls == 1 && reserve == nullptr);
    std::set_new_handler(nullptr);
}

int main() {
    gm_usable = reinterpret_cast<size_t (*)(void *)>(dlsym(RTLD_DEFAULT, "gm_malloc_usable_size"));
    gm_stats = reinterpret_cast<void (*)(gm_heap_stats *)>(dlsym(RTLD_DEFAULT, "gm_get_heap_stats"));
    if (!gm_usable || !gm_stats) {
        std::fprintf(stderr, "test_new_delete: gomalloc is not in the process\n");
        return 1;
    }
    /* operator new is gomalloc's, not libstdc++'s */
    Dl_info info;
    void *self = dlsym(RTLD_DEFAULT, "_Znwm");
    EXPECT(self && dladdr(self, &info) && info.dli_fname && std::strstr(info.dli_fname, "libgomalloc"));
    forms();
    impossible();
    handlers();
    std::fprintf(stderr, "test_new_delete: %lu checks, %lu failed\n", checks, failures);
    return failures != 0;
}
