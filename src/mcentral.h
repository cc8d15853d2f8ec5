/*
 * mcentral: one per span class, trading spans with free slots between the
 * thread caches, and the lock-free protocol for frees into spans that the
 * freeing thread does not own.
 *
 * Offered to mcache.  Takes its own lock internally and releases it before it
 * calls mheap.
 */
#ifndef GM_MCENTRAL_H
#define GM_MCENTRAL_H

#include "mheap.h"

/* A span of class spc with at least one free slot, owned by `owner` from now
 * on and swept (allocbits current, freeindex 0); NULL if out of memory. */
GM_INTERNAL mspan *mcentral_cache_span(unsigned spc, struct mcache *owner);

/* The owner gives its span back (full, or at thread exit). */
GM_INTERNAL void mcentral_uncache_span(mspan *s);

/* Frees slot idx of s on behalf of a thread that does not own s.  The caller
 * has checked that the address is that slot.  `caller` names the API call for
 * error reports. */
GM_INTERNAL void mcentral_free_remote(mspan *s, uint32_t idx, const char *caller);

/* Is slot idx allocated and not yet freed?  Racy by nature for slots other
 * threads may free concurrently; exact for a slot only this thread frees. */
static inline bool span_slot_live(const mspan *s, uint32_t idx) {
    uint32_t w = idx >> 6;
    uint64_t bit = (uint64_t)1 << (idx & 63);
    uint32_t fi = __atomic_load_n(&s->freeindex, __ATOMIC_ACQUIRE);
    bool allocated = idx < fi || (__atomic_load_n(span_bits(s, w, SPAN_ALLOC), __ATOMIC_RELAXED) & bit);
    return allocated && !(__atomic_load_n(span_bits(s, w, SPAN_LOCAL), __ATOMIC_RELAXED) & bit) &&
           !(__atomic_load_n(span_bits(s, w, SPAN_REMOTE), __ATOMIC_RELAXED) & bit);
}

/* The empty spans kept back as spares: their bytes, and giving them to mheap. */
GM_INTERNAL size_t mcentral_spare_bytes(void);
GM_INTERNAL void mcentral_release_spares(void);

GM_INTERNAL void mcentral_lock_all_for_fork(void);
GM_INTERNAL void mcentral_unlock_all_after_fork(bool child);

#endif
