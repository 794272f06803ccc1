/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tls.c - the wolfSSL binding. The only file of tlsq that includes wolfSSL.
 *
 * Invariants (see shared notes on wolfSSL 5.5.4, §0):
 * - The send callback writes each record straight to the socket when the
 *   IO task's ciphertext-out evbuffer is empty, and appends what the socket
 *   did not take (or the whole record, when something waits in front of it)
 *   to that evbuffer; it returns the full size either way: it never
 *   returns WANT_WRITE, so wolfSSL's WANT_WRITE retry paths (which lose or
 *   mix data in 5.5.4) are never entered, and wolfSSL_write always completes
 *   or fails. Backpressure sits above wolfSSL, in pump.c.
 * - The recv callback hands out what the IO task read from the socket. It
 *   returns WANT_READ when nothing is buffered, CONN_CLOSE/CONN_RST once the
 *   socket saw FIN/RST, and never 0.
 * - Every function here runs on the connection's IO thread, except the
 *   profile functions (tlsq_tls_*) which run on application threads: the
 *   builder before the profile is shared, tlsq_tls_reload while it is.
 * - Certificate rotation: what a profile derives from its files (the
 *   WOLFSSL_CTX, verification mode, pins, own certificate) sits in one
 *   reference-counted struct tlsq__cred. tlsq_tls_reload builds a complete
 *   new one on the calling application thread, then swaps the pointer; a
 *   connection takes a reference when its SSL is created (IO thread, no
 *   lock: see cred_get) and drops it when its SSL is freed. A handshake therefore sees
 *   one credential set from first byte to last, never a half-loaded one, and
 *   live connections keep the set they started with.
 * - wolfSSL_shutdown is called once per connection (a second call would
 *   build a second close_notify, note §5).
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/version.h>

#include <arpa/inet.h>
#include <cpuid.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "iotask.h"

#define DEFAULT_CIPHERS                                                        \
	"TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"                     \
	"TLS13-CHACHA20-POLY1305-SHA256:"                                      \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* The connection whose wolfSSL call is running on this IO thread: the verify
 * callback has no other way to find it. */
static _Thread_local struct tlsq_conn *tls_current;

static WOLFSSL *ssl_of(struct tlsq_conn *c) { return (WOLFSSL *)c->ssl; }

struct tlsq__cred {
	_Atomic uint32_t refs; /* the profile's one + one per SSL made from it */
	WOLFSSL_CTX *ctx;
	tlsq_verify verify;
	char *cert_pem;            /* own certificate (for tlsq_tls_cert_pem) */
	char *warnings;            /* tlsq_tls_warnings: NULL or lines */
	unsigned char (*pins)[33]; /* [0]: 's' SPKI or 'c' certificate, then SHA-256 */
	int npins;
	int pin_only;          /* a server with pins or a hook and no verification:
	                          asks for a client certificate, trusts the pin/hook */
	uint64_t gen;          /* distinct per set: tells a ticket's set */
	tlsq_verify_hook hook; /* tlsq_tls_config.verify_hook */
	void *hook_arg;
	char subject[256]; /* own certificate, for the status endpoint */
	int64_t not_after; /* Unix time, 0 if none */
};

static void cred_unref(struct tlsq__cred *k)
{
	if (k == NULL || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (k->ctx)
		wolfSSL_CTX_free(k->ctx);
	free(k->cert_pem);
	free(k->warnings);
	free(k->pins);
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
static struct tlsq__cred *cred_get(const struct tlsq_tls *tc)
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
	cred_unref(old);
}

/* Peer certificates and pins (at the end of this file). */
static void peer_keep(struct tlsq_conn *c, WOLFSSL_X509 *x, int depth);
static int tls_peer_done(struct tlsq_conn *c);
static int tls_pins_load(struct tlsq__cred *t, const char *list);

/* ------------------------------------------------------------------------ */
/* Process-wide                                                              */
/* ------------------------------------------------------------------------ */

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_init_rc;

static void tls_init_once(void)
{
	tls_init_rc = wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : TLSQ_ENOMEM;
}

int tlsq__tls_global_init(void)
{
	pthread_once(&tls_once, tls_init_once);
	return tls_init_rc;
}

/* see tlsq.h */
const char *tlsq_crypto_version(void)
{
#ifdef TLSQ_WOLFSSL_DEBIAN
	return "wolfSSL " LIBWOLFSSL_VERSION_STRING " (Debian " TLSQ_WOLFSSL_DEBIAN ", static)";
#else
	return "wolfSSL " LIBWOLFSSL_VERSION_STRING;
#endif
}

/* see tlsq.h */
int tlsq_crypto_aesni(void)
{
#ifdef WOLFSSL_AESNI
	/* wolfSSL picks AES-NI at run time from CPUID (aes.c Check_CPU_support_AES),
	 * so ask the CPU the same question. */
	unsigned a, b, c, d;
	if (__get_cpuid(1, &a, &b, &c, &d))
		return (c & bit_AES) != 0;
	return 0;
#else
	return 0;
#endif
}

/* ------------------------------------------------------------------------ */
/* IO callbacks                                                              */
/* ------------------------------------------------------------------------ */

static int tls_recv_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct tlsq_conn *c = ctx;
	(void)ssl;
	if (sz <= 0)
		return WOLFSSL_CBIO_ERR_WANT_READ; /* never 0: wolfSSL would spin */
	size_t have = evbuffer_get_length(c->in);
	if (have == 0) {
		if (c->rst)
			return WOLFSSL_CBIO_ERR_CONN_RST;
		if (c->eof)
			return WOLFSSL_CBIO_ERR_CONN_CLOSE;
		return WOLFSSL_CBIO_ERR_WANT_READ;
	}
	int n = evbuffer_remove(c->in, buf, (size_t)sz);
	if (n > 0 && c->first_in_len < sizeof c->first_in) {
		/* The peer's first bytes: they tell a non-TLS peer (tls_not_tls). */
		size_t k = sizeof c->first_in - c->first_in_len;
		if (k > (size_t)n)
			k = (size_t)n;
		memcpy(c->first_in + c->first_in_len, buf, k);
		c->first_in_len += (uint8_t)k;
	}
	/* wolfSSL asks for a record's 5-byte header, then its body: keep the
	 * last header and the body's start, to name a plaintext alert that
	 * wolfSSL 5.5.4 rejects mid-TLS 1.3-handshake as a parse error. */
	if (sz == 5 && n == 5) {
		memcpy(c->rec_hdr, buf, 5);
		c->rec_body_len = 0;
	} else if (n >= 2 && c->rec_body_len == 0) {
		memcpy(c->rec_body, buf, 2);
		c->rec_body_len = 2;
	}
	return n > 0 ? n : WOLFSSL_CBIO_ERR_WANT_READ;
}

