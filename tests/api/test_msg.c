/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Message mode: many threads, maximum sizes, zero-copy, hostile frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <stdatomic.h>

#include <cmocka.h>

#include "support/support.h"

#if defined(__SANITIZE_ADDRESS__) || defined(TLSQ_TSAN) || defined(TLSQ_VALGRIND)
#define PER_SENDER 5000
#else
#define PER_SENDER 20000
#endif
#define SENDERS   8
#define RECEIVERS 8

struct hdr {
	uint32_t sender, seq, len, pad;
	uint64_t sum;
};

struct mm {
	tlsq_conn *c;
	int id;
	int rc;
	_Atomic uint64_t *seen; /* SENDERS * PER_SENDER bits */
	_Atomic uint64_t *count;
};

static void *msg_sender(void *arg)
{
	struct mm *m = arg;
	unsigned char buf[512];
	for (uint32_t i = 0; i < PER_SENDER; i++) {
		struct hdr h = {(uint32_t)m->id, i, 16 + (i * 7 + (uint32_t)m->id) % 400, 0, 0};
		ts_fill((uint64_t)m->id << 32 | i, 0, buf + sizeof h, h.len);
		h.sum = ts_fnv(TS_FNV_INIT, buf + sizeof h, h.len);
		memcpy(buf, &h, sizeof h);
		int r = tlsq_send_msg(m->c, buf, sizeof h + h.len, 30000);
		if (r != TLSQ_OK) {
			fprintf(stderr, "send_msg: %s\n", tlsq_strerror(r));
			m->rc = -1;
			return NULL;
		}
	}
	m->rc = 0;
	return NULL;
}

static void *msg_receiver(void *arg)
{
	struct mm *m = arg;
	unsigned char buf[1024];
	m->rc = 0;
	for (;;) {
		if (atomic_load(m->count) >= (uint64_t)SENDERS * PER_SENDER)
			return NULL;
		ssize_t n = tlsq_recv_msg(m->c, buf, sizeof buf, 100);
		if (n == TLSQ_ETIMEDOUT)
			continue;
		if (n < (ssize_t)sizeof(struct hdr)) {
			fprintf(stderr, "recv_msg: %zd %s\n", n, tlsq_strerror((int)n));
			m->rc = -1;
			return NULL;
		}
		struct hdr h;
		memcpy(&h, buf, sizeof h);
		if (h.sender >= SENDERS || h.seq >= PER_SENDER || (size_t)n != sizeof h + h.len ||
		    ts_fnv(TS_FNV_INIT, buf + sizeof h, h.len) != h.sum) {
			m->rc = -2;
			return NULL;
		}
		uint64_t bit = (uint64_t)h.sender * PER_SENDER + h.seq;
		uint64_t old = atomic_fetch_or(&m->seen[bit / 64], 1ull << (bit % 64));
		if (old & (1ull << (bit % 64))) {
			m->rc = -3; /* delivered twice */
			return NULL;
		}
		atomic_fetch_add(m->count, 1);
	}
}

/* G1: 8 senders x 8 receivers on one connection: exactly once, intact. */
static void test_8_senders_8_receivers_every_message_exactly_once(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_MESSAGE);
	size_t words = (SENDERS * PER_SENDER + 63) / 64;
	_Atomic uint64_t *seen = calloc(words, sizeof *seen);
	_Atomic uint64_t count = 0;
	struct mm s[SENDERS], r[RECEIVERS];
	ts_thread ts[SENDERS], tr[RECEIVERS];
	for (int i = 0; i < RECEIVERS; i++) {
		r[i] = (struct mm){p.server, i, -9, seen, &count};
		tr[i] = ts_spawn(msg_receiver, &r[i]);
	}
	for (int i = 0; i < SENDERS; i++) {
		s[i] = (struct mm){p.client, i, -9, seen, &count};
		ts[i] = ts_spawn(msg_sender, &s[i]);
	}
	for (int i = 0; i < SENDERS; i++) {
		ts_join(ts[i]);
		assert_int_equal(s[i].rc, 0);
	}
	for (int i = 0; i < RECEIVERS; i++) {
		ts_join(tr[i]);
		assert_int_equal(r[i].rc, 0);
	}
	assert_int_equal(atomic_load(&count), (uint64_t)SENDERS * PER_SENDER);
	for (size_t i = 0; i < (size_t)SENDERS * PER_SENDER; i++)
		assert_true(atomic_load(&seen[i / 64]) & (1ull << (i % 64)));
	struct tlsq_conn_info si;
	tlsq_conn_info(p.server, &si);
	assert_int_equal(si.msgs_received, (uint64_t)SENDERS * PER_SENDER);
	free(seen);
	ts_pair_close(&p);
}

