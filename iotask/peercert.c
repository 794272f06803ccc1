/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * peercert.c - the peer's certificates, as the wolfSSL binding sees them
 * (IO thread): the verify callback (names the certificate that failed, does
 * tlsq's own IP address check), the snapshot of the peer's chain published
 * at the handshake, certificate pins (parsed by the profile builder, checked
 * here) and the application's verify hook. What application threads read
 * from the snapshot (tlsq_peer_*) is api/peer.c; this file only builds it.
 * Part of the wolfSSL binding (tls_int.h).
 */
/*
 * Why a snapshot: application threads never call wolfSSL, so what they may
 * ask about the peer's certificates is copied once, on the IO thread, when
 * the handshake completes (the leaf, the rest of the chain the verify
 * callback saw, fingerprints, SANs) and published with one release store
 * of c->peer. It never changes afterwards and goes with the connection.
 *
 * Pins are checked at the same point, before the IO task reports the
 * connection open, so no application byte goes to or comes from a peer
 * whose key does not match.
 */

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_int.h"

static void peer_keep(struct tlsq_conn *c, WOLFSSL_X509 *x, int depth);

/* ------------------------------------------------------------------------ */
/* Verification                                                              */
/* ------------------------------------------------------------------------ */

void tlsq__cert_subject(WOLFSSL_X509 *x, char *buf, int cap)
{
	buf[0] = 0;
	if (x != NULL &&
	    wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_subject_name(x), buf, cap) == NULL)
		buf[0] = 0;
}

/* The address bytes (returns 4 or 16) when name is an IPv4 or IPv6 literal,
 * else 0. A zone ("fe80::1%eth0") is local to this host: not compared. */
int tlsq__ip_literal(const char *name, unsigned char ip[16])
{
	char h[64];
	size_t n = strcspn(name, "%");
	if (n >= sizeof h)
		return 0;
	memcpy(h, name, n);
	h[n] = 0;
	if (inet_pton(AF_INET, h, ip) == 1)
		return 4;
	if (inet_pton(AF_INET6, h, ip) == 1)
		return 16;
	return 0;
}

#define TLS_GEN_IPADD 7 /* GeneralName [7] iPAddress (RFC 5280 §4.2.1.6) */

/* 1 if x carries an iPAddress SAN equal to ip; lists its IP SANs in `have`. */
static int cert_has_ip(WOLFSSL_X509 *x, const unsigned char *ip, int iplen, char *have, size_t cap)
{
	int found = 0;
	size_t used = 0;
	have[0] = 0;
	WOLFSSL_STACK *names = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = names ? wolfSSL_sk_GENERAL_NAME_num(names) : 0;
	for (int i = 0; i < n; i++) {
		WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(names, i);
		if (gn == NULL || gn->type != TLS_GEN_IPADD || gn->d.iPAddress == NULL)
			continue;
		const unsigned char *d = wolfSSL_ASN1_STRING_data(gn->d.iPAddress);
		int len = wolfSSL_ASN1_STRING_length(gn->d.iPAddress);
		if (d == NULL || (len != 4 && len != 16))
			continue;
		if (len == iplen && memcmp(d, ip, (size_t)len) == 0)
			found = 1;
		char a[INET6_ADDRSTRLEN];
		if (inet_ntop(len == 4 ? AF_INET : AF_INET6, d, a, sizeof a) && used + 1 < cap) {
			int w = snprintf(have + used, cap - used, "%s%s", used ? ", " : "", a);
			if (w > 0)
				used += (size_t)w < cap - used ? (size_t)w : cap - used - 1;
		}
	}
	if (names)
		wolfSSL_sk_GENERAL_NAME_pop_free(names, wolfSSL_GENERAL_NAME_free);
	return found;
}

/* Verify callback: runs inside the handshake, on the IO thread, for every
 * certificate of the chain (WOLFSSL_ALWAYS_VERIFY_CB) and the leaf last.
 * Keeps the first failure's details so the error can name the certificate;
 * on the leaf of a client that connects to an IP address it also does the
 * IP check (see TLS_OWN_IP_CHECK). */
