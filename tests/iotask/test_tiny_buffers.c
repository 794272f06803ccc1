/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * P3/P4, G3: every buffer size from 1 byte up works. With a 1-byte
 * ciphertext buffer every socket read and write moves one byte, so wolfSSL
 * sees WANT_READ in the middle of every record header and body, and with
 * 1-byte budgets every queue entry is an "oversize" one. Data must arrive
 * intact both ways at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "support/support.h"

#if defined(__SANITIZE_ADDRESS__) || defined(TLSQ_TSAN) || defined(TLSQ_VALGRIND)
#define TINY_BYTES (512u << 10)
#else
#define TINY_BYTES (10u << 20)
#endif

struct xfer {
	tlsq_conn *c;
	uint64_t seed, len;
	size_t chunk;
	int send, rc;
};

static void *run(void *arg)
{
	struct xfer *x = arg;
	x->rc = x->send ? ts_send_pattern(x->c, x->seed, x->len, x->chunk)
	                : ts_recv_pattern(x->c, x->seed, x->len, x->chunk);
	return NULL;
}

static void both_ways(size_t cipher, size_t budget, uint64_t bytes)
{
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.cipher_buffer = cipher;
	cfg.control_reserve = 1;
	cfg.tx_budget = budget;
	cfg.rx_budget = budget;
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	struct xfer x[4] = {
	    {p.client, 11, bytes, 40000, 1, -9},
	    {p.server, 11, bytes, 777, 0, -9},
	    {p.server, 12, bytes, 16384, 1, -9},
	    {p.client, 12, bytes, 1, 0, -9},
	};
	if (bytes > 1000000)
		x[3].chunk = 4096;
	ts_thread t[4];
	for (int i = 0; i < 4; i++)
		t[i] = ts_spawn(run, &x[i]);
	for (int i = 0; i < 4; i++)
		ts_join(t[i]);
	for (int i = 0; i < 4; i++)
		assert_int_equal(x[i].rc, 0);
	struct tlsq_conn_info ci, si;
	tlsq_conn_info(p.client, &ci);
	assert_int_equal(ci.bytes_sent, bytes);
	assert_int_equal(ci.bytes_received, bytes);
	/* Every ciphertext byte is counted once, whichever way it left (the
	 * send callback's direct write, or the parked tail flushed later): all
	 * data arrived and nothing follows it, so the counts meet exactly. */
	tlsq_conn_info(p.server, &si);
	assert_int_equal(ci.tls_bytes_sent, si.tls_bytes_received);
	assert_int_equal(si.tls_bytes_sent, ci.tls_bytes_received);
	ts_pair_close(&p);
}

static void test_1_byte_cipher_buffer_and_budgets_move_data_both_ways(void **state)
{
	(void)state;
	both_ways(1, 1, TINY_BYTES);
}

static void test_odd_buffer_sizes_move_data_both_ways(void **state)
{
	(void)state;
	size_t sizes[] = {2, 5, 6, 7, 100, 4095, 16389, 100000};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
		both_ways(sizes[i], sizes[i], 300000);
}

/* The default buffers: records go straight from the send callback to the
 * socket while nothing is parked in front of them (issue 16). */
static void test_default_buffers_move_data_both_ways_and_count_ciphertext_once(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	both_ways(cfg.cipher_buffer, cfg.tx_budget, TINY_BYTES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_buffers_move_data_both_ways_and_count_ciphertext_once),
	    cmocka_unit_test(test_1_byte_cipher_buffer_and_budgets_move_data_both_ways),
	    cmocka_unit_test(test_odd_buffer_sizes_move_data_both_ways),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
