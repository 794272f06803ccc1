/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * state.c - the connection's state machine: the one place that decides a
 * connection's state and close phase, and the step that drives it.
 *
 * What happened is recorded as facts on the connection, each set once
 * (pump.c, conn.c, tls.c): `connected`, `hs_done`, `recv_closed` (the
 * peer's close_notify), `send_closed` (ours built), `notify_flushed` (ours
 * reached the kernel), `closing` (tlsq_close or tlsq_conn_free), `error`.
 * tlsq__conn_advance() derives the state from them (decide_state) and
 * publishes every change, running each state's entry actions, so the
 * published state is never set anywhere else:
 *
 *                 connected            hs_done
 *   CONNECTING ------------> HANDSHAKING ------> OPEN
 *                                                 |  recv_closed    send_closed
 *                                                 +-> RECV_CLOSED --+
 *                                                 |                 +-> CLOSING
 *                                                 +-> SEND_CLOSED --+    |
 *                                                                        | out empty
 *   any state except CLOSED --- error ---> FAILED               CLOSED <-+
 *
 * A server's connection starts in HANDSHAKING (net.c), a client's in
 * CONNECTING. The close phase follows the same facts (decide_phase):
 * NONE -> FLUSHING (closing) -> NOTIFY_SENT (notify_flushed) ->
 * PEER_NOTIFIED (recv_closed) -> DONE (CLOSED) or ABORTED (FAILED).
 *
 * tlsq__conn_step() runs after every event (socket readable or writable, a
 * request from an application thread, a timer, a continuation). It drives
 * the handshake while HANDSHAKING, and while OPEN..CLOSING repeats, as
 * long as anything moves: 1. rx: decrypt while the rx queue has room (G2:
 * reading never waits for the send side); 2. tx: encrypt queued plaintext;
 * 3. control: KeyUpdate, close_notify; 4. flush ciphertext to the socket.
 * Then it advances the state, finishes a connection whose state is final,
 * and arms exactly the events that can make progress: EV_READ while the
 * ciphertext-in buffer is below cipher_buffer and the out buffer below
 * cipher_buffer + control_reserve (the hard cap that bounds what a peer
 * can make us buffer, G4), EV_WRITE while ciphertext is waiting.
 *
 * IO thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "iotask.h"

#define MAX_RECORD   16384
#define RECORD_SLACK (MAX_RECORD + 256) /* one record and its overhead */
#define STEP_ROUNDS  256                /* fairness: yield the loop after this many rounds */

/* ------------------------------------------------------------------------ */
/* The decision                                                              */
/* ------------------------------------------------------------------------ */

static int final_state(int st)
{
	return st == TLSQ_STATE_CLOSED || st == TLSQ_STATE_FAILED;
}

static int decide_state(struct tlsq_conn *c, int cur)
{
	if (final_state(cur))
		return cur;
	if (atomic_load(&c->error) != 0)
		return TLSQ_STATE_FAILED;
	if (!c->connected)
		return TLSQ_STATE_CONNECTING;
	if (!c->hs_done)
		return TLSQ_STATE_HANDSHAKING;
	if (c->send_closed && c->recv_closed)
		return tlsq__out_len(c) == 0 ? TLSQ_STATE_CLOSED : TLSQ_STATE_CLOSING;
	if (c->send_closed)
		return TLSQ_STATE_SEND_CLOSED;
	if (c->recv_closed)
		return TLSQ_STATE_RECV_CLOSED;
	return TLSQ_STATE_OPEN;
}

static int decide_phase(struct tlsq_conn *c, int st, int cur)
{
	if (st == TLSQ_STATE_FAILED)
		return cur == TLSQ_CLOSE_DONE ? TLSQ_CLOSE_DONE : TLSQ_CLOSE_ABORTED;
	if (st == TLSQ_STATE_CLOSED)
		return TLSQ_CLOSE_DONE;
	/* Without tlsq_close a half-close still reports its progress. */
	if (c->recv_closed && (c->closing || c->notify_flushed))
		return TLSQ_CLOSE_PEER_NOTIFIED;
	if (c->notify_flushed)
		return TLSQ_CLOSE_NOTIFY_SENT;
	return c->closing ? TLSQ_CLOSE_FLUSHING : TLSQ_CLOSE_NONE;
}

/* Entry of HANDSHAKING: the TLS object and the handshake's deadline. */
int tlsq__conn_begin_handshake(struct tlsq_conn *c)
{
	int ms = c->engine->cfg.handshake_timeout_ms;
	c->handshake_deadline_ms = ms > 0 ? tlsq__now_ms() + (uint64_t)ms : 0;
	c->timer_armed_ms = 0; /* the deadline changed */
	if (c->ssl == NULL && tlsq__tls_ssl_new(c, c->host) < 0)
		return -1;
	return 0;
}

