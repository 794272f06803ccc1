/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * queue.c - byte-budgeted queues: the parts both directions
 * share, and tx (many producers, one consumer). rx is in rxq.c. The
 * contract is in queue.h; the reasoning, with diagrams, in docs/queues.md.
 *
 * Who may call what concurrently:
 *   tx: tlsq__txq_push_mpsc from any number of threads; tlsq__txq_pop_sc,
 *       tlsq__txq_pop_wait_sc and tlsq__txq_release_sc from one consumer
 *       (the IO task) at a time.
 *   rx: the pushes (tlsq__rxq_push_sp, _last_sp, _batch_sp), the batch's
 *       signal and tlsq__rxq_room_sp from one producer (the IO task) at a
 *       time; the pops, releases and tlsq__rxq_unpop_mc from any number of
 *       threads (rxq.c).
 *   end, close, bytes, entries, ready, wait_drained: any thread, any time.
 *   init and fini: nobody else.
 *
 * Invariants:
 * - reserved = (bytes | entries << 40) counts every entry from its push
 *   until its credit is given back (tx: tlsq__txq_release_sc; rx: the pop).
 *   entries <= nslots - 1, the ring's capacity, so a push holding a credit
 *   always finds a free slot.
 * - end only grows: OPEN -> ENDED -> CLOSED or OPEN -> CLOSED. Each code is
 *   set once, by CAS from CODE_UNSET (the first caller wins), before `end`
 *   moves, so whoever sees the new `end` also sees the code.
 * - unpopped = entries published (tx stack, rx ring) minus entries popped. A
 *   producer adds 1 AFTER publishing, the consumer subtracts 1 after
 *   popping; it can dip to -1 briefly. The push whose add takes it from 0
 *   to 1 reports was_empty: docs/queues.md shows that this push always
 *   happens after the consumer last found the queue empty, so notifying only
 *   then loses no wakeup.
 * - The rx carry list holds put-back entries; they hold no credit.
 *
 * Orderings: every RMW and load of reserved, end, the codes, unpopped,
 * producer_parked and the waiting counters is seq_cst (on x86 the loads
 * are plain moves and the RMWs are locked instructions either way). The
 * Dekker-style pairs that need seq_cst are named where they occur. tx
 * buffers are handed over by the stack (release CAS, acquire exchange); rx
 * buffers by ck_ring (release store of the producer index, acquire
 * load by the consumer); ThreadSanitizer cannot see ck's inline-asm fences,
 * so each hand-off is annotated: __tsan_release(b) BEFORE the enqueue that
 * publishes b (a release after it could come too late: the consumer may
 * already hold b), __tsan_acquire(b) after the dequeue.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "queue_int.h"

int tlsq__queue_init(tlsq__queue *q, size_t budget, unsigned nslots)
{
	memset(q, 0, sizeof *q);
	unsigned n = 4;
	while (n < nslots && n < NSLOTS_MAX)
		n <<= 1;
	q->nslots = n;
	q->budget = budget == 0 ? 1 : budget > BUDGET_MAX ? BUDGET_MAX : budget;
	atomic_init(&q->slots, NULL);
	atomic_init(&q->carry, NULL);
	atomic_init(&q->end_code, CODE_UNSET);
	atomic_init(&q->close_code, CODE_UNSET);
	atomic_init(&q->room_fd, -1);
	tlsq__ec_init(&q->data_ec);
	tlsq__ec_init(&q->space_ec);
	return TLSQ_OK;
}

static void free_carry(tlsq__buf *b)
{
	while (b != NULL) {
		tlsq__buf *next = b->qnext;
		tlsq__buf_free(b);
		b = next;
	}
}

