/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * torture.c - randomized torture of tlsq connections, one seed at a time.
 *
 * A seed chooses everything: stream or message mode, TLS 1.2 or 1.3,
 * budgets and buffer sizes (down to 1 byte), 2-4 application threads per
 * side, the relay's fragmentation (down to single bytes), delays and fault
 * (FIN or RST at a byte offset, either direction), how the run ends (drain
 * and close, drain and free, close or abort from a worker mid-run, or stop
 * and free with data in flight). Mode "openssl" puts OpenSSL 3 (ossl.c) on
 * the other side of the relay, echoing.
 *
 * A run: the endpoints connect through the relay; the workers do random
 * operations with random timeouts (0, small, larger, -1) for a chaos
 * period; then (drain) every side stops sending, half-closes with
 * tlsq_shutdown_send, and its receivers read until the end; then the
 * connections are closed or freed and the engine freed.
 *
 * Invariants (any break prints "TORTURE FAIL seed=N: what"):
 *  1. What a side received is, per sending thread, exactly the prefix
 *     0..k-1 of that thread's successful sends, every chunk intact
 *     (chunk.c). A send that failed queued nothing: its number is reused.
 *  2. A receiver that saw the clean end (recv 0, or TLSQ_ECLOSED in message
 *     mode without a local close) got everything the peer sent before its
 *     close_notify, and the peer had asked for that end.
 *  3. No fault injected and no close or abort before the drain: both sides
 *     see the clean end, no error anywhere, tlsq_close returns TLSQ_OK.
 *  4. Every call returns within its timeout + slack (measured with a
 *     monotonic clock; the watchdog catches calls that never return, -1
 *     included); TLSQ_EAGAIN only with timeout 0, TLSQ_ETIMEDOUT never
 *     before the timeout; every return code is one the call may give.
 *  5. No leak, no sanitizer report (the ASan and TSan builds).
 *
 * Runs are reproducible in their parameters (`torture --seed N`); the
 * threads' interleaving is not, so a timing-dependent failure may need
 * `--repeat R`.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tlsq.h"
#include "torture.h"

/* ---- globals: options and the current seed's failure ------------------ */

int tt_verbose;
static int slack_ms = 2000; /* a call may overrun its timeout by this */
static int hang_ms = 20000; /* a -1 call longer than this is a hang */
static uint64_t cur_seed;
static const char *cur_mode = "tlsq";
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static int cur_failed;
static unsigned long seeds_run, seeds_failed;

uint64_t tt_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tt_fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&fail_mu);
	if (!cur_failed)
		printf("TORTURE FAIL seed=%" PRIu64 " (--mode %s): %s\n", cur_seed, cur_mode, msg);
	else if (cur_failed < 5)
		printf("  also seed=%" PRIu64 ": %s\n", cur_seed, msg);
	else if (cur_failed == 5)
		printf("  (more failures of seed %" PRIu64 " not shown)\n", cur_seed);
	fflush(stdout);
	cur_failed++;
	pthread_mutex_unlock(&fail_mu);
}

/* ---- parameters ------------------------------------------------------- */

enum end_kind {
	END_DRAIN_CLOSE, /* drain, then tlsq_close both: the clean end */
	END_DRAIN_FREE,  /* drain, then the last user frees (background close) */
	END_CLOSE_MID,   /* a worker calls tlsq_close mid-run, then drain */
	END_ABORT_MID,   /* a worker calls tlsq_abort mid-run, then drain */
	END_STOP_FREE,   /* stop with data in flight; the last user frees */
};
static const char *end_names[] = {"drain+close", "drain+free", "close-mid", "abort-mid",
                                  "stop+free"};

struct params {
	uint64_t seed;
	int openssl, msg, tls12, async_connect;
	tlsq_engine_config ecfg;
	int nthreads[2];
	int chaos_ms;
	enum end_kind end;
	int mid_side;     /* side of the mid-run close/abort/shutdown, -1 none */
	int shutdown_mid; /* 1: a worker half-closes mid-run (still clean) */
	int neg_timeouts; /* -1 timeouts allowed */
	unsigned max_payload;
	int close_ms; /* timeout of the final/mid close */
	int ossl_server;
	unsigned ossl_max_read, ossl_ku_pct;
	unsigned ku_pct; /* tlsq_key_update weight */
	int small_caps;  /* message mode: recv_msg sometimes into a small buffer */
	struct tt_relay_cfg relay;
};

static void pick_dir(uint64_t *r, struct tt_relay_dir_cfg *d)
{
	static const unsigned writes[] = {1, 2, 3, 7, 64, 536, 1460, 16384, 65536};
	d->max_write = writes[tt_range(r, 0, 8)];
	d->max_delay_ms = tt_pct(r, 40) ? 0 : (unsigned)tt_range(r, 1, 30);
}

static void params_pick(struct params *p, uint64_t seed, int openssl)
{
	uint64_t r = seed * 0x2545f4914f6cdd1dull + 1;
	memset(p, 0, sizeof *p);
	p->seed = seed;
	p->openssl = openssl;
	p->msg = !openssl && tt_pct(&r, 50);
	p->tls12 = tt_pct(&r, 20);
	p->async_connect = tt_pct(&r, 30);
	tlsq_engine_config *e = &p->ecfg;
	tlsq_engine_config_init(e);
	e->io_threads = (int)tt_range(&r, 1, 2);
	e->handshake_timeout_ms = 5000;
	e->keepalive_s = 0;
	p->relay.seed = seed;
	for (int d = 0; d < 2; d++)
		pick_dir(&r, &p->relay.dir[d]);
	/* tiny segments are slow: keep what can be in flight small */
	int tiny = p->relay.dir[0].max_write < 64 || p->relay.dir[1].max_write < 64;
	p->relay.small = tiny;
	static const size_t budgets[] = {1, 100, 4096, 65536, 1 << 20};
	static const size_t ciphers[] = {1, 7, 512, 16384, 65536};
	e->tx_budget = budgets[tt_range(&r, 0, tiny ? 3 : 4)];
	e->rx_budget = budgets[tt_range(&r, 0, tiny ? 3 : 4)];
	e->cipher_buffer = ciphers[tt_range(&r, 0, 4)];
	e->socket_buffer = tiny || tt_pct(&r, 30) ? 8192 : 0;
	e->close_linger_ms = (int)tt_range(&r, 0, 3) * 300;
	if (getenv("TORTURE_LINGER")) /* diagnosis: override the linger */
		e->close_linger_ms = atoi(getenv("TORTURE_LINGER"));
	if (!p->tls12 && tt_pct(&r, 15))
		e->key_update_bytes = tt_range(&r, 1, 65536);
	if (!p->tls12 && tt_pct(&r, 10))
		e->key_update_interval_ms = (int)tt_range(&r, 5, 100);
	/* A KeyUpdate every few KiB (or every 5 ms, or from tlsq_key_update
	 * calls) at loopback speed is more than the peer's default 100 per
	 * second: a storm by the peer's rule, not a fault (seed 401042, a
	 * KeyUpdate every 26,755 bytes, failed so in a long run). The storm
	 * limit itself is tested by peers_alerts. */
	e->max_key_updates_per_s = 1000000;
	if (p->msg && tt_pct(&r, 20))
		e->max_message = tt_range(&r, TT_HDR, 8192);
	p->max_payload = tiny ? 4096 : (unsigned)tt_range(&r, 64, 200000);
	if (p->msg && p->max_payload > e->max_message - TT_HDR)
		p->max_payload = (unsigned)(e->max_message - TT_HDR);
	p->nthreads[0] = (int)tt_range(&r, 2, 4);
	p->nthreads[1] = openssl ? 0 : (int)tt_range(&r, 2, 4);
	p->chaos_ms = (int)tt_range(&r, 50, 1000);
	unsigned e_pick = (unsigned)tt_range(&r, 0, 99);
	p->end = e_pick < 40   ? END_DRAIN_CLOSE
	         : e_pick < 55 ? END_DRAIN_FREE
	         : e_pick < 70 ? END_CLOSE_MID
	         : e_pick < 85 ? END_ABORT_MID
	                       : END_STOP_FREE;
	p->mid_side = openssl ? 0 : (int)tt_range(&r, 0, 1);
	p->shutdown_mid = (p->end == END_DRAIN_CLOSE || p->end == END_DRAIN_FREE) && tt_pct(&r, 20);
	p->neg_timeouts = p->end != END_STOP_FREE && tt_pct(&r, 70);
	p->close_ms = tt_pct(&r, 25) ? (int)tt_range(&r, 0, 200) : 5000;
	p->ku_pct = tt_pct(&r, 50) ? 0 : (unsigned)tt_range(&r, 1, 5);
	if (getenv("TORTURE_KU")) /* diagnosis: override the key_update weight */
		p->ku_pct = (unsigned)atoi(getenv("TORTURE_KU"));
	/* recv_msg into a too small buffer puts the message back; another
	 * receiver may take a later one meanwhile, so one thread can then see
	 * a sender's numbers out of order (by design): check order only
	 * without it */
	p->small_caps = tt_pct(&r, 50);
	p->ossl_server = tt_pct(&r, 50);
	/* small reads echo one record per read: 20x the bytes, too slow on a
	 * link of tiny segments */
	p->ossl_max_read = !tiny && tt_pct(&r, 30) ? (unsigned)tt_range(&r, 1, 16) : 16384;
	p->ossl_ku_pct = p->tls12 ? 0 : (unsigned)tt_range(&r, 0, 3);
	if (tt_pct(&r, 35)) {
		struct tt_relay_dir_cfg *d = &p->relay.dir[tt_range(&r, 0, 1)];
		d->fault = tt_pct(&r, 50) ? TT_FAULT_FIN : TT_FAULT_RST;
		d->fault_at = tt_range(&r, 0, 1ull << tt_range(&r, 4, tiny ? 15 : 19));
		d->rst_other = tt_pct(&r, 50);
	}
}

