/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * linger.c - the socket's end after a clean close.
 *
 * Why: close() on a TCP socket with unread input makes Linux send a RST
 * instead of a FIN, and so does input that arrives after close(). A RST
 * makes our kernel drop what it has not sent yet and the peer's kernel drop
 * what its application has not read yet: bytes tlsq reported as sent, and
 * a close reported as clean, never arrive. Peers do send after their
 * close_notify: OpenSSL answers a KeyUpdate(update_requested) that reaches
 * it after its own close_notify (stunnel and socat half-close that way),
 * and any peer may have bytes in flight.
 *
 * So after both close_notify the IO task does not close() at once: it
 * sends its FIN behind every queued byte (shutdown SHUT_WR), then reads and
 * discards until the peer's FIN, an error, or close_linger_ms, and only
 * then closes the descriptor. Nothing of the connection is kept but the
 * descriptor and one event.
 *
 * Who calls what: everything here runs on the owning IO thread; the list
 * of lingering sockets is that thread's alone.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "iotask.h"
#include "wait.h"

/* Most read and thrown away per wakeup: a peer that keeps sending cannot
 * hold the IO thread (the event fires again). */
#define DRAIN_MAX (64 * 1024)

struct tlsq__linger {
	struct tlsq__linger *next, *prev;
	tlsq__iothread *io;
	struct event *ev;
	int fd;
	uint64_t deadline_ms;
};

/* Reads and discards what is there: 1 when the socket is done (the peer's
 * FIN or an error), 0 when it would block or DRAIN_MAX was read. */
static int linger_drain(int fd)
{
	char buf[4096];
	for (size_t got = 0; got < DRAIN_MAX;) {
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	}
	return 0;
}

static void linger_end(struct tlsq__linger *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		l->io->lingering = l->next;
	if (l->next)
		l->next->prev = l->prev;
	event_free(l->ev);
	close(l->fd);
	free(l);
}

static void linger_arm(struct tlsq__linger *l, uint64_t now)
{
	uint64_t left = l->deadline_ms > now ? l->deadline_ms - now : 0;
	struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
	event_add(l->ev, &tv);
}

static void linger_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct tlsq__linger *l = arg;
	uint64_t now = tlsq__now_ms();
	if ((what & EV_TIMEOUT) || linger_drain(fd) || now >= l->deadline_ms) {
		linger_end(l);
		return;
	}
	linger_arm(l, now);
}

/* see iotask.h */
void tlsq__linger(tlsq__iothread *io, int fd, int ms)
{
	/* shutdown fails if the peer already reset; a drain that ends says
	 * the peer's FIN is here: nothing to wait for in either case. */
	if (ms <= 0 || shutdown(fd, SHUT_WR) != 0 || linger_drain(fd)) {
		close(fd);
		return;
	}
	struct tlsq__linger *l = calloc(1, sizeof *l);
	if (l)
		l->ev = event_new(io->base, fd, EV_READ, linger_on_event, l);
	if (!l || !l->ev) {
		free(l);
		close(fd); /* out of memory: the old way, a RST if input comes */
		return;
	}
	l->io = io;
	l->fd = fd;
	uint64_t now = tlsq__now_ms();
	l->deadline_ms = now + (uint64_t)ms;
	l->next = io->lingering;
	if (l->next)
		l->next->prev = l;
	io->lingering = l;
	linger_arm(l, now);
}

/* see iotask.h */
void tlsq__linger_fini(tlsq__iothread *io)
{
	while (io->lingering)
		linger_end(io->lingering);
}
