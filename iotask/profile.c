/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * profile.c - TLS profiles (tlsq_tls_new, tlsq_tls_reload, tlsq_tls_free
 * and the calls that read a profile) and their credential sets: what a
 * profile derives from its configuration (the WOLFSSL_CTX with versions,
 * ciphers, groups, own certificate and key, trusted CAs, verification mode,
 * pins, hook) sits in one reference-counted struct tlsq__cred, built whole
 * on an application thread and swapped in without a lock (see the
 * invariants at the top of tls.c). Reading files and keys is credload.c's;
 * pins and the verify callback are peercert.c's. Part of the wolfSSL
 * binding (tls_int.h).
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tls_int.h"

#define DEFAULT_CIPHERS                                                                            \
	"TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"                                         \
	"TLS13-CHACHA20-POLY1305-SHA256:"                                                          \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* ------------------------------------------------------------------------ */
/* Credential sets                                                           */
/* ------------------------------------------------------------------------ */

void tlsq__cred_unref(struct tlsq__cred *k)
{
	if (k == NULL || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (k->ctx)
		wolfSSL_CTX_free(k->ctx);
	free(k->cert_pem);
	free(k->warnings);
	free(k->pins);
	for (int i = 0; i < k->nsni; i++) {
		struct tlsq__sni *e = &k->sni[i];
		for (int j = 0; j < e->nnames; j++)
			free(e->names[j]);
		free(e->names);
		free(e->cert_pem);
		if (e->key) {
			memset(e->key, 0, (size_t)e->key_len);
			__asm__ __volatile__("" : : "r"(e->key) : "memory");
			free(e->key);
		}
	}
	free(k->sni);
	free(k);
}

/* The profile's current credentials, with a reference for the caller.
 * Lock-free, because the IO thread calls it and must never wait for an
 * application thread: the reader count brackets the load and the increment,
 * and cred_swap waits (on the application thread) until no reader is inside
 * before it drops the old set's reference. All seq_cst: a reader that
 * enters after cred_swap saw readers == 0 is ordered after the exchange and
 * loads the new set; one that entered before holds readers up until its
 * reference on whichever set it loaded is taken. */
struct tlsq__cred *tlsq__cred_get(const struct tlsq_tls *tc)
{
	struct tlsq_tls *t = (struct tlsq_tls *)tc;
	atomic_fetch_add(&t->cred_readers, 1);
	struct tlsq__cred *k = atomic_load(&t->cred);
	atomic_fetch_add(&k->refs, 1);
	atomic_fetch_sub(&t->cred_readers, 1);
	return k;
}

/* Installs k, then drops the profile's reference on the set it replaces.
 * Application thread only (tlsq_tls_reload). */
static void cred_swap(struct tlsq_tls *t, struct tlsq__cred *k)
{
	struct tlsq__cred *old = atomic_exchange(&t->cred, k);
	while (atomic_load(&t->cred_readers) != 0)
		sched_yield(); /* a reader is two instructions from done */
	tlsq__cred_unref(old);
}

/* ------------------------------------------------------------------------ */
/* Profiles                                                                  */
/* ------------------------------------------------------------------------ */

/* Builds the credentials k (k->ctx already made) from cfg, for profile p:
 * the versions and session policy are p's, fixed at tlsq_tls_new. */
static int tls_configure(const struct tlsq_tls *p, struct tlsq__cred *t, const tlsq_tls_config *cfg,
                         WOLFSSL_CTX *ctx)
{
	int client = p->role == TLSQ_CLIENT;
	if (wolfSSL_CTX_SetMinVersion(ctx, p->min_version == TLSQ_TLS1_3
	                                       ? WOLFSSL_TLSV1_3
	                                       : WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
		tlsq__set_last_error("cannot set the minimum TLS version");
		return TLSQ_EINVAL;
	}
	if (p->max_version == TLSQ_TLS1_2 &&
	    wolfSSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) != WOLFSSL_SUCCESS) {
		tlsq__set_last_error("cannot set the maximum TLS version");
		return TLSQ_EINVAL;
	}
	/* OPENSSL_EXTRA turns AUTO_RETRY on: each WANT_READ would re-call our
	 * recv callback 11 times (note §1). */
	wolfSSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
	if (wolfSSL_CTX_set_cipher_list(ctx, cfg->ciphers ? cfg->ciphers : DEFAULT_CIPHERS) !=
	    WOLFSSL_SUCCESS) {
		tlsq__set_last_error("no usable cipher in \"%s\"",
		                     cfg->ciphers ? cfg->ciphers : DEFAULT_CIPHERS);
		return TLSQ_EINVAL;
	}
	if (p->max_version != TLSQ_TLS1_2) {
		int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1};
		if (wolfSSL_CTX_set_groups(ctx, groups, 3) != WOLFSSL_SUCCESS) {
			tlsq__set_last_error("cannot set the key exchange groups");
			return TLSQ_EINVAL;
		}
	}
	if (!p->session_resumption && !client)
		wolfSSL_CTX_no_ticket_TLSv13(ctx);
	wolfSSL_CTX_SetIORecv(ctx, tlsq__tls_recv_cb);
	wolfSSL_CTX_SetIOSend(ctx, tlsq__tls_send_cb);

	/* Own certificate and key. */
	if (cfg->self_signed) {
		int rc = tlsq__make_self_signed(ctx, &t->cert_pem);
		if (rc)
			return rc;
	} else if (cfg->cert_file || cfg->cert_pem) {
		if (cfg->cert_file) {
			if (wolfSSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) !=
			    WOLFSSL_SUCCESS) {
				tlsq__cert_load_error(cfg->cert_file);
				return TLSQ_EINVAL;
			}
			t->cert_pem = tlsq__read_text_file(cfg->cert_file);
		} else {
			if (wolfSSL_CTX_use_certificate_chain_buffer(
			        ctx, (const unsigned char *)cfg->cert_pem,
			        (long)strlen(cfg->cert_pem)) != WOLFSSL_SUCCESS) {
				tlsq__set_last_error("cert_pem is not a PEM certificate");
				return TLSQ_EINVAL;
			}
			t->cert_pem = strdup(cfg->cert_pem);
		}
		int rc = tlsq__tls_load_key(cfg, ctx);
		if (rc)
			return rc;
		if (t->cert_pem)
			tlsq__tls_cert_warnings(t, p->role,
			                        cfg->cert_file ? cfg->cert_file : "(cert_pem)");
	} else if (!client) {
		tlsq__set_last_error("a server needs a certificate and key (cert_file/key_file, "
		                     "cert_pem/key_pem) or self_signed");
		return TLSQ_EINVAL;
	}

	/* Trust and verification. */
	int verify = cfg->verify;
	if (verify == TLSQ_VERIFY_DEFAULT)
		verify = client ? TLSQ_VERIFY_PEER : TLSQ_VERIFY_NONE;
	if (client && verify == TLSQ_VERIFY_REQUIRE)
		verify = TLSQ_VERIFY_PEER;
	t->verify = (tlsq_verify)verify;
	int rc = tlsq__tls_pins_load(t, cfg->pins);
	if (rc)
		return rc;
	/* A server with pins asks for a client certificate; without
	 * verification it trusts the pin alone. */
	t->hook = cfg->verify_hook;
	t->hook_arg = cfg->verify_hook_arg;
	t->pin_only = !client && (t->npins || t->hook) && verify == TLSQ_VERIFY_NONE;
	int have_ca = 0;
	if (cfg->ca_file || cfg->ca_dir) {
		if (wolfSSL_CTX_load_verify_locations(ctx, cfg->ca_file, cfg->ca_dir) !=
		    WOLFSSL_SUCCESS) {
			tlsq__ca_load_error(cfg->ca_file, cfg->ca_dir);
			return TLSQ_EINVAL;
		}
		have_ca = 1;
	}
	if (cfg->ca_pem) {
		if (wolfSSL_CTX_load_verify_buffer(ctx, (const unsigned char *)cfg->ca_pem,
		                                   (long)strlen(cfg->ca_pem),
		                                   WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
			tlsq__set_last_error("ca_pem holds no usable PEM certificate");
			return TLSQ_EINVAL;
		}
		have_ca = 1;
	}
	if (verify != TLSQ_VERIFY_NONE && !have_ca) {
		if (client &&
		    wolfSSL_CTX_load_verify_locations(ctx, SYSTEM_CA_FILE, NULL) == WOLFSSL_SUCCESS)
			have_ca = 1;
		if (!have_ca) {
			tlsq__set_last_error("verification is on but no CA was given (ca_file, "
			                     "ca_dir or ca_pem) and %s is not readable",
			                     SYSTEM_CA_FILE);
			return TLSQ_EINVAL;
		}
	}
	int mode = WOLFSSL_VERIFY_NONE;
	if (verify == TLSQ_VERIFY_PEER)
		mode = WOLFSSL_VERIFY_PEER;
	else if (verify == TLSQ_VERIFY_REQUIRE)
		mode = WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	if (!client && (t->npins || t->hook)) {
		mode = WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		/* A resumed session carries no certificate to check: a pinned
		 * server never resumes (a ticket could outlive a pin change; and
		 * TLS 1.3 tickets go out before the hook has judged the client). */
		wolfSSL_CTX_no_ticket_TLSv13(ctx);
		wolfSSL_CTX_NoTicketTLSv12(ctx);
		wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
	}
	wolfSSL_CTX_set_verify(ctx, mode, mode == WOLFSSL_VERIFY_NONE ? NULL : tlsq__tls_verify_cb);
	return 0;
}