int tlsq__tls_verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	struct tlsq_conn *c = tlsq__tls_current();
	if (c != NULL)
		peer_keep(c, store->current_cert, store->error_depth);
	if (c != NULL && c->cred->pin_only)
		return 1; /* trusted on the pin alone: tlsq__tls_peer_done decides */
	if (c == NULL || c->verify_reason != NULL)
		return preverify;
	int err = store->error;
	char ips[160] = "";
	unsigned char ip[16];
	int iplen;
	if (TLS_OWN_IP_CHECK && preverify && store->error_depth == 0 && c->role == TLSQ_CLIENT &&
	    (iplen = tlsq__ip_literal(c->sni ? c->sni : "", ip)) != 0 &&
	    store->current_cert != NULL &&
	    !cert_has_ip(store->current_cert, ip, iplen, ips, sizeof ips)) {
		preverify = 0;
		err = IPADDR_MISMATCH;
	}
	if (preverify)
		return preverify;
	char subj[200] = "", issuer[200] = "";
	tlsq__cert_subject(store->current_cert, subj, sizeof subj);
	if (store->current_cert != NULL &&
	    wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_issuer_name(store->current_cert), issuer,
	                              sizeof issuer) == NULL)
		issuer[0] = 0;
	const char *what;
	switch (err) {
	case ASN_AFTER_DATE_E:
		what = "certificate expired";
		break;
	case ASN_BEFORE_DATE_E:
		what = "certificate not yet valid";
		break;
	case ASN_NO_SIGNER_E:
		what = (subj[0] && strcmp(subj, issuer) == 0)
		           ? "self-signed certificate not trusted"
		           : "unknown CA (issuer not trusted)";
		break;
	case DOMAIN_NAME_MISMATCH:
	case IPADDR_MISMATCH:
		what = "hostname mismatch";
		break;
	case ASN_SIG_CONFIRM_E:
		what = "unknown CA (a trusted CA has the issuer's name but did not sign it)";
		break;
	default:
		what = wolfSSL_ERR_reason_error_string((unsigned long)err);
		break;
	}
	const char *sni = c->sni ? c->sni : "";
	if (err == IPADDR_MISMATCH && tlsq__ip_literal(sni, ip))
		tlsq__str_set(
		    &c->verify_reason,
		    "certificate verify failed: IP address mismatch, wanted %.45s, certificate "
		    "is %.48s (%s%.56s)",
		    sni, subj, ips[0] ? "IP addresses: " : "no IP address in its SAN", ips);
	else if (err == DOMAIN_NAME_MISMATCH || err == IPADDR_MISMATCH)
		tlsq__str_set(
		    &c->verify_reason,
		    "certificate verify failed: hostname mismatch, wanted %.60s, certificate "
		    "is %.100s",
		    c->tls->server_name ? c->tls->server_name : sni, subj);
	else
		tlsq__str_set(&c->verify_reason, "certificate verify failed: %s (%s, depth %d)",
		              what, subj[0] ? subj : "no subject", store->error_depth);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Pins and the snapshot                                                     */
/* ------------------------------------------------------------------------ */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
		             (i + 2 < n ? in[i + 2] : 0);
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = 0;
}

/* Decodes exactly 32 bytes from 44 base64 characters; 0 on success. */
static int b64_decode32(const char *in, size_t n, unsigned char out[32])
{
	if (n != 44 || in[43] != '=' || in[42] == '=')
		return -1;
	unsigned char tmp[33];
	size_t o = 0;
	for (size_t i = 0; i < 44; i += 4) {
		unsigned v = 0;
		for (int k = 0; k < 4; k++) {
			char ch = in[i + (size_t)k];
			const char *p = ch == '=' ? b64 : strchr(b64, ch);
			if (p == NULL || ch == 0)
				return -1;
			v = v << 6 | (unsigned)(p - b64);
		}
		tmp[o++] = (unsigned char)(v >> 16);
		tmp[o++] = (unsigned char)(v >> 8);
		if (o < 33)
			tmp[o++] = (unsigned char)v;
	}
	memcpy(out, tmp, 32);
	return 0;
}

/* Parses one pin: "sha256//BASE64" (SPKI) or 64 hex digits, colons allowed
 * (the certificate). 0 on success. */
static int pin_parse(const char *s, size_t n, unsigned char pin[33])
{
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n > 8 && strncmp(s, "sha256//", 8) == 0) {
		pin[0] = 's';
		return b64_decode32(s + 8, n - 8, pin + 1);
	}
	int digits = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ':')
			continue;
		if (!isxdigit((unsigned char)s[i]) || digits == 64)
			return -1;
		int v = isdigit((unsigned char)s[i]) ? s[i] - '0'
		                                     : (tolower((unsigned char)s[i]) - 'a' + 10);
		if (digits % 2 == 0)
			pin[1 + digits / 2] = (unsigned char)(v << 4);
		else
			pin[1 + digits / 2] |= (unsigned char)v;
		digits++;
	}
	pin[0] = 'c';
	return digits == 64 ? 0 : -1;
}

