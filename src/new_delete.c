/*
 * C++ operator new and operator delete, every standard form (plain, array,
 * nothrow, sized, aligned, aligned+sized, aligned nothrow), written in C
 * under their mangled names so the library needs nothing but libc.
 *
 * Why the library exports them: a C++ program linked with -lgomalloc under
 * --as-needed (Debian's default) that allocates only through new would
 * otherwise lose the library at link time and run on glibc.  With these
 * definitions its new and delete bind to gomalloc, so it stays linked; and
 * under LD_PRELOAD they come before libstdc++'s.
 *
 * What the standard asks of the throwing forms, and what they do: try to
 * allocate; on failure call the installed new-handler (std::get_new_handler)
 * and try again, for as long as there is one; with none, throw
 * std::bad_alloc.  libstdc++ is reached through weak references, which a
 * C++ program always satisfies; when libstdc++ came later (dlopen) they are
 * looked up by name; and when there is no C++ runtime at all (only a C
 * program calls these names) a failure aborts with a message, since there
 * is nothing to throw with.
 *
 * The nothrow forms return the memory or, with no new-handler, a null
 * pointer.  With a handler installed the standard wants the throwing form
 * called and any exception turned into a null pointer; C cannot catch, so
 * that rare case is handed to libstdc++'s own nothrow operator, which
 * catches around a call back into our throwing one.
 *
 * Deletes ignore the nothrow tag; the sized ones pass their size on to
 * gm_free_sized / gm_free_aligned_sized, which may check it.
 *
 * Exceptions pass through these frames (the file is built with
 * -fexceptions, so the unwinder can cross it); it holds no locks and no
 * state but a few cached function pointers.
 */
#define _GNU_SOURCE /* RTLD_NEXT, RTLD_DEFAULT */
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "gomalloc.h"

#define EXPORT __attribute__((visibility("default")))

/* ---- libstdc++, weakly: std::get_new_handler(), std::__throw_bad_alloc() ---- */

typedef void (*new_handler)(void);
extern new_handler _ZSt15get_new_handlerv(void) __attribute__((weak));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn));

/* A libstdc++ function by mangled name: the weak reference when the
 * program was linked with libstdc++, else whatever is loaded by now. */
static void *cxx_symbol(void *weak_ref, const char *name) {
    return weak_ref ? weak_ref : dlsym(RTLD_DEFAULT, name);
}

static new_handler current_new_handler(void) {
    new_handler (*get)(void) = (new_handler (*)(void))cxx_symbol(
        (void *)(uintptr_t)&_ZSt15get_new_handlerv, "_ZSt15get_new_handlerv");
    return get ? get() : NULL;
}

static __attribute__((noreturn, cold)) void throw_bad_alloc(void) {
    void (*thrower)(void) = (void (*)(void))cxx_symbol(
        (void *)(uintptr_t)&_ZSt17__throw_bad_allocv, "_ZSt17__throw_bad_allocv");
    if (thrower)
        thrower();
    gm_fatal("operator new: out of memory, and no C++ runtime to throw std::bad_alloc with", NULL);
}

/* ---- the allocation loop ---- */

/* align 0: no alignment beyond malloc's. */
static inline void *try_alloc(size_t size, size_t align) {
    return align ? gm_aligned_alloc(align, size) : gm_malloc(size);
}

/* The throwing forms' loop: allocate, or run the new-handler and retry. */
static GM_NOINLINE void *new_slow(size_t size, size_t align) {
    for (;;) {
        void *p = try_alloc(size, align);
        if (p)
            return p;
        new_handler h = current_new_handler();
        if (!h)
            throw_bad_alloc();
        h(); /* may free memory, throw, or end the program */
    }
}

static inline void *new_throwing(size_t size, size_t align) {
    void *p = try_alloc(size, align);
    return likely(p != NULL) ? p : new_slow(size, align);
}

/* The nothrow forms.  `cxx_name` is the same form's name in libstdc++,
 * which turns the throwing form's exception into a null pointer for us;
 * `tag` is the caller's std::nothrow_t, passed on. */
typedef void *(*nothrow_new_fn)(size_t, const void *);
typedef void *(*nothrow_aligned_new_fn)(size_t, size_t, const void *);