static void params_print(const struct params *p)
{
	const tlsq_engine_config *e = &p->ecfg;
	printf("seed %" PRIu64 ": %s %s%s, threads %d+%d, io %d, tx %zu rx %zu cipher %zu sock %d "
	       "linger %d ku %" PRIu64 "/%d maxmsg %zu, payload<=%u, chaos %d ms, end %s "
	       "(side %d%s, close %d ms), -1 %s, key_update %u%%",
	       p->seed,
	       p->openssl ? "openssl"
	       : p->msg   ? "message"
	                  : "stream",
	       p->tls12 ? "TLS1.2" : "TLS1.3", p->async_connect ? " async" : "", p->nthreads[0],
	       p->nthreads[1], e->io_threads, e->tx_budget, e->rx_budget, e->cipher_buffer,
	       e->socket_buffer, e->close_linger_ms, e->key_update_bytes, e->key_update_interval_ms,
	       e->max_message, p->max_payload, p->chaos_ms, end_names[p->end], p->mid_side,
	       p->shutdown_mid ? ", shutdown mid" : "", p->close_ms, p->neg_timeouts ? "yes" : "no",
	       p->ku_pct);
	for (int d = 0; d < 2; d++) {
		const struct tt_relay_dir_cfg *c = &p->relay.dir[d];
		printf("; relay%d write<=%u delay<=%u", d, c->max_write, c->max_delay_ms);
		if (c->fault)
			printf(" %s@%" PRIu64 "%s", c->fault == TT_FAULT_FIN ? "FIN" : "RST",
			       c->fault_at, c->rst_other ? "+rst" : "+fin");
	}
	if (p->openssl)
		printf("; openssl %s read<=%u ku%%=%u", p->ossl_server ? "server" : "client",
		       p->ossl_max_read, p->ossl_ku_pct);
	printf("\n");
}

/* ---- the run's shared state ------------------------------------------- */

enum { PH_CHAOS, PH_DRAIN, PH_STOP };

enum op {
	OP_NONE,
	OP_SEND,
	OP_RECV,
	OP_FLUSH,
	OP_KEYUPDATE,
	OP_POLL,
	OP_SHUTDOWN,
	OP_CLOSE,
	OP_ABORT,
	OP_FREE,
	OP_CONNECT,
	OP_ACCEPT,
	OP_ENGINE_FREE,
};
static const char *op_names[] = {"none",    "send",          "recv",       "flush", "key_update",
                                 "poll",    "shutdown_send", "close",      "abort", "conn_free",
                                 "connect", "accept",        "engine_free"};

/* A call in progress, for the watchdog. */
struct slot {
	_Atomic int op;
	_Atomic int timeout;
	_Atomic uint64_t start_ms;
};

struct run;
struct side;

struct worker {
	struct run *run;
	struct side *s;
	int tid;
	pthread_t thr;
	uint64_t rng;
	struct slot slot;
	uint32_t seq;
	int can_send, can_recv;
	uint32_t last[TT_MAX_TID]; /* message mode: per-sender order seen here */
	unsigned char *sbuf, *rbuf;
	size_t rcap;
};

struct side {
	int id; /* 0 client (or the tlsq side in openssl mode), 1 server */
	char name[16];
	tlsq_conn *c;
	int nthreads;
	struct worker w[TT_MAX_TID];
	pthread_mutex_t rx_mu; /* stream: one receiver at a time; message: the log */
	struct tt_rxlog log;
	_Atomic uint32_t sent_ok[TT_MAX_TID];
	_Atomic int senders_in;
	_Atomic int users; /* workers + main still using c; the last frees it if free_by_last */
	int free_by_last;
	pthread_mutex_t free_mu; /* the watchdog reads info only while c lives */
	int freed;
	_Atomic int local_closed, aborted, end_requested, got_end, mid_done, stalled;
	_Atomic int rx_err, tx_err;
	int close_rc, close_phase;
	char close_reason[160];
};

struct run {
	struct params p;
	_Atomic int phase;
	uint64_t mid_at_ms;
	_Atomic uint64_t drain_deadline_ms;
	struct side side[2];
	struct slot main_slot;
	pthread_mutex_t wd_mu;
	pthread_cond_t wd_cv;
	int wd_done;
	uint64_t seed_deadline_ms;
};

/* ---- measured calls ---------------------------------------------------- */

static uint64_t call_begin(struct slot *sl, enum op op, int timeout)
{
	uint64_t t = tt_now_ms();
	atomic_store(&sl->timeout, timeout);
	atomic_store(&sl->start_ms, t);
	atomic_store(&sl->op, op);
	return t;
}

