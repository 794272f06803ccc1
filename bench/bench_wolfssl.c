/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The "wolfssl" peer of tlsq-bench: naive blocking wolfSSL, with the same
 * wolfSSL build tlsq links. One WOLFSSL per connection on a blocking socket;
 * every call under one mutex, so that W4's reader and writer threads may
 * share it (wolfSSL objects are not thread-safe) — which is exactly what
 * deadlocks a full-duplex protocol: the reader sleeps in wolfSSL_read
 * holding the mutex while the writer waits for it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "bench.h"

struct wconn {
	WOLFSSL *ssl;
	int fd;
	pthread_mutex_t mu;
};

static WOLFSSL_CTX *sctx, *cctx;
static int lfd = -1;

static int w_init(const char *cert, const char *key, int workload)
{
	wolfSSL_Init();
	sctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
	cctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
	if (!sctx || !cctx)
		return -1;
	if (wolfSSL_CTX_use_certificate_chain_file(sctx, cert) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_use_PrivateKey_file(sctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
		return -1;
	wolfSSL_CTX_set_verify(cctx, WOLFSSL_VERIFY_NONE, NULL);
	wolfSSL_CTX_set_cipher_list(sctx, "TLS13-AES128-GCM-SHA256");
	wolfSSL_CTX_set_cipher_list(cctx, "TLS13-AES128-GCM-SHA256");
	return 0;
}

static int w_listen(void)
{
	int port;
	lfd = bench_tcp_listen_fd(&port);
	return lfd < 0 ? -1 : port;
}

static void *w_wrap(WOLFSSL_CTX *ctx, int fd, int server)
{
	if (fd < 0)
		return NULL;
	struct wconn *c = calloc(1, sizeof *c);
	c->fd = fd;
	c->ssl = wolfSSL_new(ctx);
	pthread_mutex_init(&c->mu, NULL);
	wolfSSL_set_fd(c->ssl, fd);
	int r = server ? wolfSSL_accept(c->ssl) : wolfSSL_connect(c->ssl);
	if (r != WOLFSSL_SUCCESS) {
		wolfSSL_free(c->ssl);
		close(fd);
		free(c);
		return NULL;
	}
	return c;
}

static void *w_accept(void)
{
	return w_wrap(sctx, bench_tcp_accept_fd(lfd), 1);
}

static void *w_connect(int port)
{
	return w_wrap(cctx, bench_tcp_connect_fd(port), 0);
}

static int w_send(void *p, const void *buf, size_t len)
{
	struct wconn *c = p;
	const char *b = buf;
	while (len > 0) {
		pthread_mutex_lock(&c->mu);
		int n = wolfSSL_write(c->ssl, b, len > 1 << 30 ? 1 << 30 : (int)len);
		pthread_mutex_unlock(&c->mu);
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static ssize_t w_recv(void *p, void *buf, size_t cap)
{
	struct wconn *c = p;
	pthread_mutex_lock(&c->mu);
	int n = wolfSSL_read(c->ssl, buf, cap > 1 << 30 ? 1 << 30 : (int)cap);
	int err = n <= 0 ? wolfSSL_get_error(c->ssl, n) : 0;
	pthread_mutex_unlock(&c->mu);
	if (n > 0)
		return n;
	return err == WOLFSSL_ERROR_ZERO_RETURN ? 0 : -1;
}

static void w_shutdown(void *p)
{
	struct wconn *c = p;
	pthread_mutex_lock(&c->mu);
	wolfSSL_shutdown(c->ssl);
	pthread_mutex_unlock(&c->mu);
}

static void w_close(void *p)
{
	struct wconn *c = p;
	wolfSSL_free(c->ssl);
	close(c->fd);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static const char *w_version(void)
{
	return "wolfSSL " LIBWOLFSSL_VERSION_STRING " (same build as tlsq)";
}

const struct bench_peer bench_wolfssl = {
    .name = "wolfssl",
    .init = w_init,
    .listen = w_listen,
    .accept = w_accept,
    .connect = w_connect,
    .send = w_send,
    .recv = w_recv,
    .shutdown = w_shutdown,
    .close = w_close,
    .version = w_version,
};
