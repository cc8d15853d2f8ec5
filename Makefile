# gomalloc: `make` builds the library, `make test` runs the tests,
# `make bench` compares with the other allocators.

CC      ?= cc
AR      ?= ar
PREFIX  ?= /usr/local
CFLAGS  ?= -O2 -g
VERSION := 0.1.0

# The library: C11, warnings clean, internal symbols hidden, no builtin
# assumptions about the functions we implement.
GM_CFLAGS := -std=c11 -Wall -Wextra -fPIC -fvisibility=hidden -Iinclude -Isrc \
             -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc \
             -fno-builtin-realloc -ftls-model=initial-exec
GM_LDFLAGS := -shared -Wl,-Bsymbolic-functions -Wl,-z,nodelete -Wl,-soname,libgomalloc.so

# One file per tier, bottom up.
SRCS := os.c arena.c mpagealloc.c mheap.c mspan.c mcentral.c mcache.c tiny.c proc.c \
        malloc.c mstats.c options.c override.c new_delete.c
OBJS := $(SRCS:%.c=build/obj/%.o)
HDRS := $(wildcard src/*.h) include/gomalloc.h

all: build/libgomalloc.so build/libgomalloc.a build/gomalloc

build/obj/%.o: src/%.c $(HDRS) | build/obj
	$(CC) $(GM_CFLAGS) $(CFLAGS) -c $< -o $@

# C++ exceptions (std::bad_alloc, a throwing new-handler) unwind through
# operator new, so that file carries unwind tables for them.
build/obj/new_delete.o: GM_CFLAGS += -fexceptions

build/libgomalloc.so: $(OBJS)
	$(CC) $(GM_LDFLAGS) $(CFLAGS) $(OBJS) -o $@ -lpthread

build/libgomalloc.a: $(OBJS)
	rm -f $@ && $(AR) rcs $@ $(OBJS)

build/gomalloc: tools/gomalloc.in | build
	sed 's|@LIBDIR@|$(CURDIR)/build|' $< > $@ && chmod +x $@

build build/obj:
	mkdir -p $@

# The size class table is generated and checked in, as Go does.
sizeclasses:
	python3 tools/mksizeclasses.py --out src/sizeclasses.h

# JOBS=N: tests run N at a time (default: one per core).
test: all
	tests/run.sh $(if $(JOBS),-j $(JOBS))

bench: all
	bench/run.sh $(if $(QUICK),--quick)

bench-instr: all
	bench/run.sh --instr

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	           $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 build/libgomalloc.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 build/libgomalloc.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/gomalloc.h $(DESTDIR)$(PREFIX)/include/
	sed 's|@LIBDIR@|$(PREFIX)/lib|' tools/gomalloc.in > $(DESTDIR)$(PREFIX)/bin/gomalloc
	chmod 755 $(DESTDIR)$(PREFIX)/bin/gomalloc
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' tools/gomalloc.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/gomalloc.pc

clean:
	rm -rf build

.PHONY: all test bench bench-instr install clean sizeclasses
