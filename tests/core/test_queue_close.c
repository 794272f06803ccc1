/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Closing and ending queues while threads are blocked on them: everybody
 * returns promptly with the code, nothing leaks (LeakSanitizer runs at exit
 * in the ASan build), and a close racing with busy producers and consumers
 * loses no buffer.
 */
#include "qtest.h"

#include "queue.h"

enum { BLOCKED = 16 };

struct worker {
	tlsq__queue *q;
	int timeout_ms;
	_Atomic int rc;
	_Atomic uint32_t *done;
	tlsq__buf *got;
};

static void *blocked_push(void *arg)
{
	struct worker *w = arg;
	tlsq__buf *b = qt_buf(10, 1);
	int rc = tlsq__txq_push_mpsc(w->q, b, 0, w->timeout_ms, NULL);
	if (rc != TLSQ_OK)
		tlsq__buf_free(b);
	atomic_store(&w->rc, rc);
	atomic_fetch_add(w->done, 1);
	return NULL;
}

static void *blocked_pop(void *arg)
{
	struct worker *w = arg;
	int unpark = 0;
	atomic_store(&w->rc, tlsq__rxq_pop_mc(w->q, &w->got, w->timeout_ms, &unpark));
	atomic_fetch_add(w->done, 1);
	return NULL;
}

static void *blocked_drain(void *arg)
{
	struct worker *w = arg;
	atomic_store(&w->rc, tlsq__txq_wait_drained(w->q, w->timeout_ms));
	atomic_fetch_add(w->done, 1);
	return NULL;
}

static void *blocked_pop_wait(void *arg)
{
	struct worker *w = arg;
	atomic_store(&w->rc, tlsq__txq_pop_wait_sc(w->q, &w->got, w->timeout_ms));
	atomic_fetch_add(w->done, 1);
	return NULL;
}

static void start(struct worker *w, pthread_t *t, int n, void *(*fn)(void *), tlsq__queue *q,
                  _Atomic uint32_t *done, int timeout_ms)
{
	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){.q = q, .timeout_ms = timeout_ms, .done = done};
		t[i] = qt_spawn(fn, &w[i]);
	}
}

static void test_close_wakes_16_blocked_senders_and_16_blocked_receivers_promptly(void **state)
{
	(void)state;
	static tlsq__queue tx, rx;
	static struct worker wp[BLOCKED], wc[BLOCKED];
	static _Atomic uint32_t done;
	pthread_t tp[BLOCKED], tc[BLOCKED];
	atomic_store(&done, 0);
	tlsq__queue_init(&tx, 1, 64);
	tlsq__queue_init(&rx, 1, 64);
	tlsq__buf *fill = qt_buf(1, 0);
	assert_int_equal(tlsq__txq_push_mpsc(&tx, fill, 0, 0, NULL), TLSQ_OK); /* tx full */
	start(wp, tp, BLOCKED, blocked_push, &tx, &done, -1);
	start(wc, tc, BLOCKED, blocked_pop, &rx, &done, 60000);
	assert_true(qt_wait_ge(&tx.waiting_producers, BLOCKED, QT_PROMPT_MS));
	assert_true(qt_wait_ge(&rx.waiting_consumers, BLOCKED, QT_PROMPT_MS));
	assert_int_equal(atomic_load(&done), 0);
	uint64_t t0 = qt_now_ms();
	tlsq__queue_close(&tx, TLSQ_ECLOSED);
	tlsq__queue_close(&rx, TLSQ_ECLOSED);
	assert_true(qt_wait_ge(&done, 2 * BLOCKED, QT_PROMPT_MS));
	uint64_t took = qt_now_ms() - t0;
	for (int i = 0; i < BLOCKED; i++) {
		qt_join(tp[i]);
		qt_join(tc[i]);
		assert_int_equal(atomic_load(&wp[i].rc), TLSQ_ECLOSED);
		assert_int_equal(atomic_load(&wc[i].rc), TLSQ_ECLOSED);
		assert_null(wc[i].got);
	}
	print_message("32 blocked threads returned %llu ms after the close\n",
	              (unsigned long long)took);
	assert_int_equal(atomic_load(&tx.waiting_producers), 0);
	assert_int_equal(atomic_load(&rx.waiting_consumers), 0);
	tlsq__queue_fini(&tx); /* frees the entry that filled it */
	tlsq__queue_fini(&rx);
}