/* Entry of OPEN (or of a later state reached in the same step), before the
 * state is published: what a reader of the new state may look at. */
static void enter_open(struct tlsq_conn *c)
{
	tlsq__tls_publish(c);
	c->handshake_deadline_ms = 0;
	if (c->engine->cfg.key_update_interval_ms)
		c->next_key_update_ms =
		    tlsq__now_ms() + (uint64_t)c->engine->cfg.key_update_interval_ms;
	tlsq__count(&c->engine->stats.handshakes_ok, 1);
	if (c->resumed)
		tlsq__count(&c->engine->stats.resumed, 1);
	free(c->host);
	c->host = NULL;
	atomic_store_explicit(&c->opened, 1, memory_order_release);
}

/* After OPEN is published: a server's connection goes to tlsq_accept. */
static void opened(struct tlsq_conn *c)
{
	if (c->listener) {
		struct tlsq_listener *l = c->listener;
		c->listener = NULL;
		tlsq__listener_deliver(l, c);
		tlsq__listener_unref(l);
	}
}

/* see iotask.h */
void tlsq__conn_advance(struct tlsq_conn *c)
{
	for (;;) {
		int cur = atomic_load_explicit(&c->state, memory_order_relaxed);
		int next = decide_state(c, cur);
		if (next == cur)
			break;
		/* An entry action that fails records the error (conn_fail, which
		 * advances to FAILED itself): decide again. */
		if (cur == TLSQ_STATE_CONNECTING && next != TLSQ_STATE_FAILED &&
		    tlsq__conn_begin_handshake(c) < 0)
			continue;
		int to_open = cur == TLSQ_STATE_HANDSHAKING && next != TLSQ_STATE_FAILED;
		if (to_open)
			enter_open(c);
		int ph = atomic_load_explicit(&c->close_phase, memory_order_relaxed);
		int nph = decide_phase(c, next, ph);
		if (nph != ph)
			atomic_store_explicit(&c->close_phase, nph, memory_order_release);
		/* release: the published strings and counters written before
		 * are visible to whoever acquires the new state. */
		atomic_store_explicit(&c->state, next, memory_order_release);
		tlsq__ec_inc(&c->state_ec);
		if (to_open)
			opened(c);
	}
	int st = atomic_load_explicit(&c->state, memory_order_relaxed);
	int ph = atomic_load_explicit(&c->close_phase, memory_order_relaxed);
	int nph = decide_phase(c, st, ph);
	if (nph != ph) {
		atomic_store_explicit(&c->close_phase, nph, memory_order_release);
		tlsq__ec_inc(&c->state_ec);
	}
}

/* ------------------------------------------------------------------------ */
/* Events and deadlines                                                      */
/* ------------------------------------------------------------------------ */

/* < 0: out of memory for an event (the connection failed). */
static int arm_events(struct tlsq_conn *c)
{
	const tlsq_engine_config *cfg = &c->engine->cfg;
	/* pump_tx may overshoot cipher_buffer by one record; the control
	 * reserve sits above that, so a full data path never stops a read. */
	int want_read = c->fd >= 0 && !c->eof && !c->rst && c->connected &&
	                evbuffer_get_length(c->in) < cfg->cipher_buffer &&
	                tlsq__out_len(c) < cfg->cipher_buffer + RECORD_SLACK + cfg->control_reserve;
	int want_write = c->fd >= 0 && (!c->connected || tlsq__out_len(c) > 0);
	if (want_read != c->reading) {
		if (want_read)
			event_add(c->ev_read, NULL);
		else
			event_del(c->ev_read);
		c->reading = want_read;
	}
	if (want_write != c->writing) {
		if (want_write) {
			struct event *ev = tlsq__conn_event(c, TLSQ__EV_WRITE);
			if (ev == NULL) {
				tlsq__conn_fail(c, TLSQ_ENOMEM, "out of memory for a write event");
				return -1;
			}
			event_add(ev, NULL);
		} else {
			event_del(c->ev_write);
		}
		c->writing = want_write;
	}
	return 0;
}

static uint64_t next_deadline(struct tlsq_conn *c)
{
	const tlsq_engine_config *cfg = &c->engine->cfg;
	uint64_t d = UINT64_MAX;
	int st = atomic_load(&c->state);
#define EARLIER(x)                                                                                 \
	do {                                                                                       \
		if ((x) && (x) < d)                                                                \
			d = (x);                                                                   \
	} while (0)
	if (st == TLSQ_STATE_CONNECTING)
		EARLIER(c->connect_deadline_ms);
	if (st == TLSQ_STATE_HANDSHAKING)
		EARLIER(c->handshake_deadline_ms);
	EARLIER(c->close_deadline_ms);
	if (cfg->idle_timeout_ms > 0 && c->fd >= 0)
		EARLIER(c->last_io_ms + (uint64_t)cfg->idle_timeout_ms);
	if (c->tls13 && cfg->key_update_interval_ms && tlsq__conn_can_send(c))
		EARLIER(c->next_key_update_ms);
#undef EARLIER
	return d;
}