void tlsq__queue_fini(tlsq__queue *q)
{
	tlsq__ring *s = atomic_load(&q->slots);
	void *p;
	if (s != NULL) {
		while (ck_ring_dequeue_spmc(&s->ring, s->slot, &p)) {
			TSAN_ACQUIRE(p);
			tlsq__buf_free(p);
		}
		free(s);
	}
	free_carry(atomic_load(&q->carry));
	free_carry(atomic_load(&q->tx_stack));
	free_carry(q->tx_batch);
	atomic_store(&q->tx_stack, NULL);
	q->tx_batch = NULL;
	atomic_store(&q->slots, NULL);
	atomic_store(&q->carry, NULL);
	int rfd = atomic_exchange(&q->room_fd, -1);
	if (rfd >= 0)
		close(rfd);
}

uint64_t tlsq__queue_bytes(const tlsq__queue *q)
{
	return atomic_load(&((tlsq__queue *)q)->reserved) & BYTES_MASK;
}

uint32_t tlsq__queue_entries(const tlsq__queue *q)
{
	return (uint32_t)(atomic_load(&((tlsq__queue *)q)->reserved) >> ENTRY_SHIFT);
}

/* The ring, allocated by the first push (idle queues cost none). */
static tlsq__ring *queue_slots(tlsq__queue *q)
{
	/* Acquire: pairs with the release CAS that published the ring. */
	tlsq__ring *s = atomic_load_explicit(&q->slots, memory_order_acquire);
	if (s != NULL)
		return s;
	tlsq__ring *mine = calloc(1, sizeof *mine + q->nslots * sizeof mine->slot[0]), *cur = NULL;
	if (mine == NULL)
		return NULL;
	ck_ring_init(&mine->ring, q->nslots);
	if (atomic_compare_exchange_strong_explicit(&q->slots, &cur, mine, memory_order_acq_rel,
	                                            memory_order_acquire))
		return mine;
	free(mine); /* another producer won */
	return cur;
}

/* What a push (or a waiter) gets once the queue is not open. */
int tlsq__q_push_code(tlsq__queue *q, int end)
{
	/* The end's code first (queue.h): a close after an end does not
	 * change what producers are told. */
	int code = atomic_load(&q->end_code);
	if (code == CODE_UNSET && end == CLOSED)
		code = atomic_load(&q->close_code);
	return code == 0 || code == CODE_UNSET ? TLSQ_ECLOSED : code;
}

/* What a consumer gets after the end (0 allowed: a clean end). */
int tlsq__q_consumer_code(tlsq__queue *q, int end)
{
	int code = atomic_load(end == CLOSED ? &q->close_code : &q->end_code);
	return code == CODE_UNSET ? TLSQ_ECLOSED : code;
}

void tlsq__queue_end(tlsq__queue *q, int code)
{
	int unset = CODE_UNSET, open = OPEN;
	/* Already closed: the close's code stands (an end after a failure is
	 * not a local end). */
	if (atomic_load(&q->end) == CLOSED)
		return;
	/* First ender wins the code; the code is set before `end` moves. */
	if (!atomic_compare_exchange_strong(&q->end_code, &unset, code))
		return;
	/* Fails harmlessly if the queue was closed meanwhile (CLOSED wins). */
	atomic_compare_exchange_strong(&q->end, &open, ENDED);
	tlsq__ec_inc(&q->data_ec);
	tlsq__ec_inc(&q->space_ec);
	tlsq__txq_room_signal(q); /* a push now fails at once: say so */
}

int tlsq__queue_was_ended(const tlsq__queue *q)
{
	return atomic_load(&((tlsq__queue *)q)->end_code) != CODE_UNSET;
}

int tlsq__queue_end_code(const tlsq__queue *q)
{
	int code = atomic_load(&((tlsq__queue *)q)->end_code);
	return code == CODE_UNSET ? 0 : code;
}

void tlsq__queue_close(tlsq__queue *q, int code)
{
	int unset = CODE_UNSET;
	if (!atomic_compare_exchange_strong(&q->close_code, &unset, code))
		return;
	atomic_store(&q->end, CLOSED); /* terminal: nothing moves it back */
	tlsq__ec_inc(&q->data_ec);
	tlsq__ec_inc(&q->space_ec);
	tlsq__txq_room_signal(q);
}

