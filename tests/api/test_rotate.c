/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Certificate rotation (tlsq_tls_reload): new handshakes get the new
 * certificate, live connections are untouched, a failed reload keeps the old
 * certificate serving and says why, and handshakes under way while another
 * thread reloads over and over each see one complete certificate.
 *
 * Each reload uses self_signed, which makes a fresh key and certificate, so
 * every generation is told apart by its PEM.
 */
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/support.h"

static tlsq_engine *engine;
static tlsq_tls *server, *client;
static tlsq_listener *listener;
static char addr[64];

static tlsq_tls_config server_cfg(void)
{
	tlsq_tls_config sc;
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	sc.self_signed = 1;
	return sc;
}

static int setup(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	if (tlsq_engine_new(&cfg, &engine) != TLSQ_OK)
		return -1;
	tlsq_tls_config sc = server_cfg();
	if (tlsq_tls_new(&sc, &server) != TLSQ_OK)
		return -1;
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.verify = TLSQ_VERIFY_NONE; /* the test checks the certificate itself */
	cc.session_resumption = 0;    /* a resumed session shows no certificate */
	if (tlsq_tls_new(&cc, &client) != TLSQ_OK)
		return -1;
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
	tlsq_tls_free(client);
	return 0;
}

/* FNV of the profile's own certificate PEM. */
static uint64_t own_cert(tlsq_tls *t)
{
	char pem[8192];
	ssize_t n = tlsq_tls_cert_pem(t, pem, sizeof pem);
	assert_true(n > 0);
	return ts_fnv(TS_FNV_INIT, pem, (size_t)n);
}

/* FNV of the certificate the peer of c showed, or 0. */
static uint64_t peer_cert(tlsq_conn *c)
{
	char pem[8192];
	ssize_t n = tlsq_conn_peer_cert(c, 0, 1, pem, sizeof pem);
	return n > 0 ? ts_fnv(TS_FNV_INIT, pem, (size_t)n) : 0;
}

/* Connects and accepts one pair; returns the certificate the client saw. */
static uint64_t pair(tlsq_conn **cc, tlsq_conn **sc)
{
	assert_int_equal(tlsq_connect(engine, addr, client, cc, 10000), TLSQ_OK);
	assert_int_equal(tlsq_accept(listener, sc, 10000), TLSQ_OK);
	return peer_cert(*cc);
}

static void echo_check(tlsq_conn *a, tlsq_conn *b, uint64_t seed)
{
	assert_int_equal(ts_send_pattern(a, seed, 100000, 4096), 0);
	assert_int_equal(ts_recv_pattern(b, seed, 100000, 4096), 0);
	assert_int_equal(ts_send_pattern(b, seed + 1, 100000, 4096), 0);
	assert_int_equal(ts_recv_pattern(a, seed + 1, 100000, 4096), 0);
}

static void test_reload_new_handshakes_get_new_cert_live_connection_untouched(void **state)
{
	(void)state;
	uint64_t old = own_cert(server);
	tlsq_conn *c1, *s1;
	assert_true(pair(&c1, &s1) == old);

	tlsq_tls_config sc = server_cfg();
	assert_int_equal(tlsq_tls_reload(server, &sc), TLSQ_OK);
	uint64_t fresh = own_cert(server);
	assert_true(fresh != old);

	tlsq_conn *c2, *s2;
	assert_true(pair(&c2, &s2) == fresh);
	/* The connection from before the reload still moves data both ways,
	 * and still shows the certificate it was made with. */
	echo_check(c1, s1, 11);
	echo_check(c2, s2, 13);
	assert_true(peer_cert(c1) == old);
	tlsq_conn_free(c1);
	tlsq_conn_free(s1);
	tlsq_conn_free(c2);
	tlsq_conn_free(s2);
}

