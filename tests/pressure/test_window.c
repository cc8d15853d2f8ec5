/*
 * Requests that together need more address space than the heap window (1 TiB)
 * fail cleanly with ENOMEM, and the heap keeps working afterwards: nothing
 * past the window's bookkeeping is written, and the counters stay sane.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

int main(void) {
    void *keep = malloc(100);
    CHECK(keep != NULL);
    size_t big = (size_t)600 << 30;
    void *first = malloc(big); /* may succeed: it is only address space */
    errno = 0;
    void *second = malloc(big);
    CHECK_MSG(second == NULL && errno == ENOMEM, "second 600 GiB: %p errno %d", second, errno);
    errno = 0;
    void *third = malloc((size_t)425 << 30);
    CHECK(third == NULL || first == NULL);
    free(third);
    free(first);
    /* Ordinary allocation still works after the failures. */
    for (int i = 0; i < 1000; i++) {
        char *p = malloc((size_t)(i % 50) * 1000 + 1);
        CHECK(p != NULL);
        if (p)
            p[0] = 1;
        free(p);
    }
    void *mid = malloc((size_t)64 << 20);
    CHECK(mid != NULL);
    if (mid)
        memset(mid, 1, 4096);
    free(mid);
    free(keep);
    return check_done("test_window");
}
