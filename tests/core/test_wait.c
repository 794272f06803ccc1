/* SPDX-License-Identifier: GPL-2.0-or-later */
/* core/wait.c: deadlines, the 0 / -1 / N convention, event-count waits. */
#include "qtest.h"

static void test_timeout_convention_0_never_blocks_minus_1_forever_n_deadline(void **state)
{
	(void)state;
	struct timespec dl, now;
	assert_int_equal(tlsq__timeout_deadline(0, &dl), -1);
	assert_int_equal(tlsq__timeout_deadline(-1, &dl), 0);
	assert_int_equal(tlsq__timeout_deadline(-5, &dl), 0);
	assert_int_equal(tlsq__timeout_deadline(1500, &dl), 1);
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long ms =
	    (long long)(dl.tv_sec - now.tv_sec) * 1000 + (dl.tv_nsec - now.tv_nsec) / 1000000;
	assert_true(ms > 1400 && ms <= 1500);
}

static void test_deadline_normalises_nanoseconds(void **state)
{
	(void)state;
	for (int ms = 1; ms < 3000; ms += 97) {
		struct timespec dl;
		tlsq__deadline(&dl, ms);
		assert_true(dl.tv_nsec >= 0 && dl.tv_nsec < 1000000000L);
	}
}

static void test_deadline_left_counts_down_and_is_zero_once_passed(void **state)
{
	(void)state;
	struct timespec dl;
	tlsq__deadline(&dl, 1000);
	int left = tlsq__deadline_left_ms(&dl);
	assert_true(left > 900 && left <= 1000);
	tlsq__deadline(&dl, 1);
	while (tlsq__deadline_left_ms(&dl) > 0)
		sched_yield();
	assert_int_equal(tlsq__deadline_left_ms(&dl), 0);
}

static void test_clocks_are_monotonic_and_agree(void **state)
{
	(void)state;
	uint64_t a = tlsq__now_ns(), b = tlsq__now_ns();
	assert_true(b >= a);
	uint64_t ms = tlsq__now_ms();
	assert_true(ms >= a / 1000000 && ms <= tlsq__now_ns() / 1000000);
}

static void test_wait_returns_at_once_when_the_count_already_moved(void **state)
{
	(void)state;
	tlsq__ec ec;
	tlsq__ec_init(&ec);
	uint32_t seen = tlsq__ec_value(&ec);
	tlsq__ec_inc(&ec);
	assert_int_equal(tlsq__ec_value(&ec), seen + 1);
	assert_int_equal(tlsq__ec_wait(&ec, seen, NULL), 0); /* would hang if wrong */
}

static void test_wait_times_out_at_its_deadline_not_before(void **state)
{
	(void)state;
	tlsq__ec ec;
	struct timespec dl;
	tlsq__ec_init(&ec);
	uint64_t t0 = tlsq__now_ns();
	tlsq__deadline(&dl, 50);
	assert_int_equal(tlsq__ec_wait(&ec, tlsq__ec_value(&ec), &dl), -1);
	uint64_t took = (tlsq__now_ns() - t0) / 1000000;
	assert_true(took >= 50);
	assert_true(took < 50 + QT_PROMPT_MS);
}

/* ck_ec's own backoff would sleep until 1.024 s into a 200 ms wait. */
static void test_wait_of_200ms_does_not_oversleep_into_the_backoff_schedule(void **state)
{
	(void)state;
	tlsq__ec ec;
	struct timespec dl;
	tlsq__ec_init(&ec);
	uint64_t t0 = tlsq__now_ms();
	tlsq__deadline(&dl, 200);
	assert_int_equal(tlsq__ec_wait(&ec, tlsq__ec_value(&ec), &dl), -1);
	uint64_t took = tlsq__now_ms() - t0;
	assert_true(took >= 199);
	assert_true(took < 900);
}

struct waiter {
	tlsq__ec *ec;
	uint32_t seen;
	int timeout_ms;
	_Atomic int rc;
	_Atomic uint32_t *returned;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct timespec dl;
	int has = tlsq__timeout_deadline(w->timeout_ms, &dl);
	atomic_store(&w->rc, tlsq__ec_wait(w->ec, w->seen, has > 0 ? &dl : NULL));
	atomic_fetch_add(w->returned, 1);
	return NULL;
}

