/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * listener.c - listeners, the incoming side (tlsq_listen, tlsq_accept,
 * tlsq_listener_*): the listening socket (also the status endpoint's), its
 * accept event, the accept queue. Addresses, socket options and the
 * outgoing side are net.c's.
 *
 * A listener's socket is watched by IO thread 0. Accepted sockets become
 * server connections spread round-robin over the IO threads; when their
 * handshake completes, the IO task puts them on the listener's accept
 * queue (a ck_ring MPMC: several IO threads produce, any application thread
 * consumes in tlsq_accept). A full accept queue drops the newcomer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "iotask.h"
#include "tsan.h"

/* ------------------------------------------------------------------------ */
/* Listener                                                                  */
/* ------------------------------------------------------------------------ */

void tlsq__listener_unref(struct tlsq_listener *l)
{
	if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	void *p;
	while (ck_ring_dequeue_mpmc(&l->ring, l->slots, &p)) {
		TSAN_ACQUIRE(p);
		tlsq__conn_release(p);
	}
	struct tlsq_engine *e = l->engine;
	tlsq_tls_free(l->tls);
	free(l->slots);
	free(l);
	tlsq__engine_unref(e);
}

/* IO thread of c: the handshake completed; queue c for tlsq_accept. */
void tlsq__listener_deliver(struct tlsq_listener *l, struct tlsq_conn *c)
{
	/* Reserve a slot first so that the ring can never be found full. */
	uint32_t q = atomic_fetch_add(&l->queued, 1);
	if (atomic_load(&l->closed) || q >= l->nslots - 1) {
		atomic_fetch_sub(&l->queued, 1);
		tlsq__count(&l->dropped, 1);
		tlsq__count(&c->engine->stats.accept_dropped, 1);
		c->app_gone = 1;
		tlsq__conn_fail(c, TLSQ_ECLOSED, "accept queue full or listener closed");
		tlsq__listener_failed(l, c, TLSQ_PHASE_ACCEPT);
		/* drop the accept queue's reference (never the last: IO holds one) */
		atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
		return;
	}
	TSAN_RELEASE(c);
	ck_ring_enqueue_mpmc(&l->ring, l->slots, c);
	tlsq__count(&l->accepted, 1);
	tlsq__ec_inc(&l->ec);
}

static void listener_on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct tlsq_listener *l = arg;
	(void)what;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or EMFILE: try again on the next event */
		if (atomic_load(&l->closed)) {
			close(fd);
			continue;
		}
		tlsq__sock_tune(l->engine, fd);
		struct tlsq_conn *c = tlsq__conn_new(l->engine, l->tls, fd, TLSQ_STATE_HANDSHAKING);
		if (!c) {
			close(fd);
			continue;
		}
		tlsq__sockaddr_str((struct sockaddr *)&ss, c->peer, sizeof c->peer);
		atomic_fetch_add(&l->refs, 1);
		c->listener = l;
		tlsq__conn_request(c, TLSQ__REQ_ADOPT);
	}
}

/* see iotask.h */
int tlsq__listen_socket(const char *addr, int backlog, int sockbuf, int *port)
{
	struct sockaddr_storage ss;
	unsigned sslen;
	int rc = tlsq__resolve(addr[0] == ':' ? addr + 1 : addr, 1, &ss, &sslen, NULL, 0);
	if (addr[0] == ':' && rc == 0) { /* ":PORT": every address */
		struct sockaddr_in6 *s6 = (void *)&ss;
		int p = atoi(addr + 1);
		memset(&ss, 0, sizeof ss);
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		s6->sin6_addr = in6addr_any;
		sslen = sizeof *s6;
	}
	if (rc)
		return rc;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tlsq__set_last_error("socket: %s", strerror(errno));
		return TLSQ_EIO;
	}
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (sockbuf > 0) {
		/* Before listen(): the window scale is agreed in the handshake,
		 * from the buffer the accepted socket inherits. Set only after
		 * accept, a small buffer left a window scaled for the default
		 * one and loopback transfers crawled (~100 KB/s). */
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sockbuf, sizeof(int));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sockbuf, sizeof(int));
	}
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, backlog) != 0) {
		tlsq__set_last_error("cannot listen on %s: %s", addr, strerror(errno));
		close(fd);
		return TLSQ_EADDR;
	}
	struct sockaddr_storage bound;
	socklen_t blen = sizeof bound;
	getsockname(fd, (struct sockaddr *)&bound, &blen);
	*port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
	                                         : ((struct sockaddr_in6 *)&bound)->sin6_port);
	return fd;
}

