/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Stream mode over real loopback TLS 1.3 between two tlsq endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <poll.h>
#include <string.h>

#include <cmocka.h>

#include "support/support.h"

#if defined(__SANITIZE_ADDRESS__) || defined(TLSQ_TSAN) || defined(TLSQ_VALGRIND)
#define BIG (4u << 20)
#else
#define BIG (16u << 20)
#endif

struct xfer {
	tlsq_conn *c;
	uint64_t seed, len;
	size_t chunk;
	int rc;
};

static void *send_thread(void *arg)
{
	struct xfer *x = arg;
	x->rc = ts_send_pattern(x->c, x->seed, x->len, x->chunk);
	return NULL;
}

static void *recv_thread(void *arg)
{
	struct xfer *x = arg;
	x->rc = ts_recv_pattern(x->c, x->seed, x->len, x->chunk);
	return NULL;
}

/* G1/G2: both directions at once, every byte checked. */
static void test_16MiB_each_way_at_once_arrives_intact(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	struct xfer a = {p.client, 1, BIG, 16384, -9}, b = {p.server, 1, BIG, 65536, -9};
	struct xfer c = {p.server, 2, BIG, 100000, -9}, d = {p.client, 2, BIG, 3000, -9};
	ts_thread t1 = ts_spawn(send_thread, &a), t2 = ts_spawn(recv_thread, &b);
	ts_thread t3 = ts_spawn(send_thread, &c), t4 = ts_spawn(recv_thread, &d);
	ts_join(t1);
	ts_join(t2);
	ts_join(t3);
	ts_join(t4);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_int_equal(c.rc, 0);
	assert_int_equal(d.rc, 0);
	struct tlsq_conn_info ci;
	assert_int_equal(tlsq_conn_info(p.client, &ci), TLSQ_OK);
	assert_string_equal(ci.version, "TLSv1.3");
	assert_true(ci.bytes_sent == BIG && ci.bytes_received == BIG);
	assert_string_equal(ci.peer_subject[0] ? "cert" : "", "cert");
	ts_pair_close(&p);
}

