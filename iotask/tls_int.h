/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tls_int.h - what the four files of the wolfSSL binding share, and no one
 * else: tls.c (the per-connection binding), profile.c (profiles and their
 * credential sets), credload.c (reading certificates, keys and CAs) and
 * peercert.c (the peer's certificates, pins, the verify callback and hook).
 * These files, and only these, include wolfSSL headers (checked by
 * tools/check-includes); everything else in iotask/ sees a connection's SSL
 * as the opaque tlsq__tls_ssl of iotask.h.
 */
#ifndef TLSQ_TLS_INT_H
#define TLSQ_TLS_INT_H

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "iotask.h"

static inline WOLFSSL *ssl_of(struct tlsq_conn *c)
{
	return (WOLFSSL *)c->ssl;
}

/* ---- profile.c: credential sets (see the invariants at the top of tls.c) ---- */

/* One extra certificate served by SNI (tlsq_tls_config.sni_certs). */
struct tlsq__sni {
	char **names; /* lowercase patterns: "a.example.com", "*.example.com" */
	int nnames;
	char *cert_pem;     /* the chain, loaded into the SSL when the name matches */
	unsigned char *key; /* the private key, DER, decrypted */
	int key_len;
	char subject[256]; /* for the status endpoint */
	int64_t not_after;
};

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
	char subject[256];     /* own certificate, for the status endpoint */
	int64_t not_after;     /* Unix time, 0 if none */
	struct tlsq__sni *sni; /* servers: the certificates chosen by SNI */
	int nsni;
};

/* Drops one reference; the last one frees the set (any thread). */
void tlsq__cred_unref(struct tlsq__cred *k);
/* The profile's current credentials, with a reference for the caller.
 * Lock-free: the IO thread calls it (tlsq__tls_ssl_new). */
struct tlsq__cred *tlsq__cred_get(const struct tlsq_tls *tc);

/* ---- tls.c ---- */

/* The wolfSSL IO callbacks (installed on each WOLFSSL_CTX by profile.c). */
int tlsq__tls_recv_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx);
int tlsq__tls_send_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx);
/* The connection whose wolfSSL call is running on this IO thread (for the
 * verify callback), NULL outside one. */
struct tlsq_conn *tlsq__tls_current(void);

/* ---- credload.c: the profile builder's file and buffer loading ---- */

/* An in-memory self-signed certificate and key into ctx; its PEM in *pem_out. */
int tlsq__make_self_signed(WOLFSSL_CTX *ctx, char **pem_out);
/* A whole text file, NULL with errno on failure. */
char *tlsq__read_text_file(const char *path);
/* The private key of cfg into ctx. TLSQ_EINVAL/ENOMEM with the reason. */
int tlsq__tls_load_key(const tlsq_tls_config *cfg, WOLFSSL_CTX *ctx);
/* The private key file as DER (decrypted with password if encrypted), or
 * NULL; the caller frees (after zeroing) *len bytes. */
unsigned char *tlsq__key_der(const char *path, const char *password, int *len);
/* Why the certificate (chain) file did not load, as the last error. */
void tlsq__cert_load_error(const char *path);
/* Warnings about the own certificate (expired, a CA) into t->warnings. */
void tlsq__tls_cert_warnings(struct tlsq__cred *t, tlsq_role role, const char *what);
/* Why the CA locations did not load, as the last error. */
void tlsq__ca_load_error(const char *file, const char *dir);

/* ---- peercert.c ---- */

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

/* x's subject in one line ("" if none). */
void tlsq__cert_subject(WOLFSSL_X509 *x, char *buf, int cap);
/* The address bytes (returns 4 or 16) when name is an IP literal, else 0. */
int tlsq__ip_literal(const char *name, unsigned char ip[16]);
/* The verify callback (installed by profile.c when a mode verifies). */
int tlsq__tls_verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store);
/* Profile builder: the pins list of the configuration into t. */
int tlsq__tls_pins_load(struct tlsq__cred *t, const char *list);
/* Handshake done (IO thread): snapshot, pins, hook. 0 or TLSQ_ECERT. */
int tlsq__tls_peer_done(struct tlsq_conn *c);

#endif