/*
 * One attempt at a credit for `bytes` and one slot. On success sets
 * *entries_before. The load and CAS are seq_cst: in rx_push the producer
 * stores producer_parked and then calls this, a consumer gives credit back
 * and then loads producer_parked (store-load on both sides).
 */
static int q_reserve(tlsq__queue *q, uint64_t bytes, uint64_t *entries_before, int budget)
{
	uint64_t r = atomic_load(&q->reserved);
	for (;;) {
		uint64_t b = r & BYTES_MASK, e = r >> ENTRY_SHIFT;
		int empty = b == 0 && e == 0;
		if (!empty && ((budget && b + bytes > q->budget) || e + 1 >= q->nslots))
			return 0;
		if (atomic_compare_exchange_weak(&q->reserved, &r, r + bytes + ONE_ENTRY)) {
			*entries_before = e;
			return 1;
		}
	}
}

int tlsq__q_reserve(tlsq__queue *q, uint64_t bytes, uint64_t *entries_before)
{
	return q_reserve(q, bytes, entries_before, 1);
}

int tlsq__q_reserve_slot(tlsq__queue *q, uint64_t bytes, uint64_t *entries_before)
{
	return q_reserve(q, bytes, entries_before, 0);
}

void tlsq__q_give_back(tlsq__queue *q, uint64_t bytes, uint64_t entries)
{
	atomic_fetch_sub(&q->reserved, bytes + (entries << ENTRY_SHIFT));
}

/*
 * tx push: onto a lock-free (Treiber) stack, one CAS. The release CAS
 * publishes b's contents and its link; the consumer's acquire exchange
 * takes the whole stack at once. Unlike a multi-producer ring there is no
 * window between taking a place and publishing it: a producer preempted
 * anywhere here holds nothing the other producers wait for (docs/queues.md,
 * "Why tx is not a ck_ring").
 */
static void tx_stack_push(tlsq__queue *q, tlsq__buf *b)
{
	tlsq__buf *head = atomic_load_explicit(&q->tx_stack, memory_order_relaxed);
	do
		b->qnext = head;
	while (!atomic_compare_exchange_weak_explicit(&q->tx_stack, &head, b, memory_order_release,
	                                              memory_order_relaxed));
}

/* tx pop (one consumer): the oldest taken entry; when none is left, takes
 * everything pushed so far and reverses it into push order. */
static tlsq__buf *tx_take(tlsq__queue *q)
{
	tlsq__buf *b = q->tx_batch;
	if (b == NULL) {
		/* seq_cst, not relaxed: the IO thread cleared the connection's
		 * `pending` flag (a seq_cst store, core/notify.h) just before this
		 * look, and a producer pushes, fences (seq_cst) and then loads
		 * `pending`. With both sides seq_cst, C11 (7.17.3) guarantees that
		 * either the producer sees the clear and notifies again, or this
		 * load sees its push. A relaxed load may be satisfied before the
		 * store; x86 happens not to, but that is the hardware, not the
		 * model. On x86 a seq_cst load is the same plain move. */
		if (atomic_load(&q->tx_stack) == NULL)
			return NULL;
		tlsq__buf *s = atomic_exchange_explicit(&q->tx_stack, NULL, memory_order_acquire);
		uint64_t n = 0, bytes = 0;
		while (s != NULL) {
			tlsq__buf *next = s->qnext;
			s->qnext = b;
			b = s;
			s = next;
			n++;
			bytes += b->qcharge;
		}
		if (b == NULL)
			return NULL;
		/* Counted here, by the one consumer, not by every producer: two
		 * locked adds per send on shared lines cost a quarter of the
		 * push. A reader sees a batch late at most; `reserved` (the
		 * fill) counts every entry from its push. */
		tlsq__count_sw(&q->stats.bytes_in, bytes);
		tlsq__count_sw(&q->stats.entries_in, n);
	}
	q->tx_batch = b->qnext;
	b->qnext = NULL;
	return b;
}

/* Publishes b; the caller holds a credit for it. mp: tx (any number of
 * producers, the stack above), else rx (one producer, the ck_ring). */