/* G6: recv returns 0 only after close_notify, after all the data. */
static void test_recv_returns_zero_after_peer_close_notify(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	assert_int_equal(tlsq_send(p.client, "hello", 5, 1000), 5);
	assert_int_equal(tlsq_shutdown_send(p.client), TLSQ_OK);
	assert_int_equal(tlsq_send(p.client, "x", 1, 1000), TLSQ_ECLOSED);
	char buf[16];
	assert_int_equal(tlsq_recv(p.server, buf, sizeof buf, 5000), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(tlsq_recv(p.server, buf, sizeof buf, 5000), 0);
	assert_int_equal(tlsq_recv(p.server, buf, sizeof buf, 0), 0);
	/* Half-close: the server may still answer. */
	assert_int_equal(tlsq_send(p.server, "bye", 3, 1000), 3);
	assert_int_equal(tlsq_recv(p.client, buf, sizeof buf, 5000), 3);
	tlsq_close_phase ph;
	assert_int_equal(tlsq_close(p.server, 5000, &ph), TLSQ_OK);
	assert_int_equal(ph, TLSQ_CLOSE_DONE);
	assert_int_equal(tlsq_recv(p.client, buf, sizeof buf, 5000), 0);
	ts_pair_close(&p);
}

/* A tiny receive buffer still gets every byte, in order. */
static void test_small_recv_buffer_gets_every_byte_in_order(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	struct xfer a = {p.client, 7, 300000, 4096, -9}, b = {p.server, 7, 300000, 7, -9};
	ts_thread t1 = ts_spawn(send_thread, &a), t2 = ts_spawn(recv_thread, &b);
	ts_join(t1);
	ts_join(t2);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	ts_pair_close(&p);
}

/* Timeouts: 0 never blocks, N waits about N ms. */
static void test_recv_timeouts_zero_and_n(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	char buf[8];
	assert_int_equal(tlsq_recv(p.server, buf, sizeof buf, 0), TLSQ_EAGAIN);
	uint64_t t0 = ts_now_ms();
	assert_int_equal(tlsq_recv(p.server, buf, sizeof buf, 100), TLSQ_ETIMEDOUT);
	assert_true(ts_now_ms() - t0 >= 90);
	ts_pair_close(&p);
}

/* Backpressure: a peer that does not read makes sends fail with EAGAIN /
 * ETIMEDOUT, never grow memory; draining resumes everything. */
static void test_send_gets_eagain_when_peer_does_not_read(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.tx_budget = 64 * 1024;
	cfg.rx_budget = 64 * 1024;
	cfg.cipher_buffer = 16 * 1024;
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	static char chunk[8192];
	uint64_t sent = 0, t0 = ts_now_ms();
	ssize_t r;
	/* The pipeline (tx queue, IO task, kernel buffers, peer's rx queue)
	 * fills at its own pace: a send that timed out can be followed by one
	 * that fits because the IO task moved bytes on meanwhile.  Keep going
	 * until a timed-out send is followed by a refused non-blocking one. */
	for (;;) {
		assert_true(ts_now_ms() - t0 < 20000);
		r = tlsq_send(p.client, chunk, sizeof chunk, 50);
		if (r == (ssize_t)sizeof chunk) {
			sent += sizeof chunk;
			continue;
		}
		assert_int_equal(r, TLSQ_ETIMEDOUT);
		r = tlsq_send(p.client, chunk, sizeof chunk, 0);
		if (r == (ssize_t)sizeof chunk) {
			sent += sizeof chunk;
			continue;
		}
		assert_int_equal(r, TLSQ_EAGAIN);
		break;
	}
	struct tlsq_conn_info si;
	tlsq_conn_info(p.server, &si);
	assert_true(si.rx_queued <= 64 * 1024 + 16384 + 256);
	/* Drain: every byte arrives. */
	uint64_t got = 0;
	char buf[65536];
	while (got < sent) {
		r = tlsq_recv(p.server, buf, sizeof buf, 10000);
		assert_true(r > 0);
		got += (uint64_t)r;
	}
	assert_int_equal(tlsq_send(p.client, chunk, sizeof chunk, 5000), (ssize_t)sizeof chunk);
	ts_pair_close(&p);
}

static void test_flush_returns_when_everything_is_in_the_kernel(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	static char buf[200000];
	assert_int_equal(tlsq_send(p.client, buf, sizeof buf, 5000), (ssize_t)sizeof buf);
	assert_int_equal(tlsq_flush(p.client, 10000), TLSQ_OK);
	struct tlsq_conn_info ci;
	tlsq_conn_info(p.client, &ci);
	assert_int_equal(ci.tx_queued, 0);
	assert_int_equal(ci.bytes_sent, sizeof buf);
	ts_pair_close(&p);
}

/* G6: an abort reaches the peer as a reset, never as a clean end. */
static void test_abort_is_seen_as_reset_not_clean_close(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	assert_int_equal(tlsq_send(p.client, "abc", 3, 1000), 3);
	assert_int_equal(tlsq_flush(p.client, 5000), TLSQ_OK);
	/* Received before the abort: flush means "in the kernel", and a
	 * reset discards what the kernel has not sent yet (loopback corks
	 * small segments under load), which abort is allowed to do. */
	char buf[8];
	assert_int_equal(tlsq_recv(p.server, buf, sizeof buf, 5000), 3);
	tlsq_abort(p.client);
	ssize_t r = tlsq_recv(p.server, buf, sizeof buf, 5000);
	assert_true(r == TLSQ_ECONNRESET || r == TLSQ_ETRUNCATED);
	assert_true(strlen(tlsq_conn_error(p.server)) > 0);
	assert_int_equal(tlsq_recv(p.client, buf, sizeof buf, 0), TLSQ_ECLOSED);
	ts_pair_close(&p);
}

static int conn_failed(void *c)
{
	return tlsq_conn_error(c)[0] != 0;
}

/* G6: a peer that sends and resets right after the handshake. The
 * connection was established, so tlsq_connect_wait says so even when it
 * looks only after the failure, and recv delivers the data before the
 * reset (tlsq-cat lost "partial line" to "cannot connect" when its thread
 * was slower than the peer). */
static void test_connect_wait_after_open_then_reset_still_delivers(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", p.port);
	tlsq_conn *c, *s;
	assert_int_equal(tlsq_connect_start(p.engine, addr, p.client_tls, &c), TLSQ_OK);
	assert_int_equal(tlsq_accept(p.listener, &s, 10000), TLSQ_OK);
	assert_int_equal(tlsq_send(s, "hello", 5, 1000), 5);
	assert_int_equal(tlsq_flush(s, 5000), TLSQ_OK);
	tlsq_abort(s);
	assert_true(ts_wait_for(conn_failed, c, 10000));
	assert_int_equal(tlsq_connect_wait(c, 1000), TLSQ_OK);
	char buf[8];
	assert_int_equal(tlsq_recv(c, buf, sizeof buf, 5000), 5);
	assert_memory_equal(buf, "hello", 5);
	ssize_t r = tlsq_recv(c, buf, sizeof buf, 5000);
	assert_true(r == TLSQ_ECONNRESET || r == TLSQ_ETRUNCATED);
	tlsq_conn_free(s);
	tlsq_conn_free(c);
	ts_pair_close(&p);
}

/* The poll descriptor is readable exactly while data (or the end) waits. */
static void test_pollfd_is_readable_while_data_waits(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	int fd = tlsq_conn_pollfd(p.server);
	assert_true(fd >= 0);
	assert_int_equal(tlsq_conn_pollfd(p.server), fd);
	struct pollfd pf = {fd, POLLIN, 0};
	assert_int_equal(poll(&pf, 1, 0), 0);
	assert_int_equal(tlsq_send(p.client, "ping", 4, 1000), 4);
	assert_int_equal(poll(&pf, 1, 5000), 1);
	char buf[8];
	assert_int_equal(tlsq_recv(p.server, buf, sizeof buf, 0), 4);
	assert_int_equal(poll(&pf, 1, 0), 0);
	assert_int_equal(tlsq_shutdown_send(p.client), TLSQ_OK);
	assert_int_equal(poll(&pf, 1, 5000), 1);
	assert_int_equal(tlsq_recv(p.server, buf, sizeof buf, 0), 0);
	ts_pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_16MiB_each_way_at_once_arrives_intact),
	    cmocka_unit_test(test_recv_returns_zero_after_peer_close_notify),
	    cmocka_unit_test(test_small_recv_buffer_gets_every_byte_in_order),
	    cmocka_unit_test(test_recv_timeouts_zero_and_n),
	    cmocka_unit_test(test_send_gets_eagain_when_peer_does_not_read),
	    cmocka_unit_test(test_flush_returns_when_everything_is_in_the_kernel),
	    cmocka_unit_test(test_abort_is_seen_as_reset_not_clean_close),
	    cmocka_unit_test(test_connect_wait_after_open_then_reset_still_delivers),
	    cmocka_unit_test(test_pollfd_is_readable_while_data_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
