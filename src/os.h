/*
 * The OS layer: every system call the allocator makes goes through here.
 * Heap memory is mapped read-write where the heap asks for it and charged to
 * the kernel's commit limit (committed), and released (MADV_DONTNEED: the
 * pages read back as zero).  Failures return false/NULL/an error number;
 * callers turn them into ENOMEM.
 */
#ifndef GM_OS_H
#define GM_OS_H

#include "common.h"

#include <sys/types.h>

/* Reserves exactly [hint, hint+bytes) PROT_NONE if it is free; NULL
 * otherwise.  Used to probe for free address space. */
GM_INTERNAL void *os_reserve_at(uintptr_t hint, size_t bytes);
/* Maps [addr, addr+bytes) read-write, charged to the commit limit, if that
 * range is free: 0 on success, EEXIST if something lives there, ENOMEM if
 * the kernel refused the commit. */
GM_INTERNAL int os_map_at(uintptr_t addr, size_t bytes);
/* MADV_HUGEPAGE (want) or MADV_NOHUGEPAGE; advice, failures ignored. */
GM_INTERNAL void os_hugepages(void *addr, size_t bytes, bool want);
/* Gives pages back to the OS; they stay mapped and read as zero afterwards.
 * False when the kernel refused: the pages are unchanged (still dirty). */
GM_INTERNAL bool os_release(void *addr, size_t bytes);
/* Makes committed memory inaccessible (a guard) or accessible again.  False
 * when the kernel refused (too many mappings, for one). */
GM_INTERNAL bool os_protect(void *addr, size_t bytes, bool accessible);
/* Calls fn on each line of /proc/self/maps ("start-end perms offset dev
 * inode   path", NUL-terminated, no newline; a line longer than the buffer is
 * cut) until fn returns false.  No allocation.  False if the file cannot be
 * read. */
GM_INTERNAL bool os_each_map_line(bool (*fn)(const char *line, void *arg), void *arg);
/* Fresh zeroed read-write memory for allocator metadata: never unmapped,
 * though its pages may be given back with os_release. */
GM_INTERNAL void *os_alloc_metadata(size_t bytes);
/* The same, at an address that is a multiple of align (a power of two). */
GM_INTERNAL void *os_alloc_metadata_aligned(size_t bytes, size_t align);
/* The same, exactly at addr (page aligned), for metadata that grows in
 * place.  0, EEXIST if something is mapped there, or ENOMEM. */
GM_INTERNAL int os_alloc_metadata_at(uintptr_t addr, size_t bytes);
/* Keeps a little address space back for os_alloc_metadata, for when the
 * kernel refuses new mappings (called under the heap lock as it grows). */
GM_INTERNAL void os_keep_metadata_reserve(void);
/* In a forked child: resets this layer's lock. */
GM_INTERNAL void os_fork_child(void);
/* Unmaps a reservation (used only when a reservation attempt is abandoned). */
GM_INTERNAL void os_unmap(void *addr, size_t bytes);
/* A close-on-exec duplicate of fd at a high number (-1 on failure), so a
 * report at exit survives a program that closes its stderr.  Its identity
 * is remembered: check it with os_fd_is_ours before writing. */
GM_INTERNAL int os_dup_high(int fd);
/* Remembers fd's identity (device, inode) as one of ours. */
GM_INTERNAL void os_fd_remember(int fd);
/* Is fd still the file os_dup_high/os_fd_remember saw?  False once the
 * program has closed it, even if the number now names another file. */
GM_INTERNAL bool os_fd_is_ours(int fd);
/* Unmaps memory from os_alloc_metadata (scratch tables). */
GM_INTERNAL void os_free_metadata(void *addr, size_t bytes);
/* Reads up to size-1 bytes of a file into buf, NUL-terminated; -1 if it
 * cannot be opened.  No allocation (cgroup files, /proc). */
GM_INTERNAL ssize_t os_read_file(const char *path, char *buf, size_t size);
/* 64 random bits (getrandom, else the clock and the stack address). */
GM_INTERNAL uint64_t os_random(void);
/* Sleeps while *word == val, at most timeout_ns; os_futex_wake wakes one. */
GM_INTERNAL void os_futex_wait(int *word, int val, uint64_t timeout_ns);
GM_INTERNAL void os_futex_wake(int *word);
/* Sleeps ns nanoseconds. */
GM_INTERNAL void os_sleep(uint64_t ns);
/* Bytes mapped by os_alloc_metadata so far. */
GM_INTERNAL size_t os_metadata_bytes(void);

#ifdef GM_FAULT_INJECT
/* Test builds only: makes the nth call (1 = the next) of the given kinds
 * fail, and with sticky every later one too; kinds 0 disarms.  Calls are
 * counted per kind whether armed or not. */
enum { GM_FAULT_MMAP = 1, GM_FAULT_MPROTECT = 2, GM_FAULT_MADVISE = 4 };
GM_INTERNAL void gm_fault_arm(unsigned kinds, long nth, bool sticky);
GM_INTERNAL long gm_fault_calls(unsigned kind);
#endif

#endif