static int tls_send_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct tlsq_conn *c = ctx;
	(void)ssl;
	if (sz <= 0)
		return 0 < sz ? sz : 0;
	/* Nothing after our close_notify (RFC 8446 6.1): wolfSSL still answers
	 * a KeyUpdate(update_requested) that crossed it, and those bytes would
	 * reach a peer that may have closed its socket on seeing our
	 * close_notify and its own: its kernel answers with a RST that destroys
	 * the data still in flight to us (torture seed 141). */
	if (c->notify_built)
		return sz;
	/* Straight to the socket when nothing waits in front of the record (no
	 * copy); whatever the socket does not take now is parked in our buffer.
	 * Never WANT_WRITE (G3, note §0.1). */
	size_t done =
	    evbuffer_get_length(c->out) == 0 ? tlsq__sock_send_direct(c, buf, (size_t)sz) : 0;
	if (done < (size_t)sz && evbuffer_add(c->out, buf + done, (size_t)sz - done) != 0)
		return WOLFSSL_CBIO_ERR_GENERAL;
	tlsq__count(&c->records_sent, 1);
	if (c->in_read) {
		/* A short record sent from inside a TLS 1.3 read after the handshake
		 * is our answer to the peer's KeyUpdate(update_requested): the only
		 * way to see peer KeyUpdates in wolfSSL 5.5.4 (note §8). Count them
		 * and stop a storm. */
		if (c->tls13 && sz < 64 && c->hs_done) {
			uint64_t now = tlsq__now_ms();
			if (now - c->ku_window_start_ms >= 1000) {
				c->ku_window_start_ms = now;
				c->ku_in_window = 0;
			}
			if (++c->ku_in_window > c->engine->cfg.max_key_updates_per_s)
				c->ku_storm = 1;
			atomic_fetch_add(&c->key_updates_received, 1);
			tlsq__count(&c->engine->stats.key_updates_received, 1);
		}
	}
	atomic_store_explicit(&c->tx_idle, 0, memory_order_release);
	return sz;
}

/* ------------------------------------------------------------------------ */
/* Errors a person understands                                               */
/* ------------------------------------------------------------------------ */

static const char *alert_name(int code)
{
	switch (code) {
	case 0: return "close_notify";
	case 10: return "unexpected_message";
	case 20: return "bad_record_mac";
	case 22: return "record_overflow";
	case 40: return "handshake_failure";
	case 42: return "bad_certificate";
	case 43: return "unsupported_certificate";
	case 44: return "certificate_revoked";
	case 45: return "certificate_expired";
	case 46: return "certificate_unknown";
	case 47: return "illegal_parameter";
	case 48: return "unknown_ca";
	case 49: return "access_denied";
	case 50: return "decode_error";
	case 51: return "decrypt_error";
	case 70: return "protocol_version";
	case 71: return "insufficient_security";
	case 80: return "internal_error";
	case 86: return "inappropriate_fallback";
	case 90: return "user_canceled";
	case 100: return "no_renegotiation";
	case 109: return "missing_extension";
	case 110: return "unsupported_extension";
	case 112: return "unrecognized_name";
	case 116: return "certificate_required";
	case 120: return "no_application_protocol";
	default: return "unknown alert";
	}
}

static void cert_subject(WOLFSSL_X509 *x, char *buf, int cap)
{
	buf[0] = 0;
	if (x != NULL && wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_subject_name(x), buf, cap) ==
	                     NULL)
		buf[0] = 0;
}

/* The address bytes (returns 4 or 16) when name is an IPv4 or IPv6 literal,
 * else 0. A zone ("fe80::1%eth0") is local to this host: not compared. */
static int ip_literal(const char *name, unsigned char ip[16])
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

/*
 * Why tlsq checks IP addresses itself: wolfSSL 5.5.4 compares an IP
 * literal as text against every subjectAltName, DNS names included (a
 * dNSName "127.0.0.1" or "*.0.0.1" would match), falls back to the CN when
 * there is no SAN, and spells IPv6 SANs in its own full form. RFC 6125 §6.2
 * and browsers match an IP only against iPAddress SANs, byte for byte; so
 * does this. Needs a wolfSSL that keeps iPAddress SANs (WOLFSSL_IP_ALT_NAME,
 * cmake/build-wolfssl.sh) and calls the verify callback for a leaf that
 * verified (WOLFSSL_ALWAYS_VERIFY_CB, set by --enable-opensslextra).
 */
#if defined(WOLFSSL_ALWAYS_VERIFY_CB)
#define TLS_OWN_IP_CHECK 1
#else
#define TLS_OWN_IP_CHECK 0
#endif

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
static int tls_verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	struct tlsq_conn *c = tls_current;
	if (c != NULL)
		peer_keep(c, store->current_cert, store->error_depth);
	if (c != NULL && c->cred->pin_only)
		return 1; /* trusted on the pin alone: tls_peer_done decides */
	if (c == NULL || c->verify_reason[0] != 0)
		return preverify;
	int err = store->error;
	char ips[160] = "";
	unsigned char ip[16];
	int iplen;
	if (TLS_OWN_IP_CHECK && preverify && store->error_depth == 0 && c->role == TLSQ_CLIENT &&
	    (iplen = ip_literal(c->sni, ip)) != 0 && store->current_cert != NULL &&
	    !cert_has_ip(store->current_cert, ip, iplen, ips, sizeof ips)) {
		preverify = 0;
		err = IPADDR_MISMATCH;
	}
	if (preverify)
		return preverify;
	char subj[200] = "", issuer[200] = "";
	cert_subject(store->current_cert, subj, sizeof subj);
	if (store->current_cert != NULL &&
	    wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_issuer_name(store->current_cert), issuer,
	                              sizeof issuer) == NULL)
		issuer[0] = 0;
	const char *what;
	switch (err) {
	case ASN_AFTER_DATE_E: what = "certificate expired"; break;
	case ASN_BEFORE_DATE_E: what = "certificate not yet valid"; break;
	case ASN_NO_SIGNER_E:
		what = (subj[0] && strcmp(subj, issuer) == 0)
		           ? "self-signed certificate not trusted"
		           : "unknown CA (issuer not trusted)";
		break;
	case DOMAIN_NAME_MISMATCH:
	case IPADDR_MISMATCH: what = "hostname mismatch"; break;
	case ASN_SIG_CONFIRM_E:
		what = "unknown CA (a trusted CA has the issuer's name but did not sign it)";
		break;
	default: what = wolfSSL_ERR_reason_error_string((unsigned long)err); break;
	}
	if (err == IPADDR_MISMATCH && ip_literal(c->sni, ip))
		snprintf(
		    c->verify_reason, sizeof c->verify_reason,
		    "certificate verify failed: IP address mismatch, wanted %.45s, certificate "
		    "is %.48s (%s%.56s)",
		    c->sni, subj, ips[0] ? "IP addresses: " : "no IP address in its SAN", ips);
	else if (err == DOMAIN_NAME_MISMATCH || err == IPADDR_MISMATCH)
		snprintf(c->verify_reason, sizeof c->verify_reason,
		         "certificate verify failed: hostname mismatch, wanted %.60s, certificate is %.100s",
		         c->tls->server_name ? c->tls->server_name : c->sni, subj);
	else
		snprintf(c->verify_reason, sizeof c->verify_reason,
		         "certificate verify failed: %s (%s, depth %d)", what,
		         subj[0] ? subj : "no subject", store->error_depth);
	return 0;
}