int tlsq__q_publish(tlsq__queue *q, tlsq__buf *b, uint64_t bytes, int mp)
{
	b->qcharge = (uint32_t)bytes;
	if (mp) {
		tx_stack_push(q, b);
		return TLSQ_OK;
	}
	tlsq__ring *s = queue_slots(q);
	if (s == NULL)
		return TLSQ_ENOMEM;
	TSAN_RELEASE(b);
	/* The credit holds a slot, so this cannot fail (queue.h); the loop
	 * only guards the invariant instead of losing an entry. */
	while (!ck_ring_enqueue_spmc(&s->ring, s->slot, b))
		sched_yield();
	tlsq__count_sw(&q->stats.bytes_in, bytes); /* rx: one producer */
	tlsq__count_sw(&q->stats.entries_in, 1);
	return TLSQ_OK;
}

/* ---- tx ---- */

int tlsq__txq_push_mpsc(tlsq__queue *q, tlsq__buf *b, size_t charge, int timeout_ms, int *was_empty)
{
	uint64_t bytes = charge ? charge : tlsq__buf_len(b), e;
	struct timespec dl;
	int has_dl = 0, waiting = 0, end, rc;
	if (bytes > UINT32_MAX)
		return TLSQ_EINVAL;
	for (;;) {
		uint32_t seen = tlsq__ec_value(&q->space_ec);
		if ((end = atomic_load(&q->end)) != OPEN) {
			rc = tlsq__q_push_code(q, end);
			goto out;
		}
		if (tlsq__q_reserve(q, bytes, &e))
			break;
		if (!waiting) {
			if ((has_dl = tlsq__timeout_deadline(timeout_ms, &dl)) < 0) {
				tlsq__txq_room_after_push(q, bytes, 1);
				return TLSQ_EAGAIN;
			}
			waiting = 1;
			atomic_fetch_add(&q->waiting_producers, 1);
			tlsq__count(&q->stats.producer_waits, 1);
		}
		if (tlsq__ec_wait(&q->space_ec, seen, has_dl ? &dl : NULL) < 0) {
			rc = TLSQ_ETIMEDOUT;
			goto out;
		}
	}
	/* Re-check after reserving (seq_cst load after the seq_cst CAS): an
	 * ender stores `end` and then reads `reserved` (tlsq__queue_entries),
	 * so either it sees our credit and waits for the entry, or we see the
	 * end and take the credit back. A push never succeeds unseen. */
	if ((end = atomic_load(&q->end)) != OPEN)
		rc = tlsq__q_push_code(q, end);
	else
		rc = tlsq__q_publish(q, b, bytes, 1);
	if (rc != TLSQ_OK) {
		tlsq__q_give_back(q, bytes, 1);
		tlsq__ec_inc(&q->space_ec);
		goto out;
	}
	/* After publishing: 0 -> 1 means the consumer may have found the ring
	 * empty and stopped looking, so this push must wake it. */
	int empty = atomic_fetch_add(&q->unpopped, 1) == 0;
	if (empty) {
		tlsq__count(atomic_load(&q->waiting_consumers) ? &q->stats.wakeups_sent
		                                               : &q->stats.wakeups_saved,
		            1);
		tlsq__ec_inc(&q->data_ec);
	}
	if (was_empty)
		*was_empty = empty;
out:
	if (waiting)
		atomic_fetch_sub(&q->waiting_producers, 1);
	if (rc == TLSQ_OK || rc == TLSQ_ETIMEDOUT)
		tlsq__txq_room_after_push(q, bytes, rc != TLSQ_OK);
	return rc;
}

tlsq__buf *tlsq__txq_pop_sc(tlsq__queue *q)
{
	tlsq__buf *b = tx_take(q);
	if (b == NULL)
		return NULL;
	atomic_fetch_sub(&q->unpopped, 1);
	if (atomic_load(&q->end) == CLOSED) {
		/* Closed: nobody will send these. Free them all. */
		do {
			tlsq__q_give_back(q, b->qcharge, 1);
			tlsq__buf_free(b);
			if ((b = tx_take(q)) == NULL)
				break;
			atomic_fetch_sub(&q->unpopped, 1);
		} while (1);
		tlsq__ec_inc(&q->space_ec);
		return NULL;
	}
	tlsq__count_sw(&q->stats.entries_out, 1); /* one consumer */
	return b;
}