static void test_failed_reload_keeps_old_cert_and_says_why(void **state)
{
	(void)state;
	uint64_t before = own_cert(server);

	tlsq_tls_config bad;
	tlsq_tls_config_init(&bad, TLSQ_SERVER);
	bad.cert_file = "/nonexistent/tlsq-rotate.pem";
	bad.key_file = "/nonexistent/tlsq-rotate.key";
	assert_int_equal(tlsq_tls_reload(server, &bad), TLSQ_EINVAL);
	printf("reason: %s\n", tlsq_last_error());
	assert_non_null(strstr(tlsq_last_error(), "/nonexistent/tlsq-rotate.pem"));

	/* A certificate with no key. */
	char pem[8192];
	assert_true(tlsq_tls_cert_pem(server, pem, sizeof pem) > 0);
	tlsq_tls_config_init(&bad, TLSQ_SERVER);
	bad.cert_pem = pem;
	bad.key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
	assert_int_equal(tlsq_tls_reload(server, &bad), TLSQ_EINVAL);
	printf("reason: %s\n", tlsq_last_error());
	assert_true(strlen(tlsq_last_error()) > 10);

	tlsq_tls_config_init(&bad, TLSQ_CLIENT);
	assert_int_equal(tlsq_tls_reload(server, &bad), TLSQ_EINVAL);
	printf("reason: %s\n", tlsq_last_error());
	assert_non_null(strstr(tlsq_last_error(), "the profile is a server"));

	assert_true(own_cert(server) == before);
	tlsq_conn *c, *s;
	assert_true(pair(&c, &s) == before);
	echo_check(c, s, 17);
	tlsq_conn_free(c);
	tlsq_conn_free(s);
}

/* One connection of `t` to the listener, closed cleanly; 1 if it resumed. */
static int resumed_once(tlsq_tls *t)
{
	tlsq_conn *c, *s;
	assert_int_equal(tlsq_connect(engine, addr, t, &c, 10000), TLSQ_OK);
	assert_int_equal(tlsq_accept(listener, &s, 10000), TLSQ_OK);
	/* A round trip: the server's ticket is read before the close. */
	echo_check(c, s, 19);
	struct tlsq_conn_info ci;
	assert_int_equal(tlsq_conn_info(c, &ci), TLSQ_OK);
	assert_int_equal(tlsq_shutdown_send(c), TLSQ_OK);
	char b;
	assert_int_equal(tlsq_recv(s, &b, 1, 10000), 0);
	assert_int_equal(tlsq_close(s, 10000, NULL), TLSQ_OK);
	assert_int_equal(tlsq_recv(c, &b, 1, 10000), 0);
	tlsq_conn_free(c);
	tlsq_conn_free(s);
	return ci.resumed;
}

static void test_client_reload_forgets_the_ticket_of_the_old_credentials(void **state)
{
	(void)state;
	char pem[8192];
	assert_true(tlsq_tls_cert_pem(server, pem, sizeof pem) > 0);
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.ca_pem = pem;
	cc.server_name = "localhost";
	tlsq_tls *t;
	assert_int_equal(tlsq_tls_new(&cc, &t), TLSQ_OK);
	/* The ticket is saved when a connection ends, on its IO thread: keep
	 * connecting until one resumes (bounded). */
	int resumed = 0;
	for (int i = 0; i < 50 && !resumed; i++)
		resumed = resumed_once(t);
	assert_true(resumed);
	assert_int_equal(tlsq_tls_reload(t, &cc), TLSQ_OK);
	assert_int_equal(resumed_once(t), 0); /* a full handshake, verified anew */
	resumed = 0;
	for (int i = 0; i < 50 && !resumed; i++)
		resumed = resumed_once(t); /* and tickets of the new set resume again */
	assert_true(resumed);
	tlsq_tls_free(t);
}

/* ---- many handshakes while another thread reloads ---- */

#define CLIENTS  4
#define RELOADS  24
#define MAX_SEEN 4096

static struct {
	_Atomic int reloading; /* 1 until the reloader is done */
	uint64_t certs[RELOADS + 1];
	int ncerts;
	_Atomic int failed_reloads, handshakes, accepted;
} run;

struct client_arg {
	uint64_t seen[MAX_SEEN];
	int nseen, errors;
	char why[256];
};

static void *client_main(void *p)
{
	struct client_arg *a = p;
	/* Keep going until the reloader is done, then once more: that one
	 * starts after the last reload. */
	for (int last = 0; !last && a->nseen < MAX_SEEN;) {
		last = !atomic_load(&run.reloading);
		tlsq_conn *c = NULL;
		int rc = tlsq_connect(engine, addr, client, &c, 20000);
		if (rc != TLSQ_OK) {
			if (a->errors++ == 0)
				snprintf(a->why, sizeof a->why, "%s: %s", tlsq_strerror(rc),
				         tlsq_last_error());
		} else {
			uint64_t h = peer_cert(c);
			a->seen[a->nseen++] = h;
			/* A byte through the connection: the server end holds the
			 * key that goes with the certificate it showed. */
			if (tlsq_send(c, "x", 1, 10000) != 1)
				a->errors++;
			atomic_fetch_add(&run.handshakes, 1);
		}
		if (c)
			tlsq_conn_free(c);
	}
	return NULL;
}

