/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Lifetimes at the edges: a handle freed, a listener freed or an engine
 * freed while other threads are blocked on it. Each blocked call must
 * return (TLSQ_ECLOSED) within a bound, nothing may be used after it is
 * freed (the ASan build catches that), and what was received before the
 * end is still delivered. Regression tests for the leads of the issue
 * "Every ending delivers every byte and wakes every caller".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/support.h"
/* White-box: the tests below must know that a thread is inside a blocking
 * call (holding what it holds) before they free what it waits on; a call
 * that STARTS after the free is the application's use after free. */
#include "iotask.h"

#define BOUND_MS 10000 /* generous: sanitizer builds on 2 busy cores */

struct waiter {
	tlsq_listener *l;
	tlsq_conn *c;
	_Atomic int done;
	int rc;
	uint64_t bytes;
};

static int is_done(void *arg)
{
	return atomic_load(&((struct waiter *)arg)->done);
}

static int accept_waiting(void *arg)
{
	return atomic_load(&((struct tlsq_listener *)arg)->waiters) == 1;
}

static int open_waiting(void *arg)
{
	return atomic_load(&((struct tlsq_conn *)arg)->open_waiters) == 1;
}

static void *accept_forever(void *arg)
{
	struct waiter *w = arg;
	tlsq_conn *c = NULL;
	w->rc = tlsq_accept(w->l, &c, -1);
	if (c)
		tlsq_conn_free(c);
	atomic_store(&w->done, 1);
	return NULL;
}

/* Lead 5: engine free closes every listener; a thread in tlsq_accept(-1)
 * hung for ever. */
static void test_engine_free_wakes_a_thread_blocked_in_accept(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	tlsq_engine *e;
	tlsq_tls *st, *ct;
	assert_int_equal(tlsq_engine_new(&cfg, &e), TLSQ_OK);
	ts_profiles(TLSQ_MODE_STREAM, &st, &ct);
	struct waiter w = {0};
	assert_int_equal(tlsq_listen(e, "127.0.0.1:0", st, &w.l), TLSQ_OK);
	ts_thread t = ts_spawn(accept_forever, &w);
	if (!ts_wait_for(accept_waiting, w.l, BOUND_MS))
		fail_msg("the thread never entered tlsq_accept");
	tlsq_engine_free(e);
	if (!ts_wait_for(is_done, &w, BOUND_MS))
		fail_msg("tlsq_accept(-1) still blocked %d ms after tlsq_engine_free", BOUND_MS);
	ts_join(t);
	assert_int_equal(w.rc, TLSQ_ECLOSED);
	tlsq_listener_free(w.l);
	tlsq_tls_free(st);
	tlsq_tls_free(ct);
}

/* Lead 2: tlsq_listener_free while a thread waits in tlsq_accept: the
 * waiter held no reference and could wake up in freed memory (ASan). */
static void test_listener_free_wakes_blocked_accept_without_use_after_free(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	tlsq_engine *e;
	tlsq_tls *st, *ct;
	assert_int_equal(tlsq_engine_new(&cfg, &e), TLSQ_OK);
	ts_profiles(TLSQ_MODE_STREAM, &st, &ct);
	for (int i = 0; i < 50; i++) {
		struct waiter w = {0};
		assert_int_equal(tlsq_listen(e, "127.0.0.1:0", st, &w.l), TLSQ_OK);
		ts_thread t = ts_spawn(accept_forever, &w);
		if (!ts_wait_for(accept_waiting, w.l, BOUND_MS))
			fail_msg("round %d: the thread never entered tlsq_accept", i);
		tlsq_listener_free(w.l);
		if (!ts_wait_for(is_done, &w, BOUND_MS))
			fail_msg("round %d: tlsq_accept still blocked after tlsq_listener_free", i);
		ts_join(t);
		assert_int_equal(w.rc, TLSQ_ECLOSED);
	}
	tlsq_engine_free(e);
	tlsq_tls_free(st);
	tlsq_tls_free(ct);
}

static void *connect_wait_forever(void *arg)
{
	struct waiter *w = arg;
	w->rc = tlsq_connect_wait(w->c, -1);
	atomic_store(&w->done, 1);
	return NULL;
}

/* Lead 3: tlsq_conn_free while another thread waits in tlsq_connect_wait
 * for a handshake that never comes (a TCP listener that never answers):
 * the waiter held no reference. */
static void test_conn_free_wakes_connect_wait_without_use_after_free(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	tlsq_engine *e;
	tlsq_tls *st, *ct;
	assert_int_equal(tlsq_engine_new(&cfg, &e), TLSQ_OK);
	ts_profiles(TLSQ_MODE_STREAM, &st, &ct);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 128), 0);
	socklen_t len = sizeof sa;
	getsockname(lfd, (struct sockaddr *)&sa, &len);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
	for (int i = 0; i < 50; i++) {
		struct waiter w = {0};
		assert_int_equal(tlsq_connect_start(e, addr, ct, &w.c), TLSQ_OK);
		ts_thread t = ts_spawn(connect_wait_forever, &w);
		if (!ts_wait_for(open_waiting, w.c, BOUND_MS))
			fail_msg("round %d: the thread never entered tlsq_connect_wait", i);
		tlsq_conn_free(w.c);
		if (!ts_wait_for(is_done, &w, BOUND_MS))
			fail_msg("round %d: tlsq_connect_wait still blocked after tlsq_conn_free",
			         i);
		ts_join(t);
		assert_int_equal(w.rc, TLSQ_ECLOSED);
		/* Take the silent server's side of the connection away. */
		int fd = accept(lfd, NULL, NULL);
		if (fd >= 0)
			close(fd);
	}
	close(lfd);
	tlsq_engine_free(e);
	tlsq_tls_free(st);
	tlsq_tls_free(ct);
}

