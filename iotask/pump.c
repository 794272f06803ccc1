/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pump.c - the IO task's state machine: one place decides the next step.
 *
 * conn_step() runs on the connection's IO thread after every event (socket
 * readable or writable, a notification from an application thread, a
 * timer). From the state and what is possible it:
 *
 *   HANDSHAKING      drive the handshake; on success publish and go OPEN.
 *   OPEN and after   1. rx: decrypt while the rx queue has room (G2: reading
 *                       never waits for the send side);
 *                    2. tx: encrypt queued plaintext while the ciphertext-out
 *                       buffer is below cipher_buffer (coalescing small
 *                       entries into full records, rule 6);
 *                    3. control: KeyUpdate, close_notify;
 *                    4. flush ciphertext to the socket;
 *                    repeat while anything moved.
 *
 * Then it arms exactly the events that can make progress: EV_READ while the
 * ciphertext-in buffer is below cipher_buffer and the out buffer below
 * cipher_buffer + control_reserve (the hard cap that bounds what a peer can
 * make us buffer, G4), EV_WRITE while ciphertext is waiting.
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

#define MAX_RECORD 16384
#define RX_CHUNK (MAX_RECORD + 256)
#define RECORD_SLACK (MAX_RECORD + 256) /* one record and its overhead */
#define STEP_ROUNDS 256 /* fairness: yield the loop after this many rounds */
#define WRITE_CALLS 64  /* socket writes per step (1-byte buffers would spin) */

static size_t out_len(struct tlsq_conn *c) { return evbuffer_get_length(c->out); }

static int sending_state(int st)
{
	return st == TLSQ_STATE_OPEN || st == TLSQ_STATE_RECV_CLOSED;
}

static void set_state(struct tlsq_conn *c, int st)
{
	/* release: the published strings and counters written before are
	 * visible to whoever acquires the new state. */
	atomic_store_explicit(&c->state, st, memory_order_release);
	tlsq__ec_inc(&c->state_ec);
}

static void set_phase(struct tlsq_conn *c, int ph)
{
	atomic_store_explicit(&c->close_phase, ph, memory_order_release);
	tlsq__ec_inc(&c->state_ec);
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

/* Reads at most cipher_buffer bytes of ciphertext in. Returns bytes read.
 * After a read that found the socket empty (EAGAIN, or fewer bytes than
 * asked: a TCP read stops only when the receive queue is empty), the step's
 * speculative reads are skipped until the socket is reported readable
 * again (tlsq__conn_on_read): in a ping-pong they were three failed readv
 * per message and side. EV_READ is level-triggered, so nothing is missed. */
static int sock_read(struct tlsq_conn *c)
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
	return 0;
}

/* see iotask.h */
size_t tlsq__sock_send_direct(struct tlsq_conn *c, const void *p, size_t n)
{
	if (c->fd < 0 || c->rst || c->sock_error != 0 ||
	    atomic_load(&c->state) == TLSQ_STATE_CONNECTING)
		return 0;
	/* cipher_buffer bounds every socket write, this one too (with a 1-byte
	 * buffer the rest of the record takes the parked path, G3's test). */
	if (n > c->engine->cfg.cipher_buffer)
		n = c->engine->cfg.cipher_buffer;
	ssize_t w;
	do
		w = write(c->fd, p, n);
	while (w < 0 && errno == EINTR);
	if (w <= 0)
		return 0; /* EAGAIN, or an error that sock_write meets again and reports */
	tlsq__count(&c->tls_bytes_sent, (uint64_t)w);
	tlsq__count(&c->engine->stats.tls_bytes_sent, (uint64_t)w);
	c->last_io_ms = tlsq__now_ms();
	return (size_t)w;
}

