/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Multi-threaded stress of the queues with small budgets (so that every
 * thread blocks and is woken over and over):
 *   - 8 producers x 1 consumer on a tx queue (MPSC),
 *   - 1 producer x 8 consumers on an rx queue (SPMC), parking included,
 *   - the same with consumers putting half-read messages back.
 * 10^6 messages in all (10^5 under a sanitizer). Every message carries its
 * producer and sequence number and 64 bytes derived from them: each one is
 * checked byte for byte, delivered exactly once, in per-producer order (a
 * consumer of the SPMC queue sees increasing sequence numbers), and the
 * order-independent sums of the message hashes on both sides agree.
 */
#include "qtest.h"

#include "queue.h"

#if QT_SANITIZED
#define TOTAL 100000ull
#else
#define TOTAL 1000000ull
#endif
#define MPSC_N  (TOTAL * 45 / 100)
#define SPMC_N  (TOTAL * 45 / 100)
#define UNPOP_N (TOTAL / 10)

enum { MSG = 64, THREADS = 8, HALF = MSG / 2 };

/* Byte i of message (producer p, sequence s). Bytes [0..8) and [32..40)
 * hold s and byte 8 holds p, so each half can be checked on its own. */
static void fill(unsigned char *m, uint32_t p, uint64_t s)
{
	for (int i = 0; i < MSG; i++)
		m[i] = (unsigned char)(s * 31 + (uint64_t)p * 7 + (uint64_t)i * 13);
	memcpy(m, &s, 8);
	memcpy(m + HALF, &s, 8);
	m[8] = (unsigned char)p;
}

static uint64_t msg_hash(uint32_t p, uint64_t s)
{
	uint64_t h = qt_fnv(QT_FNV_INIT, &p, sizeof p);
	return qt_fnv(h, &s, sizeof s);
}

/* Checks a piece m = message bytes [from..to), from 0 or HALF, against the
 * (p, s) it carries; returns s, or UINT64_MAX on a mismatch. Both halves
 * start with s; second halves only travel on the rx queue, whose single
 * producer is number 0. */
static uint64_t check(const unsigned char *m, int from, int to, uint32_t *p_out)
{
	unsigned char want[MSG];
	uint64_t s;
	memcpy(&s, m, 8);
	uint32_t p = from == 0 ? m[8] : 0;
	fill(want, p, s);
	if (memcmp(want + from, m, (size_t)(to - from)) != 0)
		return UINT64_MAX;
	*p_out = p;
	return s;
}

/* ---- 8 producers x 1 consumer ---- */

struct mpsc {
	tlsq__queue q;
	_Atomic uint64_t sent_hash;
	_Atomic int err;
};

struct mpsc_producer {
	struct mpsc *m;
	uint32_t id;
	uint64_t n;
};

static void *mpsc_produce(void *arg)
{
	struct mpsc_producer *p = arg;
	uint64_t h = 0;
	for (uint64_t s = 0; s < p->n; s++) {
		tlsq__buf *b = tlsq__buf_alloc(MSG);
		fill(b->data, p->id, s);
		b->wr = MSG;
		int rc = tlsq__txq_push_mpsc(&p->m->q, b, 0, -1, NULL);
		if (rc != TLSQ_OK) {
			tlsq__buf_free(b);
			atomic_store(&p->m->err, rc);
			break;
		}
		h += msg_hash(p->id, s);
	}
	atomic_fetch_add(&p->m->sent_hash, h);
	return NULL;
}