/* see tlsq.h */
void tlsq_tls_config_init(tlsq_tls_config *cfg, tlsq_role role)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof *cfg);
	cfg->role = role;
	cfg->mode = TLSQ_MODE_STREAM;
	cfg->verify = TLSQ_VERIFY_DEFAULT;
	cfg->min_version = TLSQ_TLS1_2;
	cfg->max_version = TLSQ_TLS1_3;
	cfg->session_resumption = 1;
}

/* A PEM certificate's subject, expiry and key (type and bits); 0 or -1. */
static int pem_summary(const char *pem, char *subject, size_t cap, int64_t *not_after, int *key_id,
                       int *key_bits)
{
	if (pem == NULL)
		return -1;
	WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(
	    (const unsigned char *)pem, (int)strlen(pem), WOLFSSL_FILETYPE_PEM);
	if (x == NULL)
		return -1;
	tlsq__cert_subject(x, subject, (int)cap);
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const WOLFSSL_ASN1_TIME *na = wolfSSL_X509_get_notAfter(x);
	if (na && wolfSSL_ASN1_TIME_to_tm(na, &tm) == WOLFSSL_SUCCESS)
		*not_after = (int64_t)timegm(&tm);
	WOLFSSL_EVP_PKEY *pk = wolfSSL_X509_get_pubkey(x);
	*key_id = pk ? wolfSSL_EVP_PKEY_id(pk) : 0;
	*key_bits = pk ? wolfSSL_EVP_PKEY_bits(pk) : 0;
	wolfSSL_EVP_PKEY_free(pk);
	wolfSSL_X509_free(x);
	return 0;
}