static void test_end_wakes_blocked_senders_with_the_end_code(void **state)
{
	(void)state;
	static tlsq__queue tx;
	static struct worker w[BLOCKED];
	static _Atomic uint32_t done;
	pthread_t t[BLOCKED];
	atomic_store(&done, 0);
	tlsq__queue_init(&tx, 1, 64);
	tlsq__buf *fill = qt_buf(1, 0);
	tlsq__txq_push_mpsc(&tx, fill, 0, 0, NULL);
	start(w, t, BLOCKED, blocked_push, &tx, &done, -1);
	assert_true(qt_wait_ge(&tx.waiting_producers, BLOCKED, QT_PROMPT_MS));
	tlsq__queue_end(&tx, TLSQ_ECLOSED);
	for (int i = 0; i < BLOCKED; i++) {
		qt_join(t[i]);
		assert_int_equal(atomic_load(&w[i].rc), TLSQ_ECLOSED);
	}
	tlsq__buf *b = tlsq__txq_pop_sc(&tx); /* the queued entry still goes out */
	assert_non_null(b);
	tlsq__buf_free(b);
	tlsq__queue_fini(&tx);
}

static void test_end_gives_queued_entries_first_then_the_end_to_blocked_receivers(void **state)
{
	(void)state;
	static tlsq__queue rx;
	static struct worker w[BLOCKED];
	static _Atomic uint32_t done;
	pthread_t t[BLOCKED];
	atomic_store(&done, 0);
	tlsq__queue_init(&rx, 1 << 20, 64);
	start(w, t, BLOCKED, blocked_pop, &rx, &done, -1);
	assert_true(qt_wait_ge(&rx.waiting_consumers, BLOCKED, QT_PROMPT_MS));
	for (int i = 0; i < BLOCKED / 2; i++)
		assert_int_equal(tlsq__rxq_push_sp(&rx, qt_buf(3, 3), 0, NULL), TLSQ_OK);
	tlsq__queue_end(&rx, 0);
	int data = 0, ends = 0;
	for (int i = 0; i < BLOCKED; i++) {
		qt_join(t[i]);
		if (atomic_load(&w[i].rc) == TLSQ_OK && w[i].got != NULL) {
			data++;
			tlsq__buf_free(w[i].got);
		} else if (atomic_load(&w[i].rc) == 0) {
			ends++;
		}
	}
	assert_int_equal(data, BLOCKED / 2);
	assert_int_equal(ends, BLOCKED / 2);
	tlsq__queue_fini(&rx);
}

static void test_close_wakes_drain_waiters_and_thread_consumers(void **state)
{
	(void)state;
	static tlsq__queue a, b;
	static struct worker wd, wp;
	static _Atomic uint32_t done;
	pthread_t td, tp;
	atomic_store(&done, 0);
	tlsq__queue_init(&a, 100, 16);
	tlsq__queue_init(&b, 100, 16);
	tlsq__txq_push_mpsc(&a, qt_buf(5, 5), 0, 0, NULL); /* credit never released */
	start(&wd, &td, 1, blocked_drain, &a, &done, -1);
	start(&wp, &tp, 1, blocked_pop_wait, &b, &done, -1);
	assert_true(qt_wait_ge(&b.waiting_consumers, 1, QT_PROMPT_MS));
	tlsq__queue_close(&a, TLSQ_ECONNRESET);
	tlsq__queue_close(&b, TLSQ_ECLOSED);
	qt_join(td);
	qt_join(tp);
	assert_int_equal(atomic_load(&wd.rc), TLSQ_ECONNRESET);
	assert_int_equal(atomic_load(&wp.rc), TLSQ_ECLOSED);
	tlsq__queue_fini(&a);
	tlsq__queue_fini(&b);
}

/* ---- a close in the middle of traffic ---- */