static void test_8_producers_1_consumer_exactly_once_in_order_checksummed(void **state)
{
	(void)state;
	static struct mpsc m;
	struct mpsc_producer pp[THREADS];
	pthread_t t[THREADS];
	uint64_t next[THREADS] = {0}, recv_hash = 0, got = 0, per = MPSC_N / THREADS;
	int bad = 0, rc = TLSQ_OK;
	memset(&m, 0, sizeof m);
	tlsq__queue_init(&m.q, 64 * MSG, 128); /* 64 messages of budget */
	uint64_t t0 = tlsq__now_ns();
	for (uint32_t i = 0; i < THREADS; i++) {
		pp[i] = (struct mpsc_producer){.m = &m, .id = i, .n = per};
		t[i] = qt_spawn(mpsc_produce, &pp[i]);
	}
	while (got < per * THREADS) {
		tlsq__buf *b;
		if ((rc = tlsq__txq_pop_wait_sc(&m.q, &b, 30000)) != TLSQ_OK)
			break;
		uint32_t p = 0;
		uint64_t s = check(b->data, 0, MSG, &p);
		if (s == UINT64_MAX || tlsq__buf_len(b) != MSG || p >= THREADS || s != next[p])
			bad++; /* corrupt, duplicated, lost or out of order */
		else
			next[p]++;
		recv_hash += msg_hash(p, s);
		got++;
		tlsq__txq_release_sc(&m.q, b->qcharge, 1);
		tlsq__buf_free(b);
	}
	for (int i = 0; i < THREADS; i++)
		qt_join(t[i]);
	double secs = (double)(tlsq__now_ns() - t0) / 1e9;
	print_message("MPSC: %llu messages in %.2f s (%.2f M/s), %llu producer waits, "
	              "%llu consumer waits\n",
	              (unsigned long long)got, secs, (double)got / secs / 1e6,
	              (unsigned long long)tlsq__counter_get(&m.q.stats.producer_waits),
	              (unsigned long long)tlsq__counter_get(&m.q.stats.consumer_waits));
	assert_int_equal(rc, TLSQ_OK);
	assert_int_equal(atomic_load(&m.err), 0);
	assert_int_equal(bad, 0);
	assert_int_equal(got, per * THREADS);
	assert_int_equal(recv_hash, atomic_load(&m.sent_hash));
	assert_null(tlsq__txq_pop_sc(&m.q));
	assert_int_equal(atomic_load(&m.q.reserved), 0);
	tlsq__queue_fini(&m.q);
}

/* ---- 1 producer x 8 consumers ---- */

struct spmc {
	tlsq__queue q;
	tlsq__ec unpark_ec;         /* consumers -> producer: room again */
	_Atomic uint8_t *seen;      /* per message: bit 0 first half, bit 1 second */
	_Atomic uint64_t recv_hash; /* sum over first halves */
	_Atomic uint64_t pieces;
	_Atomic int bad;
	int unpop; /* put half of every third message back */
	uint64_t n;
};

static void *spmc_consume(void *arg)
{
	struct spmc *c = arg;
	uint64_t last = 0, h = 0, pieces = 0;
	int first = 1, bad = 0, rc, unpark = 0;
	tlsq__buf *b;
	/* A clean end is TLSQ_OK with b == NULL (queue.h). */
	while ((rc = tlsq__rxq_pop_mc(&c->q, &b, -1, &unpark)) == TLSQ_OK && b != NULL) {
		if (unpark) {
			tlsq__ec_inc(&c->unpark_ec);
			unpark = 0;
		}
		int from = (int)b->rd, to = (int)b->wr;
		uint32_t p = 0;
		if (c->unpop && from == 0) {
			uint64_t s0;
			memcpy(&s0, b->data, 8);
			if (s0 % 3 == 0)
				to = HALF; /* read the first half only */
		}
		uint64_t s = check(b->data + from, from, to, &p);
		if (s == UINT64_MAX || s >= c->n) {
			bad++;
		} else {
			uint8_t bits = (uint8_t)((from < HALF ? 1 : 0) | (to > HALF ? 2 : 0));
			if (atomic_fetch_or(&c->seen[s], bits) & bits)
				bad++; /* delivered twice */
			/* Ring order: one consumer's whole messages come in order
			 * (put-back halves may be older). */
			if (from == 0 && !c->unpop && !first && s <= last)
				bad++;
			if (from == 0) {
				last = s;
				first = 0;
				h += msg_hash(p, s);
			}
		}
		pieces++;
		if (to < (int)b->wr) {
			b->rd = (uint32_t)to;
			tlsq__rxq_unpop_mc(&c->q, b);
		} else {
			tlsq__buf_free(b);
		}
	}
	if (rc != 0)
		bad++; /* the producer ends the queue cleanly */
	atomic_fetch_add(&c->recv_hash, h);
	atomic_fetch_add(&c->pieces, pieces);
	atomic_fetch_add(&c->bad, bad);
	return NULL;
}

