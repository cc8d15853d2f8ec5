# gomalloc: `make` builds the library, `make test` runs the tests,
# `make bench` compares with the other allocators, `make install` and
# `make deb` package it.

CC      ?= cc
AR      ?= ar
CFLAGS  ?= -O2 -g

# The version lives in one place, include/gomalloc.h (GOMALLOC_VERSION);
# the soname carries its first number.
VERSION := $(shell sed -n 's/^\#define GOMALLOC_VERSION "\([^"]*\)"$$/\1/p' include/gomalloc.h)
SOVERSION := $(firstword $(subst ., ,$(VERSION)))
SONAME := libgomalloc.so.$(SOVERSION)
REALNAME := libgomalloc.so.$(VERSION)

# Where `make install` puts things.  LIBDIR follows Debian's multiarch
# layout (/usr/lib/x86_64-linux-gnu) when PREFIX is /usr; any of these can
# be set on the command line, and DESTDIR stages the whole tree elsewhere.
PREFIX     ?= /usr/local
MULTIARCH  := $(shell $(CC) -print-multiarch 2>/dev/null)
ifeq ($(PREFIX)$(if $(MULTIARCH),,none),/usr)
LIBDIR     ?= $(PREFIX)/lib/$(MULTIARCH)
else
LIBDIR     ?= $(PREFIX)/lib
endif
BINDIR     ?= $(PREFIX)/bin
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

# The library: C11, warnings clean, internal symbols hidden, no builtin
# assumptions about the functions we implement.
GM_CFLAGS := -std=c11 -Wall -Wextra -fPIC -fvisibility=hidden -Iinclude -Isrc \
             -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc \
             -fno-builtin-realloc -ftls-model=initial-exec
# The heap profiler's unwinder (libgcc's) is linked in and kept private, so
# the library still needs nothing but libc.
GM_LDFLAGS := -shared -Wl,-Bsymbolic-functions -Wl,-z,nodelete -Wl,-soname,$(SONAME) \
              -static-libgcc -Wl,--exclude-libs,ALL