/* Checks the call's time against its timeout and the timeout-related codes. */
static void call_end(struct slot *sl, const char *who, enum op op, int timeout, uint64_t t0,
                     long long rc, int local_closed)
{
	atomic_store(&sl->op, OP_NONE);
	uint64_t el = tt_now_ms() - t0;
	if (timeout >= 0 && el > (uint64_t)timeout + (uint64_t)slack_ms)
		tt_fail("%s: %s(timeout %d ms) took %" PRIu64 " ms (rc %lld)", who, op_names[op],
		        timeout, el, rc);
	if (op == OP_CLOSE || op == OP_CONNECT || op == OP_ACCEPT)
		return; /* their codes are the connection's, checked by the caller */
	if (rc == TLSQ_EAGAIN && timeout != 0)
		tt_fail("%s: %s(timeout %d) returned TLSQ_EAGAIN", who, op_names[op], timeout);
	if (rc == TLSQ_ETIMEDOUT && timeout == 0 && !local_closed)
		tt_fail("%s: %s(timeout 0) returned TLSQ_ETIMEDOUT", who, op_names[op]);
	if (rc == TLSQ_ETIMEDOUT && timeout > 0 && el + 2 < (uint64_t)timeout)
		tt_fail("%s: %s(timeout %d) timed out after %" PRIu64 " ms", who, op_names[op],
		        timeout, el);
}

static int pick_timeout(struct worker *w)
{
	unsigned x = (unsigned)tt_range(&w->rng, 0, 99);
	if (x < 25)
		return 0;
	if (x < 60)
		return (int)tt_range(&w->rng, 1, 20);
	if (x < 85 || !w->run->p.neg_timeouts)
		return (int)tt_range(&w->rng, 21, 300);
	return -1;
}

/* Codes that end a direction for good (besides TLSQ_ECLOSED). */
static int is_terminal(long long rc)
{
	return rc == TLSQ_ETRUNCATED || rc == TLSQ_ECONNRESET || rc == TLSQ_ETLS ||
	       rc == TLSQ_EPROTO || rc == TLSQ_EIO || rc == TLSQ_ETIMEDOUT || rc == TLSQ_ECERT;
}

static void note_err(_Atomic int *slot, long long rc)
{
	int zero = 0;
	atomic_compare_exchange_strong(slot, &zero, (int)rc);
}

/* ---- operations -------------------------------------------------------- */

static uint32_t pick_len(struct worker *w)
{
	unsigned x = (unsigned)tt_range(&w->rng, 0, 99);
	uint32_t max = w->run->p.max_payload;
	uint32_t n = x < 70   ? (uint32_t)tt_range(&w->rng, 0, 64)
	             : x < 90 ? (uint32_t)tt_range(&w->rng, 65, 2048)
	             : x < 98 ? (uint32_t)tt_range(&w->rng, 2049, 32768)
	                      : (uint32_t)tt_range(&w->rng, 32769, 200000);
	return n > max ? max : n;
}

static void do_send(struct worker *w)
{
	struct side *s = w->s;
	struct run *run = w->run;
	atomic_fetch_add(&s->senders_in, 1);
	if (atomic_load(&run->phase) != PH_CHAOS) {
		atomic_fetch_sub(&s->senders_in, 1);
		return;
	}
	int t = pick_timeout(w);
	long long rc;
	uint64_t t0;
	/* message mode: sometimes one byte more than max_message */
	size_t maxmsg = run->p.ecfg.max_message;
	if (run->p.msg && maxmsg < 65536 && tt_pct(&w->rng, 3)) {
		size_t n = maxmsg + 1;
		unsigned char *big = calloc(1, n);
		t0 = call_begin(&w->slot, OP_SEND, t);
		rc = tlsq_send_msg(s->c, big, n, t);
		call_end(&w->slot, s->name, OP_SEND, t, t0, rc, 0);
		free(big);
		if (rc != TLSQ_EMSGSIZE)
			tt_fail("%s: send_msg of max_message+1 (%zu) bytes returned %lld, not "
			        "TLSQ_EMSGSIZE",
			        s->name, n, rc);
		atomic_fetch_sub(&s->senders_in, 1);
		return;
	}
	size_t n = tt_chunk_make(w->sbuf, (unsigned)s->id, (unsigned)w->tid, w->seq, pick_len(w),
	                         run->p.seed);
	int ok;
	/* The zero-copy send: half the message-mode sends (by the generator),
	 * every 4th stream send (by the sequence number, so that stream seeds
	 * replay as they did before it existed). One entry like the others. */
	int zc = run->p.msg ? !tt_pct(&w->rng, 50) : w->seq % 4 == 3;
	if (zc) {
		void *m = tlsq_msg_alloc(n);
		memcpy(m, w->sbuf, n);
		t0 = call_begin(&w->slot, OP_SEND, t);
		rc = tlsq_msg_send(s->c, m, t);
		call_end(&w->slot, s->name, OP_SEND, t, t0, rc, atomic_load(&s->local_closed));
		ok = rc == TLSQ_OK;
		if (!ok)
			tlsq_msg_free(m); /* on failure the caller still owns it */
	} else if (!run->p.msg) {
		t0 = call_begin(&w->slot, OP_SEND, t);
		rc = tlsq_send(s->c, w->sbuf, n, t);
		call_end(&w->slot, s->name, OP_SEND, t, t0, rc, atomic_load(&s->local_closed));
		ok = rc == (long long)n;
	} else {
		t0 = call_begin(&w->slot, OP_SEND, t);
		rc = tlsq_send_msg(s->c, w->sbuf, n, t);
		call_end(&w->slot, s->name, OP_SEND, t, t0, rc, atomic_load(&s->local_closed));
		ok = rc == TLSQ_OK;
	}
	if (ok) {
		w->seq++;
		atomic_store(&s->sent_ok[w->tid], w->seq);
	} else if (rc == TLSQ_EAGAIN || (rc == TLSQ_ETIMEDOUT && t != 0)) {
		/* nothing queued: the same seq goes next time */
	} else if (rc == TLSQ_ECLOSED || is_terminal(rc)) {
		if (rc != TLSQ_ECLOSED)
			note_err(&s->tx_err, rc);
		if (rc == TLSQ_ECLOSED && !atomic_load(&s->end_requested) &&
		    !atomic_load(&s->local_closed))
			tt_fail("%s: send returned TLSQ_ECLOSED with no local close or shutdown",
			        s->name);
		w->can_send = 0;
	} else {
		tt_fail("%s: send of %zu bytes returned %lld (%s)", s->name, n, rc,
		        tlsq_strerror((int)rc));
		w->can_send = 0;
	}
	atomic_fetch_sub(&s->senders_in, 1);
}

/* The peer's end (recv 0 / message ECLOSED without a local close). */
static void saw_end(struct worker *w)
{
	struct side *s = w->s;
	struct run *run = w->run;
	const struct side *peer = &run->side[1 - s->id];
	/* openssl mode: the OpenSSL peer closes only after our close_notify */
	int asked =
	    run->p.openssl ? atomic_load(&s->end_requested) : atomic_load(&peer->end_requested);
	if (!asked)
		tt_fail("%s: clean end received but the peer never closed", s->name);
	atomic_store(&s->got_end, 1);
	w->can_recv = 0;
}

