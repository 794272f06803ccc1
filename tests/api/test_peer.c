/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The peer's certificates (tlsq_conn_peer_cert, the peer_* fields of
 * tlsq_conn_info) and pinning (tlsq_tls_config.pins), for clients and for
 * servers that ask for a client certificate. The fingerprints are checked
 * against what the openssl command computes from the same PEM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/support.h"

static char server_pem[8192];

struct env {
	tlsq_engine *e;
	tlsq_tls *srv;
	tlsq_listener *l;
	char addr[64];
};

/* A self-signed server (optionally pinning its clients). */
static void env_open(struct env *v, const char *client_pins)
{
	tlsq_engine_config ec;
	ts_engine_config(&ec);
	assert_int_equal(tlsq_engine_new(&ec, &v->e), TLSQ_OK);
	tlsq_tls_config sc;
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	sc.self_signed = 1;
	sc.pins = client_pins;
	assert_int_equal(tlsq_tls_new(&sc, &v->srv), TLSQ_OK);
	assert_true(tlsq_tls_cert_pem(v->srv, server_pem, sizeof server_pem) > 0);
	assert_int_equal(tlsq_listen(v->e, "127.0.0.1:0", v->srv, &v->l), TLSQ_OK);
	snprintf(v->addr, sizeof v->addr, "127.0.0.1:%d", tlsq_listener_port(v->l));
}

static void env_close(struct env *v)
{
	tlsq_listener_free(v->l);
	tlsq_engine_free(v->e);
	tlsq_tls_free(v->srv);
}

/* A client profile: trusts the server by CA (ca = 1) or by pins alone. */
static int client_new(tlsq_tls **out, int ca, const char *pins, int own_cert)
{
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	if (ca) {
		cc.ca_pem = server_pem;
		cc.server_name = "localhost";
	} else {
		cc.verify = TLSQ_VERIFY_NONE;
	}
	cc.pins = pins;
	cc.self_signed = own_cert;
	return tlsq_tls_new(&cc, out);
}

/* Runs `cmd` with `input` on stdin; its first output line into out. */
static int run(const char *cmd, const char *input, char *out, size_t cap)
{
	char path[] = "/tmp/tlsq-peer-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	if (write(fd, input, strlen(input)) != (ssize_t)strlen(input)) {
		close(fd);
		return -1;
	}
	close(fd);
	char full[1024];
	snprintf(full, sizeof full, "( %s ) < %s", cmd, path);
	FILE *f = popen(full, "r");
	out[0] = 0;
	if (f == NULL || fgets(out, (int)cap, f) == NULL)
		out[0] = 0;
	int rc = f ? pclose(f) : -1;
	unlink(path);
	out[strcspn(out, "\n")] = 0;
	return rc;
}

