/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench_work.c - the workloads of tlsq-bench, one side at a time, and the
 * hash both sides keep of the bytes (docs/benchmarks.md).
 *
 * 64-byte "messages" are one send each; in a stream they are 64-byte units,
 * for message peers real messages. The last one starts with 0xff and ends
 * the run. Every figure is taken on the client, after the server confirmed
 * it had everything (W1, W2) or after the echo came back (W3).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

#define CHUNK        16384
#define MSG          64
#define WARMUP       1000
#define BENCH_WINDOW 64 /* handshakes in flight for peers with connect_start */

uint64_t bench_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/*
 * The check on the bytes: FNV-1a-style multiply-xor over 64-bit words in four
 * independent lanes (a word goes to lane (index mod 4)), folded at the end.
 * Streaming: the same value however the stream is cut into reads. About 8
 * bytes a cycle, so that checking never limits a peer. Bytes left over
 * between calls wait in `tail`.
 */
struct hasher {
	uint64_t h[4];
	unsigned char tail[32];
	unsigned nt;
};
#define FNV0 0xcbf29ce484222325ull
#define FNVP 0x100000001b3ull

static void hash_init(struct hasher *x)
{
	for (int i = 0; i < 4; i++)
		x->h[i] = FNV0 + (uint64_t)i;
	x->nt = 0;
}

static void hash_block(struct hasher *x, const unsigned char *b)
{
	uint64_t w[4];
	memcpy(w, b, 32);
	for (int i = 0; i < 4; i++)
		x->h[i] = (x->h[i] ^ w[i]) * FNVP;
}

static void hash_add(struct hasher *x, const void *p, size_t n)
{
	const unsigned char *b = p;
	if (x->nt) {
		size_t k = 32 - x->nt < n ? 32 - x->nt : n;
		memcpy(x->tail + x->nt, b, k);
		x->nt += (unsigned)k;
		b += k;
		n -= k;
		if (x->nt < 32)
			return;
		hash_block(x, x->tail);
		x->nt = 0;
	}
	for (; n >= 32; b += 32, n -= 32)
		hash_block(x, b);
	memcpy(x->tail, b, n);
	x->nt = (unsigned)n;
}

static uint64_t hash_end(struct hasher *x)
{
	uint64_t h = FNV0;
	for (int i = 0; i < 4; i++)
		h = (h ^ x->h[i]) * FNVP;
	for (unsigned i = 0; i < x->nt; i++)
		h = (h ^ x->tail[i]) * FNVP;
	return h;
}

/* One-shot hash of a buffer chained onto h (messages). */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t w;
	for (; n >= 8; b += 8, n -= 8) {
		memcpy(&w, b, 8);
		h = (h ^ w) * FNVP;
	}
	while (n--)
		h = (h ^ *b++) * FNVP;
	return h;
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

/*
 * Bulk data: the CHUNK-byte piece number k of a stream starts at an offset
 * into one pool of random bytes that moves with k and the seed, so that the
 * writer spends no time making data (the same for every peer) while a
 * reordered, repeated or lost piece still changes the hash.
 */
#define POOL (1u << 20)
static unsigned char *pool;

static void pool_init(void)
{
	pool = malloc(POOL + CHUNK);
	fill(pool, POOL + CHUNK, 42);
}

static const unsigned char *bulk_piece(uint64_t k, uint64_t seed)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, pool_init);
	return pool + ((k * 1031 + seed * 977) * 8) % POOL;
}

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

/*
 * Bulk receive and send, through the peer's zero-copy calls when it has them
 * (tlsq-zc). The workload does the same work for every peer: it hashes what
 * it received where the bytes are (the caller's buffer, or the lent chunk),
 * and it makes each piece it sends. By default a copying peer sends from the
 * pool itself (its send copies it into the library) and a zero-copy peer
 * gets it copied from the pool into the buffer it hands over, as an
 * application that has its bytes in memory would do: a zero-copy send saves
 * nothing then (one copy either way). With --produce every sender first
 * writes the piece into a buffer (a copy from the pool standing for read(2)
 * or a serialiser): a copying peer into its own buffer, which its send then
 * copies again, a zero-copy peer into the buffer it hands over. A lend saves
 * the receive copy either way. docs/benchmarks.md, "Zero-copy calls".
 */
