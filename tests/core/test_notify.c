/* SPDX-License-Identifier: GPL-2.0-or-later */
/* core/notify.c: eventfd + lock-free list, coalescing, oldest-first order. */
#include <fcntl.h>
#include <poll.h>

#include "qtest.h"

#include "notify.h"

static int readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static int count(tlsq__notify_node *l)
{
	int n = 0;
	for (; l != NULL; l = l->next)
		n++;
	return n;
}

static void test_init_opens_a_nonblocking_cloexec_eventfd(void **state)
{
	(void)state;
	tlsq__notifier n;
	assert_int_equal(tlsq__notifier_init(&n), TLSQ_OK);
	assert_true(n.efd >= 0);
	assert_true(fcntl(n.efd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(n.efd, F_GETFD) & FD_CLOEXEC);
	assert_false(readable(n.efd));
	assert_null(tlsq__notifier_take_sc(&n)); /* nothing listed, does not block */
	tlsq__notifier_fini(&n);
	assert_int_equal(n.efd, -1);
}

static void test_first_notify_writes_the_eventfd_and_later_ones_coalesce(void **state)
{
	(void)state;
	tlsq__notifier n;
	tlsq__notify_node a = {0}, b = {0}, c = {0};
	tlsq__notifier_init(&n);
	assert_int_equal(tlsq__notify_mpsc(&n, &a), 1);
	assert_true(readable(n.efd));
	assert_int_equal(tlsq__notify_mpsc(&n, &b), 1); /* listed, no syscall */
	assert_int_equal(tlsq__notify_mpsc(&n, &c), 1);
	assert_int_equal(tlsq__notify_mpsc(&n, &a), 0); /* already pending */
	assert_int_equal(tlsq__counter_get(&n.sent), 1);
	assert_int_equal(tlsq__counter_get(&n.saved), 3);
	tlsq__notify_node *l = tlsq__notifier_take_sc(&n);
	assert_int_equal(count(l), 3);
	assert_false(readable(n.efd));
	tlsq__notifier_fini(&n);
}

static void test_take_returns_the_nodes_oldest_first(void **state)
{
	(void)state;
	tlsq__notifier n;
	tlsq__notify_node nodes[5] = {{0}};
	tlsq__notifier_init(&n);
	for (int i = 0; i < 5; i++)
		tlsq__notify_mpsc(&n, &nodes[i]);
	tlsq__notify_node *l = tlsq__notifier_take_sc(&n);
	for (int i = 0; i < 5; i++, l = l->next)
		assert_ptr_equal(l, &nodes[i]);
	assert_null(l);
	tlsq__notifier_fini(&n);
}

static void test_a_node_is_listed_again_only_after_it_was_cleared(void **state)
{
	(void)state;
	tlsq__notifier n;
	tlsq__notify_node a = {0};
	tlsq__notifier_init(&n);
	tlsq__notify_mpsc(&n, &a);
	assert_ptr_equal(tlsq__notifier_take_sc(&n), &a);
	/* Taken but not cleared: the IO thread has not looked yet. */
	assert_int_equal(tlsq__notify_mpsc(&n, &a), 0);
	assert_null(tlsq__notifier_take_sc(&n));
	tlsq__notify_clear(&a);
	assert_int_equal(tlsq__notify_mpsc(&n, &a), 1);
	assert_true(readable(n.efd)); /* the list went empty -> non-empty again */
	assert_ptr_equal(tlsq__notifier_take_sc(&n), &a);
	assert_int_equal(tlsq__counter_get(&n.sent), 2);
	tlsq__notifier_fini(&n);
}

enum { PUSHERS = 8, NODES = 64, ROUNDS = 2000 };

struct race {
	tlsq__notifier n;
	tlsq__notify_node nodes[NODES];
	_Atomic uint32_t listed[NODES]; /* notify_mpsc returned 1 */
	_Atomic uint32_t finished;
};

static void *pusher(void *arg)
{
	struct race *r = arg;
	for (int k = 0; k < ROUNDS; k++) {
		int i = k % NODES;
		if (tlsq__notify_mpsc(&r->n, &r->nodes[i]))
			atomic_fetch_add(&r->listed[i], 1);
	}
	atomic_fetch_add(&r->finished, 1);
	return NULL;
}

/* Takes the list; a node twice in one list would be a double listing. */
static int take_all(struct race *r, uint32_t *taken)
{
	int dup = 0, seen[NODES] = {0};
	for (tlsq__notify_node *l = tlsq__notifier_take_sc(&r->n), *next; l; l = next) {
		next = l->next;
		int i = (int)(l - r->nodes);
		dup |= seen[i]++;
		taken[i]++;
		tlsq__notify_clear(l);
	}
	return dup;
}

static void test_concurrent_notifies_list_each_pending_node_exactly_once(void **state)
{
	(void)state;
	static struct race r;
	memset(&r, 0, sizeof r);
	tlsq__notifier_init(&r.n);
	pthread_t t[PUSHERS];
	uint32_t taken[NODES] = {0};
	int dup = 0;
	for (int i = 0; i < PUSHERS; i++)
		t[i] = qt_spawn(pusher, &r);
	uint64_t deadline = qt_now_ms() + QT_PROMPT_MS * 4;
	while (atomic_load(&r.finished) < PUSHERS && qt_now_ms() < deadline) {
		struct pollfd p = {.fd = r.n.efd, .events = POLLIN};
		poll(&p, 1, 10); /* the eventfd must say when there is work */
		dup |= take_all(&r, taken);
	}
	for (int i = 0; i < PUSHERS; i++)
		qt_join(t[i]);
	dup |= take_all(&r, taken);
	assert_false(dup);
	for (int i = 0; i < NODES; i++)
		assert_int_equal(taken[i], atomic_load(&r.listed[i]));
	assert_int_equal(tlsq__counter_get(&r.n.sent) + tlsq__counter_get(&r.n.saved),
	                 (uint64_t)PUSHERS * ROUNDS);
	tlsq__notifier_fini(&r.n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_opens_a_nonblocking_cloexec_eventfd),
	    cmocka_unit_test(test_first_notify_writes_the_eventfd_and_later_ones_coalesce),
	    cmocka_unit_test(test_take_returns_the_nodes_oldest_first),
	    cmocka_unit_test(test_a_node_is_listed_again_only_after_it_was_cleared),
	    cmocka_unit_test(test_concurrent_notifies_list_each_pending_node_exactly_once),
	};
	return QT_RUN(tests);
}