int tlsq__txq_pop_wait_sc(tlsq__queue *q, tlsq__buf **out, int timeout_ms)
{
	struct timespec dl;
	int has_dl = 0, waiting = 0, end, rc;
	for (;;) {
		/* seen first, then the checks: a producer's was_empty increment
		 * after our last look moves the count (see unpopped above). */
		uint32_t seen = tlsq__ec_value(&q->data_ec);
		end = atomic_load(&q->end);
		if (end == CLOSED) {
			tlsq__txq_pop_sc(q); /* frees what is queued */
			rc = tlsq__q_consumer_code(q, end);
			break;
		}
		if ((*out = tlsq__txq_pop_sc(q)) != NULL) {
			rc = TLSQ_OK;
			break;
		}
		if (end == ENDED && tlsq__queue_entries(q) == 0) {
			rc = tlsq__q_consumer_code(q, end);
			break;
		}
		if (!waiting) {
			if ((has_dl = tlsq__timeout_deadline(timeout_ms, &dl)) < 0)
				return TLSQ_EAGAIN;
			waiting = 1;
			atomic_fetch_add(&q->waiting_consumers, 1);
			tlsq__count_sw(&q->stats.consumer_waits, 1); /* one consumer */
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

void tlsq__txq_release_sc(tlsq__queue *q, uint64_t bytes, uint32_t entries)
{
	if (bytes == 0 && entries == 0)
		return;
	tlsq__q_give_back(q, bytes, entries);
	tlsq__count_sw(&q->stats.bytes_out, bytes);
	tlsq__txq_room_signal(q); /* one load unless an event loop waits for room */
	/*
	 * Wake producers only once the queue is at most half full (bytes and
	 * entries), not on every release: a producer blocked on a full queue
	 * then sleeps once per half budget instead of once per message, and
	 * the consumer makes one futex call per half budget, not per entry.
	 * No wakeup is lost: every release that leaves the queue at or below
	 * half moves the count (also when it becomes empty, which admits an
	 * entry of any size), so a producer that found no room (after reading
	 * the count) is woken by the first such release; above half, the
	 * consumer still has at least half a budget to pop and release.
	 * tlsq__txq_wait_drained waits for reserved == 0, also below half.
	 */
	uint64_t r = atomic_load(&q->reserved);
	if ((r & BYTES_MASK) <= q->budget / 2 && (r >> ENTRY_SHIFT) <= q->nslots / 2) {
		tlsq__count(atomic_load(&q->waiting_producers) ? &q->stats.wakeups_sent
		                                               : &q->stats.wakeups_saved,
		            1);
		/* ck_ec makes the futex call only if a waiter flagged the count. */
		tlsq__ec_inc(&q->space_ec);
	} else {
		tlsq__count(&q->stats.wakeups_saved, 1); /* producers add too */
	}
}

int tlsq__txq_wait_drained(tlsq__queue *q, int timeout_ms)
{
	struct timespec dl;
	int has_dl = 0, first = 1, end;
	for (;;) {
		uint32_t seen = tlsq__ec_value(&q->space_ec);
		if (atomic_load(&q->reserved) == 0)
			return TLSQ_OK;
		if ((end = atomic_load(&q->end)) == CLOSED)
			return tlsq__q_consumer_code(q, end);
		if (first) {
			if ((has_dl = tlsq__timeout_deadline(timeout_ms, &dl)) < 0)
				return TLSQ_EAGAIN;
			first = 0;
		}
		if (tlsq__ec_wait(&q->space_ec, seen, has_dl ? &dl : NULL) < 0)
			return TLSQ_ETIMEDOUT;
	}
}
