/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * P3/P4, G3: every buffer size from 1 byte up works. With a 1-byte
 * ciphertext buffer every socket read and write moves one byte, so wolfSSL
 * sees WANT_READ in the middle of every record header and body, and with
 * 1-byte budgets every queue entry is an "oversize" one. Data must arrive
 * intact both ways at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "support/support.h"

#if defined(__SANITIZE_ADDRESS__) || defined(TLSQ_TSAN) || defined(TLSQ_VALGRIND)
#define TINY_BYTES     (512u << 10)
#define ONE_BYTE_BYTES (64u << 10)
#else
#define TINY_BYTES     (10u << 20)
#define ONE_BYTE_BYTES (128u << 10)
#endif

/* A stall, not slowness, fails the test: each call waits at most a second
 * and is retried while either connection received a byte (ciphertext from
 * its socket or plaintext decrypted) within the last STALL_MS. Sends alone
 * do not count: in the stall this test once met, the senders kept writing
 * into ever larger socket buffers while nothing was read. A fixed total
 * bound measured the machine instead: under load ~17 on 2 cores the 1-byte
 * case moved a few KiB/s and its first 16 KiB record took over 30 s.
 */
#define STALL_MS 20000
#define CALL_MS  1000

struct watch {
	pthread_mutex_t mu;
	tlsq_conn *conn[2];
	uint64_t moved;   /* sum of the receive counters last seen */
	uint64_t seen_ms; /* when they last changed */
	int stalled;
};

static uint64_t moved_now(struct watch *w)
{
	uint64_t sum = 0;
	for (int i = 0; i < 2; i++) {
		struct tlsq_conn_info ci;
		tlsq_conn_info(w->conn[i], &ci);
		sum += ci.bytes_received + ci.tls_bytes_received;
	}
	return sum;
}

static void dump(tlsq_conn *c, const char *who)
{
	struct tlsq_conn_info ci;
	tlsq_conn_info(c, &ci);
	fprintf(stderr,
	        "  %s: state %d plain sent %llu recv %llu, tls sent %llu recv %llu, "
	        "tx_queued %llu rx_queued %llu, send_parked %d recv_parked %d (%llu ms), "
	        "blocked senders %u receivers %u, error %d %s\n",
	        who, (int)ci.state, (unsigned long long)ci.bytes_sent,
	        (unsigned long long)ci.bytes_received, (unsigned long long)ci.tls_bytes_sent,
	        (unsigned long long)ci.tls_bytes_received, (unsigned long long)ci.tx_queued,
	        (unsigned long long)ci.rx_queued, ci.send_parked, ci.recv_parked,
	        (unsigned long long)ci.parked_ms, ci.blocked_senders, ci.blocked_receivers,
	        ci.error, ci.error_reason);
}

/* After a call timed out: 1 to retry (bytes still arrive), 0 stalled. */
static int still_moving(struct watch *w)
{
	pthread_mutex_lock(&w->mu);
	uint64_t now = ts_now_ms(), m = moved_now(w);
	if (m != w->moved) {
		w->moved = m;
		w->seen_ms = now;
	}
	if (!w->stalled && now - w->seen_ms >= STALL_MS) {
		w->stalled = 1;
		fprintf(stderr, "no byte received for %d ms:\n", STALL_MS);
		dump(w->conn[0], "client");
		dump(w->conn[1], "server");
	}
	int ok = !w->stalled;
	pthread_mutex_unlock(&w->mu);
	return ok;
}

struct xfer {
	struct watch *w;
	tlsq_conn *c;
	uint64_t seed, len;
	size_t chunk;
	int send, rc;
};

static int xfer_send(struct xfer *x)
{
	unsigned char *buf = malloc(x->chunk);
	uint64_t off = 0;
	int rc = 0;
	while (off < x->len && rc == 0) {
		size_t n = x->len - off < x->chunk ? (size_t)(x->len - off) : x->chunk;
		ts_fill(x->seed, off, buf, n);
		ssize_t r = tlsq_send(x->c, buf, n, CALL_MS);
		if (r == (ssize_t)n)
			off += n;
		else if (r != TLSQ_ETIMEDOUT || !still_moving(x->w)) {
			fprintf(stderr, "send at %llu: %zd (%s)\n", (unsigned long long)off, r,
			        tlsq_strerror((int)r));
			rc = -1;
		}
	}
	free(buf);
	return rc;
}

