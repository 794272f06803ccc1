/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tls.c - the wolfSSL binding, per connection: the IO callbacks, the
 * handshake, read, write, shutdown, KeyUpdate, alerts, and wolfSSL's errors
 * translated into tlsq errors a person understands; also the process-wide
 * wolfSSL initialisation. The rest of the binding (the only files of tlsq
 * that include wolfSSL, sharing tls_int.h): profile.c (profiles and their
 * credential sets), credload.c (reading certificates, keys and CAs),
 * peercert.c (the peer's certificates, pins, the verify callback and hook).
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
 *   lock: see tlsq__cred_get in profile.c) and drops it when its SSL is freed. A handshake
 * therefore sees one credential set from first byte to last, never a half-loaded one, and live
 * connections keep the set they started with.
 * - wolfSSL_shutdown is called once per connection (a second call would
 *   build a second close_notify, note §5).
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/version.h>

#include <cpuid.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "tls_int.h"

/* The connection whose wolfSSL call is running on this IO thread: the verify
 * callback has no other way to find it. */
static _Thread_local struct tlsq_conn *tls_current;

struct tlsq_conn *tlsq__tls_current(void)
{
	return tls_current;
}

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

int tlsq__tls_recv_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx)
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
		c->tls_rx_need = (uint32_t)sz; /* the rest of a header or a body */
		return WOLFSSL_CBIO_ERR_WANT_READ;
	}
	c->tls_rx_need = 0;
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

int tlsq__tls_send_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx)
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
	case 0:
		return "close_notify";
	case 10:
		return "unexpected_message";
	case 20:
		return "bad_record_mac";
	case 22:
		return "record_overflow";
	case 40:
		return "handshake_failure";
	case 42:
		return "bad_certificate";
	case 43:
		return "unsupported_certificate";
	case 44:
		return "certificate_revoked";
	case 45:
		return "certificate_expired";
	case 46:
		return "certificate_unknown";
	case 47:
		return "illegal_parameter";
	case 48:
		return "unknown_ca";
	case 49:
		return "access_denied";
	case 50:
		return "decode_error";
	case 51:
		return "decrypt_error";
	case 70:
		return "protocol_version";
	case 71:
		return "insufficient_security";
	case 80:
		return "internal_error";
	case 86:
		return "inappropriate_fallback";
	case 90:
		return "user_canceled";
	case 100:
		return "no_renegotiation";
	case 109:
		return "missing_extension";
	case 110:
		return "unsupported_extension";
	case 112:
		return "unrecognized_name";
	case 116:
		return "certificate_required";
	case 120:
		return "no_application_protocol";
	default:
		return "unknown alert";
	}
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
	if (c->verify_reason != NULL) {
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
		tlsq__conn_fail(c, TLSQ_ETLS, "no cipher suite in common with the peer %s", during);
		return TLSQ_ETLS;
	case VERSION_ERROR:
		tlsq__conn_fail(c, TLSQ_ETLS, "no TLS version in common with the peer %s", during);
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
	tlsq__conn_fail(c, TLSQ_ETLS, "TLS error %s: %s (%d)", during, reason ? reason : buf, e);
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
	case 0:
		break;
	case NO_PEER_CERT:
		return TLSQ_FAIL_NO_CLIENT_CERT;
	case VERSION_ERROR:
		return TLSQ_FAIL_VERSION;
	case MATCH_SUITE_ERROR:
		return TLSQ_FAIL_CIPHER;
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
	case TLSQ_ECERT:
		return TLSQ_FAIL_CLIENT_CERT;
	case TLSQ_ETIMEDOUT:
		return TLSQ_FAIL_TIMEOUT;
	case TLSQ_ETRUNCATED:
	case TLSQ_ECONNRESET:
		return TLSQ_FAIL_PEER_CLOSED;
	case TLSQ_ETLS:
		return TLSQ_FAIL_PROTOCOL;
	default:
		return TLSQ_FAIL_OTHER;
	}
}

/* ------------------------------------------------------------------------ */
/* Per connection                                                            */
/* ------------------------------------------------------------------------ */

