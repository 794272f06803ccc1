/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conn.c - a connection's life: creation, requests from application
 * threads, the sticky error, teardown, references, the published snapshot.
 *
 * Who calls what:
 * - tlsq__conn_new: any thread (listener's IO thread, or a connecting
 *   application thread), before anyone else can see the connection.
 * - tlsq__conn_ref/unref, tlsq__conn_fill_info, tlsq__conn_pollfd_signal:
 *   any thread.
 * - everything else: the connection's IO thread only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "iotask.h"

#define QUEUE_SLOTS 4096

static _Atomic uint64_t next_conn_id = 1;

static void conn_ev_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tlsq__conn_on_read(arg);
}

static void conn_ev_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tlsq__conn_on_write(arg);
}

/* The continuation after a yield (pump.c step_open): just another step. */
static void conn_ev_cont(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct tlsq_conn *c = arg;
	if (!c->finished)
		tlsq__conn_step(c);
}

static void conn_ev_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tlsq__conn_timer(arg);
}

struct tlsq_conn *tlsq__conn_new(struct tlsq_engine *e, struct tlsq_tls *tls, int fd,
                                 tlsq_state state)
{
	struct tlsq_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	const tlsq_engine_config *cfg = &e->cfg;
	if (tlsq__queue_init(&c->txq, cfg->tx_budget, QUEUE_SLOTS) != 0 ||
	    tlsq__queue_init(&c->rxq, cfg->rx_budget, QUEUE_SLOTS) != 0) {
		free(c);
		return NULL;
	}
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	if (!c->in || !c->out) {
		if (c->in)
			evbuffer_free(c->in);
		if (c->out)
			evbuffer_free(c->out);
		tlsq__queue_fini(&c->txq);
		tlsq__queue_fini(&c->rxq);
		free(c);
		return NULL;
	}
	/* Two references: the application's handle (or, for a server, the
	 * accept queue that will hand it over) and the IO task's. */
	atomic_init(&c->refs, 2);
	c->id = atomic_fetch_add(&next_conn_id, 1);
	c->engine = e;
	tlsq__engine_ref(e);
	c->tls = tls;
	atomic_fetch_add(&tls->refs, 1);
	c->role = tls->role;
	c->mode = tls->mode;
	c->fd = fd;
	c->io = tlsq__io_pick(e);
	atomic_init(&c->state, state);
	c->connected = state != TLSQ_STATE_CONNECTING;
	atomic_init(&c->pollfd, -1);
	atomic_init(&c->tx_idle, 1);
	tlsq__ec_init(&c->state_ec);
	tlsq__frame_dec_init(&c->dec, cfg->max_message);
	c->last_io_ms = c->created_ms = tlsq__now_ms();
	tlsq__count(&e->stats.conns_opened, 1);
	atomic_fetch_add(&e->stats.conns_live, 1);
	return c;
}

