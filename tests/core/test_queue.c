/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * core/queue.c and rxq.c, one edge at a time: budgets (full, empty, exact
 * fit, 1 byte, oversize), slots and wraparound, timeouts 0 / -1 / N,
 * was_empty, parking, put-back, end and close, counters.
 * Close with many blocked threads is in test_queue_close.c, the
 * multi-threaded stress in test_queue_stress.c.
 */
#include "qtest.h"

#include <sys/mman.h>
#include <unistd.h>

#include "queue_int.h"

static tlsq__queue q;

static int setup(void **state)
{
	(void)state;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tlsq__queue_fini(&q);
	return 0;
}

/* tx push that must succeed; returns was_empty. */
static int tx(tlsq__queue *qq, size_t len)
{
	int was_empty = -1;
	tlsq__buf *b = qt_buf(len, (unsigned char)len);
	int rc = tlsq__txq_push_mpsc(qq, b, 0, 0, &was_empty);
	if (rc != TLSQ_OK)
		fail_msg("tx push of %zu: %d", len, rc);
	return was_empty;
}

/* tx push expected to fail with `want`; frees the buffer. */
static void tx_fails(tlsq__queue *qq, size_t len, int timeout_ms, int want)
{
	tlsq__buf *b = qt_buf(len, 0);
	assert_int_equal(tlsq__txq_push_mpsc(qq, b, 0, timeout_ms, NULL), want);
	tlsq__buf_free(b);
}

/* Pops one tx entry, checks its length, releases its credit. */
static void tx_pop_release(tlsq__queue *qq, size_t len)
{
	tlsq__buf *b = tlsq__txq_pop_sc(qq);
	assert_non_null(b);
	assert_int_equal(tlsq__buf_len(b), len);
	tlsq__txq_release_sc(qq, b->qcharge, 1);
	tlsq__buf_free(b);
}

typedef int rx_push_fn(tlsq__queue *, tlsq__buf *, size_t, int *);

/* Pushes len bytes with `push`: was_empty, or the error (b freed). */
static int rx_with(rx_push_fn *push, tlsq__queue *qq, size_t len)
{
	int was_empty = -1;
	tlsq__buf *b = qt_buf(len, (unsigned char)len);
	int rc = push(qq, b, 0, &was_empty);
	if (rc != TLSQ_OK) {
		tlsq__buf_free(b);
		return rc;
	}
	return was_empty;
}

static int rx(tlsq__queue *qq, size_t len)
{
	return rx_with(tlsq__rxq_push_sp, qq, len);
}

static int rx_batch(tlsq__queue *qq, size_t len)
{
	return rx_with(tlsq__rxq_push_batch_sp, qq, len);
}

static tlsq__buf *rx_pop(tlsq__queue *qq, int *unpark)
{
	tlsq__buf *b = NULL;
	int u = 0;
	int rc = tlsq__rxq_pop_mc(qq, &b, 0, &u);
	if (unpark)
		*unpark = u;
	if (rc != TLSQ_OK)
		fail_msg("rx pop: %d", rc);
	return b;
}

/* ---- admission ---- */

static void test_init_rounds_slots_up_to_a_power_of_two_of_at_least_4(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 0);
	assert_int_equal(q.nslots, 4);
	tlsq__queue_fini(&q);
	tlsq__queue_init(&q, 100, 5);
	assert_int_equal(q.nslots, 8);
	tlsq__queue_fini(&q);
	tlsq__queue_init(&q, 0, 64); /* a 0-byte budget becomes 1 byte */
	assert_int_equal(q.nslots, 64);
	assert_int_equal(q.budget, 1);
	assert_null(atomic_load(&q.slots)); /* rx: ring memory only on first push */
	tx(&q, 1);
	assert_null(atomic_load(&q.slots)); /* tx pushes onto a stack: no ring at all */
	assert_int_equal(tlsq__queue_entries(&q), 1);
}

static void test_push_fills_budget_exactly_and_one_more_byte_is_refused(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	assert_int_equal(tx(&q, 60), 1);
	assert_int_equal(tx(&q, 40), 0); /* exact fit */
	assert_int_equal(tlsq__queue_bytes(&q), 100);
	assert_int_equal(tlsq__queue_entries(&q), 2);
	tx_fails(&q, 1, 0, TLSQ_EAGAIN);
	tx(&q, 0); /* an empty entry needs no byte, only a slot */
	tx_pop_release(&q, 60);
	tx(&q, 60);
	tx_fails(&q, 1, 0, TLSQ_EAGAIN);
}