static ssize_t bulk_recv(const struct bench_peer *p, void *c, unsigned char *buf, size_t cap,
                         struct hasher *x)
{
	if (!p->lend) {
		ssize_t n = p->recv(c, buf, cap);
		if (n > 0)
			hash_add(x, buf, (size_t)n);
		return n;
	}
	const void *data;
	void *token;
	ssize_t n = p->lend(c, &data, &token);
	if (n > 0) {
		hash_add(x, data, (size_t)n);
		p->release(token, (size_t)n);
	}
	return n;
}

static int bulk_send(const struct bench_peer *p, void *c, const unsigned char *piece, size_t len,
                     int produce)
{
	if (!p->send_zc && produce) {
		static _Thread_local unsigned char own[CHUNK];
		memcpy(own, piece, len);
		return p->send(c, own, len);
	}
	if (!p->send_zc)
		return p->send(c, piece, len);
	void *m = p->send_buf(len);
	if (!m)
		return -1;
	memcpy(m, piece, len);
	return p->send_zc(c, m);
}

/* Receives everything until the peer ends the stream: bytes and hash. */
static void drain(const struct bench_peer *p, void *c, struct bench_rep *r)
{
	static unsigned char buf[1 << 16];
	ssize_t n;
	struct hasher x;
	hash_init(&x);
	while ((n = bulk_recv(p, c, buf, sizeof buf, &x)) > 0)
		r->count += (uint64_t)n;
	r->hash = hash_end(&x);
	r->ok = n == 0;
}

static void w1_client(const struct bench_peer *p, void *c, const struct bench_opts *o,
                      struct bench_rep *r)
{
	uint64_t t0 = bench_now_ns();
	struct hasher x;
	hash_init(&x);
	for (uint64_t sent = 0; sent < o->bulk; sent += CHUNK) {
		const unsigned char *buf = bulk_piece(sent / CHUNK, 0);
		hash_add(&x, buf, CHUNK);
		if (bulk_send(p, c, buf, CHUNK, o->produce) < 0)
			return;
	}
	r->hash = hash_end(&x);
	p->shutdown(c);
	char ack[8];
	if (recv_full(p, c, ack, sizeof ack) < 0) /* the server has everything */
		return;
	r->secs = (double)(bench_now_ns() - t0) / 1e9;
	r->count = o->bulk;
	r->ok = 1;
}

static void w1_server(const struct bench_peer *p, void *c, struct bench_rep *r)
{
	drain(p, c, r);
	if (r->ok)
		r->ok = p->send(c, "received", 8) == 0;
}

