/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Buffers: a blob with read and write cursors, from a size-class pool.
 *
 * A tlsq__buf carries one unit of a queue: one send call's bytes, one
 * message (with room for its 4-byte frame header in front), or one chunk of
 * decrypted stream. data[rd..wr) is the payload; `cap` bytes follow the
 * header. Buffers are owned by exactly one party at a time (the producer
 * that filled it, the queue, the consumer that took it); ownership moves
 * with the pointer, so the fields need no atomics.
 *
 * Pool: small size classes (256 B, 4 KiB, 16 KiB + record slack, 64 KiB)
 * keep a bounded lock-free free list each (ck_ring MPMC, 1024 buffers per
 * class, allocated on first use, process-global); larger buffers are plain
 * malloc. Any thread may alloc and free. Cached buffers stay reachable from
 * the pool, so LeakSanitizer does not report them; tlsq__pool_trim frees
 * them.
 */
#ifndef TLSQ_CORE_BUF_H
#define TLSQ_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct tlsq__buf {
	uint32_t cap;     /* bytes in data[] */
	uint32_t rd;      /* first unread byte */
	uint32_t wr;      /* one past the last written byte */
	uint32_t qcharge; /* bytes charged to a queue's budget (queue.c) */
	uint8_t cls;      /* pool size class, or 0xff for plain malloc */
	uint8_t flags;    /* owner-defined */
	uint16_t pad_;
	uint32_t pad2_;
	uint64_t tag;            /* owner-defined (message length, sequence, ...) */
	struct tlsq__buf *qnext; /* queue.c: link while put back on an rx queue */
	unsigned char data[];
} tlsq__buf;

/* A buffer with at least `cap` bytes, rd = wr = 0; NULL if out of memory or
 * cap > UINT32_MAX - 64. */
tlsq__buf *tlsq__buf_alloc(size_t cap);
/* Back to the pool. NULL is ignored. */
void tlsq__buf_free(tlsq__buf *b);

static inline size_t tlsq__buf_len(const tlsq__buf *b)
{
	return b->wr - b->rd;
}
static inline size_t tlsq__buf_room(const tlsq__buf *b)
{
	return b->cap - b->wr;
}

/* Pool statistics (approximate, relaxed loads). */
typedef struct tlsq__pool_stats {
	uint64_t allocs, frees, hits, mallocs;
	uint64_t cached_bytes;
} tlsq__pool_stats;
void tlsq__pool_stats_get(tlsq__pool_stats *out);
/* Frees every cached buffer (engine shutdown, tests checking for leaks). */
void tlsq__pool_trim(void);

#endif