static void test_entry_larger_than_budget_is_admitted_only_into_an_empty_queue(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	tx(&q, 10);
	tx_fails(&q, 101, 0, TLSQ_EAGAIN);
	tx_pop_release(&q, 10);
	assert_int_equal(tx(&q, 1000), 1); /* empty: admitted alone */
	assert_int_equal(tlsq__queue_bytes(&q), 1000);
	tx_fails(&q, 1, 0, TLSQ_EAGAIN); /* nothing else until it is gone */
	tx_fails(&q, 0, 0, TLSQ_EAGAIN);
	/* Released in pieces, as the IO task does record by record: room comes
	 * back as soon as the bytes left fit the budget. */
	tlsq__buf *b = tlsq__txq_pop_sc(&q);
	tlsq__txq_release_sc(&q, 950, 0);
	tx(&q, 50);
	tx_fails(&q, 1, 0, TLSQ_EAGAIN);
	tlsq__txq_release_sc(&q, 50, 1);
	tlsq__buf_free(b);
	tx_pop_release(&q, 50);
	assert_int_equal(tlsq__queue_bytes(&q), 0);
	assert_int_equal(tlsq__queue_entries(&q), 0);
}

static void test_one_byte_budget_admits_one_byte_at_a_time(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 1, 16);
	tx(&q, 1);
	tx_fails(&q, 1, 0, TLSQ_EAGAIN);
	tx_pop_release(&q, 1);
	tx(&q, 1);
	tx_pop_release(&q, 1);
	tx(&q, 5000); /* larger than the budget: admitted into the empty queue */
	tx_fails(&q, 1, 0, TLSQ_EAGAIN);
	tx_pop_release(&q, 5000);
}

static void test_slots_limit_the_queue_to_nslots_minus_one_entries(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 1 << 20, 8);
	for (int i = 0; i < 7; i++)
		tx(&q, 0);
	tx_fails(&q, 0, 0, TLSQ_EAGAIN);
	tx_pop_release(&q, 0);
	tx(&q, 0);
	assert_int_equal(tlsq__queue_entries(&q), 7);
}

static void test_charge_overrides_the_payload_length(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	tlsq__buf *b = qt_buf(10, 1);
	assert_int_equal(tlsq__txq_push_mpsc(&q, b, 14, 0, NULL), TLSQ_OK);
	assert_int_equal(tlsq__queue_bytes(&q), 14);
	b = qt_buf(10, 1);
	assert_int_equal(tlsq__txq_push_mpsc(&q, b, (size_t)UINT32_MAX + 1, 0, NULL), TLSQ_EINVAL);
	tlsq__buf_free(b);
}

static void test_entries_come_out_in_order_across_many_wraparounds(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 1000, 4); /* 3 entries: wraps every 4 pushes */
	for (int i = 0; i < 1000; i++) {
		int n = i % 3 + 1;
		for (int k = 0; k < n; k++)
			tx(&q, (size_t)(i + k) % 200);
		for (int k = 0; k < n; k++)
			tx_pop_release(&q, (size_t)(i + k) % 200);
	}
	assert_null(tlsq__txq_pop_sc(&q));
	assert_int_equal(atomic_load(&q.reserved), 0);
}

/* ---- trim: an emptied ring's pages go back (issue 18) ---- */

/* Resident pages among the whole pages of the ring's slots (mincore). */
static int slot_pages_resident(tlsq__queue *qq, int *total)
{
	tlsq__ring *s = atomic_load(&qq->slots);
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)&s->slot[0] + page - 1) & ~(page - 1);
	uintptr_t hi = (uintptr_t)&s->slot[qq->nslots] & ~(page - 1);
	unsigned char vec[64];
	size_t n = (hi - lo) / page;
	assert_true(n > 0 && n <= sizeof vec);
	assert_int_equal(mincore((void *)lo, hi - lo, vec), 0);
	int r = 0;
	for (size_t i = 0; i < n; i++)
		r += vec[i] & 1;
	*total = (int)n;
	return r;
}

