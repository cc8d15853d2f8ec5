/*
 * The scavenger: when free heap pages go back to the OS, and the memory
 * limit.  Offered to mheap, which calls the *_locked hooks with the heap
 * lock held and the others with no allocator lock held.
 */
#ifndef GM_MGCSCAVENGE_H
#define GM_MGCSCAVENGE_H

#include "common.h"

/* Reads the memory limit (options, else the cgroup's).  Heap lock held. */
GM_INTERNAL void scav_init(void);

/* Heap lock held.  May npages more pages go into use?  False only under a
 * hard memory limit that they would cross. */
GM_INTERNAL bool scav_admit_locked(size_t inuse_pages, size_t npages);
/* Heap lock held: pages went into or out of use (inuse_pages now).  While
 * the background thread runs, this also takes runs of free pages for it to
 * release (the excess over the headroom, or aged pages when it asks) and
 * gives back the runs it has released. */
GM_INTERNAL void scav_note_locked(size_t inuse_pages);
/* Heap lock held: the heap now maps heap_bytes. */
GM_INTERNAL void scav_note_grow_locked(size_t heap_bytes);

/* No allocator lock held.  Releases what must go now for the memory limit,
 * bounded to a short, fixed amount of work per call, so no allocation waits
 * long on it; and, when no background thread runs (or it is starved), the
 * excess over the retained headroom and the aged pages every tick. */
GM_INTERNAL void scav_assist(void);
/* No allocator lock held: returns every free page to the OS (malloc_trim);
 * returns the bytes released. */
GM_INTERNAL size_t scav_release_all(void);
/* No allocator lock held, at a point where a nested malloc is safe: starts
 * the background thread if it is wanted and not running. */
GM_INTERNAL void scav_start_background(void);

/* The memory limit, set at run time (gm_set_memory_limit). */
GM_INTERNAL void scav_set_limit(size_t bytes, bool hard);
GM_INTERNAL size_t scav_get_limit(bool *hard);

/* fn runs on the background thread once a tick, told whether the heap has
 * been idle for that tick (the tiers above register the work they want done
 * then). */
GM_INTERNAL void scav_set_tick_work(void (*fn)(bool heap_idle));

/* Bytes returned to the OS so far. */
GM_INTERNAL uint64_t scav_released_bytes(void);

#endif
