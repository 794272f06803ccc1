/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * api.c - the thin public API over the queues and the IO task.
 *
 * Folder rule: api/ implements tlsq.h on top of core/, iotask/ and status/
 * (it starts and stops the status endpoint); nothing below calls into it.
 *
 * Application threads never touch TLS: every function here either moves
 * plaintext through a queue (core/queue.h) or sets a request bit for the IO
 * task (tlsq__conn_request), and waits on an event count when it must.
 * Each call on a connection holds a reference for its duration, so a
 * tlsq_conn_free from another thread never frees memory under it (P2, G5).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/thread.h>

#include "iotask.h"
#include "status.h"

/* ------------------------------------------------------------------------ */
/* Engine                                                                    */
/* ------------------------------------------------------------------------ */

/* see tlsq.h */
void tlsq_engine_config_init(tlsq_engine_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof *cfg);
	cfg->io_threads = 0;
	cfg->tx_budget = 1u << 20;
	cfg->rx_budget = 1u << 20;
	cfg->cipher_buffer = 64u << 10;
	cfg->control_reserve = 16u << 10;
	cfg->max_message = 16u << 20;
	cfg->connect_timeout_ms = 30000;
	cfg->handshake_timeout_ms = 10000;
	cfg->idle_timeout_ms = 0;
	cfg->close_linger_ms = 2000;
	cfg->keepalive_s = 60;
	cfg->max_key_updates_per_s = 100;
	cfg->accept_backlog = 1024;
	cfg->status_max_conns = 256;
	cfg->status_request_timeout_ms = 5000;
}

static int engine_check(const tlsq_engine_config *c)
{
#define BAD(...)                                                                                   \
	do {                                                                                       \
		tlsq__set_last_error(__VA_ARGS__);                                                 \
		return TLSQ_EINVAL;                                                                \
	} while (0)
	if (c->io_threads < 0 || c->io_threads > 1024)
		BAD("io_threads must be 0 (one per CPU) to 1024, not %d", c->io_threads);
	if (c->tx_budget < 1 || c->rx_budget < 1)
		BAD("tx_budget and rx_budget must be at least 1 byte");
	if (c->tx_budget > ((uint64_t)1 << 39) || c->rx_budget > ((uint64_t)1 << 39))
		BAD("tx_budget and rx_budget must be below 512 GiB");
	if (c->cipher_buffer < 1 || c->cipher_buffer > (1u << 30))
		BAD("cipher_buffer must be 1 byte to 1 GiB");
	if (c->max_message > TLSQ__FRAME_MAX)
		BAD("max_message must be at most %u", TLSQ__FRAME_MAX);
	if (c->handshake_timeout_ms < -1 || c->connect_timeout_ms < -1 || c->idle_timeout_ms < 0 ||
	    c->close_linger_ms < 0 || c->keepalive_s < 0 || c->key_update_interval_ms < 0 ||
	    c->socket_buffer < 0)
		BAD("timeouts must be >= 0 (or -1 where documented)");
	if (c->accept_backlog < 1)
		BAD("accept_backlog must be at least 1");
	if (c->max_key_updates_per_s < 1)
		BAD("max_key_updates_per_s must be at least 1");
	return 0;
#undef BAD
}