static void test_rx_trim_gives_back_an_empty_rings_pages_and_the_ring_still_works(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 1 << 20, 4096); /* a connection's rx queue */
	int total, unpark;
	/* 5,000 entries through it, a few at a time: every slot page touched. */
	for (int i = 0; i < 5000; i += 4) {
		for (int k = 0; k < 4; k++)
			assert_true(rx(&q, 8) >= 0);
		for (int k = 0; k < 4; k++)
			tlsq__buf_free(rx_pop(&q, &unpark));
	}
	int res = slot_pages_resident(&q, &total);
	assert_int_equal(res, total);
	assert_true(total >= 7);
	/* Not while an entry is queued. */
	assert_true(rx(&q, 8) >= 0);
	assert_int_equal(tlsq__rxq_trim_sp(&q), 0);
	res = slot_pages_resident(&q, &total);
	assert_int_equal(res, total);
	tlsq__buf_free(rx_pop(&q, &unpark));
	/* Empty: trimmed, every whole page of slots is gone. */
	assert_int_equal(tlsq__rxq_trim_sp(&q), 1);
	assert_int_equal(slot_pages_resident(&q, &total), 0);
	/* Not again before another page of entries went through. */
	assert_int_equal(tlsq__rxq_trim_sp(&q), 0);
	/* Entries still come out in order, with their bytes, across the
	 * zeroed pages and a wraparound. */
	for (int i = 0; i < 6000; i++) {
		tlsq__buf *b = qt_buf(1, (unsigned char)i);
		b->tag = (uint64_t)i;
		assert_int_equal(tlsq__rxq_push_sp(&q, b, 0, NULL), TLSQ_OK);
		if (i % 3 == 2)
			for (int k = i - 2; k <= i; k++) {
				tlsq__buf *o = rx_pop(&q, &unpark);
				assert_int_equal(o->tag, (uint64_t)k);
				assert_int_equal(o->data[o->rd], (unsigned char)k);
				tlsq__buf_free(o);
				if (k % 1000 == 0)
					tlsq__rxq_trim_sp(&q); /* between pushes, as the IO task */
			}
	}
	assert_int_equal(tlsq__queue_entries(&q), 0);
}

/* ---- was_empty ---- */

static void test_was_empty_is_set_once_per_empty_to_non_empty_transition(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 1000, 16);
	assert_int_equal(tx(&q, 1), 1);
	assert_int_equal(tx(&q, 1), 0);
	assert_int_equal(tx(&q, 1), 0);
	for (int i = 0; i < 3; i++)
		tx_pop_release(&q, 1);
	assert_int_equal(tx(&q, 1), 1);
}

/* The IO task has popped everything but not yet released the credits: the
 * next push must still notify it, or it would never look again. */
static void test_was_empty_is_set_when_all_was_popped_even_with_credits_held(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 1000, 16);
	tx(&q, 5);
	tlsq__buf *b = tlsq__txq_pop_sc(&q);
	assert_int_equal(tlsq__queue_entries(&q), 1); /* credit still held */
	assert_int_equal(tx(&q, 5), 1);
	tlsq__txq_release_sc(&q, 5, 1);
	tlsq__buf_free(b);
	tx_pop_release(&q, 5);
	assert_int_equal(tx(&q, 5), 1);
}

/* The IO task is between reserving an rx entry's credit and publishing it
 * (preempted there under load: torture seed 101279 saw a poll loop spin).
 * tlsq__rxq_ready, which keeps the pollfd level-triggered, must say what a
 * pop can take: nothing yet. Before, it counted reservations and said
 * ready while every pop said TLSQ_EAGAIN. */
static void test_rx_ready_ignores_an_entry_reserved_but_not_yet_published(void **state)
{
	(void)state;
	tlsq__buf *b = NULL;
	int unpark = 0;
	uint64_t before = 0;
	tlsq__queue_init(&q, 1000, 16);
	assert_true(tlsq__q_reserve(&q, 10, &before)); /* a push, cut short */
	assert_int_equal(tlsq__rxq_pop_mc(&q, &b, 0, &unpark), TLSQ_EAGAIN);
	assert_false(tlsq__rxq_ready(&q));
	tlsq__q_give_back(&q, 10, 1);
	assert_int_equal(rx(&q, 7), 1);
	assert_true(tlsq__rxq_ready(&q));
}

/* ---- timeouts ---- */

static void test_timeout_zero_returns_eagain_without_waiting(void **state)
{
	(void)state;
	tlsq__buf *b;
	int unpark = 0;
	tlsq__queue_init(&q, 1, 16);
	tx(&q, 1);
	uint64_t t0 = qt_now_ms();
	tx_fails(&q, 1, 0, TLSQ_EAGAIN);
	tlsq__queue_fini(&q);
	tlsq__queue_init(&q, 1, 16);
	assert_int_equal(tlsq__rxq_pop_mc(&q, &b, 0, &unpark), TLSQ_EAGAIN);
	assert_null(b);
	assert_int_equal(tlsq__txq_pop_wait_sc(&q, &b, 0), TLSQ_EAGAIN);
	assert_true(qt_now_ms() - t0 < 1000);
	assert_int_equal(tlsq__counter_get(&q.stats.consumer_waits), 0);
}

