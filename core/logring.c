/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * logring.c - see logring.h for the why and the contract.
 *
 * Orderings (the classic seqlock in C11 atomics, per slot):
 *   writer: CAS seq -> odd (relaxed); fence(release); payload (relaxed);
 *           store seq = even (release)
 *   reader: load seq (acquire); payload (relaxed); fence(acquire);
 *           load seq (relaxed); equal and even -> the copy is whole.
 * The writer's release fence keeps its payload stores after the odd seq
 * becomes visible; the reader's acquire fence keeps its payload loads
 * before the second seq load, so a reader that saw any new word also sees
 * the odd (or a later) sequence and discards the copy.
 */
#include <assert.h>
#include <string.h>

#include "logring.h"

void tlsq__logring_init(tlsq__logring *r)
{
	memset(r, 0, sizeof *r);
}

uint64_t tlsq__logring_push(tlsq__logring *r, const void *rec, size_t len)
{
	assert(len <= TLSQ__LOGRING_BYTES);
	uint64_t w[TLSQ__LOGRING_WORDS] = {0};
	memcpy(w, rec, len);
	/* relaxed: the number only has to be unique; the slot's seq orders. */
	uint64_t n = atomic_fetch_add_explicit(&r->last, 1, memory_order_relaxed) + 1;
	tlsq__logring_slot *s = &r->slots[(n - 1) % TLSQ__LOGRING_SLOTS];
	uint64_t cur = atomic_load_explicit(&s->seq, memory_order_relaxed);
	do {
		/* Odd: a writer of an older lap is still at it; >= 2n - 1: a
		 * newer record got here first. Never wait for either. */
		if ((cur & 1) || cur >= 2 * n - 1)
			return 0;
	} while (!atomic_compare_exchange_weak_explicit(
	    &s->seq, &cur, 2 * n - 1, memory_order_relaxed, memory_order_relaxed));
	/* release: the odd seq is visible before any payload word changes. */
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < TLSQ__LOGRING_WORDS; i++)
		atomic_store_explicit(&s->w[i], w[i], memory_order_relaxed);
	/* release: the payload is complete before the even seq says so. */
	atomic_store_explicit(&s->seq, 2 * n, memory_order_release);
	return n;
}

uint64_t tlsq__logring_last(const tlsq__logring *r)
{
	return atomic_load_explicit((_Atomic uint64_t *)&r->last, memory_order_acquire);
}

int tlsq__logring_read(const tlsq__logring *r, uint64_t n, void *out, size_t len)
{
	if (n == 0 || len > TLSQ__LOGRING_BYTES)
		return TLSQ__LOGRING_GONE;
	tlsq__logring_slot *s = (tlsq__logring_slot *)&r->slots[(n - 1) % TLSQ__LOGRING_SLOTS];
	/* acquire: pairs with the writer's final release store. */
	uint64_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
	if (s1 != 2 * n)
		return s1 > 2 * n ? TLSQ__LOGRING_GONE : TLSQ__LOGRING_PENDING;
	uint64_t w[TLSQ__LOGRING_WORDS];
	for (size_t i = 0; i < TLSQ__LOGRING_WORDS; i++)
		w[i] = atomic_load_explicit(&s->w[i], memory_order_relaxed);
	/* acquire: the payload loads above happen before the re-check. */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->seq, memory_order_relaxed) != s1)
		return TLSQ__LOGRING_GONE; /* overwritten while we copied */
	memcpy(out, w, len);
	return TLSQ__LOGRING_OK;
}