static void recv_result(struct worker *w, long long rc, int t, int from_msg_api)
{
	struct side *s = w->s;
	if (rc == TLSQ_EAGAIN || (rc == TLSQ_ETIMEDOUT && t != 0))
		return;
	if (rc == TLSQ_EMSGSIZE && w->run->p.msg && !from_msg_api)
		return; /* recv_msg with a small buffer: the message stays queued */
	if (rc == TLSQ_ECLOSED) {
		if (atomic_load(&s->local_closed)) {
			w->can_recv = 0;
			return;
		}
		if (w->run->p.msg) {
			saw_end(w);
			return;
		}
		tt_fail("%s: recv returned TLSQ_ECLOSED without a local close", s->name);
		w->can_recv = 0;
		return;
	}
	if (is_terminal(rc)) {
		note_err(&s->rx_err, rc);
		w->can_recv = 0;
		return;
	}
	tt_fail("%s: recv (timeout %d) returned %lld (%s)", s->name, t, rc, tlsq_strerror((int)rc));
	w->can_recv = 0;
}

static size_t pick_cap(struct worker *w)
{
	unsigned x = (unsigned)tt_range(&w->rng, 0, 99);
	size_t c = x < 10   ? tt_range(&w->rng, 1, 16)
	           : x < 50 ? tt_range(&w->rng, 17, 4096)
	                    : tt_range(&w->rng, 4097, 65536);
	return c > w->rcap ? w->rcap : c;
}

/* The drain stalls when 20 s pass without a byte received: a deadline that
 * moves with progress, so a slow parameter set (1-byte records through a
 * 7-byte cipher buffer: seed 200247) is not taken for a stuck one. */
#define DRAIN_STALL_MS 20000

static void drain_progress(struct run *run)
{
	if (atomic_load(&run->phase) == PH_DRAIN)
		atomic_store(&run->drain_deadline_ms, tt_now_ms() + DRAIN_STALL_MS);
}

/* Stream mode: the caller holds rx_mu. */
static void recv_stream_locked(struct worker *w, int t)
{
	struct side *s = w->s;
	size_t cap = pick_cap(w);
	uint64_t t0 = call_begin(&w->slot, OP_RECV, t);
	long long rc = tlsq_recv(s->c, w->rbuf, cap, t);
	call_end(&w->slot, s->name, OP_RECV, t, t0, rc, atomic_load(&s->local_closed));
	if (rc > 0) {
		drain_progress(w->run);
		if ((size_t)rc > cap)
			tt_fail("%s: recv returned %lld > cap %zu", s->name, rc, cap);
		else if (tt_rxlog_stream(&s->log, w->rbuf, (size_t)rc, s->name) < 0)
			w->can_recv = 0;
	} else if (rc == 0) {
		saw_end(w);
	} else {
		recv_result(w, rc, t, 0);
	}
}

static void recv_msg_once(struct worker *w, int t)
{
	struct side *s = w->s;
	long long rc;
	uint64_t t0;
	if (tt_pct(&w->rng, 60)) {
		size_t cap = w->run->p.small_caps && tt_pct(&w->rng, 15) ? tt_range(&w->rng, 0, 100)
		                                                         : w->rcap;
		t0 = call_begin(&w->slot, OP_RECV, t);
		rc = tlsq_recv_msg(s->c, w->rbuf, cap, t);
		call_end(&w->slot, s->name, OP_RECV, t, t0, rc, atomic_load(&s->local_closed));
		if (rc >= 0) {
			drain_progress(w->run);
			pthread_mutex_lock(&s->rx_mu);
			if (tt_rxlog_msg(&s->log, w->rbuf, (size_t)rc,
			                 w->run->p.small_caps ? NULL : w->last, s->name) < 0)
				w->can_recv = 0;
			pthread_mutex_unlock(&s->rx_mu);
		} else {
			recv_result(w, rc, t, 0);
		}
		return;
	}
	void *m = NULL;
	t0 = call_begin(&w->slot, OP_RECV, t);
	rc = tlsq_msg_recv(s->c, &m, t);
	call_end(&w->slot, s->name, OP_RECV, t, t0, rc, atomic_load(&s->local_closed));
	if (rc >= 0) {
		drain_progress(w->run);
		if (!m || tlsq_msg_len(m) != (size_t)rc)
			tt_fail("%s: msg_recv returned %lld but buffer %p of %zu", s->name, rc, m,
			        tlsq_msg_len(m));
		pthread_mutex_lock(&s->rx_mu);
		if (m && tt_rxlog_msg(&s->log, m, (size_t)rc, w->run->p.small_caps ? NULL : w->last,
		                      s->name) < 0)
			w->can_recv = 0;
		pthread_mutex_unlock(&s->rx_mu);
		tlsq_msg_free(m);
	} else {
		if (m)
			tt_fail("%s: msg_recv failed (%lld) but gave a buffer", s->name, rc);
		recv_result(w, rc, t, 1);
	}
}

static void do_recv(struct worker *w, int t)
{
	if (w->run->p.msg) {
		recv_msg_once(w, t);
		return;
	}
	pthread_mutex_lock(&w->s->rx_mu);
	recv_stream_locked(w, t);
	pthread_mutex_unlock(&w->s->rx_mu);
}

/* Polls the connection's pollfd, then receives without waiting. In stream
 * mode it holds rx_mu, so nobody else takes the data: readable must then
 * mean that recv does not say TLSQ_EAGAIN. A pollfd that misses a wake-up
 * makes poll(-1) hang: the watchdog reports it. */
static void do_poll(struct worker *w, int t)
{
	struct side *s = w->s;
	int fd = tlsq_conn_pollfd(s->c);
	if (fd < 0) {
		if (fd != TLSQ_ECLOSED && !is_terminal(fd))
			tt_fail("%s: tlsq_conn_pollfd returned %d", s->name, fd);
		return;
	}
	int stream = !w->run->p.msg;
	if (stream)
		pthread_mutex_lock(&s->rx_mu);
	struct pollfd p = {fd, POLLIN, 0};
	uint64_t t0 = call_begin(&w->slot, OP_POLL, t);
	int n = poll(&p, 1, t);
	call_end(&w->slot, s->name, OP_POLL, t, t0, n, 0);
	if (n > 0 && stream) {
		/* Readable with nothing to take once may be a push landing just
		 * then; readable-and-empty three times in a row is a pollfd that
		 * stays readable for nothing: a poll loop spins. */
		long long rc = TLSQ_EAGAIN;
		for (int tries = 0; tries < 3 && rc == TLSQ_EAGAIN; tries++) {
			struct pollfd again = {fd, POLLIN, 0};
			if (tries > 0 && poll(&again, 1, 0) <= 0)
				break;
			t0 = call_begin(&w->slot, OP_RECV, 0);
			rc = tlsq_recv(s->c, w->rbuf, w->rcap, 0);
			call_end(&w->slot, s->name, OP_RECV, 0, t0, rc,
			         atomic_load(&s->local_closed));
			if (rc == TLSQ_EAGAIN && tries == 2)
				tt_fail("%s: pollfd stays readable with nothing to receive (recv "
				        "says TLSQ_EAGAIN): a poll loop spins",
				        s->name);
		}
		if (rc > 0)
			drain_progress(w->run);
		if (rc == TLSQ_EAGAIN)
			;
		else if (rc > 0 && tt_rxlog_stream(&s->log, w->rbuf, (size_t)rc, s->name) < 0)
			w->can_recv = 0;
		else if (rc == 0)
			saw_end(w);
		else if (rc < 0)
			recv_result(w, rc, 0, 0);
	} else if (n > 0) {
		recv_msg_once(w, 0);
	}
	if (stream)
		pthread_mutex_unlock(&s->rx_mu);
}