static void test_max_size_message_passes_and_one_more_byte_is_refused(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.max_message = 3u << 20;
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_MESSAGE);
	size_t n = cfg.max_message;
	unsigned char *big = malloc(n + 1);
	ts_fill(99, 0, big, n + 1);
	assert_int_equal(tlsq_send_msg(p.client, big, n + 1, 1000), TLSQ_EMSGSIZE);
	assert_int_equal(tlsq_send_msg(p.client, big, n, 10000), TLSQ_OK);
	assert_int_equal(tlsq_send_msg(p.client, "", 0, 1000), TLSQ_OK);
	void *m = NULL;
	assert_int_equal(tlsq_msg_recv(p.server, &m, 10000), (ssize_t)n);
	assert_memory_equal(m, big, n);
	assert_int_equal(tlsq_msg_len(m), n);
	tlsq_msg_free(m);
	char small[4];
	assert_int_equal(tlsq_recv_msg(p.server, small, sizeof small, 5000), 0);
	free(big);
	ts_pair_close(&p);
}

static void test_zero_copy_round_trip_and_too_small_buffer_keeps_message(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_MESSAGE);
	char *m = tlsq_msg_alloc(100);
	assert_non_null(m);
	memset(m, 'z', 100);
	assert_int_equal(tlsq_msg_send(p.client, m, 1000), TLSQ_OK);
	char buf[200];
	assert_int_equal(tlsq_recv_msg(p.server, buf, 10, 5000), TLSQ_EMSGSIZE);
	assert_int_equal(tlsq_recv_msg(p.server, buf, sizeof buf, 5000), 100);
	assert_int_equal(buf[99], 'z');
	/* The end of a message connection is TLSQ_ECLOSED, after the data. */
	assert_int_equal(tlsq_send_msg(p.client, "last", 4, 1000), TLSQ_OK);
	assert_int_equal(tlsq_shutdown_send(p.client), TLSQ_OK);
	assert_int_equal(tlsq_recv_msg(p.server, buf, sizeof buf, 5000), 4);
	assert_int_equal(tlsq_recv_msg(p.server, buf, sizeof buf, 5000), TLSQ_ECLOSED);
	ts_pair_close(&p);
}

/* A hostile peer announcing an oversize frame: complete messages before it
 * are delivered, then TLSQ_EMSGSIZE; nothing is allocated for it. */
static void test_hostile_oversize_frame_ends_connection_with_emsgsize(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.max_message = 1024;
	tlsq_engine *e;
	assert_int_equal(tlsq_engine_new(&cfg, &e), TLSQ_OK);
	tlsq_tls *srv, *cli_msg, *cli_stream, *unused;
	ts_profiles(TLSQ_MODE_MESSAGE, &srv, &cli_msg);
	/* A stream client speaking raw frames plays the hostile peer. */
	char pem[8192];
	tlsq_tls_cert_pem(srv, pem, sizeof pem);
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.ca_pem = pem;
	cc.server_name = "localhost";
	assert_int_equal(tlsq_tls_new(&cc, &cli_stream), TLSQ_OK);
	unused = cli_msg;
	tlsq_listener *l;
	assert_int_equal(tlsq_listen(e, "127.0.0.1:0", srv, &l), TLSQ_OK);
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", tlsq_listener_port(l));
	tlsq_conn *c, *s;
	assert_int_equal(tlsq_connect(e, addr, cli_stream, &c, 5000), TLSQ_OK);
	assert_int_equal(tlsq_accept(l, &s, 5000), TLSQ_OK);
	unsigned char frames[4 + 3 + 4];
	uint32_t len = htonl(3);
	memcpy(frames, &len, 4);
	memcpy(frames + 4, "abc", 3);
	len = htonl(0x7ffffff0u);
	memcpy(frames + 7, &len, 4);
	assert_int_equal(tlsq_send(c, frames, sizeof frames, 1000), (ssize_t)sizeof frames);
	char buf[16];
	assert_int_equal(tlsq_recv_msg(s, buf, sizeof buf, 5000), 3);
	assert_int_equal(tlsq_recv_msg(s, buf, sizeof buf, 5000), TLSQ_EMSGSIZE);
	assert_non_null(strstr(tlsq_conn_error(s), "maximum is 1024"));
	assert_int_equal(tlsq_send_msg(s, "x", 1, 0), TLSQ_EMSGSIZE);
	tlsq_conn_free(c);
	tlsq_conn_free(s);
	tlsq_listener_free(l);
	tlsq_engine_free(e);
	tlsq_tls_free(srv);
	tlsq_tls_free(unused);
	tlsq_tls_free(cli_stream);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_8_senders_8_receivers_every_message_exactly_once),
	    cmocka_unit_test(test_max_size_message_passes_and_one_more_byte_is_refused),
	    cmocka_unit_test(test_zero_copy_round_trip_and_too_small_buffer_keeps_message),
	    cmocka_unit_test(test_hostile_oversize_frame_ends_connection_with_emsgsize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