/* see tlsq.h */
int tlsq_engine_new(const tlsq_engine_config *cfg, tlsq_engine **out)
{
	if (!out) {
		tlsq__set_last_error("tlsq_engine_new: NULL out");
		return TLSQ_EINVAL;
	}
	*out = NULL;
	tlsq_engine_config def;
	if (!cfg) {
		tlsq_engine_config_init(&def);
		cfg = &def;
	}
	int rc = engine_check(cfg);
	if (rc)
		return rc;
	if ((rc = tlsq__tls_global_init()) != 0) {
		tlsq__set_last_error("cannot initialise wolfSSL");
		return rc;
	}
	static pthread_once_t evonce = PTHREAD_ONCE_INIT;
	pthread_once(&evonce, (void (*)(void))evthread_use_pthreads);
	struct tlsq_engine *e = calloc(1, sizeof *e);
	if (!e) {
		tlsq__set_last_error("out of memory");
		return TLSQ_ENOMEM;
	}
	atomic_init(&e->refs, 1);
	e->cfg = *cfg;
	if (cfg->status_addr && !(e->status_addr_copy = strdup(cfg->status_addr)))
		goto nomem;
	if (cfg->status_token && !(e->status_token_copy = strdup(cfg->status_token)))
		goto nomem;
	e->cfg.status_addr = e->status_addr_copy;
	e->cfg.status_token = e->status_token_copy;
	pthread_mutex_init(&e->lmu, NULL);
	e->nio = cfg->io_threads;
	if (e->nio == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		e->nio = n > 0 ? (int)n : 1;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	e->started_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	e->started_mono_ms = tlsq__now_ms();
	rc = tlsq__engine_start(e);
	if (rc == 0 && e->cfg.status_addr)
		rc = tlsq__status_start(e);
	if (rc) {
		tlsq__engine_stop(e);
		tlsq__engine_unref(e);
		return rc;
	}
	*out = e;
	return 0;
nomem:
	tlsq__set_last_error("out of memory");
	free(e->status_addr_copy);
	free(e);
	return TLSQ_ENOMEM;
}

/* see tlsq.h */
void tlsq_engine_free(tlsq_engine *e)
{
	if (!e)
		return;
	tlsq__status_stop(e); /* nothing if it never started */
	tlsq__listeners_close_all(e);
	tlsq__engine_stop(e);
	tlsq__engine_unref(e);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */
/* ------------------------------------------------------------------------ */

static int conn_wait_open_ref(struct tlsq_conn *c, int timeout_ms)
{
	struct timespec dl;
	int has_dl = tlsq__timeout_deadline(timeout_ms, &dl);
	for (;;) {
		uint32_t seen = tlsq__ec_value(&c->state_ec);
		/* Established, even if it has ended or failed since (a peer may
		 * send and close before this thread runs): the data and the
		 * error come through recv, as on any open connection. */
		if (atomic_load_explicit(&c->opened, memory_order_acquire))
			return TLSQ_OK;
		int err = atomic_load_explicit(&c->error, memory_order_acquire);
		if (err) {
			tlsq__set_last_error("%s", c->error_reason ? c->error_reason : "");
			return err;
		}
		int st = atomic_load_explicit(&c->state, memory_order_acquire);
		if (st >= TLSQ_STATE_OPEN)
			return st == TLSQ_STATE_FAILED ? TLSQ_ECLOSED : TLSQ_OK;
		if (has_dl < 0)
			return TLSQ_EAGAIN;
		if (tlsq__ec_wait(&c->state_ec, seen, has_dl ? &dl : NULL) < 0) {
			tlsq__set_last_error("connection not established within %d ms", timeout_ms);
			return TLSQ_ETIMEDOUT;
		}
	}
}

/* A reference for the wait: tlsq_conn_free from another thread wakes us
 * (TLSQ_ECLOSED) but must not free what we still look at (G5). */
static int conn_wait_open(struct tlsq_conn *c, int timeout_ms)
{
	tlsq__conn_ref(c);
	atomic_fetch_add(&c->open_waiters, 1);
	int rc = conn_wait_open_ref(c, timeout_ms);
	atomic_fetch_sub(&c->open_waiters, 1);
	tlsq__conn_unref(c);
	return rc;
}

/* see tlsq.h */
int tlsq_connect_wait(tlsq_conn *c, int timeout_ms)
{
	if (!c)
		return TLSQ_EINVAL;
	return conn_wait_open(c, timeout_ms);
}

/* see tlsq.h */
int tlsq_connect(tlsq_engine *e, const char *addr, tlsq_tls *tls, tlsq_conn **out, int timeout_ms)
{
	tlsq_conn *c = NULL;
	if (out)
		*out = NULL;
	int rc = tlsq_connect_start(e, addr, tls, &c);
	if (rc)
		return rc;
	rc = conn_wait_open(c, timeout_ms);
	if (rc) {
		char why[512];
		snprintf(why, sizeof why, "%s", tlsq_last_error());
		tlsq_abort(c);
		tlsq_conn_free(c);
		tlsq__set_last_error("%s", why);
		return rc;
	}
	*out = c;
	return 0;
}

/* see tlsq.h */
void tlsq_conn_free(tlsq_conn *c)
{
	if (c)
		tlsq__conn_release(c);
}

/* see tlsq.h */
void tlsq_abort(tlsq_conn *c)
{
	if (!c || atomic_load(&c->handle_freed))
		return;
	tlsq__queue_close(&c->txq, TLSQ_ECLOSED);
	tlsq__queue_close(&c->rxq, TLSQ_ECLOSED);
	tlsq__conn_request(c, TLSQ__REQ_ABORT);
}

/* see tlsq.h */
int tlsq_shutdown_send(tlsq_conn *c)
{
	if (!c || atomic_load(&c->handle_freed))
		return TLSQ_EINVAL;
	int err = atomic_load(&c->error);
	if (err)
		return err;
	tlsq__queue_end(&c->txq, TLSQ_ECLOSED);
	tlsq__conn_request(c, TLSQ__REQ_SHUTDOWN);
	return TLSQ_OK;
}

/* see tlsq.h */
int tlsq_close(tlsq_conn *c, int timeout_ms, tlsq_close_phase *phase)
{
	if (phase)
		*phase = TLSQ_CLOSE_NONE;
	if (!c || atomic_load(&c->handle_freed))
		return TLSQ_EINVAL;
	tlsq__conn_ref(c);
	tlsq__queue_end(&c->txq, TLSQ_ECLOSED);
	tlsq__queue_close(&c->rxq, TLSQ_ECLOSED);
	tlsq__conn_request(c, TLSQ__REQ_CLOSE);
	struct timespec dl;
	int has_dl = tlsq__timeout_deadline(timeout_ms, &dl);
	int rc;
	for (;;) {
		uint32_t seen = tlsq__ec_value(&c->state_ec);
		int ph = atomic_load_explicit(&c->close_phase, memory_order_acquire);
		int st = atomic_load_explicit(&c->state, memory_order_acquire);
		if (ph == TLSQ_CLOSE_DONE) {
			rc = TLSQ_OK;
			break;
		}
		if (st == TLSQ_STATE_FAILED || ph == TLSQ_CLOSE_ABORTED) {
			rc = atomic_load_explicit(&c->error, memory_order_acquire);
			if (rc == 0)
				rc = TLSQ_ECLOSED;
			break;
		}
		if (has_dl < 0) { /* timeout 0: the close goes on in the background */
			rc = TLSQ_EAGAIN;
			break;
		}
		if (tlsq__ec_wait(&c->state_ec, seen, has_dl ? &dl : NULL) < 0) {
			/* Out of time: record how far we got, then reset. */
			rc = TLSQ_ETIMEDOUT;
			if (phase)
				*phase = (tlsq_close_phase)atomic_load(&c->close_phase);
			tlsq__conn_request(c, TLSQ__REQ_ABORT);
			tlsq__conn_unref(c);
			return rc;
		}
	}
	if (phase)
		*phase = (tlsq_close_phase)atomic_load(&c->close_phase);
	tlsq__conn_unref(c);
	return rc;
}

/* see tlsq.h */
int tlsq_key_update(tlsq_conn *c)
{
	if (!c || atomic_load(&c->handle_freed))
		return TLSQ_EINVAL;
	int err = atomic_load(&c->error);
	if (err)
		return err;
	int st = atomic_load_explicit(&c->state, memory_order_acquire);
	if (st != TLSQ_STATE_OPEN && st != TLSQ_STATE_RECV_CLOSED)
		return st > TLSQ_STATE_OPEN ? TLSQ_ECLOSED : TLSQ_EINVAL;
	if (c->version == NULL || strcmp(c->version, "TLSv1.3") != 0)
		return TLSQ_EINVAL;
	tlsq__conn_request(c, TLSQ__REQ_KEY_UPDATE);
	return TLSQ_OK;
}

/* see tlsq.h */
int tlsq_conn_info(tlsq_conn *c, struct tlsq_conn_info *info)
{
	if (!c || !info)
		return TLSQ_EINVAL;
	tlsq__conn_fill_info(c, info);
	return TLSQ_OK;
}

/* see tlsq.h */
const char *tlsq_conn_error(tlsq_conn *c)
{
	if (!c)
		return "invalid connection (NULL)";
	if (tlsq__conn_error_code(c) == 0 || c->error_reason == NULL)
		return "";
	return c->error_reason;
}

/* see tlsq.h */
int tlsq_conn_pollfd(tlsq_conn *c)
{
	if (!c || atomic_load(&c->handle_freed))
		return TLSQ_EINVAL;
	int fd = atomic_load_explicit(&c->pollfd, memory_order_acquire);
	if (fd >= 0)
		return fd;
	int nfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (nfd < 0)
		return TLSQ_EIO;
	int expected = -1;
	/* release: the eventfd exists before the IO task can see it. */
	if (!atomic_compare_exchange_strong_explicit(&c->pollfd, &expected, nfd,
	                                             memory_order_acq_rel, memory_order_acquire)) {
		close(nfd);
		return expected;
	}
	if (tlsq__rxq_ready(&c->rxq))
		eventfd_write(nfd, 1);
	return nfd;
}