/* True once some thread has flagged the count: it is about to sleep. */
static int flagged(tlsq__ec *ec)
{
	uint64_t end = qt_now_ms() + QT_PROMPT_MS;
	while (!ck_ec32_has_waiters(ec))
		if (qt_now_ms() > end)
			return 0;
		else
			sched_yield();
	return 1;
}

static void test_inc_wakes_every_thread_blocked_forever(void **state)
{
	(void)state;
	enum { N = 4 };
	static tlsq__ec ec;
	static _Atomic uint32_t returned;
	struct waiter w[N];
	pthread_t t[N];
	tlsq__ec_init(&ec);
	atomic_store(&returned, 0);
	uint32_t seen = tlsq__ec_value(&ec);
	for (int i = 0; i < N; i++) {
		w[i] = (struct waiter){
		    .ec = &ec, .seen = seen, .timeout_ms = -1, .returned = &returned};
		atomic_init(&w[i].rc, 99);
		t[i] = qt_spawn(wait_thread, &w[i]);
	}
	assert_true(flagged(&ec));
	assert_int_equal(atomic_load(&returned), 0);
	tlsq__ec_inc(&ec);
	assert_true(qt_wait_ge(&returned, N, QT_PROMPT_MS));
	for (int i = 0; i < N; i++) {
		qt_join(t[i]);
		assert_int_equal(atomic_load(&w[i].rc), 0);
	}
	assert_false(ck_ec32_has_waiters(&ec)); /* the wake cleared the flag */
}

static void test_inc_before_the_deadline_wakes_a_timed_waiter_with_zero(void **state)
{
	(void)state;
	static tlsq__ec ec;
	static _Atomic uint32_t returned;
	tlsq__ec_init(&ec);
	atomic_store(&returned, 0);
	struct waiter w = {
	    .ec = &ec, .seen = tlsq__ec_value(&ec), .timeout_ms = 60000, .returned = &returned};
	pthread_t t = qt_spawn(wait_thread, &w);
	assert_true(flagged(&ec));
	tlsq__ec_inc(&ec);
	qt_join(t);
	assert_int_equal(atomic_load(&w.rc), 0);
}

enum { INCERS = 8, INCS = 100000 };

static void *inc_thread(void *arg)
{
	for (int i = 0; i < INCS; i++)
		tlsq__ec_inc(arg);
	return NULL;
}

/* Single-producer mode would lose increments here (non-atomic inc). */
static void test_increments_from_many_threads_are_never_lost(void **state)
{
	(void)state;
	static tlsq__ec ec;
	pthread_t t[INCERS];
	tlsq__ec_init(&ec);
	for (int i = 0; i < INCERS; i++)
		t[i] = qt_spawn(inc_thread, &ec);
	for (int i = 0; i < INCERS; i++)
		qt_join(t[i]);
	assert_int_equal(tlsq__ec_value(&ec), INCERS * INCS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timeout_convention_0_never_blocks_minus_1_forever_n_deadline),
	    cmocka_unit_test(test_deadline_normalises_nanoseconds),
	    cmocka_unit_test(test_deadline_left_counts_down_and_is_zero_once_passed),
	    cmocka_unit_test(test_clocks_are_monotonic_and_agree),
	    cmocka_unit_test(test_wait_returns_at_once_when_the_count_already_moved),
	    cmocka_unit_test(test_wait_times_out_at_its_deadline_not_before),
	    cmocka_unit_test(test_wait_of_200ms_does_not_oversleep_into_the_backoff_schedule),
	    cmocka_unit_test(test_inc_wakes_every_thread_blocked_forever),
	    cmocka_unit_test(test_inc_before_the_deadline_wakes_a_timed_waiter_with_zero),
	    cmocka_unit_test(test_increments_from_many_threads_are_never_lost),
	};
	return QT_RUN(tests);
}