/* Profile builder: cfg->pins into t->pins. TLSQ_EINVAL with the reason. */
int tlsq__tls_pins_load(struct tlsq__cred *t, const char *list)
{
	if (list == NULL || list[0] == 0)
		return 0;
	size_t cap = 1;
	for (const char *p = list; *p; p++)
		cap += *p == ',';
	t->pins = calloc(cap, sizeof *t->pins);
	if (t->pins == NULL) {
		tlsq__set_last_error("out of memory");
		return TLSQ_ENOMEM;
	}
	for (const char *p = list;;) {
		size_t n = strcspn(p, ",");
		if (pin_parse(p, n, t->pins[t->npins]) != 0) {
			tlsq__set_last_error(
			    "pin '%.*s' is neither sha256//BASE64 (the SHA-256 of the "
			    "public key) nor 64 hex digits (the certificate's SHA-256)",
			    (int)(n > 100 ? 100 : n), p);
			return TLSQ_EINVAL;
		}
		t->npins++;
		if (p[n] == 0)
			break;
		p += n + 1;
	}
	return 0;
}

void tlsq__peer_free(tlsq__peer *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < TLSQ__PEER_CHAIN_MAX; i++)
		free(p->der[i]);
	free(p);
}

/* Verify callback: keeps a copy of the certificate at `depth`. */
static void peer_keep(struct tlsq_conn *c, WOLFSSL_X509 *x, int depth)
{
	if (x == NULL || depth < 0 || depth >= TLSQ__PEER_CHAIN_MAX)
		return;
	if (c->peer_pending == NULL &&
	    (c->peer_pending = calloc(1, sizeof *c->peer_pending)) == NULL)
		return;
	tlsq__peer *p = c->peer_pending;
	int len = 0;
	const unsigned char *der = wolfSSL_X509_get_der(x, &len);
	if (der == NULL || len <= 0 || p->der[depth] != NULL)
		return;
	if ((p->der[depth] = malloc((size_t)len)) == NULL)
		return;
	memcpy(p->der[depth], der, (size_t)len);
	p->len[depth] = len;
}

static void peer_sans(WOLFSSL_X509 *x, char *out, size_t cap)
{
	size_t used = 0;
	out[0] = 0;
	WOLFSSL_STACK *names = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = names ? wolfSSL_sk_GENERAL_NAME_num(names) : 0;
	for (int i = 0; i < n && used + 1 < cap; i++) {
		WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(names, i);
		char one[INET6_ADDRSTRLEN + 64] = "";
		if (gn == NULL)
			continue;
		if (gn->type == TLS_GEN_IPADD && gn->d.iPAddress) {
			const unsigned char *d = wolfSSL_ASN1_STRING_data(gn->d.iPAddress);
			int len = wolfSSL_ASN1_STRING_length(gn->d.iPAddress);
			char a[INET6_ADDRSTRLEN];
			if (d && (len == 4 || len == 16) &&
			    inet_ntop(len == 4 ? AF_INET : AF_INET6, d, a, sizeof a))
				snprintf(one, sizeof one, "IP:%s", a);
		} else if ((gn->type == 2 || gn->type == 1 || gn->type == 6) && gn->d.ia5) {
			/* GeneralName [2] dNSName, [1] rfc822Name, [6] URI (RFC 5280) */
			const char *kind = gn->type == 2 ? "DNS" : gn->type == 1 ? "email" : "URI";
			snprintf(one, sizeof one, "%s:%.*s", kind,
			         wolfSSL_ASN1_STRING_length(gn->d.ia5),
			         (const char *)wolfSSL_ASN1_STRING_data(gn->d.ia5));
		}
		if (one[0] == 0)
			continue;
		int w = snprintf(out + used, cap - used, "%s%s", used ? ", " : "", one);
		if (w > 0)
			used += (size_t)w < cap - used ? (size_t)w : cap - used - 1;
	}
	if (names)
		wolfSSL_sk_GENERAL_NAME_pop_free(names, wolfSSL_GENERAL_NAME_free);
}

/* SHA-256 of the certificate's SubjectPublicKeyInfo. 0 on success. */
static int spki_sha256(WOLFSSL_X509 *x, unsigned char out[32])
{
	WOLFSSL_EVP_PKEY *k = wolfSSL_X509_get_pubkey(x);
	if (k == NULL)
		return -1;
	int n = wolfSSL_i2d_PUBKEY(k, NULL);
	int rc = -1;
	unsigned char *der = n > 0 ? malloc((size_t)n) : NULL, *p = der;
	if (der && wolfSSL_i2d_PUBKEY(k, &p) == n && wc_Sha256Hash(der, (word32)n, out) == 0)
		rc = 0;
	free(der);
	wolfSSL_EVP_PKEY_free(k);
	return rc;
}