static void test_timeout_n_returns_etimedout_after_n_ms(void **state)
{
	(void)state;
	tlsq__buf *b;
	int unpark = 0;
	tlsq__queue_init(&q, 1, 16);
	uint64_t t0 = qt_now_ms();
	assert_int_equal(tlsq__rxq_pop_mc(&q, &b, 30, &unpark), TLSQ_ETIMEDOUT);
	uint64_t t1 = qt_now_ms();
	assert_true(t1 - t0 >= 29);
	tx(&q, 1);
	tx_fails(&q, 1, 30, TLSQ_ETIMEDOUT);
	assert_true(qt_now_ms() - t1 >= 29);
	assert_int_equal(atomic_load(&q.waiting_producers), 0);
	assert_int_equal(atomic_load(&q.waiting_consumers), 0);
	assert_int_equal(tlsq__counter_get(&q.stats.producer_waits), 1);
	assert_int_equal(tlsq__counter_get(&q.stats.consumer_waits), 1);
}

struct pusher {
	tlsq__queue *q;
	size_t len;
	int timeout_ms;
	_Atomic int rc;
	_Atomic uint32_t done;
};

static void *push_thread(void *arg)
{
	struct pusher *p = arg;
	tlsq__buf *b = qt_buf(p->len, 9);
	int rc = tlsq__txq_push_mpsc(p->q, b, 0, p->timeout_ms, NULL);
	if (rc != TLSQ_OK)
		tlsq__buf_free(b);
	atomic_store(&p->rc, rc);
	atomic_store(&p->done, 1);
	return NULL;
}

static void test_push_waits_when_budget_full_and_wakes_on_release(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	tx(&q, 100);
	struct pusher p = {.q = &q, .len = 10, .timeout_ms = -1};
	pthread_t t = qt_spawn(push_thread, &p);
	assert_true(qt_wait_ge(&q.waiting_producers, 1, QT_PROMPT_MS));
	assert_int_equal(atomic_load(&p.done), 0);
	tlsq__buf *b = tlsq__txq_pop_sc(&q);
	tlsq__txq_release_sc(&q, 95, 0); /* 5 left + 10 fits */
	assert_true(qt_wait_ge(&p.done, 1, QT_PROMPT_MS));
	qt_join(t);
	assert_int_equal(atomic_load(&p.rc), TLSQ_OK);
	assert_int_equal(tlsq__counter_get(&q.stats.wakeups_sent), 1);
	tlsq__txq_release_sc(&q, 5, 1);
	tlsq__buf_free(b);
}

static void test_oversize_push_waits_until_the_queue_is_empty(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	tx(&q, 1);
	struct pusher p = {.q = &q, .len = 500, .timeout_ms = -1};
	pthread_t t = qt_spawn(push_thread, &p);
	assert_true(qt_wait_ge(&q.waiting_producers, 1, QT_PROMPT_MS));
	tx_pop_release(&q, 1);
	assert_true(qt_wait_ge(&p.done, 1, QT_PROMPT_MS));
	qt_join(t);
	assert_int_equal(atomic_load(&p.rc), TLSQ_OK);
	tx_pop_release(&q, 500);
}

struct popper {
	tlsq__queue *q;
	int timeout_ms;
	_Atomic int rc;
	_Atomic uint32_t done;
	tlsq__buf *b;
};

static void *pop_thread(void *arg)
{
	struct popper *p = arg;
	int unpark = 0;
	atomic_store(&p->rc, tlsq__rxq_pop_mc(p->q, &p->b, p->timeout_ms, &unpark));
	atomic_store(&p->done, 1);
	return NULL;
}

static void *pop_wait_thread(void *arg)
{
	struct popper *p = arg;
	atomic_store(&p->rc, tlsq__txq_pop_wait_sc(p->q, &p->b, p->timeout_ms));
	atomic_store(&p->done, 1);
	return NULL;
}

