/*
 * test_cxx: a C++ program on gomalloc (LD_PRELOAD): operator new and delete
 * in all their forms, and the standard containers.
 *
 *  - new/delete and new[]/delete[] of scalars, arrays and classes (with
 *    virtual destructors, so the sized delete gets the derived size);
 *    malloc_usable_size of a new'ed object is at least its size, and (with
 *    GMTEST_IMPL=gomalloc) gomalloc's gm_malloc_usable_size agrees, which
 *    shows the memory is gomalloc's;
 *  - sized delete called directly, ::operator delete(p, n);
 *  - aligned new: alignas(64) and alignas(4096) types, single and arrays,
 *    and ::operator new(n, std::align_val_t(4096)) with the matching
 *    aligned (and sized aligned) delete;
 *  - nothrow new of an impossible size gives nullptr, plain new throws
 *    std::bad_alloc;
 *  - std::vector, std::string, std::map, std::unordered_map, std::list,
 *    std::shared_ptr churn, on the main thread and on 4 std::threads, with
 *    results checked against what was put in.
 */
#include <dlfcn.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

static std::atomic<unsigned long> checks{0}, failures{0};

#define EXPECT(cond, ...)                                                          \
    do {                                                                           \
        checks++;                                                                  \
        if (!(cond)) {                                                             \
            if (failures++ < 40) {                                                 \
                std::fprintf(stderr, "%s:%d: CHECK failed: %s [", __FILE__, __LINE__, #cond); \
                std::fprintf(stderr, __VA_ARGS__);                                 \
                std::fprintf(stderr, "]\n");                                       \
            }                                                                      \
        }                                                                          \
    } while (0)

static size_t (*gm_usable)(void *);

/* Hides a pointer from the optimiser, so a new/delete pair is not elided. */
template <typename T> static T *opaque(T *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

static bool aligned(const void *p, size_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

static void check_usable(void *p, size_t n, const char *what) {
    size_t u = malloc_usable_size(p);
    EXPECT(u >= n, "%s: malloc_usable_size %zu < %zu", what, u, n);
    if (gm_usable)
        EXPECT(gm_usable(p) == u, "%s: gm_malloc_usable_size %zu != malloc_usable_size %zu", what,
               gm_usable(p), u);
}

/* ---- new/delete ---- */

struct Base {
    explicit Base(int v) : value(v) {}
    virtual ~Base() { value = -1; }
    virtual long sum() const { return value; }
    int value;
};

struct Derived : Base {
    explicit Derived(int v) : Base(v) {
        for (int i = 0; i < 50; i++)
            extra[i] = v + i;
    }
    long sum() const override {
        long s = value;
        for (int i = 0; i < 50; i++)
            s += extra[i];
        return s;
    }
    long extra[50];
};

struct alignas(64) Line {
    char bytes[64];
};

struct alignas(4096) Page {
    char bytes[4096];
    int tag;
};

static void test_new_delete() {
    for (int i = 0; i < 2000; i++) {
        int *x = opaque(new int(i));
        EXPECT(*x == i, "new int");
        check_usable(x, sizeof *x, "new int");
        delete x;

        char *c = opaque(new char('a' + i % 26));
        check_usable(c, 1, "new char");
        delete c;

        size_t n = 1 + (size_t)i * 37 % 70000;
        unsigned char *arr = opaque(new unsigned char[n]);
        std::memset(arr, i & 0xff, n);
        check_usable(arr, n, "new unsigned char[]");
        EXPECT(arr[0] == (i & 0xff) && arr[n - 1] == (i & 0xff), "new[] contents");
        delete[] arr;

        std::string *s = opaque(new std::string[5]);
        for (int k = 0; k < 5; k++)
            s[k] = std::string((size_t)(k * 10 + i % 50), 'x');
        EXPECT(s[4].size() == (size_t)(40 + i % 50), "new std::string[]");
        delete[] s;
    }
    /* polymorphic: the sized delete gets sizeof(Derived) */
    std::vector<Base *> objs;
    long want = 0;
    for (int i = 0; i < 3000; i++) {
        Base *b = (i % 3) ? static_cast<Base *>(new Derived(i)) : new Base(i);
        want += b->sum();
        check_usable(b, (i % 3) ? sizeof(Derived) : sizeof(Base), "new Derived");
        objs.push_back(b);
    }
    long got = 0;
    for (Base *b : objs)
        got += b->sum();
    EXPECT(got == want, "virtual objects: sum %ld, want %ld", got, want);
    for (Base *b : objs)
        delete b;

    /* sized delete, called directly */
    for (size_t n : {1ul, 8ul, 24ul, 100ul, 4000ul, 33000ul, 1ul << 20}) {
        void *p = opaque(::operator new(n));
        std::memset(p, 1, n);
        check_usable(p, n, "operator new(n)");
        ::operator delete(p, n);
    }
    void *z = opaque(::operator new(0));
    EXPECT(z != nullptr, "operator new(0)");
    ::operator delete(z);
}

static void test_aligned_new() {
    for (int i = 0; i < 500; i++) {
        Line *l = opaque(new Line);
        EXPECT(aligned(l, 64), "new alignas(64): %p", (void *)l);
        std::memset(l->bytes, 1, sizeof l->bytes);
        check_usable(l, sizeof *l, "new alignas(64)");
        delete l;

        Line *la = opaque(new Line[1 + i % 17]);
        EXPECT(aligned(la, 64), "new alignas(64)[]: %p", (void *)la);
        std::memset(la, 2, sizeof(Line) * (1 + i % 17));
        delete[] la;

        if (i % 10 == 0) {
            Page *pg = opaque(new Page);
            EXPECT(aligned(pg, 4096), "new alignas(4096): %p", (void *)pg);
            pg->tag = i;
            std::memset(pg->bytes, 3, sizeof pg->bytes);
            check_usable(pg, sizeof *pg, "new alignas(4096)");
            delete pg;
            Page *pa = opaque(new Page[3]);
            EXPECT(aligned(pa, 4096), "new alignas(4096)[]: %p", (void *)pa);
            pa[2].tag = 5;
            delete[] pa;
        }

        size_t n = 1 + (size_t)i * 97 % 20000;
        void *p = opaque(::operator new(n, std::align_val_t(4096)));
        EXPECT(aligned(p, 4096), "operator new(%zu, align_val_t(4096)): %p", n, p);
        std::memset(p, 4, n);
        check_usable(p, n, "operator new(n, align_val_t(4096))");
        if (i % 2)
            ::operator delete(p, std::align_val_t(4096));
        else
            ::operator delete(p, n, std::align_val_t(4096));

        void *q = opaque(::operator new(n, std::align_val_t(256), std::nothrow));
        EXPECT(q && aligned(q, 256), "operator new(%zu, align_val_t(256), nothrow): %p", n, q);
        ::operator delete(q, std::align_val_t(256));
    }
}

static void test_bad_alloc() {
    size_t huge = (size_t)1 << 50;
    char *p = opaque(new (std::nothrow) char[huge]);
    EXPECT(p == nullptr, "new (nothrow) char[1 << 50] = %p", (void *)p);
    delete[] p;
    bool threw = false;
    try {
        char *q = opaque(new char[huge]);
        delete[] q;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    EXPECT(threw, "new char[1 << 50] did not throw std::bad_alloc");
    threw = false;
    try {
        void *q = opaque(::operator new(huge, std::align_val_t(4096)));
        ::operator delete(q, std::align_val_t(4096));
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    EXPECT(threw, "operator new(1 << 50, align_val_t(4096)) did not throw");
}

/* ---- containers ---- */

static void container_churn(unsigned seed, int rounds) {
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
    auto next = [&rng]() {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        return rng * 0x2545F4914F6CDD1Dull;
    };
    for (int r = 0; r < rounds; r++) {
        std::vector<uint64_t> v;
        uint64_t vsum = 0;
        for (int i = 0; i < 5000; i++) {
            uint64_t x = next() % 1000;
            v.push_back(x);
            vsum += x;
        }
        uint64_t vsum2 = 0;
        for (uint64_t x : v)
            vsum2 += x;
        EXPECT(vsum == vsum2 && v.size() == 5000, "vector sum");
        v.resize(100);
        v.shrink_to_fit();
        EXPECT(v.capacity() >= 100, "shrink_to_fit");

        std::string s;
        for (int i = 0; i < 2000; i++)
            s += std::to_string(i % 10);
        EXPECT(s.size() == 2000 && s[1999] == '9' && s[123] == '3', "string append");
        std::vector<std::string> words;
        for (int i = 0; i < 1000; i++)
            words.push_back(std::string(1 + next() % 60, (char)('a' + i % 26)));
        std::sort(words.begin(), words.end());
        EXPECT(std::is_sorted(words.begin(), words.end()), "sorted strings");

        std::map<int, std::string> m;
        for (int i = 0; i < 3000; i++)
            m[(int)(next() % 5000)] = std::to_string(i);
        size_t before = m.size();
        for (int i = 0; i < 5000; i += 2)
            m.erase(i);
        for (auto &kv : m)
            EXPECT(kv.first % 2 == 1, "map erase left key %d", kv.first);
        EXPECT(m.size() <= before, "map size");

        std::unordered_map<std::string, int> um;
        for (int i = 0; i < 3000; i++)
            um["key" + std::to_string(i)] = i;
        long usum = 0;
        for (int i = 0; i < 3000; i++)
            usum += um["key" + std::to_string(i)];
        EXPECT(usum == 2999L * 3000 / 2, "unordered_map sum %ld", usum);

        std::list<std::shared_ptr<Base>> l;
        for (int i = 0; i < 1000; i++)
            l.push_back(i % 2 ? std::make_shared<Base>(i) : std::shared_ptr<Base>(new Derived(i)));
        long lsum = 0, lwant = 0;
        for (int i = 0; i < 1000; i++)
            lwant += i % 2 ? i : Derived(i).sum();
        for (auto &b : l)
            lsum += b->sum();
        EXPECT(lsum == lwant, "shared_ptr list sum %ld, want %ld", lsum, lwant);
    }
}

int main() {
    const char *impl = std::getenv("GMTEST_IMPL");
    bool strict = impl && std::strcmp(impl, "gomalloc") == 0;
    if (strict) {
        gm_usable = reinterpret_cast<size_t (*)(void *)>(dlsym(RTLD_DEFAULT, "gm_malloc_usable_size"));
        EXPECT(gm_usable != nullptr, "gomalloc is not loaded");
    }
    test_new_delete();
    test_aligned_new();
    test_bad_alloc();
    container_churn(1, 40);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 4; t++)
        threads.emplace_back(container_churn, t + 2, 20);
    for (auto &t : threads)
        t.join();
    std::fprintf(stderr, "test_cxx: %lu checks, %lu failed\n", checks.load(), failures.load());
    return failures ? 1 : 0;
}
