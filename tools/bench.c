/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tlsq-bench - tlsq and its peers side by side, on loopback, in one run
 * (docs/benchmarks.md).
 *
 * For every workload, peer and run, the parent forks a server process and a
 * client process; they talk over 127.0.0.1 and each reports its figures and
 * a 64-bit FNV-1a hash of the bytes it sent or received through a pipe. A run
 * counts only if the hashes agree; a run that does not finish within its
 * deadline is reported as a hang (both children are killed). Each figure is
 * the median of --runs runs, printed with tlsq's ratio to each peer.
 *
 * Workloads (64-byte "messages" are 64-byte units of a stream; the last one
 * starts with 0xff and ends the run):
 *   W1  bulk: --bulk-bytes (1 GiB) one way in 16 KiB writes        MB/s
 *   W2  64-byte messages one way, one write per message, for
 *       --duration (5 s), pipelined                                msgs/s
 *   W3  64-byte ping-pong, --round-trips (100,000) after 1,000
 *       warm-up round trips                                        p50/p99/p99.9 us
 *   W4  full duplex: --duplex-bytes (512 MiB) each way at once,
 *       a reader and a writer thread per side                      MB/s (both ways)
 */

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "tlsq.h"

#define CHUNK 16384
#define MSG 64
#define MAXRUNS 25

/* ------------------------------------------------------------------------ */
/* Utilities                                                                 */
/* ------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/*
 * The check on the bytes: FNV-1a over 64-bit words, streaming (the same value
 * however the stream is cut into reads), about 1 cycle per 8 bytes, so that
 * hashing never limits a peer. Bytes left over between calls wait in `tail`.
 */
struct hasher {
	uint64_t h;
	unsigned char tail[8];
	unsigned nt;
};
#define FNV0 0xcbf29ce484222325ull
#define FNVP 0x100000001b3ull

static void hash_init(struct hasher *x)
{
	x->h = FNV0;
	x->nt = 0;
}

static void hash_add(struct hasher *x, const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t w;
	while (x->nt && n) {
		x->tail[x->nt++] = *b++;
		n--;
		if (x->nt == 8) {
			memcpy(&w, x->tail, 8);
			x->h = (x->h ^ w) * FNVP;
			x->nt = 0;
		}
	}
	for (; n >= 8; b += 8, n -= 8) {
		memcpy(&w, b, 8);
		x->h = (x->h ^ w) * FNVP;
	}
	memcpy(x->tail, b, n);
	x->nt = (unsigned)n;
}

static uint64_t hash_end(struct hasher *x)
{
	for (unsigned i = 0; i < x->nt; i++)
		x->h = (x->h ^ x->tail[i]) * FNVP;
	x->nt = 0;
	return x->h;
}

/* One-shot hash of a whole buffer (messages). */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	struct hasher x = {h, {0}, 0};
	hash_add(&x, p, n);
	return hash_end(&x);
}

/* Pseudo-random bytes from a seed (xorshift64*, 8 bytes a step). */
static void fill(unsigned char *b, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < n; i += 8) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		uint64_t v = x * 0x2545f4914f6cdd1dull;
		memcpy(b + i, &v, n - i < 8 ? n - i : 8);
	}
}

