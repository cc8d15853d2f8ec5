/*
 * test_static_minimal: a program whose own calls are only malloc and free,
 * linked with libgomalloc.a.  The C library then reallocates one of those
 * blocks (getline growing its buffer): realloc, and every other standard
 * name, must have come into the link with malloc and free, or glibc's
 * realloc gets a gomalloc block and aborts ("realloc(): invalid pointer").
 * Linked twice by tests/run.sh: against the shared C library and, where
 * libc.a is installed, -static (where a missing name shows as two
 * definitions of free).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gomalloc.h"

int main(void) {
    static char text[5000];
    memset(text, 'x', sizeof text - 2);
    text[sizeof text - 2] = '\n';
    FILE *in = fmemopen(text, sizeof text - 1, "r");
    if (!in) {
        fprintf(stderr, "test_static_minimal: fmemopen failed\n");
        return 1;
    }
    size_t cap = 16;
    char *line = malloc(cap);
    ssize_t got = getline(&line, &cap, in);
    fclose(in);
    if (got != (ssize_t)sizeof text - 1 || line[0] != 'x') {
        fprintf(stderr, "test_static_minimal: getline returned %zd\n", got);
        return 1;
    }
    /* The grown buffer is gomalloc's: its usable size is a gomalloc answer
     * (glibc's block would abort here as an invalid pointer). */
    size_t usable = gm_malloc_usable_size(line);
    free(line);
    printf("test_static_minimal: getline grew a malloc'd buffer to %zd bytes (usable %zu): ok\n",
           got, usable);
    return usable >= (size_t)got ? 0 : 1;
}