/* The own certificate's subject and expiry, for tlsq__tls_cert_summary_at. */
static void cred_summary(struct tlsq__cred *k)
{
	int id, bits;
	pem_summary(k->cert_pem, k->subject, sizeof k->subject, &k->not_after, &id, &bits);
}

int tlsq__tls_cert_summary_at(const struct tlsq_tls *t, int i, char *subject, size_t cap,
                              int64_t *not_after, char *names, size_t ncap)
{
	struct tlsq__cred *k = tlsq__cred_get(t);
	int rc = -1;
	if (names && ncap)
		names[0] = 0;
	if (i == 0) {
		rc = k->subject[0] ? 0 : -1;
		snprintf(subject, cap, "%s", k->subject);
		*not_after = k->not_after;
	} else if (i > 0 && i <= k->nsni) {
		struct tlsq__sni *e = &k->sni[i - 1];
		rc = 0;
		snprintf(subject, cap, "%s", e->subject);
		*not_after = e->not_after;
		size_t at = 0;
		for (int j = 0; names && j < e->nnames && at < ncap; j++)
			at += (size_t)snprintf(names + at, ncap - at, "%s%s", j ? "," : "",
			                       e->names[j]);
	}
	tlsq__cred_unref(k);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Several certificates chosen by SNI                                        */
/* ------------------------------------------------------------------------ */

/* RFC 6125 §6.4.3, the common subset: exact, or "*." for one whole label. */
static int sni_match(const char *pattern, const char *name)
{
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = strchr(name, '.');
		return dot && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
	}
	return strcasecmp(pattern, name) == 0;
}

/* wolfSSL's certificate setup callback (IO thread, inside the handshake,
 * after the ClientHello was parsed: before the cipher suite is chosen in
 * TLS 1.2, before the Certificate message in TLS 1.3). Loads the
 * certificate whose names match the client's SNI into this SSL; the
 * context's own certificate serves otherwise. arg is the credential set
 * the SSL was made from (the SSL holds a reference on it). 1 = go on,
 * 0 = fail the handshake. */
