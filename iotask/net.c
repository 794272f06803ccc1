/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * net.c - addresses, listeners, connecting.
 *
 * A listener's socket is watched by IO thread 0. Accepted sockets become
 * server connections spread round-robin over the IO threads; when their
 * handshake completes, the IO task puts them on the listener's accept
 * queue (a ck_ring MPMC: several IO threads produce, any application thread
 * consumes in tlsq_accept). A full accept queue drops the newcomer.
 *
 * Connecting: the application thread resolves the name (getaddrinfo may
 * block, as DNS does) and starts a non-blocking connect; the IO task sees
 * the result on EV_WRITE and handshakes.
 *
 * Adopting (tlsq_adopt): a socket connected elsewhere (a Unix domain socket
 * pair, socket activation, a TCP accept of the application's) is made
 * non-blocking and handed to an IO task like an accepted one; the
 * application keeps the handle, as with tlsq_connect_start.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "iotask.h"
#include "tsan.h"

int tlsq__resolve(const char *addr, int passive, struct sockaddr_storage *ss, unsigned *sslen,
                  char *host, size_t hostcap)
{
	char h[256];
	const char *port;
	if (addr == NULL || !*addr) {
		tlsq__set_last_error("empty address");
		return TLSQ_EINVAL;
	}
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof h) {
			tlsq__set_last_error("bad address \"%s\": use [v6]:port", addr);
			return TLSQ_EINVAL;
		}
		memcpy(h, addr + 1, (size_t)(end - addr - 1));
		h[end - addr - 1] = 0;
		port = end + 2;
	} else {
		const char *colon = strrchr(addr, ':');
		if (!colon) {
			/* "PORT" alone */
			if (strspn(addr, "0123456789") == strlen(addr)) {
				snprintf(h, sizeof h, "%s", passive ? "127.0.0.1" : "localhost");
				port = addr;
			} else {
				tlsq__set_last_error("bad address \"%s\": use host:port", addr);
				return TLSQ_EINVAL;
			}
		} else {
			if ((size_t)(colon - addr) >= sizeof h) {
				tlsq__set_last_error("host name too long in \"%s\"", addr);
				return TLSQ_EINVAL;
			}
			memcpy(h, addr, (size_t)(colon - addr));
			h[colon - addr] = 0;
			port = colon + 1;
		}
	}
	if (!*port || strspn(port, "0123456789") != strlen(port) || atoi(port) > 65535) {
		tlsq__set_last_error("bad port in \"%s\"", addr);
		return TLSQ_EINVAL;
	}
	if (host)
		snprintf(host, hostcap, "%s", h);
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	int rc = getaddrinfo(h[0] ? h : NULL, port, &hints, &res);
	if (rc != 0 || !res) {
		tlsq__set_last_error("cannot resolve \"%s\": %s", h, gai_strerror(rc));
		return TLSQ_EADDR;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = (unsigned)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

void tlsq__sockaddr_str(const struct sockaddr *sa, char *buf, size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;
		inet_ntop(AF_INET, &s->sin_addr, a, sizeof a);
		port = ntohs(s->sin_port);
		snprintf(buf, cap, "%s:%d", a, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)sa;
		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a);
		port = ntohs(s->sin6_port);
		snprintf(buf, cap, "[%s]:%d", a, port);
	} else if (sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *s = (const void *)sa;
		snprintf(buf, cap, "unix:%.*s", (int)sizeof s->sun_path,
		         s->sun_path[0] ? s->sun_path : "(unnamed)");
	} else {
		snprintf(buf, cap, "?");
	}
}

static void sock_tune(struct tlsq_engine *e, int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (e->cfg.socket_buffer > 0) {
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &e->cfg.socket_buffer, sizeof(int));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &e->cfg.socket_buffer, sizeof(int));
	}
	if (e->cfg.keepalive_s > 0) {
		int idle = e->cfg.keepalive_s, intvl = idle / 3 > 0 ? idle / 3 : 1, cnt = 3;
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	}
}

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
		sock_tune(l->engine, fd);
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

/* The argument checks of tlsq_listen and tlsq_connect_start: TLSQ_EINVAL
 * (last error set) for a NULL argument or a profile of the other role. */
