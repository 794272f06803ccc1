/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Several certificates chosen by SNI (tlsq_tls_config.sni_certs): each name
 * gets its certificate (exact, wildcard for one label, any case), a name
 * that matches nothing and a client without SNI get the profile's own, in
 * TLS 1.3 and 1.2; tlsq_tls_reload replaces all of them at once; bad entries
 * fail tlsq_tls_new and tlsq_tls_reload with the reason, and a failed
 * reload keeps every certificate serving. Certificates from
 * tests/pki/make-pki.sh (sni-a, sni-b, server).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/support.h"

static tlsq_engine *engine;
static tlsq_tls *server;
static tlsq_listener *listener;
static char addr[64], pki[64], path[16][160];
static int npath;

/* dir/NAME in a buffer that lives for the test. */
static const char *pf(const char *name)
{
	snprintf(path[npath % 16], sizeof path[0], "%s/%s", pki, name);
	return path[npath++ % 16];
}

static tlsq_tls_config server_cfg(const char *own, tlsq_sni_cert *e, int n)
{
	tlsq_tls_config sc;
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	char pem[64], key[64];
	snprintf(pem, sizeof pem, "%s.pem", own);
	snprintf(key, sizeof key, "%s.key", own);
	sc.cert_file = pf(pem);
	sc.key_file = pf(key);
	sc.sni_certs = e;
	sc.n_sni_certs = n;
	return sc;
}

static int setup(void **state)
{
	(void)state;
	snprintf(pki, sizeof pki, "/tmp/tlsq-sni-XXXXXX");
	if (mkdtemp(pki) == NULL)
		return -1;
	char cmd[512];
	snprintf(cmd, sizeof cmd, "sh %s/tests/pki/make-pki.sh %s >/dev/null", TLSQ_SOURCE_DIR,
	         pki);
	if (system(cmd) != 0)
		return -1;
	/* sni-a's key encrypted (PKCS#8) and traditional (PEM Proc-Type). */
	snprintf(cmd, sizeof cmd,
	         "cd %s && openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:sekrit -in sni-a.key "
	         "-out sni-a-p8.key && openssl ec -aes256 -passout pass:sekrit -in sni-a.key "
	         "-out sni-a-trad.key 2>/dev/null",
	         pki);
	if (system(cmd) != 0)
		return -1;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	if (tlsq_engine_new(&cfg, &engine) != TLSQ_OK)
		return -1;
	tlsq_sni_cert e[2] = {
	    {"a.tlsq.test", pf("sni-a.pem"), pf("sni-a.key"), NULL},
	    {"b.tlsq.test, *.b.tlsq.test", pf("sni-b.pem"), pf("sni-b.key"), NULL},
	};
	tlsq_tls_config sc = server_cfg("server", e, 2);
	if (tlsq_tls_new(&sc, &server) != TLSQ_OK) {
		fprintf(stderr, "tlsq_tls_new: %s\n", tlsq_last_error());
		return -1;
	}
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
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", pki);
	return system(cmd) == 0 ? 0 : -1;
}

/*
 * One handshake to the listener with SNI `name` ("127.0.0.1": none), the
 * client verifying the chain and the name against the test CA when
 * `verify`; the subject of the certificate the client saw into subj. Both
 * sides also agree on one byte each way.
 */