/*
 * Handshake done (IO thread): builds the snapshot from the peer's leaf and
 * what the verify callback kept, checks the pins, publishes. Returns 0, or
 * TLSQ_ECERT with the connection failed (pin mismatch, no certificate).
 */
int tlsq__tls_peer_done(struct tlsq_conn *c)
{
	struct tlsq__cred *t = c->cred;
	tlsq__peer *p = c->peer_pending;
	c->peer_pending = NULL;
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(ssl_of(c));
	if (x == NULL) {
		tlsq__peer_free(p);
		/* A client's resumed session came from a handshake of this
		 * profile that passed the pins (failed ones are not saved). */
		if ((t->npins || t->hook) && !wolfSSL_session_reused(ssl_of(c))) {
			tlsq__conn_fail(c, TLSQ_ECERT,
			                "certificate %s set but the peer sent no certificate",
			                t->npins ? "pin" : "verify hook");
			return TLSQ_ECERT;
		}
		return 0;
	}
	if (p == NULL)
		p = calloc(1, sizeof *p);
	unsigned char cert_hash[32], key_hash[32];
	int have_key = spki_sha256(x, key_hash) == 0;
	int len = 0;
	const unsigned char *der = wolfSSL_X509_get_der(x, &len);
	int have_cert = der && len > 0 && wc_Sha256Hash(der, (word32)len, cert_hash) == 0;
	if (p) {
		/* The leaf as the handshake has it (also without verification). */
		if (p->der[0] == NULL && have_cert && (p->der[0] = malloc((size_t)len)) != NULL) {
			memcpy(p->der[0], der, (size_t)len);
			p->len[0] = len;
		}
		while (p->n < TLSQ__PEER_CHAIN_MAX && p->der[p->n] != NULL)
			p->n++;
		if (have_cert)
			for (int i = 0; i < 32; i++)
				snprintf(p->sha256 + 2 * i, 3, "%02x", cert_hash[i]);
		if (have_key)
			b64_encode(key_hash, 32, p->spki_sha256);
		peer_sans(x, p->sans, sizeof p->sans);
	}
	char subject[256] = "";
	if (t->hook)
		tlsq__cert_subject(x, subject, sizeof subject);
	wolfSSL_X509_free(x);
	int pinned = t->npins == 0;
	for (int i = 0; i < t->npins && !pinned; i++)
		pinned = (t->pins[i][0] == 's' && have_key &&
		          memcmp(t->pins[i] + 1, key_hash, 32) == 0) ||
		         (t->pins[i][0] == 'c' && have_cert &&
		          memcmp(t->pins[i] + 1, cert_hash, 32) == 0);
	if (!pinned) {
		char key_b64[45] = "?";
		if (have_key)
			b64_encode(key_hash, 32, key_b64);
		tlsq__peer_free(p);
		tlsq__conn_fail(c, TLSQ_ECERT,
		                "certificate pin mismatch: the peer's public key is sha256//%s, "
		                "which none of the %d pin(s) names",
		                key_b64, t->npins);
		return TLSQ_ECERT;
	}
	/* release: the snapshot is complete before anyone can load it. */
	atomic_store_explicit(&c->peer_cert, p, memory_order_release);
	if (t->hook && p && p->der[0]) {
		tlsq_peer_view v = {.der = p->der[0],
		                    .der_len = (size_t)p->len[0],
		                    .subject = subject,
		                    .sans = p->sans,
		                    .sha256 = p->sha256,
		                    .spki_sha256 = p->spki_sha256,
		                    .verified = t->verify != TLSQ_VERIFY_NONE};
		char why[200] = "";
		if (t->hook(c, &v, t->hook_arg, why, sizeof why) != 0) {
			why[sizeof why - 1] = 0;
			tlsq__conn_fail(c, TLSQ_ECERT,
			                "certificate rejected by the verify hook: %s",
			                why[0] ? why : "(no reason given)");
			return TLSQ_ECERT;
		}
	} else if (t->hook) {
		tlsq__conn_fail(c, TLSQ_ECERT, "out of memory copying the peer's certificate");
		return TLSQ_ECERT;
	}
	return 0;
}
