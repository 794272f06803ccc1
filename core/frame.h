/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Message framing for message mode: each message is a 4-byte big-endian
 * length followed by that many bytes. The decoder is incremental (headers
 * and bodies may be split anywhere) and rejects a header announcing more
 * than `max` before allocating anything.
 */
#ifndef TLSQ_CORE_FRAME_H
#define TLSQ_CORE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define TLSQ__FRAME_HDR 4u
#define TLSQ__FRAME_MAX 0xfffffffbu /* UINT32_MAX - header */

/* Writes the header for a body of `len` bytes into out[0..4). */
void tlsq__frame_hdr_put(unsigned char out[TLSQ__FRAME_HDR], uint32_t len);
uint32_t tlsq__frame_hdr_get(const unsigned char in[TLSQ__FRAME_HDR]);

typedef struct tlsq__frame_dec {
	size_t max; /* largest accepted body */
	unsigned char hdr[TLSQ__FRAME_HDR];
	unsigned hdr_have; /* header bytes collected */
	tlsq__buf *msg;    /* body being collected, or NULL */
	uint32_t want;     /* body length announced */
} tlsq__frame_dec;

void tlsq__frame_dec_init(tlsq__frame_dec *d, size_t max);
/* Frees a partial message. */
void tlsq__frame_dec_fini(tlsq__frame_dec *d);

/*
 * Feeds up to n bytes. Consumes what it can and sets *used. When a message
 * completes, returns TLSQ_OK with *done set: the payload is at
 * data[4..4+len) with rd = 4, wr = 4 + len and tag = len (the same layout as
 * a buffer from tlsq_msg_alloc, so zero-copy receive hands it out as is); the caller feeds the rest
 * afterwards. Returns TLSQ_OK with *done NULL when all input was consumed without completing a
 * message, TLSQ_EMSGSIZE when a header announces more than max (nothing allocated; the decoder is
 * then unusable), TLSQ_ENOMEM.
 */
int tlsq__frame_dec_feed(tlsq__frame_dec *d, const unsigned char *p, size_t n, size_t *used,
                         tlsq__buf **done);

/* 1 if the decoder holds part of a message (header or body). */
int tlsq__frame_dec_partial(const tlsq__frame_dec *d);

#endif
