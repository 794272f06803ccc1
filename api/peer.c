/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * peer.c - the peer's certificates for application threads, read from the
 * snapshot the IO task published at the handshake (iotask/peercert.c,
 * tlsq__tls_peer_done). Nothing here calls wolfSSL: the snapshot is immutable
 * once published (release store of c->peer_cert, acquire load here) and lives
 * until the connection's memory goes.
 */
#include <string.h>

#include "iotask.h"

static const tlsq__peer *peer_of(tlsq_conn *c)
{
	return atomic_load_explicit(&c->peer_cert, memory_order_acquire);
}

/* PEM length of `n` DER bytes: header, base64 in 64-column lines, footer. */
#define PEM_HEAD "-----BEGIN CERTIFICATE-----\n"
#define PEM_TAIL "-----END CERTIFICATE-----\n"
static size_t pem_len(size_t n)
{
	size_t b64 = (n + 2) / 3 * 4;
	return strlen(PEM_HEAD) + b64 + (b64 + 63) / 64 + strlen(PEM_TAIL);
}

static void pem_write(const unsigned char *in, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = strlen(PEM_HEAD), col = 0;
	memcpy(out, PEM_HEAD, o);
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
		             (i + 2 < n ? in[i + 2] : 0);
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
		if ((col += 4) == 64 || i + 3 >= n) {
			out[o++] = '\n';
			col = 0;
		}
	}
	memcpy(out + o, PEM_TAIL, strlen(PEM_TAIL) + 1);
}

/* see tlsq.h */
ssize_t tlsq_conn_peer_cert(tlsq_conn *c, int index, int pem, void *buf, size_t cap)
{
	if (!c || index < 0 || (!buf && cap))
		return TLSQ_EINVAL;
	const tlsq__peer *p = peer_of(c);
	if (p == NULL || index >= p->n)
		return TLSQ_EINVAL;
	size_t n = (size_t)p->len[index];
	size_t need = pem ? pem_len(n) : n;
	if (!buf)
		return (ssize_t)need;
	if (cap < need + (pem ? 1 : 0))
		return TLSQ_EMSGSIZE;
	if (pem)
		pem_write(p->der[index], n, buf);
	else
		memcpy(buf, p->der[index], n);
	return (ssize_t)need;
}