int bench_tcp_listen_fd(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
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
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
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

static int t_init(const char *cert, const char *key)
{
	(void)cert;
	(void)key;
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

static const char *t_version(void)
{
	static char v[128];
	struct utsname u;
	uname(&u);
	snprintf(v, sizeof v, "Linux %s loopback", u.release);
	return v;
}

const struct bench_peer bench_tcp = {"tcp", t_init, t_listen, t_accept, t_connect, t_send,
                                     t_recv, t_shutdown, t_close, t_version};

/* ------------------------------------------------------------------------ */
/* Peer: tlsq (stream mode, public API)                                      */
/* ------------------------------------------------------------------------ */

static tlsq_engine *q_engine;
static tlsq_tls *q_server, *q_client;
static tlsq_listener *q_listener;

static int q_init(const char *cert, const char *key)
{
	tlsq_tls_config sc, cc;
	if (tlsq_engine_new(NULL, &q_engine) != TLSQ_OK)
		return -1;
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	sc.cert_file = cert;
	sc.key_file = key;
	sc.min_version = TLSQ_TLS1_3;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.verify = TLSQ_VERIFY_NONE; /* as every peer here: docs/benchmarks.md */
	cc.min_version = TLSQ_TLS1_3;
	return tlsq_tls_new(&sc, &q_server) == TLSQ_OK && tlsq_tls_new(&cc, &q_client) == TLSQ_OK
	           ? 0
	           : -1;
}

static int q_listen(void)
{
	if (tlsq_listen(q_engine, "127.0.0.1:0", q_server, &q_listener) != TLSQ_OK)
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
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	return tlsq_connect(q_engine, addr, q_client, &c, 60000) == TLSQ_OK ? c : NULL;
}

static int q_send(void *c, const void *buf, size_t len)
{
	return tlsq_send(c, buf, len, -1) == (ssize_t)len ? 0 : -1;
}

static ssize_t q_recv(void *c, void *buf, size_t cap)
{
	ssize_t n = tlsq_recv(c, buf, cap, -1);
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

static const char *q_version(void)
{
	static char v[160];
	snprintf(v, sizeof v, "tlsq %s on %s", tlsq_version(), tlsq_crypto_version());
	return v;
}

const struct bench_peer bench_tlsq = {"tlsq", q_init, q_listen, q_accept, q_connect, q_send,
                                      q_recv, q_shutdown, q_close, q_version};

/* ------------------------------------------------------------------------ */
/* Workloads                                                                 */
/* ------------------------------------------------------------------------ */

struct opts {
	uint64_t bulk, duplex, round_trips;
	double duration;
	int runs;
};

/* What a child reports. */
struct rep {
	int ok;
	double secs;
	uint64_t count, hash;
	double p50, p99, p999;
};

static int recv_full(const struct bench_peer *p, void *c, void *buf, size_t n)
{
	char *b = buf;
	while (n > 0) {
		ssize_t r = p->recv(c, b, n);
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Receives everything until the peer ends the stream: bytes and hash. */
static void drain(const struct bench_peer *p, void *c, struct rep *r)
{
	static unsigned char buf[1 << 16];
	ssize_t n;
	struct hasher x;
	hash_init(&x);
	while ((n = p->recv(c, buf, sizeof buf)) > 0) {
		hash_add(&x, buf, (size_t)n);
		r->count += (uint64_t)n;
	}
	r->hash = hash_end(&x);
	r->ok = n == 0;
}

static void w1_client(const struct bench_peer *p, void *c, const struct opts *o, struct rep *r)
{
	static unsigned char buf[CHUNK];
	uint64_t t0 = now_ns();
	struct hasher x;
	hash_init(&x);
	for (uint64_t sent = 0; sent < o->bulk; sent += CHUNK) {
		fill(buf, CHUNK, sent);
		hash_add(&x, buf, CHUNK);
		if (p->send(c, buf, CHUNK) < 0)
			return;
	}
	r->hash = hash_end(&x);
	p->shutdown(c);
	char ack[8];
	if (recv_full(p, c, ack, sizeof ack) < 0) /* the server has everything */
		return;
	r->secs = (double)(now_ns() - t0) / 1e9;
	r->count = o->bulk;
	r->ok = 1;
}

static void w1_server(const struct bench_peer *p, void *c, struct rep *r)
{
	drain(p, c, r);
	if (r->ok)
		r->ok = p->send(c, "received", 8) == 0;
}

static void w2_client(const struct bench_peer *p, void *c, const struct opts *o, struct rep *r)
{
	unsigned char m[MSG];
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(o->duration * 1e9), n = 0;
	r->hash = FNV0;
	while ((n & 255) != 0 || now_ns() < end) {
		fill(m, MSG, n);
		m[0] = 0;
		r->hash = fnv(r->hash, m, MSG);
		if (p->send(c, m, MSG) < 0)
			return;
		n++;
	}
	memset(m, 0xff, MSG);
	if (p->send(c, m, MSG) < 0)
		return;
	char ack[8];
	if (recv_full(p, c, ack, sizeof ack) < 0)
		return;
	r->secs = (double)(now_ns() - t0) / 1e9;
	r->count = n;
	r->ok = 1;
}

static void w2_server(const struct bench_peer *p, void *c, struct rep *r)
{
	static unsigned char buf[MSG * 1024];
	size_t have = 0;
	r->hash = FNV0;
	for (;;) {
		ssize_t n = p->recv(c, buf + have, sizeof buf - have);
		if (n <= 0)
			return;
		have += (size_t)n;
		size_t whole = have / MSG * MSG;
		for (size_t off = 0; off < whole; off += MSG) {
			if (buf[off] == 0xff) {
				r->ok = p->send(c, "received", 8) == 0;
				return;
			}
			r->hash = fnv(r->hash, buf + off, MSG);
			r->count++;
		}
		memmove(buf, buf + whole, have - whole);
		have -= whole;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void w3_client(const struct bench_peer *p, void *c, const struct opts *o, struct rep *r)
{
	unsigned char m[MSG], back[MSG];
	uint64_t n = o->round_trips, *lat = calloc(n, sizeof *lat);
	r->hash = FNV0;
	for (uint64_t i = 0; i < 1000 + n; i++) {
		fill(m, MSG, i);
		m[0] = 0;
		uint64_t t0 = now_ns();
		if (p->send(c, m, MSG) < 0 || recv_full(p, c, back, MSG) < 0 ||
		    memcmp(m, back, MSG) != 0) {
			free(lat);
			return;
		}
		if (i >= 1000)
			lat[i - 1000] = now_ns() - t0;
		r->hash = fnv(r->hash, m, MSG);
	}
	memset(m, 0xff, MSG);
	p->send(c, m, MSG);
	qsort(lat, n, sizeof *lat, cmp_u64);
	r->p50 = (double)lat[n / 2] / 1e3;
	r->p99 = (double)lat[n * 99 / 100] / 1e3;
	r->p999 = (double)lat[n * 999 / 1000] / 1e3;
	r->count = n + 1000;
	r->ok = 1;
	free(lat);
}

static void w3_server(const struct bench_peer *p, void *c, struct rep *r)
{
	unsigned char m[MSG];
	r->hash = FNV0;
	for (;;) {
		if (recv_full(p, c, m, MSG) < 0)
			return;
		if (m[0] == 0xff) {
			r->ok = 1;
			return;
		}
		r->hash = fnv(r->hash, m, MSG);
		r->count++;
		if (p->send(c, m, MSG) < 0)
			return;
	}
}

struct duplex {
	const struct bench_peer *p;
	void *c;
	uint64_t bytes, seed, hash_out, hash_in, got;
	int ok_out, ok_in;
};

static void *duplex_writer(void *arg)
{
	struct duplex *d = arg;
	unsigned char *buf = malloc(CHUNK);
	struct hasher x;
	hash_init(&x);
	for (uint64_t sent = 0; sent < d->bytes; sent += CHUNK) {
		fill(buf, CHUNK, d->seed + sent);
		hash_add(&x, buf, CHUNK);
		if (d->p->send(d->c, buf, CHUNK) < 0) {
			free(buf);
			return NULL;
		}
	}
	d->hash_out = hash_end(&x);
	d->ok_out = 1;
	free(buf);
	return NULL;
}

static void *duplex_reader(void *arg)
{
	struct duplex *d = arg;
	unsigned char *buf = malloc(1 << 16);
	struct hasher x;
	hash_init(&x);
	while (d->got < d->bytes) {
		ssize_t n = d->p->recv(d->c, buf, 1 << 16);
		if (n <= 0)
			break;
		hash_add(&x, buf, (size_t)n);
		d->got += (uint64_t)n;
	}
	d->hash_in = hash_end(&x);
	d->ok_in = d->got == d->bytes;
	free(buf);
	return NULL;
}

/* Both sides: send `bytes` while receiving `bytes`, on two threads. The
 * client's report carries its sent hash in `hash` and its received hash in
 * `count`; the server's the other way round, so the parent can cross-check. */
static void w4_side(const struct bench_peer *p, void *c, const struct opts *o, int client,
                    struct rep *r)
{
	struct duplex d = {p, c, o->duplex, client ? 1 : 2, 0, 0, 0, 0, 0};
	pthread_t tw, tr;
	uint64_t t0 = now_ns();
	pthread_create(&tr, NULL, duplex_reader, &d);
	pthread_create(&tw, NULL, duplex_writer, &d);
	pthread_join(tw, NULL);
	pthread_join(tr, NULL);
	r->secs = (double)(now_ns() - t0) / 1e9;
	r->hash = d.hash_out;
	r->count = d.hash_in;
	r->ok = d.ok_out && d.ok_in;
}

/* ------------------------------------------------------------------------ */
/* Orchestration                                                             */
/* ------------------------------------------------------------------------ */

static char cert_path[256], key_path[256];

static void child(const struct bench_peer *p, int w, int server, int port_pipe, int rep_pipe,
                  int port, const struct opts *o)
{
	struct rep r = {0};
	if (p->init(cert_path, key_path) < 0) {
		(void)!write(rep_pipe, &r, sizeof r);
		_exit(1);
	}
	void *c;
	if (server) {
		int lp = p->listen();
		(void)!write(port_pipe, &lp, sizeof lp);
		c = lp < 0 ? NULL : p->accept();
	} else {
		c = p->connect(port);
	}
	if (c) {
		switch (w) {
		case 1: server ? w1_server(p, c, &r) : w1_client(p, c, o, &r); break;
		case 2: server ? w2_server(p, c, &r) : w2_client(p, c, o, &r); break;
		case 3: server ? w3_server(p, c, &r) : w3_client(p, c, o, &r); break;
		case 4: w4_side(p, c, o, !server, &r); break;
		}
	}
	/* Close first: for tlsq this flushes what the queues still hold (a send
	 * returns when its bytes are queued, not delivered). */
	if (c)
		p->close(c);
	(void)!write(rep_pipe, &r, sizeof r);
	_exit(r.ok ? 0 : 1);
}

/* Waits for pid until deadline; kills it when the deadline passes. */
static int reap(pid_t pid, uint64_t deadline)
{
	int st;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		struct timespec nap = {0, 5000000};
		nanosleep(&nap, NULL);
	}
	return 0;
}

static int read_rep(int fd, struct rep *r)
{
	struct pollfd pf = {fd, POLLIN, 0};
	memset(r, 0, sizeof *r);
	return poll(&pf, 1, 0) == 1 && read(fd, r, sizeof *r) == (ssize_t)sizeof *r ? 0 : -1;
}

enum { B_OK, B_FAIL, B_HANG };

/* One run: the figure (MB/s, msgs/s, or p50 in us with p99/p99.9 in *extra). */
static int run_once(const struct bench_peer *p, int w, const struct opts *o, double *fig,
                    double extra[2])
{
	int pp[2], sp[2], cp[2];
	if (pipe(pp) || pipe(sp) || pipe(cp))
		return B_FAIL;
	pid_t srv = fork();
	if (srv == 0)
		child(p, w, 1, pp[1], sp[1], 0, o);
	int port = -1;
	struct pollfd pf = {pp[0], POLLIN, 0};
	if (poll(&pf, 1, 30000) == 1)
		(void)!read(pp[0], &port, sizeof port);
	pid_t cli = port > 0 ? fork() : -1;
	if (cli == 0)
		child(p, w, 0, -1, cp[1], port, o);
	double budget = w == 1 ? 120 + (double)o->bulk / 20e6 : w == 4 ? 20 + (double)o->duplex / 50e6
	                : w == 2 ? o->duration + 60 : 120 + (double)o->round_trips / 2000;
	uint64_t deadline = now_ns() + (uint64_t)(budget * 1e9);
	int hang = (cli > 0 ? reap(cli, deadline) : 0) < 0;
	hang |= reap(srv, hang ? now_ns() : deadline + 5000000000ull) < 0;
	struct rep rc, rs;
	int ok = cli > 0 && read_rep(cp[0], &rc) == 0 && read_rep(sp[0], &rs) == 0 && rc.ok && rs.ok;
	for (int i = 0; i < 2; i++) {
		close(pp[i]);
		close(sp[i]);
		close(cp[i]);
	}
	if (hang)
		return B_HANG;
	if (!ok) {
		fprintf(stderr, "(client: %s, server: %s) ",
		        cli <= 0 ? "did not start" : rc.ok ? "ok" : "failed", rs.ok ? "ok" : "failed");
		return B_FAIL;
	}
	switch (w) {
	case 1:
		if (rc.hash != rs.hash || rs.count != o->bulk)
			return B_FAIL;
		*fig = (double)o->bulk / rc.secs / 1e6;
		break;
	case 2:
		if (rc.hash != rs.hash || rc.count != rs.count)
			return B_FAIL;
		*fig = (double)rc.count / rc.secs;
		break;
	case 3:
		if (rc.hash != rs.hash)
			return B_FAIL;
		*fig = rc.p50;
		extra[0] = rc.p99;
		extra[1] = rc.p999;
		break;
	case 4:
		if (rc.hash != rs.count || rs.hash != rc.count)
			return B_FAIL;
		*fig = 2.0 * (double)o->duplex / (rc.secs > rs.secs ? rc.secs : rs.secs) / 1e6;
		break;
	}
	return B_OK;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	double t[MAXRUNS];
	memcpy(t, v, sizeof(double) * (size_t)n);
	qsort(t, (size_t)n, sizeof *t, cmp_d);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static const struct bench_peer *const all_peers[] = {&bench_tlsq, &bench_tcp, &bench_wolfssl,
                                                     &bench_openssl};
#define NPEERS 4
static const char *const wl_name[] = {"", "W1", "W2", "W3", "W4"};
static const char *const wl_metric[] = {"", "MB/s", "msgs/s", "p50 us", "MB/s"};
static const char *const wl_what[] = {"", "bulk one way, 16 KiB writes",
                                      "64-byte messages one way, pipelined",
                                      "64-byte ping-pong round trip",
                                      "full duplex, both ways at once"};

struct result {
	int status; /* B_OK if every run passed, else what went wrong first */
	int n;
	double runs[MAXRUNS], p99[MAXRUNS], p999[MAXRUNS];
	double med, med99, med999;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: tlsq-bench [--workloads W1,W2,W3,W4] [--peers tlsq,tcp,wolfssl,openssl]\n"
	        "                  [--runs N] [--json FILE] [--quick] [sizes...]\n\n"
	        "Runs tlsq and its peers side by side on loopback: for each workload a server\n"
	        "process and a client process, every byte hashed on both sides, each figure the\n"
	        "median of --runs runs, with tlsq's ratio to each peer. A run that does not end\n"
	        "within its deadline is reported as a hang. Peers: tcp (raw blocking TCP),\n"
	        "wolfssl (naive blocking wolfSSL, the same build as tlsq, a mutex around each\n"
	        "call), openssl (blocking OpenSSL 3, likewise), tlsq (stream mode, public API).\n"
	        "All use TLS 1.3 with AES-128-GCM and do not verify certificates.\n\n"
	        "  -w, --workloads LIST   W1 bulk MB/s, W2 messages/s, W3 ping-pong latency,\n"
	        "                         W4 full duplex MB/s (default all)\n"
	        "  -p, --peers LIST       default tlsq,tcp,wolfssl,openssl\n"
	        "  -r, --runs N           runs per figure (default 3)\n"
	        "  -j, --json FILE        also write the results as JSON\n"
	        "  -q, --quick            small sizes: 64 MiB bulk, 1 s, 10,000 round trips,\n"
	        "                         32 MiB duplex\n"
	        "      --bulk-bytes N     W1 bytes (default 1 GiB; k/m/g suffixes)\n"
	        "      --duration S       W2 seconds (default 5)\n"
	        "      --round-trips N    W3 round trips after warm-up (default 100000)\n"
	        "      --duplex-bytes N   W4 bytes each way (default 512 MiB)\n"
	        "  -h, --help             this text\n\n"
	        "Exit status: 1 if any run delivered different bytes, or if tlsq or tcp hung;\n"
	        "a naive TLS peer hanging in W4 is reported, not an error.\n");
}

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	switch (*end) {
	case 'k': case 'K': v *= 1024; break;
	case 'm': case 'M': v *= 1048576; break;
	case 'g': case 'G': v *= 1073741824.0; break;
	case '\0': break;
	default:
		fprintf(stderr, "tlsq-bench: '%s' is not a size\n", s);
		exit(2);
	}
	if (v < 1) {
		fprintf(stderr, "tlsq-bench: '%s' is not a size\n", s);
		exit(2);
	}
	return (uint64_t)v;
}

static void machine(FILE *f, int json)
{
	char model[200] = "unknown", line[512];
	FILE *c = fopen("/proc/cpuinfo", "r");
	while (c && fgets(line, sizeof line, c))
		if (strncmp(line, "model name", 10) == 0) {
			char *v = strchr(line, ':');
			snprintf(model, sizeof model, "%.199s", v ? v + 2 : line);
			model[strcspn(model, "\n")] = 0;
			break;
		}
	if (c)
		fclose(c);
	struct utsname u;
	uname(&u);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (json)
		fprintf(f,
		        "  \"machine\": {\"cpu\": \"%s\", \"cores\": %ld, \"kernel\": \"%s %s\",\n"
		        "    \"tlsq\": \"%s\", \"wolfssl\": \"%s\", \"openssl\": \"%s\"},\n",
		        model, cpus, u.sysname, u.release, bench_tlsq.version(), bench_wolfssl.version(),
		        bench_openssl.version());
	else
		fprintf(f, "machine: %s, %ld CPUs, %s %s\n%s; %s; %s\n", model, cpus, u.sysname,
		        u.release, bench_tlsq.version(), bench_wolfssl.version(), bench_openssl.version());
}

int main(int argc, char **argv)
{
	enum { O_BULK = 1000, O_DUR, O_RT, O_DUP };
	static const struct option lo[] = {
	    {"workloads", required_argument, NULL, 'w'}, {"peers", required_argument, NULL, 'p'},
	    {"runs", required_argument, NULL, 'r'},      {"json", required_argument, NULL, 'j'},
	    {"quick", no_argument, NULL, 'q'},           {"help", no_argument, NULL, 'h'},
	    {"bulk-bytes", required_argument, NULL, O_BULK},
	    {"duration", required_argument, NULL, O_DUR},
	    {"round-trips", required_argument, NULL, O_RT},
	    {"duplex-bytes", required_argument, NULL, O_DUP},
	    {NULL, 0, NULL, 0}};
	struct opts o = {1ull << 30, 512ull << 20, 100000, 5.0, 3};
	int want_w[5] = {0, 1, 1, 1, 1}, want_p[NPEERS] = {1, 1, 1, 1}, ch;
	const char *json = NULL;
	while ((ch = getopt_long(argc, argv, "w:p:r:j:qh", lo, NULL)) != -1) {
		switch (ch) {
		case 'w':
			memset(want_w, 0, sizeof want_w);
			for (char *s = strdup(optarg), *t = strtok(s, ","); t; t = strtok(NULL, ",")) {
				int n = (t[0] == 'W' || t[0] == 'w') ? atoi(t + 1) : 0;
				if (n < 1 || n > 4) {
					fprintf(stderr, "tlsq-bench: unknown workload '%s' (W1..W4)\n", t);
					return 2;
				}
				want_w[n] = 1;
			}
			break;
		case 'p':
			memset(want_p, 0, sizeof want_p);
			for (char *s = strdup(optarg), *t = strtok(s, ","); t; t = strtok(NULL, ",")) {
				int found = 0;
				for (int i = 0; i < NPEERS; i++)
					if (strcmp(t, all_peers[i]->name) == 0)
						want_p[i] = found = 1;
				if (!found) {
					fprintf(stderr, "tlsq-bench: unknown peer '%s' (tlsq, tcp, wolfssl, "
					                "openssl; nng: see docs/benchmarks.md)\n", t);
					return 2;
				}
			}
			break;
		case 'r':
			o.runs = atoi(optarg);
			if (o.runs < 1 || o.runs > MAXRUNS) {
				fprintf(stderr, "tlsq-bench: --runs wants 1..%d\n", MAXRUNS);
				return 2;
			}
			break;
		case 'j': json = optarg; break;
		case 'q':
			o.bulk = 64ull << 20;
			o.duration = 1;
			o.round_trips = 10000;
			o.duplex = 32ull << 20;
			break;
		case O_BULK: o.bulk = parse_size(optarg) / CHUNK * CHUNK; break;
		case O_DUR: o.duration = strtod(optarg, NULL); break;
		case O_RT: o.round_trips = parse_size(optarg); break;
		case O_DUP: o.duplex = parse_size(optarg) / CHUNK * CHUNK; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (o.bulk < CHUNK || o.duplex < CHUNK || o.duration <= 0) {
		fprintf(stderr, "tlsq-bench: sizes must be at least 16k and the duration positive\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	char dir[] = "/tmp/tlsq-bench-XXXXXX", cmd[1024];
	if (!mkdtemp(dir))
		return 1;
	snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
	snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
	snprintf(cmd, sizeof cmd,
	         "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
	         "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
	         "-keyout %s -out %s >/dev/null 2>&1",
	         key_path, cert_path);
	if (system(cmd) != 0) {
		fprintf(stderr, "tlsq-bench: could not make a certificate with the openssl command\n");
		return 1;
	}
	machine(stdout, 0);
	static struct result res[5][NPEERS];
	for (int w = 1; w <= 4; w++) {
		if (!want_w[w])
			continue;
		for (int i = 0; i < NPEERS; i++) {
			if (!want_p[i])
				continue;
			struct result *r = &res[w][i];
			for (int k = 0; k < o.runs; k++) {
				double fig = 0, extra[2] = {0, 0};
				fprintf(stderr, "  %s %-8s run %d/%d ... ", wl_name[w], all_peers[i]->name,
				        k + 1, o.runs);
				int st = run_once(all_peers[i], w, &o, &fig, extra);
				if (st != B_OK) {
					fprintf(stderr, "%s\n", st == B_HANG ? "HANG (killed at the deadline)"
					                                     : "FAILED (bytes or hashes differ)");
					r->status = st;
					break; /* a hang hangs again; report it, move on */
				}
				r->runs[r->n] = fig;
				r->p99[r->n] = extra[0];
				r->p999[r->n] = extra[1];
				r->n++;
				if (w == 3)
					fprintf(stderr, "p50 %.1f p99 %.1f p99.9 %.1f us\n", fig, extra[0],
					        extra[1]);
				else
					fprintf(stderr, "%.1f %s\n", fig, wl_metric[w]);
			}
			if (r->n) {
				r->med = median(r->runs, r->n);
				r->med99 = median(r->p99, r->n);
				r->med999 = median(r->p999, r->n);
			}
		}
	}
	printf("\n%-4s %-36s %-8s", "", "workload", "metric");
	for (int i = 0; i < NPEERS; i++)
		if (want_p[i])
			printf(" %12s", all_peers[i]->name);
	printf("   tlsq vs each (>1 = tlsq better)\n");
	for (int w = 1; w <= 4; w++) {
		if (!want_w[w])
			continue;
		for (int line = 0; line < (w == 3 ? 3 : 1); line++) {
			const char *metric = w != 3 ? wl_metric[w] : line == 0 ? "p50 us" : line == 1 ? "p99 us"
			                                                                             : "p99.9 us";
			printf("%-4s %-36s %-8s", line ? "" : wl_name[w], line ? "" : wl_what[w], metric);
			for (int i = 0; i < NPEERS; i++) {
				if (!want_p[i])
					continue;
				struct result *r = &res[w][i];
				double v = line == 0 ? r->med : line == 1 ? r->med99 : r->med999;
				if (r->status == B_HANG)
					printf(" %12s", "hang");
				else if (r->status == B_FAIL || r->n == 0)
					printf(" %12s", "failed");
				else
					printf(" %12.1f", v);
			}
			struct result *t = &res[w][0];
			printf("  ");
			for (int i = 1; i < NPEERS; i++) {
				if (!want_p[i] || !want_p[0])
					continue;
				struct result *r = &res[w][i];
				double tv = line == 0 ? t->med : line == 1 ? t->med99 : t->med999;
				double pv = line == 0 ? r->med : line == 1 ? r->med99 : r->med999;
				if (t->n == 0 || r->n == 0 || r->status != B_OK || t->status != B_OK)
					printf(" %s: -", all_peers[i]->name);
				else
					printf(" %s: %.2fx", all_peers[i]->name, w == 3 ? pv / tv : tv / pv);
			}
			printf("\n");
		}
	}
	if (json) {
		FILE *f = fopen(json, "w");
		if (!f) {
			fprintf(stderr, "tlsq-bench: cannot write %s\n", json);
			return 1;
		}
		fprintf(f, "{\n");
		machine(f, 1);
		fprintf(f, "  \"runs\": %d,\n  \"results\": [\n", o.runs);
		int first = 1;
		for (int w = 1; w <= 4; w++)
			for (int i = 0; i < NPEERS; i++) {
				if (!want_w[w] || !want_p[i])
					continue;
				struct result *r = &res[w][i];
				fprintf(f, "%s    {\"workload\": \"%s\", \"peer\": \"%s\", \"metric\": \"%s\", ",
				        first ? "" : ",\n", wl_name[w], all_peers[i]->name,
				        w == 3 ? "p50 us" : wl_metric[w]);
				first = 0;
				if (r->status != B_OK)
					fprintf(f, "\"median\": null, \"status\": \"%s\", ",
					        r->status == B_HANG ? "hang" : "failed");
				else
					fprintf(f, "\"median\": %.3f, ", r->med);
				if (w == 3 && r->n)
					fprintf(f, "\"p99_us\": %.3f, \"p999_us\": %.3f, ", r->med99, r->med999);
				fprintf(f, "\"runs\": [");
				for (int k = 0; k < r->n; k++)
					fprintf(f, "%s%.3f", k ? ", " : "", r->runs[k]);
				fprintf(f, "]}");
			}
		fprintf(f, "\n  ]\n}\n");
		fclose(f);
	}
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	(void)!system(cmd);
	/* Exit 1 if bytes ever differed, or if tlsq or raw TCP hung: a naive
	 * TLS peer hanging in W4 is a finding, not a failure of the run. */
	int bad = 0;
	for (int w = 1; w <= 4; w++)
		for (int i = 0; i < NPEERS; i++)
			if (res[w][i].status == B_FAIL ||
			    (res[w][i].status == B_HANG && (all_peers[i] == &bench_tlsq ||
			                                    all_peers[i] == &bench_tcp)))
				bad = 1;
	if (bad)
		fprintf(stderr, "tlsq-bench: some runs failed (see above)\n");
	return bad;
}