static int xfer_recv(struct xfer *x)
{
	unsigned char *buf = malloc(x->chunk), *want = malloc(x->chunk);
	uint64_t off = 0;
	int rc = 0;
	while (off < x->len && rc == 0) {
		size_t cap = x->len - off < x->chunk ? (size_t)(x->len - off) : x->chunk;
		ssize_t r = tlsq_recv(x->c, buf, cap, CALL_MS);
		if (r > 0) {
			ts_fill(x->seed, off, want, (size_t)r);
			if (memcmp(buf, want, (size_t)r) != 0) {
				fprintf(stderr, "mismatch in bytes %llu..%llu\n",
				        (unsigned long long)off,
				        (unsigned long long)(off + (uint64_t)r));
				rc = -1;
			}
			off += (uint64_t)r;
		} else if (r != TLSQ_ETIMEDOUT || !still_moving(x->w)) {
			fprintf(stderr, "recv at %llu of %llu: %zd (%s)\n", (unsigned long long)off,
			        (unsigned long long)x->len, r, tlsq_strerror((int)r));
			rc = -1;
		}
	}
	free(buf);
	free(want);
	return rc;
}

static void *run(void *arg)
{
	struct xfer *x = arg;
	x->rc = x->send ? xfer_send(x) : xfer_recv(x);
	return NULL;
}

static void both_ways(size_t cipher, size_t budget, uint64_t bytes)
{
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.cipher_buffer = cipher;
	cfg.control_reserve = 1;
	cfg.tx_budget = budget;
	cfg.rx_budget = budget;
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	struct watch w = {PTHREAD_MUTEX_INITIALIZER, {p.client, p.server}, 0, ts_now_ms(), 0};
	struct xfer x[4] = {
	    {&w, p.client, 11, bytes, 40000, 1, -9},
	    {&w, p.server, 11, bytes, 777, 0, -9},
	    {&w, p.server, 12, bytes, 16384, 1, -9},
	    {&w, p.client, 12, bytes, 1, 0, -9},
	};
	if (bytes > 1000000)
		x[3].chunk = 4096;
	uint64_t t0 = ts_now_ms();
	ts_thread t[4];
	for (int i = 0; i < 4; i++)
		t[i] = ts_spawn(run, &x[i]);
	for (int i = 0; i < 4; i++)
		ts_join(t[i]);
	uint64_t ms = ts_now_ms() - t0;
	fprintf(stderr, "cipher_buffer %zu: %llu bytes each way in %llu ms (%.1f KiB/s each way)\n",
	        cipher, (unsigned long long)bytes, (unsigned long long)ms,
	        (double)bytes / 1024.0 / ((double)(ms ? ms : 1) / 1000.0));
	for (int i = 0; i < 4; i++)
		assert_int_equal(x[i].rc, 0);
	struct tlsq_conn_info ci, si;
	tlsq_conn_info(p.client, &ci);
	assert_int_equal(ci.bytes_sent, bytes);
	assert_int_equal(ci.bytes_received, bytes);
	/* Every ciphertext byte is counted once, whichever way it left (the
	 * send callback's direct write, or the parked tail flushed later): all
	 * data arrived and nothing follows it, so the counts meet exactly. */
	tlsq_conn_info(p.server, &si);
	assert_int_equal(ci.tls_bytes_sent, si.tls_bytes_received);
	assert_int_equal(si.tls_bytes_sent, ci.tls_bytes_received);
	ts_pair_close(&p);
}

static void test_1_byte_cipher_buffer_and_budgets_move_data_both_ways(void **state)
{
	(void)state;
	both_ways(1, 1, ONE_BYTE_BYTES);
}

static void test_odd_buffer_sizes_move_data_both_ways(void **state)
{
	(void)state;
	size_t sizes[] = {2, 5, 6, 7, 100, 4095, 16389, 100000};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
		both_ways(sizes[i], sizes[i], 300000);
}

