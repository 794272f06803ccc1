/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pump.c - the IO task's data movement: socket reads and writes, the
 * receive side (decrypt into chunks or messages, hand them to the rx queue,
 * end it after everything before the end), the send side (encrypt queued
 * plaintext, coalescing small entries into full records, rule 6) and the
 * control records (KeyUpdate, close_notify). It records what happened as
 * facts on the connection (eof, rst, recv_closed, send_closed, ...);
 * state.c alone turns facts into states and decides what runs when.
 *
 * The send callback writes each record straight to the socket while the
 * out buffer is empty and parks only what the socket did not take, so in
 * the common case ciphertext is never copied. Control records produced
 * inside wolfSSL_read (KeyUpdate replies, alerts) take the same way: the
 * send callback never refuses, and the reserve above cipher_buffer is
 * theirs (P5, G9).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "iotask.h"

#define MAX_RECORD  16384
#define RX_CHUNK    (MAX_RECORD + 256)
#define RX_BATCH    (64 * 1024) /* wake receivers at least every this many bytes */
#define WRITE_CALLS 64          /* socket writes per step (1-byte buffers would spin) */

/* see iotask.h */
int tlsq__conn_can_send(const struct tlsq_conn *c)
{
	return c->hs_done && !c->send_closed && atomic_load(&c->error) == 0;
}

size_t tlsq__out_len(struct tlsq_conn *c)
{
	return evbuffer_get_length(c->out);
}

static void park(struct tlsq_conn *c, _Atomic int *flag, int on)
{
	if (atomic_load_explicit(flag, memory_order_relaxed) == on)
		return;
	if (on)
		atomic_store_explicit(&c->parked_since_ms, tlsq__now_ms(), memory_order_relaxed);
	atomic_store_explicit(flag, on, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* Socket                                                                    */
/* ------------------------------------------------------------------------ */

/* A read that found nothing leaves the space it reserved: an empty chain
 * of cipher_buffer rounded up to a power of two (128 KiB by default) on
 * every idle connection (issue 18: 25.5 instead of 19.6 KiB resident per
 * idle connection in W6). libevent frees a buffer's chains only when a
 * drain empties it, and evbuffer_drain(b, 0) on an empty buffer does
 * nothing: so one byte in and out. Only on this path (a read that got
 * nothing); a drained busy connection frees its chains in tls_recv_cb. */
static void in_release_if_empty(struct tlsq_conn *c)
{
	static const char z;
	if (evbuffer_get_length(c->in) == 0 && evbuffer_add(c->in, &z, 1) == 0)
		evbuffer_drain(c->in, 1);
}

/* Reads at most cipher_buffer bytes of ciphertext in. Returns bytes read.
 * After a read that found the socket empty (EAGAIN, or fewer bytes than
 * asked: a TCP read stops only when the receive queue is empty), the step's
 * speculative reads are skipped until the socket is reported readable
 * again (tlsq__conn_on_read): in a ping-pong they were three failed readv
 * per message and side. EV_READ is level-triggered, so nothing is missed. */
int tlsq__sock_read(struct tlsq_conn *c)
{
	size_t quota = c->engine->cfg.cipher_buffer, have = evbuffer_get_length(c->in);
	if (c->fd < 0 || c->eof || c->rst || have >= quota || c->read_drained)
		return 0;
	size_t want = quota - have;
	if (want > 256 * 1024)
		want = 256 * 1024;
	/* readv straight into the buffer's free space: evbuffer_read would ask
	 * FIONREAD first, one more system call per read. */
	struct evbuffer_iovec v[2];
	int nv = evbuffer_reserve_space(c->in, (ev_ssize_t)want, v, 2);
	if (nv <= 0) {
		tlsq__conn_fail(c, TLSQ_ENOMEM, "out of memory reading the socket");
		return 0;
	}
	struct iovec iov[2];
	size_t left = want;
	for (int i = 0; i < nv; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len < left ? v[i].iov_len : left;
		left -= iov[i].iov_len;
	}
	ssize_t n = readv(c->fd, iov, nv);
	if (n > 0) {
		size_t got = (size_t)n;
		int used = 0;
		for (; used < nv && got > 0; used++) {
			v[used].iov_len = got < iov[used].iov_len ? got : iov[used].iov_len;
			got -= v[used].iov_len;
		}
		evbuffer_commit_space(c->in, v, used);
		c->read_drained = (size_t)n < want;
		tlsq__count(&c->tls_bytes_received, (uint64_t)n);
		tlsq__count(&c->engine->stats.tls_bytes_received, (uint64_t)n);
		c->last_io_ms = tlsq__now_ms();
		return (int)n;
	}
	if (n == 0) {
		c->eof = 1;
	} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
		c->read_drained = 1;
	} else if (errno != EINTR) {
		c->sock_error = errno;
		c->rst = errno == ECONNRESET;
		if (!c->rst)
			c->eof = 1;
	}
	in_release_if_empty(c);
	return 0;
}

/* see iotask.h */
size_t tlsq__sock_send_direct(struct tlsq_conn *c, const void *p, size_t n)
{
	if (c->fd < 0 || c->rst || c->sock_error != 0 || c->send_errno != 0 || !c->connected)
		return 0;
	/* cipher_buffer bounds every socket write, this one too (with a 1-byte
	 * buffer the rest of the record takes the parked path, G3's test). */
	if (n > c->engine->cfg.cipher_buffer)
		n = c->engine->cfg.cipher_buffer;
	/* writev like every other socket write (sock_write, linger.c): one
	 * system call to watch and to fault-inject (tests/faults: a writev
	 * error switched on mid-stream went unseen by this path). */
	struct iovec v = {(void *)p, n};
	ssize_t w;
	do
		w = writev(c->fd, &v, 1);
	while (w < 0 && errno == EINTR);
	if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		/* Kept for sock_write to report: a second write would only say
		 * EPIPE (and raise SIGPIPE if it were not blocked). */
		c->send_errno = errno;
	}
	if (w <= 0)
		return 0;
	tlsq__count(&c->tls_bytes_sent, (uint64_t)w);
	tlsq__count(&c->engine->stats.tls_bytes_sent, (uint64_t)w);
	c->last_io_ms = tlsq__now_ms();
	return (size_t)w;
}