static void test_client_sees_the_servers_certificate_sans_and_fingerprints(void **state)
{
	(void)state;
	struct env v;
	env_open(&v, NULL);
	tlsq_tls *ct;
	assert_int_equal(client_new(&ct, 1, NULL, 0), TLSQ_OK);
	tlsq_conn *c;
	assert_int_equal(tlsq_connect(v.e, v.addr, ct, &c, 10000), TLSQ_OK);

	/* The leaf, as PEM, is exactly the server's own certificate. */
	ssize_t need = tlsq_conn_peer_cert(c, 0, 1, NULL, 0);
	assert_true(need > 100);
	char pem[8192];
	assert_int_equal(tlsq_conn_peer_cert(c, 0, 1, pem, (size_t)need), TLSQ_EMSGSIZE); /* NUL */
	assert_int_equal(tlsq_conn_peer_cert(c, 0, 1, pem, sizeof pem), need);
	assert_string_equal(pem, server_pem);
	unsigned char der[4096];
	ssize_t dlen = tlsq_conn_peer_cert(c, 0, 0, der, sizeof der);
	assert_true(dlen > 100 && der[0] == 0x30); /* a DER SEQUENCE */
	assert_int_equal(tlsq_conn_peer_cert(c, 0, 0, der, (size_t)dlen - 1), TLSQ_EMSGSIZE);
	/* Verified: the self-signed chain is the leaf alone. */
	assert_int_equal(tlsq_conn_peer_cert(c, 1, 0, der, sizeof der), TLSQ_EINVAL);
	assert_int_equal(tlsq_conn_peer_cert(c, -1, 0, der, sizeof der), TLSQ_EINVAL);

	struct tlsq_conn_info ci;
	assert_int_equal(tlsq_conn_info(c, &ci), TLSQ_OK);
	/* wolfSSL lists them last first: compare as a set. */
	assert_int_equal(strlen(ci.peer_sans), strlen("DNS:localhost, IP:127.0.0.1, IP:::1"));
	assert_non_null(strstr(ci.peer_sans, "DNS:localhost"));
	assert_non_null(strstr(ci.peer_sans, "IP:127.0.0.1"));
	assert_non_null(strstr(ci.peer_sans, "IP:::1"));
	assert_int_equal(strlen(ci.peer_sha256), 64);
	assert_int_equal(strlen(ci.peer_spki_sha256), 44);

	/* The same numbers as OpenSSL computes from the PEM. */
	char line[256], want[128];
	assert_int_equal(run("openssl x509 -noout -fingerprint -sha256", pem, line, sizeof line),
	                 0);
	/* "sha256 Fingerprint=AB:CD:..." */
	const char *fp = strchr(line, '=');
	assert_non_null(fp);
	size_t w = 0;
	for (fp++; *fp && w < sizeof want - 1; fp++)
		if (*fp != ':')
			want[w++] = (char)(*fp >= 'A' && *fp <= 'F' ? *fp - 'A' + 'a' : *fp);
	want[w] = 0;
	assert_string_equal(ci.peer_sha256, want);
	assert_int_equal(run("openssl x509 -noout -pubkey | openssl pkey -pubin -outform der | "
	                     "openssl dgst -sha256 -binary | base64",
	                     pem, line, sizeof line),
	                 0);
	assert_string_equal(ci.peer_spki_sha256, line);

	/* The server saw no client certificate. */
	tlsq_conn *s;
	assert_int_equal(tlsq_accept(v.l, &s, 10000), TLSQ_OK);
	assert_int_equal(tlsq_conn_info(s, &ci), TLSQ_OK);
	assert_string_equal(ci.peer_sha256, "");
	assert_int_equal(tlsq_conn_peer_cert(s, 0, 1, pem, sizeof pem), TLSQ_EINVAL);
	tlsq_conn_free(s);
	tlsq_conn_free(c);
	tlsq_tls_free(ct);
	env_close(&v);
}

/* The server's key pin and certificate pin, from a first connection. */
static void server_pins(struct env *v, char *spki, char *cert_hex_colons)
{
	tlsq_tls *ct;
	assert_int_equal(client_new(&ct, 1, NULL, 0), TLSQ_OK);
	tlsq_conn *c;
	assert_int_equal(tlsq_connect(v->e, v->addr, ct, &c, 10000), TLSQ_OK);
	struct tlsq_conn_info ci;
	tlsq_conn_info(c, &ci);
	sprintf(spki, "sha256//%s", ci.peer_spki_sha256);
	char *o = cert_hex_colons;
	for (int i = 0; i < 64; i += 2)
		o += sprintf(o, "%s%c%c", i ? ":" : "",
		             ci.peer_sha256[i] - 32 * (ci.peer_sha256[i] >= 'a'),
		             ci.peer_sha256[i + 1] - 32 * (ci.peer_sha256[i + 1] >= 'a'));
	tlsq_conn_free(c);
	tlsq_tls_free(ct);
	tlsq_conn *s;
	assert_int_equal(tlsq_accept(v->l, &s, 10000), TLSQ_OK);
	tlsq_conn_free(s);
}

static void test_client_pins_accept_the_right_key_and_refuse_another(void **state)
{
	(void)state;
	struct env v;
	env_open(&v, NULL);
	char spki[64], hexpin[128];
	server_pins(&v, spki, hexpin);
	const char *wrong = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	char list[256];
	struct {
		int ca;
		const char *pins;
		int want;
	} cases[] = {
	    {1, spki, TLSQ_OK},     /* verified and pinned */
	    {0, spki, TLSQ_OK},     /* pin alone trusts a self-signed server */
	    {0, hexpin, TLSQ_OK},   /* the certificate's hash, openssl's spelling */
	    {0, list, TLSQ_OK},     /* any one of several */
	    {0, wrong, TLSQ_ECERT}, /* another key */
	    {1, wrong, TLSQ_ECERT}, /* verification passes, the pin does not */
	};
	snprintf(list, sizeof list, "%s, %s", wrong, spki);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		tlsq_tls *ct;
		assert_int_equal(client_new(&ct, cases[i].ca, cases[i].pins, 0), TLSQ_OK);
		tlsq_conn *c = NULL;
		int rc = tlsq_connect(v.e, v.addr, ct, &c, 10000);
		if (rc != cases[i].want)
			fprintf(stderr, "case %zu: %d (%s)\n", i, rc, tlsq_last_error());
		assert_int_equal(rc, cases[i].want);
		if (rc == TLSQ_OK) {
			tlsq_conn *s;
			assert_int_equal(tlsq_accept(v.l, &s, 10000), TLSQ_OK);
			/* Data moves only after the pin matched. */
			assert_int_equal(tlsq_send(c, "ok", 2, 5000), 2);
			char b[2];
			assert_int_equal(tlsq_recv(s, b, 2, 10000), 2);
			tlsq_conn_free(s);
		} else {
			assert_null(c);
			assert_non_null(strstr(tlsq_last_error(), "certificate pin mismatch"));
			assert_non_null(strstr(tlsq_last_error(), spki + 8)); /* names the key */
		}
		tlsq_conn_free(c);
		tlsq_tls_free(ct);
	}
	env_close(&v);
}

