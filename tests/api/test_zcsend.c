/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Stream zero-copy send (tlsq_msg_alloc / tlsq_msg_send on a stream
 * connection) over real loopback TLS between two tlsq endpoints: one
 * msg_send is one entry of the stream, never interleaved with tlsq_send /
 * tlsq_sendv from other threads (G1); budgets, blocking and timeouts as for
 * tlsq_send (G4); close, abort and free while a msg_send is blocked (G5);
 * the end codes; 0 bytes and more than the budget. Ownership: on TLSQ_OK
 * tlsq owns the buffer, on failure the caller does (ASan/LSan: no leak, no
 * double free).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/support.h"

#if defined(__SANITIZE_ADDRESS__) || defined(TLSQ_TSAN) || defined(TLSQ_VALGRIND)
#define PER_THREAD (1u << 20)
#else
#define PER_THREAD (4u << 20)
#endif

/* ---- self-describing records: G1 across threads ------------------------ */

/* Each send (msg_send, tlsq_send or tlsq_sendv) carries one record: a
 * 16-byte header (magic, thread, sequence, payload length) and a payload
 * that is stream (thread << 32 | seq) of ts_fill. The receiver parses the
 * stream record by record: a record interleaved with another call's bytes
 * breaks the magic or the payload; a lost or repeated one breaks the
 * thread's sequence. */
#define MAGIC 0x7a63736eu /* "zcsn" */
#define HDR   16

static void hdr_put(unsigned char *h, uint32_t tid, uint32_t seq, uint32_t len)
{
	uint32_t w[4] = {MAGIC, tid, seq, len};
	memcpy(h, w, sizeof w);
}

static uint64_t rec_seed(uint32_t tid, uint32_t seq)
{
	return (uint64_t)tid << 32 | seq;
}

/* Payload sizes: small ones (gathered into one record by the IO task), one
 * record, more than a record, and odd sizes in between. */
static uint32_t rec_len(uint32_t tid, uint32_t seq)
{
	static const uint32_t sizes[] = {0, 1, 100, 16384 - HDR, 16384, 40000, 3, 70000, 511};
	return sizes[(tid + seq) % (sizeof sizes / sizeof sizes[0])];
}

enum { VIA_MSG, VIA_SEND, VIA_SENDV, VIA_N };

struct rec_sender {
	tlsq_conn *c;
	uint32_t tid;
	uint64_t bytes;
	uint32_t records;
	uint32_t via[VIA_N];
	int rc;
};

static int rec_send_one(struct rec_sender *s, uint32_t seq)
{
	uint32_t len = rec_len(s->tid, seq);
	int via = (int)((seq + s->tid) % VIA_N);
	if (via == VIA_MSG) {
		unsigned char *m = tlsq_msg_alloc(HDR + len);
		if (!m)
			return TLSQ_ENOMEM;
		hdr_put(m, s->tid, seq, len);
		ts_fill(rec_seed(s->tid, seq), 0, m + HDR, len);
		int rc = tlsq_msg_send(s->c, m, 30000);
		if (rc != TLSQ_OK) {
			tlsq_msg_free(m);
			return rc;
		}
	} else {
		unsigned char *b = malloc(HDR + len);
		if (!b)
			return TLSQ_ENOMEM;
		hdr_put(b, s->tid, seq, len);
		ts_fill(rec_seed(s->tid, seq), 0, b + HDR, len);
		ssize_t r;
		if (via == VIA_SEND) {
			r = tlsq_send(s->c, b, HDR + len, 30000);
		} else {
			struct iovec v[2] = {{b, HDR}, {b + HDR, len}};
			r = tlsq_sendv(s->c, v, 2, 30000);
		}
		free(b);
		if (r != (ssize_t)(HDR + len))
			return r < 0 ? (int)r : -1000;
	}
	s->via[via]++;
	s->bytes += HDR + len;
	return TLSQ_OK;
}

static void *rec_sender_thread(void *arg)
{
	struct rec_sender *s = arg;
	s->rc = 0;
	for (uint32_t seq = 0; s->bytes < PER_THREAD; seq++) {
		if ((s->rc = rec_send_one(s, seq)) != TLSQ_OK)
			return NULL;
		s->records = seq + 1;
	}
	return NULL;
}

static int recv_exact(tlsq_conn *c, unsigned char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = tlsq_recv(c, buf + got, n - got, 30000);
		if (r <= 0)
			return r == 0 ? -1 : (int)r;
		got += (size_t)r;
	}
	return 0;
}