static void run_spmc(uint64_t n, int unpop, int trim)
{
	static struct spmc c;
	pthread_t t[THREADS];
	uint64_t sent_hash = 0, parks = 0, trims = 0;
	memset(&c, 0, sizeof c);
	c.n = n;
	c.unpop = unpop;
	c.seen = calloc(n, 1);
	tlsq__ec_init(&c.unpark_ec);
	/* trim: a connection's ring (whole pages of slots to give back), the
	 * producer trimming after every push while consumers dequeue. */
	tlsq__queue_init(&c.q, 32 * MSG, trim ? 4096 : 64);
	uint64_t t0 = tlsq__now_ns();
	for (int i = 0; i < THREADS; i++)
		t[i] = qt_spawn(spmc_consume, &c);
	for (uint64_t s = 0; s < n; s++) {
		tlsq__buf *b = tlsq__buf_alloc(MSG);
		fill(b->data, 0, s);
		b->wr = MSG;
		for (;;) {
			/* the wait protocol: count, attempt, sleep unless it moved */
			uint32_t seen = tlsq__ec_value(&c.unpark_ec);
			int rc = tlsq__rxq_push_sp(&c.q, b, 0, NULL);
			if (rc == TLSQ_OK) {
				if (trim)
					trims += (uint64_t)tlsq__rxq_trim_sp(&c.q);
				break;
			}
			assert_int_equal(rc, TLSQ_EAGAIN);
			parks++;
			tlsq__ec_wait(&c.unpark_ec, seen, NULL);
		}
		sent_hash += msg_hash(0, s);
	}
	tlsq__queue_end(&c.q, 0);
	for (int i = 0; i < THREADS; i++)
		qt_join(t[i]);
	double secs = (double)(tlsq__now_ns() - t0) / 1e9;
	print_message("SPMC%s: %llu messages in %.2f s (%.2f M/s), %llu parks, %llu consumer "
	              "waits, %llu trims\n",
	              unpop ? " with put-backs" : "", (unsigned long long)n, secs,
	              (double)n / secs / 1e6, (unsigned long long)parks,
	              (unsigned long long)tlsq__counter_get(&c.q.stats.consumer_waits),
	              (unsigned long long)trims);
	if (trim)
		assert_true(trims > 0);
	uint64_t missing = 0;
	for (uint64_t s = 0; s < n; s++)
		missing += atomic_load(&c.seen[s]) != 3;
	assert_int_equal(atomic_load(&c.bad), 0);
	assert_int_equal(missing, 0);
	assert_int_equal(atomic_load(&c.recv_hash), sent_hash);
	assert_int_equal(atomic_load(&c.pieces), n + (unpop ? (n + 2) / 3 : 0));
	assert_int_equal(atomic_load(&c.q.reserved), 0);
	free((void *)c.seen);
	tlsq__queue_fini(&c.q);
}

static void test_1_producer_8_consumers_exactly_once_in_order_checksummed(void **state)
{
	(void)state;
	run_spmc(SPMC_N, 0, 0);
}

/* The IO task gives an empty ring's pages back (tlsq__rxq_trim_sp) while
 * consumers are inside their dequeues: nothing lost, repeated or reordered. */
static void test_1_producer_8_consumers_with_ring_trims_lose_and_repeat_nothing(void **state)
{
	(void)state;
	run_spmc(SPMC_N, 0, 1);
}

static void test_8_consumers_putting_halves_back_lose_and_repeat_nothing(void **state)
{
	(void)state;
	run_spmc(UNPOP_N, 1, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_8_producers_1_consumer_exactly_once_in_order_checksummed),
	    cmocka_unit_test(test_1_producer_8_consumers_exactly_once_in_order_checksummed),
	    cmocka_unit_test(test_1_producer_8_consumers_with_ring_trims_lose_and_repeat_nothing),
	    cmocka_unit_test(test_8_consumers_putting_halves_back_lose_and_repeat_nothing),
	};
	return QT_RUN(tests);
}