static void *acceptor_main(void *p)
{
	(void)p;
	for (;;) {
		tlsq_conn *s = NULL;
		int rc = tlsq_accept(listener, &s, 200);
		if (rc == TLSQ_OK) {
			char b;
			(void)tlsq_recv(s, &b, 1, 10000);
			tlsq_conn_free(s);
			atomic_fetch_add(&run.accepted, 1);
		} else if (rc != TLSQ_ETIMEDOUT) {
			return NULL; /* the listener closed */
		}
	}
}

static int handshakes_at_least(void *p)
{
	return atomic_load(&run.handshakes) >= *(int *)p;
}

static void test_handshakes_during_reloads_each_see_one_whole_certificate(void **state)
{
	(void)state;
	/* Its own listener, so the acceptor can be stopped by closing it. */
	tlsq_listener *saved = listener;
	assert_int_equal(tlsq_listen(engine, "127.0.0.1:0", server, &listener), TLSQ_OK);
	char saved_addr[64];
	memcpy(saved_addr, addr, sizeof addr);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", tlsq_listener_port(listener));

	run.certs[run.ncerts++] = own_cert(server);
	atomic_store(&run.reloading, 1);
	static struct client_arg args[CLIENTS];
	ts_thread acc = ts_spawn(acceptor_main, NULL);
	ts_thread th[CLIENTS];
	for (int i = 0; i < CLIENTS; i++)
		th[i] = ts_spawn(client_main, &args[i]);

	for (int r = 0; r < RELOADS; r++) {
		/* Let some handshakes happen under the current certificate. */
		int want = atomic_load(&run.handshakes) + 3;
		assert_true(ts_wait_for(handshakes_at_least, &want, 60000));
		if (r % 4 == 3) {
			tlsq_tls_config bad;
			tlsq_tls_config_init(&bad, TLSQ_SERVER);
			bad.cert_file = "/nonexistent/cert.pem";
			bad.key_file = "/nonexistent/key.pem";
			assert_int_equal(tlsq_tls_reload(server, &bad), TLSQ_EINVAL);
			atomic_fetch_add(&run.failed_reloads, 1);
			continue;
		}
		tlsq_tls_config sc = server_cfg();
		assert_int_equal(tlsq_tls_reload(server, &sc), TLSQ_OK);
		run.certs[run.ncerts++] = own_cert(server);
	}
	atomic_store(&run.reloading, 0);
	for (int i = 0; i < CLIENTS; i++)
		ts_join(th[i]);
	tlsq_listener_close(listener);
	ts_join(acc);
	tlsq_listener_free(listener);
	listener = saved;
	memcpy(addr, saved_addr, sizeof addr);

	int total = 0, stale = 0;
	int used[RELOADS + 1] = {0};
	for (int i = 0; i < CLIENTS; i++) {
		if (args[i].errors)
			printf("client %d: %d errors, first: %s\n", i, args[i].errors, args[i].why);
		assert_int_equal(args[i].errors, 0);
		for (int j = 0; j < args[i].nseen; j++) {
			int k = 0;
			while (k < run.ncerts && run.certs[k] != args[i].seen[j])
				k++;
			if (k == run.ncerts)
				stale++;
			else
				used[k] = 1;
			total++;
		}
	}
	int distinct = 0;
	for (int k = 0; k < run.ncerts; k++)
		distinct += used[k];
	printf("%d handshakes, %d certificates (of %d generations) seen, %d reloads failed "
	       "as meant\n",
	       total, distinct, run.ncerts, atomic_load(&run.failed_reloads));
	assert_int_equal(stale, 0); /* every certificate shown was a whole one */
	/* The first generation served the handshakes before the first reload,
	 * the last one those after the last reload. */
	assert_true(used[0] && used[run.ncerts - 1]);
	/* The last certificate is what new handshakes get now. */
	tlsq_conn *c, *s;
	assert_true(pair(&c, &s) == run.certs[run.ncerts - 1]);
	tlsq_conn_free(c);
	tlsq_conn_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reload_new_handshakes_get_new_cert_live_connection_untouched),
	    cmocka_unit_test(test_failed_reload_keeps_old_cert_and_says_why),
	    cmocka_unit_test(test_client_reload_forgets_the_ticket_of_the_old_credentials),
	    cmocka_unit_test(test_handshakes_during_reloads_each_see_one_whole_certificate),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