static void do_flush(struct worker *w)
{
	struct side *s = w->s;
	int t = pick_timeout(w);
	uint64_t t0 = call_begin(&w->slot, OP_FLUSH, t);
	long long rc = tlsq_flush(s->c, t);
	call_end(&w->slot, s->name, OP_FLUSH, t, t0, rc, atomic_load(&s->local_closed));
	if (rc != TLSQ_OK && rc != TLSQ_EAGAIN && rc != TLSQ_ETIMEDOUT && rc != TLSQ_ECLOSED &&
	    !is_terminal(rc))
		tt_fail("%s: flush returned %lld (%s)", s->name, rc, tlsq_strerror((int)rc));
}

static void do_key_update(struct worker *w)
{
	struct side *s = w->s;
	uint64_t t0 = call_begin(&w->slot, OP_KEYUPDATE, 0);
	long long rc = tlsq_key_update(s->c);
	call_end(&w->slot, s->name, OP_KEYUPDATE, 0, t0, rc, 0);
	if (w->run->p.tls12 && rc == TLSQ_OK)
		tt_fail("%s: key_update succeeded on TLS 1.2", s->name);
	if (rc == TLSQ_EINVAL && !w->run->p.tls12 && !atomic_load(&s->end_requested) &&
	    !atomic_load(&s->local_closed) && !w->run->p.async_connect)
		tt_fail("%s: key_update returned TLSQ_EINVAL on an open TLS 1.3 connection",
		        s->name);
	if (rc != TLSQ_OK && rc != TLSQ_EINVAL && rc != TLSQ_ECLOSED && !is_terminal(rc))
		tt_fail("%s: key_update returned %lld (%s)", s->name, rc, tlsq_strerror((int)rc));
}

/* The mid-run close/abort/shutdown of this seed, by one worker. */
static void do_mid(struct worker *w)
{
	struct side *s = w->s;
	struct run *run = w->run;
	atomic_store(&s->mid_done, 1);
	if (run->p.shutdown_mid) {
		atomic_store(&s->end_requested, 1);
		uint64_t t0 = call_begin(&w->slot, OP_SHUTDOWN, 0);
		long long rc = tlsq_shutdown_send(s->c);
		call_end(&w->slot, s->name, OP_SHUTDOWN, 0, t0, rc, 0);
		if (rc != TLSQ_OK && rc != TLSQ_ECLOSED && !is_terminal(rc))
			tt_fail("%s: shutdown_send returned %lld", s->name, rc);
		struct tlsq_conn_info i;
		if (tt_verbose && tlsq_conn_info(s->c, &i) == TLSQ_OK)
			printf("  %s: shutdown_send mid at %" PRIu64 " ms: key_updates_sent %u\n",
			       s->name, tt_now_ms() % 100000, i.key_updates_sent);
	} else if (run->p.end == END_CLOSE_MID) {
		atomic_store(&s->end_requested, 1);
		atomic_store(&s->local_closed, 1);
		tlsq_close_phase ph = TLSQ_CLOSE_NONE;
		int t = run->p.close_ms;
		uint64_t t0 = call_begin(&w->slot, OP_CLOSE, t);
		long long rc = tlsq_close(s->c, t, &ph);
		call_end(&w->slot, s->name, OP_CLOSE, t, t0, rc, 1);
		if (tt_verbose)
			printf("  %s: mid close -> %lld phase %d\n", s->name, rc, ph);
	} else if (run->p.end == END_ABORT_MID) {
		atomic_store(&s->local_closed, 1);
		atomic_store(&s->aborted, 1);
		uint64_t t0 = call_begin(&w->slot, OP_ABORT, 0);
		tlsq_abort(s->c);
		call_end(&w->slot, s->name, OP_ABORT, 0, t0, 0, 1);
	}
}

/* Drops one user of the handle; the last one frees it if so chosen. */
static void side_leave(struct side *s)
{
	if (atomic_fetch_sub(&s->users, 1) != 1 || !s->free_by_last)
		return;
	pthread_mutex_lock(&s->free_mu);
	atomic_store(&s->end_requested, 1);
	tlsq_conn_free(s->c);
	s->freed = 1;
	pthread_mutex_unlock(&s->free_mu);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct side *s = w->s;
	struct run *run = w->run;
	for (;;) {
		int ph = atomic_load(&run->phase);
		if (ph == PH_STOP || (!w->can_recv && (!w->can_send || ph != PH_CHAOS)))
			break;
		if (ph == PH_DRAIN) {
			if (tt_now_ms() > atomic_load(&run->drain_deadline_ms)) {
				atomic_store(&s->stalled, 1);
				break;
			}
			int t = pick_timeout(w);
			if (tt_pct(&w->rng, 10))
				do_poll(w, t);
			else
				do_recv(w, t);
			continue;
		}
		if (!atomic_load(&s->mid_done) && run->p.mid_side == s->id && w->tid == 1 &&
		    (run->p.shutdown_mid || run->p.end == END_CLOSE_MID ||
		     run->p.end == END_ABORT_MID) &&
		    tt_now_ms() >= run->mid_at_ms) {
			do_mid(w);
			continue;
		}
		unsigned x = (unsigned)tt_range(&w->rng, 0, 99);
		if (w->tid == 0 || !w->can_send) /* thread 0 only receives: no deadlock */
			x = 99;
		if (x < 55)
			do_send(w);
		else if (x < 62)
			do_flush(w);
		else if (x < 62 + run->p.ku_pct)
			do_key_update(w);
		else if (x < 75 && w->can_recv)
			do_poll(w, pick_timeout(w));
		else if (w->can_recv)
			do_recv(w, pick_timeout(w));
		else
			do_send(w);
	}
	side_leave(s);
	return NULL;
}

/* ---- the watchdog ------------------------------------------------------ */

static void dump_side(struct side *s)
{
	pthread_mutex_lock(&s->free_mu);
	if (s->c && !s->freed) {
		struct tlsq_conn_info i;
		if (tlsq_conn_info(s->c, &i) == TLSQ_OK)
			printf(
			    "  %s: state %s phase %d rx_queued %" PRIu64 " tx_queued %" PRIu64
			    " blocked s/r %u/%u parked s/r %d/%d err %d %s; plain in/out %" PRIu64
			    "/%" PRIu64 " tls in/out %" PRIu64 "/%" PRIu64
			    " records in/out %" PRIu64 "/%" PRIu64 "\n",
			    s->name, tlsq_state_name(i.state), i.close_phase, i.rx_queued,
			    i.tx_queued, i.blocked_senders, i.blocked_receivers, i.send_parked,
			    i.recv_parked, i.error, i.error_reason, i.bytes_received, i.bytes_sent,
			    i.tls_bytes_received, i.tls_bytes_sent, i.records_received,
			    i.records_sent);
	}
	pthread_mutex_unlock(&s->free_mu);
}

/* A call that overran its bound by far: print, dump, and give up on the
 * process (a hung call never returns, so nothing can be joined). */
