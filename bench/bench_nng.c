/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The "nng" peer of tlsq-bench: NNG's pair1 protocol over tls+tcp:// (NNG's
 * TLS is mbedTLS), as its documentation shows it. Every send is one message
 * (nng_send copies it), every recv takes one whole message; an empty message
 * stands for the end of the stream, since pair1 has no half-close. NNG
 * sockets are thread-safe, so W4 needs no mutex.
 *
 * pair1 talks to one peer at a time; for W5/W6 the listening socket runs in
 * polyamorous mode (one pipe per dialer) and every client connection is a
 * socket of its own. A connection counts as accepted when NNG reports its
 * pipe, that is after the TLS handshake and the SP header exchange.
 *
 * nng_close does not wait for queued messages to leave (there is no linger),
 * so close waits LINGER_MS first; it is never inside a timed part.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/version.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <nng/transport/tls/tls.h>

#include "bench.h"

#define LINGER_MS 200

struct nconn {
	nng_socket s;
};

static nng_tls_config *scfg, *ccfg;
static nng_socket lsock;
static int many; /* W5/W6 */
static pthread_mutex_t pipe_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pipe_cv = PTHREAD_COND_INITIALIZER;
static unsigned long pipes_added, pipes_taken;

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *b = calloc(1, 1 << 16);
	size_t n = b ? fread(b, 1, (1 << 16) - 1, f) : 0;
	fclose(f);
	if (b && n == 0) {
		free(b);
		b = NULL;
	}
	return b;
}

static int n_init(const char *cert, const char *key, int workload)
{
	char *c = slurp(cert), *k = slurp(key);
	int ok = c && k && nng_tls_register() == 0 &&
	         nng_tls_config_alloc(&scfg, NNG_TLS_MODE_SERVER) == 0 &&
	         nng_tls_config_alloc(&ccfg, NNG_TLS_MODE_CLIENT) == 0 &&
	         nng_tls_config_own_cert(scfg, c, k, NULL) == 0 &&
	         nng_tls_config_auth_mode(ccfg, NNG_TLS_AUTH_MODE_NONE) == 0;
	free(c);
	free(k);
	many = workload >= 5;
	return ok ? 0 : -1;
}

static void pipe_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	pthread_mutex_lock(&pipe_mu);
	pipes_added++;
	pthread_cond_signal(&pipe_cv);
	pthread_mutex_unlock(&pipe_mu);
}

static int n_listen(void)
{
	nng_listener l;
	int port = -1;
	if ((many ? nng_pair1_open_poly(&lsock) : nng_pair1_open(&lsock)) != 0)
		return -1;
	nng_pipe_notify(lsock, NNG_PIPE_EV_ADD_POST, pipe_added, NULL);
	if (nng_socket_set_ptr(lsock, NNG_OPT_TLS_CONFIG, scfg) != 0 ||
	    nng_listen(lsock, "tls+tcp://127.0.0.1:0", &l, 0) != 0 ||
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) != 0)
		return -1;
	return port;
}

/* Waits for the next pipe. The connection is the listening socket itself. */
static void *n_accept(void)
{
	struct timespec until;
	int rc = 0;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 60;
	pthread_mutex_lock(&pipe_mu);
	while (pipes_added == pipes_taken && rc == 0)
		rc = pthread_cond_timedwait(&pipe_cv, &pipe_mu, &until);
	if (rc == 0)
		pipes_taken++;
	pthread_mutex_unlock(&pipe_mu);
	if (rc != 0)
		return NULL;
	struct nconn *c = malloc(sizeof *c);
	if (c)
		c->s = lsock;
	return c;
}

static void *n_connect(int port)
{
	char url[64];
	struct nconn *c = malloc(sizeof *c);
	if (!c)
		return NULL;
	snprintf(url, sizeof url, "tls+tcp://127.0.0.1:%d", port);
	if (nng_pair1_open(&c->s) != 0) {
		free(c);
		return NULL;
	}
	/* a synchronous dial: returns once the first connection is up */
	if (nng_socket_set_ptr(c->s, NNG_OPT_TLS_CONFIG, ccfg) != 0 ||
	    nng_dial(c->s, url, NULL, 0) != 0) {
		nng_close(c->s);
		free(c);
		return NULL;
	}
	return c;
}

static int n_send(void *p, const void *buf, size_t len)
{
	struct nconn *c = p;
	return nng_send(c->s, (void *)buf, len, 0) == 0 ? 0 : -1;
}

static ssize_t n_recv(void *p, void *buf, size_t cap)
{
	struct nconn *c = p;
	nng_msg *m;
	if (nng_recvmsg(c->s, &m, 0) != 0)
		return -1;
	size_t n = nng_msg_len(m);
	if (n > cap) {
		nng_msg_free(m);
		return -1;
	}
	memcpy(buf, nng_msg_body(m), n);
	nng_msg_free(m);
	return (ssize_t)n;
}

static void n_shutdown(void *p)
{
	struct nconn *c = p;
	nng_send(c->s, "", 0, 0);
}

static void n_close(void *p)
{
	struct nconn *c = p;
	nng_msleep(LINGER_MS);
	nng_close(c->s);
	free(c);
}

static const char *n_version(void)
{
	static char v[96];
	snprintf(v, sizeof v, "NNG %s, pair1 over tls+tcp, mbedTLS %s", nng_version(),
	         MBEDTLS_VERSION_STRING);
	return v;
}

const struct bench_peer bench_nng = {
    .name = "nng",
    .init = n_init,
    .listen = n_listen,
    .accept = n_accept,
    .connect = n_connect,
    .send = n_send,
    .recv = n_recv,
    .shutdown = n_shutdown,
    .close = n_close,
    .version = n_version,
};
