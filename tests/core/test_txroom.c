/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * core/txroom.c: the tx queue's room signal (tlsq_conn_send_pollfd).
 * Single-threaded edges first, then producers that only ever wait on the
 * fd racing a consumer that releases: a lost signal shows as a producer
 * whose poll times out.
 */
#include <poll.h>

#include "qtest.h"

#include "queue.h"

static int readable(int fd, int ms)
{
	struct pollfd pf = {fd, POLLIN, 0};
	return poll(&pf, 1, ms) == 1 && (pf.revents & POLLIN);
}

static int push(tlsq__queue *q, size_t len)
{
	tlsq__buf *b = qt_buf(len, 1);
	int rc = tlsq__txq_push_mpsc(q, b, 0, 0, NULL);
	if (rc != TLSQ_OK)
		tlsq__buf_free(b);
	return rc;
}

static void pop_release(tlsq__queue *q)
{
	tlsq__buf *b = tlsq__txq_pop_sc(q);
	assert_non_null(b);
	tlsq__txq_release_sc(q, b->qcharge, 1);
	tlsq__buf_free(b);
}

static void test_room_fd_follows_the_room_for_want_bytes(void **state)
{
	(void)state;
	tlsq__queue q;
	tlsq__queue_init(&q, 1000, 64);
	int fd = tlsq__txq_room_fd(&q, 0); /* want = 500 */
	assert_true(fd >= 0);
	assert_int_equal(tlsq__txq_room_fd(&q, 0), fd);
	assert_true(readable(fd, 0)); /* empty */
	assert_int_equal(push(&q, 400), TLSQ_OK);
	assert_true(readable(fd, 0)); /* 400 + 500 <= 1000 */
	assert_int_equal(push(&q, 200), TLSQ_OK);
	assert_false(readable(fd, 0)); /* 600 + 500 > 1000: the push cleared it */
	assert_int_equal(push(&q, 300), TLSQ_OK);
	assert_int_equal(push(&q, 200), TLSQ_EAGAIN);
	assert_false(readable(fd, 0));
	pop_release(&q); /* 500 left: room for 500 */
	assert_true(readable(fd, 0));
	assert_true(readable(fd, 0)); /* level: stays until a push changes it */
	/* A smaller want makes it readable at once, a larger one not. */
	assert_int_equal(tlsq__txq_room_fd(&q, 2000), fd); /* above budget: empty only */
	assert_false(readable(fd, 0));
	pop_release(&q);
	assert_false(readable(fd, 0));
	pop_release(&q);
	assert_true(readable(fd, 0));
	tlsq__queue_fini(&q);
}

static void test_room_fd_turns_readable_on_end_and_close(void **state)
{
	(void)state;
	tlsq__queue q;
	tlsq__queue_init(&q, 100, 64);
	int fd = tlsq__txq_room_fd(&q, 100);
	assert_int_equal(push(&q, 50), TLSQ_OK);
	assert_false(readable(fd, 0));
	tlsq__queue_end(&q, TLSQ_ECLOSED);
	assert_true(readable(fd, 0));
	assert_int_equal(push(&q, 1), TLSQ_ECLOSED);
	tlsq__queue_fini(&q);

	tlsq__queue_init(&q, 100, 64);
	fd = tlsq__txq_room_fd(&q, 100);
	assert_int_equal(push(&q, 50), TLSQ_OK);
	assert_false(readable(fd, 0));
	tlsq__queue_close(&q, TLSQ_ECONNRESET);
	assert_true(readable(fd, 0));
	tlsq__queue_fini(&q);
}

static void test_a_refused_push_raises_the_room_to_its_size(void **state)
{
	(void)state;
	tlsq__queue q;
	tlsq__queue_init(&q, 1000, 64);
	int fd = tlsq__txq_room_fd(&q, 10);
	assert_int_equal(push(&q, 500), TLSQ_OK);
	assert_int_equal(push(&q, 400), TLSQ_OK);
	assert_true(readable(fd, 0)); /* room for 10 */
	assert_int_equal(push(&q, 300), TLSQ_EAGAIN);
	assert_false(readable(fd, 0)); /* now waits for room for 300 */
	pop_release(&q);               /* 400 queued: room 600 */
	assert_true(readable(fd, 0));
	assert_int_equal(push(&q, 300), TLSQ_OK);
	tlsq__queue_fini(&q);
}

/* ---- race: no lost signal -------------------------------------------- */

#define PRODUCERS 3
static tlsq__queue rq;
static int rfd;
static _Atomic uint32_t lost, stop_consumer, pushed;
static uint32_t per_producer;

static void *producer(void *arg)
{
	(void)arg;
	for (uint32_t i = 0; i < per_producer;) {
		size_t len = 1 + (i * 37) % 300;
		int rc = push(&rq, len);
		if (rc == TLSQ_OK) {
			i++;
			atomic_fetch_add(&pushed, 1);
			continue;
		}
		if (rc != TLSQ_EAGAIN || !readable(rfd, QT_PROMPT_MS)) {
			atomic_fetch_add(&lost, 1);
			return NULL;
		}
	}
	return NULL;
}

static void *consumer(void *arg)
{
	(void)arg;
	for (;;) {
		tlsq__buf *b;
		int rc = tlsq__txq_pop_wait_sc(&rq, &b, 50);
		if (rc == TLSQ_OK) {
			tlsq__txq_release_sc(&rq, b->qcharge, 1);
			tlsq__buf_free(b);
		} else if (atomic_load(&stop_consumer) && tlsq__queue_entries(&rq) == 0) {
			return NULL;
		}
	}
}

static void test_producers_waiting_only_on_the_fd_are_always_woken(void **state)
{
	(void)state;
	per_producer = QT_SANITIZED ? 20000 : 200000;
	tlsq__queue_init(&rq, 2000, 64);
	rfd = tlsq__txq_room_fd(&rq, 300);
	pthread_t c = qt_spawn(consumer, NULL), p[PRODUCERS];
	for (int i = 0; i < PRODUCERS; i++)
		p[i] = qt_spawn(producer, NULL);
	for (int i = 0; i < PRODUCERS; i++)
		qt_join(p[i]);
	atomic_store(&stop_consumer, 1);
	qt_join(c);
	assert_int_equal(atomic_load(&lost), 0);
	assert_int_equal(atomic_load(&pushed), PRODUCERS * per_producer);
	assert_true(readable(rfd, 0)); /* drained: room */
	tlsq__queue_fini(&rq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_room_fd_follows_the_room_for_want_bytes),
	    cmocka_unit_test(test_room_fd_turns_readable_on_end_and_close),
	    cmocka_unit_test(test_a_refused_push_raises_the_room_to_its_size),
	    cmocka_unit_test(test_producers_waiting_only_on_the_fd_are_always_woken),
	};
	return QT_RUN(tests);
}