struct traffic {
	tlsq__queue tx, rx;
	_Atomic uint32_t moved;   /* entries that crossed a queue */
	_Atomic uint32_t stopped; /* threads that got an error */
	_Atomic int bad_rc;       /* an error other than TLSQ_ECLOSED */
};

static void stopped(struct traffic *t, int rc)
{
	if (rc != TLSQ_ECLOSED)
		atomic_store(&t->bad_rc, rc);
	atomic_fetch_add(&t->stopped, 1);
}

static void *traffic_sender(void *arg)
{
	struct traffic *t = arg;
	for (;;) {
		tlsq__buf *b = qt_buf(50, 7);
		int rc = tlsq__txq_push_mpsc(&t->tx, b, 0, -1, NULL);
		if (rc != TLSQ_OK) {
			tlsq__buf_free(b);
			stopped(t, rc);
			return NULL;
		}
	}
}

/* The IO task: tx -> rx, one entry at a time, parking when rx is full. */
static void *traffic_pump(void *arg)
{
	struct traffic *t = arg;
	tlsq__buf *b;
	int rc;
	while ((rc = tlsq__txq_pop_wait_sc(&t->tx, &b, -1)) == TLSQ_OK) {
		tlsq__txq_release_sc(&t->tx, b->qcharge, 1);
		b->rd = 0;
		while ((rc = tlsq__rxq_push_sp(&t->rx, b, 0, NULL)) == TLSQ_EAGAIN)
			sched_yield();
		if (rc != TLSQ_OK) {
			tlsq__buf_free(b);
			break;
		}
		atomic_fetch_add(&t->moved, 1);
	}
	stopped(t, rc);
	return NULL;
}

static void *traffic_receiver(void *arg)
{
	struct traffic *t = arg;
	tlsq__buf *b;
	int rc, unpark = 0;
	while ((rc = tlsq__rxq_pop_mc(&t->rx, &b, -1, &unpark)) == TLSQ_OK) {
		if (tlsq__buf_len(b) > 10) { /* sometimes put part of it back */
			b->rd += 10;
			tlsq__rxq_unpop_mc(&t->rx, b);
		} else {
			tlsq__buf_free(b);
		}
	}
	stopped(t, rc);
	return NULL;
}

static void test_close_during_traffic_stops_every_thread_and_leaks_nothing(void **state)
{
	(void)state;
	enum { SENDERS = 4, RECEIVERS = 4 };
	static struct traffic t;
	pthread_t th[SENDERS + RECEIVERS + 1];
	int n = 0;
	memset(&t, 0, sizeof t);
	tlsq__queue_init(&t.tx, 1000, 32);
	tlsq__queue_init(&t.rx, 500, 32);
	for (int i = 0; i < SENDERS; i++)
		th[n++] = qt_spawn(traffic_sender, &t);
	for (int i = 0; i < RECEIVERS; i++)
		th[n++] = qt_spawn(traffic_receiver, &t);
	th[n++] = qt_spawn(traffic_pump, &t);
	assert_true(qt_wait_ge(&t.moved, 20000, 20 * QT_PROMPT_MS));
	tlsq__queue_close(&t.tx, TLSQ_ECLOSED);
	tlsq__queue_close(&t.rx, TLSQ_ECLOSED);
	assert_true(qt_wait_ge(&t.stopped, (uint32_t)n, QT_PROMPT_MS));
	for (int i = 0; i < n; i++)
		qt_join(th[i]);
	assert_int_equal(atomic_load(&t.bad_rc), 0);
	tlsq__queue_fini(&t.tx);
	tlsq__queue_fini(&t.rx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_close_wakes_16_blocked_senders_and_16_blocked_receivers_promptly),
	    cmocka_unit_test(test_end_wakes_blocked_senders_with_the_end_code),
	    cmocka_unit_test(test_end_gives_queued_entries_first_then_the_end_to_blocked_receivers),
	    cmocka_unit_test(test_close_wakes_drain_waiters_and_thread_consumers),
	    cmocka_unit_test(test_close_during_traffic_stops_every_thread_and_leaks_nothing),
	};
	return QT_RUN(tests);
}
