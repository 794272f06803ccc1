/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Certificate failures give TLSQ_ECERT and a reason a person understands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "support/support.h"

static tlsq_engine *engine;
static tlsq_tls *server, *trusting_client;
static tlsq_listener *listener;
static char addr[64], pem[8192];

static int setup(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	if (tlsq_engine_new(&cfg, &engine) != TLSQ_OK)
		return -1;
	ts_profiles(TLSQ_MODE_STREAM, &server, &trusting_client);
	tlsq_tls_cert_pem(server, pem, sizeof pem);
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
	tlsq_tls_free(trusting_client);
	return 0;
}

static int try_connect(const tlsq_tls_config *cc, char *why, size_t cap)
{
	tlsq_tls *t;
	assert_int_equal(tlsq_tls_new(cc, &t), TLSQ_OK);
	tlsq_conn *c = NULL;
	int rc = tlsq_connect(engine, addr, t, &c, 10000);
	snprintf(why, cap, "%s", tlsq_last_error());
	if (c)
		tlsq_conn_free(c);
	tlsq_tls_free(t);
	return rc;
}

static void test_unknown_ca_fails_with_ecert_and_reason(void **state)
{
	(void)state;
	/* Trust another self-signed certificate, not the server's. */
	tlsq_tls_config oc;
	tlsq_tls_config_init(&oc, TLSQ_SERVER);
	oc.self_signed = 1;
	tlsq_tls *other;
	assert_int_equal(tlsq_tls_new(&oc, &other), TLSQ_OK);
	char opem[8192];
	tlsq_tls_cert_pem(other, opem, sizeof opem);
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.ca_pem = opem;
	cc.server_name = "localhost";
	char why[512];
	assert_int_equal(try_connect(&cc, why, sizeof why), TLSQ_ECERT);
	printf("reason: %s\n", why);
	assert_non_null(strstr(why, "certificate verify failed"));
	assert_true(strstr(why, "self-signed") || strstr(why, "unknown CA"));
	tlsq_tls_free(other);
}

static void test_wrong_hostname_fails_with_ecert_naming_the_host(void **state)
{
	(void)state;
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.ca_pem = pem;
	cc.server_name = "example.org";
	char why[512];
	assert_int_equal(try_connect(&cc, why, sizeof why), TLSQ_ECERT);
	printf("reason: %s\n", why);
	assert_non_null(strstr(why, "hostname mismatch, wanted example.org"));
}

static void test_trusted_certificate_and_right_name_connects(void **state)
{
	(void)state;
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.ca_pem = pem;
	cc.server_name = "localhost";
	cc.alpn = "tlsq/1";
	char why[512];
	assert_int_equal(try_connect(&cc, why, sizeof why), TLSQ_OK);
}

static void test_verify_none_connects_to_anything(void **state)
{
	(void)state;
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.verify = TLSQ_VERIFY_NONE;
	char why[512];
	assert_int_equal(try_connect(&cc, why, sizeof why), TLSQ_OK);
}

static void test_bad_profiles_are_einval_with_a_reason(void **state)
{
	(void)state;
	tlsq_tls *t = (tlsq_tls *)1;
	tlsq_tls_config c;
	tlsq_tls_config_init(&c, TLSQ_SERVER);
	assert_int_equal(tlsq_tls_new(&c, &t), TLSQ_EINVAL);
	assert_null(t);
	assert_non_null(strstr(tlsq_last_error(), "server needs a certificate"));
	c.cert_file = "/nonexistent/cert.pem";
	c.key_file = "/nonexistent/key.pem";
	assert_int_equal(tlsq_tls_new(&c, &t), TLSQ_EINVAL);
	assert_non_null(strstr(tlsq_last_error(), "/nonexistent/cert.pem"));
	tlsq_tls_config_init(&c, TLSQ_CLIENT);
	c.min_version = TLSQ_TLS1_3;
	c.max_version = TLSQ_TLS1_2;
	assert_int_equal(tlsq_tls_new(&c, &t), TLSQ_EINVAL);
	c.min_version = 0x0301; /* TLS 1.0: below the floor */
	c.max_version = 0;
	assert_int_equal(tlsq_tls_new(&c, &t), TLSQ_EINVAL);
	assert_int_equal(tlsq_tls_new(NULL, &t), TLSQ_EINVAL);
}

/* The self-signed certificate names 127.0.0.1 and ::1 as iPAddress SANs: a
 * client that connects by IP address and trusts it verifies it (no
 * server_name: the address is what is checked). */
