/*
 * conf_prog: a program with options built in (gomalloc_conf), linked with
 * -lgomalloc.  It allocates a little and prints "done"; with "version" it
 * prints gm_version() instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gomalloc.h"

const char *gomalloc_conf = "memlimit:3G, tiny:off";

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "version") == 0) {
        printf("%s\n", gm_version());
        return strcmp(gm_version(), GOMALLOC_VERSION) != 0;
    }
    for (int i = 0; i < 1000; i++)
        free(malloc((size_t)i));
    printf("done\n");
    return 0;
}
