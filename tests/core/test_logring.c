/* SPDX-License-Identifier: GPL-2.0-or-later */
/* core/logring: the last N records, many writers, many readers, no lock. */
#include "qtest.h"

#include "logring.h"

/* A record whose every word is derived from its first: a torn copy (words
 * of two records) fails the check. */
typedef struct rec {
	uint64_t key;
	uint64_t words[TLSQ__LOGRING_WORDS - 1];
} rec;

static void rec_fill(rec *r, uint64_t key)
{
	r->key = key;
	for (size_t i = 0; i < TLSQ__LOGRING_WORDS - 1; i++)
		r->words[i] = key * 0x9e3779b97f4a7c15ull + i;
}

static int rec_whole(const rec *r)
{
	for (size_t i = 0; i < TLSQ__LOGRING_WORDS - 1; i++)
		if (r->words[i] != r->key * 0x9e3779b97f4a7c15ull + i)
			return 0;
	return 1;
}

static void test_empty_ring_has_no_records(void **state)
{
	(void)state;
	static tlsq__logring r;
	tlsq__logring_init(&r);
	rec out;
	assert_int_equal(tlsq__logring_last(&r), 0);
	assert_int_equal(tlsq__logring_read(&r, 1, &out, sizeof out), TLSQ__LOGRING_PENDING);
	assert_int_equal(tlsq__logring_read(&r, 0, &out, sizeof out), TLSQ__LOGRING_GONE);
}

static void test_keeps_the_last_slots_records_and_forgets_older_ones(void **state)
{
	(void)state;
	static tlsq__logring r;
	tlsq__logring_init(&r);
	const uint64_t n = 3 * TLSQ__LOGRING_SLOTS + 5;
	for (uint64_t i = 1; i <= n; i++) {
		rec x;
		rec_fill(&x, 1000 + i);
		assert_int_equal(tlsq__logring_push(&r, &x, sizeof x), i);
	}
	assert_int_equal(tlsq__logring_last(&r), n);
	for (uint64_t i = 1; i <= n; i++) {
		rec out;
		int rc = tlsq__logring_read(&r, i, &out, sizeof out);
		if (i + TLSQ__LOGRING_SLOTS <= n) {
			assert_int_equal(rc, TLSQ__LOGRING_GONE);
		} else {
			assert_int_equal(rc, TLSQ__LOGRING_OK);
			assert_int_equal(out.key, 1000 + i);
			assert_true(rec_whole(&out));
		}
	}
	rec out;
	assert_int_equal(tlsq__logring_read(&r, n + 1, &out, sizeof out), TLSQ__LOGRING_PENDING);
}

#define WRITERS 3
#define READERS 2

static tlsq__logring shared;
static _Atomic int writers_done;
static _Atomic uint64_t torn, copied, dropped;

static void *writer_main(void *arg)
{
	uint64_t id = (uint64_t)(uintptr_t)arg;
	int per = QT_SANITIZED ? 20000 : 200000;
	for (int i = 0; i < per; i++) {
		rec x;
		rec_fill(&x, id << 32 | (uint64_t)i);
		if (tlsq__logring_push(&shared, &x, sizeof x) == 0)
			atomic_fetch_add(&dropped, 1);
	}
	atomic_fetch_add(&writers_done, 1);
	return NULL;
}

static void *reader_main(void *arg)
{
	(void)arg;
	while (atomic_load(&writers_done) < WRITERS) {
		uint64_t last = tlsq__logring_last(&shared);
		for (uint64_t n = last; n > 0 && last - n < TLSQ__LOGRING_SLOTS; n--) {
			rec out;
			if (tlsq__logring_read(&shared, n, &out, sizeof out) != TLSQ__LOGRING_OK)
				continue;
			atomic_fetch_add(&copied, 1);
			if (!rec_whole(&out))
				atomic_fetch_add(&torn, 1);
		}
	}
	return NULL;
}

static void test_readers_racing_writers_never_see_a_torn_record(void **state)
{
	(void)state;
	tlsq__logring_init(&shared);
	pthread_t w[WRITERS], r[READERS];
	for (int i = 0; i < READERS; i++)
		r[i] = qt_spawn(reader_main, NULL);
	for (int i = 0; i < WRITERS; i++)
		w[i] = qt_spawn(writer_main, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < WRITERS; i++)
		qt_join(w[i]);
	for (int i = 0; i < READERS; i++)
		qt_join(r[i]);
	int per = QT_SANITIZED ? 20000 : 200000;
	print_message("copied %llu records while writing, %llu dropped by lapped writers\n",
	              (unsigned long long)atomic_load(&copied),
	              (unsigned long long)atomic_load(&dropped));
	assert_int_equal(atomic_load(&torn), 0);
	assert_int_equal(tlsq__logring_last(&shared), (uint64_t)WRITERS * (uint64_t)per);
	/* Afterwards one writer alone: its last SLOTS records are all there. */
	uint64_t base = tlsq__logring_last(&shared);
	for (uint64_t i = 1; i <= TLSQ__LOGRING_SLOTS; i++) {
		rec x;
		rec_fill(&x, 7ull << 40 | i);
		assert_int_equal(tlsq__logring_push(&shared, &x, sizeof x), base + i);
	}
	for (uint64_t i = 1; i <= TLSQ__LOGRING_SLOTS; i++) {
		rec out;
		assert_int_equal(tlsq__logring_read(&shared, base + i, &out, sizeof out),
		                 TLSQ__LOGRING_OK);
		assert_int_equal(out.key, 7ull << 40 | i);
		assert_true(rec_whole(&out));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_ring_has_no_records),
	    cmocka_unit_test(test_keeps_the_last_slots_records_and_forgets_older_ones),
	    cmocka_unit_test(test_readers_racing_writers_never_see_a_torn_record),
	};
	return QT_RUN(tests);
}
