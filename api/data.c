/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * data.c - sending and receiving: stream mode, message mode, zero-copy.
 *
 * A send copies the caller's bytes into one buffer and pushes it on the tx
 * queue as one entry (so it is never interleaved with another call's), then
 * kicks the IO task. The kick is coalesced by the connection's pending flag
 * (core/notify.h): while the IO thread has not yet looked at the connection,
 * further sends cost one relaxed load, no syscall.
 *
 * A receive pops one entry; a stream receive that takes only part of it puts
 * the rest back (unpop) for the next call.
 *
 * A lent chunk (tlsq_recv_lend) is the popped entry itself, handed to the
 * caller as an opaque tlsq_chunk. While lent it carries what its release
 * needs, so that the release never needs the caller's handle:
 * - b->tag: the connection, with a reference of its own (taken at the
 *   lend, dropped at the release). The connection's memory, its rx queue
 *   and its engine's memory therefore outlive tlsq_conn_free and
 *   tlsq_engine_free until the last chunk is released.
 * - b->flags LENT_CREDIT: the entry still holds its rx credit (it came
 *   from the ring, not from the put-back list): the release gives it back.
 * Both are cleared at the release, before the rest (if any) is put back.
 *
 * Message buffers have the layout of core/frame.h: data[0..4) the header,
 * data[4..4+len) the payload, tag = len. A zero-copy message pointer is
 * data + 4. On a stream connection tlsq_msg_send queues the same buffer
 * with rd = 4: one entry (so one send, never interleaved), no header.
 */
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>

#include "iotask.h"

#define MSG_OFF     TLSQ__FRAME_HDR
#define LENT_CREDIT 0x1 /* b->flags of a lent chunk: holds its rx credit */

static tlsq__buf *msg_buf(const void *msg)
{
	return (tlsq__buf *)((unsigned char *)msg - MSG_OFF - offsetof(tlsq__buf, data));
}

static int conn_usable(struct tlsq_conn *c, tlsq_mode mode)
{
	if (!c || atomic_load_explicit(&c->handle_freed, memory_order_relaxed))
		return TLSQ_EINVAL;
	if (c->mode != mode)
		return TLSQ_EINVAL;
	return 0;
}

/* Pushes b on the tx queue; on failure the caller keeps b. */
static int tx_push(struct tlsq_conn *c, tlsq__buf *b, int timeout_ms)
{
	int was_empty = 0;
	tlsq__conn_ref(c);
	int rc = tlsq__txq_push_mpsc(&c->txq, b, 0, timeout_ms, &was_empty);
	/* A flush that starts after this push sees reserved bytes != 0 until
	 * the IO task has handed them to TLS (tlsq_flush). */
	if (rc == TLSQ_OK)
		tlsq__conn_kick(c);
	/* The connection's own error explains a refused push, unless the
	 * application ended the sending side first (close, free, shutdown):
	 * then a sender gets TLSQ_ECLOSED, not the error of the close that
	 * went on in the background (e.g. its deadline). */
	if (rc < 0 && rc != TLSQ_EAGAIN && rc != TLSQ_ETIMEDOUT &&
	    !tlsq__queue_was_ended(&c->txq)) {
		int err = atomic_load_explicit(&c->error, memory_order_acquire);
		if (err)
			rc = err;
	}
	tlsq__conn_unref(c);
	return rc;
}

/* Puts back what a receiver did not take. With several receivers another
 * one may have found the queue empty meanwhile and reset the pollfd (below):
 * the entry is ready again, so the pollfd must say so. */
static void rx_unpop(struct tlsq_conn *c, tlsq__buf *b)
{
	tlsq__rxq_unpop_mc(&c->rxq, b);
	tlsq__conn_pollfd_signal(c);
}

/* Keeps the pollfd level-triggered: empty queue -> not readable. */
static void pollfd_after_pop(struct tlsq_conn *c)
{
	int fd = atomic_load_explicit(&c->pollfd, memory_order_acquire);
	if (fd < 0 || tlsq__rxq_ready(&c->rxq))
		return;
	eventfd_t v;
	eventfd_read(fd, &v);
	/* A push may have landed between the check and the read. */
	if (tlsq__rxq_ready(&c->rxq))
		eventfd_write(fd, 1);
}

/* Pops one entry. Returns 0 with *b set, 0 with *b NULL at a clean end, or
 * an error. With `held` (a lend), the entry keeps its credit if *held. */
static int rx_pop(struct tlsq_conn *c, tlsq__buf **b, int timeout_ms, int *held)
{
	int unpark = 0;
	*b = NULL;
	int rc = held ? tlsq__rxq_pop_held_mc(&c->rxq, b, timeout_ms, &unpark, held)
	              : tlsq__rxq_pop_mc(&c->rxq, b, timeout_ms, &unpark);
	if (unpark)
		tlsq__conn_request(c, TLSQ__REQ_RX_ROOM);
	/* The IO task signals the pollfd after its push, so a consumer may
	 * take the entry first and find nothing to clear: the signal then
	 * outlives the data. Clear it here, or a poll loop that gets
	 * TLSQ_EAGAIN spins until the next push (tests/torture). */
	if (rc == TLSQ_EAGAIN || rc == TLSQ_ETIMEDOUT)
		pollfd_after_pop(c);
	return rc;
}

/* see tlsq.h */
ssize_t tlsq_send(tlsq_conn *c, const void *buf, size_t len, int timeout_ms)
{
	struct iovec v = {(void *)buf, len};
	return tlsq_sendv(c, &v, 1, timeout_ms);
}

/* see tlsq.h */
ssize_t tlsq_recv(tlsq_conn *c, void *buf, size_t cap, int timeout_ms)
{
	int rc = conn_usable(c, TLSQ_MODE_STREAM);
	if (rc)
		return rc;
	if (!buf || cap == 0)
		return TLSQ_EINVAL;
	tlsq__buf *b;
	tlsq__conn_ref(c);
	rc = rx_pop(c, &b, timeout_ms, NULL);
	if (rc != TLSQ_OK || b == NULL) {
		tlsq__conn_unref(c);
		return rc; /* 0 here is the clean end */
	}
	size_t n = tlsq__buf_len(b);
	if (n > cap)
		n = cap;
	memcpy(buf, b->data + b->rd, n);
	b->rd += (uint32_t)n;
	if (tlsq__buf_len(b) > 0) {
		rx_unpop(c, b);
	} else {
		tlsq__buf_free(b);
		pollfd_after_pop(c);
	}
	tlsq__conn_unref(c);
	return (ssize_t)n;
}

/* see tlsq.h */
ssize_t tlsq_recv_lend(tlsq_conn *c, tlsq_chunk **chunk, const void **data, int timeout_ms)
{
	if (chunk)
		*chunk = NULL;
	if (data)
		*data = NULL;
	int rc = conn_usable(c, TLSQ_MODE_STREAM);
	if (rc)
		return rc;
	if (!chunk || !data)
		return TLSQ_EINVAL;
	tlsq__buf *b;
	int held = 0;
	tlsq__conn_ref(c); /* on success: the chunk's, dropped at its release */
	rc = rx_pop(c, &b, timeout_ms, &held);
	if (rc != TLSQ_OK || b == NULL) {
		tlsq__conn_unref(c);
		return rc; /* 0 here is the clean end */
	}
	/* The chunk is out of the queue: if that emptied it, the pollfd must
	 * stop saying readable (a partial release signals it again). */
	pollfd_after_pop(c);
	b->tag = (uint64_t)(uintptr_t)c;
	b->flags = held ? LENT_CREDIT : 0;
	*chunk = (tlsq_chunk *)b;
	*data = b->data + b->rd;
	return (ssize_t)tlsq__buf_len(b);
}

/* see tlsq.h */
int tlsq_recv_release(tlsq_chunk *chunk, size_t consumed)
{
	tlsq__buf *b = (tlsq__buf *)chunk;
	/* tag 0: not lent (already released: a best-effort check only) */
	if (!b || b->tag == 0 || consumed > tlsq__buf_len(b))
		return TLSQ_EINVAL;
	struct tlsq_conn *c = (struct tlsq_conn *)(uintptr_t)b->tag;
	int held = b->flags & LENT_CREDIT;
	uint32_t charge = b->qcharge; /* read now: once put back, b is not ours */
	b->tag = 0;
	b->flags = 0;
	b->rd += (uint32_t)consumed;
	/* The rest goes back for the next recv/lend, unless nobody can take it
	 * any more (the handle was freed). After a close or abort the queue
	 * frees it (the next receiver's drain, or the connection's end). */
	if (tlsq__buf_len(b) > 0 && !atomic_load(&c->handle_freed)) {
		rx_unpop(c, b);
	} else {
		tlsq__buf_free(b);
	}
	if (held) {
		int unpark = 0;
		tlsq__rxq_release_mc(&c->rxq, charge, &unpark);
		if (unpark) /* a no-op once the engine is stopping */
			tlsq__conn_request(c, TLSQ__REQ_RX_ROOM);
	}
	tlsq__conn_unref(c); /* the chunk's: may free the connection */
	return TLSQ_OK;
}

/* see tlsq.h */
void *tlsq_msg_alloc(size_t len)
{
	if (len > TLSQ__FRAME_MAX)
		return NULL;
	tlsq__buf *b = tlsq__buf_alloc(len + MSG_OFF);
	if (!b)
		return NULL;
	tlsq__frame_hdr_put(b->data, (uint32_t)len);
	b->rd = 0;
	b->wr = (uint32_t)(len + MSG_OFF);
	b->tag = len;
	return b->data + MSG_OFF;
}

/* see tlsq.h */
size_t tlsq_msg_len(const void *msg)
{
	return msg ? (size_t)msg_buf(msg)->tag : 0;
}

/* see tlsq.h */
void tlsq_msg_free(void *msg)
{
	if (msg)
		tlsq__buf_free(msg_buf(msg));
}

/* A stream connection takes a message buffer as one send of its payload:
 * the entry is data[4..4+len), the frame header stays unsent. The IO task
 * sends data[rd..wr) of any entry, so it needs to know nothing about it. */
static int stream_msg_send(struct tlsq_conn *c, tlsq__buf *b, int timeout_ms)
{
	if (b->tag == 0) { /* as tlsq_send(c, buf, 0): nothing to queue */
		tlsq__buf_free(b);
		return TLSQ_OK;
	}
	b->rd = MSG_OFF;
	b->wr = (uint32_t)(b->tag + MSG_OFF);
	return tx_push(c, b, timeout_ms);
}

/* see tlsq.h */
int tlsq_msg_send(tlsq_conn *c, void *msg, int timeout_ms)
{
	if (!c || atomic_load_explicit(&c->handle_freed, memory_order_relaxed))
		return TLSQ_EINVAL;
	if (!msg)
		return TLSQ_EINVAL;
	tlsq__buf *b = msg_buf(msg);
	if (c->mode == TLSQ_MODE_STREAM)
		return stream_msg_send(c, b, timeout_ms);
	if (b->tag > c->engine->cfg.max_message)
		return TLSQ_EMSGSIZE;
	/* The caller may have reused a received buffer: reset the frame. */
	tlsq__frame_hdr_put(b->data, (uint32_t)b->tag);
	b->rd = 0;
	b->wr = (uint32_t)(b->tag + MSG_OFF);
	return tx_push(c, b, timeout_ms);
}

/* see tlsq.h */
int tlsq_send_msg(tlsq_conn *c, const void *buf, size_t len, int timeout_ms)
{
	struct iovec v = {(void *)buf, len};
	return tlsq_send_msgv(c, &v, 1, timeout_ms);
}

/* see tlsq.h */
ssize_t tlsq_msg_recv(tlsq_conn *c, void **msg, int timeout_ms)
{
	if (msg)
		*msg = NULL;
	int rc = conn_usable(c, TLSQ_MODE_MESSAGE);
	if (rc)
		return rc;
	if (!msg)
		return TLSQ_EINVAL;
	tlsq__buf *b;
	tlsq__conn_ref(c);
	rc = rx_pop(c, &b, timeout_ms, NULL);
	if (rc == TLSQ_OK && b == NULL)
		rc = TLSQ_ECLOSED; /* message mode: the end is ECLOSED, not 0 */
	if (rc != TLSQ_OK) {
		tlsq__conn_unref(c);
		return rc;
	}
	pollfd_after_pop(c);
	tlsq__conn_unref(c);
	*msg = b->data + MSG_OFF;
	return (ssize_t)b->tag;
}

/* see tlsq.h */
ssize_t tlsq_recv_msg(tlsq_conn *c, void *buf, size_t cap, int timeout_ms)
{
	int rc = conn_usable(c, TLSQ_MODE_MESSAGE);
	if (rc)
		return rc;
	if (!buf && cap)
		return TLSQ_EINVAL;
	tlsq__buf *b;
	tlsq__conn_ref(c);
	rc = rx_pop(c, &b, timeout_ms, NULL);
	if (rc == TLSQ_OK && b == NULL)
		rc = TLSQ_ECLOSED;
	if (rc != TLSQ_OK) {
		tlsq__conn_unref(c);
		return rc;
	}
	size_t len = (size_t)b->tag;
	if (len > cap) {
		rx_unpop(c, b); /* stays queued for a larger buffer */
		tlsq__conn_unref(c);
		return TLSQ_EMSGSIZE;
	}
	if (len)
		memcpy(buf, b->data + MSG_OFF, len);
	tlsq__buf_free(b);
	pollfd_after_pop(c);
	tlsq__conn_unref(c);
	return (ssize_t)len;
}

/* see tlsq.h */
int tlsq_flush(tlsq_conn *c, int timeout_ms)
{
	if (!c || atomic_load(&c->handle_freed))
		return TLSQ_EINVAL;
	struct timespec dl;
	int has_dl = tlsq__timeout_deadline(timeout_ms, &dl);
	tlsq__conn_ref(c);
	int rc;
	for (;;) {
		uint32_t seen = tlsq__ec_value(&c->state_ec);
		int err = atomic_load_explicit(&c->error, memory_order_acquire);
		/* acquire on bytes: pairs with the IO task's release of credits,
		 * which comes after its send callback cleared tx_idle. */
		if (tlsq__queue_bytes(&c->txq) == 0 &&
		    atomic_load_explicit(&c->tx_idle, memory_order_acquire)) {
			rc = TLSQ_OK;
			break;
		}
		if (err) {
			rc = err;
			break;
		}
		if (has_dl < 0) {
			rc = TLSQ_EAGAIN;
			break;
		}
		if (tlsq__ec_wait(&c->state_ec, seen, has_dl ? &dl : NULL) < 0) {
			rc = TLSQ_ETIMEDOUT;
			break;
		}
	}
	tlsq__conn_unref(c);
	return rc;
}

/* ---- gather sends ---------------------------------------------------- */

/* The total of iov, or TLSQ_EINVAL (negative count, NULL base with a
 * length, a total above `max`). */
static int64_t iov_total(const struct iovec *iov, int iovcnt, uint64_t max)
{
	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return TLSQ_EINVAL;
	uint64_t total = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (!iov[i].iov_base && iov[i].iov_len)
			return TLSQ_EINVAL;
		if (iov[i].iov_len > max - total)
			return TLSQ_EINVAL;
		total += iov[i].iov_len;
	}
	return (int64_t)total;
}