/* see tlsq.h */
int tlsq_listen(tlsq_engine *e, const char *addr, tlsq_tls *tls, tlsq_listener **out)
{
	if (out)
		*out = NULL;
	int rc = tlsq__net_check_args("tlsq_listen", e, addr, tls, out, TLSQ_SERVER);
	if (rc)
		return rc;
	int port = 0;
	int fd = tlsq__listen_socket(addr, 4096, e->cfg.socket_buffer, &port);
	if (fd < 0)
		return fd;
	struct tlsq_listener *l = calloc(1, sizeof *l);
	unsigned n = 4;
	while (n < (unsigned)e->cfg.accept_backlog + 1)
		n <<= 1;
	if (l)
		l->slots = calloc(n, sizeof *l->slots);
	if (!l || !l->slots) {
		free(l);
		close(fd);
		tlsq__set_last_error("out of memory");
		return TLSQ_ENOMEM;
	}
	atomic_init(&l->refs, 1);
	l->engine = e;
	tlsq__engine_ref(e);
	l->tls = tls;
	atomic_fetch_add(&tls->refs, 1);
	l->fd = fd;
	l->nslots = n;
	ck_ring_init(&l->ring, n);
	tlsq__ec_init(&l->ec);
	tlsq__failures_init(&l->failures);
	l->port = port;
	l->ev = event_new(e->io[0].base, fd, EV_READ | EV_PERSIST, listener_on_accept, l);
	if (!l->ev || event_add(l->ev, NULL) != 0) {
		tlsq__set_last_error("cannot watch the listening socket");
		close(fd);
		tlsq__listener_unref(l);
		return TLSQ_ENOMEM;
	}
	pthread_mutex_lock(&e->lmu);
	l->next = e->listeners;
	e->listeners = l;
	pthread_mutex_unlock(&e->lmu);
	*out = l;
	return 0;
}

/* see iotask.h */
void tlsq__listeners_close_all(struct tlsq_engine *e)
{
	pthread_mutex_lock(&e->lmu);
	for (struct tlsq_listener *l = e->listeners; l; l = l->next)
		tlsq_listener_close(l);
	pthread_mutex_unlock(&e->lmu);
}

/* see tlsq.h */
int tlsq_listener_port(const tlsq_listener *l)
{
	return l ? l->port : TLSQ_EINVAL;
}

/* see iotask.h */
int tlsq__listener_wait(struct tlsq_listener *l, tlsq__ec *ec,
                        int (*take)(struct tlsq_listener *l, void *arg), void *arg, int timeout_ms)
{
	struct timespec dl;
	int has_dl = tlsq__timeout_deadline(timeout_ms, &dl), rc;
	/* A reference for the wait: tlsq_listener_free from another thread
	 * wakes us (TLSQ_ECLOSED) but must not free what we still look at. */
	atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	atomic_fetch_add(&l->waiters, 1);
	for (;;) {
		uint32_t seen = tlsq__ec_value(ec);
		if (take(l, arg)) {
			rc = TLSQ_OK;
			break;
		}
		if (atomic_load(&l->closed)) {
			rc = TLSQ_ECLOSED;
			break;
		}
		if (has_dl < 0) {
			rc = TLSQ_EAGAIN;
			break;
		}
		if (tlsq__ec_wait(ec, seen, has_dl ? &dl : NULL) < 0) {
			rc = TLSQ_ETIMEDOUT;
			break;
		}
	}
	atomic_fetch_sub(&l->waiters, 1);
	tlsq__listener_unref(l);
	return rc;
}

/* One handshaken connection off the accept queue, if there is one. */
static int accept_take(struct tlsq_listener *l, void *arg)
{
	void *p;
	if (!ck_ring_dequeue_mpmc(&l->ring, l->slots, &p))
		return 0;
	TSAN_ACQUIRE(p);
	atomic_fetch_sub(&l->queued, 1);
	*(tlsq_conn **)arg = p;
	return 1;
}

/* see tlsq.h */
int tlsq_accept(tlsq_listener *l, tlsq_conn **out, int timeout_ms)
{
	if (out)
		*out = NULL;
	if (!l || !out)
		return TLSQ_EINVAL;
	return tlsq__listener_wait(l, &l->ec, accept_take, out, timeout_ms);
}

/* see tlsq.h */
void tlsq_listener_close(tlsq_listener *l)
{
	if (!l || atomic_exchange(&l->closed, 1))
		return;
	/* The event belongs to IO thread 0: event_del from another thread is
	 * safe with libevent's locking (evthread_use_pthreads in engine_new),
	 * and waits for a running callback to finish. */
	event_del(l->ev);
	tlsq__ec_inc(&l->ec);
	tlsq__ec_inc(&l->failures.ec);
}

/* see tlsq.h */
void tlsq_listener_free(tlsq_listener *l)
{
	if (!l)
		return;
	tlsq_listener_close(l);
	struct tlsq_engine *e = l->engine;
	pthread_mutex_lock(&e->lmu);
	for (struct tlsq_listener **pp = &e->listeners; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	pthread_mutex_unlock(&e->lmu);
	event_free(l->ev);
	l->ev = NULL;
	close(l->fd);
	tlsq__listener_unref(l);
}