static void
test_msg_send_mixed_with_send_and_sendv_from_4_threads_is_never_interleaved(void **state)
{
	(void)state;
	enum { NT = 4 };
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.tx_budget = 256 * 1024; /* senders block now and then */
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	struct rec_sender s[NT];
	ts_thread t[NT];
	for (uint32_t i = 0; i < NT; i++) {
		s[i] = (struct rec_sender){.c = p.client, .tid = i, .rc = -9};
		t[i] = ts_spawn(rec_sender_thread, &s[i]);
	}
	/* The receiver: record by record, each whole and in its thread's
	 * order, payload checked byte by byte and by FNV. */
	uint32_t next[NT] = {0};
	uint64_t got[NT] = {0}, h = TS_FNV_INIT, want_h = TS_FNV_INIT;
	unsigned char *buf = malloc(HDR + 70000), *exp = malloc(70000);
	assert_non_null(buf);
	assert_non_null(exp);
	int done = 0, rc = 0;
	while (done < NT) {
		rc = recv_exact(p.server, buf, HDR);
		if (rc)
			break;
		uint32_t w[4];
		memcpy(w, buf, sizeof w);
		assert_int_equal(w[0], MAGIC);
		assert_true(w[1] < NT);
		assert_int_equal(w[2], next[w[1]]);
		assert_int_equal(w[3], rec_len(w[1], w[2]));
		rc = recv_exact(p.server, buf + HDR, w[3]);
		if (rc)
			break;
		ts_fill(rec_seed(w[1], w[2]), 0, exp, w[3]);
		assert_memory_equal(buf + HDR, exp, w[3]);
		h = ts_fnv(h, buf + HDR, w[3]);
		want_h = ts_fnv(want_h, exp, w[3]);
		next[w[1]]++;
		got[w[1]] += HDR + w[3];
		if (got[w[1]] >= PER_THREAD)
			done++;
	}
	assert_int_equal(rc, 0);
	for (int i = 0; i < NT; i++) {
		ts_join(t[i]);
		assert_int_equal(s[i].rc, TLSQ_OK);
		assert_int_equal(next[i], s[i].records);
		assert_true(got[i] == s[i].bytes);
		/* every thread used all three calls, many times each */
		for (int v = 0; v < VIA_N; v++)
			assert_true(s[i].via[v] >= 10);
	}
	assert_true(h == want_h);
	struct tlsq_conn_info ci;
	assert_int_equal(tlsq_conn_info(p.client, &ci), TLSQ_OK);
	assert_true(ci.bytes_sent == got[0] + got[1] + got[2] + got[3]);
	free(buf);
	free(exp);
	ts_pair_close(&p);
}

/* ---- the simple cases ------------------------------------------------- */

/* The buffer's bytes go out as stream data, with no frame header, and the
 * stream goes on with tlsq_send after it. */
static void test_msg_send_queues_the_bytes_as_stream_data_without_a_header(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	char *m = tlsq_msg_alloc(5);
	assert_non_null(m);
	memcpy(m, "hello", 5);
	assert_int_equal(tlsq_msg_send(p.client, m, 1000), TLSQ_OK);
	assert_int_equal(tlsq_send(p.client, " world", 6, 1000), 6);
	assert_int_equal(tlsq_shutdown_send(p.client), TLSQ_OK);
	char buf[64];
	size_t got = 0;
	for (;;) {
		ssize_t r = tlsq_recv(p.server, buf + got, sizeof buf - got, 10000);
		assert_true(r >= 0);
		if (r == 0)
			break;
		got += (size_t)r;
	}
	assert_int_equal(got, 11);
	assert_memory_equal(buf, "hello world", 11);
	struct tlsq_conn_info ci;
	assert_int_equal(tlsq_conn_info(p.client, &ci), TLSQ_OK);
	assert_int_equal(ci.bytes_sent, 11);
	assert_int_equal(ci.msgs_sent, 0);
	/* receiving stays message mode only: a stream lends instead */
	void *mm = &mm;
	assert_int_equal(tlsq_msg_recv(p.server, &mm, 0), TLSQ_EINVAL);
	assert_null(mm);
	ts_pair_close(&p);
}

/* 0 bytes: as tlsq_send(c, buf, 0) returns 0 and queues nothing,
 * tlsq_msg_send of an empty buffer returns TLSQ_OK, takes the buffer
 * (LSan: no leak) and puts nothing on the wire. */