/* The default buffers: records go straight from the send callback to the
 * socket while nothing is parked in front of them (issue 16). */
static void test_default_buffers_move_data_both_ways_and_count_ciphertext_once(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	both_ways(cfg.cipher_buffer, cfg.tx_budget, TINY_BYTES);
}

/*
 * A connection whose every step writes something still reads. With 1-byte
 * buffers the client writes a byte each round while its bulk lasts; the
 * server's reply must be read then, not once the bulk is out or the socket
 * full. Before the fix the step yielded with event_active, which libevent
 * runs again in the same pass without polling epoll: the client's socket
 * never reported readable, read_drained (set while nothing had arrived)
 * stayed set, and the reply waited behind the whole bulk (seen 3/3: read
 * after the client wrote 3.96 MB more; with the fix about 40 KB).
 */
static struct tlsq_conn_info wait_info;
static tlsq_conn *wait_conn;
static uint64_t wait_tls_sent;

static int tls_sent_reached(void *arg)
{
	(void)arg;
	tlsq_conn_info(wait_conn, &wait_info);
	return wait_info.tls_bytes_sent >= wait_tls_sent;
}

static void test_a_connection_that_writes_every_round_still_reads(void **state)
{
	(void)state;
	enum { BULK = 4 << 20, REPLY = 100 };
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.cipher_buffer = 1;
	cfg.control_reserve = 1;
	cfg.tx_budget = BULK; /* the bulk is queued at once: no gaps in it */
	cfg.rx_budget = 1;    /* the server reads next to nothing of it */
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	unsigned char *bulk = malloc(BULK);
	ts_fill(1, 0, bulk, BULK);
	assert_int_equal(tlsq_send(p.client, bulk, BULK, 10000), BULK);
	free(bulk);
	/* The client is busy writing (and found its socket empty). */
	wait_conn = p.client;
	wait_tls_sent = 64 << 10;
	assert_true(ts_wait_for(tls_sent_reached, NULL, 60000));
	/* The reply, sent when it is out of the server's socket. */
	struct tlsq_conn_info si;
	tlsq_conn_info(p.server, &si);
	unsigned char reply[REPLY], got[REPLY];
	ts_fill(2, 0, reply, REPLY);
	assert_int_equal(tlsq_send(p.server, reply, REPLY, 10000), REPLY);
	wait_conn = p.server;
	wait_tls_sent = si.tls_bytes_sent + REPLY + 22; /* one TLS 1.3 record */
	assert_true(ts_wait_for(tls_sent_reached, NULL, 60000));
	struct tlsq_conn_info before, after;
	tlsq_conn_info(p.client, &before);
	size_t have = 0;
	while (have < REPLY) {
		ssize_t r = tlsq_recv(p.client, got + have, REPLY - have, 60000);
		assert_true(r > 0);
		have += (size_t)r;
	}
	tlsq_conn_info(p.client, &after);
	assert_memory_equal(got, reply, REPLY);
	uint64_t more = after.tls_bytes_sent - before.tls_bytes_sent;
	fprintf(stderr, "reply read after %llu more bytes sent (of %llu sent before)\n",
	        (unsigned long long)more, (unsigned long long)before.tls_bytes_sent);
	/* Each step yields after at most 256 rounds of up to 64 one-byte
	 * writes (16 KiB) and polls the socket; the reply's ~122 bytes take a
	 * round each to read: tens of KB. The bound leaves room for this
	 * thread being descheduled after the reply arrived (the client keeps
	 * writing meanwhile); without the fix the whole rest of the bulk went
	 * first. */
	assert_true(more < (1u << 20));
	ts_pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_buffers_move_data_both_ways_and_count_ciphertext_once),
	    cmocka_unit_test(test_1_byte_cipher_buffer_and_budgets_move_data_both_ways),
	    cmocka_unit_test(test_odd_buffer_sizes_move_data_both_ways),
	    cmocka_unit_test(test_a_connection_that_writes_every_round_still_reads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