static int server_recv_parked(void *arg)
{
	struct tlsq_conn_info info;
	tlsq_conn_info(arg, &info);
	return info.recv_parked;
}

static void *drain_after_go(void *arg)
{
	struct waiter *w = arg;
	char buf[4096];
	ssize_t n;
	while ((n = tlsq_recv(w->c, buf, sizeof buf, BOUND_MS)) > 0)
		w->bytes += (uint64_t)n;
	w->rc = (int)n;
	atomic_store(&w->done, 1);
	return NULL;
}

/* Lead 4: engine free while the rx queue is full and the IO task holds a
 * decrypted chunk back: the rx queue was never ended, so a receiver
 * draining it blocked for ever once it was empty. Now it gets what was
 * queued, then TLSQ_ECLOSED. */
static void test_engine_free_with_a_full_rx_queue_ends_it_after_the_queued_data(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.rx_budget = 16 << 10;
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	assert_int_equal(ts_send_pattern(p.client, 7, 256 << 10, 16 << 10), 0);
	if (!ts_wait_for(server_recv_parked, p.server, BOUND_MS))
		fail_msg("the server's rx queue never filled");
	tlsq_engine_free(p.engine);
	p.engine = NULL;
	struct waiter w = {.c = p.server};
	ts_thread t = ts_spawn(drain_after_go, &w);
	if (!ts_wait_for(is_done, &w, 3 * BOUND_MS))
		fail_msg("the receiver is still draining or blocked");
	ts_join(t);
	assert_int_equal(w.rc, TLSQ_ECLOSED);
	assert_true(w.bytes >= cfg.rx_budget / 2);
	ts_pair_close(&p);
}

/* Lead 9: a peer that sends close_notify in the middle of a message. The
 * receiver got TLSQ_EPROTO but the connection had no error and no reason
 * (the reason was written without the error, as scratch space). */
static void test_close_notify_mid_message_is_eproto_with_its_reason(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	tlsq_engine *e;
	tlsq_tls *st, *ct_unused, *ct;
	assert_int_equal(tlsq_engine_new(&cfg, &e), TLSQ_OK);
	ts_profiles(TLSQ_MODE_MESSAGE, &st, &ct_unused);
	/* A stream client speaking the message framing by hand. */
	static char pem[8192];
	assert_true(tlsq_tls_cert_pem(st, pem, sizeof pem) > 0);
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.ca_pem = pem;
	cc.server_name = "localhost";
	assert_int_equal(tlsq_tls_new(&cc, &ct), TLSQ_OK);
	tlsq_listener *l;
	assert_int_equal(tlsq_listen(e, "127.0.0.1:0", st, &l), TLSQ_OK);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", tlsq_listener_port(l));
	tlsq_conn *c, *s;
	assert_int_equal(tlsq_connect(e, addr, ct, &c, BOUND_MS), TLSQ_OK);
	assert_int_equal(tlsq_accept(l, &s, BOUND_MS), TLSQ_OK);
	/* One whole 3-byte message, then a header for 100 bytes and 10 of them. */
	unsigned char wire[4 + 3 + 4 + 10] = {0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 100};
	assert_int_equal(tlsq_send(c, wire, sizeof wire, BOUND_MS), (ssize_t)sizeof wire);
	assert_int_equal(tlsq_shutdown_send(c), TLSQ_OK);
	char got[128];
	assert_int_equal(tlsq_recv_msg(s, got, sizeof got, BOUND_MS), 3);
	assert_memory_equal(got, "abc", 3);
	assert_int_equal(tlsq_recv_msg(s, got, sizeof got, BOUND_MS), TLSQ_EPROTO);
	struct tlsq_conn_info info;
	tlsq_conn_info(s, &info);
	assert_int_equal(info.error, TLSQ_EPROTO);
	assert_non_null(strstr(tlsq_conn_error(s), "middle of a message"));
	tlsq_conn_free(c);
	tlsq_conn_free(s);
	tlsq_listener_free(l);
	tlsq_engine_free(e);
	tlsq_tls_free(st);
	tlsq_tls_free(ct);
	tlsq_tls_free(ct_unused);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_engine_free_wakes_a_thread_blocked_in_accept),
	    cmocka_unit_test(test_listener_free_wakes_blocked_accept_without_use_after_free),
	    cmocka_unit_test(test_conn_free_wakes_connect_wait_without_use_after_free),
	    cmocka_unit_test(test_engine_free_with_a_full_rx_queue_ends_it_after_the_queued_data),
	    cmocka_unit_test(test_close_notify_mid_message_is_eproto_with_its_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