static void test_rx_pop_waits_on_empty_queue_and_wakes_on_push(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	struct popper p = {.q = &q, .timeout_ms = -1};
	pthread_t t = qt_spawn(pop_thread, &p);
	assert_true(qt_wait_ge(&q.waiting_consumers, 1, QT_PROMPT_MS));
	assert_int_equal(rx(&q, 7), 1);
	assert_true(qt_wait_ge(&p.done, 1, QT_PROMPT_MS));
	qt_join(t);
	assert_int_equal(atomic_load(&p.rc), TLSQ_OK);
	assert_int_equal(tlsq__buf_len(p.b), 7);
	tlsq__buf_free(p.b);
}

/* The IO task's batched delivery (issue 16): entries are poppable at once,
 * but a consumer asleep on the empty queue is woken once, by the signal. */
static void test_rx_batched_pushes_wake_a_sleeper_once_at_the_signal(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	struct popper p = {.q = &q, .timeout_ms = 20000};
	pthread_t t = qt_spawn(pop_thread, &p);
	assert_true(qt_wait_ge(&q.waiting_consumers, 1, QT_PROMPT_MS));
	uint32_t seen = tlsq__ec_value(&q.data_ec);
	assert_int_equal(rx_batch(&q, 5), 1); /* was_empty at once: the pollfd is not batched */
	assert_int_equal(rx_batch(&q, 6), 0);
	assert_int_equal(rx_batch(&q, 7), 0);
	assert_int_equal(tlsq__rxq_owed_bytes_sp(&q), 18);
	/* No wake-up yet: the count the sleeper waits on has not moved. */
	assert_int_equal(tlsq__ec_value(&q.data_ec), seen);
	assert_int_equal(atomic_load(&p.done), 0);
	tlsq__rxq_signal_sp(&q);
	assert_int_equal(tlsq__rxq_owed_bytes_sp(&q), 0);
	assert_int_not_equal(tlsq__ec_value(&q.data_ec), seen);
	assert_true(qt_wait_ge(&p.done, 1, QT_PROMPT_MS));
	qt_join(t);
	assert_int_equal(atomic_load(&p.rc), TLSQ_OK);
	assert_int_equal(tlsq__buf_len(p.b), 5);
	tlsq__buf_free(p.b);
	for (size_t len = 6; len <= 7; len++) { /* in order, no wait */
		tlsq__buf *b = rx_pop(&q, NULL);
		assert_int_equal(tlsq__buf_len(b), len);
		tlsq__buf_free(b);
	}
	/* One wake-up sent for three entries; a second signal owes nothing. */
	assert_int_equal(tlsq__counter_get(&q.stats.wakeups_sent), 1);
	assert_int_equal(tlsq__counter_get(&q.stats.wakeups_saved), 2);
	uint32_t after = tlsq__ec_value(&q.data_ec);
	tlsq__rxq_signal_sp(&q);
	assert_int_equal(tlsq__ec_value(&q.data_ec), after);
}

/* A consumer that looks after a batched push finds the entry without any
 * signal: batching delays only the wake-up of a sleeper. */
static void test_rx_batched_push_is_poppable_before_the_signal(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	assert_int_equal(rx_batch(&q, 9), 1);
	assert_true(tlsq__rxq_ready(&q));
	tlsq__buf *b = rx_pop(&q, NULL);
	assert_int_equal(tlsq__buf_len(b), 9);
	tlsq__buf_free(b);
	/* A plain push pays what was owed: every entry is counted once, as a
	 * wake-up sent or saved (nobody waited here). */
	assert_int_equal(rx_batch(&q, 3), 1);
	assert_int_equal(rx(&q, 4), 0);
	assert_int_equal(tlsq__rxq_owed_bytes_sp(&q), 0);
	tlsq__rxq_signal_sp(&q);
	assert_int_equal(tlsq__counter_get(&q.stats.wakeups_sent) +
	                     tlsq__counter_get(&q.stats.wakeups_saved),
	                 3);
	tlsq__buf_free(rx_pop(&q, NULL));
	tlsq__buf_free(rx_pop(&q, NULL));
}

static void test_tx_pop_wait_wakes_on_the_push_that_makes_the_queue_non_empty(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	struct popper p = {.q = &q, .timeout_ms = 60000};
	pthread_t t = qt_spawn(pop_wait_thread, &p);
	assert_true(qt_wait_ge(&q.waiting_consumers, 1, QT_PROMPT_MS));
	assert_int_equal(tx(&q, 3), 1);
	assert_true(qt_wait_ge(&p.done, 1, QT_PROMPT_MS));
	qt_join(t);
	assert_int_equal(atomic_load(&p.rc), TLSQ_OK);
	assert_int_equal(tlsq__buf_len(p.b), 3);
	tlsq__txq_release_sc(&q, 3, 1);
	tlsq__buf_free(p.b);
}

