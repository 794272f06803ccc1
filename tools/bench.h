/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench.h - what tlsq-bench's workloads need from a transport (tools/bench.c).
 *
 * Each peer (tcp, tlsq, wolfssl, openssl) implements one of these in its own
 * file, so that OpenSSL's and wolfSSL's headers never meet. A process runs
 * one side of one connection: the server child calls listen then accept, the
 * client child connect. send writes everything or fails; recv returns > 0,
 * 0 at the end of the stream, < 0 on error. Thread rules are the peer's own:
 * for W4 (full duplex) the naive TLS peers share their connection between a
 * reader and a writer thread under one mutex, as people write it.
 */
#ifndef TLSQ_BENCH_H
#define TLSQ_BENCH_H

#include <stddef.h>
#include <sys/types.h>

struct bench_peer {
	const char *name;
	int (*init)(const char *cert, const char *key); /* 0 or -1 */
	int (*listen)(void);                            /* the port, or -1 */
	void *(*accept)(void);                          /* the connection, or NULL */
	void *(*connect)(int port);                     /* the connection, or NULL */
	int (*send)(void *c, const void *buf, size_t len);
	ssize_t (*recv)(void *c, void *buf, size_t cap);
	void (*shutdown)(void *c); /* our side is done sending (FIN or close_notify) */
	void (*close)(void *c);
	const char *(*version)(void);
};

extern const struct bench_peer bench_tcp, bench_tlsq, bench_wolfssl, bench_openssl;

/* Plain TCP helpers shared by the peers that run over blocking sockets. */
int bench_tcp_listen_fd(int *port);
int bench_tcp_accept_fd(int lfd);
int bench_tcp_connect_fd(int port);

#endif