static GM_NOINLINE void *nothrow_slow(size_t size, size_t align, const void *tag,
                                      const char *cxx_name) {
    if (!current_new_handler())
        return NULL;
    void *theirs = dlsym(RTLD_NEXT, cxx_name);
    if (theirs && align)
        return ((nothrow_aligned_new_fn)(uintptr_t)theirs)(size, align, tag);
    if (theirs)
        return ((nothrow_new_fn)(uintptr_t)theirs)(size, tag);
    /* No libstdc++ after us (a static link): run the handlers ourselves;
     * one that throws will not be caught here. */
    for (;;) {
        new_handler h = current_new_handler();
        if (!h)
            return NULL;
        h();
        void *p = try_alloc(size, align);
        if (p)
            return p;
    }
}

static inline void *new_nothrow(size_t size, size_t align, const void *tag, const char *cxx_name) {
    void *p = try_alloc(size, align);
    return likely(p != NULL) ? p : nothrow_slow(size, align, tag, cxx_name);
}

/* ---- the operators; size_t is 'm', std::align_val_t 'St11align_val_t' ---- */

#define NOTHROW const void * /* const std::nothrow_t &: unused */

#define DECLARE(ret, cname, mangled, ...) \
    EXPORT ret cname(__VA_ARGS__) __asm__(mangled); \
    ret cname(__VA_ARGS__)

/* new */
DECLARE(void *, op_new, "_Znwm", size_t n) { return new_throwing(n, 0); }
DECLARE(void *, op_new_array, "_Znam", size_t n) { return new_throwing(n, 0); }
DECLARE(void *, op_new_nothrow, "_ZnwmRKSt9nothrow_t", size_t n, NOTHROW t) {
    return new_nothrow(n, 0, t, "_ZnwmRKSt9nothrow_t");
}
DECLARE(void *, op_new_array_nothrow, "_ZnamRKSt9nothrow_t", size_t n, NOTHROW t) {
    return new_nothrow(n, 0, t, "_ZnamRKSt9nothrow_t");
}
DECLARE(void *, op_new_aligned, "_ZnwmSt11align_val_t", size_t n, size_t al) {
    return new_throwing(n, al);
}
DECLARE(void *, op_new_array_aligned, "_ZnamSt11align_val_t", size_t n, size_t al) {
    return new_throwing(n, al);
}
DECLARE(void *, op_new_aligned_nothrow, "_ZnwmSt11align_val_tRKSt9nothrow_t", size_t n, size_t al,
        NOTHROW t) {
    return new_nothrow(n, al, t, "_ZnwmSt11align_val_tRKSt9nothrow_t");
}
DECLARE(void *, op_new_array_aligned_nothrow, "_ZnamSt11align_val_tRKSt9nothrow_t", size_t n,
        size_t al, NOTHROW t) {
    return new_nothrow(n, al, t, "_ZnamSt11align_val_tRKSt9nothrow_t");
}

/* delete */
DECLARE(void, op_delete, "_ZdlPv", void *p) { gm_free(p); }
DECLARE(void, op_delete_array, "_ZdaPv", void *p) { gm_free(p); }
DECLARE(void, op_delete_nothrow, "_ZdlPvRKSt9nothrow_t", void *p, NOTHROW t) {
    (void)t;
    gm_free(p);
}
DECLARE(void, op_delete_array_nothrow, "_ZdaPvRKSt9nothrow_t", void *p, NOTHROW t) {
    (void)t;
    gm_free(p);
}
DECLARE(void, op_delete_sized, "_ZdlPvm", void *p, size_t n) { gm_free_sized(p, n); }
DECLARE(void, op_delete_array_sized, "_ZdaPvm", void *p, size_t n) { gm_free_sized(p, n); }
DECLARE(void, op_delete_aligned, "_ZdlPvSt11align_val_t", void *p, size_t al) {
    (void)al;
    gm_free(p);
}
DECLARE(void, op_delete_array_aligned, "_ZdaPvSt11align_val_t", void *p, size_t al) {
    (void)al;
    gm_free(p);
}
DECLARE(void, op_delete_aligned_sized, "_ZdlPvmSt11align_val_t", void *p, size_t n, size_t al) {
    gm_free_aligned_sized(p, al, n);
}
DECLARE(void, op_delete_array_aligned_sized, "_ZdaPvmSt11align_val_t", void *p, size_t n,
        size_t al) {
    gm_free_aligned_sized(p, al, n);
}
DECLARE(void, op_delete_aligned_nothrow, "_ZdlPvSt11align_val_tRKSt9nothrow_t", void *p, size_t al,
        NOTHROW t) {
    (void)al;
    (void)t;
    gm_free(p);
}
DECLARE(void, op_delete_array_aligned_nothrow, "_ZdaPvSt11align_val_tRKSt9nothrow_t", void *p,
        size_t al, NOTHROW t) {
    (void)al;
    (void)t;
    gm_free(p);
}