/* ---- rx: room, parking, put-back ---- */

static void test_rx_room_is_budget_left_and_unbounded_when_empty(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 4);
	assert_int_equal(tlsq__rxq_room_sp(&q), UINT64_MAX);
	rx(&q, 30);
	assert_int_equal(tlsq__rxq_room_sp(&q), 70);
	rx(&q, 70);
	assert_int_equal(tlsq__rxq_room_sp(&q), 0);
	tlsq__buf_free(rx_pop(&q, NULL));
	rx(&q, 0);
	rx(&q, 0);
	assert_int_equal(tlsq__rxq_room_sp(&q), 0); /* out of slots, not bytes */
}

static void test_rx_full_push_parks_and_the_first_pop_unparks_exactly_once(void **state)
{
	(void)state;
	int unpark;
	tlsq__queue_init(&q, 10, 16);
	rx(&q, 6);
	rx(&q, 4);
	assert_int_equal(rx(&q, 1), TLSQ_EAGAIN);
	assert_int_equal(atomic_load(&q.producer_parked), 1);
	tlsq__buf_free(rx_pop(&q, &unpark));
	assert_int_equal(unpark, 1);
	tlsq__buf_free(rx_pop(&q, &unpark));
	assert_int_equal(unpark, 0); /* once per park */
	assert_int_equal(rx(&q, 1), 1);
	tlsq__buf_free(rx_pop(&q, &unpark));
	assert_int_equal(unpark, 0); /* no park, no unpark */
}

static void test_rx_repeated_full_pushes_while_parked_unpark_once(void **state)
{
	(void)state;
	int unpark;
	tlsq__queue_init(&q, 10, 16);
	rx(&q, 10);
	assert_int_equal(rx(&q, 1), TLSQ_EAGAIN);
	assert_int_equal(rx(&q, 1), TLSQ_EAGAIN);
	tlsq__buf_free(rx_pop(&q, &unpark));
	assert_int_equal(unpark, 1);
	assert_int_equal(atomic_load(&q.producer_parked), 0);
}

static void test_rx_park_is_cleared_by_a_push_that_fits_and_not_reported(void **state)
{
	(void)state;
	int unpark;
	tlsq__queue_init(&q, 10, 16);
	rx(&q, 10);
	assert_int_equal(rx(&q, 1), TLSQ_EAGAIN);
	assert_int_equal(rx(&q, 0), 0); /* an empty message needs no byte */
	assert_int_equal(atomic_load(&q.producer_parked), 0);
	tlsq__buf_free(rx_pop(&q, &unpark));
	assert_int_equal(unpark, 0);
	tlsq__buf_free(rx_pop(&q, &unpark));
	assert_int_equal(unpark, 0);
}

static void test_put_back_entry_is_popped_before_queued_ones_without_credit(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	rx(&q, 10);
	rx(&q, 20);
	tlsq__buf *b = rx_pop(&q, NULL);
	assert_int_equal(tlsq__buf_len(b), 10);
	assert_int_equal(tlsq__queue_bytes(&q), 20);
	b->rd += 4; /* partly consumed */
	tlsq__rxq_unpop_mc(&q, b);
	assert_int_equal(tlsq__queue_bytes(&q), 20); /* not charged again */
	assert_true(tlsq__rxq_ready(&q));
	b = rx_pop(&q, NULL);
	assert_int_equal(tlsq__buf_len(b), 6);
	tlsq__buf_free(b);
	b = rx_pop(&q, NULL);
	assert_int_equal(tlsq__buf_len(b), 20);
	tlsq__buf_free(b);
}

static void test_two_put_backs_are_both_kept_and_popped_first(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	rx(&q, 1);
	rx(&q, 2);
	rx(&q, 3);
	tlsq__buf *a = rx_pop(&q, NULL), *b = rx_pop(&q, NULL);
	tlsq__rxq_unpop_mc(&q, a); /* two consumers putting back at once */
	tlsq__rxq_unpop_mc(&q, b);
	tlsq__buf *x = rx_pop(&q, NULL), *y = rx_pop(&q, NULL), *z = rx_pop(&q, NULL);
	assert_true((x == a && y == b) || (x == b && y == a));
	assert_int_equal(tlsq__buf_len(z), 3);
	assert_null(x->qnext);
	assert_null(y->qnext);
	tlsq__buf_free(x);
	tlsq__buf_free(y);
	tlsq__buf_free(z);
}

