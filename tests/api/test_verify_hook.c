/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The verify hook (tlsq_tls_config.verify_hook): it sees the peer's
 * certificate as copies (DER, subject, SANs, fingerprints), runs on the IO
 * thread, and a rejection fails the connection with TLSQ_ECERT and the
 * hook's own reason, on a client and on a server (mTLS by the hook alone).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "support/support.h"

static tlsq_engine *engine;
static tlsq_tls *server;
static tlsq_listener *listener;
static char addr[64], server_pem[8192];

struct hook_state {
	int reject;
	_Atomic int calls;
	pthread_t thread;
	char subject[256], sans[256], sha256[65], spki[64];
	size_t der_len;
	int verified;
};

static int hook(tlsq_conn *c, const tlsq_peer_view *v, void *arg, char *reason, size_t cap)
{
	struct hook_state *h = arg;
	(void)c;
	h->thread = pthread_self();
	snprintf(h->subject, sizeof h->subject, "%s", v->subject);
	snprintf(h->sans, sizeof h->sans, "%s", v->sans);
	snprintf(h->sha256, sizeof h->sha256, "%s", v->sha256);
	snprintf(h->spki, sizeof h->spki, "%s", v->spki_sha256);
	h->der_len = v->der_len;
	h->verified = v->verified;
	atomic_fetch_add(&h->calls, 1);
	if (h->reject) {
		snprintf(reason, cap, "%s is not on the list", v->sha256);
		return -1;
	}
	return 0;
}

static int setup(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	if (tlsq_engine_new(&cfg, &engine) != TLSQ_OK)
		return -1;
	tlsq_tls_config sc;
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	sc.self_signed = 1;
	if (tlsq_tls_new(&sc, &server) != TLSQ_OK)
		return -1;
	tlsq_tls_cert_pem(server, server_pem, sizeof server_pem);
	if (tlsq_listen(engine, "127.0.0.1:0", server, &listener) != TLSQ_OK)
		return -1;
	snprintf(addr, sizeof addr, "127.0.0.1:%d", tlsq_listener_port(listener));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tlsq_listener_free(listener);
	tlsq_engine_free(engine);
	tlsq_tls_free(server);
	return 0;
}

static tlsq_tls *client_with_hook(struct hook_state *h)
{
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.ca_pem = server_pem;
	cc.server_name = "localhost";
	cc.verify_hook = hook;
	cc.verify_hook_arg = h;
	tlsq_tls *t;
	assert_int_equal(tlsq_tls_new(&cc, &t), TLSQ_OK);
	return t;
}

static void test_client_hook_sees_the_certificate_on_the_io_thread_and_accepts(void **state)
{
	(void)state;
	struct hook_state h = {0};
	tlsq_tls *t = client_with_hook(&h);
	tlsq_conn *c, *s;
	assert_int_equal(tlsq_connect(engine, addr, t, &c, 10000), TLSQ_OK);
	assert_int_equal(tlsq_accept(listener, &s, 10000), TLSQ_OK);
	assert_int_equal(atomic_load(&h.calls), 1);
	assert_false(pthread_equal(h.thread, pthread_self())); /* the IO thread */
	printf("hook saw: %s | %s | %s | sha256//%s | %zu bytes DER\n", h.subject, h.sans, h.sha256,
	       h.spki, h.der_len);
	assert_non_null(strstr(h.subject, "CN=localhost"));
	assert_non_null(strstr(h.sans, "DNS:localhost"));
	assert_int_equal(strlen(h.sha256), 64);
	assert_true(h.der_len > 100);
	assert_int_equal(h.verified, 1);
	/* The same values as the connection's published snapshot. */
	struct tlsq_conn_info ci;
	assert_int_equal(tlsq_conn_info(c, &ci), TLSQ_OK);
	assert_string_equal(ci.peer_sha256, h.sha256);
	assert_string_equal(ci.peer_spki_sha256, h.spki);
	assert_int_equal(ts_send_pattern(c, 5, 10000, 1000), 0);
	assert_int_equal(ts_recv_pattern(s, 5, 10000, 1000), 0);
	tlsq_conn_free(c);
	tlsq_conn_free(s);
	tlsq_tls_free(t);
}