static int sni_cert_cb(WOLFSSL *ssl, void *arg)
{
	struct tlsq__cred *k = arg;
	void *req = NULL;
	word16 n = wolfSSL_SNI_GetRequest(ssl, WOLFSSL_SNI_HOST_NAME, &req);
	if (n == 0 || req == NULL)
		return 1;
	char name[256];
	if (n >= sizeof name)
		return 1;
	memcpy(name, req, n);
	name[n] = 0;
	for (int i = 0; i < k->nsni; i++) {
		struct tlsq__sni *e = &k->sni[i];
		for (int j = 0; j < e->nnames; j++) {
			if (!sni_match(e->names[j], name))
				continue;
			if (wolfSSL_use_certificate_chain_buffer(
			        ssl, (const unsigned char *)e->cert_pem,
			        (long)strlen(e->cert_pem)) != WOLFSSL_SUCCESS ||
			    wolfSSL_use_PrivateKey_buffer(ssl, e->key, e->key_len,
			                                  WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS)
				return 0;
			return 1;
		}
	}
	return 1;
}

/* The names list into e (lowercase, trimmed). 0 or TLSQ_EINVAL/ENOMEM. */
static int sni_names(struct tlsq__sni *e, const char *list, int idx)
{
	if (list == NULL || list[0] == 0) {
		tlsq__set_last_error("sni_certs[%d]: no names", idx);
		return TLSQ_EINVAL;
	}
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t len = strcspn(p, ", ");
		if (len == 0)
			break;
		if (len > 253 || (p[0] == '*' && (len < 3 || p[1] != '.')) ||
		    memchr(p + 1, '*', len - 1)) {
			tlsq__set_last_error("sni_certs[%d]: bad name \"%.*s\" (a host name, or "
			                     "\"*.\" and a domain)",
			                     idx, (int)(len > 253 ? 253 : len), p);
			return TLSQ_EINVAL;
		}
		char **nn = realloc(e->names, (size_t)(e->nnames + 1) * sizeof *nn);
		if (nn == NULL)
			return TLSQ_ENOMEM;
		e->names = nn;
		if ((nn[e->nnames] = strndup(p, len)) == NULL)
			return TLSQ_ENOMEM;
		for (char *c = nn[e->nnames]; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		e->nnames++;
		p += len;
	}
	return 0;
}

/* cfg's SNI certificates into k: each checked as tlsq_tls_new checks the
 * own one (files, key against certificate) in a scratch context, then kept
 * as PEM chain and DER key for sni_cert_cb. Application thread. */
static int sni_load(struct tlsq_tls *p, struct tlsq__cred *k, const tlsq_tls_config *cfg)
{
	if (cfg->n_sni_certs == 0)
		return 0;
	if (cfg->n_sni_certs < 0 || cfg->sni_certs == NULL) {
		tlsq__set_last_error("sni_certs: %d entries at %p", cfg->n_sni_certs,
		                     (const void *)cfg->sni_certs);
		return TLSQ_EINVAL;
	}
	if (p->role != TLSQ_SERVER) {
		tlsq__set_last_error("sni_certs are for servers");
		return TLSQ_EINVAL;
	}
	int own_id = 0, own_bits = 0;
	char scratch[256];
	int64_t na = 0;
	if (pem_summary(k->cert_pem, scratch, sizeof scratch, &na, &own_id, &own_bits) != 0) {
		tlsq__set_last_error("sni_certs need the profile's own certificate");
		return TLSQ_EINVAL;
	}
	k->sni = calloc((size_t)cfg->n_sni_certs, sizeof *k->sni);
	if (k->sni == NULL)
		return TLSQ_ENOMEM;
	for (int i = 0; i < cfg->n_sni_certs; i++) {
		const tlsq_sni_cert *s = &cfg->sni_certs[i];
		struct tlsq__sni *e = &k->sni[i];
		k->nsni = i + 1;
		int rc = sni_names(e, s->names, i);
		if (rc == TLSQ_ENOMEM)
			tlsq__set_last_error("out of memory");
		if (rc)
			return rc;
		if (s->cert_file == NULL || s->key_file == NULL) {
			tlsq__set_last_error("sni_certs[%d]: needs cert_file and key_file", i);
			return TLSQ_EINVAL;
		}
		WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
		if (ctx == NULL) {
			tlsq__set_last_error("out of memory");
			return TLSQ_ENOMEM;
		}
		tlsq_tls_config one;
		tlsq_tls_config_init(&one, TLSQ_SERVER);
		one.cert_file = s->cert_file;
		one.key_file = s->key_file;
		one.key_password = s->key_password;
		if (wolfSSL_CTX_use_certificate_chain_file(ctx, s->cert_file) != WOLFSSL_SUCCESS) {
			tlsq__cert_load_error(s->cert_file);
			rc = TLSQ_EINVAL;
		} else {
			rc = tlsq__tls_load_key(&one, ctx);
		}
		wolfSSL_CTX_free(ctx);
		if (rc)
			return rc;
		e->cert_pem = tlsq__read_text_file(s->cert_file);
		e->key = tlsq__key_der(s->key_file, s->key_password, &e->key_len);
		if (e->cert_pem == NULL || e->key == NULL) {
			tlsq__set_last_error("sni_certs[%d]: cannot read %s again", i,
			                     e->cert_pem ? s->key_file : s->cert_file);
			return TLSQ_EINVAL;
		}
		int id = 0, bits = 0;
		pem_summary(e->cert_pem, e->subject, sizeof e->subject, &e->not_after, &id, &bits);
		if (id != own_id || bits != own_bits) {
			tlsq__set_last_error(
			    "sni_certs[%d]: the key of %s is not of the type and size "
			    "of the profile's own key (wolfSSL 5.5.4 picks the "
			    "signature algorithm before the certificate)",
			    i, s->cert_file);
			return TLSQ_EINVAL;
		}
	}
	wolfSSL_CTX_set_cert_cb(k->ctx, sni_cert_cb, k);
	return 0;
}

/* A complete credential set for profile p from cfg, or NULL with the error
 * in *rc and the reason in tlsq_last_error. Application thread. */
static struct tlsq__cred *cred_build(const struct tlsq_tls *p, const tlsq_tls_config *cfg, int *rc)
{
	struct tlsq__cred *k = calloc(1, sizeof *k);
	if (k == NULL) {
		tlsq__set_last_error("out of memory");
		*rc = TLSQ_ENOMEM;
		return NULL;
	}
	atomic_init(&k->refs, 1);
	static _Atomic uint64_t next_gen = 1;
	k->gen = atomic_fetch_add_explicit(&next_gen, 1, memory_order_relaxed);
	k->ctx = wolfSSL_CTX_new(p->role == TLSQ_CLIENT ? wolfSSLv23_client_method()
	                                                : wolfSSLv23_server_method());
	if (k->ctx == NULL) {
		free(k);
		tlsq__set_last_error("out of memory");
		*rc = TLSQ_ENOMEM;
		return NULL;
	}
	errno = 0;
	*rc = tls_configure(p, k, cfg, k->ctx);
	if (*rc == 0)
		*rc = sni_load((struct tlsq_tls *)p, k, cfg);
	if (*rc) {
		tlsq__cred_unref(k);
		return NULL;
	}
	cred_summary(k);
	return k;
}

static _Atomic uint64_t tls_reloads_ok, tls_reloads_failed;

void tlsq__tls_reload_counts(uint64_t *ok, uint64_t *failed)
{
	*ok = atomic_load_explicit(&tls_reloads_ok, memory_order_relaxed);
	*failed = atomic_load_explicit(&tls_reloads_failed, memory_order_relaxed);
}

/* see tlsq.h */
int tlsq_tls_new(const tlsq_tls_config *cfg, tlsq_tls **out)
{
	if (out)
		*out = NULL;
	if (cfg == NULL || out == NULL) {
		tlsq__set_last_error("tlsq_tls_new: NULL argument");
		return TLSQ_EINVAL;
	}
	if (cfg->role != TLSQ_CLIENT && cfg->role != TLSQ_SERVER) {
		tlsq__set_last_error("role must be TLSQ_CLIENT or TLSQ_SERVER");
		return TLSQ_EINVAL;
	}
	if (cfg->mode != TLSQ_MODE_STREAM && cfg->mode != TLSQ_MODE_MESSAGE) {
		tlsq__set_last_error("mode must be TLSQ_MODE_STREAM or TLSQ_MODE_MESSAGE");
		return TLSQ_EINVAL;
	}
	int minv = cfg->min_version ? cfg->min_version : TLSQ_TLS1_2;
	int maxv = cfg->max_version ? cfg->max_version : TLSQ_TLS1_3;
	if ((minv != TLSQ_TLS1_2 && minv != TLSQ_TLS1_3) ||
	    (maxv != TLSQ_TLS1_2 && maxv != TLSQ_TLS1_3) || minv > maxv) {
		tlsq__set_last_error("versions: min and max must be TLSQ_TLS1_2 or TLSQ_TLS1_3, "
		                     "min <= max (TLS 1.2 is the floor)");
		return TLSQ_EINVAL;
	}
	if (cfg->verify < TLSQ_VERIFY_DEFAULT || cfg->verify > TLSQ_VERIFY_REQUIRE) {
		tlsq__set_last_error("verify: unknown mode %d", (int)cfg->verify);
		return TLSQ_EINVAL;
	}
	int rc = tlsq__tls_global_init();
	if (rc)
		return rc;
	struct tlsq_tls *t = calloc(1, sizeof *t);
	if (!t) {
		tlsq__set_last_error("out of memory");
		return TLSQ_ENOMEM;
	}
	atomic_init(&t->refs, 1);
	t->role = cfg->role;
	t->mode = cfg->mode;
	t->min_version = minv;
	t->max_version = maxv;
	t->session_resumption = cfg->session_resumption;
	pthread_mutex_init(&t->session_mu, NULL);
	if (cfg->server_name && !(t->server_name = strdup(cfg->server_name)))
		goto nomem;
	if (cfg->alpn && cfg->alpn[0] && !(t->alpn = strdup(cfg->alpn)))
		goto nomem;
	t->cred = cred_build(t, cfg, &rc);
	if (t->cred == NULL) {
		tlsq_tls_free(t);
		return rc;
	}
	*out = t;
	return 0;
nomem:
	tlsq__set_last_error("out of memory");
	tlsq_tls_free(t);
	return TLSQ_ENOMEM;
}

/* see tlsq.h */
int tlsq_tls_reload(tlsq_tls *t, const tlsq_tls_config *cfg)
{
	if (t == NULL || cfg == NULL) {
		tlsq__set_last_error("tlsq_tls_reload: NULL argument");
		return TLSQ_EINVAL;
	}
	int rc = TLSQ_EINVAL;
	struct tlsq__cred *k = NULL;
	if (cfg->role != t->role)
		tlsq__set_last_error("tlsq_tls_reload: the configuration is for a %s, the profile "
		                     "is a %s",
		                     cfg->role == TLSQ_CLIENT ? "client" : "server",
		                     t->role == TLSQ_CLIENT ? "client" : "server");
	else if (cfg->verify < TLSQ_VERIFY_DEFAULT || cfg->verify > TLSQ_VERIFY_REQUIRE)
		tlsq__set_last_error("verify: unknown mode %d", (int)cfg->verify);
	else
		k = cred_build(t, cfg, &rc);
	if (k == NULL) {
		atomic_fetch_add_explicit(&tls_reloads_failed, 1, memory_order_relaxed);
		return rc; /* the old credentials keep serving */
	}
	/* Connections made from the old set keep their references; the last
	 * one frees it (on its IO thread), or this does. A client's saved
	 * ticket carries the old set's generation and is no longer offered. */
	cred_swap(t, k);
	atomic_fetch_add_explicit(&tls_reloads_ok, 1, memory_order_relaxed);
	return 0;
}

/* see tlsq.h */
void tlsq_tls_free(tlsq_tls *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	if (t->session)
		wolfSSL_SESSION_free((WOLFSSL_SESSION *)t->session);
	tlsq__cred_unref(t->cred);
	pthread_mutex_destroy(&t->session_mu);
	free(t->server_name);
	free(t->alpn);
	free(t);
}

/* see tlsq.h */
ssize_t tlsq_tls_cert_pem(const tlsq_tls *t, char *buf, size_t cap)
{
	if (t == NULL || buf == NULL)
		return TLSQ_EINVAL;
	struct tlsq__cred *k = tlsq__cred_get(t);
	ssize_t rc;
	if (k->cert_pem == NULL) {
		rc = TLSQ_EINVAL;
	} else {
		size_t n = strlen(k->cert_pem);
		rc = n + 1 > cap ? TLSQ_EMSGSIZE : (ssize_t)n;
		if (rc >= 0)
			memcpy(buf, k->cert_pem, n + 1);
	}
	tlsq__cred_unref(k);
	return rc;
}

/* see tlsq.h */
const char *tlsq_tls_warnings(const tlsq_tls *t)
{
	if (t == NULL)
		return NULL;
	/* The profile's own reference keeps the string until the next reload. */
	struct tlsq__cred *k = tlsq__cred_get(t);
	const char *w = k->warnings;
	tlsq__cred_unref(k);
	return w;
}