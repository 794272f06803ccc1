/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * frame.c - message framing: a 4-byte big-endian length, then the body.
 *
 * Invariants of a decoder:
 * - hdr_have < 4 and msg == NULL: collecting a header (hdr[0..hdr_have)).
 * - hdr_have == 4 and msg != NULL: collecting a body; msg->data[0..4) holds
 *   the header, msg->data[4..wr) the body so far, wr - 4 <= want <= max.
 * - hdr_have == 4 and msg == NULL: the header was rejected (EMSGSIZE) or
 *   its allocation failed (ENOMEM, retried by the next feed).
 * - The announced length is compared with `max` before anything is
 *   allocated: a hostile header costs nothing. Every copy goes through
 *   dec_put, which checks the destination's room.
 *
 * Concurrency: a decoder belongs to one thread (its IO task); the header
 * helpers are pure.
 */
#include <string.h>

#include "err.h"
#include "frame.h"

void tlsq__frame_hdr_put(unsigned char out[TLSQ__FRAME_HDR], uint32_t len)
{
	out[0] = (unsigned char)(len >> 24);
	out[1] = (unsigned char)(len >> 16);
	out[2] = (unsigned char)(len >> 8);
	out[3] = (unsigned char)len;
}

uint32_t tlsq__frame_hdr_get(const unsigned char in[TLSQ__FRAME_HDR])
{
	return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

void tlsq__frame_dec_init(tlsq__frame_dec *d, size_t max)
{
	memset(d, 0, sizeof *d);
	d->max = max > TLSQ__FRAME_MAX ? TLSQ__FRAME_MAX : max;
}

void tlsq__frame_dec_fini(tlsq__frame_dec *d)
{
	tlsq__buf_free(d->msg);
	d->msg = NULL;
	d->hdr_have = 0;
}

int tlsq__frame_dec_partial(const tlsq__frame_dec *d)
{
	return d->hdr_have > 0 || d->msg != NULL;
}

/* Appends up to n bytes to b, bounded by its room and by `limit` bytes of
 * payload (data[4..4+limit)); returns how many were copied. */
static size_t dec_put(tlsq__buf *b, size_t limit, const unsigned char *p, size_t n)
{
	size_t want = TLSQ__FRAME_HDR + limit - b->wr;
	size_t room = tlsq__buf_room(b);
	if (n > want)
		n = want;
	if (n > room)
		n = room; /* cannot happen: the buffer was sized for limit */
	memcpy(b->data + b->wr, p, n);
	b->wr += (uint32_t)n;
	return n;
}

/* Collects header bytes; once complete, checks the length and allocates. */
static int dec_header(tlsq__frame_dec *d, const unsigned char *p, size_t n, size_t *used)
{
	size_t take = TLSQ__FRAME_HDR - d->hdr_have;
	if (take > n)
		take = n;
	memcpy(d->hdr + d->hdr_have, p, take);
	d->hdr_have += (unsigned)take;
	*used = take;
	if (d->hdr_have < TLSQ__FRAME_HDR)
		return TLSQ_OK;
	uint32_t len = tlsq__frame_hdr_get(d->hdr);
	if (len > d->max)
		return TLSQ_EMSGSIZE; /* before any allocation */
	tlsq__buf *m = tlsq__buf_alloc((size_t)len + TLSQ__FRAME_HDR);
	if (m == NULL)
		return TLSQ_ENOMEM;
	memcpy(m->data, d->hdr, TLSQ__FRAME_HDR);
	m->rd = m->wr = TLSQ__FRAME_HDR;
	m->tag = len;
	d->msg = m;
	d->want = len;
	return TLSQ_OK;
}

int tlsq__frame_dec_feed(tlsq__frame_dec *d, const unsigned char *p, size_t n, size_t *used,
                         tlsq__buf **done)
{
	size_t u = 0;
	*done = NULL;
	*used = 0;
	if (d->msg == NULL) {
		size_t h;
		int rc = dec_header(d, p, n, &h);
		u = h;
		if (rc != TLSQ_OK || d->msg == NULL) {
			*used = u;
			return rc; /* error, or all input was header bytes */
		}
	}
	u += dec_put(d->msg, d->want, p + u, n - u);
	if (d->msg->wr - TLSQ__FRAME_HDR == d->want) {
		*done = d->msg; /* a 0-byte message completes right here too */
		d->msg = NULL;
		d->hdr_have = 0;
	}
	*used = u;
	return TLSQ_OK;
}
