/*
 * mcentral: one per span class, the home of the spans no thread cache owns.
 *
 * Offered to mcache.  Takes its own lock internally and releases it before it
 * calls mheap.
 */
#ifndef GM_MCENTRAL_H
#define GM_MCENTRAL_H

#include "mheap.h"

/* A span of class spc with a free slot, owned by `owner` from now on: one no
 * cache owns, or a fresh one from mheap.  NULL if out of memory. */
GM_INTERNAL mspan *mcentral_cache_span(unsigned spc, struct mcache *owner);

/* A cache gives span s up (thread exit, a class it stopped using, fork):
 * mcentral keeps it, or mheap gets it back if it holds no object. */
GM_INTERNAL void mcentral_abandon(mspan *s);

/* A cache owner's empty span goes back to mheap. */
GM_INTERNAL void mcentral_release_empty(mspan *s);

/* A remote free won the CAS of an unowned set-aside span: it goes onto the
 * class's revisit stack (lock-free). */
GM_INTERNAL void mcentral_revisit_push(mspan *s);

/* Collects the frees other threads made into unowned spans and returns the
 * empty ones to mheap (malloc_trim, the scavenger).  Returns bytes returned. */
GM_INTERNAL size_t mcentral_reclaim(void);

/* Gives back to the OS the pages of s in which no slot is in use; s is
 * held by the calling thread (its cache owns it, or it has taken s off its
 * owner's revisit stack: then others_only, see mspan_next_unused_pages), so
 * no slot of those pages can be handed out meanwhile.  Spans of one page go
 * back whole when they empty, and are skipped.  Returns the bytes released. */
GM_INTERNAL size_t mcentral_release_unused_pages(mspan *s, bool others_only);

GM_INTERNAL void mcentral_lock_all_for_fork(void);
GM_INTERNAL void mcentral_unlock_all_after_fork(bool child);

/* In a fork child: every small span for which keep() is false becomes
 * mcentral's, its state rebuilt from its bitmaps. */
GM_INTERNAL void mcentral_rehome_after_fork(bool (*keep)(const mspan *s));

#endif