static void test_bad_pin_syntax_fails_the_profile(void **state)
{
	(void)state;
	const char *bad[] = {"sha256//short", "abcd", "sha1//AAAA",
	                     "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	                     "zz" /* not hex */};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		tlsq_tls *t = NULL;
		assert_int_equal(client_new(&t, 0, bad[i], 0), TLSQ_EINVAL);
		assert_null(t);
		assert_non_null(strstr(tlsq_last_error(), "pin '"));
	}
}

static void test_pinned_server_requires_and_shows_the_client_identity(void **state)
{
	(void)state;
	/* First a client with its own (self-signed) certificate, to learn its
	 * key: an mTLS server that pins nothing yet sees no certificate, so
	 * take the pin from a throwaway server that pins a wrong key. */
	tlsq_tls *ct;
	assert_int_equal(client_new(&ct, 0, NULL, 1), TLSQ_OK);
	char cpem[8192];
	assert_true(tlsq_tls_cert_pem(ct, cpem, sizeof cpem) > 0);
	char line[256], pin[300];
	assert_int_equal(run("openssl x509 -noout -pubkey | openssl pkey -pubin -outform der | "
	                     "openssl dgst -sha256 -binary | base64",
	                     cpem, line, sizeof line),
	                 0);
	snprintf(pin, sizeof pin, "sha256//%s", line);

	struct env v;
	env_open(&v, pin);
	tlsq_conn *c, *s;
	assert_int_equal(tlsq_connect(v.e, v.addr, ct, &c, 10000), TLSQ_OK);
	assert_int_equal(tlsq_accept(v.l, &s, 10000), TLSQ_OK);
	struct tlsq_conn_info si;
	tlsq_conn_info(s, &si);
	assert_string_equal(si.peer_spki_sha256, line);
	assert_true(strstr(si.peer_subject, "localhost") != NULL);
	char got[8192];
	assert_true(tlsq_conn_peer_cert(s, 0, 1, got, sizeof got) > 0);
	assert_string_equal(got, cpem);
	tlsq_conn_free(s);
	tlsq_conn_free(c);

	/* A client without a certificate, and one with another key: never
	 * accepted; recorded as failures with the reason. */
	tlsq_tls *nocert, *other;
	assert_int_equal(client_new(&nocert, 0, NULL, 0), TLSQ_OK);
	assert_int_equal(client_new(&other, 0, NULL, 1), TLSQ_OK);
	tlsq_conn *x = NULL;
	tlsq_connect(v.e, v.addr, nocert, &x, 10000);
	tlsq_conn_free(x);
	x = NULL;
	tlsq_connect(v.e, v.addr, other, &x, 10000);
	tlsq_conn_free(x);
	struct tlsq_accept_failure f[2];
	uint64_t seen = 0;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(tlsq_listener_next_failure(v.l, seen, &f[i], 10000), TLSQ_OK);
		seen = f[i].seq;
	}
	assert_int_equal(tlsq_accept(v.l, &s, 0), TLSQ_EAGAIN);
	int pin_failures = 0;
	for (int i = 0; i < 2; i++)
		pin_failures += strstr(f[i].detail, "certificate pin") != NULL;
	assert_true(pin_failures >= 1);
	tlsq_tls_free(nocert);
	tlsq_tls_free(other);
	tlsq_tls_free(ct);
	env_close(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_client_sees_the_servers_certificate_sans_and_fingerprints),
	    cmocka_unit_test(test_client_pins_accept_the_right_key_and_refuse_another),
	    cmocka_unit_test(test_bad_pin_syntax_fails_the_profile),
	    cmocka_unit_test(test_pinned_server_requires_and_shows_the_client_identity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
