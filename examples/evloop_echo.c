/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Send and receive from ONE libevent loop, no extra thread: a client
 * streams 8 MiB to an echo server and checks what comes back; both ends
 * live in the same loop. Each connection has two descriptors:
 *
 *   tlsq_conn_pollfd(c)         readable while data (or the end) waits
 *   tlsq_conn_send_pollfd(c, 0) readable while a send would be queued
 *
 * Every call uses timeout 0 and never blocks. After TLSQ_EAGAIN from a send
 * the program watches the send fd (like POLLOUT on a socket) and stops
 * watching it once the data is out. The echo side stops reading while it
 * holds data it could not send yet (backpressure end to end), and the
 * callbacks find their state with tlsq_conn_user.
 */
#include <string.h>

#include <event2/event.h>

#include "common.h"

#define TOTAL (8u << 20)
#define CHUNK 16384

struct end {
	tlsq_conn *c;
	struct event *rd, *wr;
	struct event_base *base;
	unsigned char buf[CHUNK]; /* echo: bytes received, not yet sent back */
	size_t len;
	unsigned long long sent, got; /* client: bytes out, bytes back */
	unsigned long long hash_out, hash_in;
	int done;
};

static unsigned long long fnv(unsigned long long h, const unsigned char *p, size_t n)
{
	while (n--)
		h = (h ^ *p++) * 0x100000001b3ull;
	return h;
}

/* Byte i of the client's stream. */
static void pattern(unsigned long long off, unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((off + i) * 2654435761u >> 13);
}

/* ---- client: writes until the send fd must be waited for ---- */
static void client_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct end *cl = tlsq_conn_user(arg);
	unsigned char chunk[CHUNK];
	while (cl->sent < TOTAL) {
		size_t n = TOTAL - cl->sent < CHUNK ? TOTAL - cl->sent : CHUNK;
		pattern(cl->sent, chunk, n);
		ssize_t r = tlsq_send(cl->c, chunk, n, 0);
		if (r == TLSQ_EAGAIN) {
			event_add(cl->wr, NULL); /* call me when there is room */
			return;
		}
		if (r < 0)
			DIE("client send: %s", tlsq_conn_error(cl->c));
		cl->hash_out = fnv(cl->hash_out, chunk, n);
		cl->sent += n;
	}
	event_del(cl->wr);         /* nothing left to send: stop watching */
	tlsq_shutdown_send(cl->c); /* close_notify after the data */
}

static void client_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct end *cl = tlsq_conn_user(arg);
	unsigned char buf[CHUNK];
	for (;;) {
		ssize_t n = tlsq_recv(cl->c, buf, sizeof buf, 0);
		if (n == TLSQ_EAGAIN)
			return;
		if (n == 0) { /* the echo's close_notify: everything is back */
			cl->done = 1;
			event_base_loopbreak(cl->base);
			return;
		}
		if (n < 0)
			DIE("client recv: %s", tlsq_conn_error(cl->c));
		cl->hash_in = fnv(cl->hash_in, buf, (size_t)n);
		cl->got += (unsigned long long)n;
	}
}

/* ---- echo server: read, send back, and hold reading while blocked ---- */
static int echo_flush(struct end *s)
{
	if (s->len == 0)
		return 1;
	ssize_t r = tlsq_send(s->c, s->buf, s->len, 0);
	if (r == TLSQ_EAGAIN)
		return 0;
	if (r < 0)
		DIE("echo send: %s", tlsq_conn_error(s->c));
	s->len = 0;
	return 1;
}

static void echo_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct end *s = tlsq_conn_user(arg);
	for (;;) {
		ssize_t n = tlsq_recv(s->c, s->buf, sizeof s->buf, 0);
		if (n == TLSQ_EAGAIN)
			return;
		if (n == 0) { /* the client finished: finish too */
			tlsq_shutdown_send(s->c);
			event_del(s->rd);
			return;
		}
		if (n < 0)
			DIE("echo recv: %s", tlsq_conn_error(s->c));
		s->len = (size_t)n;
		if (!echo_flush(s)) { /* no room: wait to send, stop reading */
			event_del(s->rd);
			event_add(s->wr, NULL);
			return;
		}
	}
}

static void echo_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct end *s = tlsq_conn_user(arg);
	if (!echo_flush(s))
		return; /* stale readiness: still no room, keep waiting */
	event_del(s->wr);
	event_add(s->rd, NULL); /* level-triggered: fires if data waits */
}

int main(void)
{
	tlsq_engine *e;
	tlsq_listener *l;
	tlsq_tls *ctls;
	char addr[64];
	example_setup(TLSQ_MODE_STREAM, &e, &l, &ctls, addr, sizeof addr);
	static struct end cl, sv;
	if (tlsq_connect(e, addr, ctls, &cl.c, 5000) != TLSQ_OK)
		DIE("connect: %s", tlsq_last_error());
	if (tlsq_accept(l, &sv.c, 5000) != TLSQ_OK)
		DIE("accept failed");
	tlsq_conn_set_user(cl.c, &cl);
	tlsq_conn_set_user(sv.c, &sv);
	cl.hash_out = cl.hash_in = 0xcbf29ce484222325ull;

	struct event_base *base = event_base_new();
	cl.base = sv.base = base;
	cl.rd = event_new(base, tlsq_conn_pollfd(cl.c), EV_READ | EV_PERSIST, client_read, cl.c);
	cl.wr = event_new(base, tlsq_conn_send_pollfd(cl.c, 0), EV_READ | EV_PERSIST, client_write,
	                  cl.c);
	sv.rd = event_new(base, tlsq_conn_pollfd(sv.c), EV_READ | EV_PERSIST, echo_read, sv.c);
	sv.wr =
	    event_new(base, tlsq_conn_send_pollfd(sv.c, 0), EV_READ | EV_PERSIST, echo_write, sv.c);
	event_add(cl.rd, NULL);
	event_add(sv.rd, NULL);
	event_add(cl.wr, NULL); /* the queue is empty: fires at once and starts sending */
	event_base_dispatch(base);

	int ok = cl.done && cl.sent == TOTAL && cl.got == TOTAL && cl.hash_in == cl.hash_out;
	printf("one loop sent %llu and got back %llu bytes, checksums %s\n", cl.sent, cl.got,
	       cl.hash_in == cl.hash_out ? "equal" : "DIFFER");
	event_free(cl.rd);
	event_free(cl.wr);
	event_free(sv.rd);
	event_free(sv.wr);
	event_base_free(base);
	tlsq_close(cl.c, 2000, NULL);
	tlsq_conn_free(cl.c);
	tlsq_conn_free(sv.c);
	tlsq_listener_free(l);
	tlsq_tls_free(ctls);
	tlsq_engine_free(e);
	return ok ? 0 : 1;
}
