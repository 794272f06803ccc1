/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Connections that never reach tlsq_accept are recorded on their listener:
 * tlsq_listener_failures (newest first, counts by reason) and
 * tlsq_listener_next_failure (follow them one by one, woken by a close).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/support.h"

static tlsq_engine *engine;
static tlsq_tls *server, *client;

static int setup(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.handshake_timeout_ms = 300;
	cfg.accept_backlog = 1; /* the accept queue holds 3: the 4th is dropped */
	if (tlsq_engine_new(&cfg, &engine) != TLSQ_OK)
		return -1;
	ts_profiles(TLSQ_MODE_STREAM, &server, &client);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tlsq_engine_free(engine);
	tlsq_tls_free(server);
	tlsq_tls_free(client);
	return 0;
}

/* A plain TCP connection to the listener; our address in `me`. */
static int tcp_to(tlsq_listener *l, char *me, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)tlsq_listener_port(l))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t len = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &len);
	snprintf(me, cap, "127.0.0.1:%d", ntohs(a.sin_port));
	return fd;
}

static void test_http_request_is_recorded_as_not_tls_with_the_peer_address(void **state)
{
	(void)state;
	tlsq_listener *l;
	assert_int_equal(tlsq_listen(engine, "127.0.0.1:0", server, &l), TLSQ_OK);
	struct tlsq_accept_failure f;
	assert_int_equal(tlsq_listener_next_failure(l, 0, &f, 0), TLSQ_EAGAIN);
	char me[64];
	int fd = tcp_to(l, me, sizeof me);
	const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
	assert_int_equal(tlsq_listener_next_failure(l, 0, &f, 10000), TLSQ_OK);
	close(fd);
	assert_int_equal(f.seq, 1);
	assert_int_equal(f.reason, TLSQ_FAIL_NOT_TLS);
	assert_string_equal(tlsq_fail_reason_name(f.reason), "not_tls");
	assert_int_equal(f.phase, TLSQ_PHASE_HANDSHAKE);
	assert_string_equal(f.peer, me);
	assert_int_equal(f.port, tlsq_listener_port(l));
	assert_int_equal(f.error, TLSQ_ETLS);
	assert_true(f.detail[0] != 0);
	assert_true(f.unix_ms > 1600000000000ull);

	struct tlsq_accept_failure list[4];
	uint64_t counts[TLSQ_FAIL_REASONS];
	assert_int_equal(tlsq_listener_failures(l, list, 4, counts), 1);
	assert_string_equal(list[0].peer, me);
	for (int i = 0; i < TLSQ_FAIL_REASONS; i++)
		assert_int_equal(counts[i], i == TLSQ_FAIL_NOT_TLS ? 1 : 0);
	tlsq_listener_free(l);
}

static void test_silent_peer_times_out_before_sending_anything(void **state)
{
	(void)state;
	tlsq_listener *l;
	assert_int_equal(tlsq_listen(engine, "127.0.0.1:0", server, &l), TLSQ_OK);
	char me[64];
	int fd = tcp_to(l, me, sizeof me);
	struct tlsq_accept_failure f;
	assert_int_equal(tlsq_listener_next_failure(l, 0, &f, 10000), TLSQ_OK);
	close(fd);
	assert_int_equal(f.reason, TLSQ_FAIL_TIMEOUT);
	assert_int_equal(f.phase, TLSQ_PHASE_CONNECTED);
	assert_int_equal(f.error, TLSQ_ETIMEDOUT);
	assert_true(f.duration_ms >= 300);
	assert_string_equal(f.peer, me);
	tlsq_listener_free(l);
}

static void test_full_accept_queue_drops_are_recorded_after_the_handshake(void **state)
{
	(void)state;
	tlsq_listener *l;
	assert_int_equal(tlsq_listen(engine, "127.0.0.1:0", server, &l), TLSQ_OK);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", tlsq_listener_port(l));
	tlsq_conn *c[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(tlsq_connect(engine, addr, client, &c[i], 10000), TLSQ_OK);
	struct tlsq_accept_failure f;
	assert_int_equal(tlsq_listener_next_failure(l, 0, &f, 10000), TLSQ_OK);
	assert_int_equal(f.reason, TLSQ_FAIL_ACCEPT_QUEUE);
	assert_int_equal(f.phase, TLSQ_PHASE_ACCEPT);
	for (int i = 0; i < 4; i++)
		tlsq_conn_free(c[i]);
	tlsq_listener_free(l);
}

static tlsq_listener *closing;

static void *close_later(void *arg)
{
	(void)arg;
	tlsq_listener_close(closing);
	return NULL;
}

static void test_close_wakes_a_blocked_next_failure(void **state)
{
	(void)state;
	assert_int_equal(tlsq_listen(engine, "127.0.0.1:0", server, &closing), TLSQ_OK);
	ts_thread t = ts_spawn(close_later, NULL);
	struct tlsq_accept_failure f;
	uint64_t t0 = ts_now_ms();
	assert_int_equal(tlsq_listener_next_failure(closing, 0, &f, -1), TLSQ_ECLOSED);
	assert_true(ts_now_ms() - t0 < 10000);
	ts_join(t);
	assert_int_equal(tlsq_listener_failures(closing, NULL, 0, NULL), 0);
	tlsq_listener_free(closing);
}

static void test_more_failures_than_kept_keep_the_newest_and_exact_counts(void **state)
{
	(void)state;
	tlsq_listener *l;
	assert_int_equal(tlsq_listen(engine, "127.0.0.1:0", server, &l), TLSQ_OK);
	const int n = TLSQ_FAILURES_KEPT + 8;
	struct tlsq_accept_failure f;
	uint64_t seen = 0;
	char last[64] = "";
	for (int i = 0; i < n; i++) {
		int fd = tcp_to(l, last, sizeof last);
		assert_int_equal(write(fd, "\x01\x02\x03", 3), 3);
		assert_int_equal(tlsq_listener_next_failure(l, seen, &f, 10000), TLSQ_OK);
		assert_int_equal(f.seq, seen + 1);
		seen = f.seq;
		close(fd);
	}
	struct tlsq_accept_failure list[TLSQ_FAILURES_KEPT + 8];
	uint64_t counts[TLSQ_FAIL_REASONS];
	assert_int_equal(tlsq_listener_failures(l, list, TLSQ_FAILURES_KEPT + 8, counts),
	                 TLSQ_FAILURES_KEPT);
	assert_int_equal(counts[TLSQ_FAIL_NOT_TLS], n);
	assert_int_equal(list[0].seq, (uint64_t)n);
	assert_string_equal(list[0].peer, last);
	for (int i = 1; i < TLSQ_FAILURES_KEPT; i++)
		assert_int_equal(list[i].seq, list[i - 1].seq - 1);
	tlsq_listener_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http_request_is_recorded_as_not_tls_with_the_peer_address),
	    cmocka_unit_test(test_silent_peer_times_out_before_sending_anything),
	    cmocka_unit_test(test_full_accept_queue_drops_are_recorded_after_the_handshake),
	    cmocka_unit_test(test_close_wakes_a_blocked_next_failure),
	    cmocka_unit_test(test_more_failures_than_kept_keep_the_newest_and_exact_counts),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