static void w2_client(const struct bench_peer *p, void *c, const struct bench_opts *o,
                      struct bench_rep *r)
{
	unsigned char m[MSG];
	uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(o->duration * 1e9), n = 0;
	r->hash = FNV0;
	while ((n & 255) != 0 || bench_now_ns() < end) {
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
	r->secs = (double)(bench_now_ns() - t0) / 1e9;
	r->count = n;
	r->ok = 1;
}

static void w2_server(const struct bench_peer *p, void *c, struct bench_rep *r)
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

static void w3_client(const struct bench_peer *p, void *c, const struct bench_opts *o,
                      struct bench_rep *r)
{
	unsigned char m[MSG], back[MSG];
	uint64_t n = o->round_trips, *lat = calloc(n, sizeof *lat);
	r->hash = FNV0;
	for (uint64_t i = 0; i < WARMUP + n; i++) {
		fill(m, MSG, i);
		m[0] = 0;
		uint64_t t0 = bench_now_ns();
		if (p->send(c, m, MSG) < 0 || recv_full(p, c, back, MSG) < 0 ||
		    memcmp(m, back, MSG) != 0) {
			free(lat);
			return;
		}
		if (i >= WARMUP)
			lat[i - WARMUP] = bench_now_ns() - t0;
		r->hash = fnv(r->hash, m, MSG);
	}
	memset(m, 0xff, MSG); /* the end, echoed too: nothing is left in flight */
	if (p->send(c, m, MSG) < 0 || recv_full(p, c, back, MSG) < 0) {
		free(lat);
		return;
	}
	qsort(lat, n, sizeof *lat, cmp_u64);
	r->p50 = (double)lat[n / 2] / 1e3;
	r->p99 = (double)lat[n * 99 / 100] / 1e3;
	r->p999 = (double)lat[n * 999 / 1000] / 1e3;
	r->count = n + WARMUP;
	r->ok = 1;
	free(lat);
}

static void w3_server(const struct bench_peer *p, void *c, struct bench_rep *r)
{
	unsigned char m[MSG];
	r->hash = FNV0;
	for (;;) {
		if (recv_full(p, c, m, MSG) < 0)
			return;
		if (p->send(c, m, MSG) < 0)
			return;
		if (m[0] == 0xff) {
			r->ok = 1;
			return;
		}
		r->hash = fnv(r->hash, m, MSG);
		r->count++;
	}
}

struct duplex {
	const struct bench_peer *p;
	void *c;
	uint64_t bytes, seed, hash_out, hash_in, got;
	int ok_out, ok_in, produce;
};

static void *duplex_writer(void *arg)
{
	struct duplex *d = arg;
	struct hasher x;
	hash_init(&x);
	for (uint64_t sent = 0; sent < d->bytes; sent += CHUNK) {
		const unsigned char *buf = bulk_piece(sent / CHUNK, d->seed);
		hash_add(&x, buf, CHUNK);
		if (bulk_send(d->p, d->c, buf, CHUNK, d->produce) < 0)
			return NULL;
	}
	d->hash_out = hash_end(&x);
	d->ok_out = 1;
	return NULL;
}

static void *duplex_reader(void *arg)
{
	struct duplex *d = arg;
	unsigned char *buf = malloc(1 << 16);
	struct hasher x;
	hash_init(&x);
	while (d->got < d->bytes) {
		ssize_t n = bulk_recv(d->p, d->c, buf, 1 << 16, &x);
		if (n <= 0)
			break;
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
static void w4_side(const struct bench_peer *p, void *c, const struct bench_opts *o, int client,
                    struct bench_rep *r)
{
	struct duplex d = {p, c, o->duplex, client ? 1 : 2, 0, 0, 0, 0, 0, o->produce};
	pthread_t tw, tr;
	uint64_t t0 = bench_now_ns();
	pthread_create(&tr, NULL, duplex_reader, &d);
	pthread_create(&tw, NULL, duplex_writer, &d);
	pthread_join(tw, NULL);
	pthread_join(tr, NULL);
	r->secs = (double)(bench_now_ns() - t0) / 1e9;
	r->hash = d.hash_out;
	r->count = d.hash_in;
	r->ok = d.ok_out && d.ok_in;
}

void bench_work(const struct bench_peer *p, int w, int server, void *c, const struct bench_opts *o,
                struct bench_rep *r)
{
	switch (w) {
	case 1:
		server ? w1_server(p, c, r) : w1_client(p, c, o, r);
		break;
	case 2:
		server ? w2_server(p, c, r) : w2_client(p, c, o, r);
		break;
	case 3:
		server ? w3_server(p, c, r) : w3_client(p, c, o, r);
		break;
	case 4:
		w4_side(p, c, o, !server, r);
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* W5, W6: many connections                                                  */
/* ------------------------------------------------------------------------ */

/* This process's resident set in KiB (VmRSS of /proc/self/status). */
static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

void bench_conns_server(const struct bench_peer *p, uint64_t n, int gate, struct bench_rep *r)
{
	void **c = calloc(n, sizeof *c);
	long before = rss_kib();
	uint64_t t0 = bench_now_ns();
	for (r->count = 0; r->count < n; r->count++)
		if (!(c[r->count] = p->accept())) {
			fprintf(stderr, "(server: accept %llu failed) ",
			        (unsigned long long)r->count);
			return;
		}
	r->secs = (double)(bench_now_ns() - t0) / 1e9;
	/* Let the last handshakes' buffers and tickets settle, then measure. */
	struct timespec settle = {0, 300000000};
	nanosleep(&settle, NULL);
	r->kib = (double)(rss_kib() - before) / (double)n;
	r->ok = 1;
	(void)!write(gate, "x", 1);
	/* the connections stay open; the process exits */
}

static void set_dst(uint64_t i, int naddr)
{
	snprintf(bench_dst, sizeof bench_dst, "127.0.0.%u",
	         (unsigned)(1 + i % (uint64_t)naddr) % 256);
}

/* Establishes n connections into c[] (to 127.0.0.1..naddr in turn: each
 * destination has its own ephemeral port range); returns how many. */
static uint64_t establish(const struct bench_peer *p, int port, uint64_t n, void **c, int naddr)
{
	uint64_t done, started = 0;
	for (done = 0; done < n; done++) {
		if (p->connect_start) {
			/* keep BENCH_WINDOW handshakes in flight, finish them in order */
			while (started < n && started < done + BENCH_WINDOW) {
				set_dst(started, naddr);
				if (!(c[started++] = p->connect_start(port)))
					break;
			}
			if (!c[done] || p->connect_wait(c[done]) < 0)
				break;
		} else {
			set_dst(done, naddr);
			if (!(c[done] = p->connect(port)))
				break;
		}
	}
	return done;
}

void bench_conns_client(const struct bench_peer *p, int port, uint64_t n, int gate,
                        struct bench_rep *r)
{
	void **c = calloc(n, sizeof *c);
	uint64_t t0 = bench_now_ns();
	r->count = establish(p, port, n, c, 1);
	r->secs = (double)(bench_now_ns() - t0) / 1e9;
	if (r->count < n) {
		fprintf(stderr, "(client: connection %llu failed) ", (unsigned long long)r->count);
		return;
	}
	/* Hold everything open until the server has measured itself. */
	struct pollfd pf = {gate, POLLIN, 0};
	char x;
	r->ok = poll(&pf, 1, 600000) == 1 && read(gate, &x, 1) == 1;
}

/* ------------------------------------------------------------------------ */
/* W7: many connections, 1% of them busy                                     */
/* ------------------------------------------------------------------------ */

/* Connections per loopback destination address: below the ephemeral port
 * range (net.ipv4.ip_local_port_range, 28,232 ports by default). */
#define W7_PER_ADDR 20000

/* Bytes in use by malloc in this process, all arenas, mmapped blocks too. */
static double heap_bytes(void)
{
	struct mallinfo2 m = mallinfo2();
	return (double)m.uordblks + (double)m.hblkhd;
}

void bench_w7_server(const struct bench_peer *p, const struct bench_opts *o, int gate,
                     struct bench_rep *r)
{
	uint64_t n = o->conns[7], ended = 0;
	void **c = calloc(n, sizeof *c), **done = calloc(o->w7_active, sizeof *done);
	long before = rss_kib();
	double heap0 = heap_bytes();
	uint64_t t0 = bench_now_ns();
	for (r->conns = 0; r->conns < n; r->conns++)
		if (!(c[r->conns] = p->accept())) {
			fprintf(stderr, "(server: accept %llu failed) ",
			        (unsigned long long)r->conns);
			return;
		}
	r->secs = (double)(bench_now_ns() - t0) / 1e9;
	struct timespec settle = {0, 300000000};
	nanosleep(&settle, NULL);
	r->kib = (double)(rss_kib() - before) / (double)n;
	r->heap = (heap_bytes() - heap0) / 1024.0 / (double)n;
	/* Measured; now watch every connection (for tlsq this makes an eventfd
	 * each) before the client may start. */
	int ep = epoll_create1(EPOLL_CLOEXEC);
	for (uint64_t i = 0; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
		int fd = p->pollfd(c[i]);
		if (fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			fprintf(stderr, "(server: watching connection %llu failed) ",
			        (unsigned long long)i);
			return;
		}
	}
	(void)!write(gate, "x", 1);
	unsigned char m[MSG];
	struct epoll_event evs[256];
	uint64_t deadline = bench_now_ns() + (uint64_t)((o->w7_secs + 120) * 1e9);
	while (ended < o->w7_active) {
		if (bench_now_ns() > deadline) {
			fprintf(stderr, "(server: %llu of %llu ended) ", (unsigned long long)ended,
			        (unsigned long long)o->w7_active);
			return;
		}
		int k = epoll_wait(ep, evs, 256, 1000);
		for (int e = 0; e < k; e++) {
			void *cc = c[evs[e].data.u64];
			if (recv_full(p, cc, m, MSG) < 0 || p->send(cc, m, MSG) < 0)
				return;
			if (m[0] == 0xff) {
				epoll_ctl(ep, EPOLL_CTL_DEL, p->pollfd(cc), NULL);
				done[ended++] = cc;
			} else {
				r->count++;
			}
		}
	}
	/* A send returns once queued (tlsq): close the active ones so that their
	 * last echoes leave before the process exits. */
	for (uint64_t i = 0; i < ended; i++)
		p->close(done[i]);
	r->ok = 1;
}

void bench_w7_client(const struct bench_peer *p, int port, const struct bench_opts *o, int gate,
                     struct bench_rep *r)
{
	uint64_t n = o->conns[7], act = o->w7_active;
	void **c = calloc(n, sizeof *c);
	int naddr = (int)((n + W7_PER_ADDR - 1) / W7_PER_ADDR);
	uint64_t t0 = bench_now_ns();
	r->conns = establish(p, port, n, c, naddr);
	r->secs = (double)(bench_now_ns() - t0) / 1e9;
	if (r->conns < n) {
		fprintf(stderr, "(client: connection %llu failed) ", (unsigned long long)r->conns);
		return;
	}
	struct pollfd gpf = {gate, POLLIN, 0};
	char x;
	if (poll(&gpf, 1, 600000) != 1 || read(gate, &x, 1) != 1)
		return;
	/* A random act of the n connections (partial Fisher-Yates). */
	uint32_t *idx = malloc(n * sizeof *idx);
	for (uint64_t i = 0; i < n; i++)
		idx[i] = (uint32_t)i;
	uint64_t rnd = bench_now_ns() | 1;
	for (uint64_t i = 0; i < act; i++) {
		rnd ^= rnd >> 12;
		rnd ^= rnd << 25;
		rnd ^= rnd >> 27;
		uint64_t j = i + (rnd * 0x2545f4914f6cdd1dull >> 11) % (n - i);
		uint32_t t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
	struct pollfd *pf = calloc(act, sizeof *pf);
	uint64_t *sent_at = calloc(act, sizeof *sent_at), *seq = calloc(act, sizeof *seq);
	uint64_t nlat = 0, cap = 1 << 16, *lat = malloc(cap * sizeof *lat), left = act;
	unsigned char m[MSG], back[MSG];
	uint64_t start = bench_now_ns(), end = start + (uint64_t)(o->w7_secs * 1e9), stop = 0;
	for (uint64_t k = 0; k < act; k++) {
		pf[k].fd = p->pollfd(c[idx[k]]);
		pf[k].events = POLLIN;
		fill(m, MSG, k << 32);
		m[0] = 0;
		sent_at[k] = bench_now_ns();
		if (pf[k].fd < 0 || p->send(c[idx[k]], m, MSG) < 0)
			goto out;
	}
	while (left > 0) {
		int ready = poll(pf, (nfds_t)act, 30000);
		if (ready <= 0)
			goto out; /* 30 s without a single echo: the server is stuck */
		for (uint64_t k = 0; k < act && ready > 0; k++) {
			if (pf[k].fd < 0 || !pf[k].revents)
				continue;
			ready--;
			void *cc = c[idx[k]];
			if (recv_full(p, cc, back, MSG) < 0)
				goto out;
			uint64_t now = bench_now_ns();
			if (back[0] == 0xff) { /* the end came back: this one is done */
				pf[k].fd = -1;
				left--;
				continue;
			}
			fill(m, MSG, k << 32 | seq[k]);
			m[0] = 0;
			if (memcmp(m, back, MSG) != 0)
				goto out;
			if (nlat == cap)
				lat = realloc(lat, (cap *= 2) * sizeof *lat);
			lat[nlat++] = now - sent_at[k];
			if (now < end) {
				fill(m, MSG, k << 32 | ++seq[k]);
				m[0] = 0;
			} else {
				memset(m, 0xff, MSG);
				if (!stop)
					stop = now;
			}
			sent_at[k] = bench_now_ns();
			if (p->send(cc, m, MSG) < 0)
				goto out;
		}
	}
	qsort(lat, nlat, sizeof *lat, cmp_u64);
	r->count = nlat;
	r->p50 = nlat ? (double)lat[nlat / 2] / 1e3 : 0;
	r->p99 = nlat ? (double)lat[nlat * 99 / 100] / 1e3 : 0;
	r->p999 = nlat ? (double)lat[nlat * 999 / 1000] / 1e3 : 0;
	r->rate = (double)nlat / ((double)((stop ? stop : bench_now_ns()) - start) / 1e9);
	r->ok = nlat > 0;
out:
	free(lat);
	free(pf);
	free(sent_at);
	free(seq);
	free(idx);
}