static void test_client_hook_reject_fails_with_ecert_and_its_reason(void **state)
{
	(void)state;
	struct hook_state h = {.reject = 1};
	tlsq_tls *t = client_with_hook(&h);
	tlsq_conn *c = NULL;
	assert_int_equal(tlsq_connect(engine, addr, t, &c, 10000), TLSQ_ECERT);
	assert_null(c);
	printf("reason: %s\n", tlsq_last_error());
	char want[200];
	snprintf(want, sizeof want,
	         "certificate rejected by the verify hook: %s is not on the list", h.sha256);
	assert_string_equal(tlsq_last_error(), want);
	tlsq_tls_free(t);
}

static void test_server_hook_alone_decides_on_client_certificates(void **state)
{
	(void)state;
	struct hook_state h = {.reject = 1};
	tlsq_tls_config sc;
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	sc.self_signed = 1;
	sc.verify = TLSQ_VERIFY_NONE; /* the hook alone decides */
	sc.verify_hook = hook;
	sc.verify_hook_arg = &h;
	tlsq_tls *hs;
	assert_int_equal(tlsq_tls_new(&sc, &hs), TLSQ_OK);
	tlsq_listener *l;
	assert_int_equal(tlsq_listen(engine, "127.0.0.1:0", hs, &l), TLSQ_OK);
	char a[64];
	snprintf(a, sizeof a, "127.0.0.1:%d", tlsq_listener_port(l));

	/* A client with a (self-signed) certificate: asked for it, rejected. */
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.verify = TLSQ_VERIFY_NONE;
	cc.self_signed = 1;
	tlsq_tls *ct;
	assert_int_equal(tlsq_tls_new(&cc, &ct), TLSQ_OK);
	tlsq_conn *c = NULL;
	(void)tlsq_connect(engine, a, ct, &c, 10000); /* TLS 1.3: may finish first */
	struct tlsq_accept_failure f;
	assert_int_equal(tlsq_listener_next_failure(l, 0, &f, 10000), TLSQ_OK);
	printf("server: [%s] %s\n", tlsq_fail_reason_name(f.reason), f.detail);
	assert_int_equal(f.error, TLSQ_ECERT);
	assert_non_null(strstr(f.detail, "certificate rejected by the verify hook: "));
	assert_non_null(strstr(f.detail, "is not on the list"));
	if (c)
		tlsq_conn_free(c);

	/* Accepted: the connection reaches tlsq_accept. */
	h.reject = 0;
	assert_int_equal(tlsq_connect(engine, a, ct, &c, 10000), TLSQ_OK);
	tlsq_conn *s;
	assert_int_equal(tlsq_accept(l, &s, 10000), TLSQ_OK);
	assert_int_equal(atomic_load(&h.calls), 2);
	assert_int_equal(h.verified, 0);
	assert_non_null(strstr(h.subject, "CN=localhost"));
	tlsq_conn_free(s);
	tlsq_conn_free(c);

	/* A client without a certificate never gets in. */
	tlsq_tls_config nc;
	tlsq_tls_config_init(&nc, TLSQ_CLIENT);
	nc.verify = TLSQ_VERIFY_NONE;
	tlsq_tls *anon;
	assert_int_equal(tlsq_tls_new(&nc, &anon), TLSQ_OK);
	c = NULL;
	(void)tlsq_connect(engine, a, anon, &c, 10000);
	assert_int_equal(tlsq_listener_next_failure(l, f.seq, &f, 10000), TLSQ_OK);
	printf("server: [%s] %s\n", tlsq_fail_reason_name(f.reason), f.detail);
	assert_int_equal(f.error, TLSQ_ECERT);
	assert_int_equal(atomic_load(&h.calls), 2);
	if (c)
		tlsq_conn_free(c);
	tlsq_tls_free(anon);
	tlsq_tls_free(ct);
	tlsq_listener_free(l);
	tlsq_tls_free(hs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_client_hook_sees_the_certificate_on_the_io_thread_and_accepts),
	    cmocka_unit_test(test_client_hook_reject_fails_with_ecert_and_its_reason),
	    cmocka_unit_test(test_server_hook_alone_decides_on_client_certificates),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