static void test_msg_send_of_zero_bytes_is_ok_and_sends_nothing(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	assert_int_equal(tlsq_send(p.client, "", 0, 1000), 0);
	void *m = tlsq_msg_alloc(0);
	assert_non_null(m);
	assert_int_equal(tlsq_msg_send(p.client, m, 1000), TLSQ_OK);
	assert_int_equal(tlsq_send(p.client, "x", 1, 1000), 1);
	assert_int_equal(tlsq_flush(p.client, 10000), TLSQ_OK);
	char buf[8];
	assert_int_equal(tlsq_recv(p.server, buf, sizeof buf, 10000), 1);
	assert_int_equal(buf[0], 'x');
	assert_int_equal(tlsq_recv(p.server, buf, sizeof buf, 0), TLSQ_EAGAIN);
	struct tlsq_conn_info ci;
	assert_int_equal(tlsq_conn_info(p.client, &ci), TLSQ_OK);
	assert_int_equal(ci.bytes_sent, 1);
	assert_int_equal(tlsq_msg_send(p.client, NULL, 1000), TLSQ_EINVAL);
	ts_pair_close(&p);
}

/* max_message limits messages, not stream sends. */
static void test_msg_send_on_a_stream_is_not_limited_by_max_message(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.max_message = 1024;
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	enum { LEN = 100000 };
	unsigned char *m = tlsq_msg_alloc(LEN);
	assert_non_null(m);
	ts_fill(11, 0, m, LEN);
	assert_int_equal(tlsq_msg_send(p.client, m, 10000), TLSQ_OK);
	assert_int_equal(ts_recv_pattern(p.server, 11, LEN, 4096), 0);
	ts_pair_close(&p);
}

/* ---- budgets: more than the budget, full queue, timeouts ---------------- */

static tlsq_engine_config small_budgets(void)
{
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.tx_budget = 64 * 1024;
	cfg.rx_budget = 64 * 1024;
	cfg.cipher_buffer = 16 * 1024;
	cfg.socket_buffer = 16 * 1024; /* the kernel soaks up little */
	return cfg;
}

struct drain {
	tlsq_conn *c;
	uint64_t seed, len;
	int rc;
};

static void *drain_thread(void *arg)
{
	struct drain *d = arg;
	d->rc = ts_recv_pattern(d->c, d->seed, d->len, 65536);
	return NULL;
}

/* As tlsq_send: a send larger than tx_budget waits for an empty queue and
 * is then admitted whole (G4's "oversize entry into an empty queue only"),
 * and the bytes arrive intact. Both calls behave alike at each step. */
static void test_msg_send_above_the_budget_is_admitted_whole_into_an_empty_queue_only(void **state)
{
	(void)state;
	tlsq_engine_config cfg = small_budgets();
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	enum { BIGSEND = 1 << 20 }; /* 16 x tx_budget; the peer does not read yet */
	unsigned char *m1 = tlsq_msg_alloc(BIGSEND), *m2 = tlsq_msg_alloc(BIGSEND);
	assert_non_null(m1);
	assert_non_null(m2);
	ts_fill(5, 0, m1, BIGSEND);
	ts_fill(5, BIGSEND, m2, BIGSEND);
	/* empty queue: admitted at once, even without waiting */
	assert_int_equal(tlsq_msg_send(p.client, m1, 0), TLSQ_OK);
	/* not empty (the peer does not read): refused, the caller keeps m2,
	 * exactly as tlsq_send is refused */
	assert_int_equal(tlsq_msg_send(p.client, m2, 0), TLSQ_EAGAIN);
	assert_int_equal(tlsq_send(p.client, m2, BIGSEND, 0), TLSQ_EAGAIN);
	uint64_t t0 = ts_now_ms();
	assert_int_equal(tlsq_msg_send(p.client, m2, 100), TLSQ_ETIMEDOUT);
	assert_true(ts_now_ms() - t0 >= 90);
	assert_int_equal(tlsq_msg_len(m2), BIGSEND);
	/* the peer reads: the queue empties and m2 goes in whole */
	struct drain d = {p.server, 5, 2 * (uint64_t)BIGSEND, -9};
	ts_thread t = ts_spawn(drain_thread, &d);
	assert_int_equal(tlsq_msg_send(p.client, m2, 30000), TLSQ_OK);
	ts_join(t);
	assert_int_equal(d.rc, 0);
	ts_pair_close(&p);
}

