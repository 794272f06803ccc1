/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What event-loop programs need: per-connection user data, gather sends
 * (tlsq_sendv, tlsq_send_msgv) and the writable signal
 * (tlsq_conn_send_pollfd), over real loopback TLS between two tlsq ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>

#include <cmocka.h>

#include "support/support.h"

/* ---- user data ------------------------------------------------------- */

struct user_arg {
	tlsq_conn *c;
	int *value;
	void *seen;
};

static void *set_user_thread(void *arg)
{
	struct user_arg *u = arg;
	*u->value = 42; /* written before the set: the getter must see it */
	tlsq_conn_set_user(u->c, u->value);
	return NULL;
}

static int user_is_set(void *arg)
{
	struct user_arg *u = arg;
	return (u->seen = tlsq_conn_user(u->c)) != NULL;
}

static void test_user_data_is_null_until_set_and_comes_back_from_any_thread(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	assert_null(tlsq_conn_user(p.client));
	assert_null(tlsq_conn_user(p.server));
	int value = 0;
	struct user_arg u = {p.server, &value, NULL};
	ts_thread t = ts_spawn(set_user_thread, &u);
	assert_true(ts_wait_for(user_is_set, &u, 10000));
	assert_ptr_equal(u.seen, &value);
	assert_int_equal(*(int *)u.seen, 42);
	ts_join(t);
	/* Per connection: the other end's handle is untouched. */
	assert_null(tlsq_conn_user(p.client));
	/* Replaced and cleared like any pointer. */
	int other = 7;
	assert_int_equal(tlsq_conn_set_user(p.server, &other), TLSQ_OK);
	assert_ptr_equal(tlsq_conn_user(p.server), &other);
	assert_int_equal(tlsq_conn_set_user(p.server, NULL), TLSQ_OK);
	assert_null(tlsq_conn_user(p.server));
	/* Still there after the connection ended (until tlsq_conn_free). */
	assert_int_equal(tlsq_conn_set_user(p.client, &other), TLSQ_OK);
	tlsq_abort(p.client);
	assert_ptr_equal(tlsq_conn_user(p.client), &other);
	assert_int_equal(tlsq_conn_set_user(NULL, &other), TLSQ_EINVAL);
	assert_null(tlsq_conn_user(NULL));
	ts_pair_close(&p);
}

/* ---- gather sends ---------------------------------------------------- */

static void test_sendv_queues_the_pieces_in_order_as_one_send(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	static unsigned char big[100000];
	ts_fill(5, 0, big, sizeof big);
	struct iovec iov[4] = {{"hel", 3}, {NULL, 0}, {"lo ", 3}, {big, sizeof big}};
	ssize_t n = tlsq_sendv(p.client, iov, 4, 5000);
	assert_int_equal(n, 6 + sizeof big);
	assert_int_equal(tlsq_shutdown_send(p.client), TLSQ_OK);
	uint64_t want = ts_fnv(TS_FNV_INIT, "hello ", 6);
	want = ts_fnv(want, big, sizeof big);
	uint64_t h = TS_FNV_INIT, got = 0;
	unsigned char buf[16384];
	while ((n = tlsq_recv(p.server, buf, sizeof buf, 10000)) > 0) {
		h = ts_fnv(h, buf, (size_t)n);
		got += (uint64_t)n;
	}
	assert_int_equal(n, 0); /* the client's close_notify */
	assert_int_equal(got, 6 + sizeof big);
	assert_true(h == want);
	ts_pair_close(&p);
}

#define SV_THREADS 4
#define SV_CALLS   300

struct sv_arg {
	tlsq_conn *c;
	int id;
	int rc;
};

/* Each call: a header (id, seq, body length), a body of that length and a
 * trailer naming the id again, as three pieces. Interleaving would break
 * the parse on the other side. */