/* Lead 6 of "every ending": a consumer that takes a put-back entry takes the
 * whole list and pushes the rest back. Meanwhile the list looked empty to
 * other consumers, which may have gone to sleep on data_ec: pushing the rest
 * back must move the count, or they sleep while data is there. */
static void test_taking_one_of_two_put_backs_moves_the_count_for_sleepers(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	rx(&q, 1);
	rx(&q, 2);
	tlsq__buf *a = rx_pop(&q, NULL), *b = rx_pop(&q, NULL);
	tlsq__rxq_unpop_mc(&q, a);
	tlsq__rxq_unpop_mc(&q, b);
	uint32_t seen = tlsq__ec_value(&q.data_ec); /* what a sleeper read */
	tlsq__buf *x = rx_pop(&q, NULL);
	assert_true(tlsq__ec_value(&q.data_ec) != seen);
	tlsq__buf *y = rx_pop(&q, NULL);
	assert_true((x == a && y == b) || (x == b && y == a));
	tlsq__buf_free(x);
	tlsq__buf_free(y);
}

/* ---- end, close ---- */

static void test_end_lets_consumers_drain_then_gives_the_code(void **state)
{
	(void)state;
	tlsq__buf *b;
	int unpark = 0;
	tlsq__queue_init(&q, 100, 16);
	rx(&q, 1);
	rx(&q, 2);
	tlsq__queue_end(&q, 0);
	assert_true(tlsq__rxq_ready(&q));
	assert_int_equal(rx(&q, 3), TLSQ_ECLOSED); /* no push after the end */
	tlsq__buf_free(rx_pop(&q, NULL));
	tlsq__buf_free(rx_pop(&q, NULL));
	assert_int_equal(tlsq__rxq_pop_mc(&q, &b, -1, &unpark), 0); /* clean end, no wait */
	assert_null(b);
	assert_int_equal(tlsq__rxq_pop_mc(&q, &b, 0, &unpark), 0); /* and stays */
}

static void test_end_with_an_error_code_gives_it_after_the_drain(void **state)
{
	(void)state;
	tlsq__buf *b;
	int unpark = 0;
	tlsq__queue_init(&q, 100, 16);
	rx(&q, 1);
	tlsq__queue_end(&q, TLSQ_ETRUNCATED);
	tlsq__queue_end(&q, 0); /* first wins */
	tlsq__buf_free(rx_pop(&q, NULL));
	assert_int_equal(tlsq__rxq_pop_mc(&q, &b, 0, &unpark), TLSQ_ETRUNCATED);
	assert_int_equal(rx(&q, 1), TLSQ_ETRUNCATED);
}

static void test_ended_tx_queue_refuses_pushes_but_can_still_be_popped(void **state)
{
	(void)state;
	tlsq__buf *b;
	tlsq__queue_init(&q, 100, 16);
	tx(&q, 5);
	tlsq__queue_end(&q, TLSQ_ECLOSED);
	tx_fails(&q, 1, -1, TLSQ_ECLOSED);
	assert_int_equal(tlsq__txq_wait_drained(&q, 0), TLSQ_EAGAIN);
	tx_pop_release(&q, 5); /* graceful close: queued bytes still go out */
	assert_int_equal(tlsq__txq_wait_drained(&q, 0), TLSQ_OK);
	assert_int_equal(tlsq__txq_pop_wait_sc(&q, &b, -1), TLSQ_ECLOSED);
}

static void test_close_is_immediate_and_frees_what_was_queued(void **state)
{
	(void)state;
	tlsq__buf *b;
	int unpark = 0;
	tlsq__pool_stats s0, s1;
	tlsq__queue_init(&q, 100, 16);
	rx(&q, 1);
	rx(&q, 2);
	tlsq__pool_stats_get(&s0);
	tlsq__queue_close(&q, TLSQ_ECLOSED);
	assert_true(tlsq__rxq_ready(&q));
	assert_int_equal(tlsq__rxq_pop_mc(&q, &b, -1, &unpark), TLSQ_ECLOSED);
	assert_null(b);
	tlsq__pool_stats_get(&s1);
	assert_int_equal(s1.frees - s0.frees, 2);
	assert_int_equal(tlsq__queue_entries(&q), 0);
	assert_int_equal(rx(&q, 1), TLSQ_ECLOSED);
}