/* Writes ciphertext out, each call at most cipher_buffer bytes. */
int tlsq__sock_write(struct tlsq_conn *c)
{
	int moved = 0;
	size_t quota = c->engine->cfg.cipher_buffer;
	if (c->send_errno && c->fd >= 0) {
		/* the direct send met it (tlsq__sock_send_direct): the socket is
		 * unusable, as below */
		c->sock_error = c->send_errno;
		c->rst = 1;
		tlsq__sock_fail(c, c->sock_error, "while sending");
		return 0;
	}
	for (int i = 0; i < WRITE_CALLS && c->fd >= 0; i++) {
		size_t len = tlsq__out_len(c);
		if (len == 0)
			break;
		int n =
		    evbuffer_write_atmost(c->out, c->fd, (ev_ssize_t)(len < quota ? len : quota));
		if (n > 0) {
			moved = 1;
			tlsq__count(&c->tls_bytes_sent, (uint64_t)n);
			tlsq__count(&c->engine->stats.tls_bytes_sent, (uint64_t)n);
			c->last_io_ms = tlsq__now_ms();
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			break;
		/* The socket is unusable whatever the error: rst stops reading
		 * and makes the final close an abort. */
		c->sock_error = n < 0 ? errno : EPIPE;
		c->rst = 1;
		tlsq__sock_fail(c, c->sock_error, "while sending");
		return moved;
	}
	park(c, &c->send_parked, tlsq__out_len(c) > 0);
	return moved;
}

/* ------------------------------------------------------------------------ */
/* Receive side                                                              */
/* ------------------------------------------------------------------------ */

/* Hands rx_hold to the rx queue. 1 delivered (or dropped: nobody will read
 * it), 0 parked for lack of room. `force`: past the budget (engine stop:
 * nothing will run for the connection again). */
static int rx_deliver(struct tlsq_conn *c, int force)
{
	int was_empty = 0;
	/* Batched: tlsq__pump_rx wakes the consumers once at its end, or
	 * every RX_BATCH bytes (one futex wake per socket read, not per
	 * record, while the application keeps up). */
	int r = force ? tlsq__rxq_push_last_sp(&c->rxq, c->rx_hold, 0, &was_empty)
	              : tlsq__rxq_push_batch_sp(&c->rxq, c->rx_hold, 0, &was_empty);
	if (r == TLSQ_OK && tlsq__rxq_owed_bytes_sp(&c->rxq) >= RX_BATCH)
		tlsq__rxq_signal_sp(&c->rxq);
	if (r == TLSQ_EAGAIN) {
		park(c, &c->recv_parked, 1);
		return 0;
	}
	if (r == TLSQ_OK) {
		if (c->mode == TLSQ_MODE_MESSAGE) {
			tlsq__count(&c->msgs_received, 1);
			tlsq__count(&c->engine->stats.msgs_received, 1);
		}
		if (was_empty)
			tlsq__conn_pollfd_signal(c);
	} else {
		tlsq__buf_free(c->rx_hold); /* queue closed by the application */
	}
	c->rx_hold = NULL;
	park(c, &c->recv_parked, 0);
	return 1;
}

/* Ends the rx queue once nothing decrypted is held back (rx_hold, the
 * stream chunk being filled, undecoded message bytes): the data before the
 * end is then all queued. */
static void rx_maybe_end(struct tlsq_conn *c)
{
	tlsq__buf *b = c->rx_cur;
	if (!c->rx_end_pending || c->rx_hold != NULL || (b != NULL && b->rd < b->wr))
		return;
	c->rx_end_pending = 0;
	tlsq__queue_end(&c->rxq, c->rx_end_code);
	tlsq__conn_pollfd_signal(c);
	/* Nothing is read after the end: the receive buffers can go. */
	tlsq__buf_free(c->rx_cur);
	c->rx_cur = NULL;
	tlsq__frame_dec_fini(&c->dec);
}

/* see iotask.h */
void tlsq__conn_rx_end_if_idle(struct tlsq_conn *c)
{
	rx_maybe_end(c);
}

/* see iotask.h */
void tlsq__conn_rx_end_now(struct tlsq_conn *c)
{
	if (!c->rx_end_pending) {
		c->rx_end_pending = 1;
		c->rx_end_code = TLSQ_ECLOSED;
	}
	tlsq__pump_rx(c, TLSQ__RX_FINAL);
	/* Only if even the queue's slots are full: what is left is dropped. */
	tlsq__buf_free(c->rx_hold);
	c->rx_hold = NULL;
	tlsq__buf_free(c->rx_cur);
	c->rx_cur = NULL;
	park(c, &c->recv_parked, 0);
	rx_maybe_end(c);
}

static void rx_got_close_notify(struct tlsq_conn *c)
{
	c->recv_closed = 1;
	if (c->mode == TLSQ_MODE_MESSAGE && tlsq__frame_dec_partial(&c->dec)) {
		/* A protocol violation like any other: the sticky error, its
		 * reason, and the complete messages before it delivered first. */
		tlsq__conn_fail(c, TLSQ_EPROTO, "peer closed in the middle of a message");
		return;
	}
	c->rx_end_pending = 1;
	/* A clean end: recv returns 0, the message calls TLSQ_ECLOSED (data.c).
	 * A negative end code always means a failure (tlsq__conn_fail). */
	c->rx_end_code = 0;
	/* state.c turns recv_closed into RECV_CLOSED / CLOSING. */
}

/* One decrypt into rx_cur (stream) or the scratch (messages). Returns > 0
 * bytes, 0 nothing available, < 0 the connection ended or failed. */
static int rx_read(struct tlsq_conn *c)
{
	if (c->rx_cur == NULL && (c->rx_cur = tlsq__buf_alloc(RX_CHUNK)) == NULL) {
		tlsq__conn_fail(c, TLSQ_ENOMEM, "out of memory receiving");
		return -1;
	}
	tlsq__buf *b = c->rx_cur;
	if (c->mode == TLSQ_MODE_MESSAGE && b->rd == b->wr)
		b->rd = b->wr = 0;
	int room = (int)tlsq__buf_room(b);
	int n = tlsq__tls_read(c, b->data + b->wr, room);
	if (n > 0) { /* first: a storm found by this read ends after its data */
		b->wr += (uint32_t)n;
		tlsq__count(&c->bytes_received, (uint64_t)n);
		tlsq__count(&c->engine->stats.bytes_received, (uint64_t)n);
		tlsq__count(&c->records_received, 1);
	}
	if (c->ku_storm) {
		tlsq__conn_fail(c, TLSQ_ETLS,
		                "peer sent more than %u KeyUpdates in one second (limit)",
		                c->engine->cfg.max_key_updates_per_s);
		return -1;
	}
	if (n > 0)
		return n;
	if (n == TLSQ__TLS_EOF) {
		rx_got_close_notify(c);
		return -1;
	}
	return n < 0 ? -1 : 0;
}

/* Feeds the scratch into the frame decoder: 1 a message is now held. */
static int rx_decode(struct tlsq_conn *c)
{
	tlsq__buf *b = c->rx_cur;
	while (b && b->rd < b->wr) {
		size_t used = 0;
		tlsq__buf *done = NULL;
		int r = tlsq__frame_dec_feed(&c->dec, b->data + b->rd, b->wr - b->rd, &used, &done);
		b->rd += (uint32_t)used;
		if (r == TLSQ_EMSGSIZE) {
			/* A header of printable text is a stream-mode peer's data. */
			const unsigned char *h = c->dec.hdr;
			int text = 1;
			for (unsigned i = 0; i < TLSQ__FRAME_HDR; i++)
				text &= h[i] >= 0x20 && h[i] < 0x7f;
			tlsq__conn_fail(
			    c, TLSQ_EMSGSIZE,
			    "peer announced a message of %u bytes; the maximum is %zu%s%.*s%s",
			    (unsigned)tlsq__frame_hdr_get(h), c->engine->cfg.max_message,
			    text ? " (the header is the text '" : "",
			    text ? (int)TLSQ__FRAME_HDR : 0, (const char *)h,
			    text ? "': a stream-mode peer? message mode puts a 4-byte "
			           "big-endian length before each message)"
			         : "");
			return -1;
		}
		if (r != TLSQ_OK) {
			tlsq__conn_fail(c, TLSQ_ENOMEM, "out of memory receiving a message");
			return -1;
		}
		if (done) {
			c->rx_hold = done;
			return 1;
		}
	}
	return 0;
}

/*
 * Moves decrypted data to the rx queue, and decrypts more (TLSQ__RX_READ) while
 * the connection has not ended. Whatever ends the connection (the
 * peer's close_notify, a FIN, a reset, an alert, a failure, a local close),
 * everything decrypted before it is handed over first: the partly filled
 * stream chunk and, in message mode, every complete message still in the
 * scratch. Only then is the queue ended (rx_maybe_end). After the end the
 * IO task keeps calling this with TLSQ__RX_HANDOVER (conn_step's `end:`), as
 * consumers make room, until nothing is held back. Returns 1 on progress.
 */
int tlsq__pump_rx(struct tlsq_conn *c, int how)
{
	int progress = 0;
	for (;;) {
		if (c->rx_hold) {
			if (!rx_deliver(c, how == TLSQ__RX_FINAL))
				break;
			progress = 1;
		}
		if (c->mode == TLSQ_MODE_MESSAGE && c->rx_cur) {
			int d = rx_decode(c);
			if (d < 0) {           /* the framing failed: the rest is no message */
				if (c->rx_cur) /* (the failure may have ended rx already) */
					c->rx_cur->rd = c->rx_cur->wr;
				break;
			}
			if (d > 0)
				continue;
		}
		if (how == TLSQ__RX_READ && !c->recv_closed && atomic_load(&c->error) == 0) {
			int n = rx_read(c);
			if (n > 0) {
				progress = 1;
				if (c->mode == TLSQ_MODE_STREAM && tlsq__buf_room(c->rx_cur) == 0) {
					c->rx_hold = c->rx_cur;
					c->rx_cur = NULL;
				}
				continue;
			}
		}
		if (c->mode == TLSQ_MODE_STREAM && c->rx_cur && tlsq__buf_len(c->rx_cur) > 0) {
			/* Nothing more decrypted now, or the end: hand over what we
			 * have at once (coalesced small records, no added delay). */
			c->rx_hold = c->rx_cur;
			c->rx_cur = NULL;
			continue;
		}
		break;
	}
	/* An idle connection keeps no receive chunk (16 KiB): the pool has it
	 * back until the next record (issue 18). */
	if (c->rx_cur && c->rx_cur->rd == c->rx_cur->wr) {
		tlsq__buf_free(c->rx_cur);
		c->rx_cur = NULL;
	}
	tlsq__rxq_signal_sp(&c->rxq); /* what rx_deliver batched */
	rx_maybe_end(c);
	return progress;
}

/* ------------------------------------------------------------------------ */
/* Send side                                                                 */
/* ------------------------------------------------------------------------ */

static void tx_entry_done(struct tlsq_conn *c, tlsq__buf *b)
{
	if (c->mode == TLSQ_MODE_MESSAGE) {
		tlsq__count(&c->msgs_sent, 1);
		tlsq__count(&c->engine->stats.msgs_sent, 1);
	}
	tlsq__buf_free(b);
}

static int tx_write(struct tlsq_conn *c, const void *p, size_t n)
{
	if (tlsq__tls_write(c, p, (int)n) < 0)
		return -1;
	tlsq__count(&c->bytes_sent, n);
	tlsq__count(&c->engine->stats.bytes_sent, n);
	c->bytes_since_key_update += n;
	return 0;
}

/* Encrypts one record's worth of queued plaintext. 1 progress, 0 none. */
static int tx_one_record(struct tlsq_conn *c)
{
	if (c->tx_cur == NULL && (c->tx_cur = tlsq__txq_pop_sc(&c->txq)) == NULL)
		return 0;
	size_t rem = tlsq__buf_len(c->tx_cur);
	if (rem >= MAX_RECORD) { /* large: straight from the entry, no copy */
		if (tx_write(c, c->tx_cur->data + c->tx_cur->rd, MAX_RECORD) < 0)
			return 0;
		c->tx_cur->rd += MAX_RECORD;
		uint32_t done = 0;
		if (tlsq__buf_len(c->tx_cur) == 0) {
			tx_entry_done(c, c->tx_cur);
			c->tx_cur = NULL;
			done = 1;
		}
		tlsq__txq_release_sc(&c->txq, MAX_RECORD, done);
		return 1;
	}
	/* Small entries: gather as many as fit into one full record. */
	if (c->staging == NULL && (c->staging = tlsq__buf_alloc(MAX_RECORD)) == NULL) {
		tlsq__conn_fail(c, TLSQ_ENOMEM, "out of memory sending");
		return 0;
	}
	tlsq__buf *s = c->staging;
	s->rd = s->wr = 0;
	uint32_t entries = 0;
	while (c->tx_cur && s->wr < MAX_RECORD) {
		size_t take = tlsq__buf_len(c->tx_cur);
		if (take > MAX_RECORD - s->wr)
			take = MAX_RECORD - s->wr;
		memcpy(s->data + s->wr, c->tx_cur->data + c->tx_cur->rd, take);
		s->wr += (uint32_t)take;
		c->tx_cur->rd += (uint32_t)take;
		if (tlsq__buf_len(c->tx_cur) == 0) {
			tx_entry_done(c, c->tx_cur);
			entries++;
			c->tx_cur = tlsq__txq_pop_sc(&c->txq);
		}
	}
	int rc = tx_write(c, s->data, s->wr);
	tlsq__txq_release_sc(&c->txq, s->wr, entries);
	return rc == 0;
}

int tlsq__pump_tx(struct tlsq_conn *c)
{
	int progress = 0;
	size_t hw = c->engine->cfg.cipher_buffer;
	/* Records mostly go straight to the socket (the send callback), so the
	 * out buffer alone no longer bounds a round: at most hw plaintext bytes,
	 * then the step's other jobs (and other connections) get their turn. */
	uint64_t start = tlsq__counter_get(&c->bytes_sent);
	while (tlsq__out_len(c) < hw && atomic_load(&c->error) == 0 &&
	       tlsq__counter_get(&c->bytes_sent) - start < hw) {
		if (!tx_one_record(c))
			break;
		progress = 1;
	}
	if (c->tx_cur == NULL && c->staging != NULL && tlsq__queue_bytes(&c->txq) == 0) {
		tlsq__buf_free(c->staging); /* idle connections keep no 16 KiB buffer */
		c->staging = NULL;
	}
	return progress;
}

/* ------------------------------------------------------------------------ */
/* Control: KeyUpdate, close_notify                                          */
/* ------------------------------------------------------------------------ */

int tlsq__pump_control(struct tlsq_conn *c)
{
	const tlsq_engine_config *cfg = &c->engine->cfg;
	int progress = 0;
	if (c->tls13 && tlsq__conn_can_send(c)) {
		uint64_t now = 0;
		int due = c->key_update_wanted;
		if (cfg->key_update_bytes && c->bytes_since_key_update >= cfg->key_update_bytes)
			due = 1;
		if (cfg->key_update_interval_ms && (now = tlsq__now_ms()) >= c->next_key_update_ms)
			due = 1;
		if (due) {
			if (tlsq__tls_key_update(c) < 0)
				return 0;
			c->key_update_wanted = 0;
			c->bytes_since_key_update = 0;
			if (cfg->key_update_interval_ms)
				c->next_key_update_ms = (now ? now : tlsq__now_ms()) +
				                        (uint64_t)cfg->key_update_interval_ms;
			atomic_fetch_add(&c->key_updates_sent, 1);
			tlsq__count(&c->engine->stats.key_updates_sent, 1);
			progress = 1;
		}
	}
	if (c->shutdown_wanted && !c->send_closed && c->tx_cur == NULL &&
	    tlsq__queue_entries(&c->txq) == 0 && atomic_load(&c->error) == 0) {
		if (tlsq__tls_shutdown(c) < 0)
			return progress;
		c->send_closed = 1; /* state.c: SEND_CLOSED / CLOSING */
		progress = 1;
	}
	return progress;
}
