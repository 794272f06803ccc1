/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench.h - what tlsq-bench's parts share (docs/benchmarks.md).
 *
 *   bench.c          orchestration: processes, deadlines, medians, table, JSON
 *   bench_work.c     the workloads W1-W7 and the byte hash
 *   bench_peers.c    the tcp, tlsq and tlsq-zc peers
 *   bench_naive.c    what the naive blocking TLS peers share (no TLS headers)
 *   bench_wolfssl.c  the wolfssl peer (only wolfSSL headers)
 *   bench_openssl.c  the openssl peer (only OpenSSL headers)
 *   bench_nng.c      the nng peer (only NNG headers)
 *
 * A process runs one side of a workload: the server child calls init,
 * listen then accept, the client child init then connect. send writes
 * everything or fails; recv returns > 0, 0 at the end of the stream (the
 * peer's shutdown), < 0 on error. Message-oriented peers (tlsq in W2/W3,
 * nng always) carry each send as one message and each recv returns one whole
 * message; the workloads only ever receive into buffers that fit one. Thread
 * rules are the peer's own: for W4 (full duplex) the naive TLS peers share
 * their connection between a reader and a writer thread under one mutex, as
 * people write it.
 */
#ifndef TLSQ_BENCH_H
#define TLSQ_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_NWORK 7 /* W1..W7 */

struct bench_peer {
	const char *name;
	/* Once per process, before anything else: the workload (1..6) lets a
	 * peer pick its mode (tlsq: message mode for W2/W3; nng: one
	 * listening socket for many connections in W5/W6). 0 or -1. */
	int (*init)(const char *cert, const char *key, int workload);
	int (*listen)(void);        /* the port, or -1 */
	void *(*accept)(void);      /* the connection, or NULL */
	void *(*connect)(int port); /* the connection, or NULL */
	/* Optional (W5/W6): start a connection without waiting for its
	 * handshake, then wait for it (0 or -1). NULL: connect one at a time. */
	void *(*connect_start)(int port);
	int (*connect_wait)(void *c);
	int (*send)(void *c, const void *buf, size_t len);
	ssize_t (*recv)(void *c, void *buf, size_t cap);
	void (*shutdown)(void *c); /* our side is done sending (FIN or close_notify) */
	void (*close)(void *c);
	const char *(*version)(void);
	/* Optional (W7's traffic phase): a descriptor that polls readable
	 * (POLLIN) while received data waits on `c` (tlsq_conn_pollfd, the
	 * socket for the others). NULL: the peer does not run W7. */
	int (*pollfd)(void *c);
	/* Optional zero-copy calls (tlsq-zc), used by W1 and W4 instead of
	 * send and recv when set. send_buf gives a buffer of `len` bytes that
	 * the workload fills and hands over with send_zc (which takes it, on
	 * failure too). lend gives the next received bytes in place (> 0, 0 at
	 * the end, < 0 on error) with a token that release gives back, all
	 * `len` bytes of it consumed. */
	void *(*send_buf)(size_t len);
	int (*send_zc)(void *c, void *buf);
	ssize_t (*lend)(void *c, const void **data, void **token);
	void (*release)(void *token, size_t len);
};

extern const struct bench_peer bench_tcp, bench_tlsq, bench_tlsq_zc, bench_wolfssl, bench_openssl,
    bench_nng;

struct bench_opts {
	uint64_t bulk, duplex, round_trips;
	uint64_t conns[BENCH_NWORK + 1]; /* W5, W6, W7: connections */
	uint64_t w7_active;              /* W7: connections that exchange messages */
	double w7_secs;                  /* W7: seconds of traffic */
	double duration;
	double slow; /* --slow: every run's deadline multiplied by this (valgrind) */
	int produce; /* --produce: W1/W4 senders write each piece into a buffer first */
	int runs;
};

/* What a child reports to the parent through a pipe. */
struct bench_rep {
	int ok;
	double secs;
	uint64_t count, hash;
	double p50, p99, p999; /* W3 client */
	double kib;            /* W5/W6/W7 server: resident KiB per connection */
	double heap;           /* W7 server: malloc'd KiB per connection (mallinfo2) */
	uint64_t conns;        /* W7: connections established */
	double rate;           /* W7 client: round trips per second */
};

/* Runs one side of W1..W4 on the connection `c`. */
void bench_work(const struct bench_peer *p, int w, int server, void *c, const struct bench_opts *o,
                struct bench_rep *r);

/*
 * W5/W6. The server accepts `n` connections, measures its resident memory,
 * then writes one byte to `gate`; the client establishes `n` connections and
 * holds them until it can read that byte from `gate`. Neither closes: the
 * processes exit.
 */
void bench_conns_server(const struct bench_peer *p, uint64_t n, int gate, struct bench_rep *r);
void bench_conns_client(const struct bench_peer *p, int port, uint64_t n, int gate,
                        struct bench_rep *r);

/*
 * W7 (bench_work.c). The server accepts `n` connections, measures itself as
 * W6 does, watches every connection's pollfd with epoll, writes one byte to
 * `gate`, then echoes 64-byte messages until o->w7_active connections sent
 * their last. The client establishes `n` connections to 127.0.0.1..K (so
 * that the ephemeral port range is no limit), waits for the gate, then
 * keeps one message in flight on each of o->w7_active connections chosen at
 * random for o->w7_secs seconds.
 */
void bench_w7_server(const struct bench_peer *p, const struct bench_opts *o, int gate,
                     struct bench_rep *r);
void bench_w7_client(const struct bench_peer *p, int port, const struct bench_opts *o, int gate,
                     struct bench_rep *r);

/* W7: the address the tcp helpers and the tlsq peer listen on ("0.0.0.0"
 * for W7, else 127.0.0.1) and the one they connect to next (127.0.0.x). */
extern int bench_listen_any;
extern char bench_dst[16];

uint64_t bench_now_ns(void);

/* Plain TCP helpers shared by the peers that run over blocking sockets. */
int bench_tcp_listen_fd(int *port);
int bench_tcp_accept_fd(int lfd);
int bench_tcp_connect_fd(int port);

/*
 * The naive blocking TLS peers (bench_naive.c): a library supplies these on a
 * session of its own type; bench_naive.c adds the socket, the mutex and the
 * loops. session: a handshaken session on the blocking socket fd, or NULL
 * (fd is the caller's to close). write: bytes written (> 0) or failure.
 * read: > 0 bytes, 0 at the peer's close_notify, < 0 on error.
 */
struct bench_naive_lib {
	void *(*session)(int fd, int server);
	int (*write)(void *s, const void *buf, int len);
	int (*read)(void *s, void *buf, int cap);
	void (*shutdown)(void *s);
	void (*free)(void *s);
};

int bench_naive_listen(void);
void *bench_naive_accept(const struct bench_naive_lib *lib);
void *bench_naive_connect(const struct bench_naive_lib *lib, int port);
int bench_naive_send(void *c, const void *buf, size_t len);
ssize_t bench_naive_recv(void *c, void *buf, size_t cap);
void bench_naive_shutdown(void *c);
void bench_naive_close(void *c);
int bench_naive_pollfd(void *c);

#endif
