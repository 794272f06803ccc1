/* SPDX-License-Identifier: GPL-2.0-or-later */
/* core/frame.c: the 4-byte length header and the incremental decoder. */
#include "qtest.h"

#include "frame.h"

/* Header + body of `len` bytes (byte i = i * 7 + len) into out. */
static size_t encode(unsigned char *out, uint32_t len)
{
	tlsq__frame_hdr_put(out, len);
	for (uint32_t i = 0; i < len; i++)
		out[TLSQ__FRAME_HDR + i] = (unsigned char)(i * 7 + len);
	return TLSQ__FRAME_HDR + (size_t)len;
}

static void check_msg(tlsq__buf *m, uint32_t len)
{
	assert_non_null(m);
	assert_int_equal(m->rd, TLSQ__FRAME_HDR);
	assert_int_equal(m->wr, TLSQ__FRAME_HDR + len);
	assert_int_equal(m->tag, len);
	assert_int_equal(tlsq__frame_hdr_get(m->data), len); /* header kept in front */
	for (uint32_t i = 0; i < len; i++)
		if (m->data[TLSQ__FRAME_HDR + i] != (unsigned char)(i * 7 + len))
			fail_msg("byte %u differs", i);
}

static void test_header_is_four_bytes_big_endian_and_round_trips(void **state)
{
	(void)state;
	unsigned char h[4];
	tlsq__frame_hdr_put(h, 0x01020304u);
	assert_int_equal(h[0], 1);
	assert_int_equal(h[3], 4);
	assert_int_equal(tlsq__frame_hdr_get(h), 0x01020304u);
	tlsq__frame_hdr_put(h, 0xffffffffu);
	assert_int_equal(tlsq__frame_hdr_get(h), 0xffffffffu);
	tlsq__frame_hdr_put(h, 0);
	assert_int_equal(tlsq__frame_hdr_get(h), 0);
}

static void test_zero_byte_message_completes_from_its_header_alone(void **state)
{
	(void)state;
	tlsq__frame_dec d;
	unsigned char in[TLSQ__FRAME_HDR];
	size_t used;
	tlsq__buf *m;
	tlsq__frame_dec_init(&d, 100);
	encode(in, 0);
	assert_int_equal(tlsq__frame_dec_feed(&d, in, sizeof in, &used, &m), TLSQ_OK);
	assert_int_equal(used, 4);
	check_msg(m, 0);
	assert_false(tlsq__frame_dec_partial(&d));
	tlsq__buf_free(m);
	tlsq__frame_dec_fini(&d);
}

static void test_message_of_exactly_max_bytes_is_accepted(void **state)
{
	(void)state;
	enum { MAX = 70000 }; /* above the largest pool class: plain malloc */
	unsigned char *in = malloc(TLSQ__FRAME_HDR + MAX);
	tlsq__frame_dec d;
	size_t used;
	tlsq__buf *m;
	tlsq__frame_dec_init(&d, MAX);
	size_t n = encode(in, MAX);
	assert_int_equal(tlsq__frame_dec_feed(&d, in, n, &used, &m), TLSQ_OK);
	assert_int_equal(used, n);
	check_msg(m, MAX);
	tlsq__buf_free(m);
	tlsq__frame_dec_fini(&d);
	free(in);
}

static void test_header_above_max_is_rejected_before_anything_is_allocated(void **state)
{
	(void)state;
	tlsq__frame_dec d;
	unsigned char in[TLSQ__FRAME_HDR + 8];
	size_t used;
	tlsq__buf *m = (tlsq__buf *)1;
	tlsq__pool_stats s0, s1;
	tlsq__frame_dec_init(&d, 1000);
	tlsq__frame_hdr_put(in, 1001);
	tlsq__pool_stats_get(&s0);
	assert_int_equal(tlsq__frame_dec_feed(&d, in, sizeof in, &used, &m), TLSQ_EMSGSIZE);
	tlsq__pool_stats_get(&s1);
	assert_int_equal(s1.allocs, s0.allocs);
	assert_null(m);
	assert_int_equal(used, 4); /* the header, not the bytes after it */
	/* A 4 GiB announcement is just as cheap. */
	tlsq__frame_dec_fini(&d);
	tlsq__frame_dec_init(&d, 1000);
	tlsq__frame_hdr_put(in, 0xffffffffu);
	assert_int_equal(tlsq__frame_dec_feed(&d, in, 4, &used, &m), TLSQ_EMSGSIZE);
	tlsq__pool_stats_get(&s1);
	assert_int_equal(s1.allocs, s0.allocs);
	tlsq__frame_dec_fini(&d);
}

static void test_decoder_stays_failed_after_an_oversize_header(void **state)
{
	(void)state;
	tlsq__frame_dec d;
	unsigned char in[8];
	size_t used;
	tlsq__buf *m;
	tlsq__frame_dec_init(&d, 10);
	tlsq__frame_hdr_put(in, 11);
	assert_int_equal(tlsq__frame_dec_feed(&d, in, 4, &used, &m), TLSQ_EMSGSIZE);
	encode(in, 1);
	assert_int_equal(tlsq__frame_dec_feed(&d, in, 5, &used, &m), TLSQ_EMSGSIZE);
	assert_int_equal(used, 0);
	tlsq__frame_dec_fini(&d);
}

