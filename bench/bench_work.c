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
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
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

/* Receives everything until the peer ends the stream: bytes and hash. */
static void drain(const struct bench_peer *p, void *c, struct bench_rep *r)
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

static void w1_client(const struct bench_peer *p, void *c, const struct bench_opts *o,
                      struct bench_rep *r)
{
	uint64_t t0 = bench_now_ns();
	struct hasher x;
	hash_init(&x);
	for (uint64_t sent = 0; sent < o->bulk; sent += CHUNK) {
		const unsigned char *buf = bulk_piece(sent / CHUNK, 0);
		hash_add(&x, buf, CHUNK);
		if (p->send(c, buf, CHUNK) < 0)
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
	int ok_out, ok_in;
};

static void *duplex_writer(void *arg)
{
	struct duplex *d = arg;
	struct hasher x;
	hash_init(&x);
	for (uint64_t sent = 0; sent < d->bytes; sent += CHUNK) {
		const unsigned char *buf = bulk_piece(sent / CHUNK, d->seed);
		hash_add(&x, buf, CHUNK);
		if (d->p->send(d->c, buf, CHUNK) < 0)
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
static void w4_side(const struct bench_peer *p, void *c, const struct bench_opts *o, int client,
                    struct bench_rep *r)
{
	struct duplex d = {p, c, o->duplex, client ? 1 : 2, 0, 0, 0, 0, 0};
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

void bench_conns_client(const struct bench_peer *p, int port, uint64_t n, int gate,
                        struct bench_rep *r)
{
	void **c = calloc(n, sizeof *c);
	uint64_t t0 = bench_now_ns(), started = 0;
	for (r->count = 0; r->count < n; r->count++) {
		if (p->connect_start) {
			/* keep BENCH_WINDOW handshakes in flight, finish them in order */
			while (started < n && started < r->count + BENCH_WINDOW)
				if (!(c[started++] = p->connect_start(port)))
					break;
			if (!c[r->count] || p->connect_wait(c[r->count]) < 0)
				break;
		} else if (!(c[r->count] = p->connect(port))) {
			break;
		}
	}
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
