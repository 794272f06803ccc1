/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The "openssl" peer of tlsq-bench: blocking OpenSSL 3, one SSL per
 * connection on a blocking socket, every call under one mutex (bench_naive.c,
 * as the wolfssl peer, and with the same W4 deadlock).
 */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench.h"

static SSL_CTX *sctx, *cctx;

static int o_init(const char *cert, const char *key, int workload)
{
	(void)workload;
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

static void *o_session(int fd, int server)
{
	SSL *ssl = SSL_new(server ? sctx : cctx);
	if (!ssl)
		return NULL;
	SSL_set_fd(ssl, fd);
	if ((server ? SSL_accept(ssl) : SSL_connect(ssl)) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

static int o_write(void *s, const void *buf, int len)
{
	return SSL_write(s, buf, len);
}

static int o_read(void *s, void *buf, int cap)
{
	int n = SSL_read(s, buf, cap);
	if (n > 0)
		return n;
	return SSL_get_error(s, n) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

static void o_shutdown(void *s)
{
	SSL_shutdown(s);
}

static void o_free(void *s)
{
	SSL_free(s);
}

static const struct bench_naive_lib openssl_lib = {o_session, o_write, o_read, o_shutdown, o_free};

static void *o_accept(void)
{
	return bench_naive_accept(&openssl_lib);
}

static void *o_connect(int port)
{
	return bench_naive_connect(&openssl_lib, port);
}

static const char *o_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

const struct bench_peer bench_openssl = {
    .name = "openssl",
    .init = o_init,
    .listen = bench_naive_listen,
    .accept = o_accept,
    .connect = o_connect,
    .send = bench_naive_send,
    .recv = bench_naive_recv,
    .shutdown = bench_naive_shutdown,
    .close = bench_naive_close,
    .pollfd = bench_naive_pollfd,
    .version = o_version,
};