/* Maps a wolfSSL failure to a tlsq error and fails the connection. */
static int tls_fail(struct tlsq_conn *c, int ret, const char *during)
{
	WOLFSSL *ssl = ssl_of(c);
	int e = wolfSSL_get_error(ssl, ret);
	char buf[160];
	WOLFSSL_ALERT_HISTORY h;
	memset(&h, 0, sizeof h);
	wolfSSL_get_alert_history(ssl, &h);
	/* A plaintext fatal alert (a TLS 1.3 client that rejects our
	 * certificate before it has handshake keys) that wolfSSL could not
	 * parse: report it as the alert it is. */
	if (e == PARSE_ERROR && h.last_rx.level != 2 && c->rec_hdr[0] == 21 && c->rec_hdr[3] == 0 &&
	    c->rec_hdr[4] == 2) {
		unsigned char a[2];
		if (c->rec_body_len == 2)
			memcpy(a, c->rec_body, 2);
		else if (evbuffer_copyout(c->in, a, 2) != 2)
			a[0] = 0;
		if (a[0] == 2) {
			h.last_rx.level = 2;
			h.last_rx.code = a[1];
			e = FATAL_ERROR;
		}
	}
	c->tls_fail_err = e; /* for tlsq__tls_fail_reason */
	c->tls_fail_alert = h.last_rx.level == 2 ? h.last_rx.code : -1;

	/* The verify callback already wrote a precise certificate reason. */
	if (c->verify_reason[0] != 0) {
		tlsq__conn_fail(c, TLSQ_ECERT, "%s", c->verify_reason);
		return TLSQ_ECERT;
	}
	switch (e) {
	case SOCKET_PEER_CLOSED_E:
	case SOCKET_ERROR_E:
		if (c->rst || c->sock_error == ECONNRESET || c->sock_error == EPIPE) {
			tlsq__conn_fail(c, TLSQ_ECONNRESET, "connection reset by peer %s", during);
			return TLSQ_ECONNRESET;
		}
		/* Before c->eof: a failed read sets it too, and a dead peer found
		 * by keepalive (ETIMEDOUT) or a local error is no truncation. */
		if (c->sock_error != 0)
			return tlsq__sock_fail(c, c->sock_error, during);
		if (c->eof) {
			tlsq__conn_fail(c, TLSQ_ETRUNCATED,
			                "peer closed the TCP connection without close_notify %s",
			                during);
			return TLSQ_ETRUNCATED;
		}
		tlsq__conn_fail(c, TLSQ_EIO, "socket error %s", during);
		return TLSQ_EIO;
	case FATAL_ERROR:
		if (h.last_rx.code >= 0 && h.last_rx.level == 2) {
			int cert = h.last_rx.code == 42 || h.last_rx.code == 45 ||
			           h.last_rx.code == 46 || h.last_rx.code == 48 ||
			           h.last_rx.code == 116;
			tlsq__conn_fail(c, cert ? TLSQ_ECERT : TLSQ_ETLS,
			                "peer sent fatal alert %s (%d) %s",
			                alert_name(h.last_rx.code), h.last_rx.code, during);
			return cert ? TLSQ_ECERT : TLSQ_ETLS;
		}
		break;
	case ASN_NO_SIGNER_E:
	case ASN_AFTER_DATE_E:
	case ASN_BEFORE_DATE_E:
	case DOMAIN_NAME_MISMATCH:
	case IPADDR_MISMATCH:
	case VERIFY_CERT_ERROR:
		tlsq__conn_fail(c, TLSQ_ECERT, "certificate verify failed: %s",
		                wolfSSL_ERR_reason_error_string((unsigned long)e));
		return TLSQ_ECERT;
	case NO_PEER_CERT:
		tlsq__conn_fail(c, TLSQ_ECERT, "peer sent no certificate but one is required");
		return TLSQ_ECERT;
	case MATCH_SUITE_ERROR:
		tlsq__conn_fail(c, TLSQ_ETLS, "no cipher suite in common with the peer %s",
		                during);
		return TLSQ_ETLS;
	case VERSION_ERROR:
		tlsq__conn_fail(c, TLSQ_ETLS, "no TLS version in common with the peer %s",
		                during);
		return TLSQ_ETLS;
	case DUPLICATE_MSG_E:
	case SECURE_RENEGOTIATION_E:
		tlsq__conn_fail(c, TLSQ_ETLS, "renegotiation refused (peer tried to renegotiate)");
		return TLSQ_ETLS;
	case UNKNOWN_ALPN_PROTOCOL_NAME_E:
		tlsq__conn_fail(c, TLSQ_ETLS, "no ALPN protocol in common with the peer");
		return TLSQ_ETLS;
	default:
		break;
	}
	wolfSSL_ERR_error_string_n((unsigned long)e, buf, sizeof buf);
	const char *reason = wolfSSL_ERR_reason_error_string((unsigned long)e);
	tlsq__conn_fail(c, TLSQ_ETLS, "TLS error %s: %s (%d)", during,
	                reason ? reason : buf, e);
	return TLSQ_ETLS;
}

/* 1 if the peer's first bytes can start a TLS connection: a TLS record
 * (content type 20..23, version major 3) or an SSLv2-style ClientHello
 * (length with the top bit, then message type 1). */
static int looks_like_tls(const struct tlsq_conn *c)
{
	const unsigned char *b = c->first_in;
	if (c->first_in_len < 2)
		return 1; /* too little to tell */
	if (b[0] >= 20 && b[0] <= 23)
		return b[1] == 3;
	if (b[0] & 0x80)
		return c->first_in_len < 3 || b[2] == 1;
	return 0;
}

