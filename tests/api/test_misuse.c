/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Misuse gets TLSQ_EINVAL or TLSQ_ECLOSED, never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "support/support.h"

static void test_null_handles_are_einval(void **state)
{
	(void)state;
	char b[4] = {0};
	void *m;
	assert_int_equal(tlsq_send(NULL, b, 1, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_recv(NULL, b, 1, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_send_msg(NULL, b, 1, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_recv_msg(NULL, b, 1, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_msg_recv(NULL, &m, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_msg_send(NULL, b, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_flush(NULL, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_shutdown_send(NULL), TLSQ_EINVAL);
	assert_int_equal(tlsq_close(NULL, 0, NULL), TLSQ_EINVAL);
	assert_int_equal(tlsq_key_update(NULL), TLSQ_EINVAL);
	assert_int_equal(tlsq_conn_pollfd(NULL), TLSQ_EINVAL);
	assert_int_equal(tlsq_conn_info(NULL, NULL), TLSQ_EINVAL);
	assert_int_equal(tlsq_accept(NULL, NULL, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_listen(NULL, NULL, NULL, NULL), TLSQ_EINVAL);
	assert_int_equal(tlsq_connect(NULL, "x:1", NULL, NULL, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_listener_port(NULL), TLSQ_EINVAL);
	assert_int_equal(tlsq_engine_status_port(NULL), TLSQ_EINVAL);
	assert_int_equal(tlsq_engine_new(NULL, NULL), TLSQ_EINVAL);
	tlsq_abort(NULL);
	tlsq_conn_free(NULL);
	tlsq_listener_close(NULL);
	tlsq_listener_free(NULL);
	tlsq_engine_free(NULL);
	tlsq_tls_free(NULL);
	tlsq_msg_free(NULL);
	assert_string_equal(tlsq_strerror(TLSQ_ETIMEDOUT), "timed out");
	assert_string_equal(tlsq_strerror(12345), "unknown error");
	assert_string_equal(tlsq_version(), TLSQ_VERSION_STRING);
	assert_non_null(strstr(tlsq_crypto_version(), "wolfSSL"));
}

static void test_bad_engine_config_is_einval_with_reason(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	tlsq_engine *e = NULL;
	tlsq_engine_config_init(&cfg);
	cfg.cipher_buffer = 0;
	assert_int_equal(tlsq_engine_new(&cfg, &e), TLSQ_EINVAL);
	assert_null(e);
	assert_non_null(strstr(tlsq_last_error(), "cipher_buffer"));
	tlsq_engine_config_init(&cfg);
	cfg.io_threads = -1;
	assert_int_equal(tlsq_engine_new(&cfg, &e), TLSQ_EINVAL);
	tlsq_engine_config_init(&cfg);
	cfg.tx_budget = 0;
	assert_int_equal(tlsq_engine_new(&cfg, &e), TLSQ_EINVAL);
}

static void test_wrong_mode_sizes_and_use_after_close(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	char b[8];
	/* message calls on a stream connection */
	assert_int_equal(tlsq_send_msg(p.client, b, 1, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_recv_msg(p.client, b, 1, 0), TLSQ_EINVAL);
	/* NULL buffer with a length; zero-capacity receive */
	assert_int_equal(tlsq_send(p.client, NULL, 5, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_recv(p.client, b, 0, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_send(p.client, b, (size_t)-1, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_send(p.client, b, 0, 0), 0);
	/* double close, then use after close (the server half-closes too, so
	 * the client's graceful close can complete) */
	assert_int_equal(tlsq_shutdown_send(p.server), TLSQ_OK);
	assert_int_equal(tlsq_close(p.client, 5000, NULL), TLSQ_OK);
	assert_int_equal(tlsq_close(p.client, 5000, NULL), TLSQ_OK);
	assert_int_equal(tlsq_send(p.client, b, 1, 0), TLSQ_ECLOSED);
	assert_int_equal(tlsq_recv(p.client, b, 1, 0), TLSQ_ECLOSED);
	tlsq_abort(p.client);
	assert_true(tlsq_key_update(p.client) < 0);
	ts_pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_null_handles_are_einval),
	    cmocka_unit_test(test_bad_engine_config_is_einval_with_reason),
	    cmocka_unit_test(test_wrong_mode_sizes_and_use_after_close),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
