/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rxq.c - the rx side of the queues: one producer (the IO task), many
 * consumers (application threads). Common parts and tx are in queue.c.
 *
 * Who may call what concurrently: tlsq__rxq_push_sp, tlsq__rxq_push_last_sp,
 * tlsq__rxq_push_batch_sp, tlsq__rxq_signal_sp, tlsq__rxq_owed_bytes_sp
 * and tlsq__rxq_room_sp from one producer at a time (`owed` and
 * `owed_bytes` are that producer's own); tlsq__rxq_pop_mc, tlsq__rxq_pop_held_mc,
 * tlsq__rxq_release_mc, tlsq__rxq_unpop_mc and tlsq__rxq_ready from any
 * number of threads.
 *
 * Invariants:
 * - Credits go back when an entry is popped from the ring, so `reserved`
 *   counts entries on the ring (or being pushed); put-back entries hold
 *   none. The exception is a held pop (a lent stream chunk, api/data.c):
 *   its slot (the entry count) goes back at once, but its bytes stay
 *   charged until tlsq__rxq_release_mc (a put-back rest that is lent is
 *   charged again), so `reserved` bytes = ring + lent: what is lent counts
 *   against the budget and the producer stays parked meanwhile; the
 *   unpark is then reported by the release.
 *   Memory held: budget (or one larger entry) plus at most one put-back
 *   entry per consumer, or per lent chunk (a thread holding several
 *   chunks may put back a rest of each).
 * - producer_parked is 1 only after a push failed for lack of room; the
 *   consumer that moves it back to 0 (exchange) reports the unpark, so each
 *   park is reported at most once. The store/load pairs that make this
 *   race-free are described at each side.
 * - Put-back entries (unpop) form a Treiber stack on `carry`, linked by
 *   qnext. One consumer never has more than one put back (it pops before it
 *   can put back again), so for one consumer the stream order is kept.
 *   With several consumers, two may put back at once; a list instead of a
 *   single slot means unpop never has to wait for another consumer to pop.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "queue_int.h"

uint64_t tlsq__rxq_room_sp(const tlsq__queue *q)
{
	uint64_t r = atomic_load(&((tlsq__queue *)q)->reserved);
	uint64_t b = r & BYTES_MASK, e = r >> ENTRY_SHIFT;
	if (b == 0 && e == 0)
		return UINT64_MAX;
	if (e + 1 >= q->nslots || b >= q->budget)
		return 0;
	return q->budget - b;
}

enum { PUSH_NOW, PUSH_LAST, PUSH_BATCH };

static int rx_push(tlsq__queue *q, tlsq__buf *b, size_t charge, int *was_empty, int how);

int tlsq__rxq_push_sp(tlsq__queue *q, tlsq__buf *b, size_t charge, int *was_empty)
{
	return rx_push(q, b, charge, was_empty, PUSH_NOW);
}

int tlsq__rxq_push_last_sp(tlsq__queue *q, tlsq__buf *b, size_t charge, int *was_empty)
{
	return rx_push(q, b, charge, was_empty, PUSH_LAST);
}

int tlsq__rxq_push_batch_sp(tlsq__queue *q, tlsq__buf *b, size_t charge, int *was_empty)
{
	return rx_push(q, b, charge, was_empty, PUSH_BATCH);
}

static void rx_wake(tlsq__queue *q)
{
	tlsq__count(atomic_load(&q->waiting_consumers) ? &q->stats.wakeups_sent
	                                               : &q->stats.wakeups_saved,
	            1);
	/* Always: a consumer between its failed pop and its wait has read the
	 * count but may not be counted in waiting_consumers yet. Without a
	 * flagged waiter this is one locked increment, no syscall. */
	tlsq__ec_inc(&q->data_ec);
}

void tlsq__rxq_signal_sp(tlsq__queue *q)
{
	if (q->owed == 0)
		return;
	/* The entries were published before: a consumer woken here finds them
	 * (and one that looked since took them without sleeping). */
	if (q->owed > 1)
		tlsq__count(&q->stats.wakeups_saved, q->owed - 1);
	q->owed = 0;
	q->owed_bytes = 0;
	rx_wake(q);
}

uint64_t tlsq__rxq_owed_bytes_sp(const tlsq__queue *q)
{
	return q->owed_bytes;
}

static int rx_push(tlsq__queue *q, tlsq__buf *b, size_t charge, int *was_empty, int how)
{
	uint64_t bytes = charge ? charge : tlsq__buf_len(b), e;
	int end, rc;
	if (bytes > UINT32_MAX)
		return TLSQ_EINVAL;
	if ((end = atomic_load(&q->end)) != OPEN)
		return tlsq__q_push_code(q, end);
	if (how == PUSH_LAST) {
		if (!tlsq__q_reserve_slot(q, bytes, &e))
			return TLSQ_EAGAIN;
	} else if (!tlsq__q_reserve(q, bytes, &e)) {
		/* Park, then look again (seq_cst store, then seq_cst loads in
		 * tlsq__q_reserve). A consumer gives credit back, then loads the
		 * flag: either we see its credit here, or it sees the flag and
		 * reports the unpark. */
		atomic_store(&q->producer_parked, 1);
		if (!tlsq__q_reserve(q, bytes, &e))
			return TLSQ_EAGAIN;
		/* Found room ourselves. If a consumer already took the flag,
		 * the IO task gets one spurious unpark request: harmless. */
		atomic_store(&q->producer_parked, 0);
	} else if (atomic_load_explicit(&q->producer_parked, memory_order_relaxed)) {
		atomic_store(&q->producer_parked, 0); /* room came without a pop */
	}
	if ((end = atomic_load(&q->end)) != OPEN) /* as in tx push: never unseen */
		rc = tlsq__q_push_code(q, end);
	else
		rc = tlsq__q_publish(q, b, bytes, 0);
	if (rc != TLSQ_OK) {
		tlsq__q_give_back(q, bytes, 1);
		return rc;
	}
	/* After publishing: 0 -> 1 means a consumer may have found nothing
	 * ready (tlsq__rxq_ready) and cleared the pollfd; this push must set it
	 * again. Counting reservations instead (`e`) made ready() say yes while
	 * a preempted push was not yet poppable, and a poll loop spun. */
	int empty = atomic_fetch_add(&q->unpopped, 1) == 0;
	if (was_empty)
		*was_empty = empty;
	if (how == PUSH_BATCH) {
		q->owed++;
		q->owed_bytes += bytes;
		return TLSQ_OK;
	}
	if (q->owed) /* this wake-up pays for the batched ones too */
		tlsq__count(&q->stats.wakeups_saved, q->owed);
	q->owed = 0;
	q->owed_bytes = 0;
	rx_wake(q);
	return TLSQ_OK;
}

/* Pushes the list first..last (linked by qnext) on the carry stack. A
 * Treiber push: ABA cannot hurt it, whatever `head` became meanwhile is
 * what last->qnext points to when the CAS succeeds. */
static void carry_push(tlsq__queue *q, tlsq__buf *first, tlsq__buf *last)
{
	tlsq__buf *head = atomic_load_explicit(&q->carry, memory_order_relaxed);
	do
		last->qnext = head;
	/* release: the entry (and its link) are written before it is listed */
	while (!atomic_compare_exchange_weak_explicit(&q->carry, &head, first, memory_order_release,
	                                              memory_order_relaxed));
}

/* Takes one put-back entry, or NULL. Takes the whole list with one
 * exchange (no ABA: nodes are never unlinked one by one while others
 * push) and pushes the rest back. */
static tlsq__buf *carry_take(tlsq__queue *q)
{
	/* Cheap look first: the carry is almost always empty. */
	if (atomic_load_explicit(&q->carry, memory_order_relaxed) == NULL)
		return NULL;
	/* acquire: pairs with carry_push's release */
	tlsq__buf *b = atomic_exchange_explicit(&q->carry, NULL, memory_order_acquire);
	if (b == NULL)
		return NULL;
	if (b->qnext != NULL) {
		tlsq__buf *last = b->qnext;
		while (last->qnext != NULL)
			last = last->qnext;
		carry_push(q, b->qnext, last);
		/* For a moment the list was empty: another consumer may have
		 * looked then and gone to sleep. The entries are back, tell it. */
		tlsq__ec_inc(&q->data_ec);
	}
	b->qnext = NULL;
	return b;
}

/* After credit went back (seq_cst RMW), looks for a parked producer
 * (seq_cst load): the other half of the pair in tlsq__rxq_push_sp. The
 * exchange makes the report exactly-once among consumers. */
static void rx_unpark(tlsq__queue *q, int *unpark)
{
	if (atomic_load(&q->producer_parked) && atomic_exchange(&q->producer_parked, 0))
		*unpark = 1;
}

/* One entry without waiting: a put-back one first, then the ring. With
 * `held` NULL the credit goes back now (a put-back one holds none); else
 * the entry keeps (or gets) a credit of b->qcharge bytes and *held = 1. */
static tlsq__buf *rx_take(tlsq__queue *q, int *unpark, int *held)
{
	tlsq__buf *b = carry_take(q);
	if (held)
		*held = 0;
	if (b != NULL) {
		if (held) {
			/* A rest put back holds no credit: charge it again while
			 * it is lent, so that everything lent counts. Past the
			 * budget if need be (the bytes exist already): the
			 * producer then stays parked until the release. */
			b->qcharge = (uint32_t)tlsq__buf_len(b);
			atomic_fetch_add(&q->reserved, (uint64_t)b->qcharge);
			*held = 1;
		}
		return b;
	}
	tlsq__ring *s = atomic_load_explicit(&q->slots, memory_order_acquire);
	void *p;
	if (s == NULL || !ck_ring_dequeue_spmc(&s->ring, s->slot, &p))
		return NULL;
	TSAN_ACQUIRE(p);
	b = p;
	atomic_fetch_sub(&q->unpopped, 1);
	tlsq__count(&q->stats.bytes_out, b->qcharge);
	tlsq__count(&q->stats.entries_out, 1);
	if (held) {
		/* The slot is free: its entry goes back now (a lent chunk is
		 * not queued: tlsq__rxq_ready, was_empty). The bytes stay
		 * charged until tlsq__rxq_release_mc. */
		tlsq__q_give_back(q, 0, 1);
		*held = 1;
		return b;
	}
	tlsq__q_give_back(q, b->qcharge, 1);
	rx_unpark(q, unpark);
	return b;
}

/* After a close: frees what is queued (consumers may dequeue concurrently). */
static void rx_drain_closed(tlsq__queue *q)
{
	int unpark = 0;
	tlsq__buf *b;
	while ((b = rx_take(q, &unpark, NULL)) != NULL)
		tlsq__buf_free(b);
}

static int rx_pop(tlsq__queue *q, tlsq__buf **out, int timeout_ms, int *unpark, int *held)
{
	struct timespec dl;
	int has_dl = 0, waiting = 0, end, rc;
	*out = NULL;
	for (;;) {
		/* 1. the count, 2. the state, 3. the entries: a push or an end
		 * after step 1 moves the count and tlsq__ec_wait returns. */
		uint32_t seen = tlsq__ec_value(&q->data_ec);
		end = atomic_load(&q->end);
		if (end == CLOSED) {
			rx_drain_closed(q);
			rc = tlsq__q_consumer_code(q, end);
			break;
		}
		if ((*out = rx_take(q, unpark, held)) != NULL) {
			rc = TLSQ_OK;
			break;
		}
		if (end == ENDED) {
			/* The producer pushed everything before it ended the
			 * queue, and we loaded `end` before looking: drained. */
			rc = tlsq__q_consumer_code(q, end);
			break;
		}
		if (!waiting) {
			if ((has_dl = tlsq__timeout_deadline(timeout_ms, &dl)) < 0)
				return TLSQ_EAGAIN;
			waiting = 1;
			atomic_fetch_add(&q->waiting_consumers, 1);
			tlsq__count(&q->stats.consumer_waits, 1);
		}
		if (tlsq__ec_wait(&q->data_ec, seen, has_dl ? &dl : NULL) < 0) {
			rc = TLSQ_ETIMEDOUT;
			break;
		}
	}
	if (waiting)
		atomic_fetch_sub(&q->waiting_consumers, 1);
	return rc;
}

int tlsq__rxq_pop_mc(tlsq__queue *q, tlsq__buf **out, int timeout_ms, int *unpark)
{
	return rx_pop(q, out, timeout_ms, unpark, NULL);
}

int tlsq__rxq_pop_held_mc(tlsq__queue *q, tlsq__buf **out, int timeout_ms, int *unpark, int *held)
{
	*held = 0;
	return rx_pop(q, out, timeout_ms, unpark, held);
}

void tlsq__rxq_release_mc(tlsq__queue *q, uint32_t charge, int *unpark)
{
	tlsq__q_give_back(q, charge, 0);
	rx_unpark(q, unpark);
}

void tlsq__rxq_unpop_mc(tlsq__queue *q, tlsq__buf *b)
{
	carry_push(q, b, b);
	/* A consumer may be waiting for exactly this entry. */
	tlsq__ec_inc(&q->data_ec);
}

int tlsq__rxq_ready(const tlsq__queue *q)
{
	tlsq__queue *m = (tlsq__queue *)q;
	return atomic_load(&m->end) != OPEN || atomic_load(&m->carry) != NULL ||
	       atomic_load(&m->unpopped) > 0;
}

/* Entries pushed between trims: 512 slots are one 4 KiB page. */
#define TRIM_ENTRIES 512u

/* see queue.h */
int tlsq__rxq_trim_sp(tlsq__queue *q)
{
	/* Relaxed: the producer published the ring itself. */
	tlsq__ring *s = atomic_load_explicit(&q->slots, memory_order_relaxed);
	if (s == NULL)
		return 0;
	unsigned tail = ck_pr_load_uint(&s->ring.p_tail); /* written by us only */
	if (tail - q->trimmed_at < TRIM_ENTRIES)
		return 0;
	/* seq_cst load: a consumer gives an entry's credit back after the
	 * CAS that dequeued it, so no entry left means c_head == p_tail. */
	if (tlsq__queue_entries(q) != 0)
		return 0;
	long page = sysconf(_SC_PAGESIZE); /* once per 512 entries at most */
	uintptr_t lo = (uintptr_t)&s->slot[0], hi = (uintptr_t)&s->slot[q->nslots];
	lo = (lo + (uintptr_t)page - 1) & ~((uintptr_t)page - 1); /* whole pages of slots only */
	hi &= ~((uintptr_t)page - 1);
	q->trimmed_at = tail;
	if (hi <= lo)
		return 0;
	return madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0;
}