static void test_header_and_body_split_at_every_byte_position(void **state)
{
	(void)state;
	enum { LEN = 37 };
	unsigned char in[TLSQ__FRAME_HDR + LEN];
	size_t n = encode(in, LEN);
	for (size_t cut = 0; cut <= n; cut++) {
		tlsq__frame_dec d;
		size_t used;
		tlsq__buf *m;
		tlsq__frame_dec_init(&d, LEN);
		assert_int_equal(tlsq__frame_dec_feed(&d, in, cut, &used, &m), TLSQ_OK);
		assert_int_equal(used, cut);
		if (cut < n) {
			assert_null(m);
			assert_int_equal(tlsq__frame_dec_partial(&d), cut > 0);
			assert_int_equal(tlsq__frame_dec_feed(&d, in + cut, n - cut, &used, &m),
			                 TLSQ_OK);
			assert_int_equal(used, n - cut);
		}
		check_msg(m, LEN);
		assert_false(tlsq__frame_dec_partial(&d));
		tlsq__buf_free(m);
		tlsq__frame_dec_fini(&d);
	}
}

static void test_byte_by_byte_feeding_yields_every_message(void **state)
{
	(void)state;
	unsigned char in[64];
	size_t n = 0;
	n += encode(in + n, 3);
	n += encode(in + n, 0);
	n += encode(in + n, 20);
	uint32_t want[] = {3, 0, 20};
	int got = 0;
	tlsq__frame_dec d;
	tlsq__frame_dec_init(&d, 100);
	for (size_t i = 0; i < n; i++) {
		size_t used;
		tlsq__buf *m;
		assert_int_equal(tlsq__frame_dec_feed(&d, in + i, 1, &used, &m), TLSQ_OK);
		assert_int_equal(used, 1);
		if (m != NULL) {
			check_msg(m, want[got++]);
			tlsq__buf_free(m);
		}
	}
	assert_int_equal(got, 3);
	tlsq__frame_dec_fini(&d);
}

static void test_feed_stops_after_each_message_and_reports_what_it_used(void **state)
{
	(void)state;
	unsigned char in[64];
	size_t n = 0, off = 0;
	n += encode(in + n, 5);
	n += encode(in + n, 0);
	n += encode(in + n, 2);
	uint32_t want[] = {5, 0, 2};
	tlsq__frame_dec d;
	tlsq__frame_dec_init(&d, 100);
	for (int i = 0; i < 3; i++) {
		size_t used;
		tlsq__buf *m;
		assert_int_equal(tlsq__frame_dec_feed(&d, in + off, n - off, &used, &m), TLSQ_OK);
		assert_int_equal(used, TLSQ__FRAME_HDR + want[i]);
		check_msg(m, want[i]);
		tlsq__buf_free(m);
		off += used;
	}
	assert_int_equal(off, n);
	tlsq__frame_dec_fini(&d);
}

static void test_fini_frees_a_partial_message(void **state)
{
	(void)state;
	unsigned char in[TLSQ__FRAME_HDR + 10];
	size_t used;
	tlsq__buf *m;
	tlsq__frame_dec d;
	tlsq__frame_dec_init(&d, 100);
	encode(in, 10);
	assert_int_equal(tlsq__frame_dec_feed(&d, in, 9, &used, &m), TLSQ_OK);
	assert_null(m);
	assert_true(tlsq__frame_dec_partial(&d));
	tlsq__frame_dec_fini(&d); /* LeakSanitizer checks the rest */
	assert_false(tlsq__frame_dec_partial(&d));
}

static void test_max_is_clamped_to_the_largest_frame(void **state)
{
	(void)state;
	tlsq__frame_dec d;
	tlsq__frame_dec_init(&d, SIZE_MAX);
	assert_int_equal(d.max, TLSQ__FRAME_MAX);
	tlsq__frame_dec_fini(&d);
}

static void test_zero_max_accepts_only_empty_messages(void **state)
{
	(void)state;
	unsigned char in[8];
	size_t used;
	tlsq__buf *m;
	tlsq__frame_dec d;
	tlsq__frame_dec_init(&d, 0);
	encode(in, 0);
	assert_int_equal(tlsq__frame_dec_feed(&d, in, 4, &used, &m), TLSQ_OK);
	check_msg(m, 0);
	tlsq__buf_free(m);
	encode(in, 1);
	assert_int_equal(tlsq__frame_dec_feed(&d, in, 5, &used, &m), TLSQ_EMSGSIZE);
	tlsq__frame_dec_fini(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_is_four_bytes_big_endian_and_round_trips),
	    cmocka_unit_test(test_zero_byte_message_completes_from_its_header_alone),
	    cmocka_unit_test(test_message_of_exactly_max_bytes_is_accepted),
	    cmocka_unit_test(test_header_above_max_is_rejected_before_anything_is_allocated),
	    cmocka_unit_test(test_decoder_stays_failed_after_an_oversize_header),
	    cmocka_unit_test(test_header_and_body_split_at_every_byte_position),
	    cmocka_unit_test(test_byte_by_byte_feeding_yields_every_message),
	    cmocka_unit_test(test_feed_stops_after_each_message_and_reports_what_it_used),
	    cmocka_unit_test(test_fini_frees_a_partial_message),
	    cmocka_unit_test(test_max_is_clamped_to_the_largest_frame),
	    cmocka_unit_test(test_zero_max_accepts_only_empty_messages),
	};
	return QT_RUN(tests);
}