# One file per tier, bottom up; then the public names.  Add a file here.
SRCS := os.c arena.c mpagealloc.c mgcscavenge.c mheap.c mpagecache.c mspan.c mcentral.c mcache.c tiny.c proc.c malloc.c
SRCS += mstats.c mprof.c mheapmap.c options.c override.c new_delete.c
OBJS := $(SRCS:%.c=build/obj/%.o)
HDRS := $(wildcard src/*.h) include/gomalloc.h

MANPAGES := gomalloc.1 gomalloc.3

# The hardened build (src/hardened.c): the same sources with GM_HARDENED,
# one more file, and its own soname.
HSRCS := $(SRCS) hardened.c
HOBJS := $(HSRCS:%.c=build/obj-hardened/%.o)
HSONAME := libgomalloc-hardened.so.$(SOVERSION)
HREALNAME := libgomalloc-hardened.so.$(VERSION)
HARDENED_LIBS := build/libgomalloc-hardened.so build/libgomalloc-hardened.a

all: build/libgomalloc.so build/libgomalloc.a build/gomalloc $(MANPAGES:%=build/man/%) \
     $(HARDENED_LIBS)

build/obj/%.o: src/%.c $(HDRS) | build/obj
	$(CC) $(GM_CFLAGS) $(CFLAGS) -c $< -o $@

# The library's own build binds malloc and free in malloc.c (aliases of
# gm_malloc and gm_free) rather than in override.c.  Builds that leave
# override.c out (the sanitizer and fuzz builds, which keep their runtime's
# malloc) leave the macro out too.
build/obj/malloc.o build/obj/override.o: GM_CFLAGS += -DGM_STD_NAMES_IN_MALLOC

# C++ exceptions (std::bad_alloc, a throwing new-handler) unwind through
# operator new, so that file carries unwind tables for them.
build/obj/new_delete.o: GM_CFLAGS += -fexceptions

# The real file and the usual two links: the soname (what programs load)
# and the development name (what -lgomalloc finds).
build/$(REALNAME): $(OBJS)
	$(CC) $(GM_LDFLAGS) $(CFLAGS) $(LDFLAGS) $(OBJS) -o $@ -lpthread

build/libgomalloc.so: build/$(REALNAME)
	ln -sf $(REALNAME) build/$(SONAME)
	ln -sf $(SONAME) $@

build/libgomalloc.a: $(OBJS)
	rm -f $@ && $(AR) rcs $@ $(OBJS)

# The tiers below hardened.c report bad pointers through it (src/hardened.h);
# malloc.c's entry points become its inner layer.
HARDENED_SEAM = -DGM_HARDENED_INNER -include src/hardened.h
build/obj-hardened/os.o build/obj-hardened/hardened.o: HARDENED_SEAM :=
build/obj-hardened/malloc.o: HARDENED_SEAM += -DGM_HARDENED_RAW
build/obj-hardened/new_delete.o: GM_CFLAGS += -fexceptions

build/obj-hardened/%.o: src/%.c $(HDRS) | build/obj-hardened
	$(CC) $(GM_CFLAGS) -DGM_HARDENED $(HARDENED_SEAM) $(CFLAGS) -c $< -o $@

build/$(HREALNAME): $(HOBJS)
	$(CC) $(subst $(SONAME),$(HSONAME),$(GM_LDFLAGS)) $(CFLAGS) $(LDFLAGS) $(HOBJS) -o $@ -lpthread

build/libgomalloc-hardened.so: build/$(HREALNAME)
	ln -sf $(HREALNAME) build/$(HSONAME)
	ln -sf $(HSONAME) $@

build/libgomalloc-hardened.a: $(HOBJS)
	rm -f $@ && $(AR) rcs $@ $(HOBJS)

# The launcher finds the library relative to itself first (LIBREL, from
# BINDIR to LIBDIR), then at LIBDIR; in build/ both are build/ itself.
# TOOLDIR: where `gomalloc explain` finds its script and tables.
launcher = sed -e 's|@LIBDIR@|$(1)|' -e 's|@LIBREL@|$(2)|' -e 's|@SONAME@|$(SONAME)|' \
               -e 's|@VERSION@|$(VERSION)|' -e 's|@TOOLDIR@|$(3)|' tools/gomalloc.in
build/gomalloc: tools/gomalloc.in include/gomalloc.h | build
	$(call launcher,$(CURDIR)/build,.,$(CURDIR)/tools) > $@ && chmod +x $@

build/man/%: man/% include/gomalloc.h | build/man
	sed 's|@VERSION@|$(VERSION)|g' $< > $@

build build/obj build/man build/obj-hardened:
	mkdir -p $@

# The size class table is generated and checked in, as Go does.
sizeclasses:
	python3 tools/mksizeclasses.py --out src/sizeclasses.h

# JOBS=N: tests run N at a time (default: one per core).
test: all
	tests/run.sh $(if $(JOBS),-j $(JOBS))

# Results go to bench/out/ (not tracked); `make bench-readme` refreshes the
# figures the README shows (bench/results/).
# libFuzzer over the gm_ API, both builds: make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 60
fuzz: all
	tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: all
	bench/run.sh $(if $(QUICK),--quick)

bench-instr: all
	bench/run.sh --instr

bench-readme: all
	bench/run.sh --readme

# ---- installing ----------------------------------------------------------

# BINDIR to LIBDIR as a relative path, for a launcher that moves with the tree.
LIBREL = $(shell realpath -m --relative-to='$(BINDIR)' '$(LIBDIR)')

# Every file `make install` writes; `make uninstall` removes exactly these.
INSTALLED = $(LIBDIR)/$(REALNAME) $(LIBDIR)/$(SONAME) $(LIBDIR)/libgomalloc.so \
            $(LIBDIR)/libgomalloc.a $(INCLUDEDIR)/gomalloc.h $(BINDIR)/gomalloc \
            $(PKGCONFIGDIR)/gomalloc.pc $(MANDIR)/man1/gomalloc.1 $(MANDIR)/man3/gomalloc.3 \
            $(LIBDIR)/$(HREALNAME) $(LIBDIR)/$(HSONAME) $(LIBDIR)/libgomalloc-hardened.so \
            $(LIBDIR)/libgomalloc-hardened.a \
            $(addprefix $(TOOLDIR)/,$(TOOLFILES))
# `gomalloc explain`: the script, the generator (for --go) and the tables.
TOOLDIR = $(PREFIX)/share/gomalloc
TOOLFILES = explain.py mksizeclasses.py sizeclasses.h tiny.h

install: all
	install -d '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(BINDIR)' \
	           '$(DESTDIR)$(PKGCONFIGDIR)' '$(DESTDIR)$(MANDIR)/man1' '$(DESTDIR)$(MANDIR)/man3'
	install -m 755 build/$(REALNAME) '$(DESTDIR)$(LIBDIR)/$(REALNAME)'
	ln -sf $(REALNAME) '$(DESTDIR)$(LIBDIR)/$(SONAME)'
	ln -sf $(SONAME) '$(DESTDIR)$(LIBDIR)/libgomalloc.so'
	install -m 644 build/libgomalloc.a '$(DESTDIR)$(LIBDIR)/libgomalloc.a'
	install -m 755 build/$(HREALNAME) '$(DESTDIR)$(LIBDIR)/$(HREALNAME)'
	ln -sf $(HREALNAME) '$(DESTDIR)$(LIBDIR)/$(HSONAME)'
	ln -sf $(HSONAME) '$(DESTDIR)$(LIBDIR)/libgomalloc-hardened.so'
	install -m 644 build/libgomalloc-hardened.a '$(DESTDIR)$(LIBDIR)/libgomalloc-hardened.a'
	install -m 644 include/gomalloc.h '$(DESTDIR)$(INCLUDEDIR)/gomalloc.h'
	$(call launcher,$(LIBDIR),$(LIBREL),$(TOOLDIR)) > '$(DESTDIR)$(BINDIR)/gomalloc'
	install -d '$(DESTDIR)$(TOOLDIR)'
	install -m 644 tools/explain.py tools/mksizeclasses.py src/sizeclasses.h src/tiny.h \
	    '$(DESTDIR)$(TOOLDIR)/'
	chmod 755 '$(DESTDIR)$(BINDIR)/gomalloc'
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' tools/gomalloc.pc.in > '$(DESTDIR)$(PKGCONFIGDIR)/gomalloc.pc'
	install -m 644 build/man/gomalloc.1 '$(DESTDIR)$(MANDIR)/man1/gomalloc.1'
	install -m 644 build/man/gomalloc.3 '$(DESTDIR)$(MANDIR)/man3/gomalloc.3'

uninstall:
	rm -f $(foreach f,$(INSTALLED),'$(DESTDIR)$(f)')

# ---- a Debian package ------------------------------------------------------

DEB_ARCH = $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_ROOT := build/deb/root
DEB = build/gomalloc_$(VERSION)_$(DEB_ARCH).deb

deb: all
	@command -v dpkg-deb >/dev/null || { echo "make deb: dpkg-deb is not installed" >&2; exit 1; }
	rm -rf build/deb
	$(MAKE) --no-print-directory install DESTDIR='$(CURDIR)/$(DEB_ROOT)' PREFIX=/usr
	gzip -9n '$(DEB_ROOT)/usr/share/man/man1/gomalloc.1' '$(DEB_ROOT)/usr/share/man/man3/gomalloc.3'
	install -d '$(DEB_ROOT)/usr/share/doc/gomalloc' '$(DEB_ROOT)/DEBIAN'
	install -m 644 LICENSE '$(DEB_ROOT)/usr/share/doc/gomalloc/copyright'
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' \
	    -e "s|@SIZE@|$$(du -sk '$(DEB_ROOT)/usr' | cut -f1)|" tools/deb-control.in \
	    > '$(DEB_ROOT)/DEBIAN/control'
	echo 'activate-noawait ldconfig' > '$(DEB_ROOT)/DEBIAN/triggers'
	dpkg-deb --root-owner-group -Zgzip --build '$(DEB_ROOT)' '$(DEB)'
	@echo "built $(DEB)"

clean:
	rm -rf build

.PHONY: all test fuzz bench bench-instr bench-readme install uninstall deb clean sizeclasses