int tlsq__tls_ssl_new(struct tlsq_conn *c, const char *host)
{
	struct tlsq_tls *t = c->tls;
	struct tlsq__cred *k = tlsq__cred_get(t);
	WOLFSSL *ssl = wolfSSL_new(k->ctx);
	if (ssl == NULL) {
		tlsq__cred_unref(k);
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
			tlsq__str_set(&c->sni, "%s", name);
			/* SNI is for DNS names only (RFC 6066 §3). */
			unsigned char ip[16];
			int is_ip = tlsq__ip_literal(name, ip) != 0 || strchr(name, ':');
			if (!is_ip)
				wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, name,
				               (word16)strlen(name));
			/* An IP literal is checked by tlsq__tls_verify_cb (TLS_OWN_IP_CHECK). */
			if (k->verify != TLSQ_VERIFY_NONE && !(is_ip && TLS_OWN_IP_CHECK) &&
			    wolfSSL_check_domain_name(ssl, name) != WOLFSSL_SUCCESS) {
				tlsq__conn_fail(c, TLSQ_ENOMEM,
				                "cannot set the host name to check");
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
	tlsq__cred_unref(c->cred);
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
		return tlsq__tls_peer_done(c) == 0 ? 1 : TLSQ_ECERT;
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
	/* version, cipher and group names are wolfSSL's constants (tables
	 * and literals in ssl.c/internal.c), valid for the whole process. */
	c->version = v ? v : "";
	c->tls13 = wolfSSL_version(ssl) == TLS1_3_VERSION;
	unsigned short cs = (unsigned short)wolfSSL_get_current_cipher_suite(ssl);
	const char *iana = wolfSSL_get_cipher_name_iana_from_suite((byte)(cs >> 8), (byte)cs);
	if (iana == NULL)
		iana = wolfSSL_get_cipher_name(ssl);
	c->cipher = iana ? iana : "";
	const char *g = wolfSSL_get_curve_name(ssl);
	c->group = g ? g : "";
	char *p = NULL;
	unsigned short plen = 0;
	if (wolfSSL_ALPN_GetProtocol(ssl, &p, &plen) == WOLFSSL_SUCCESS && p)
		tlsq__str_set(&c->alpn, "%.*s", (int)plen, p);
	if (c->role == TLSQ_SERVER) {
		void *sni = NULL;
		word16 n = wolfSSL_SNI_GetRequest(ssl, WOLFSSL_SNI_HOST_NAME, &sni);
		if (n > 0 && sni)
			tlsq__str_set(&c->sni, "%.*s", (int)n, (const char *)sni);
	}
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(ssl);
	if (x) {
		char subj[256];
		tlsq__cert_subject(x, subj, sizeof subj);
		tlsq__str_set(&c->peer_subject, "%s", subj);
		wolfSSL_X509_free(x);
	}
	c->resumed = wolfSSL_session_reused(ssl) == 1;
	free(c->verify_reason); /* verified: no later failure is a certificate's */
	c->verify_reason = NULL;
}

int tlsq__tls_read(struct tlsq_conn *c, void *buf, int n)
{
	/* While the ciphertext wolfSSL last asked for has not all arrived, a
	 * read can only stop at WANT_READ again, and wolfSSL 5.5.4 formats an
	 * error string each time it does (WOLFSSL_ERROR_LINE: ~760
	 * instructions, 14% of W3's). Unless the buffer is at its quota (a
	 * cipher_buffer smaller than a record: wolfSSL must take what is there
	 * for more to be read) or the socket has ended. */
	size_t have = evbuffer_get_length(c->in);
	if (have < c->tls_rx_need && have < c->engine->cfg.cipher_buffer && !c->eof && !c->rst)
		return 0;
	WOLFSSL *ssl = ssl_of(c);
	tls_current = c;
	c->in_read = 1;
	int r = wolfSSL_read(ssl, buf, n);
	c->in_read = 0;
	tls_current = NULL;
	if (r > 0) {
		/* wolfSSL asks its callback for exactly the rest of the record it
		 * is reading (GetInputData), so once a record's plaintext is all
		 * handed out it holds nothing: the next read needs a new header. */
		if (wolfSSL_pending(ssl) == 0)
			c->tls_rx_need = 5;
		return r;
	}
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