/* Writes ciphertext out, each call at most cipher_buffer bytes. */
static int sock_write(struct tlsq_conn *c)
{
	int moved = 0;
	size_t quota = c->engine->cfg.cipher_buffer;
	for (int i = 0; i < WRITE_CALLS && c->fd >= 0; i++) {
		size_t len = out_len(c);
		if (len == 0)
			break;
		int n = evbuffer_write_atmost(c->out, c->fd, (ev_ssize_t)(len < quota ? len : quota));
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
	park(c, &c->send_parked, out_len(c) > 0);
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
	int r = force ? tlsq__rxq_push_last_sp(&c->rxq, c->rx_hold, 0, &was_empty)
	              : tlsq__rxq_push_sp(&c->rxq, c->rx_hold, 0, &was_empty);
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

/* What pump_rx may do: decrypt more, only hand over what was decrypted, or
 * hand it all over past the budget (engine stop). */
enum { RX_READ, RX_HANDOVER, RX_FINAL };
static int pump_rx(struct tlsq_conn *c, int how);

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
	pump_rx(c, RX_FINAL);
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
	if (atomic_load(&c->close_phase) < TLSQ_CLOSE_PEER_NOTIFIED &&
	    atomic_load(&c->close_phase) != TLSQ_CLOSE_NONE)
		set_phase(c, TLSQ_CLOSE_PEER_NOTIFIED);
	int st = atomic_load(&c->state);
	if (st == TLSQ_STATE_OPEN)
		set_state(c, TLSQ_STATE_RECV_CLOSED);
	else if (st == TLSQ_STATE_SEND_CLOSED)
		set_state(c, TLSQ_STATE_CLOSING);
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
 * Moves decrypted data to the rx queue, and decrypts more (RX_READ) while
 * the connection has not ended. Whatever ends the connection (the
 * peer's close_notify, a FIN, a reset, an alert, a failure, a local close),
 * everything decrypted before it is handed over first: the partly filled
 * stream chunk and, in message mode, every complete message still in the
 * scratch. Only then is the queue ended (rx_maybe_end). After the end the
 * IO task keeps calling this with RX_HANDOVER (conn_step's `end:`), as
 * consumers make room, until nothing is held back. Returns 1 on progress.
 */
static int pump_rx(struct tlsq_conn *c, int how)
{
	int progress = 0;
	for (;;) {
		if (c->rx_hold) {
			if (!rx_deliver(c, how == RX_FINAL))
				break;
			progress = 1;
		}
		if (c->mode == TLSQ_MODE_MESSAGE && c->rx_cur) {
			int d = rx_decode(c);
			if (d < 0) { /* the framing failed: the rest is no message */
				if (c->rx_cur) /* (the failure may have ended rx already) */
					c->rx_cur->rd = c->rx_cur->wr;
				break;
			}
			if (d > 0)
				continue;
		}
		if (how == RX_READ && !c->recv_closed && atomic_load(&c->error) == 0) {
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

static int pump_tx(struct tlsq_conn *c)
{
	int progress = 0;
	size_t hw = c->engine->cfg.cipher_buffer;
	/* Records mostly go straight to the socket (the send callback), so the
	 * out buffer alone no longer bounds a round: at most hw plaintext bytes,
	 * then the step's other jobs (and other connections) get their turn. */
	uint64_t start = tlsq__counter_get(&c->bytes_sent);
	while (out_len(c) < hw && atomic_load(&c->error) == 0 &&
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

static int pump_control(struct tlsq_conn *c)
{
	const tlsq_engine_config *cfg = &c->engine->cfg;
	int progress = 0;
	if (c->tls13 && sending_state(atomic_load(&c->state))) {
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
				c->next_key_update_ms =
				    (now ? now : tlsq__now_ms()) + (uint64_t)cfg->key_update_interval_ms;
			atomic_fetch_add(&c->key_updates_sent, 1);
			tlsq__count(&c->engine->stats.key_updates_sent, 1);
			progress = 1;
		}
	}
	if (c->shutdown_wanted && !c->send_closed && c->tx_cur == NULL &&
	    tlsq__queue_entries(&c->txq) == 0 && atomic_load(&c->error) == 0) {
		if (tlsq__tls_shutdown(c) < 0)
			return progress;
		c->send_closed = 1;
		if (atomic_load(&c->close_phase) == TLSQ_CLOSE_NONE && c->closing)
			set_phase(c, TLSQ_CLOSE_FLUSHING);
		set_state(c, c->recv_closed ? TLSQ_STATE_CLOSING : TLSQ_STATE_SEND_CLOSED);
		progress = 1;
	}
	return progress;
}

/* ------------------------------------------------------------------------ */
/* Events and deadlines                                                      */
/* ------------------------------------------------------------------------ */

static void arm_events(struct tlsq_conn *c)
{
	const tlsq_engine_config *cfg = &c->engine->cfg;
	int st = atomic_load(&c->state);
	/* pump_tx may overshoot cipher_buffer by one record; the control
	 * reserve sits above that, so a full data path never stops a read. */
	int want_read = c->fd >= 0 && !c->eof && !c->rst && st != TLSQ_STATE_CONNECTING &&
	                evbuffer_get_length(c->in) < cfg->cipher_buffer &&
	                out_len(c) < cfg->cipher_buffer + RECORD_SLACK + cfg->control_reserve;
	int want_write = c->fd >= 0 && (st == TLSQ_STATE_CONNECTING || out_len(c) > 0);
	if (want_read != c->reading) {
		if (want_read)
			event_add(c->ev_read, NULL);
		else
			event_del(c->ev_read);
		c->reading = want_read;
	}
	if (want_write != c->writing) {
		if (want_write)
			event_add(c->ev_write, NULL);
		else
			event_del(c->ev_write);
		c->writing = want_write;
	}
}

static uint64_t next_deadline(struct tlsq_conn *c)
{
	const tlsq_engine_config *cfg = &c->engine->cfg;
	uint64_t d = UINT64_MAX;
	int st = atomic_load(&c->state);
#define EARLIER(x) do { if ((x) && (x) < d) d = (x); } while (0)
	if (st == TLSQ_STATE_CONNECTING)
		EARLIER(c->connect_deadline_ms);
	if (st == TLSQ_STATE_HANDSHAKING)
		EARLIER(c->handshake_deadline_ms);
	EARLIER(c->close_deadline_ms);
	if (cfg->idle_timeout_ms > 0 && c->fd >= 0)
		EARLIER(c->last_io_ms + (uint64_t)cfg->idle_timeout_ms);
	if (c->tls13 && cfg->key_update_interval_ms && sending_state(st))
		EARLIER(c->next_key_update_ms);
#undef EARLIER
	return d;
}

static void arm_timer(struct tlsq_conn *c)
{
	uint64_t d = next_deadline(c);
	if (d == UINT64_MAX || c->fd < 0)
		return;
	/* Re-arm only when the deadline moved earlier; the timer callback
	 * re-checks, so a late (idle) deadline costs one spurious wake. */
	if (c->timer_armed_ms && (uint64_t)c->timer_armed_ms <= d)
		return;
	uint64_t now = tlsq__now_ms();
	uint64_t ms = d > now ? d - now : 0;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	evtimer_add(c->ev_timer, &tv);
	c->timer_armed_ms = d;
}

/* Timer fired: enforce whichever deadline passed. */
void tlsq__conn_timer(struct tlsq_conn *c)
{
	const tlsq_engine_config *cfg = &c->engine->cfg;
	uint64_t now = tlsq__now_ms();
	int st = atomic_load(&c->state);
	c->timer_armed_ms = 0;
	if (c->fd < 0)
		return;
	if (st == TLSQ_STATE_CONNECTING && c->connect_deadline_ms && now >= c->connect_deadline_ms)
		tlsq__conn_fail(c, TLSQ_ETIMEDOUT, "connect timed out after %d ms",
		                cfg->connect_timeout_ms);
	else if (st == TLSQ_STATE_HANDSHAKING && c->handshake_deadline_ms &&
	         now >= c->handshake_deadline_ms)
		tlsq__conn_fail(c, TLSQ_ETIMEDOUT,
		                "TLS handshake timed out after %d ms (peer silent or too slow)",
		                cfg->handshake_timeout_ms);
	else if (c->close_deadline_ms && now >= c->close_deadline_ms)
		tlsq__conn_fail(c, TLSQ_ETIMEDOUT,
		                "close timed out waiting for the peer's close_notify");
	else if (cfg->idle_timeout_ms > 0 && now >= c->last_io_ms + (uint64_t)cfg->idle_timeout_ms)
		tlsq__conn_fail(c, TLSQ_ETIMEDOUT, "idle timeout: no bytes either way for %d ms",
		                cfg->idle_timeout_ms);
	tlsq__conn_step(c);
}

/* ------------------------------------------------------------------------ */
/* The step                                                                  */
/* ------------------------------------------------------------------------ */

static void on_open(struct tlsq_conn *c)
{
	tlsq__tls_publish(c);
	c->handshake_deadline_ms = 0;
	if (c->engine->cfg.key_update_interval_ms)
		c->next_key_update_ms = tlsq__now_ms() + (uint64_t)c->engine->cfg.key_update_interval_ms;
	tlsq__count(&c->engine->stats.handshakes_ok, 1);
	if (c->resumed)
		tlsq__count(&c->engine->stats.resumed, 1);
	free(c->host);
	c->host = NULL;
	atomic_store_explicit(&c->opened, 1, memory_order_release);
	set_state(c, TLSQ_STATE_OPEN);
	if (c->listener) {
		struct tlsq_listener *l = c->listener;
		c->listener = NULL;
		tlsq__listener_deliver(l, c);
		tlsq__listener_unref(l);
	}
}

static void step_open(struct tlsq_conn *c)
{
	for (int round = 0;; round++) {
		if (round == STEP_ROUNDS) {
			/* Yield to the other connections of this thread, but come
			 * back: what was read may not have been processed yet, and no
			 * socket event would say so. Its own event: arm_events may
			 * event_del(ev_write), which would drop an activation. A zero
			 * timeout, not event_active: libevent runs an event activated
			 * from a callback in the same pass, before it polls epoll
			 * again, so a connection that wrote something every round
			 * never saw its socket readable (read_drained stayed set:
			 * the peer's data went unread while we sent) nor let the
			 * thread's other events run. */
			static const struct timeval now = {0, 0};
			event_add(c->ev_cont, &now);
			break;
		}
		size_t in_before = evbuffer_get_length(c->in);
		int progress = 0;
		progress |= pump_rx(c, RX_READ);
		if (atomic_load(&c->error) != 0)
			break;
		if (sending_state(atomic_load(&c->state)))
			progress |= pump_tx(c);
		progress |= pump_control(c);
		progress |= sock_write(c);
		if (atomic_load(&c->error) != 0)
			break;
		/* Ciphertext consumed counts too: with tiny buffers wolfSSL eats a
		 * record a few bytes at a time before it yields any plaintext. */
		if (evbuffer_get_length(c->in) < in_before)
			progress = 1;
		int ended = c->eof || c->rst;
		if (sock_read(c) > 0)
			progress = 1;
		/* An end or an error found just now must reach wolfSSL in one
		 * more round: no event will tell us again (arm_events stops
		 * reading at the end). Without this a peer that finished the
		 * handshake and sent its FIN at once went unnoticed. */
		if (!ended && (c->eof || c->rst))
			progress = 1;
		if (!progress)
			break;
	}
}

static void update_idle_and_phase(struct tlsq_conn *c)
{
	int empty = out_len(c) == 0;
	if (c->send_closed && empty && !c->notify_flushed) {
		c->notify_flushed = 1;
		if (atomic_load(&c->close_phase) < TLSQ_CLOSE_NOTIFY_SENT)
			set_phase(c, TLSQ_CLOSE_NOTIFY_SENT);
	}
	if (c->recv_closed && c->send_closed &&
	    atomic_load(&c->close_phase) != TLSQ_CLOSE_NONE &&
	    atomic_load(&c->close_phase) < TLSQ_CLOSE_PEER_NOTIFIED)
		set_phase(c, TLSQ_CLOSE_PEER_NOTIFIED);
	int idle = empty && c->tx_cur == NULL && tlsq__queue_bytes(&c->txq) == 0;
	if (idle && !atomic_load_explicit(&c->tx_idle, memory_order_relaxed)) {
		/* release: a flusher that sees tx_idle sees our queue state. */
		atomic_store_explicit(&c->tx_idle, 1, memory_order_release);
		tlsq__ec_inc(&c->state_ec);
	}
}

void tlsq__conn_step(struct tlsq_conn *c)
{
	if (c->finished)
		goto end;
	int st = atomic_load(&c->state);
	if (st == TLSQ_STATE_HANDSHAKING && atomic_load(&c->error) == 0) {
		int r = tlsq__tls_handshake(c);
		if (r > 0)
			on_open(c);
		sock_write(c);
		st = atomic_load(&c->state);
	}
	if (st >= TLSQ_STATE_OPEN && st < TLSQ_STATE_CLOSED && atomic_load(&c->error) == 0)
		step_open(c);
	if (atomic_load(&c->error) == 0) {
		update_idle_and_phase(c);
		/* Both close_notify exchanged and flushed: a clean end. */
		if (c->send_closed && c->recv_closed && out_len(c) == 0) {
			set_phase(c, TLSQ_CLOSE_DONE);
			set_state(c, TLSQ_STATE_CLOSED);
		}
	}
	st = atomic_load(&c->state);
	if (st == TLSQ_STATE_CLOSED || st == TLSQ_STATE_FAILED) {
		tlsq__conn_finish(c);
		goto end;
	}
	arm_events(c);
	arm_timer(c);
	return;
end:
	/* Finished: only the rx hand-over can still be pending. */
	pump_rx(c, RX_HANDOVER);
}

/* Socket readable / writable. */
void tlsq__conn_on_read(struct tlsq_conn *c)
{
	c->read_drained = 0;
	sock_read(c);
	tlsq__conn_step(c);
}

void tlsq__conn_on_write(struct tlsq_conn *c)
{
	if (atomic_load(&c->state) == TLSQ_STATE_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			tlsq__conn_fail(c, err == ECONNREFUSED ? TLSQ_ECONNREFUSED : TLSQ_EIO,
			                "connect to %s failed: %s", c->peer, strerror(err));
			tlsq__conn_step(c);
			return;
		}
		if (tlsq__tls_ssl_new(c, c->host) < 0) {
			tlsq__conn_step(c);
			return;
		}
		c->handshake_deadline_ms =
		    c->engine->cfg.handshake_timeout_ms > 0
		        ? tlsq__now_ms() + (uint64_t)c->engine->cfg.handshake_timeout_ms
		        : 0;
		set_state(c, TLSQ_STATE_HANDSHAKING);
		c->timer_armed_ms = 0; /* deadline changed */
	} else {
		sock_write(c);
	}
	tlsq__conn_step(c);
}
