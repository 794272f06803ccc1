/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The "openssl" peer of tlsq-bench: blocking OpenSSL 3, one SSL per
 * connection on a blocking socket, every call under one mutex (as the
 * wolfssl peer, and with the same W4 deadlock).
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench.h"

struct oconn {
	SSL *ssl;
	int fd;
	pthread_mutex_t mu;
};

static SSL_CTX *sctx, *cctx;
static int lfd = -1;

static int o_init(const char *cert, const char *key, int workload)
{
	sctx = SSL_CTX_new(TLS_server_method());
	cctx = SSL_CTX_new(TLS_client_method());
	if (!sctx || !cctx)
		return -1;
	SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
	SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(sctx, "TLS_AES_128_GCM_SHA256");
	SSL_CTX_set_ciphersuites(cctx, "TLS_AES_128_GCM_SHA256");
	if (SSL_CTX_use_certificate_chain_file(sctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1)
		return -1;
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	return 0;
}

static int o_listen(void)
{
	int port;
	lfd = bench_tcp_listen_fd(&port);
	return lfd < 0 ? -1 : port;
}

static void *o_wrap(SSL_CTX *ctx, int fd, int server)
{
	if (fd < 0)
		return NULL;
	struct oconn *c = calloc(1, sizeof *c);
	c->fd = fd;
	c->ssl = SSL_new(ctx);
	pthread_mutex_init(&c->mu, NULL);
	SSL_set_fd(c->ssl, fd);
	if ((server ? SSL_accept(c->ssl) : SSL_connect(c->ssl)) != 1) {
		SSL_free(c->ssl);
		close(fd);
		free(c);
		return NULL;
	}
	return c;
}

static void *o_accept(void)
{
	return o_wrap(sctx, bench_tcp_accept_fd(lfd), 1);
}

static void *o_connect(int port)
{
	return o_wrap(cctx, bench_tcp_connect_fd(port), 0);
}

static int o_send(void *p, const void *buf, size_t len)
{
	struct oconn *c = p;
	const char *b = buf;
	while (len > 0) {
		pthread_mutex_lock(&c->mu);
		int n = SSL_write(c->ssl, b, len > 1 << 30 ? 1 << 30 : (int)len);
		pthread_mutex_unlock(&c->mu);
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static ssize_t o_recv(void *p, void *buf, size_t cap)
{
	struct oconn *c = p;
	pthread_mutex_lock(&c->mu);
	int n = SSL_read(c->ssl, buf, cap > 1 << 30 ? 1 << 30 : (int)cap);
	int err = n <= 0 ? SSL_get_error(c->ssl, n) : 0;
	pthread_mutex_unlock(&c->mu);
	if (n > 0)
		return n;
	return err == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

static void o_shutdown(void *p)
{
	struct oconn *c = p;
	pthread_mutex_lock(&c->mu);
	SSL_shutdown(c->ssl);
	pthread_mutex_unlock(&c->mu);
}

static void o_close(void *p)
{
	struct oconn *c = p;
	SSL_free(c->ssl);
	close(c->fd);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static const char *o_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

const struct bench_peer bench_openssl = {
    .name = "openssl",
    .init = o_init,
    .listen = o_listen,
    .accept = o_accept,
    .connect = o_connect,
    .send = o_send,
    .recv = o_recv,
    .shutdown = o_shutdown,
    .close = o_close,
    .version = o_version,
};
