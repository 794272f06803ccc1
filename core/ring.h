/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ring.h - a multi-producer enqueue on ck_ring that yields while it waits.
 *
 * ck_ring_enqueue_mpsc/_mpmc reserve a ticket with a CAS on p_head, write
 * the slot, then spin until every earlier ticket is committed (p_tail ==
 * ticket) with nothing but a pause instruction. With more producer threads
 * than cores, a producer preempted between reservation and commit leaves
 * every later producer spinning for whole time slices: eight senders on two
 * cores then crawl at seconds per message, and a thread spinning like this
 * can be the very one the preempted producer needs the core of.
 *
 * tlsq__ring_enqueue_mp is the same algorithm, with ck's own reservation
 * and ck's own commit (store fence, then the store of p_tail), except that
 * the wait for our turn spins briefly and then calls sched_yield().
 * Dequeues pair with it exactly as with ck_ring_enqueue_mp*.
 */
#ifndef TLSQ_CORE_RING_H
#define TLSQ_CORE_RING_H

#include <sched.h>
#include <stdbool.h>

#include <ck_pr.h>
#include <ck_ring.h>

#define TLSQ__RING_SPINS 64

/* Enqueues entry; false if the ring is full (nothing written). */
static inline bool tlsq__ring_enqueue_mp(ck_ring_t *ring, ck_ring_buffer_t *slots, void *entry)
{
	unsigned int ticket, spins = 0;
	void **slot = ck_ring_enqueue_reserve_mpmc(ring, slots, &ticket);
	if (slot == NULL)
		return false;
	/* ck's store (inline asm, like ck's own slot copy): the slot is ours
	 * by the ticket; p_tail's release store below publishes it. */
	ck_pr_store_ptr(slot, entry);
	while (ck_pr_load_uint(&ring->p_tail) != ticket) {
		if (++spins < TLSQ__RING_SPINS)
			ck_pr_stall();
		else
			sched_yield();
	}
	ck_pr_fence_store();
	ck_pr_store_uint(&ring->p_tail, ticket + 1);
	return true;
}

#endif
