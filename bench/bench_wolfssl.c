/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The "wolfssl" peer of tlsq-bench: naive blocking wolfSSL, with the same
 * wolfSSL build tlsq links. One WOLFSSL per connection on a blocking socket,
 * every call under one mutex (bench_naive.c, with its W4 deadlock).
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "bench.h"

static WOLFSSL_CTX *sctx, *cctx;

static int w_init(const char *cert, const char *key, int workload)
{
	(void)workload;
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

static void *w_session(int fd, int server)
{
	WOLFSSL *ssl = wolfSSL_new(server ? sctx : cctx);
	if (!ssl)
		return NULL;
	wolfSSL_set_fd(ssl, fd);
	if ((server ? wolfSSL_accept(ssl) : wolfSSL_connect(ssl)) != WOLFSSL_SUCCESS) {
		wolfSSL_free(ssl);
		return NULL;
	}
	return ssl;
}

static int w_write(void *s, const void *buf, int len)
{
	return wolfSSL_write(s, buf, len);
}

static int w_read(void *s, void *buf, int cap)
{
	int n = wolfSSL_read(s, buf, cap);
	if (n > 0)
		return n;
	return wolfSSL_get_error(s, n) == WOLFSSL_ERROR_ZERO_RETURN ? 0 : -1;
}

static void w_shutdown(void *s)
{
	wolfSSL_shutdown(s);
}

static void w_free(void *s)
{
	wolfSSL_free(s);
}

static const struct bench_naive_lib wolfssl_lib = {w_session, w_write, w_read, w_shutdown, w_free};

static void *w_accept(void)
{
	return bench_naive_accept(&wolfssl_lib);
}

static void *w_connect(int port)
{
	return bench_naive_connect(&wolfssl_lib, port);
}

static const char *w_version(void)
{
	return "wolfSSL " LIBWOLFSSL_VERSION_STRING " (same build as tlsq)";
}

const struct bench_peer bench_wolfssl = {
    .name = "wolfssl",
    .init = w_init,
    .listen = bench_naive_listen,
    .accept = w_accept,
    .connect = w_connect,
    .send = bench_naive_send,
    .recv = bench_naive_recv,
    .shutdown = bench_naive_shutdown,
    .close = bench_naive_close,
    .pollfd = bench_naive_pollfd,
    .version = w_version,
};