static int slot_overdue(struct slot *sl, const char *who, uint64_t now)
{
	int op = atomic_load(&sl->op);
	if (op == OP_NONE)
		return 0;
	int t = atomic_load(&sl->timeout);
	uint64_t start = atomic_load(&sl->start_ms);
	/* The worker may have begun its next call after `now` was read: that
	 * call started after now, it is not overdue (the difference would
	 * wrap around to a huge "hang"). */
	if (start > now)
		return 0;
	uint64_t el = now - start;
	uint64_t limit = t < 0 ? (uint64_t)hang_ms : (uint64_t)t + 2u * (uint64_t)slack_ms + 5000u;
	if (el <= limit || atomic_load(&sl->op) != op)
		return 0;
	tt_fail("%s: %s(timeout %d ms) has not returned after %" PRIu64 " ms (hang)", who,
	        op_names[op], t, el);
	return 1;
}

static void *watchdog_main(void *arg)
{
	struct run *run = arg;
	pthread_mutex_lock(&run->wd_mu);
	while (!run->wd_done) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&run->wd_cv, &run->wd_mu, &ts);
		if (run->wd_done)
			break;
		uint64_t now = tt_now_ms();
		int bad = slot_overdue(&run->main_slot, "main", now);
		for (int i = 0; i < 2; i++)
			for (int k = 0; k < TT_MAX_TID; k++) /* idle slots say OP_NONE */
				bad |=
				    slot_overdue(&run->side[i].w[k].slot, run->side[i].name, now);
		if (!bad && now > run->seed_deadline_ms) {
			tt_fail("the seed ran over its deadline (hang)");
			bad = 1;
		}
		if (bad) {
			for (int i = 0; i < 2; i++)
				dump_side(&run->side[i]);
			printf("torture: %lu seeds, %lu failed (stopped at a hang)\n",
			       seeds_run + 1, seeds_failed + 1);
			fflush(stdout);
			_exit(1);
		}
	}
	pthread_mutex_unlock(&run->wd_mu);
	return NULL;
}

/* ---- one seed ---------------------------------------------------------- */

static int make_profiles(const struct params *p, tlsq_tls **srv, tlsq_tls **cli,
                         const char *ossl_pem)
{
	tlsq_tls_config sc, cc;
	static char pem[8192];
	tlsq_mode mode = p->msg ? TLSQ_MODE_MESSAGE : TLSQ_MODE_STREAM;
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	sc.self_signed = 1;
	sc.mode = mode;
	if (p->tls12)
		sc.max_version = TLSQ_TLS1_2;
	if (tlsq_tls_new(&sc, srv) != TLSQ_OK)
		return -1;
	if (tlsq_tls_cert_pem(*srv, pem, sizeof pem) <= 0)
		return -1;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.ca_pem = ossl_pem ? ossl_pem : pem;
	cc.server_name = "localhost";
	cc.mode = mode;
	if (p->tls12)
		cc.max_version = TLSQ_TLS1_2;
	return tlsq_tls_new(&cc, cli) == TLSQ_OK ? 0 : -1;
}

static void side_init(struct run *run, struct side *s, int id)
{
	s->id = id;
	snprintf(s->name, sizeof s->name, "%s", id == 0 ? "client" : "server");
	if (run->p.openssl)
		snprintf(s->name, sizeof s->name, "tlsq-%s",
		         run->p.ossl_server ? "client" : "server");
	pthread_mutex_init(&s->rx_mu, NULL);
	pthread_mutex_init(&s->free_mu, NULL);
	/* openssl mode: the echo brings back our own chunks */
	tt_rxlog_init(&s->log, run->p.openssl ? 0u : (unsigned)(1 - id));
	s->nthreads = run->p.nthreads[id];
	s->free_by_last = run->p.end == END_DRAIN_FREE || run->p.end == END_STOP_FREE;
}

static void side_start(struct run *run, struct side *s)
{
	atomic_store(&s->users, s->nthreads + 1); /* + main */
	for (int k = 0; k < s->nthreads; k++) {
		struct worker *w = &s->w[k];
		w->run = run;
		w->s = s;
		w->tid = k;
		w->rng = run->p.seed * 0x9e3779b97f4a7c15ull + (uint64_t)s->id * 131 + (uint64_t)k;
		w->can_send = w->can_recv = 1;
		w->sbuf = malloc(TT_HDR + 200000);
		w->rcap = TT_HDR + 200000;
		w->rbuf = malloc(w->rcap);
		pthread_create(&w->thr, NULL, worker_main, w);
	}
}

static void side_join(struct side *s)
{
	for (int k = 0; k < s->nthreads; k++) {
		pthread_join(s->w[k].thr, NULL);
		free(s->w[k].sbuf);
		free(s->w[k].rbuf);
	}
}

/* Waits (yielding) until no worker of s is inside a send. */
static void wait_senders_out(struct side *s)
{
	uint64_t end = tt_now_ms() + (uint64_t)hang_ms;
	while (atomic_load(&s->senders_in) > 0) {
		if (tt_now_ms() > end) {
			tt_fail("%s: a send did not finish after the drain began", s->name);
			return;
		}
		sched_yield();
	}
}

/* Checks direction sender -> receiver (sent_ok against what the log holds). */
static void check_direction(const char *what, const _Atomic uint32_t *sent, int nthreads,
                            const struct tt_rxlog *log, int msg, int got_end, const char *who)
{
	for (int k = 0; k < nthreads; k++) {
		int64_t got = tt_rxlog_count(log, (unsigned)k, msg, who);
		uint32_t s = atomic_load(&sent[k]);
		if (got < 0)
			return;
		if ((uint64_t)got > s)
			tt_fail("%s: thread %d: %" PRId64 " chunks received, only %u sent", what, k,
			        got, s);
		else if (got_end && (uint64_t)got != s)
			tt_fail("%s: thread %d: clean end but %" PRId64 " of %u chunks arrived",
			        what, k, got, s);
	}
	if (!msg && got_end && log->acc_len)
		tt_fail("%s: clean end after %zu bytes of an incomplete chunk", what, log->acc_len);
	for (int k = nthreads; k < TT_MAX_TID; k++)
		if (log->next[k])
			tt_fail("%s: chunks from thread %d, which does not exist", what, k);
}

static void main_close(struct run *run, struct side *s, int clean)
{
	if (!s->c)
		return;
	if (s->free_by_last) {
		side_leave(s);
		return;
	}
	tlsq_close_phase ph = TLSQ_CLOSE_NONE;
	int t = clean ? 5000 : run->p.close_ms;
	struct tlsq_conn_info i;
	if (tt_verbose && tlsq_conn_info(s->c, &i) == TLSQ_OK)
		printf("  %s: close at %" PRIu64 " ms: key_updates_sent %u, state %s\n", s->name,
		       tt_now_ms() % 100000, i.key_updates_sent, tlsq_state_name(i.state));
	atomic_store(&s->end_requested, 1);
	atomic_store(&s->local_closed, 1);
	uint64_t t0 = call_begin(&run->main_slot, OP_CLOSE, t);
	s->close_rc = tlsq_close(s->c, t, &ph);
	call_end(&run->main_slot, s->name, OP_CLOSE, t, t0, s->close_rc, 1);
	s->close_phase = (int)ph;
	snprintf(s->close_reason, sizeof s->close_reason, "%s", tlsq_conn_error(s->c));
	side_leave(s); /* main's use ends here */
	pthread_mutex_lock(&s->free_mu);
	tlsq_conn_free(s->c);
	s->freed = 1;
	pthread_mutex_unlock(&s->free_mu);
}