/* see iotask.h */
int tlsq__tls_fail_reason(const struct tlsq_conn *c)
{
	int err = atomic_load(&c->error);
	if (c->first_in_len > 0 && !looks_like_tls(c))
		return TLSQ_FAIL_NOT_TLS;
	if (err == TLSQ_ETIMEDOUT && c->tls_fail_err == 0)
		return TLSQ_FAIL_TIMEOUT;
	switch (c->tls_fail_err) {
	case 0: break;
	case NO_PEER_CERT: return TLSQ_FAIL_NO_CLIENT_CERT;
	case VERSION_ERROR: return TLSQ_FAIL_VERSION;
	case MATCH_SUITE_ERROR: return TLSQ_FAIL_CIPHER;
	case SOCKET_PEER_CLOSED_E:
	case SOCKET_ERROR_E:
		return err == TLSQ_ETRUNCATED || err == TLSQ_ECONNRESET ? TLSQ_FAIL_PEER_CLOSED
		                                                        : TLSQ_FAIL_OTHER;
	case FATAL_ERROR:
		if (c->tls_fail_alert == 70) /* protocol_version */
			return TLSQ_FAIL_VERSION;
		if (c->tls_fail_alert == 40 || c->tls_fail_alert == 71) /* handshake_failure */
			return TLSQ_FAIL_CIPHER;
		if (c->tls_fail_alert == 116) /* certificate_required */
			return TLSQ_FAIL_NO_CLIENT_CERT;
		if (c->tls_fail_alert >= 0)
			return TLSQ_FAIL_PEER_ALERT;
		return TLSQ_FAIL_PROTOCOL;
	default:
		if (err == TLSQ_ECERT)
			return TLSQ_FAIL_CLIENT_CERT;
		return TLSQ_FAIL_PROTOCOL;
	}
	switch (err) {
	case TLSQ_ECERT: return TLSQ_FAIL_CLIENT_CERT;
	case TLSQ_ETIMEDOUT: return TLSQ_FAIL_TIMEOUT;
	case TLSQ_ETRUNCATED:
	case TLSQ_ECONNRESET: return TLSQ_FAIL_PEER_CLOSED;
	case TLSQ_ETLS: return TLSQ_FAIL_PROTOCOL;
	default: return TLSQ_FAIL_OTHER;
	}
}

/* ------------------------------------------------------------------------ */
/* Per connection                                                            */
/* ------------------------------------------------------------------------ */

int tlsq__tls_ssl_new(struct tlsq_conn *c, const char *host)
{
	struct tlsq_tls *t = c->tls;
	struct tlsq__cred *k = cred_get(t);
	WOLFSSL *ssl = wolfSSL_new(k->ctx);
	if (ssl == NULL) {
		cred_unref(k);
		tlsq__conn_fail(c, TLSQ_ENOMEM, "out of memory creating the TLS session");
		return TLSQ_ENOMEM;
	}
	c->ssl = (tlsq__tls_ssl *)ssl;
	c->cred = k; /* until tlsq__tls_ssl_free */
	wolfSSL_SetIOReadCtx(ssl, c);
	wolfSSL_SetIOWriteCtx(ssl, c);
	if (c->role == TLSQ_CLIENT) {
		const char *name = t->server_name ? t->server_name : host;
		if (name && name[0]) {
			snprintf(c->sni, sizeof c->sni, "%s", name);
			/* SNI is for DNS names only (RFC 6066 §3). */
			unsigned char ip[16];
			int is_ip = ip_literal(name, ip) != 0 || strchr(name, ':');
			if (!is_ip)
				wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, name, (word16)strlen(name));
			/* An IP literal is checked by tls_verify_cb (TLS_OWN_IP_CHECK). */
			if (k->verify != TLSQ_VERIFY_NONE && !(is_ip && TLS_OWN_IP_CHECK) &&
			    wolfSSL_check_domain_name(ssl, name) != WOLFSSL_SUCCESS) {
				tlsq__conn_fail(c, TLSQ_ENOMEM, "cannot set the host name to check");
				return TLSQ_ENOMEM;
			}
		}
		if (t->session_resumption) {
			pthread_mutex_lock(&t->session_mu);
			/* Not a ticket verified under credentials a reload replaced. */
			if (t->session && t->session_gen == k->gen)
				wolfSSL_set_session(ssl, (WOLFSSL_SESSION *)t->session);
			pthread_mutex_unlock(&t->session_mu);
		}
	}
	if (t->alpn)
		wolfSSL_UseALPN(ssl, t->alpn, (word32)strlen(t->alpn),
		                c->role == TLSQ_CLIENT ? WOLFSSL_ALPN_FAILED_ON_MISMATCH
		                                       : WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
	return 0;
}

void tlsq__tls_ssl_free(struct tlsq_conn *c)
{
	if (c->ssl) {
		wolfSSL_free(ssl_of(c));
		c->ssl = NULL;
	}
	cred_unref(c->cred);
	c->cred = NULL;
}

/*
 * A handshake failed: if the peer's first bytes cannot start a TLS record
 * (content type 20..24, then major version 3), the peer speaks another
 * protocol (an HTTP server, curl http://, a plain-text client). Say so and
 * show what it sent, instead of the record-layer error it caused.
 */
static int tls_not_tls(struct tlsq_conn *c)
{
	unsigned char b[sizeof c->first_in];
	size_t n = c->first_in_len;
	memcpy(b, c->first_in, n);
	/* wolfSSL read only a record header (5 bytes): show what follows too. */
	if (n < sizeof b) {
		ev_ssize_t more = evbuffer_copyout(c->in, b + n, sizeof b - n);
		if (more > 0)
			n += (size_t)more;
	}
	if (n == 0 || (b[0] >= 20 && b[0] <= 24 && (n < 2 || b[1] == 3)))
		return 0;
	char shown[4 * sizeof c->first_in + 1];
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (b[i] == '\r' || b[i] == '\n')
			w += (size_t)snprintf(shown + w, sizeof shown - w, "\\%c",
			                      b[i] == '\r' ? 'r' : 'n');
		else if (isprint(b[i]) && b[i] != '\\' && b[i] != '\'')
			shown[w++] = (char)b[i];
		else
			w += (size_t)snprintf(shown + w, sizeof shown - w, "\\x%02x", b[i]);
	}
	shown[w] = 0;
	tlsq__conn_fail(c, TLSQ_ETLS, "the peer does not speak TLS (it sent '%s%s')", shown,
	                n == sizeof b ? "..." : "");
	return 1;
}

int tlsq__tls_handshake(struct tlsq_conn *c)
{
	WOLFSSL *ssl = ssl_of(c);
	tls_current = c;
	int r = c->role == TLSQ_CLIENT ? wolfSSL_connect(ssl) : wolfSSL_accept(ssl);
	tls_current = NULL;
	if (r == WOLFSSL_SUCCESS)
		return tls_peer_done(c) == 0 ? 1 : TLSQ_ECERT;
	int e = wolfSSL_get_error(ssl, r);
	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
		return 0;
	if (tls_not_tls(c))
		return TLSQ_ETLS;
	return tls_fail(c, r, "during the handshake");
}

