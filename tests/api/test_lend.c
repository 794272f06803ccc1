/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Stream zero-copy receive (tlsq_recv_lend / tlsq_recv_release) over real
 * loopback TLS between two tlsq endpoints: bytes by checksum, partial
 * releases, many lending threads, budget, pollfd, and the chunk outliving
 * close, abort, conn free and engine free (ASan/LSan: no leak, no
 * use-after-free).
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/support.h"

#if defined(__SANITIZE_ADDRESS__) || defined(TLSQ_TSAN) || defined(TLSQ_VALGRIND)
#define BIG (4u << 20)
#else
#define BIG (16u << 20)
#endif

struct sender {
	tlsq_conn *c;
	uint64_t seed, len;
	size_t chunk;
	int shutdown; /* tlsq_shutdown_send after the last byte */
	int rc;
};

static void *send_thread(void *arg)
{
	struct sender *s = arg;
	s->rc = ts_send_pattern(s->c, s->seed, s->len, s->chunk);
	if (s->rc == 0 && s->shutdown)
		s->rc = tlsq_shutdown_send(s->c);
	return NULL;
}

/* One thread, partial releases of varying sizes: the consumed bytes, in
 * order, are the stream sent (FNV of both), and the end comes as 0. */
static void test_lend_with_partial_releases_delivers_the_stream_intact(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	struct sender s = {p.client, 7, BIG, 16384, 1, -9};
	ts_thread t = ts_spawn(send_thread, &s);
	static const size_t steps[] = {1, 7, 1000, 4096, SIZE_MAX, 3, 16384, 0};
	uint64_t got = 0, h = TS_FNV_INIT, want = TS_FNV_INIT, lends = 0;
	unsigned char *exp = malloc(65536);
	assert_non_null(exp);
	for (unsigned i = 0;; i++) {
		tlsq_chunk *ch;
		const void *data;
		ssize_t n = tlsq_recv_lend(p.server, &ch, &data, 10000);
		if (n == 0) {
			assert_null(ch);
			assert_null(data);
			break;
		}
		assert_true(n > 0);
		assert_non_null(ch);
		lends++;
		size_t k = steps[i % (sizeof steps / sizeof steps[0])];
		if (k > (size_t)n)
			k = (size_t)n;
		/* what the chunk shows must be the stream at `got`, all of it */
		size_t m = (size_t)n < 65536 ? (size_t)n : 65536;
		ts_fill(7, got, exp, m);
		assert_memory_equal(data, exp, m);
		h = ts_fnv(h, data, k);
		want = ts_fnv(want, exp, k);
		got += k;
		assert_int_equal(tlsq_recv_release(ch, k), TLSQ_OK);
	}
	ts_join(t);
	assert_int_equal(s.rc, 0);
	assert_true(got == BIG);
	assert_true(h == want);
	assert_true(lends > BIG / 16384); /* partial releases did lend the rests again */
	free(exp);
	ts_pair_close(&p);
}

/* ---- many threads: each chunk locates itself in the stream ------------- */

/* The stream for the threaded test: little-endian 64-bit words, word i =
 * SALT + i, so that any 16 bytes of it tell where they are. */
#define SALT (UINT64_C(0x5a) << 40)

static unsigned char pat_byte(uint64_t off)
{
	uint64_t w = SALT + off / 8;
	return (unsigned char)(w >> (8 * (off % 8)));
}

static int pat_send(tlsq_conn *c, uint64_t len)
{
	unsigned char buf[16384];
	for (uint64_t off = 0; off < len; off += sizeof buf) {
		size_t n = len - off < sizeof buf ? (size_t)(len - off) : sizeof buf;
		for (size_t i = 0; i < n; i++)
			buf[i] = pat_byte(off + i);
		if (tlsq_send(c, buf, n, 30000) != (ssize_t)n)
			return -1;
	}
	return tlsq_shutdown_send(c);
}

/* The offset of `data` in the stream, or -1 if no offset fits all n bytes. */
static int64_t pat_locate(const unsigned char *data, size_t n)
{
	if (n < 16)
		return -1;
	for (unsigned a = 0; a < 8; a++) {
		uint64_t w = 0;
		for (unsigned i = 0; i < 8; i++)
			w |= (uint64_t)data[a + i] << (8 * i);
		if (w < SALT || (w - SALT) * 8 < a)
			continue;
		uint64_t off = (w - SALT) * 8 - a;
		size_t i = 0;
		while (i < n && data[i] == pat_byte(off + i))
			i++;
		if (i == n)
			return (int64_t)off;
	}
	return -1;
}