/* A full queue: msg_send with a timeout gets TLSQ_ETIMEDOUT after about
 * that time, with 0 TLSQ_EAGAIN at once, the caller keeping the buffer each
 * time; once the peer drains, everything queued arrives and msg_send
 * succeeds again. */
static void test_msg_send_on_a_full_queue_times_out_and_the_caller_keeps_the_buffer(void **state)
{
	(void)state;
	tlsq_engine_config cfg = small_budgets();
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	enum { CHUNK = 8192 };
	uint64_t sent = 0, start = ts_now_ms();
	int timed_out = 0;
	for (;;) {
		assert_true(ts_now_ms() - start < 30000);
		unsigned char *m = tlsq_msg_alloc(CHUNK);
		assert_non_null(m);
		ts_fill(9, sent, m, CHUNK);
		/* As in api_stream's EAGAIN test: the pipeline fills at its own
		 * pace, so stop at a timeout followed by a refused 0-timeout
		 * call. */
		uint64_t t0 = ts_now_ms();
		int rc = tlsq_msg_send(p.client, m, timed_out ? 0 : 50);
		if (rc == TLSQ_OK) {
			sent += CHUNK;
			timed_out = 0;
			continue;
		}
		if (!timed_out) {
			assert_int_equal(rc, TLSQ_ETIMEDOUT);
			assert_true(ts_now_ms() - t0 >= 45);
			timed_out = 1;
		} else {
			assert_int_equal(rc, TLSQ_EAGAIN);
		}
		/* refused: still ours, unchanged */
		assert_int_equal(tlsq_msg_len(m), CHUNK);
		unsigned char exp[64];
		ts_fill(9, sent, exp, sizeof exp);
		assert_memory_equal(m, exp, sizeof exp);
		tlsq_msg_free(m);
		if (rc == TLSQ_EAGAIN)
			break;
	}
	/* the queue is bounded: at most its budget waits in it */
	struct tlsq_conn_info ci;
	assert_int_equal(tlsq_conn_info(p.client, &ci), TLSQ_OK);
	assert_true(ci.tx_queued <= cfg.tx_budget);
	assert_true(sent > cfg.tx_budget);
	/* drain: every byte arrives, and the next msg_send goes through */
	assert_int_equal(ts_recv_pattern(p.server, 9, sent, 65536), 0);
	unsigned char *m = tlsq_msg_alloc(CHUNK);
	assert_non_null(m);
	ts_fill(9, sent, m, CHUNK);
	assert_int_equal(tlsq_msg_send(p.client, m, 30000), TLSQ_OK);
	char b[CHUNK];
	size_t got = 0;
	while (got < CHUNK) {
		ssize_t r = tlsq_recv(p.server, b + got, CHUNK - got, 10000);
		assert_true(r > 0);
		got += (size_t)r;
	}
	unsigned char exp[CHUNK];
	ts_fill(9, sent, exp, CHUNK);
	assert_memory_equal(b, exp, CHUNK);
	ts_pair_close(&p);
}

/* ---- close / abort / free while blocked; the end codes ----------------- */

struct blocked {
	tlsq_conn *c;
	void *m;
	_Atomic int entered;
	int rc;
};

static void *blocked_msg_send(void *arg)
{
	struct blocked *b = arg;
	atomic_store(&b->entered, 1);
	b->rc = tlsq_msg_send(b->c, b->m, -1);
	return NULL;
}

static int one_sender_blocked(void *arg)
{
	struct blocked *b = arg;
	struct tlsq_conn_info i;
	if (!atomic_load(&b->entered) || tlsq_conn_info(b->c, &i) != TLSQ_OK)
		return 0;
	return i.blocked_senders == 1;
}

enum how { CLOSE, ABORT, FREE };

/* G5: a msg_send blocked on a full queue (a 1 MiB send in front of it that
 * the peer never reads) returns TLSQ_ECLOSED when another thread closes,
 * aborts or frees the connection, within 5 s, and the caller still owns
 * its buffer. */