void tlsq__tls_publish(struct tlsq_conn *c)
{
	WOLFSSL *ssl = ssl_of(c);
	const char *v = wolfSSL_get_version(ssl);
	snprintf(c->version, sizeof c->version, "%s", v ? v : "");
	c->tls13 = wolfSSL_version(ssl) == TLS1_3_VERSION;
	unsigned short cs = (unsigned short)wolfSSL_get_current_cipher_suite(ssl);
	const char *iana = wolfSSL_get_cipher_name_iana_from_suite((byte)(cs >> 8), (byte)cs);
	if (iana == NULL)
		iana = wolfSSL_get_cipher_name(ssl);
	snprintf(c->cipher, sizeof c->cipher, "%s", iana ? iana : "");
	const char *g = wolfSSL_get_curve_name(ssl);
	snprintf(c->group, sizeof c->group, "%s", g ? g : "");
	char *p = NULL;
	unsigned short plen = 0;
	if (wolfSSL_ALPN_GetProtocol(ssl, &p, &plen) == WOLFSSL_SUCCESS && p)
		snprintf(c->alpn, sizeof c->alpn, "%.*s", (int)plen, p);
	if (c->role == TLSQ_SERVER) {
		void *sni = NULL;
		word16 n = wolfSSL_SNI_GetRequest(ssl, WOLFSSL_SNI_HOST_NAME, &sni);
		if (n > 0 && sni)
			snprintf(c->sni, sizeof c->sni, "%.*s", (int)n, (const char *)sni);
	}
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(ssl);
	if (x) {
		cert_subject(x, c->peer_subject, sizeof c->peer_subject);
		wolfSSL_X509_free(x);
	}
	c->resumed = wolfSSL_session_reused(ssl) == 1;
	c->verify_reason[0] = 0; /* verified: no later failure is a certificate's */
}

int tlsq__tls_read(struct tlsq_conn *c, void *buf, int n)
{
	WOLFSSL *ssl = ssl_of(c);
	tls_current = c;
	c->in_read = 1;
	int r = wolfSSL_read(ssl, buf, n);
	c->in_read = 0;
	tls_current = NULL;
	if (r > 0)
		return r;
	int e = wolfSSL_get_error(ssl, r);
	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
		return 0;
	if (e == WOLFSSL_ERROR_ZERO_RETURN)
		return TLSQ__TLS_EOF;
	return tls_fail(c, r, "while receiving");
}

int tlsq__tls_write(struct tlsq_conn *c, const void *buf, int n)
{
	WOLFSSL *ssl = ssl_of(c);
	int r = wolfSSL_write(ssl, buf, n);
	if (r == n)
		return r;
	if (r > 0) { /* cannot happen with a send callback that never blocks */
		tlsq__conn_fail(c, TLSQ_ETLS, "TLS write was cut short (%d of %d)", r, n);
		return TLSQ_ETLS;
	}
	return tls_fail(c, r, "while sending");
}

int tlsq__tls_shutdown(struct tlsq_conn *c)
{
	WOLFSSL *ssl = ssl_of(c);
	/* Once only (note §5): the return is NOT_DONE (close_notify sent, peer's
	 * not seen yet), or 1 if the peer's was read already; the record is in
	 * c->out either way since our send callback never blocks. */
	int r = wolfSSL_shutdown(ssl);
	if (wolfSSL_get_shutdown(ssl) & WOLFSSL_SENT_SHUTDOWN)
		c->notify_built = 1;
	if (r == WOLFSSL_SHUTDOWN_NOT_DONE || r == WOLFSSL_SUCCESS)
		return 0;
	if (wolfSSL_get_shutdown(ssl) & WOLFSSL_SENT_SHUTDOWN)
		return 0;
	return tls_fail(c, r, "while sending close_notify");
}

int tlsq__tls_key_update(struct tlsq_conn *c)
{
	WOLFSSL *ssl = ssl_of(c);
	int r = wolfSSL_update_keys(ssl);
	if (r == WOLFSSL_SUCCESS)
		return 0;
	return tls_fail(c, r, "while sending KeyUpdate");
}

void tlsq__tls_save_session(struct tlsq_conn *c)
{
	struct tlsq_tls *t = c->tls;
	if (c->role != TLSQ_CLIENT || !t->session_resumption || c->ssl == NULL)
		return;
	WOLFSSL_SESSION *s = wolfSSL_get1_session(ssl_of(c));
	if (s == NULL)
		return;
	pthread_mutex_lock(&t->session_mu);
	WOLFSSL_SESSION *old = t->session;
	t->session = s;
	t->session_gen = c->cred->gen;
	pthread_mutex_unlock(&t->session_mu);
	if (old)
		wolfSSL_SESSION_free(old);
}

/*
 * The alert a failing connection ends with.
 *
 * wolfSSL 5.5.4 has no public call that sends an alert. Its internal
 * SendAlert (internal.c; declared WOLFSSL_LOCAL in wolfssl/internal.h, which
 * is not installed) is a global symbol of the static libwolfssl.a that the
 * bundled build links into tlsq: WOLFSSL_LOCAL is hidden visibility, which
 * only hides a symbol across a shared object's boundary, not inside one link.
 * SendAlert builds the record (encrypted once keys are on: TLS 1.3 handshake
 * keys after the ServerHello, traffic keys after it), appends it to wolfSSL's
 * output buffer and calls SendBuffered, that is our send callback, which
 * never refuses: the record is in c->out when it returns (checked below, and
 * by tests/peers/alerts.py on the wire). A fatal alert also sets wolfSSL's
 * isClosed, so no close_notify can follow it. A system wolfSSL
 * (TLSQ_WOLFSSL=system, a shared library) does not export the symbol: there
 * the deliberate ends close without an alert (documented in
 * docs/reliability.md).
 */
#ifdef TLSQ_WOLFSSL_DEBIAN
#define TLS_CAN_SEND_ALERT 1
int SendAlert(WOLFSSL *ssl, int severity, int type); /* wolfssl/internal.h */
#else
#define TLS_CAN_SEND_ALERT 0
#endif

/* The alert for a failure that tlsq decided (not wolfSSL, not the socket):
 * -1 for none. See docs/guarantees.md, "Which alert each end sends". */
static int end_alert_for(struct tlsq_conn *c, int err)
{
	switch (err) {
	case TLSQ_ETIMEDOUT:
		/* tlsq's own deadlines only (a TCP timeout is a socket error and
		 * never gets here), and only once a handshake has started: a
		 * client sent its ClientHello when its WOLFSSL was made, a
		 * server has seen the peer's first bytes. */
		if (!atomic_load(&c->opened) && c->role == TLSQ_SERVER && c->first_in_len == 0)
			return -1;
		/* TLS has no timeout alert. user_canceled (90) is the closest
		 * by its definition, but it is a closure alert that a TLS 1.3
		 * peer ignores (OpenSSL does): the peer would learn nothing.
		 * internal_error is fatal everywhere and defined as "unrelated
		 * to the peer or the correctness of the protocol". */
		return internal_error; /* 80 */
	case TLSQ_EMSGSIZE:
	case TLSQ_EPROTO:
		/* Message mode: a length over max_message, or close_notify
		 * inside a message. */
		return decode_error; /* 50 */
	case TLSQ_ETLS:
		return c->ku_storm ? unexpected_message : -1; /* 10: KeyUpdate storm */
	case TLSQ_ENOMEM:
		return internal_error; /* 80 */
	default:
		return -1;
	}
}