static void served(const char *name, int verify, int max_version, char *subj, size_t cap)
{
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.server_name = name;
	cc.verify = verify ? TLSQ_VERIFY_PEER : TLSQ_VERIFY_NONE;
	cc.ca_file = pf("ca.pem");
	cc.session_resumption = 0; /* a resumed session shows no certificate */
	cc.max_version = max_version;
	tlsq_tls *t;
	assert_int_equal(tlsq_tls_new(&cc, &t), TLSQ_OK);
	tlsq_conn *c, *s;
	int rc = tlsq_connect(engine, addr, t, &c, 10000);
	if (rc != TLSQ_OK)
		fail_msg("connect with SNI %s: %d %s", name, rc, tlsq_last_error());
	assert_int_equal(tlsq_accept(listener, &s, 10000), TLSQ_OK);
	assert_int_equal(tlsq_send(c, "q", 1, 10000), 1);
	char b = 0;
	assert_int_equal(tlsq_recv(s, &b, 1, 10000), 1);
	assert_int_equal(tlsq_send(s, "r", 1, 10000), 1);
	assert_int_equal(tlsq_recv(c, &b, 1, 10000), 1);
	assert_int_equal(b, 'r');
	struct tlsq_conn_info ci;
	assert_int_equal(tlsq_conn_info(c, &ci), TLSQ_OK);
	snprintf(subj, cap, "%s", ci.peer_subject);
	printf("SNI %-18s TLS 1.%d -> %s\n", name, max_version == TLSQ_TLS1_2 ? 2 : 3, subj);
	tlsq_conn_free(c);
	tlsq_conn_free(s);
	tlsq_tls_free(t);
}

static void expect(const char *name, int verify, const char *subject)
{
	char subj[256];
	int versions[2] = {TLSQ_TLS1_3, TLSQ_TLS1_2};
	for (int v = 0; v < 2; v++) {
		served(name, verify, versions[v], subj, sizeof subj);
		assert_string_equal(subj, subject);
	}
}

static void test_each_name_gets_its_certificate(void **state)
{
	(void)state;
	/* verify = 1: the chain and the name check pass, so the certificate
	 * is the one for that name and its key signed the handshake. */
	expect("a.tlsq.test", 1, "/CN=a.tlsq.test");
	expect("b.tlsq.test", 1, "/CN=b.tlsq.test");
	expect("x.b.tlsq.test", 1, "/CN=b.tlsq.test");
	expect("A.TLSQ.Test", 1, "/CN=a.tlsq.test");
}

static void test_unknown_name_and_no_sni_get_the_default(void **state)
{
	(void)state;
	expect("127.0.0.1", 1, "/CN=localhost"); /* an IP literal sends no SNI */
	expect("localhost", 1, "/CN=localhost");
	expect("nothing.example", 0, "/CN=localhost");
	expect("y.x.b.tlsq.test", 0, "/CN=localhost"); /* "*." is one label */
	expect("tlsq.test", 0, "/CN=localhost");
}

static void test_reload_replaces_all_certificates(void **state)
{
	(void)state;
	/* Every certificate moves: the default becomes sni-b, a gets server,
	 * b gets sni-a. */
	tlsq_sni_cert e[2] = {
	    {"a.tlsq.test", pf("server.pem"), pf("server.key"), NULL},
	    {"b.tlsq.test", pf("sni-a.pem"), pf("sni-a.key"), NULL},
	};
	tlsq_tls_config sc = server_cfg("sni-b", e, 2);
	assert_int_equal(tlsq_tls_reload(server, &sc), TLSQ_OK);
	expect("a.tlsq.test", 0, "/CN=localhost");
	expect("b.tlsq.test", 0, "/CN=a.tlsq.test");
	expect("x.b.tlsq.test", 0, "/CN=b.tlsq.test"); /* the wildcard is gone */
	expect("127.0.0.1", 0, "/CN=b.tlsq.test");

	/* A reload without sni_certs serves one certificate for all. */
	sc = server_cfg("server", NULL, 0);
	assert_int_equal(tlsq_tls_reload(server, &sc), TLSQ_OK);
	expect("a.tlsq.test", 0, "/CN=localhost");
	expect("b.tlsq.test", 0, "/CN=localhost");

	/* And back to the start. */
	tlsq_sni_cert back[2] = {
	    {"a.tlsq.test", pf("sni-a.pem"), pf("sni-a.key"), NULL},
	    {"b.tlsq.test, *.b.tlsq.test", pf("sni-b.pem"), pf("sni-b.key"), NULL},
	};
	sc = server_cfg("server", back, 2);
	assert_int_equal(tlsq_tls_reload(server, &sc), TLSQ_OK);
	expect("a.tlsq.test", 1, "/CN=a.tlsq.test");
	expect("x.b.tlsq.test", 1, "/CN=b.tlsq.test");
}

