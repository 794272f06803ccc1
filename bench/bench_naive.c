/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the naive blocking TLS peers (wolfssl, openssl) share: one session per
 * connection on a blocking socket, every library call under one mutex, so
 * that W4's reader and writer threads may share it (neither library's objects
 * are thread-safe) — which is exactly what deadlocks a full-duplex protocol:
 * the reader sleeps in its read holding the mutex while the writer waits for
 * it. This file includes no TLS header: each library's file supplies a
 * struct bench_naive_lib and two one-line accept/connect functions.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

struct nconn {
	const struct bench_naive_lib *lib;
	void *s;
	int fd;
	pthread_mutex_t mu;
};

static int lfd = -1;

int bench_naive_listen(void)
{
	int port;
	lfd = bench_tcp_listen_fd(&port);
	return lfd < 0 ? -1 : port;
}

static void *naive_wrap(const struct bench_naive_lib *lib, int fd, int server)
{
	if (fd < 0)
		return NULL;
	void *s = lib->session(fd, server);
	if (!s) {
		close(fd);
		return NULL;
	}
	struct nconn *c = calloc(1, sizeof *c);
	c->lib = lib;
	c->s = s;
	c->fd = fd;
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void *bench_naive_accept(const struct bench_naive_lib *lib)
{
	return naive_wrap(lib, bench_tcp_accept_fd(lfd), 1);
}

void *bench_naive_connect(const struct bench_naive_lib *lib, int port)
{
	return naive_wrap(lib, bench_tcp_connect_fd(port), 0);
}

int bench_naive_send(void *p, const void *buf, size_t len)
{
	struct nconn *c = p;
	const char *b = buf;
	while (len > 0) {
		pthread_mutex_lock(&c->mu);
		int n = c->lib->write(c->s, b, len > 1 << 30 ? 1 << 30 : (int)len);
		pthread_mutex_unlock(&c->mu);
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t bench_naive_recv(void *p, void *buf, size_t cap)
{
	struct nconn *c = p;
	pthread_mutex_lock(&c->mu);
	int n = c->lib->read(c->s, buf, cap > 1 << 30 ? 1 << 30 : (int)cap);
	pthread_mutex_unlock(&c->mu);
	return n;
}

void bench_naive_shutdown(void *p)
{
	struct nconn *c = p;
	pthread_mutex_lock(&c->mu);
	c->lib->shutdown(c->s);
	pthread_mutex_unlock(&c->mu);
}

void bench_naive_close(void *p)
{
	struct nconn *c = p;
	c->lib->free(c->s);
	close(c->fd);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int bench_naive_pollfd(void *p)
{
	return ((struct nconn *)p)->fd;
}