static void test_self_signed_verifies_by_ip_v4_and_v6(void **state)
{
	(void)state;
	tlsq_listener *l6;
	assert_int_equal(tlsq_listen(engine, "[::1]:0", server, &l6), TLSQ_OK);
	char a6[64];
	snprintf(a6, sizeof a6, "[::1]:%d", tlsq_listener_port(l6));
	const char *addrs[] = {addr, a6};
	for (int i = 0; i < 2; i++) {
		tlsq_tls_config cc;
		tlsq_tls_config_init(&cc, TLSQ_CLIENT);
		cc.ca_pem = pem;
		tlsq_tls *t;
		assert_int_equal(tlsq_tls_new(&cc, &t), TLSQ_OK);
		tlsq_conn *c = NULL;
		int rc = tlsq_connect(engine, addrs[i], t, &c, 10000);
		if (rc != TLSQ_OK)
			fail_msg("%s: %s", addrs[i], tlsq_last_error());
		tlsq_conn *s;
		assert_int_equal(tlsq_accept(i ? l6 : listener, &s, 10000), TLSQ_OK);
		tlsq_conn_free(s);
		tlsq_conn_free(c);
		tlsq_tls_free(t);
	}
	tlsq_listener_free(l6);
}

/* The same certificate at an address it does not name: ECERT, and the
 * reason lists the addresses it does name. */
static void test_ip_not_in_certificate_fails_with_ecert_listing_its_ips(void **state)
{
	(void)state;
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.ca_pem = pem;
	cc.server_name = "127.0.0.2"; /* connect to 127.0.0.1, check .2 */
	char why[512];
	assert_int_equal(try_connect(&cc, why, sizeof why), TLSQ_ECERT);
	printf("reason: %s\n", why);
	assert_non_null(strstr(why, "IP address mismatch, wanted 127.0.0.2"));
	assert_non_null(strstr(why, "127.0.0.1"));
	assert_non_null(strstr(why, "::1"));
}

/* Any P-256 key that is not the certificate's. */
static const char other_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNlH2zNzJSk5qT3jG\n"
    "gksD0Ig5SZuY8pvrC/QTKby9a4GhRANCAASdOEd9+6F6rffDos3JcOhYGzVkq9IF\n"
    "JMrBxuiii3roMO1Gpx0zzwxwfSp79BwzML0frOgyR4Ox/ndRhagxUdv+\n"
    "-----END PRIVATE KEY-----\n";

static void test_key_of_another_certificate_is_refused_with_a_reason(void **state)
{
	(void)state;
	tlsq_tls_config c;
	tlsq_tls_config_init(&c, TLSQ_SERVER);
	c.cert_pem = pem;
	c.key_pem = other_key_pem;
	tlsq_tls *t = (tlsq_tls *)1;
	assert_int_equal(tlsq_tls_new(&c, &t), TLSQ_EINVAL);
	assert_null(t);
	printf("reason: %s\n", tlsq_last_error());
	assert_non_null(strstr(tlsq_last_error(), "does not match the certificate"));
	/* A key that is not PEM at all, and a PEM that is no key. */
	c.key_pem = "not a key";
	assert_int_equal(tlsq_tls_new(&c, &t), TLSQ_EINVAL);
	assert_non_null(strstr(tlsq_last_error(), "is not PEM"));
	c.key_pem = pem;
	assert_int_equal(tlsq_tls_new(&c, &t), TLSQ_EINVAL);
	assert_non_null(
	    strstr(tlsq_last_error(), "holds no private key but a PEM \"CERTIFICATE\""));
	/* The self-signed certificate is neither expired nor a server's CA
	 * misuse worth a warning; a client profile has none either. */
	assert_null(tlsq_tls_warnings(server));
	assert_null(tlsq_tls_warnings(trusting_client));
	assert_null(tlsq_tls_warnings(NULL));
}

static void test_connect_errors_refused_and_unresolvable(void **state)
{
	(void)state;
	tlsq_conn *c;
	/* The listener's port + nothing: find a closed port by binding 0 and
	 * closing is racy; port 1 on loopback is closed on these machines. */
	assert_int_equal(tlsq_connect(engine, "127.0.0.1:1", trusting_client, &c, 5000),
	                 TLSQ_ECONNREFUSED);
	assert_non_null(strstr(tlsq_last_error(), "refused"));
	assert_int_equal(
	    tlsq_connect(engine, "no-such-host.invalid:443", trusting_client, &c, 5000),
	    TLSQ_EADDR);
	assert_int_equal(tlsq_connect(engine, "127.0.0.1", trusting_client, &c, 5000), TLSQ_EINVAL);
	assert_int_equal(tlsq_connect(engine, "127.0.0.1:99999", trusting_client, &c, 5000),
	                 TLSQ_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unknown_ca_fails_with_ecert_and_reason),
	    cmocka_unit_test(test_wrong_hostname_fails_with_ecert_naming_the_host),
	    cmocka_unit_test(test_trusted_certificate_and_right_name_connects),
	    cmocka_unit_test(test_verify_none_connects_to_anything),
	    cmocka_unit_test(test_bad_profiles_are_einval_with_a_reason),
	    cmocka_unit_test(test_connect_errors_refused_and_unresolvable),
	    cmocka_unit_test(test_self_signed_verifies_by_ip_v4_and_v6),
	    cmocka_unit_test(test_ip_not_in_certificate_fails_with_ecert_listing_its_ips),
	    cmocka_unit_test(test_key_of_another_certificate_is_refused_with_a_reason),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