static void bad(tlsq_sni_cert *e, int n, const char *reason)
{
	tlsq_tls_config sc = server_cfg("server", e, n);
	tlsq_tls *t = NULL;
	assert_int_equal(tlsq_tls_new(&sc, &t), TLSQ_EINVAL);
	assert_null(t);
	printf("new:    %s\n", tlsq_last_error());
	assert_non_null(strstr(tlsq_last_error(), reason));
	assert_int_equal(tlsq_tls_reload(server, &sc), TLSQ_EINVAL);
	printf("reload: %s\n", tlsq_last_error());
	assert_non_null(strstr(tlsq_last_error(), reason));
}

static void test_bad_entries_fail_and_a_failed_reload_keeps_serving(void **state)
{
	(void)state;
	tlsq_sni_cert e = {"a.tlsq.test", "/nonexistent/tlsq-sni.pem", pf("sni-a.key"), NULL};
	bad(&e, 1, "/nonexistent/tlsq-sni.pem");
	e = (tlsq_sni_cert){"a.tlsq.test", pf("sni-a.pem"), pf("sni-b.key"), NULL};
	bad(&e, 1, "does not match");
	e = (tlsq_sni_cert){"a.*.test", pf("sni-a.pem"), pf("sni-a.key"), NULL};
	bad(&e, 1, "bad name \"a.*.test\"");
	e = (tlsq_sni_cert){"", pf("sni-a.pem"), pf("sni-a.key"), NULL};
	bad(&e, 1, "no names");
	bad(NULL, 1, "sni_certs");

	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	e = (tlsq_sni_cert){"a.tlsq.test", pf("sni-a.pem"), pf("sni-a.key"), NULL};
	cc.sni_certs = &e;
	cc.n_sni_certs = 1;
	cc.verify = TLSQ_VERIFY_NONE;
	tlsq_tls *t = NULL;
	assert_int_equal(tlsq_tls_new(&cc, &t), TLSQ_EINVAL);
	assert_non_null(strstr(tlsq_last_error(), "for servers"));

	/* Nothing changed: the profile still serves all three. */
	expect("a.tlsq.test", 1, "/CN=a.tlsq.test");
	expect("x.b.tlsq.test", 1, "/CN=b.tlsq.test");
	expect("127.0.0.1", 1, "/CN=localhost");
}

static void test_encrypted_keys(void **state)
{
	(void)state;
	const char *keys[] = {"sni-a-p8.key", "sni-a-trad.key"};
	for (int i = 0; i < 2; i++) {
		tlsq_sni_cert e[2] = {
		    {"a.tlsq.test", pf("sni-a.pem"), pf(keys[i]), "sekrit"},
		    {"b.tlsq.test, *.b.tlsq.test", pf("sni-b.pem"), pf("sni-b.key"), NULL},
		};
		tlsq_tls_config sc = server_cfg("server", e, 2);
		assert_int_equal(tlsq_tls_reload(server, &sc), TLSQ_OK);
		expect("a.tlsq.test", 1, "/CN=a.tlsq.test");
		e[0].key_password = NULL;
		bad(e, 2, "encrypted");
		e[0].key_password = "wrong";
		bad(e, 2, "password");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_name_gets_its_certificate),
	    cmocka_unit_test(test_unknown_name_and_no_sni_get_the_default),
	    cmocka_unit_test(test_bad_entries_fail_and_a_failed_reload_keeps_serving),
	    cmocka_unit_test(test_reload_replaces_all_certificates),
	    cmocka_unit_test(test_encrypted_keys),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
