/* SPDX-License-Identifier: GPL-2.0-or-later */
/* core/buf.c: size classes, the bounded caches, trim and the statistics. */
#include "qtest.h"

static void test_alloc_picks_the_smallest_class_that_fits(void **state)
{
	static const struct {
		size_t want, cap;
	} cases[] = {
	    {0, 256},       {1, 256},       {256, 256},         {257, 4096},
	    {4096, 4096},   {4097, 16640},  {16640, 16640},     {16641, 65536},
	    {65536, 65536}, {65537, 65537}, {1 << 20, 1 << 20},
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		tlsq__buf *b = tlsq__buf_alloc(cases[i].want);
		assert_non_null(b);
		assert_int_equal(b->cap, cases[i].cap);
		tlsq__buf_free(b);
	}
}

static void test_alloc_starts_with_empty_cursors_and_zero_tag(void **state)
{
	(void)state;
	tlsq__buf *b = tlsq__buf_alloc(100);
	b->rd = 3;
	b->wr = 50;
	b->tag = 7;
	b->flags = 1;
	b->qcharge = 9;
	tlsq__buf_free(b);
	b = tlsq__buf_alloc(100); /* most likely the same buffer, from the cache */
	assert_int_equal(b->rd, 0);
	assert_int_equal(b->wr, 0);
	assert_int_equal(b->tag, 0);
	assert_int_equal(b->flags, 0);
	assert_int_equal(b->qcharge, 0);
	assert_null(b->qnext);
	assert_int_equal(tlsq__buf_len(b), 0);
	assert_int_equal(tlsq__buf_room(b), 256);
	tlsq__buf_free(b);
}

static void test_alloc_rejects_caps_above_uint32_max_minus_64(void **state)
{
	(void)state;
	assert_null(tlsq__buf_alloc((size_t)UINT32_MAX - 63));
	assert_null(tlsq__buf_alloc(SIZE_MAX));
}

static void test_free_null_is_ignored(void **state)
{
	(void)state;
	tlsq__pool_stats before, after;
	tlsq__pool_stats_get(&before);
	tlsq__buf_free(NULL);
	tlsq__pool_stats_get(&after);
	assert_int_equal(before.frees, after.frees);
}

static void test_freed_buffer_is_reused_from_its_class_cache(void **state)
{
	(void)state;
	tlsq__pool_trim();
	tlsq__buf *b = tlsq__buf_alloc(4000);
	tlsq__buf_free(b);
	tlsq__pool_stats s0, s1;
	tlsq__pool_stats_get(&s0);
	assert_int_equal(s0.cached_bytes, 4096);
	tlsq__buf *c = tlsq__buf_alloc(300); /* same class: 4096 */
	tlsq__pool_stats_get(&s1);
	assert_ptr_equal(b, c);
	assert_int_equal(s1.hits, s0.hits + 1);
	assert_int_equal(s1.mallocs, s0.mallocs);
	assert_int_equal(s1.cached_bytes, 0);
	tlsq__buf_free(c);
}

static void test_buffers_above_the_largest_class_bypass_the_cache(void **state)
{
	(void)state;
	tlsq__pool_trim();
	tlsq__pool_stats s0, s1;
	tlsq__pool_stats_get(&s0);
	tlsq__buf *b = tlsq__buf_alloc(100000);
	assert_int_equal(b->cls, 0xff);
	tlsq__buf_free(b);
	tlsq__pool_stats_get(&s1);
	assert_int_equal(s1.cached_bytes, 0);
	assert_int_equal(s1.mallocs, s0.mallocs + 1);
	assert_int_equal(s1.frees, s0.frees + 1);
}

static void test_cache_is_bounded_and_overflow_goes_back_to_malloc(void **state)
{
	(void)state;
	enum { N = 3000 };
	static tlsq__buf *bufs[N];
	tlsq__pool_trim();
	for (int i = 0; i < N; i++)
		bufs[i] = tlsq__buf_alloc(10);
	for (int i = 0; i < N; i++)
		tlsq__buf_free(bufs[i]);
	tlsq__pool_stats s;
	tlsq__pool_stats_get(&s);
	assert_int_equal(s.cached_bytes, 1023 * 256); /* CACHE_SLOTS - 1 buffers */
	tlsq__pool_trim();
	tlsq__pool_stats_get(&s);
	assert_int_equal(s.cached_bytes, 0);
}

static void test_trim_empties_every_class(void **state)
{
	(void)state;
	size_t caps[] = {1, 1000, 10000, 60000};
	for (int i = 0; i < 4; i++)
		tlsq__buf_free(tlsq__buf_alloc(caps[i]));
	tlsq__pool_stats s;
	tlsq__pool_stats_get(&s);
	assert_true(s.cached_bytes >= 256 + 4096 + 16640 + 65536);
	tlsq__pool_trim();
	tlsq__pool_stats_get(&s);
	assert_int_equal(s.cached_bytes, 0);
	/* and the pool still works after a trim */
	tlsq__buf *b = tlsq__buf_alloc(1);
	assert_non_null(b);
	tlsq__buf_free(b);
}

static void test_stats_count_allocs_and_frees(void **state)
{
	(void)state;
	tlsq__pool_stats s0, s1;
	tlsq__pool_stats_get(&s0);
	for (int i = 0; i < 10; i++)
		tlsq__buf_free(tlsq__buf_alloc((size_t)i * 1000));
	tlsq__pool_stats_get(&s1);
	assert_int_equal(s1.allocs - s0.allocs, 10);
	assert_int_equal(s1.frees - s0.frees, 10);
	assert_int_equal((s1.hits - s0.hits) + (s1.mallocs - s0.mallocs), 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alloc_picks_the_smallest_class_that_fits),
	    cmocka_unit_test(test_alloc_starts_with_empty_cursors_and_zero_tag),
	    cmocka_unit_test(test_alloc_rejects_caps_above_uint32_max_minus_64),
	    cmocka_unit_test(test_free_null_is_ignored),
	    cmocka_unit_test(test_freed_buffer_is_reused_from_its_class_cache),
	    cmocka_unit_test(test_buffers_above_the_largest_class_bypass_the_cache),
	    cmocka_unit_test(test_cache_is_bounded_and_overflow_goes_back_to_malloc),
	    cmocka_unit_test(test_trim_empties_every_class),
	    cmocka_unit_test(test_stats_count_allocs_and_frees),
	};
	return QT_RUN(tests);
}