/* see iotask.h */
int tlsq__tls_end_alert(struct tlsq_conn *c)
{
	WOLFSSL *ssl = ssl_of(c);
	if (ssl == NULL)
		return -1;
	WOLFSSL_ALERT_HISTORY h;
	memset(&h, 0, sizeof h);
	wolfSSL_get_alert_history(ssl, &h);
	if (h.last_rx.level == alert_fatal)
		tlsq__count(&c->engine->stats.alerts_received, 1);
	if (h.last_tx.level == alert_fatal) { /* wolfSSL sent it (bad_record_mac, ...) */
		tlsq__count(&c->engine->stats.alerts_sent, 1);
		return h.last_tx.code;
	}
	int desc = end_alert_for(c, atomic_load(&c->error));
	/* Nothing after the peer's fatal alert (it has gone) or after our
	 * close_notify (no record may follow it; wolfSSL_get_shutdown cannot
	 * tell: it reports both directions shut during a handshake). */
	if (desc < 0 || h.last_rx.level == alert_fatal || c->send_closed)
		return -1;
#if TLS_CAN_SEND_ALERT
	/* (the record may have gone straight to the socket: count records) */
	uint64_t before = tlsq__counter_get(&c->records_sent);
	if (SendAlert(ssl, alert_fatal, desc) != 0 || tlsq__counter_get(&c->records_sent) == before)
		return -1;
	tlsq__count(&c->engine->stats.alerts_sent, 1);
	return desc;
#else
	return -1;
#endif
}

/* ------------------------------------------------------------------------ */
/* Profiles                                                                  */
/* ------------------------------------------------------------------------ */

/* An in-memory self-signed ECDSA P-256 certificate for localhost,
 * 127.0.0.1 and ::1 (note §9). isCA so that a client may trust it directly. */
static int make_self_signed(WOLFSSL_CTX *ctx, char **pem_out)
{
	static const unsigned char san[] = {
	    0x30, 0x23,                                              /* GeneralNames */
	    0x82, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', /* dNSName */
	    0x87, 0x04, 127, 0,   0,   1,                            /* iPAddress */
	    0x87, 0x10, 0,   0,   0,   0,   0,   0,   0,   0,        /* iPAddress ::1 */
	    0,    0,    0,   0,   0,   0,   0,   1,
	};
	WC_RNG rng;
	ecc_key key;
	Cert *cert = calloc(1, sizeof *cert);
	unsigned char *der = malloc(4096), kder[256];
	char *pem = malloc(8192);
	int rc = TLSQ_ENOMEM, dsz = 0, ksz = 0;
	if (!cert || !der || !pem)
		goto out_nomem;
	if (wc_InitRng(&rng) != 0)
		goto out_nomem;
	if (wc_ecc_init(&key) != 0)
		goto out_rng;
	rc = TLSQ_EINVAL;
	if (wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1) != 0)
		goto out_key;
	wc_InitCert(cert);
	snprintf(cert->subject.commonName, CTC_NAME_SIZE, "localhost");
	snprintf(cert->subject.org, CTC_NAME_SIZE, "tlsq self-signed");
	cert->sigType = CTC_SHA256wECDSA;
	cert->daysValid = 365;
	cert->isCA = 1;
	memcpy(cert->altNames, san, sizeof san);
	cert->altNamesSz = (int)sizeof san;
	if (wc_MakeCert(cert, der, 4096, NULL, &key, &rng) < 0)
		goto out_key;
	dsz = wc_SignCert(cert->bodySz, cert->sigType, der, 4096, NULL, &key, &rng);
	if (dsz < 0)
		goto out_key;
	ksz = wc_EccKeyToDer(&key, kder, sizeof kder);
	if (ksz < 0)
		goto out_key;
	if (wolfSSL_CTX_use_certificate_buffer(ctx, der, dsz, WOLFSSL_FILETYPE_ASN1) !=
	        WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_use_PrivateKey_buffer(ctx, kder, ksz, WOLFSSL_FILETYPE_ASN1) !=
	        WOLFSSL_SUCCESS)
		goto out_key;
	int psz = wc_DerToPem(der, (word32)dsz, (byte *)pem, 8191, CERT_TYPE);
	if (psz < 0)
		goto out_key;
	pem[psz] = 0;
	*pem_out = pem;
	pem = NULL;
	rc = 0;
out_key:
	wc_ecc_free(&key);
	memset(kder, 0, sizeof kder); /* key material: not left on the stack */
	__asm__ __volatile__("" : : "r"(kder) : "memory");
out_rng:
	wc_FreeRng(&rng);
out_nomem:
	if (rc == TLSQ_ENOMEM)
		tlsq__set_last_error("out of memory generating a self-signed certificate");
	else if (rc != 0)
		tlsq__set_last_error("generating the self-signed certificate failed");
	free(cert);
	free(der);
	free(pem);
	return rc;
}

/* Wipes and frees a buffer that may hold key material. */
static void free_secret(char *s)
{
	if (s == NULL)
		return;
	memset(s, 0, strlen(s));
	__asm__ __volatile__("" : : "r"(s) : "memory");
	free(s);
}

/* The label of the first PEM block in text ("CERTIFICATE"), or "". */
static void pem_label(const char *text, char *out, size_t cap)
{
	const char *b = strstr(text, "-----BEGIN ");
	const char *e = b ? strstr(b + 11, "-----") : NULL;
	out[0] = 0;
	if (e)
		snprintf(out, cap, "%.*s", (int)(e - b - 11), b + 11);
}

/* Reads a whole file (binary: DER keys hold NULs), NUL-terminated for the
 * text checks; *len without the NUL. NULL with errno on failure. */