static void blocked_then(enum how how)
{
	tlsq_engine_config cfg = small_budgets();
	cfg.close_linger_ms = 50;
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	static const char big[1 << 20];
	assert_int_equal(tlsq_send(p.client, big, sizeof big, 0), (ssize_t)sizeof big);
	struct blocked b = {p.client, tlsq_msg_alloc(4096), 0, 1};
	assert_non_null(b.m);
	memset(b.m, 0xab, 4096);
	ts_thread t = ts_spawn(blocked_msg_send, &b);
	if (!ts_wait_for(one_sender_blocked, &b, 10000))
		fail_msg("tlsq_msg_send did not block on the full queue");
	uint64_t t0 = ts_now_ms();
	switch (how) {
	case CLOSE:
		tlsq_close(p.client, 0, NULL);
		break;
	case ABORT:
		tlsq_abort(p.client);
		break;
	case FREE:
		tlsq_conn_free(p.client);
		p.client = NULL;
		break;
	}
	ts_join(t);
	assert_true(ts_now_ms() - t0 < 5000);
	assert_int_equal(b.rc, TLSQ_ECLOSED);
	/* refused: the buffer is still the caller's, intact */
	assert_int_equal(tlsq_msg_len(b.m), 4096);
	assert_int_equal(((unsigned char *)b.m)[4095], 0xab);
	if (how != FREE) { /* later calls: ECLOSED as well, as for tlsq_send */
		assert_int_equal(tlsq_msg_send(p.client, b.m, 0), TLSQ_ECLOSED);
		assert_int_equal(tlsq_send(p.client, "x", 1, 0), TLSQ_ECLOSED);
	}
	tlsq_msg_free(b.m);
	ts_pair_close(&p); /* tlsq_conn_free(NULL) after FREE: a no-op */
}

static void test_close_wakes_a_blocked_msg_send_with_eclosed(void **state)
{
	(void)state;
	blocked_then(CLOSE);
}

static void test_abort_wakes_a_blocked_msg_send_with_eclosed(void **state)
{
	(void)state;
	blocked_then(ABORT);
}

static void test_free_wakes_a_blocked_msg_send_with_eclosed(void **state)
{
	(void)state;
	blocked_then(FREE);
}

static int conn_failed(void *c)
{
	return tlsq_conn_error(c)[0] != 0;
}

/* The end codes match tlsq_send's: TLSQ_ECLOSED after tlsq_shutdown_send,
 * the connection's sticky error after the peer reset it; the caller keeps
 * the buffer each time. (Two pairs: a side that got its peer's close_notify
 * stops reading and would not see the peer's reset.) */
static void test_msg_send_end_codes_are_those_of_tlsq_send(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	void *m = tlsq_msg_alloc(10);
	assert_non_null(m);
	memset(m, 'a', 10);
	assert_int_equal(tlsq_shutdown_send(p.client), TLSQ_OK);
	assert_int_equal(tlsq_msg_send(p.client, m, 1000), TLSQ_ECLOSED);
	assert_int_equal(tlsq_send(p.client, m, 10, 1000), TLSQ_ECLOSED);
	ts_pair_close(&p);

	/* the server's peer (the client) resets without a close_notify */
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	tlsq_abort(p.client);
	assert_true(ts_wait_for(conn_failed, p.server, 10000));
	ssize_t want = tlsq_send(p.server, m, 10, 1000);
	assert_true(want == TLSQ_ECONNRESET || want == TLSQ_ETRUNCATED);
	assert_int_equal(tlsq_msg_send(p.server, m, 1000), (int)want);
	assert_int_equal(tlsq_msg_len(m), 10);
	tlsq_msg_free(m);
	ts_pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_msg_send_queues_the_bytes_as_stream_data_without_a_header),
	    cmocka_unit_test(test_msg_send_of_zero_bytes_is_ok_and_sends_nothing),
	    cmocka_unit_test(test_msg_send_on_a_stream_is_not_limited_by_max_message),
	    cmocka_unit_test(
	        test_msg_send_mixed_with_send_and_sendv_from_4_threads_is_never_interleaved),
	    cmocka_unit_test(
	        test_msg_send_above_the_budget_is_admitted_whole_into_an_empty_queue_only),
	    cmocka_unit_test(
	        test_msg_send_on_a_full_queue_times_out_and_the_caller_keeps_the_buffer),
	    cmocka_unit_test(test_close_wakes_a_blocked_msg_send_with_eclosed),
	    cmocka_unit_test(test_abort_wakes_a_blocked_msg_send_with_eclosed),
	    cmocka_unit_test(test_free_wakes_a_blocked_msg_send_with_eclosed),
	    cmocka_unit_test(test_msg_send_end_codes_are_those_of_tlsq_send),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