struct span {
	uint64_t off, len;
};

struct lender {
	tlsq_conn *c;
	int copy; /* receive with tlsq_recv instead */
	struct span *spans;
	size_t nspans, cap;
	uint64_t bytes, bad;
	int rc;
};

static void *lend_thread(void *arg)
{
	struct lender *l = arg;
	static _Thread_local unsigned char buf[65536];
	for (;;) {
		tlsq_chunk *ch = NULL;
		const void *data = buf;
		ssize_t n = l->copy ? tlsq_recv(l->c, buf, sizeof buf, 30000)
		                    : tlsq_recv_lend(l->c, &ch, &data, 30000);
		if (n <= 0) {
			l->rc = (int)n;
			return NULL;
		}
		if (l->copy) { /* what tlsq_recv took is taken whole */
			int64_t off = pat_locate(data, (size_t)n);
			if (off < 0 || l->nspans == l->cap)
				l->bad++;
			else
				l->spans[l->nspans++] = (struct span){(uint64_t)off, (uint64_t)n};
			l->bytes += (uint64_t)n;
			continue;
		}
		int64_t off = pat_locate(data, (size_t)n);
		/* Take half of a long chunk: the rest goes back, possibly to
		 * another thread, and must locate itself there too. */
		size_t k = n >= 64 ? (size_t)n / 2 : (size_t)n;
		if (off < 0) {
			l->bad++;
		} else if (l->nspans < l->cap) {
			l->spans[l->nspans++] = (struct span){(uint64_t)off, k};
		} else {
			l->bad++;
		}
		l->bytes += k;
		if (tlsq_recv_release(ch, k) != TLSQ_OK)
			l->bad++;
	}
}

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static void test_many_threads_lend_and_recv_at_once_and_cover_the_stream_exactly(void **state)
{
	(void)state;
	enum { NT = 4 };
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	struct lender l[NT];
	ts_thread t[NT];
	for (int i = 0; i < NT; i++) {
		/* two lend (and put rests back), one more lends, one copies:
		 * rests put back by a lender may go to the copying thread */
		l[i] =
		    (struct lender){.c = p.server, .copy = i == NT - 1, .cap = BIG / 64, .rc = -99};
		l[i].spans = calloc(l[i].cap, sizeof *l[i].spans);
		assert_non_null(l[i].spans);
		t[i] = ts_spawn(lend_thread, &l[i]);
	}
	assert_int_equal(pat_send(p.client, BIG), 0);
	uint64_t total = 0, bad = 0;
	size_t ns = 0;
	for (int i = 0; i < NT; i++) {
		ts_join(t[i]);
		assert_int_equal(l[i].rc, 0); /* every thread saw the clean end */
		total += l[i].bytes;
		bad += l[i].bad;
		ns += l[i].nspans;
	}
	assert_true(bad == 0);
	assert_true(total == BIG);
	/* The consumed pieces tile [0, BIG) exactly: none lost, none twice. */
	struct span *all = calloc(ns, sizeof *all);
	assert_non_null(all);
	size_t k = 0;
	for (int i = 0; i < NT; i++) {
		memcpy(all + k, l[i].spans, l[i].nspans * sizeof *all);
		k += l[i].nspans;
		free(l[i].spans);
	}
	qsort(all, ns, sizeof *all, span_cmp);
	uint64_t at = 0;
	for (size_t i = 0; i < ns; i++) {
		assert_true(all[i].off == at);
		at += all[i].len;
	}
	assert_true(at == BIG);
	free(all);
	ts_pair_close(&p);
}

/* ---- mixing with tlsq_recv -------------------------------------------- */