static void iov_copy(unsigned char *dst, const struct iovec *iov, int iovcnt)
{
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len)
			memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
}

/* see tlsq.h */
ssize_t tlsq_sendv(tlsq_conn *c, const struct iovec *iov, int iovcnt, int timeout_ms)
{
	int rc = conn_usable(c, TLSQ_MODE_STREAM);
	if (rc)
		return rc;
	/* The limits of tlsq_send: one entry holds a whole call. */
	uint64_t max = (uint64_t)UINT32_MAX - 64 < (uint64_t)SSIZE_MAX ? (uint64_t)UINT32_MAX - 64
	                                                               : (uint64_t)SSIZE_MAX;
	int64_t len = iov_total(iov, iovcnt, max);
	if (len <= 0)
		return (ssize_t)len; /* 0: nothing to send, as tlsq_send */
	tlsq__buf *b = tlsq__buf_alloc((size_t)len);
	if (!b)
		return TLSQ_ENOMEM;
	iov_copy(b->data, iov, iovcnt);
	b->wr = (uint32_t)len;
	rc = tx_push(c, b, timeout_ms);
	if (rc != TLSQ_OK) {
		tlsq__buf_free(b);
		return rc;
	}
	return (ssize_t)len;
}

/* see tlsq.h */
int tlsq_send_msgv(tlsq_conn *c, const struct iovec *iov, int iovcnt, int timeout_ms)
{
	int rc = conn_usable(c, TLSQ_MODE_MESSAGE);
	if (rc)
		return rc;
	int64_t len = iov_total(iov, iovcnt, (uint64_t)SSIZE_MAX);
	if (len < 0)
		return (int)len;
	if ((uint64_t)len > c->engine->cfg.max_message)
		return TLSQ_EMSGSIZE;
	void *m = tlsq_msg_alloc((size_t)len);
	if (!m)
		return TLSQ_ENOMEM;
	iov_copy(m, iov, iovcnt);
	rc = tlsq_msg_send(c, m, timeout_ms);
	if (rc != TLSQ_OK)
		tlsq_msg_free(m);
	return rc;
}
