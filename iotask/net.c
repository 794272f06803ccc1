/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * net.c - addresses, socket options, and the outgoing side: connecting and
 * adopting. Listeners (the incoming side) are listener.c's.
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

#include "iotask.h"

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

/* see iotask.h */
void tlsq__sock_tune(struct tlsq_engine *e, int fd)
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

/* The argument checks of tlsq_listen and tlsq_connect_start: TLSQ_EINVAL
 * (last error set) for a NULL argument or a profile of the other role. */
int tlsq__net_check_args(const char *fn, const tlsq_engine *e, const char *addr,
                         const tlsq_tls *tls, const void *out, tlsq_role role)
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

/* ------------------------------------------------------------------------ */
/* Connecting                                                                */
/* ------------------------------------------------------------------------ */

/* see tlsq.h */
int tlsq_connect_start(tlsq_engine *e, const char *addr, tlsq_tls *tls, tlsq_conn **out)
{
	if (out)
		*out = NULL;
	int rc = tlsq__net_check_args("tlsq_connect", e, addr, tls, out, TLSQ_CLIENT);
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
	tlsq__sock_tune(e, fd);
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
		tlsq__sock_tune(e, fd);
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