static char *read_file_bytes(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0, got;
	char *s = malloc(cap);
	while (s && (got = fread(s + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (cap - n < 2) {
			char *t = realloc(s, cap * 2);
			if (!t) {
				memset(s, 0, n);
				free(s);
				s = NULL;
				break;
			}
			s = t;
			cap *= 2;
		}
	}
	fclose(f);
	if (s) {
		s[n] = 0;
		*len = n;
	}
	return s;
}

/* A whole text file, NUL-terminated, or NULL with errno. */
static char *read_text_file(const char *path)
{
	size_t len;
	return read_file_bytes(path, &len);
}

static void free_secret_n(char *s, size_t n)
{
	if (s == NULL)
		return;
	memset(s, 0, n);
	__asm__ __volatile__("" : : "r"(s) : "memory");
	free(s);
}

static int is_pem(const char *buf, size_t n)
{
	return memmem(buf, n, "-----BEGIN ", 11) != NULL;
}

static int key_encrypted(const char *text)
{
	return strstr(text, "ENCRYPTED PRIVATE KEY-----") || strstr(text, "Proc-Type: 4,ENCRYPTED");
}

/* Why a private key that wolfSSL refused did not load, in words. */
static void key_load_error(const char *what, const char *text, size_t n, int have_password)
{
	char label[64];
	if (!is_pem(text, n) && have_password) {
		tlsq__set_last_error("cannot use the DER private key %s: wrong password? (or a "
		                     "damaged file, or a key type tlsq does not support)",
		                     what);
		return;
	}
	if (!is_pem(text, n)) {
		tlsq__set_last_error("the private key %s is neither PEM nor a DER key tlsq can use "
		                     "(a damaged file, or a key type tlsq does not support)",
		                     what);
		return;
	}
	pem_label(text, label, sizeof label);
	if (key_encrypted(text) && !have_password)
		tlsq__set_last_error("the private key %s is encrypted: give its password "
		                     "(key_password; the programs: --key-password-file FILE)",
		                     what);
	else if (key_encrypted(text))
		tlsq__set_last_error("cannot decrypt the private key %s: wrong password? (or an "
		                     "encryption tlsq does not support: use PKCS#8 with AES, "
		                     "openssl pkey -aes256)",
		                     what);
	else if (strstr(label, "PRIVATE KEY") == NULL)
		tlsq__set_last_error(
		    "%s holds no private key but a PEM \"%s\"%s", what, label,
		    strcmp(label, "CERTIFICATE") ? "" : " (certificate and key swapped?)");
	else
		tlsq__set_last_error("the private key %s cannot be used (\"%s\": a key type tlsq "
		                     "does not support, or a damaged file)",
		                     what, label);
}

/* wolfSSL's password callback for an encrypted key: key_password. */
static int key_password_cb(char *buf, int size, int rw, void *userdata)
{
	(void)rw;
	const char *pw = userdata;
	int n = pw ? (int)strlen(pw) : 0;
	if (n <= 0 || n > size)
		return -1;
	memcpy(buf, pw, (size_t)n);
	return n;
}

/* Loads the own private key (PEM or DER, encrypted with key_password) and
 * checks that it belongs to the certificate. */
static int tls_load_key(const tlsq_tls_config *cfg, WOLFSSL_CTX *ctx)
{
	int kr, enc = 0;
	char *text = NULL;
	size_t n = 0;
	const char *what = cfg->key_file ? cfg->key_file : "(key_pem)";
	if (cfg->key_password) {
		/* Only for the load below: the context keeps no pointer to it. */
		wolfSSL_CTX_set_default_passwd_cb(ctx, key_password_cb);
		wolfSSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)cfg->key_password);
	}
	if (cfg->key_file) {
		errno = 0;
		text = read_file_bytes(cfg->key_file, &n);
		if (text == NULL) {
			tlsq__set_last_error("cannot read the private key %s: %s", cfg->key_file,
			                     errno ? strerror(errno) : "out of memory");
			kr = -1;
			goto out;
		}
		enc = is_pem(text, n) && key_encrypted(text);
		kr = wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)text, (long)n,
		                                       is_pem(text, n) ? WOLFSSL_FILETYPE_PEM
		                                                       : WOLFSSL_FILETYPE_ASN1);
		if (kr != WOLFSSL_SUCCESS)
			key_load_error(what, text, n, cfg->key_password != NULL);
	} else if (cfg->key_pem) {
		n = strlen(cfg->key_pem);
		enc = key_encrypted(cfg->key_pem);
		kr = wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)cfg->key_pem,
		                                       (long)n, WOLFSSL_FILETYPE_PEM);
		if (kr != WOLFSSL_SUCCESS && !is_pem(cfg->key_pem, n))
			tlsq__set_last_error("the private key (key_pem) is not PEM (DER keys load "
			                     "from key_file)");
		else if (kr != WOLFSSL_SUCCESS)
			key_load_error(what, cfg->key_pem, n, cfg->key_password != NULL);
	} else {
		tlsq__set_last_error("a certificate needs its private key (key_file or key_pem)");
		kr = -1;
	}
out:
	if (cfg->key_password) {
		wolfSSL_CTX_set_default_passwd_cb(ctx, NULL);
		wolfSSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	}
	free_secret_n(text, n);
	if (kr != WOLFSSL_SUCCESS)
		return TLSQ_EINVAL;
	/* wolfSSL loads a key of another certificate without a word; every
	 * handshake would then fail at the peer (-330 "verify problem based on
	 * signature"). */
	if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
		/* A traditional encrypted PEM key (AES-CBC, no integrity check)
		 * decrypts with a wrong password into a key of garbage. */
		if (enc && cfg->key_password)
			tlsq__set_last_error(
			    "cannot decrypt the private key %s: wrong password? (if "
			    "it is right, the key does not match the certificate %s)",
			    what, cfg->cert_file ? cfg->cert_file : "(cert_pem)");
		else
			tlsq__set_last_error("the private key %s does not match the certificate %s",
			                     what, cfg->cert_file ? cfg->cert_file : "(cert_pem)");
		return TLSQ_EINVAL;
	}
	return 0;
}

/* Why a certificate file that wolfSSL refused did not load. */
static void cert_load_error(const char *path)
{
	errno = 0;
	char *text = read_text_file(path);
	char label[64] = "";
	if (text)
		pem_label(text, label, sizeof label);
	if (text == NULL)
		tlsq__set_last_error("cannot read the certificate %s: %s", path,
		                     errno ? strerror(errno) : "out of memory");
	else if (label[0] == 0)
		tlsq__set_last_error("the certificate %s is not PEM (DER? convert it: openssl x509 "
		                     "-inform DER -in CERT -out CERT.pem)",
		                     path);
	else if (strcmp(label, "CERTIFICATE") != 0)
		tlsq__set_last_error(
		    "%s holds no certificate but a PEM \"%s\"%s", path, label,
		    strstr(label, "PRIVATE KEY") ? " (certificate and key swapped?)" : "");
	else
		tlsq__set_last_error("the certificate %s cannot be used (damaged, or a key type "
		                     "tlsq does not support)",
		                     path);
	free_secret(text);
}

/* Appends one warning line to t->warnings. */
static void warn(struct tlsq__cred *t, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	size_t old = t->warnings ? strlen(t->warnings) : 0;
	char *w = realloc(t->warnings, old + strlen(line) + 2);
	if (w == NULL)
		return; /* a warning is not worth failing for */
	snprintf(w + old, strlen(line) + 2, "%s%s", old ? "\n" : "", line);
	t->warnings = w;
}

