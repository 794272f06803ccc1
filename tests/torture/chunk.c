/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * chunk.c - self-describing chunks and the receiver's check.
 *
 * Why chunks: with several sending threads nobody knows the order in which
 * their sends reach the wire, so the receiver cannot compare against one
 * expected stream. Each chunk carries who sent it (side, thread) and that
 * thread's sequence number; a sending thread takes the next number only
 * when a send succeeded (all or nothing), so per thread what arrived must
 * be exactly 0..k-1 of its successful sends, each chunk intact.
 *
 * Stream mode: one receiver at a time (the harness serialises recv), bytes
 * fed in stream order; the sequence per thread must be strictly next.
 * Message mode: any number of receivers, each message is one chunk; a
 * bitmap per thread catches duplicates and holes, and each receiving thread
 * must see every sender's numbers increase (the receive queue is FIFO).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "torture.h"

#define MAGIC 0x54515443u /* "TQTC" */

static void put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static uint32_t get32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t fnv(uint64_t h, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

size_t tt_chunk_make(unsigned char *buf, unsigned side, unsigned tid, uint32_t seq, uint32_t len,
                     uint64_t seed)
{
	put32(buf, MAGIC);
	buf[4] = (unsigned char)side;
	buf[5] = (unsigned char)tid;
	buf[6] = buf[7] = 0;
	put32(buf + 8, seq);
	put32(buf + 12, len);
	uint64_t s = seed ^ ((uint64_t)side << 56) ^ ((uint64_t)tid << 48) ^ seq;
	unsigned char *p = buf + TT_HDR;
	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t x = tt_rand(&s);
		memcpy(p + i, &x, len - i < 8 ? len - i : 8);
	}
	uint64_t h = fnv(fnv(0xcbf29ce484222325ull, buf, 16), p, len);
	memcpy(buf + 16, &h, 8);
	return TT_HDR + (size_t)len;
}

void tt_rxlog_init(struct tt_rxlog *l, unsigned side)
{
	memset(l, 0, sizeof *l);
	l->side = side;
}

void tt_rxlog_fini(struct tt_rxlog *l)
{
	for (int i = 0; i < TT_MAX_TID; i++)
		free(l->seen[i]);
	free(l->acc);
	memset(l, 0, sizeof *l);
}

/* Checks one whole chunk's header and checksum; returns tid or -1. */
static int chunk_check(const struct tt_rxlog *l, const unsigned char *c, size_t n, uint32_t *seq,
                       const char *who)
{
	if (n < TT_HDR) {
		tt_fail("%s: a %zu-byte message is shorter than a chunk header", who, n);
		return -1;
	}
	if (get32(c) != MAGIC) {
		tt_fail("%s: chunk %llu: bad magic %08x (garbage or a lost/duplicated byte)", who,
		        (unsigned long long)l->chunks, get32(c));
		return -1;
	}
	uint32_t len = get32(c + 12);
	*seq = get32(c + 8);
	if (c[4] != l->side || c[5] >= TT_MAX_TID || len > TT_MAX_CHUNK ||
	    n != TT_HDR + (size_t)len) {
		tt_fail("%s: chunk %llu: bad header side %u tid %u seq %u len %u (size %zu)", who,
		        (unsigned long long)l->chunks, c[4], c[5], *seq, len, n);
		return -1;
	}
	uint64_t h = fnv(fnv(0xcbf29ce484222325ull, c, 16), c + TT_HDR, len), want;
	memcpy(&want, c + 16, 8);
	if (h != want) {
		tt_fail("%s: chunk tid %u seq %u len %u: checksum mismatch (corrupted)", who, c[5],
		        *seq, len);
		return -1;
	}
	return c[5];
}

int tt_rxlog_stream(struct tt_rxlog *l, const void *buf, size_t len, const char *who)
{
	if (l->acc_len + len > l->acc_cap) {
		size_t cap = l->acc_cap ? l->acc_cap : 4096;
		while (cap < l->acc_len + len)
			cap *= 2;
		l->acc = realloc(l->acc, cap);
		l->acc_cap = cap;
	}
	memcpy(l->acc + l->acc_len, buf, len);
	l->acc_len += len;
	l->bytes += len;
	size_t off = 0;
	while (l->acc_len - off >= TT_HDR) {
		const unsigned char *c = l->acc + off;
		uint32_t clen = get32(c + 12);
		if (get32(c) != MAGIC || clen > TT_MAX_CHUNK) {
			tt_fail("%s: stream byte %llu: bad chunk header (magic %08x len %u)", who,
			        (unsigned long long)(l->bytes - (l->acc_len - off)), get32(c),
			        clen);
			return -1;
		}
		if (l->acc_len - off < TT_HDR + (size_t)clen)
			break;
		uint32_t seq;
		int tid = chunk_check(l, c, TT_HDR + (size_t)clen, &seq, who);
		if (tid < 0)
			return -1;
		if (seq != l->next[tid]) {
			tt_fail("%s: thread %d: got seq %u, expected %u (%s)", who, tid, seq,
			        l->next[tid], seq < l->next[tid] ? "duplicate" : "lost");
			return -1;
		}
		l->next[tid]++;
		l->chunks++;
		off += TT_HDR + (size_t)clen;
	}
	memmove(l->acc, l->acc + off, l->acc_len - off);
	l->acc_len -= off;
	return 0;
}

int tt_rxlog_msg(struct tt_rxlog *l, const void *msg, size_t len, uint32_t *last, const char *who)
{
	uint32_t seq;
	int tid = chunk_check(l, msg, len, &seq, who);
	if (tid < 0)
		return -1;
	if (seq >= l->seen_cap[tid] * 8u) {
		uint32_t cap = l->seen_cap[tid] ? l->seen_cap[tid] : 64;
		while (seq >= cap * 8u)
			cap *= 2;
		l->seen[tid] = realloc(l->seen[tid], cap);
		memset(l->seen[tid] + l->seen_cap[tid], 0, cap - l->seen_cap[tid]);
		l->seen_cap[tid] = cap;
	}
	unsigned char bit = (unsigned char)(1u << (seq % 8));
	if (l->seen[tid][seq / 8] & bit) {
		tt_fail("%s: thread %d: seq %u received twice", who, tid, seq);
		return -1;
	}
	if (last && last[tid] > seq) {
		tt_fail("%s: thread %d: seq %u after %u in one receiving thread (reordered)", who,
		        tid, seq, last[tid] - 1);
		return -1;
	}
	if (last)
		last[tid] = seq + 1;
	l->seen[tid][seq / 8] |= bit;
	if (seq + 1 > l->next[tid])
		l->next[tid] = seq + 1;
	l->chunks++;
	l->bytes += len;
	return 0;
}

int64_t tt_rxlog_count(const struct tt_rxlog *l, unsigned tid, int msg_mode, const char *who)
{
	if (!msg_mode)
		return l->next[tid];
	for (uint32_t s = 0; s < l->next[tid]; s++) {
		if (!(l->seen[tid][s / 8] & (1u << (s % 8)))) {
			tt_fail("%s: thread %u: seq %u missing below %u (a hole)", who, tid, s,
			        l->next[tid] - 1);
			return -1;
		}
	}
	return l->next[tid];
}