static int check_args(const char *fn, const tlsq_engine *e, const char *addr, const tlsq_tls *tls,
                      const void *out, tlsq_role role)
{
	if (!e || !addr || !tls || !out) {
		tlsq__set_last_error("%s: NULL argument", fn);
		return TLSQ_EINVAL;
	}
	if (tls->role != role) {
		tlsq__set_last_error("%s needs a %s TLS profile", fn,
		                     role == TLSQ_SERVER ? "server" : "client");
		return TLSQ_EINVAL;
	}
	return 0;
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
	int rc = check_args("tlsq_listen", e, addr, tls, out, TLSQ_SERVER);
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

/* ------------------------------------------------------------------------ */
/* Connecting                                                                */
/* ------------------------------------------------------------------------ */

/* see tlsq.h */
int tlsq_connect_start(tlsq_engine *e, const char *addr, tlsq_tls *tls, tlsq_conn **out)
{
	if (out)
		*out = NULL;
	int rc = check_args("tlsq_connect", e, addr, tls, out, TLSQ_CLIENT);
	if (rc)
		return rc;
	struct sockaddr_storage ss;
	unsigned sslen;
	char host[256];
	rc = tlsq__resolve(addr, 0, &ss, &sslen, host, sizeof host);
	if (rc)
		return rc;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tlsq__set_last_error("socket: %s", strerror(errno));
		return TLSQ_EIO;
	}
	sock_tune(e, fd);
	if (connect(fd, (struct sockaddr *)&ss, sslen) != 0 && errno != EINPROGRESS) {
		int err = errno;
		char a[64];
		tlsq__sockaddr_str((struct sockaddr *)&ss, a, sizeof a);
		tlsq__set_last_error("connect to %s failed: %s", a, strerror(err));
		close(fd);
		return err == ECONNREFUSED ? TLSQ_ECONNREFUSED : TLSQ_EIO;
	}
	struct tlsq_conn *c = tlsq__conn_new(e, tls, fd, TLSQ_STATE_CONNECTING);
	if (!c || !(c->host = strdup(host))) {
		if (c) { /* never adopted: drop both references by hand */
			atomic_store(&c->refs, 1);
			close(fd);
			c->fd = -1;
			tlsq__conn_unref(c);
		} else {
			close(fd);
		}
		tlsq__set_last_error("out of memory");
		return TLSQ_ENOMEM;
	}
	tlsq__sockaddr_str((struct sockaddr *)&ss, c->peer, sizeof c->peer);
	tlsq__conn_request(c, TLSQ__REQ_ADOPT);
	*out = c;
	return TLSQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Adopting a connected socket                                               */
/* ------------------------------------------------------------------------ */

/* see tlsq.h */
int tlsq_adopt(tlsq_engine *e, tlsq_tls *tls, int fd, const char *host, tlsq_conn **out)
{
	if (out)
		*out = NULL;
	if (!e || !tls || !out || fd < 0) {
		tlsq__set_last_error("tlsq_adopt: NULL argument or negative fd");
		return TLSQ_EINVAL;
	}
	if (tls->role == TLSQ_CLIENT && !(host && host[0]) && !tls->server_name) {
		tlsq__set_last_error("tlsq_adopt: a client needs the server's name (host, or the "
		                     "profile's server_name) to send and verify");
		return TLSQ_EINVAL;
	}
	int type = 0;
	socklen_t tlen = sizeof type;
	errno = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM) {
		tlsq__set_last_error("tlsq_adopt: fd %d is not a stream socket%s%s", fd,
		                     errno ? ": " : "", errno ? strerror(errno) : "");
		return TLSQ_EINVAL;
	}
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	memset(&ss, 0, sizeof ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &sslen) != 0) {
		tlsq__set_last_error("tlsq_adopt: fd %d is not connected: %s", fd, strerror(errno));
		return TLSQ_EINVAL;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
	    fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC) != 0) {
		tlsq__set_last_error("tlsq_adopt: fcntl: %s", strerror(errno));
		return TLSQ_EIO;
	}
	if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
		sock_tune(e, fd);
	struct tlsq_conn *c = tlsq__conn_new(e, tls, fd, TLSQ_STATE_HANDSHAKING);
	if (c && host && host[0] && !(c->host = strdup(host))) {
		atomic_store(&c->refs, 1); /* never adopted: drop both references by hand */
		c->fd = -1;
		tlsq__conn_unref(c);
		c = NULL;
	}
	if (!c) {
		tlsq__set_last_error("out of memory");
		return TLSQ_ENOMEM; /* the fd is still the caller's */
	}
	tlsq__sockaddr_str((struct sockaddr *)&ss, c->peer, sizeof c->peer);
	tlsq__conn_request(c, TLSQ__REQ_ADOPT);
	*out = c;
	return TLSQ_OK;
}