static void asn1_time_str(const WOLFSSL_ASN1_TIME *a, char *buf, size_t cap)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	if (wolfSSL_ASN1_TIME_to_tm(a, &tm) != WOLFSSL_SUCCESS ||
	    strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, cap, "(unreadable date)");
}

/* Own certificate trouble that does not stop tlsq from starting but will
 * make peers refuse the handshake: tlsq_tls_warnings. */
static void tls_cert_warnings(struct tlsq__cred *t, tlsq_role role, const char *what)
{
	WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(
	    (const unsigned char *)t->cert_pem, (int)strlen(t->cert_pem), WOLFSSL_FILETYPE_PEM);
	if (x == NULL)
		return;
	char when[64];
	const WOLFSSL_ASN1_TIME *nb = wolfSSL_X509_get_notBefore(x);
	const WOLFSSL_ASN1_TIME *na = wolfSSL_X509_get_notAfter(x);
	if (na && wolfSSL_X509_cmp_current_time(na) < 0) {
		asn1_time_str(na, when, sizeof when);
		warn(t,
		     "the certificate %s expired on %s: peers that verify it will refuse the "
		     "handshake",
		     what, when);
	} else if (nb && wolfSSL_X509_cmp_current_time(nb) > 0) {
		asn1_time_str(nb, when, sizeof when);
		warn(t,
		     "the certificate %s is not valid before %s: peers that verify it will "
		     "refuse the handshake until then (is the clock right?)",
		     what, when);
	}
	if (role == TLSQ_SERVER && wolfSSL_X509_get_isCA(x)) {
		unsigned ku = wolfSSL_X509_get_keyUsage(x);
		warn(t,
		     "the certificate %s is a CA certificate (basicConstraints CA:TRUE%s); many "
		     "clients refuse one as a server certificate: use a certificate the CA issued",
		     what,
		     ku && !(ku & KEYUSE_DIGITAL_SIG) ? ", key usage without digitalSignature"
		                                      : "");
	}
	wolfSSL_X509_free(x);
}

/* Why CA locations that wolfSSL refused did not load: errno first. */
static void ca_load_error(const char *file, const char *dir)
{
	if (file) {
		FILE *f = fopen(file, "rb");
		if (f == NULL) {
			tlsq__set_last_error("cannot read the CA file %s: %s", file,
			                     strerror(errno));
			return;
		}
		fclose(f);
	}
	if (dir) {
		DIR *d = opendir(dir);
		if (d == NULL) {
			tlsq__set_last_error("cannot read the CA directory %s: %s", dir,
			                     strerror(errno));
			return;
		}
		closedir(d);
	}
	tlsq__set_last_error("the CA %s %s holds no usable PEM certificate (a file that is not "
	                     "PEM, or a damaged one)",
	                     file ? "file" : "directory", file ? file : dir);
}

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
	wolfSSL_CTX_SetIORecv(ctx, tls_recv_cb);
	wolfSSL_CTX_SetIOSend(ctx, tls_send_cb);

	/* Own certificate and key. */
	if (cfg->self_signed) {
		int rc = make_self_signed(ctx, &t->cert_pem);
		if (rc)
			return rc;
	} else if (cfg->cert_file || cfg->cert_pem) {
		if (cfg->cert_file) {
			if (wolfSSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) !=
			    WOLFSSL_SUCCESS) {
				cert_load_error(cfg->cert_file);
				return TLSQ_EINVAL;
			}
			t->cert_pem = read_text_file(cfg->cert_file);
		} else {
			if (wolfSSL_CTX_use_certificate_chain_buffer(
			        ctx, (const unsigned char *)cfg->cert_pem,
			        (long)strlen(cfg->cert_pem)) != WOLFSSL_SUCCESS) {
				tlsq__set_last_error("cert_pem is not a PEM certificate");
				return TLSQ_EINVAL;
			}
			t->cert_pem = strdup(cfg->cert_pem);
		}
		int rc = tls_load_key(cfg, ctx);
		if (rc)
			return rc;
		if (t->cert_pem)
			tls_cert_warnings(t, p->role,
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
	int rc = tls_pins_load(t, cfg->pins);
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
			ca_load_error(cfg->ca_file, cfg->ca_dir);
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
		if (client && wolfSSL_CTX_load_verify_locations(ctx, SYSTEM_CA_FILE, NULL) ==
		                  WOLFSSL_SUCCESS)
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
	wolfSSL_CTX_set_verify(ctx, mode, mode == WOLFSSL_VERIFY_NONE ? NULL : tls_verify_cb);
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

/* The own certificate's subject and expiry, for tlsq__tls_cert_summary. */
static void cred_summary(struct tlsq__cred *k)
{
	if (k->cert_pem == NULL)
		return;
	WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(
	    (const unsigned char *)k->cert_pem, (int)strlen(k->cert_pem), WOLFSSL_FILETYPE_PEM);
	if (x == NULL)
		return;
	cert_subject(x, k->subject, sizeof k->subject);
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const WOLFSSL_ASN1_TIME *na = wolfSSL_X509_get_notAfter(x);
	if (na && wolfSSL_ASN1_TIME_to_tm(na, &tm) == WOLFSSL_SUCCESS)
		k->not_after = (int64_t)timegm(&tm);
	wolfSSL_X509_free(x);
}

int tlsq__tls_cert_summary(const struct tlsq_tls *t, char *subject, size_t cap, int64_t *not_after)
{
	struct tlsq__cred *k = cred_get(t);
	int rc = k->subject[0] ? 0 : -1;
	snprintf(subject, cap, "%s", k->subject);
	*not_after = k->not_after;
	cred_unref(k);
	return rc;
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
	if (*rc) {
		cred_unref(k);
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
	cred_unref(t->cred);
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
	struct tlsq__cred *k = cred_get(t);
	ssize_t rc;
	if (k->cert_pem == NULL) {
		rc = TLSQ_EINVAL;
	} else {
		size_t n = strlen(k->cert_pem);
		rc = n + 1 > cap ? TLSQ_EMSGSIZE : (ssize_t)n;
		if (rc >= 0)
			memcpy(buf, k->cert_pem, n + 1);
	}
	cred_unref(k);
	return rc;
}

/* see tlsq.h */
const char *tlsq_tls_warnings(const tlsq_tls *t)
{
	if (t == NULL)
		return NULL;
	/* The profile's own reference keeps the string until the next reload. */
	struct tlsq__cred *k = cred_get(t);
	const char *w = k->warnings;
	cred_unref(k);
	return w;
}

/* ------------------------------------------------------------------------ */
/* Peer certificates and pins                                                */
/* ------------------------------------------------------------------------ */
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
static int tls_pins_load(struct tlsq__cred *t, const char *list)
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
static int tls_peer_done(struct tlsq_conn *c)
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
		cert_subject(x, subject, sizeof subject);
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