static void test_release_rest_then_recv_and_lend_continue_in_order(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	unsigned char msg[1000], buf[1000];
	ts_fill(3, 0, msg, sizeof msg);
	assert_int_equal(tlsq_send(p.client, msg, sizeof msg, 5000), (ssize_t)sizeof msg);
	assert_int_equal(tlsq_flush(p.client, 5000), TLSQ_OK);

	/* Collect all 1000 bytes: they may come in more than one chunk. */
	size_t at = 0;
	tlsq_chunk *ch;
	const void *data;
	ssize_t n = tlsq_recv_lend(p.server, &ch, &data, 5000);
	assert_true(n > 10);
	assert_memory_equal(data, msg, (size_t)n);
	assert_int_equal(tlsq_recv_release(ch, 10), TLSQ_OK);
	at = 10;
	/* recv starts exactly where the release stopped */
	assert_int_equal(tlsq_recv(p.server, buf, 5, 5000), 5);
	assert_memory_equal(buf, msg + at, 5);
	at += 5;
	/* and a lend after that recv gets the rest of that chunk */
	n = tlsq_recv_lend(p.server, &ch, &data, 5000);
	assert_true(n > 0);
	assert_memory_equal(data, msg + at, (size_t)n);
	/* consumed 0: everything goes back */
	assert_int_equal(tlsq_recv_release(ch, 0), TLSQ_OK);
	while (at < sizeof msg) {
		n = tlsq_recv(p.server, buf, sizeof buf, 5000);
		assert_true(n > 0);
		assert_memory_equal(buf, msg + at, (size_t)n);
		at += (size_t)n;
	}
	assert_true(at == sizeof msg);
	assert_int_equal(tlsq_recv_lend(p.server, &ch, &data, 0), TLSQ_EAGAIN);
	assert_null(ch);
	ts_pair_close(&p);
}

/* ---- errors ------------------------------------------------------------ */