static void run_seed(uint64_t seed, int openssl)
{
	struct run *run = calloc(1, sizeof *run);
	struct params *p = &run->p;
	params_pick(p, seed, openssl);
	if (tt_verbose)
		params_print(p);
	tlsq_engine *eng = NULL;
	tlsq_tls *stls = NULL, *ctls = NULL;
	tlsq_listener *lis = NULL;
	struct tt_relay *relay = NULL;
	struct tt_ossl *ossl = NULL;
	char *ossl_pem = NULL;
	int relay_port = 0, fired[2] = {0, 0}, hs_failed = 0;
	uint64_t relayed[2] = {0, 0};
	pthread_t wd;
	run->seed_deadline_ms = tt_now_ms() + 120000;
	pthread_mutex_init(&run->wd_mu, NULL);
	pthread_cond_init(&run->wd_cv, NULL);
	side_init(run, &run->side[0], 0);
	side_init(run, &run->side[1], 1);
	pthread_create(&wd, NULL, watchdog_main, run);

	if (tlsq_engine_new(&p->ecfg, &eng) != TLSQ_OK) {
		tt_fail("engine_new: %s", tlsq_last_error());
		goto out;
	}
	struct tt_ossl_cfg oc = {.server = p->ossl_server,
	                         .tls12 = p->tls12,
	                         .seed = seed,
	                         .max_read = p->ossl_max_read,
	                         .key_update_pct = p->ossl_ku_pct,
	                         .tlsq_side = 0,
	                         .io_timeout_ms = hang_ms > 30000 ? hang_ms : 30000};
	int ossl_port = 0;
	if (openssl && p->ossl_server) {
		ossl_pem = calloc(1, 8192);
		ossl = tt_ossl_start(&oc, &ossl_port, ossl_pem, 8192);
		if (!ossl)
			goto out;
	}
	if (make_profiles(p, &stls, &ctls, ossl_pem) < 0) {
		tt_fail("profiles: %s", tlsq_last_error());
		goto out;
	}
	int tlsq_server = !openssl || !p->ossl_server;
	if (tlsq_server && tlsq_listen(eng, "127.0.0.1:0", stls, &lis) != TLSQ_OK) {
		tt_fail("listen: %s", tlsq_last_error());
		goto out;
	}
	p->relay.target_port = tlsq_server ? tlsq_listener_port(lis) : ossl_port;
	relay = tt_relay_start(&p->relay, &relay_port);
	if (!relay)
		goto out;
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", relay_port);

	/* Connect: the tlsq client (side 0) through the relay; the server side
	 * (side 1, or side 0 against an OpenSSL client) from the listener. */
	struct side *cs = openssl ? (p->ossl_server ? &run->side[0] : NULL) : &run->side[0];
	struct side *ss = openssl ? (p->ossl_server ? NULL : &run->side[0]) : &run->side[1];
	if (openssl && !p->ossl_server) {
		oc.connect_port = relay_port;
		ossl = tt_ossl_start(&oc, &ossl_port, NULL, 0);
		if (!ossl)
			goto out;
	}
	/* before any worker starts: they read it */
	run->mid_at_ms = tt_now_ms() + tt_range(&(uint64_t){seed}, 0, (uint64_t)p->chaos_ms);
	if (cs) {
		uint64_t t0 = call_begin(&run->main_slot, OP_CONNECT, 15000);
		int rc = p->async_connect ? tlsq_connect_start(eng, addr, ctls, &cs->c)
		                          : tlsq_connect(eng, addr, ctls, &cs->c, 15000);
		call_end(&run->main_slot, "client", OP_CONNECT, 15000, t0, rc, 0);
		if (rc != TLSQ_OK) {
			hs_failed = rc;
			cs->c = NULL;
		} else if (p->async_connect) {
			side_start(run, cs); /* sends queued before the handshake go out after */
		}
	}
	if (ss) {
		int t = cs && !cs->c ? 500 : 7000;
		uint64_t t0 = call_begin(&run->main_slot, OP_ACCEPT, t);
		int rc = tlsq_accept(lis, &ss->c, t);
		call_end(&run->main_slot, "server", OP_ACCEPT, t, t0, rc, 0);
		if (rc != TLSQ_OK) {
			ss->c = NULL;
			if (!hs_failed)
				hs_failed = rc;
		}
	}
	if (cs && cs->c && p->async_connect) {
		uint64_t t0 = call_begin(&run->main_slot, OP_CONNECT, 15000);
		int rc = tlsq_connect_wait(cs->c, 15000);
		call_end(&run->main_slot, "client", OP_CONNECT, 15000, t0, rc, 0);
		if (rc != TLSQ_OK && !hs_failed)
			hs_failed = rc;
	}
	if (cs && cs->c && !p->async_connect)
		side_start(run, cs);
	if (ss && ss->c)
		side_start(run, ss);
	for (int i = 0; i < 2; i++)
		if (!run->side[i].c)
			run->side[i].nthreads = 0;

	/* Chaos: the workers run on their own for chaos_ms. Waiting out a
	 * duration is the workload's length, not synchronisation. */
	struct timespec ts = {p->chaos_ms / 1000, (long)(p->chaos_ms % 1000) * 1000000};
	nanosleep(&ts, NULL);

	atomic_store(&run->drain_deadline_ms, tt_now_ms() + DRAIN_STALL_MS);
	atomic_store(&run->phase, p->end == END_STOP_FREE ? PH_STOP : PH_DRAIN);
	for (int i = 0; i < 2; i++) {
		struct side *s = &run->side[i];
		if (!s->c)
			continue;
		wait_senders_out(s);
		if (p->end == END_STOP_FREE)
			continue;
		/* half-close: the peer's receivers read to the end */
		atomic_store(&s->end_requested, 1);
		uint64_t t0 = call_begin(&run->main_slot, OP_SHUTDOWN, 0);
		int rc = tlsq_shutdown_send(s->c);
		call_end(&run->main_slot, s->name, OP_SHUTDOWN, 0, t0, rc, 1);
		if (rc != TLSQ_OK && rc != TLSQ_ECLOSED && !is_terminal(rc))
			tt_fail("%s: shutdown_send returned %d", s->name, rc);
	}
	for (int i = 0; i < 2; i++)
		side_join(&run->side[i]);
	/* A KeyUpdate answer wolfSSL builds after our close_notify (the peer's
	 * request crossed it) is never sent (tls.c), so the peer's socket is
	 * closed only after all our bytes reached it, whatever its linger:
	 * seed 141 (linger 0) and seed 26 (tiny segments) ended in a RST
	 * before that. */
	/* drain+free is not a promise of a clean end: the background close of
	 * a freed handle, flushing included, is bounded by close_linger_ms
	 * (tlsq.h), and a slow link (or ASan) can need longer (seed 6). */
	int clean_class = !hs_failed && p->end == END_DRAIN_CLOSE;
	/* read the relay's faults only at the end: a fault may still fire */
	for (int i = 0; i < 2; i++)
		main_close(run, &run->side[i], clean_class);
	uint64_t t0 = call_begin(&run->main_slot, OP_ENGINE_FREE, 15000);
	tlsq_listener_free(lis);
	lis = NULL;
	tlsq_engine_free(eng);
	eng = NULL;
	call_end(&run->main_slot, "main", OP_ENGINE_FREE, 15000, t0, 0, 1);
	tt_relay_stop(relay, fired, relayed);
	relay = NULL;
	const struct tt_ossl_result * or = ossl ? tt_ossl_join(ossl) : NULL;

	/* ---- invariants ---- */
	int fault = fired[0] || fired[1];
	int closed_early =
	    atomic_load(&run->side[0].local_closed) || atomic_load(&run->side[1].local_closed);
	if (hs_failed && !fault && !closed_early)
		tt_fail("handshake failed without a fault: %d (%s)", hs_failed,
		        tlsq_strerror(hs_failed));
	struct side *a = &run->side[0], *b = &run->side[1];
	if (!openssl) {
		check_direction("client->server", a->sent_ok, a->nthreads, &b->log, p->msg,
		                atomic_load(&b->got_end), "server received");
		check_direction("server->client", b->sent_ok, b->nthreads, &a->log, p->msg,
		                atomic_load(&a->got_end), "client received");
	} else if (or) {
		check_direction("tlsq->openssl", a->sent_ok, a->nthreads, & or->log, 0,
		                or->clean_end, "openssl received");
		/* the echo: what came back is a prefix of what OpenSSL got */
		_Atomic uint32_t echoed[TT_MAX_TID];
		for (int k = 0; k < TT_MAX_TID; k++)
			atomic_init(&echoed[k], or->log.next[k]);
		check_direction("openssl echo->tlsq", echoed, a->nthreads, &a->log, 0,
		                atomic_load(&a->got_end), "tlsq received");
	}
	if (clean_class && !fault) {
		for (int i = 0; i < (openssl ? 1 : 2); i++) {
			struct side *s = &run->side[i];
			if (!atomic_load(&s->got_end))
				tt_fail("%s: no fault, drained, but no clean end (rx error %d, %s)",
				        s->name, atomic_load(&s->rx_err),
				        atomic_load(&s->stalled) ? "stalled: 20 s without a byte"
				                                 : "not stalled");
			if (atomic_load(&s->tx_err))
				tt_fail("%s: no fault but a send failed with %d", s->name,
				        atomic_load(&s->tx_err));
			if (p->end == END_DRAIN_CLOSE &&
			    (s->close_rc != TLSQ_OK || s->close_phase != TLSQ_CLOSE_DONE))
				tt_fail(
				    "%s: no fault but tlsq_close returned %d (%s), phase %d: %s",
				    s->name, s->close_rc, tlsq_strerror(s->close_rc),
				    s->close_phase, s->close_reason);
		}
		if (or &&(! or->clean_end || or->error))
			tt_fail("openssl peer: no fault but no clean end: %s", or->reason);
	}
	if (tt_verbose) {
		printf("  relayed %" PRIu64 "/%" PRIu64 " bytes, fault %d/%d, hs %d", relayed[0],
		       relayed[1], fired[0], fired[1], hs_failed);
		for (int i = 0; i < 2; i++) {
			struct side *s = &run->side[i];
			if (s->nthreads)
				printf("; %s rx %" PRIu64 " chunks end %d err %d/%d close %d",
				       s->name, s->log.chunks, atomic_load(&s->got_end),
				       atomic_load(&s->rx_err), atomic_load(&s->tx_err),
				       s->close_rc);
		}
		if (or)
			printf("; openssl in %" PRIu64 " out %" PRIu64
			       " clean %d after-close %" PRIu64 " %s",
			       or->bytes_in, or->bytes_out, or->clean_end, or->after_close,
			       or->reason);
		printf("\n");
	}
out:
	pthread_mutex_lock(&run->wd_mu);
	run->wd_done = 1;
	pthread_cond_signal(&run->wd_cv);
	pthread_mutex_unlock(&run->wd_mu);
	pthread_join(wd, NULL);
	if (relay)
		tt_relay_stop(relay, fired, relayed);
	for (int i = 0; i < 2; i++)
		if (run->side[i].c && !run->side[i].freed && !run->side[i].nthreads)
			tlsq_conn_free(run->side[i].c);
	tlsq_listener_free(lis);
	tlsq_engine_free(eng);
	if (ossl) {
		tt_ossl_join(ossl);
		tt_ossl_free(ossl);
	}
	tlsq_tls_free(stls);
	tlsq_tls_free(ctls);
	free(ossl_pem);
	for (int i = 0; i < 2; i++)
		tt_rxlog_fini(&run->side[i].log);
	free(run);
}

