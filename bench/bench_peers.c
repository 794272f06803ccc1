/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The "tcp" and "tlsq" peers of tlsq-bench, and the plain socket helpers the
 * blocking peers share. tcp is raw blocking TCP with TCP_NODELAY, one
 * send(2) per write; tlsq is the public API: stream mode, except message
 * mode (tlsq_send_msg / tlsq_recv_msg) for W2 and W3, and for W5/W6 a client
 * that starts its handshakes with tlsq_connect_start and waits for them in
 * order, a window of BENCH_WINDOW at a time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"
#include "tlsq.h"

int bench_listen_any;
char bench_dst[16] = "127.0.0.1";

int bench_tcp_listen_fd(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr =
	                            htonl(bench_listen_any ? INADDR_ANY : INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

int bench_tcp_accept_fd(int lfd)
{
	int fd = accept(lfd, NULL, NULL), one = 1;
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

int bench_tcp_connect_fd(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, bench_dst, &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* ------------------------------------------------------------------------ */
/* Peer: raw TCP                                                             */
/* ------------------------------------------------------------------------ */

static int tcp_lfd = -1;

static int t_init(const char *cert, const char *key, int workload)
{
	return 0;
}

static int t_listen(void)
{
	int port;
	tcp_lfd = bench_tcp_listen_fd(&port);
	return tcp_lfd < 0 ? -1 : port;
}

static void *t_wrap(int fd)
{
	return fd < 0 ? NULL : (void *)(intptr_t)(fd + 1);
}

static void *t_accept(void)
{
	return t_wrap(bench_tcp_accept_fd(tcp_lfd));
}

static void *t_connect(int port)
{
	return t_wrap(bench_tcp_connect_fd(port));
}

static int t_send(void *c, const void *buf, size_t len)
{
	int fd = (int)(intptr_t)c - 1;
	const char *b = buf;
	while (len > 0) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static ssize_t t_recv(void *c, void *buf, size_t cap)
{
	ssize_t n;
	while ((n = recv((int)(intptr_t)c - 1, buf, cap, 0)) < 0 && errno == EINTR)
		;
	return n;
}

static void t_shutdown(void *c)
{
	shutdown((int)(intptr_t)c - 1, SHUT_WR);
}

static void t_close(void *c)
{
	close((int)(intptr_t)c - 1);
}

static int t_pollfd(void *c)
{
	return (int)(intptr_t)c - 1;
}

static const char *t_version(void)
{
	static char v[128];
	struct utsname u;
	uname(&u);
	snprintf(v, sizeof v, "Linux %s loopback", u.release);
	return v;
}

const struct bench_peer bench_tcp = {
    .name = "tcp",
    .init = t_init,
    .listen = t_listen,
    .accept = t_accept,
    .connect = t_connect,
    .send = t_send,
    .recv = t_recv,
    .shutdown = t_shutdown,
    .close = t_close,
    .version = t_version,
    .pollfd = t_pollfd,
};

/* ------------------------------------------------------------------------ */
/* Peer: tlsq (stream mode, public API)                                      */
/* ------------------------------------------------------------------------ */

static tlsq_engine *q_engine;
static tlsq_tls *q_server, *q_client;
static tlsq_listener *q_listener;
static int q_msg; /* message mode */

static int q_init(const char *cert, const char *key, int workload)
{
	tlsq_tls_config sc, cc;
	if (tlsq_engine_new(NULL, &q_engine) != TLSQ_OK)
		return -1;
	q_msg = workload == 2 || workload == 3;
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	sc.cert_file = cert;
	sc.key_file = key;
	sc.min_version = TLSQ_TLS1_3;
	sc.ciphers = "TLS13-AES128-GCM-SHA256";
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.verify = TLSQ_VERIFY_NONE; /* as every peer here: docs/benchmarks.md */
	cc.min_version = TLSQ_TLS1_3;
	cc.ciphers = "TLS13-AES128-GCM-SHA256";
	sc.mode = cc.mode = q_msg ? TLSQ_MODE_MESSAGE : TLSQ_MODE_STREAM;
	if (tlsq_tls_new(&sc, &q_server) != TLSQ_OK || tlsq_tls_new(&cc, &q_client) != TLSQ_OK) {
		fprintf(stderr, "tlsq-bench: tlsq: %s\n", tlsq_last_error());
		return -1;
	}
	return 0;
}

static int q_listen(void)
{
	if (tlsq_listen(q_engine, bench_listen_any ? "0.0.0.0:0" : "127.0.0.1:0", q_server,
	                &q_listener) != TLSQ_OK)
		return -1;
	return tlsq_listener_port(q_listener);
}

static void *q_accept(void)
{
	tlsq_conn *c = NULL;
	return tlsq_accept(q_listener, &c, 60000) == TLSQ_OK ? c : NULL;
}

static void *q_connect(int port)
{
	char addr[64];
	tlsq_conn *c = NULL;
	snprintf(addr, sizeof addr, "%s:%d", bench_dst, port);
	return tlsq_connect(q_engine, addr, q_client, &c, 60000) == TLSQ_OK ? c : NULL;
}

static void *q_connect_start(int port)
{
	char addr[64];
	tlsq_conn *c = NULL;
	snprintf(addr, sizeof addr, "%s:%d", bench_dst, port);
	return tlsq_connect_start(q_engine, addr, q_client, &c) == TLSQ_OK ? c : NULL;
}

static int q_connect_wait(void *c)
{
	return tlsq_connect_wait(c, 60000) == TLSQ_OK ? 0 : -1;
}

static int q_send(void *c, const void *buf, size_t len)
{
	if (q_msg)
		return tlsq_send_msg(c, buf, len, -1) == TLSQ_OK ? 0 : -1;
	return tlsq_send(c, buf, len, -1) == (ssize_t)len ? 0 : -1;
}

static ssize_t q_recv(void *c, void *buf, size_t cap)
{
	ssize_t n = q_msg ? tlsq_recv_msg(c, buf, cap, -1) : tlsq_recv(c, buf, cap, -1);
	if (q_msg && n == TLSQ_ECLOSED)
		return 0; /* the peer's close_notify ends a message connection */
	return n >= 0 ? n : -1;
}

static void q_shutdown(void *c)
{
	tlsq_shutdown_send(c);
}

static void q_close(void *c)
{
	tlsq_close(c, 5000, NULL);
	tlsq_conn_free(c);
}

static int q_pollfd(void *c)
{
	return tlsq_conn_pollfd(c);
}

static const char *q_version(void)
{
	static char v[160];
	snprintf(v, sizeof v, "tlsq %s on %s", tlsq_version(), tlsq_crypto_version());
	return v;
}

const struct bench_peer bench_tlsq = {
    .name = "tlsq",
    .init = q_init,
    .listen = q_listen,
    .accept = q_accept,
    .connect = q_connect,
    .connect_start = q_connect_start,
    .connect_wait = q_connect_wait,
    .send = q_send,
    .recv = q_recv,
    .shutdown = q_shutdown,
    .close = q_close,
    .version = q_version,
    .pollfd = q_pollfd,
};

/* ------------------------------------------------------------------------ */
/* Peer: tlsq-zc (tlsq with the zero-copy calls in W1 and W4)                */
/* ------------------------------------------------------------------------ */

/* The tlsq peer, except that W1 and W4 send with tlsq_msg_alloc +
 * tlsq_msg_send (stream mode) and receive with tlsq_recv_lend +
 * tlsq_recv_release. W2/W3 (message mode) are the tlsq peer's. */

static void *z_send_buf(size_t len)
{
	return tlsq_msg_alloc(len);
}

static int z_send_zc(void *c, void *buf)
{
	if (tlsq_msg_send(c, buf, -1) == TLSQ_OK)
		return 0;
	tlsq_msg_free(buf); /* refused: still ours */
	return -1;
}

static ssize_t z_lend(void *c, const void **data, void **token)
{
	ssize_t n = tlsq_recv_lend(c, (tlsq_chunk **)token, data, -1);
	return n >= 0 ? n : -1;
}

static void z_release(void *token, size_t consumed)
{
	tlsq_recv_release(token, consumed);
}

const struct bench_peer bench_tlsq_zc = {
    .name = "tlsq-zc",
    .init = q_init,
    .listen = q_listen,
    .accept = q_accept,
    .connect = q_connect,
    .connect_start = q_connect_start,
    .connect_wait = q_connect_wait,
    .send = q_send,
    .recv = q_recv,
    .shutdown = q_shutdown,
    .close = q_close,
    .version = q_version,
    .pollfd = q_pollfd,
    .send_buf = z_send_buf,
    .send_zc = z_send_zc,
    .lend = z_lend,
    .release = z_release,
};