static void test_lend_and_release_refuse_bad_arguments(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	tlsq_chunk *ch = (tlsq_chunk *)&p; /* must be overwritten with NULL */
	const void *data = &p;
	assert_int_equal(tlsq_recv_release(NULL, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_recv_lend(NULL, &ch, &data, 0), TLSQ_EINVAL);
	assert_null(ch);
	assert_null(data);
	assert_int_equal(tlsq_recv_lend(p.server, NULL, &data, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_recv_lend(p.server, &ch, NULL, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_recv_lend(p.server, &ch, &data, 0), TLSQ_EAGAIN);
	assert_int_equal(tlsq_recv_lend(p.server, &ch, &data, 50), TLSQ_ETIMEDOUT);
	assert_null(ch);

	assert_int_equal(tlsq_send(p.client, "abcdef", 6, 5000), 6);
	ssize_t n = tlsq_recv_lend(p.server, &ch, &data, 5000);
	assert_true(n > 0 && n <= 6);
	/* more than was lent: refused, the chunk stays lent and usable */
	assert_int_equal(tlsq_recv_release(ch, (size_t)n + 1), TLSQ_EINVAL);
	assert_memory_equal(data, "abcdef", (size_t)n);
	assert_int_equal(tlsq_recv_release(ch, (size_t)n), TLSQ_OK);
	ts_pair_close(&p);

	/* message mode has tlsq_msg_recv */
	ts_pair_open(&p, NULL, TLSQ_MODE_MESSAGE);
	assert_int_equal(tlsq_recv_lend(p.server, &ch, &data, 0), TLSQ_EINVAL);
	ts_pair_close(&p);
}

/* ---- pollfd ------------------------------------------------------------ */

static int readable(int fd)
{
	struct pollfd pf = {fd, POLLIN, 0};
	return poll(&pf, 1, 0) == 1 && (pf.revents & POLLIN);
}

static int pollfd_readable(void *arg)
{
	return readable(*(int *)arg);
}

static void test_pollfd_clears_when_the_last_chunk_is_lent_and_returns_with_a_rest(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	int fd = tlsq_conn_pollfd(p.server);
	assert_true(fd >= 0);
	assert_false(readable(fd));
	assert_int_equal(tlsq_send(p.client, "0123456789", 10, 5000), 10);
	assert_true(ts_wait_for(pollfd_readable, &fd, 5000));
	tlsq_chunk *ch;
	const void *data;
	size_t got = 0;
	ssize_t n = tlsq_recv_lend(p.server, &ch, &data, 5000);
	assert_true(n > 1);
	/* One send arrives as one chunk here unless it was split in transit;
	 * either way, once everything sent is lent nothing is left to read. */
	assert_memory_equal(data, "0123456789", (size_t)n);
	if (n == 10)
		assert_false(readable(fd));
	assert_int_equal(tlsq_recv_release(ch, 1), TLSQ_OK);
	assert_true(readable(fd)); /* the rest is back */
	got = 1;
	while (got < 10) {
		n = tlsq_recv_lend(p.server, &ch, &data, 5000);
		assert_true(n > 0);
		assert_memory_equal(data, "0123456789" + got, (size_t)n);
		got += (size_t)n;
		assert_int_equal(tlsq_recv_release(ch, (size_t)n), TLSQ_OK);
	}
	assert_false(readable(fd));
	ts_pair_close(&p);
}

/* ---- budget ------------------------------------------------------------ */

static void test_lent_chunks_hold_the_rx_budget_until_released(void **state)
{
	(void)state;
	enum { BUDGET = 64 * 1024, SEND = 1024 * 1024, MAXC = 1024 };
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.rx_budget = BUDGET;
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	struct sender s = {p.client, 9, SEND, 16384, 0, -9};
	ts_thread t = ts_spawn(send_thread, &s);
	unsigned char *exp = malloc(SEND);
	assert_non_null(exp);
	ts_fill(9, 0, exp, SEND);
	tlsq_chunk *held[MAXC];
	size_t len[MAXC], nheld = 0;
	uint64_t lent = 0;
	const void *data;
	/* Lend without releasing until nothing more comes for 300 ms: with the
	 * budget held, the IO task stops at BUDGET; with the credit given back
	 * at the lend, all of SEND would come. A slow machine can only make
	 * `lent` smaller, never larger. */
	for (;;) {
		assert_true(nheld < MAXC);
		ssize_t n = tlsq_recv_lend(p.server, &held[nheld], &data, 300);
		if (n == TLSQ_ETIMEDOUT)
			break;
		assert_true(n > 0);
		assert_memory_equal(data, exp + lent, (size_t)n);
		len[nheld++] = (size_t)n;
		lent += (uint64_t)n;
	}
	assert_true(lent > 0);
	assert_true(lent <= BUDGET);
	struct tlsq_conn_info ci;
	assert_int_equal(tlsq_conn_info(p.server, &ci), TLSQ_OK);
	assert_true(ci.rx_queued >= lent);
	/* Releasing makes room: the rest of the stream arrives, in order. */
	for (size_t i = 0; i < nheld; i++)
		assert_int_equal(tlsq_recv_release(held[i], len[i]), TLSQ_OK);
	uint64_t got = lent;
	while (got < SEND) {
		tlsq_chunk *ch;
		ssize_t n = tlsq_recv_lend(p.server, &ch, &data, 10000);
		assert_true(n > 0);
		assert_true(got + (uint64_t)n <= SEND);
		assert_memory_equal(data, exp + got, (size_t)n);
		got += (uint64_t)n;
		assert_int_equal(tlsq_recv_release(ch, (size_t)n), TLSQ_OK);
	}
	ts_join(t);
	assert_int_equal(s.rc, 0);
	free(exp);
	ts_pair_close(&p);
}

/* A rest put back and lent again is charged again: what is lent counts
 * (rx_queued = queued + lent), and its release gives it back. */
static void test_a_lent_rest_counts_as_queued_until_released(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	unsigned char msg[100];
	ts_fill(4, 0, msg, sizeof msg);
	assert_int_equal(tlsq_send(p.client, msg, sizeof msg, 5000), (ssize_t)sizeof msg);
	tlsq_chunk *ch;
	const void *data;
	struct tlsq_conn_info ci;
	ssize_t n = tlsq_recv_lend(p.server, &ch, &data, 5000);
	assert_true(n > 10);
	assert_int_equal(tlsq_conn_info(p.server, &ci), TLSQ_OK);
	assert_true(ci.rx_queued >= (uint64_t)n);
	assert_int_equal(tlsq_recv_release(ch, 10), TLSQ_OK);
	ssize_t n2 = tlsq_recv_lend(p.server, &ch, &data, 5000);
	assert_int_equal(n2, n - 10);
	assert_memory_equal(data, msg + 10, (size_t)n2);
	assert_int_equal(tlsq_conn_info(p.server, &ci), TLSQ_OK);
	assert_true(ci.rx_queued >= (uint64_t)n2);
	if (n == (ssize_t)sizeof msg) { /* all of it was in that chunk */
		assert_true(ci.rx_queued == (uint64_t)n2);
		assert_int_equal(tlsq_recv_release(ch, (size_t)n2), TLSQ_OK);
		assert_int_equal(tlsq_conn_info(p.server, &ci), TLSQ_OK);
		assert_true(ci.rx_queued == 0);
	} else {
		assert_int_equal(tlsq_recv_release(ch, (size_t)n2), TLSQ_OK);
	}
	ts_pair_close(&p);
}

/* ---- the chunk outlives its connection --------------------------------- */

enum { LIFE_LEN = 3000 };

/* A pair with LIFE_LEN bytes of stream 11 sent to the server and one chunk
 * of it lent; returns its length. */
static size_t lend_one(ts_pair *p, tlsq_chunk **ch, const unsigned char **data, unsigned char *exp)
{
	ts_pair_open(p, NULL, TLSQ_MODE_STREAM);
	ts_fill(11, 0, exp, LIFE_LEN);
	assert_int_equal(tlsq_send(p->client, exp, LIFE_LEN, 5000), LIFE_LEN);
	const void *d;
	ssize_t n = tlsq_recv_lend(p->server, ch, &d, 5000);
	assert_true(n > 1);
	assert_memory_equal(d, exp, (size_t)n);
	*data = d;
	return (size_t)n;
}

static void test_abort_while_lent_leaves_the_chunk_valid_and_releasable(void **state)
{
	(void)state;
	ts_pair p;
	tlsq_chunk *ch, *ch2;
	const unsigned char *data;
	const void *d2;
	unsigned char exp[LIFE_LEN];
	size_t n = lend_one(&p, &ch, &data, exp);
	tlsq_abort(p.server);
	assert_int_equal(tlsq_recv_lend(p.server, &ch2, &d2, 1000), TLSQ_ECLOSED);
	assert_memory_equal(data, exp, n);
	assert_int_equal(tlsq_recv_release(ch, 1), TLSQ_OK);
	/* the rest was put back into a closed queue: discarded, not lent */
	assert_int_equal(tlsq_recv_lend(p.server, &ch2, &d2, 1000), TLSQ_ECLOSED);
	assert_null(ch2);
	ts_pair_close(&p);
}

static void test_close_while_lent_leaves_the_chunk_valid_and_releasable(void **state)
{
	(void)state;
	ts_pair p;
	tlsq_chunk *ch, *ch2;
	const unsigned char *data;
	const void *d2;
	unsigned char exp[LIFE_LEN];
	size_t n = lend_one(&p, &ch, &data, exp);
	(void)tlsq_close(p.server, 2000, NULL); /* its outcome is not the point */
	assert_memory_equal(data, exp, n);
	assert_int_equal(tlsq_recv_lend(p.server, &ch2, &d2, 1000), TLSQ_ECLOSED);
	assert_int_equal(tlsq_recv_release(ch, n / 2), TLSQ_OK);
	assert_int_equal(tlsq_recv_lend(p.server, &ch2, &d2, 1000), TLSQ_ECLOSED);
	ts_pair_close(&p);
}

static void test_conn_free_while_lent_then_release_is_safe(void **state)
{
	(void)state;
	ts_pair p;
	tlsq_chunk *ch;
	const unsigned char *data;
	unsigned char exp[LIFE_LEN];
	size_t n = lend_one(&p, &ch, &data, exp);
	tlsq_conn_free(p.server);
	p.server = NULL;
	assert_memory_equal(data, exp, n);
	/* a rest of a freed connection's chunk: nobody can read it, freed */
	assert_int_equal(tlsq_recv_release(ch, 1), TLSQ_OK);
	ts_pair_close(&p);
}

static void test_engine_free_while_lent_then_release_then_conn_free(void **state)
{
	(void)state;
	ts_pair p;
	tlsq_chunk *ch;
	const unsigned char *data;
	unsigned char exp[LIFE_LEN];
	size_t n = lend_one(&p, &ch, &data, exp);
	tlsq_engine_free(p.engine);
	p.engine = NULL;
	assert_memory_equal(data, exp, n);
	assert_int_equal(tlsq_recv_release(ch, n - 1), TLSQ_OK);
	ts_pair_close(&p); /* frees the connections after the engine */
}

/* Release as the very last call: after the connections, the listener,
 * the engine and the profiles are all freed. The chunk's reference is
 * then the last one: the release frees the connection (and the engine's
 * memory); LeakSanitizer sees a leak if it does not, ASan a
 * use-after-free if the chunk did not keep them. */
static void test_release_after_everything_was_freed_frees_the_rest(void **state)
{
	(void)state;
	ts_pair p;
	tlsq_chunk *ch;
	const unsigned char *data;
	unsigned char exp[LIFE_LEN];
	size_t n = lend_one(&p, &ch, &data, exp);
	ts_pair_close(&p);
	assert_memory_equal(data, exp, n);
	assert_int_equal(tlsq_recv_release(ch, 2), TLSQ_OK);
}

/* Threads blocked in lend, others holding chunks, and an abort: every
 * thread returns, every chunk is released, nothing leaks. */
struct holder {
	tlsq_conn *c;
	int rc;
	uint64_t lends, bad;
};

static void *hold_thread(void *arg)
{
	struct holder *h = arg;
	tlsq_chunk *held[64];
	size_t len[64], n = 0;
	const void *d;
	for (;;) {
		ssize_t r = tlsq_recv_lend(h->c, &held[n], &d, 30000);
		if (r <= 0) {
			h->rc = (int)r;
			break;
		}
		len[n] = (size_t)r;
		__atomic_add_fetch(&h->lends, 1, __ATOMIC_RELAXED);
		if (++n == 64) { /* keep at most 63: let go of the oldest, whole */
			h->bad += tlsq_recv_release(held[0], len[0]) != TLSQ_OK;
			memmove(held, held + 1, 63 * sizeof *held);
			memmove(len, len + 1, 63 * sizeof *len);
			n = 63;
		}
	}
	/* after the abort: partial releases of a closed connection's chunks */
	for (size_t i = 0; i < n; i++)
		h->bad += tlsq_recv_release(held[i], 1) != TLSQ_OK;
	return NULL;
}

static int some_lent(void *arg)
{
	struct holder *h = arg;
	uint64_t total = 0;
	for (int i = 0; i < 3; i++)
		total += __atomic_load_n(&h[i].lends, __ATOMIC_RELAXED);
	return total >= 8;
}

static void test_abort_with_threads_holding_and_waiting_returns_all(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	struct holder h[3];
	ts_thread t[3];
	for (int i = 0; i < 3; i++) {
		h[i] = (struct holder){p.server, -99, 0, 0};
		t[i] = ts_spawn(hold_thread, &h[i]);
	}
	struct sender s = {p.client, 5, 1u << 20, 4096, 0, -9};
	ts_thread st = ts_spawn(send_thread, &s);
	assert_true(ts_wait_for(some_lent, h, 10000));
	tlsq_abort(p.server);
	for (int i = 0; i < 3; i++) {
		ts_join(t[i]);
		assert_int_equal(h[i].rc, TLSQ_ECLOSED);
		assert_true(h[i].bad == 0);
	}
	tlsq_abort(p.client); /* the sender may be blocked on a full budget */
	ts_join(st);
	ts_pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lend_with_partial_releases_delivers_the_stream_intact),
	    cmocka_unit_test(test_many_threads_lend_and_recv_at_once_and_cover_the_stream_exactly),
	    cmocka_unit_test(test_release_rest_then_recv_and_lend_continue_in_order),
	    cmocka_unit_test(test_lend_and_release_refuse_bad_arguments),
	    cmocka_unit_test(
	        test_pollfd_clears_when_the_last_chunk_is_lent_and_returns_with_a_rest),
	    cmocka_unit_test(test_lent_chunks_hold_the_rx_budget_until_released),
	    cmocka_unit_test(test_a_lent_rest_counts_as_queued_until_released),
	    cmocka_unit_test(test_abort_while_lent_leaves_the_chunk_valid_and_releasable),
	    cmocka_unit_test(test_close_while_lent_leaves_the_chunk_valid_and_releasable),
	    cmocka_unit_test(test_conn_free_while_lent_then_release_is_safe),
	    cmocka_unit_test(test_engine_free_while_lent_then_release_then_conn_free),
	    cmocka_unit_test(test_release_after_everything_was_freed_frees_the_rest),
	    cmocka_unit_test(test_abort_with_threads_holding_and_waiting_returns_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