static void test_close_after_end_wins_and_first_close_code_wins(void **state)
{
	(void)state;
	tlsq__buf *b;
	int unpark = 0;
	tlsq__queue_init(&q, 100, 16);
	rx(&q, 1);
	tlsq__queue_end(&q, 0);
	tlsq__queue_close(&q, TLSQ_ECONNRESET);
	tlsq__queue_close(&q, TLSQ_ECLOSED);
	tlsq__queue_end(&q, TLSQ_ETRUNCATED);
	assert_int_equal(tlsq__rxq_pop_mc(&q, &b, 0, &unpark), TLSQ_ECONNRESET);
	assert_int_equal(atomic_load(&q.end), 2);
}

static void test_closed_tx_queue_frees_entries_on_the_next_pop(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 100, 16);
	tx(&q, 5);
	tx(&q, 6);
	tlsq__queue_close(&q, TLSQ_ECLOSED);
	tx_fails(&q, 1, 0, TLSQ_ECLOSED);
	assert_null(tlsq__txq_pop_sc(&q));
	assert_int_equal(tlsq__queue_entries(&q), 0);
	assert_int_equal(tlsq__txq_wait_drained(&q, -1), TLSQ_OK);
}

/* ---- counters ---- */

static void test_counters_track_bytes_entries_and_saved_wakeups(void **state)
{
	(void)state;
	tlsq__queue_init(&q, 1000, 16);
	rx(&q, 10);
	rx(&q, 20);
	tlsq__buf_free(rx_pop(&q, NULL));
	assert_int_equal(tlsq__counter_get(&q.stats.bytes_in), 30);
	assert_int_equal(tlsq__counter_get(&q.stats.entries_in), 2);
	assert_int_equal(tlsq__counter_get(&q.stats.bytes_out), 10);
	assert_int_equal(tlsq__counter_get(&q.stats.entries_out), 1);
	assert_int_equal(tlsq__counter_get(&q.stats.wakeups_sent), 0); /* nobody waited */
	assert_int_equal(tlsq__counter_get(&q.stats.wakeups_saved), 2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_init_rounds_slots_up_to_a_power_of_two_of_at_least_4),
	    T(test_push_fills_budget_exactly_and_one_more_byte_is_refused),
	    T(test_entry_larger_than_budget_is_admitted_only_into_an_empty_queue),
	    T(test_one_byte_budget_admits_one_byte_at_a_time),
	    T(test_slots_limit_the_queue_to_nslots_minus_one_entries),
	    T(test_charge_overrides_the_payload_length),
	    T(test_entries_come_out_in_order_across_many_wraparounds),
	    T(test_rx_trim_gives_back_an_empty_rings_pages_and_the_ring_still_works),
	    T(test_was_empty_is_set_once_per_empty_to_non_empty_transition),
	    T(test_was_empty_is_set_when_all_was_popped_even_with_credits_held),
	    T(test_rx_ready_ignores_an_entry_reserved_but_not_yet_published),
	    T(test_timeout_zero_returns_eagain_without_waiting),
	    T(test_timeout_n_returns_etimedout_after_n_ms),
	    T(test_push_waits_when_budget_full_and_wakes_on_release),
	    T(test_oversize_push_waits_until_the_queue_is_empty),
	    T(test_rx_pop_waits_on_empty_queue_and_wakes_on_push),
	    T(test_rx_batched_pushes_wake_a_sleeper_once_at_the_signal),
	    T(test_rx_batched_push_is_poppable_before_the_signal),
	    T(test_tx_pop_wait_wakes_on_the_push_that_makes_the_queue_non_empty),
	    T(test_rx_room_is_budget_left_and_unbounded_when_empty),
	    T(test_rx_full_push_parks_and_the_first_pop_unparks_exactly_once),
	    T(test_rx_repeated_full_pushes_while_parked_unpark_once),
	    T(test_rx_park_is_cleared_by_a_push_that_fits_and_not_reported),
	    T(test_put_back_entry_is_popped_before_queued_ones_without_credit),
	    T(test_two_put_backs_are_both_kept_and_popped_first),
	    T(test_taking_one_of_two_put_backs_moves_the_count_for_sleepers),
	    T(test_end_lets_consumers_drain_then_gives_the_code),
	    T(test_end_with_an_error_code_gives_it_after_the_drain),
	    T(test_ended_tx_queue_refuses_pushes_but_can_still_be_popped),
	    T(test_close_is_immediate_and_frees_what_was_queued),
	    T(test_close_after_end_wins_and_first_close_code_wins),
	    T(test_closed_tx_queue_frees_entries_on_the_next_pop),
	    T(test_counters_track_bytes_entries_and_saved_wakeups),
	};
	return QT_RUN(tests);
}