void tlsq__conn_ref(struct tlsq_conn *c)
{
	/* relaxed: a reference is only taken by someone who already holds one. */
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void tlsq__conn_unref(struct tlsq_conn *c)
{
	/* acq_rel: every use of the connection by the dropping thread happens
	 * before the free by the last one. */
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	struct tlsq_engine *e = c->engine;
	tlsq__buf_free(c->rx_hold);
	tlsq__buf_free(c->rx_cur);
	tlsq__frame_dec_fini(&c->dec);
	if (c->in) /* never adopted */
		evbuffer_free(c->in);
	if (c->out)
		evbuffer_free(c->out);
	tlsq__tls_ssl_free(c);
	tlsq__queue_fini(&c->txq);
	tlsq__queue_fini(&c->rxq);
	int pfd = atomic_load(&c->pollfd);
	if (pfd >= 0)
		close(pfd);
	free(c->host);
	tlsq__peer_free(atomic_load(&c->peer_cert));
	tlsq__peer_free(c->peer_pending);
	tlsq_tls_free(c->tls);
	free(c->error_reason);
	free(c->verify_reason);
	free(c->alpn);
	free(c->sni);
	free(c->peer_subject);
	free(c);
	tlsq__engine_unref(e);
}

void tlsq__conn_release(struct tlsq_conn *c)
{
	if (atomic_exchange(&c->handle_freed, 1))
		return;
	tlsq__queue_close(&c->rxq, TLSQ_ECLOSED);
	tlsq__queue_end(&c->txq, TLSQ_ECLOSED);
	tlsq__conn_request(c, TLSQ__REQ_FREE);
	tlsq__conn_unref(c);
}

/* see iotask.h */
int tlsq__str_set(char **dst, const char *fmt, ...)
{
	char s[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s, sizeof s, fmt, ap);
	va_end(ap);
	free(*dst);
	*dst = strdup(s);
	return *dst ? TLSQ_OK : TLSQ_ENOMEM;
}

/* see iotask.h */
void tlsq__conn_fail(struct tlsq_conn *c, int err, const char *fmt, ...)
{
	if (atomic_load(&c->error) != 0)
		return;
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	/* NULL when out of memory: the code still says what failed. */
	c->error_reason = strdup(reason);
	/* Senders fail at once; receivers first drain what was delivered.
	 * Both queues before the error: whoever sees the error and then calls
	 * recv finds the end (or data still to come), never "would block"
	 * with nothing coming, and whoever got the end from recv finds sends
	 * refused. */
	tlsq__queue_close(&c->txq, err);
	if (!c->rx_end_pending) {
		c->rx_end_pending = 1;
		c->rx_end_code = err;
	}
	tlsq__conn_rx_end_if_idle(c);
	/* release: the reason is complete before anyone sees the error. */
	atomic_store_explicit(&c->error, err, memory_order_release);
	int idx = -err;
	if (idx > 0 && idx < 16)
		tlsq__count(&c->engine->stats.errors[idx], 1);
	int st = atomic_load(&c->state);
	if (st < TLSQ_STATE_OPEN)
		tlsq__count(&c->engine->stats.handshakes_failed, 1);
	tlsq__conn_advance(c); /* FAILED, phase ABORTED */
	tlsq__conn_pollfd_signal(c);
}

/* see iotask.h */
int tlsq__sock_fail(struct tlsq_conn *c, int err, const char *during)
{
	if (err == ECONNRESET || err == EPIPE) {
		tlsq__conn_fail(c, TLSQ_ECONNRESET, "connection reset by peer %s (%s)", during,
		                strerror(err));
		return TLSQ_ECONNRESET;
	}
	/* On an established socket the kernel keeps "unreachable" errors to
	 * itself until TCP gives up; then it reports the last of them instead
	 * of ETIMEDOUT. Either way the peer stopped answering. */
	if (err == ETIMEDOUT || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
	    err == ENETDOWN) {
		tlsq__conn_fail(
		    c, TLSQ_ETIMEDOUT, "peer stopped answering: TCP gave up %s (%s)", during,
		    err == ETIMEDOUT ? "keepalive or retransmissions timed out" : strerror(err));
		return TLSQ_ETIMEDOUT;
	}
	tlsq__conn_fail(c, TLSQ_EIO, "socket error %s: %s", during, strerror(err));
	return TLSQ_EIO;
}

/* see iotask.h */
int tlsq__conn_error_code(struct tlsq_conn *c)
{
	int err = atomic_load_explicit(&c->error, memory_order_acquire);
	if (err == 0) {
		/* conn_fail ends the rx queue (with the error) just before it
		 * stores the error: a receiver that got the error from the
		 * queue must find it here too. A negative end code is only ever
		 * a failure's, written after its reason. */
		int end = tlsq__queue_end_code(&c->rxq);
		if (end < 0)
			err = end;
	}
	return err;
}

void tlsq__conn_pollfd_signal(struct tlsq_conn *c)
{
	int fd = atomic_load_explicit(&c->pollfd, memory_order_acquire);
	if (fd >= 0)
		eventfd_write(fd, 1);
}

/* see iotask.h */
struct event *tlsq__conn_event(struct tlsq_conn *c, int which)
{
	struct event_base *base = c->io->base;
	switch (which) {
	case TLSQ__EV_WRITE:
		if (c->ev_write == NULL)
			c->ev_write =
			    event_new(base, c->fd, EV_WRITE | EV_PERSIST, conn_ev_write, c);
		return c->ev_write;
	case TLSQ__EV_TIMER:
		if (c->ev_timer == NULL)
			c->ev_timer = evtimer_new(base, conn_ev_timer, c);
		return c->ev_timer;
	default:
		if (c->ev_cont == NULL)
			c->ev_cont = event_new(base, -1, 0, conn_ev_cont, c);
		return c->ev_cont;
	}
}

/* IO thread: link into the thread's list and start. */
static void conn_adopt(struct tlsq_conn *c)
{
	tlsq__iothread *io = c->io;
	/* ev_write, ev_timer and ev_cont come when first needed
	 * (tlsq__conn_event): most idle connections never need two of them. */
	c->ev_read = event_new(io->base, c->fd, EV_READ | EV_PERSIST, conn_ev_read, c);
	/* RCU-style publish: fields first, then the link (release). */
	struct tlsq_conn *head = atomic_load_explicit(&io->conns, memory_order_relaxed);
	atomic_store_explicit(&c->next, head, memory_order_relaxed);
	c->prev = NULL;
	if (head)
		head->prev = c;
	atomic_store_explicit(&io->conns, c, memory_order_release);
	atomic_fetch_add(&io->nconns, 1);
	c->registered = 1;
	if (!c->ev_read) {
		tlsq__conn_fail(c, TLSQ_ENOMEM, "out of memory registering the connection");
		return;
	}
	const tlsq_engine_config *cfg = &c->engine->cfg;
	uint64_t now = tlsq__now_ms();
	if (atomic_load(&c->state) == TLSQ_STATE_CONNECTING) {
		c->connect_deadline_ms =
		    cfg->connect_timeout_ms > 0 ? now + (uint64_t)cfg->connect_timeout_ms : 0;
	} else {
		tlsq__conn_begin_handshake(c);
	}
}

static void conn_epoch_done(ck_epoch_entry_t *entry)
{
	struct tlsq_conn *c =
	    (struct tlsq_conn *)((char *)entry - offsetof(struct tlsq_conn, epoch_entry));
	tlsq__conn_unref(c);
}

/* IO thread: unlink and give up the IO task's reference after a grace
 * period (status readers may be walking the list). */
static void conn_unregister(struct tlsq_conn *c)
{
	tlsq__iothread *io = c->io;
	if (!c->registered)
		return;
	c->registered = 0;
	struct tlsq_conn *next = atomic_load_explicit(&c->next, memory_order_relaxed);
	if (c->prev)
		atomic_store_explicit(&c->prev->next, next, memory_order_release);
	else
		atomic_store_explicit(&io->conns, next, memory_order_release);
	if (next)
		next->prev = c->prev;
	atomic_fetch_sub(&io->nconns, 1);
	if (c->ev_timer) {
		event_free(c->ev_timer);
		c->ev_timer = NULL;
	}
	if (c->ev_cont) {
		event_free(c->ev_cont);
		c->ev_cont = NULL;
	}
	ck_epoch_call(&io->epoch_rec, &c->epoch_entry, conn_epoch_done);
}

/* see iotask.h */
void tlsq__conn_finish(struct tlsq_conn *c)
{
	if (!c->finished) {
		c->finished = 1;
		int failed = atomic_load(&c->state) == TLSQ_STATE_FAILED;
		if (c->fd >= 0) {
			if (c->ev_read) {
				event_free(c->ev_read);
				c->ev_read = NULL;
			}
			if (c->ev_write) {
				event_free(c->ev_write);
				c->ev_write = NULL;
			}
			c->reading = c->writing = 0;
			/* After a socket error (other than the peer's FIN) the
			 * socket is not trusted with more: wolfSSL answers the
			 * cut record with bad_record_mac, which would blame the
			 * peer's records for our failed read; abort instead. So
			 * do tlsq_abort and engine stop (TLSQ_ECLOSED). */
			int sock_failed = c->rst || c->sock_error != 0;
			if (failed && (sock_failed || atomic_load(&c->error) == TLSQ_ECLOSED)) {
				struct linger lg = {1, 0}; /* abort: reset, not FIN */
				setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
				close(c->fd);
			} else {
				/* Any other failure ends like a clean close: its fatal
				 * alert (wolfSSL's, or the one tlsq's own ends send)
				 * goes out behind what is queued, then a FIN; a close()
				 * now would turn unread input into a RST that drops the
				 * alert (linger.c). */
				if (failed)
					tlsq__tls_end_alert(c);
				tlsq__linger(c->io, c->fd, c->engine->cfg.close_linger_ms,
				             failed ? c->out : NULL, failed);
				if (failed)
					c->out = NULL; /* linger.c has it */
			}
			c->fd = -1;
		}
		if (c->ev_timer)
			event_del(c->ev_timer);
		if (c->ev_cont)
			event_del(c->ev_cont);
		if (!failed || atomic_load(&c->error) == TLSQ_ETRUNCATED)
			tlsq__tls_save_session(c);
		tlsq__tls_ssl_free(c);
		tlsq__buf_free(c->tx_cur);
		c->tx_cur = NULL;
		tlsq__buf_free(c->staging);
		c->staging = NULL;
		/* rx_cur, rx_hold and the frame decoder stay: what was decrypted
		 * before the end is still being handed over (pump.c pump_rx). */
		evbuffer_free(c->in);
		if (c->out)
			evbuffer_free(c->out);
		c->in = c->out = NULL;
		if (!failed) {
			c->rx_end_pending = c->rx_end_pending || !c->recv_closed;
		}
		tlsq__queue_end(&c->txq, TLSQ_ECLOSED);
		atomic_store(&c->tx_idle, 1);
		tlsq__count(&c->engine->stats.conns_closed, 1);
		atomic_fetch_sub(&c->engine->stats.conns_live, 1);
		tlsq__ec_inc(&c->state_ec);
		tlsq__conn_pollfd_signal(c);
		if (c->listener) { /* a server connection that never got accepted */
			struct tlsq_listener *l = c->listener;
			c->listener = NULL;
			tlsq__count(&l->handshake_failed, 1);
			tlsq__listener_failed(l, c, TLSQ_PHASE_HANDSHAKE);
			tlsq__listener_unref(l);
			c->app_gone = 1;
			/* The accept queue's reference; never the last (IO holds one). */
			atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
		}
	}
	if (c->app_gone)
		conn_unregister(c);
}

/* Graceful close started by the application (close or free). */
static void conn_start_close(struct tlsq_conn *c, int linger_ms)
{
	int st = atomic_load(&c->state);
	if (st >= TLSQ_STATE_CLOSED)
		return;
	if (st < TLSQ_STATE_OPEN) {
		tlsq__conn_fail(c, TLSQ_ECLOSED,
		                "closed by the application before the handshake "
		                "completed");
		return;
	}
	c->closing = 1; /* state.c: phase FLUSHING */
	c->shutdown_wanted = 1;
	if (linger_ms > 0) {
		uint64_t d = tlsq__now_ms() + (uint64_t)linger_ms;
		if (!c->close_deadline_ms || d < c->close_deadline_ms)
			c->close_deadline_ms = d;
	}
}

/* see iotask.h */
void tlsq__conn_run(struct tlsq_conn *c)
{
	uint32_t req = atomic_exchange(&c->requests, 0);
	if (req & TLSQ__REQ_ADOPT)
		conn_adopt(c);
	if (!c->registered)
		return;
	if (atomic_load(&c->engine->stopping)) {
		tlsq__conn_kill(c);
		return;
	}
	if (req & TLSQ__REQ_ABORT) {
		if (!c->finished)
			tlsq__conn_fail(c, TLSQ_ECLOSED, "aborted by the application");
	}
	if (req & TLSQ__REQ_FREE) {
		c->app_gone = 1;
		conn_start_close(c, c->engine->cfg.close_linger_ms);
	}
	if (req & TLSQ__REQ_CLOSE)
		conn_start_close(c, 0);
	if (req & TLSQ__REQ_SHUTDOWN)
		c->shutdown_wanted = 1;
	if (req & TLSQ__REQ_KEY_UPDATE)
		c->key_update_wanted = 1;
	tlsq__conn_step(c);
	if (c->finished && c->app_gone)
		tlsq__conn_finish(c);
}

/* see iotask.h */
void tlsq__conn_kill(struct tlsq_conn *c)
{
	if (!c->finished)
		tlsq__conn_fail(c, TLSQ_ECLOSED, "engine stopped");
	tlsq__conn_step(c);
	tlsq__conn_rx_end_now(c);
	c->app_gone = 1; /* the handle may live on, but nothing runs for it */
	tlsq__conn_finish(c);
}

/* see iotask.h */
void tlsq__conn_fill_info(struct tlsq_conn *c, struct tlsq_conn_info *info)
{
	memset(info, 0, sizeof *info);
	info->id = c->id;
	info->role = c->role;
	info->mode = c->mode;
	/* acquire: pairs with set_state's release; the strings below were
	 * written before OPEN and never change afterwards. */
	int st = atomic_load_explicit(&c->state, memory_order_acquire);
	info->state = (tlsq_state)st;
	info->close_phase = (tlsq_close_phase)atomic_load(&c->close_phase);
	memcpy(info->peer, c->peer, sizeof info->peer);
	if (st >= TLSQ_STATE_OPEN && c->version && c->version[0]) {
		snprintf(info->version, sizeof info->version, "%s", c->version);
		snprintf(info->cipher, sizeof info->cipher, "%s", c->cipher);
		snprintf(info->group, sizeof info->group, "%s", c->group);
		if (c->alpn)
			snprintf(info->alpn, sizeof info->alpn, "%s", c->alpn);
		if (c->sni)
			snprintf(info->sni, sizeof info->sni, "%s", c->sni);
		if (c->peer_subject)
			snprintf(info->peer_subject, sizeof info->peer_subject, "%s",
			         c->peer_subject);
		info->resumed = c->resumed;
	}
	info->bytes_sent = tlsq__counter_get(&c->bytes_sent);
	info->bytes_received = tlsq__counter_get(&c->bytes_received);
	info->msgs_sent = tlsq__counter_get(&c->msgs_sent);
	info->msgs_received = tlsq__counter_get(&c->msgs_received);
	info->tls_bytes_sent = tlsq__counter_get(&c->tls_bytes_sent);
	info->tls_bytes_received = tlsq__counter_get(&c->tls_bytes_received);
	info->records_sent = tlsq__counter_get(&c->records_sent);
	info->records_received = tlsq__counter_get(&c->records_received);
	info->tx_queued = tlsq__queue_bytes(&c->txq);
	info->rx_queued = tlsq__queue_bytes(&c->rxq);
	info->blocked_senders = atomic_load(&c->txq.waiting_producers);
	info->blocked_receivers = atomic_load(&c->rxq.waiting_consumers);
	info->key_updates_sent = atomic_load(&c->key_updates_sent);
	info->key_updates_received = atomic_load(&c->key_updates_received);
	uint64_t now_ms = tlsq__now_ms();
	info->age_ms = now_ms > c->created_ms ? now_ms - c->created_ms : 0;
	info->send_parked = atomic_load(&c->send_parked);
	info->recv_parked = atomic_load(&c->recv_parked);
	if (info->send_parked || info->recv_parked) {
		uint64_t since = atomic_load(&c->parked_since_ms), now = tlsq__now_ms();
		info->parked_ms = now > since ? now - since : 0;
	}
	info->error = tlsq__conn_error_code(c);
	if (info->error && c->error_reason)
		snprintf(info->error_reason, sizeof info->error_reason, "%s", c->error_reason);
	/* The peer's certificate, from the snapshot published at the handshake
	 * (tls.c; immutable once published, acquire pairs with its release). */
	const tlsq__peer *p = atomic_load_explicit(&c->peer_cert, memory_order_acquire);
	if (p) {
		memcpy(info->peer_sha256, p->sha256, sizeof info->peer_sha256);
		memcpy(info->peer_spki_sha256, p->spki_sha256, sizeof info->peer_spki_sha256);
		memcpy(info->peer_sans, p->sans, sizeof info->peer_sans);
	}
}