static void *sendv_thread(void *arg)
{
	struct sv_arg *a = arg;
	static _Thread_local unsigned char body[5000];
	for (uint32_t seq = 0; seq < SV_CALLS; seq++) {
		uint32_t len = (seq * 977u + (uint32_t)a->id * 131u) % sizeof body;
		unsigned char hdr[9] = {(unsigned char)a->id};
		memcpy(hdr + 1, &seq, 4);
		memcpy(hdr + 5, &len, 4);
		ts_fill((uint64_t)a->id << 32 | seq, 0, body, len);
		unsigned char tail[4] = {0xee, 0xee, 0xee, (unsigned char)a->id};
		struct iovec iov[3] = {{hdr, 9}, {body, len}, {tail, 4}};
		ssize_t n = tlsq_sendv(a->c, iov, 3, 20000);
		if (n != (ssize_t)(13 + len)) {
			a->rc = (int)n;
			return NULL;
		}
	}
	a->rc = 0;
	return NULL;
}

static int recv_exact(tlsq_conn *c, void *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = tlsq_recv(c, (unsigned char *)buf + off, len - off, 20000);
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

static void test_sendv_calls_from_many_threads_are_never_interleaved(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	struct sv_arg a[SV_THREADS];
	ts_thread t[SV_THREADS];
	for (int i = 0; i < SV_THREADS; i++) {
		a[i] = (struct sv_arg){p.client, i + 1, -99};
		t[i] = ts_spawn(sendv_thread, &a[i]);
	}
	uint32_t next[SV_THREADS + 1] = {0};
	static unsigned char body[5000], want[5000];
	for (int k = 0; k < SV_THREADS * SV_CALLS; k++) {
		unsigned char hdr[9], tail[4];
		assert_int_equal(recv_exact(p.server, hdr, 9), 0);
		int id = hdr[0];
		uint32_t seq, len;
		memcpy(&seq, hdr + 1, 4);
		memcpy(&len, hdr + 5, 4);
		assert_true(id >= 1 && id <= SV_THREADS);
		assert_int_equal(seq, next[id]); /* each thread's calls in its order */
		next[id]++;
		assert_true(len < sizeof body);
		assert_int_equal(recv_exact(p.server, body, len), 0);
		ts_fill((uint64_t)id << 32 | seq, 0, want, len);
		assert_memory_equal(body, want, len);
		assert_int_equal(recv_exact(p.server, tail, 4), 0);
		assert_int_equal(tail[0], 0xee);
		assert_int_equal(tail[3], id);
	}
	for (int i = 0; i < SV_THREADS; i++) {
		ts_join(t[i]);
		assert_int_equal(a[i].rc, 0);
	}
	ts_pair_close(&p);
}

static void test_sendv_rejects_bad_vectors_and_the_wrong_mode(void **state)
{
	(void)state;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	struct iovec ok = {"x", 1}, nullbase = {NULL, 3};
	assert_int_equal(tlsq_sendv(p.client, &ok, -1, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_sendv(p.client, NULL, 2, 0), TLSQ_EINVAL);
	assert_int_equal(tlsq_sendv(p.client, &nullbase, 1, 0), TLSQ_EINVAL);
	struct iovec huge[2] = {{"x", SIZE_MAX / 2}, {"y", SIZE_MAX / 2 + 2}};
	assert_int_equal(tlsq_sendv(p.client, huge, 2, 0), TLSQ_EINVAL); /* wraps */
	assert_int_equal(tlsq_sendv(p.client, NULL, 0, 0), 0);
	assert_int_equal(tlsq_send_msgv(p.client, &ok, 1, 0), TLSQ_EINVAL); /* stream conn */
	assert_int_equal(tlsq_sendv(NULL, &ok, 1, 0), TLSQ_EINVAL);
	/* After the sending side ended: the errors of tlsq_send. */
	assert_int_equal(tlsq_shutdown_send(p.client), TLSQ_OK);
	assert_int_equal(tlsq_sendv(p.client, &ok, 1, 0), TLSQ_ECLOSED);
	ts_pair_close(&p);
}

static void test_send_msgv_delivers_one_message_of_the_pieces(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.max_message = 2048;
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_MESSAGE);
	unsigned char body[1000];
	ts_fill(9, 0, body, sizeof body);
	uint32_t hdr = 0x01020304;
	struct iovec iov[3] = {{&hdr, 4}, {body, sizeof body}, {NULL, 0}};
	assert_int_equal(tlsq_send_msgv(p.client, iov, 3, 5000), TLSQ_OK);
	assert_int_equal(tlsq_send_msgv(p.client, NULL, 0, 5000), TLSQ_OK); /* empty message */
	struct iovec over[3] = {{body, 1000}, {body, 1000}, {body, 49}};
	assert_int_equal(tlsq_send_msgv(p.client, over, 3, 5000), TLSQ_EMSGSIZE);
	struct iovec exact[3] = {{body, 1000}, {body, 1000}, {body, 48}};
	assert_int_equal(tlsq_send_msgv(p.client, exact, 3, 5000), TLSQ_OK);
	assert_int_equal(tlsq_sendv(p.client, iov, 1, 0), TLSQ_EINVAL); /* message conn */

	unsigned char got[4096];
	ssize_t n = tlsq_recv_msg(p.server, got, sizeof got, 10000);
	assert_int_equal(n, 4 + sizeof body);
	assert_memory_equal(got, &hdr, 4);
	assert_memory_equal(got + 4, body, sizeof body);
	assert_int_equal(tlsq_recv_msg(p.server, got, sizeof got, 10000), 0);
	n = tlsq_recv_msg(p.server, got, sizeof got, 10000);
	assert_int_equal(n, 2048);
	assert_memory_equal(got + 1000, body, 1000);
	assert_memory_equal(got + 2000, body, 48);
	ts_pair_close(&p);
}

/* ---- the writable signal --------------------------------------------- */

#define CHUNK 4096

/* Small budgets and socket buffers: a peer that does not read stops the
 * client's transmit queue after a few hundred KiB. */
static void small_config(tlsq_engine_config *cfg)
{
	ts_engine_config(cfg);
	cfg->tx_budget = 64 << 10;
	cfg->rx_budget = 16 << 10;
	cfg->cipher_buffer = 16 << 10;
	cfg->socket_buffer = 16 << 10;
}

static int readable(int fd, int ms)
{
	struct pollfd pf = {fd, POLLIN, 0};
	int n = poll(&pf, 1, ms);
	return n == 1 && (pf.revents & POLLIN);
}

/* Sends CHUNK-byte pieces with timeout 0 until TLSQ_EAGAIN, and again
 * each time the send fd says there is room, until it stays unreadable for
 * 300 ms (the IO task still moves the queue into the socket for a while
 * after the first TLSQ_EAGAIN; with a peer that does not read it stops).
 * Returns the bytes queued. Fails the test if the queue never fills. */
static int readable(int fd, int ms);
static uint64_t fill_once(tlsq_conn *c);
static uint64_t fill_until_eagain(tlsq_conn *c, int fd)
{
	uint64_t sent = 0;
	do
		sent += fill_once(c);
	while (readable(fd, 300));
	return sent;
}

static uint64_t fill_once(tlsq_conn *c)
{
	static unsigned char chunk[CHUNK];
	uint64_t sent = 0;
	for (;;) {
		ssize_t n = tlsq_send(c, chunk, CHUNK, 0);
		if (n == TLSQ_EAGAIN)
			return sent;
		assert_int_equal(n, CHUNK);
		sent += CHUNK;
		assert_true(sent < (64u << 20));
	}
}

/* Receives `quota` bytes (0: until the end) and stops reading. */
struct drain {
	tlsq_conn *c;
	uint64_t quota, got;
	ssize_t end;
};

static void *drain_thread(void *arg)
{
	struct drain *d = arg;
	unsigned char buf[16384];
	ssize_t n;
	for (;;) {
		size_t cap = sizeof buf;
		if (d->quota && d->quota - d->got < cap)
			cap = (size_t)(d->quota - d->got);
		if (d->quota && cap == 0) {
			n = 1;
			break;
		}
		if ((n = tlsq_recv(d->c, buf, cap, 20000)) <= 0)
			break;
		d->got += (uint64_t)n;
	}
	d->end = n;
	return NULL;
}

static void test_send_pollfd_is_readable_while_room_and_again_after_the_peer_drains(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	small_config(&cfg);
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	int fd = tlsq_conn_send_pollfd(p.client, 0);
	assert_true(fd >= 0);
	assert_int_equal(tlsq_conn_send_pollfd(p.client, 0), fd); /* one per connection */
	assert_int_not_equal(fd, tlsq_conn_pollfd(p.client));
	assert_true(readable(fd, 0)); /* an empty queue has room */

	uint64_t sent = fill_until_eagain(p.client, fd);
	assert_false(readable(fd, 0)); /* TLSQ_EAGAIN cleared it */

	struct drain d = {p.server, sent, 0, -99};
	ts_thread t = ts_spawn(drain_thread, &d);
	/* The reader makes room: the fd says so without any send attempt. */
	assert_true(readable(fd, 20000));
	ts_join(t);
	assert_int_equal(d.end, 1);
	/* Readable means a send of `room` (half of 64 KiB) is admitted now. */
	static unsigned char more[32 << 10];
	assert_int_equal(tlsq_send(p.client, more, sizeof more, 0), sizeof more);
	uint64_t sent2 = sizeof more;
	/* Round two: filled, cleared, woken again. */
	sent2 += fill_until_eagain(p.client, fd);
	assert_false(readable(fd, 0));
	struct drain d2 = {p.server, 0, 0, -99};
	t = ts_spawn(drain_thread, &d2);
	assert_true(readable(fd, 20000));
	assert_int_equal(tlsq_shutdown_send(p.client), TLSQ_OK);
	ts_join(t);
	assert_int_equal(d2.end, 0);
	assert_int_equal(d2.got, sent2); /* every byte, none twice */
	ts_pair_close(&p);
}

static void test_send_pollfd_turns_readable_when_the_sending_side_ends(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	small_config(&cfg);
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	int fd = tlsq_conn_send_pollfd(p.client, 0);
	assert_true(fd >= 0);
	fill_until_eagain(p.client, fd);
	assert_false(readable(fd, 0));
	/* The peer resets: the loop must learn it from this fd, since it
	 * waits on nothing else for sending. */
	tlsq_abort(p.server);
	assert_true(readable(fd, 20000));
	unsigned char x = 0;
	ssize_t n = tlsq_send(p.client, &x, 1, 0);
	if (n != TLSQ_ECONNRESET)
		fprintf(stderr, "send after the peer's reset: %zd %s\n", n,
		        tlsq_conn_error(p.client));
	assert_true(n == TLSQ_ECONNRESET || n == TLSQ_ETRUNCATED || n == TLSQ_ETLS);
	ts_pair_close(&p);

	/* The local end: shutdown of sending makes it readable at once. */
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	fd = tlsq_conn_send_pollfd(p.client, 0);
	fill_until_eagain(p.client, fd);
	assert_false(readable(fd, 0));
	assert_int_equal(tlsq_shutdown_send(p.client), TLSQ_OK);
	assert_true(readable(fd, 0));
	assert_int_equal(tlsq_send(p.client, &x, 1, 0), TLSQ_ECLOSED);
	ts_pair_close(&p);
}

static void test_send_pollfd_room_above_the_budget_waits_for_an_empty_queue(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	small_config(&cfg);
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	int fd = tlsq_conn_send_pollfd(p.client, 1 << 20);
	assert_true(fd >= 0);
	assert_true(readable(fd, 0)); /* empty */
	unsigned char x = 1;
	uint64_t sent = fill_until_eagain(p.client, fd);
	assert_false(readable(fd, 0));
	/* The reader takes exactly what the fill sent, then stops: the 1 MiB
	 * below can move only as far as the buffers on the way hold (the peer's
	 * rx queue and cipher buffer, two 16 KiB socket buffers: ~100 KiB), so
	 * far more than the 64 KiB budget stays queued however long this thread
	 * is preempted (with a reader running, it was drained below the budget
	 * before the next line on a loaded CI machine). */
	struct drain d = {p.server, sent, 0, -99};
	ts_thread t = ts_spawn(drain_thread, &d);
	assert_true(readable(fd, 20000));
	/* Nobody else sends: readable meant empty, so it still is. */
	struct tlsq_conn_info ci;
	tlsq_conn_info(p.client, &ci);
	assert_int_equal(ci.tx_queued, 0);
	static unsigned char big[1 << 20];
	assert_int_equal(tlsq_send(p.client, big, sizeof big, 0), sizeof big);
	/* The queue now holds more than its budget: no room for even 1 byte. */
	assert_int_equal(tlsq_send(p.client, &x, 1, 0), TLSQ_EAGAIN);
	assert_false(readable(fd, 0));
	ts_join(t);
	assert_int_equal(d.end, 1);
	assert_int_equal(d.got, sent);
	assert_int_equal(tlsq_shutdown_send(p.client), TLSQ_OK);
	struct drain rest = {p.server, 0, 0, -99}; /* until the end */
	t = ts_spawn(drain_thread, &rest);
	ts_join(t);
	assert_int_equal(rest.got, sizeof big);
	assert_int_equal(rest.end, 0);
	ts_pair_close(&p);
}

static void test_refused_send_larger_than_room_is_signalled_only_when_it_fits(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	small_config(&cfg);
	ts_pair p;
	ts_pair_open(&p, &cfg, TLSQ_MODE_STREAM);
	int fd = tlsq_conn_send_pollfd(p.client, 1024);
	assert_true(fd >= 0);
	fill_until_eagain(p.client, fd);
	/* Make the queue hold a little less than its budget's worth of room
	 * for a big send, and let it be refused. */
	static unsigned char big[48 << 10];
	assert_int_equal(tlsq_send(p.client, big, sizeof big, 0), TLSQ_EAGAIN);
	assert_false(readable(fd, 0));
	struct drain d = {p.server, 0, 0, -99}; /* until the end */
	ts_thread t = ts_spawn(drain_thread, &d);
	assert_true(readable(fd, 20000));
	/* Readable now means room for the refused 48 KiB, not just 1 KiB. */
	assert_int_equal(tlsq_send(p.client, big, sizeof big, 0), sizeof big);
	assert_int_equal(tlsq_shutdown_send(p.client), TLSQ_OK);
	ts_join(t);
	assert_int_equal(d.end, 0);
	ts_pair_close(&p);
}

static void test_send_pollfd_rejects_a_null_connection(void **state)
{
	(void)state;
	assert_int_equal(tlsq_conn_send_pollfd(NULL, 0), TLSQ_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_user_data_is_null_until_set_and_comes_back_from_any_thread),
	    cmocka_unit_test(test_sendv_queues_the_pieces_in_order_as_one_send),
	    cmocka_unit_test(test_sendv_calls_from_many_threads_are_never_interleaved),
	    cmocka_unit_test(test_sendv_rejects_bad_vectors_and_the_wrong_mode),
	    cmocka_unit_test(test_send_msgv_delivers_one_message_of_the_pieces),
	    cmocka_unit_test(
	        test_send_pollfd_is_readable_while_room_and_again_after_the_peer_drains),
	    cmocka_unit_test(test_send_pollfd_turns_readable_when_the_sending_side_ends),
	    cmocka_unit_test(test_send_pollfd_room_above_the_budget_waits_for_an_empty_queue),
	    cmocka_unit_test(test_refused_send_larger_than_room_is_signalled_only_when_it_fits),
	    cmocka_unit_test(test_send_pollfd_rejects_a_null_connection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