/* ---- main -------------------------------------------------------------- */

static void usage(void)
{
	printf(
	    "usage: torture [--seed N | --start N --seeds N | --seconds S] [--mode tlsq|openssl]\n"
	    "               [--repeat R] [--slack-ms MS] [--hang-ms MS] [-v]\n"
	    "Runs seeds (default: from seed 1 for %d s, every 4th seed in openssl mode)\n"
	    "and prints 'TORTURE FAIL seed=N: ...' for each broken invariant.\n",
	    TORTURE_DEFAULT_SECONDS);
}

int main(int argc, char **argv)
{
	/* The OpenSSL peer (ossl.c) writes with OpenSSL's socket BIO, i.e.
	 * write(): a reset from tlsq would kill the harness with SIGPIPE (a
	 * one-hour run ended with exit 141). tlsq's own threads block every
	 * signal (iothread.c), the relay sends with MSG_NOSIGNAL. */
	signal(SIGPIPE, SIG_IGN);
	uint64_t start = 1, nseeds = 0;
	int seconds = -1, repeat = 1;
	const char *mode = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-v")) {
			tt_verbose = 1;
			continue;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage();
			return 0;
		}
		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (!strcmp(a, "--seed")) {
			start = strtoull(v, NULL, 0);
			nseeds = 1;
		} else if (!strcmp(a, "--start")) {
			start = strtoull(v, NULL, 0);
		} else if (!strcmp(a, "--seeds")) {
			nseeds = strtoull(v, NULL, 0);
		} else if (!strcmp(a, "--seconds")) {
			seconds = atoi(v);
		} else if (!strcmp(a, "--mode")) {
			mode = v;
		} else if (!strcmp(a, "--repeat")) {
			repeat = atoi(v);
		} else if (!strcmp(a, "--slack-ms")) {
			slack_ms = atoi(v);
		} else if (!strcmp(a, "--hang-ms")) {
			hang_ms = atoi(v);
		} else {
			usage();
			return 2;
		}
	}
	if (mode && strcmp(mode, "tlsq") && strcmp(mode, "openssl")) {
		usage();
		return 2;
	}
	if (seconds < 0 && nseeds == 0)
		seconds = TORTURE_DEFAULT_SECONDS;
	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t t_end = seconds > 0 ? tt_now_ms() + (uint64_t)seconds * 1000 : UINT64_MAX;
	uint64_t t_start = tt_now_ms();
	for (uint64_t seed = start;; seed++) {
		if (nseeds && seed - start >= nseeds)
			break;
		if (tt_now_ms() >= t_end)
			break;
		int openssl =
		    mode ? !strcmp(mode, "openssl") : tt_ossl_available() && seed % 4 == 3;
		for (int r = 0; r < repeat; r++) {
			cur_seed = seed;
			cur_mode = openssl ? "openssl" : "tlsq";
			cur_failed = 0;
			run_seed(seed, openssl);
			seeds_run++;
			if (cur_failed) {
				seeds_failed++;
				break;
			}
		}
	}
	printf("torture: %lu seeds, %lu failed (%.1f s, seeds %" PRIu64 "..)\n", seeds_run,
	       seeds_failed, (double)(tt_now_ms() - t_start) / 1000.0, start);
	return seeds_failed ? 1 : 0;
}
