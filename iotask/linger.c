/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * linger.c - the socket's end after a clean close or a failure.
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
 * A failure ends the same way (issue 19): a connection that failed with
 * its socket intact (a bad record, a timeout, a limit) has its last records,
 * the fatal alert among them, still in its ciphertext-out buffer, and the
 * peer is often still sending. A close() then reset the connection and
 * the alert was lost. So the buffer comes here too: it is written as the
 * socket takes it (reading and discarding input meanwhile, so a peer
 * blocked on its own send does not stall), then SHUT_WR and the drain as
 * above. The buffer is bounded by cipher_buffer + one record +
 * control_reserve (pump.c arm_events), whatever the data path held. If the
 * linger time runs out first, a failure's socket is reset (SO_LINGER 0):
 * a peer that neither reads nor closes gets nothing more. A clean close's
 * socket is closed as before (a late byte may still make the kernel reset).
 *
 * Who calls what: everything here runs on the owning IO thread; the list
 * of lingering sockets is that thread's alone.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
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
	int reset_at_deadline; /* a failure's socket: reset if time runs out */
	int read_done;         /* the peer's FIN (or an error) was read */
	struct evbuffer *out;  /* still to write before SHUT_WR, or NULL */
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

static void linger_end(struct tlsq__linger *l, int timed_out)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		l->io->lingering = l->next;
	if (l->next)
		l->next->prev = l->prev;
	event_free(l->ev);
	if (timed_out && l->reset_at_deadline) {
		struct linger lg = {1, 0}; /* reset, not FIN */
		setsockopt(l->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	close(l->fd);
	if (l->out)
		evbuffer_free(l->out);
	free(l);
}

/* Writes what the socket takes of l->out: 1 when all is written, 0 when it
 * would block, -1 on an error (the peer reset: nothing more will arrive). */
static int linger_write(int fd, struct evbuffer *out)
{
	while (evbuffer_get_length(out) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(out, -1, NULL, &v, 1) < 1)
			return -1;
		/* MSG_NOSIGNAL: no SIGPIPE if the peer is gone. */
		ssize_t n = send(fd, v.iov_base, v.iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			evbuffer_drain(out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
	}
	return 1;
}

static void linger_arm(struct tlsq__linger *l, uint64_t now)
{
	uint64_t left = l->deadline_ms > now ? l->deadline_ms - now : 0;
	struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
	event_add(l->ev, &tv);
}

static void linger_on_event(evutil_socket_t fd, short what, void *arg);

/* Which events the socket waits for: writable while output is left, and
 * readable until the peer's FIN (a socket at EOF is always readable). */
static void linger_events(struct tlsq__linger *l, short events)
{
	event_del(l->ev);
	event_assign(l->ev, l->io->base, l->fd, events, linger_on_event, l);
}

/* The output is written: FIN behind it. 1 when the socket is done (the
 * peer's FIN came already, or it reset). */
static int linger_shut(struct tlsq__linger *l)
{
	evbuffer_free(l->out);
	l->out = NULL;
	if (shutdown(l->fd, SHUT_WR) != 0 || l->read_done)
		return 1;
	linger_events(l, EV_READ);
	return 0;
}

static void linger_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct tlsq__linger *l = arg;
	uint64_t now = tlsq__now_ms();
	if ((what & EV_TIMEOUT) || now >= l->deadline_ms) {
		linger_end(l, 1);
		return;
	}
	if (!l->read_done && linger_drain(fd)) {
		/* The peer's FIN (or an error, which the write will see). While
		 * output is left, the peer may still read: keep writing. */
		l->read_done = 1;
		if (l->out == NULL) {
			linger_end(l, 0);
			return;
		}
		linger_events(l, EV_WRITE);
	}
	if (l->out) {
		int w = linger_write(fd, l->out);
		if (w < 0 || (w > 0 && linger_shut(l))) {
			linger_end(l, 0);
			return;
		}
	}
	linger_arm(l, now);
}

/* see iotask.h */
void tlsq__linger(tlsq__iothread *io, int fd, int ms, struct evbuffer *out, int failed)
{
	if (out && ms <= 0) { /* no linger: one best-effort write, then close */
		evbuffer_write(out, fd);
		evbuffer_free(out);
		out = NULL;
	}
	if (out && evbuffer_get_length(out) > 0) {
		int w = linger_write(fd, out);
		if (w < 0) { /* the peer reset: nothing to linger for */
			evbuffer_free(out);
			close(fd);
			return;
		}
		if (w > 0) {
			evbuffer_free(out);
			out = NULL;
		}
	} else if (out) {
		evbuffer_free(out);
		out = NULL;
	}
	/* shutdown fails if the peer already reset; a drain that ends says
	 * the peer's FIN is here: nothing to wait for in either case. */
	if (!out && (ms <= 0 || shutdown(fd, SHUT_WR) != 0 || linger_drain(fd))) {
		close(fd);
		return;
	}
	struct tlsq__linger *l = calloc(1, sizeof *l);
	if (l)
		l->ev =
		    event_new(io->base, fd, out ? EV_READ | EV_WRITE : EV_READ, linger_on_event, l);
	if (!l || !l->ev) {
		free(l);
		if (out)
			evbuffer_free(out);
		close(fd); /* out of memory: the old way, a RST if input comes */
		return;
	}
	l->io = io;
	l->fd = fd;
	l->out = out;
	l->reset_at_deadline = failed;
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
		linger_end(io->lingering, 0);
}