/* < 0: out of memory for the timer (the connection failed). */
static int arm_timer(struct tlsq_conn *c)
{
	uint64_t d = next_deadline(c);
	if (c->fd < 0)
		return 0;
	if (d == UINT64_MAX) {
		/* No deadline (an open connection without idle timeout or
		 * KeyUpdate interval): no timer kept either (issue 18). */
		if (c->ev_timer) {
			event_free(c->ev_timer);
			c->ev_timer = NULL;
			c->timer_armed_ms = 0;
		}
		return 0;
	}
	/* Re-arm only when the deadline moved earlier; the timer callback
	 * re-checks, so a late (idle) deadline costs one spurious wake. */
	if (c->timer_armed_ms && (uint64_t)c->timer_armed_ms <= d)
		return 0;
	struct event *ev = tlsq__conn_event(c, TLSQ__EV_TIMER);
	if (ev == NULL) {
		tlsq__conn_fail(c, TLSQ_ENOMEM, "out of memory for a timer");
		return -1;
	}
	uint64_t now = tlsq__now_ms();
	uint64_t ms = d > now ? d - now : 0;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	evtimer_add(ev, &tv);
	c->timer_armed_ms = d;
	return 0;
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
			struct event *ev = tlsq__conn_event(c, TLSQ__EV_CONT);
			if (ev == NULL)
				tlsq__conn_fail(c, TLSQ_ENOMEM,
				                "out of memory for a continue event");
			else
				event_add(ev, &now);
			break;
		}
		size_t in_before = evbuffer_get_length(c->in);
		int progress = 0;
		progress |= tlsq__pump_rx(c, TLSQ__RX_READ);
		if (atomic_load(&c->error) != 0)
			break;
		if (tlsq__conn_can_send(c))
			progress |= tlsq__pump_tx(c);
		progress |= tlsq__pump_control(c);
		progress |= tlsq__sock_write(c);
		if (atomic_load(&c->error) != 0)
			break;
		/* Ciphertext consumed counts too: with tiny buffers wolfSSL eats a
		 * record a few bytes at a time before it yields any plaintext. */
		if (evbuffer_get_length(c->in) < in_before)
			progress = 1;
		int ended = c->eof || c->rst;
		if (tlsq__sock_read(c) > 0)
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

/* Latches notify_flushed and publishes tx_idle for tlsq_flush. */
static void update_idle(struct tlsq_conn *c)
{
	int empty = tlsq__out_len(c) == 0;
	if (c->send_closed && empty)
		c->notify_flushed = 1;
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
	tlsq__conn_advance(c); /* a request or a connect may have moved it */
	if (atomic_load(&c->state) == TLSQ_STATE_HANDSHAKING) {
		if (tlsq__tls_handshake(c) > 0)
			c->hs_done = 1;
		tlsq__sock_write(c);
		tlsq__conn_advance(c);
	}
	int st = atomic_load(&c->state);
	if (st >= TLSQ_STATE_OPEN && !final_state(st)) {
		step_open(c);
		/* The rx ring's touched pages go back once it is empty (at most
		 * one madvise per 512 entries): an idle connection that had
		 * traffic keeps no 32 KiB of slots resident (issue 18). */
		tlsq__rxq_trim_sp(&c->rxq);
	}
	if (atomic_load(&c->error) == 0)
		update_idle(c);
	tlsq__conn_advance(c);
	if (final_state(atomic_load(&c->state))) {
		tlsq__conn_finish(c);
		goto end;
	}
	if (arm_events(c) < 0 || arm_timer(c) < 0)
		tlsq__conn_step(c); /* failed for lack of an event: end now */
	return;
end:
	/* Finished: only the rx hand-over can still be pending. */
	tlsq__pump_rx(c, TLSQ__RX_HANDOVER);
}

/* Socket readable / writable. */
void tlsq__conn_on_read(struct tlsq_conn *c)
{
	c->read_drained = 0;
	tlsq__sock_read(c);
	tlsq__conn_step(c);
}

void tlsq__conn_on_write(struct tlsq_conn *c)
{
	if (!c->connected) {
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0)
			tlsq__conn_fail(c, err == ECONNREFUSED ? TLSQ_ECONNREFUSED : TLSQ_EIO,
			                "connect to %s failed: %s", c->peer, strerror(err));
		else
			c->connected = 1; /* tlsq__conn_advance: HANDSHAKING */
	} else {
		tlsq__sock_write(c);
	}
	tlsq__conn_step(c);
}
