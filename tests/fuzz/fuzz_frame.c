/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: the message-framing decoder (core/frame.h).
 *
 * Input: 2 bytes of max_message (little endian, 0..65535), 1 byte seeding
 * how the rest is cut into feeds, then the byte stream. The incremental
 * decoder, fed in random pieces, must agree with a one-shot reference
 * parser: the same messages (lengths and bytes), EMSGSIZE exactly when a
 * header announces more than max, never more input consumed than given,
 * progress on every call, and a partial state at the end exactly when the
 * reference has an unfinished frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "frame.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

static uint32_t hdr(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	size_t max = (size_t)data[0] | (size_t)data[1] << 8;
	uint32_t rnd = data[2] * 2654435761u + 1;
	data += 3;
	size -= 3;

	/* Reference: where each frame starts, or where the stream breaks. */
	tlsq__frame_dec d;
	tlsq__frame_dec_init(&d, max);
	size_t ref = 0;    /* next frame header in data[] (reference parser) */
	int ref_error = 0; /* the reference saw a header > max at `ref` */
	size_t off = 0;
	int failed = 0;
	while (off < size && !failed) {
		rnd ^= rnd << 13;
		rnd ^= rnd >> 17;
		rnd ^= rnd << 5;
		size_t n = 1 + rnd % 97;
		if (n > size - off)
			n = size - off;
		while (n > 0) {
			size_t used = 0;
			tlsq__buf *done = NULL;
			int rc = tlsq__frame_dec_feed(&d, data + off, n, &used, &done);
			CHECK(used <= n);
			if (rc == TLSQ_EMSGSIZE) {
				/* The reference must find this header too big. */
				CHECK(ref + 4 == off + used); /* right at the header */
				CHECK(hdr(data + ref) > max);
				CHECK(done == NULL);
				ref_error = 1;
				failed = 1;
				break;
			}
			CHECK(rc == TLSQ_OK);
			CHECK(used > 0 || done != NULL);
			off += used;
			n -= used;
			if (done) {
				CHECK(ref + 4 <= off);
				uint32_t len = hdr(data + ref);
				CHECK(len <= max);
				CHECK(ref + 4 + len == off); /* completes exactly here */
				CHECK(done->rd == 4 && done->wr == 4 + len && done->tag == len);
				CHECK(memcmp(done->data, data + ref, 4 + (size_t)len) == 0);
				tlsq__buf_free(done);
				ref = off;
			}
		}
	}
	if (!failed) {
		/* Everything consumed: partial iff an unfinished frame remains,
		 * and that frame's header (if complete) was within max. */
		CHECK(off == size);
		CHECK(tlsq__frame_dec_partial(&d) == (ref < size));
		if (ref + 4 <= size)
			CHECK(hdr(data + ref) <= max);
	}
	(void)ref_error;
	tlsq__frame_dec_fini(&d);
	CHECK(!tlsq__frame_dec_partial(&d));
	return 0;
}
