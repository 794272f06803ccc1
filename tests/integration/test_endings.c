/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The ending matrix (G5, G6, G7; tlsq.h "Data received before an error is
 * always delivered first"): every way a connection ends x the state of the
 * receiver's queues at that moment x stream/message mode x the receiver R
 * being the client or the server. R and its peer S run on their own
 * engines in this process, joined through a relay (relay.h) on real
 * loopback sockets that can send a FIN, a RST, corrupt a record, or stall.
 *
 * Endings (rows), applied to R:
 *   close_notify  S calls tlsq_shutdown_send after its data
 *   fin           the relay sends R a FIN (no close_notify) after S's data
 *   rst           the relay resets R's socket
 *   corrupt       the relay corrupts a record S->R: R fails (TLSQ_ETLS,
 *                 bad record) and sends S a fatal alert
 *   alert         the relay corrupts a record R->S: S fails and R receives
 *                 S's fatal alert (TLSQ_ETLS, the reason names the alert)
 *   idle          idle_timeout_ms on R; the relay stalls
 *   hs_timeout    handshake_timeout_ms on R; the relay stalls from the start
 *   storm         max_key_updates_per_s = 1 on R; S asks for KeyUpdates
 *   close, abort, shutdown   tlsq_close(R, 0) / tlsq_abort / tlsq_shutdown_send(R)
 *   free          tlsq_conn_free(R) while threads are blocked on it
 *   engine_free   tlsq_engine_free(R's engine)
 * Queue states (columns) at the moment of the end:
 *   connecting    a thread blocked in tlsq_connect_wait (R client) or
 *                 tlsq_accept (R server), the relay stalled
 *   empty         R's rx queue empty, a thread blocked in recv
 *   partial       some data queued in R, nobody reading
 *   full          R's rx queue full and the IO task holding a decrypted
 *                 chunk back (recv_parked), more on the way; R reads only
 *                 after the end
 *   send          a thread blocked in send on R (S does not read) and one
 *                 blocked in recv
 * Each cell checks what R's application got (a prefix of S's stream by
 * pattern; the whole of it for clean ends; everything tlsq decrypted,
 * delivered == bytes_received, for failures), the exact code after the
 * data, that every blocked call returned within a bound, and (in the
 * sanitizer builds) no leak and no race.
 *
 * TLSQ_ENDINGS_FILTER=fin,full runs only cells whose line contains every
 * comma-separated word. TLSQ_ENDINGS_BOUND_MS sets the bound (default 8000).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"
#include "support/support.h"

enum ending {
	E_CLOSE_NOTIFY,
	E_FIN,
	E_RST,
	E_CORRUPT,
	E_ALERT,
	E_IDLE,
	E_HS_TIMEOUT,
	E_STORM,
	E_CLOSE,
	E_ABORT,
	E_SHUTDOWN,
	E_FREE,
	E_ENGINE_FREE,
	E_COUNT
};
static const char *ending_name[] = {"close_notify", "fin",        "rst",        "corrupt", "alert",
                                    "idle",         "hs_timeout", "storm",      "close",   "abort",
                                    "shutdown",     "free",       "engine_free"};
enum state { Q_CONNECTING, Q_EMPTY, Q_PARTIAL, Q_FULL, Q_SEND, Q_COUNT };
static const char *state_name[] = {"connecting", "empty", "partial", "full", "send"};

#define RX_BUDGET     (64 * 1024)
#define PARTIAL_BYTES (24 * 1024)
#define FULL_BYTES    (192 * 1024) /* 3 x rx_budget: R holds some, the relay the rest */
#define DEADLINE_MS   600          /* idle and handshake timeouts */

static int bound_ms = 8000; /* a blocked call must return within this */
static int call_ms;         /* per-call timeout: a hang shows as a late return */

/* What the data check expects after the end. */
enum expect_data {
	D_ALL,       /* everything S sent, then the code */
	D_DECRYPTED, /* delivered == bytes_received (whole messages: == msgs_received) */
	D_PREFIX,    /* a prefix (local close discards what was queued) */
	D_NONE,      /* nothing to read (handle gone or never opened) */
};

struct cell {
	enum ending end;
	enum state st;
	tlsq_mode mode;
	tlsq_role role; /* R's role */
	char name[128];
	char why[512]; /* first failure */
	int failed;
};

static void fail(struct cell *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct cell *c, const char *fmt, ...)
{
	if (c->failed++)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof c->why, fmt, ap);
	va_end(ap);
}

/* ---- S's stream: a pattern in stream mode, messages of known sizes ---- */

#define SEED_S 0x5eed5u
#define SEED_R 0x7eed7u

static size_t msg_len(uint64_t k)
{
	return 64 + (size_t)((k * 2654435761u) % 1900);
}

struct writer {
	tlsq_conn *c;
	tlsq_mode mode;
	uint64_t seed;
	uint64_t off;   /* payload bytes sent */
	uint64_t count; /* messages sent */
};

/* Sends at least n more payload bytes. Returns 0 or the error. */
static int w_send(struct writer *w, uint64_t n, int timeout_ms)
{
	unsigned char buf[4096];
	uint64_t goal = w->off + n;
	while (w->off < goal) {
		size_t len =
		    w->mode == TLSQ_MODE_STREAM
		        ? (goal - w->off < sizeof buf ? (size_t)(goal - w->off) : sizeof buf)
		        : msg_len(w->count);
		ts_fill(w->seed, w->off, buf, len);
		int rc = w->mode == TLSQ_MODE_STREAM ? (int)tlsq_send(w->c, buf, len, timeout_ms)
		                                     : tlsq_send_msg(w->c, buf, len, timeout_ms);
		if (rc < 0)
			return rc;
		w->off += len;
		w->count++;
	}
	return 0;
}

/* Plaintext bytes on the wire for the first k messages (frame headers too). */
static uint64_t msgs_wire(uint64_t k)
{
	uint64_t t = 0;
	for (uint64_t i = 0; i < k; i++)
		t += 4 + msg_len(i);
	return t;
}

/* ---- R's reader: checks every byte against S's pattern ---- */

struct reader {
	tlsq_conn *c;
	tlsq_mode mode;
	_Atomic uint64_t off, count;
	int bad;               /* a byte or a message did not match */
	int code;              /* what ended the reading */
	uint64_t ended_ms;     /* when */
	uint64_t last_call_ms; /* how long the last call took */
	_Atomic int done;
};

static void r_drain(struct reader *r)
{
	static _Thread_local unsigned char buf[65536], want[65536];
	for (;;) {
		uint64_t t0 = ts_now_ms();
		ssize_t n = r->mode == TLSQ_MODE_STREAM
		                ? tlsq_recv(r->c, buf, sizeof buf, call_ms)
		                : tlsq_recv_msg(r->c, buf, sizeof buf, call_ms);
		r->last_call_ms = ts_now_ms() - t0;
		uint64_t off = atomic_load(&r->off), k = atomic_load(&r->count);
		if (r->mode == TLSQ_MODE_STREAM ? n > 0 : n >= 0) {
			if (r->mode == TLSQ_MODE_MESSAGE && (size_t)n != msg_len(k))
				r->bad = 1;
			ts_fill(SEED_S, off, want, (size_t)n);
			if (memcmp(buf, want, (size_t)n) != 0)
				r->bad = 1;
			atomic_store(&r->off, off + (uint64_t)n);
			atomic_store(&r->count, k + 1);
			continue;
		}
		r->code = (int)n;
		r->ended_ms = ts_now_ms();
		atomic_store(&r->done, 1);
		return;
	}
}

static void *reader_main(void *arg)
{
	r_drain(arg);
	return NULL;
}

/* R's sender in the `send` state: sends until the connection refuses. */
struct sender {
	struct writer w;
	int code;
	uint64_t ended_ms;
	_Atomic uint32_t started; /* tlsq send calls begun */
	uint32_t last;            /* the number of the call that returned `code` */
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	int rc;
	uint32_t n;
	/* one tlsq call per w_send, so `started` counts calls */
	do
		n = atomic_fetch_add(&s->started, 1) + 1;
	while ((rc = w_send(&s->w, s->w.mode == TLSQ_MODE_STREAM ? 4096 : msg_len(s->w.count),
	                    call_ms)) == 0);
	s->code = rc;
	s->last = n;
	s->ended_ms = ts_now_ms();
	return NULL;
}

/* A thread blocked in connect_wait or accept. */
struct opener {
	tlsq_conn *c;     /* connect_wait on this, or */
	tlsq_listener *l; /* accept on this */
	tlsq_conn *accepted;
	int timeout_ms;
	int code;
	uint64_t ended_ms;
	_Atomic int entered;
};

static void *opener_main(void *arg)
{
	struct opener *o = arg;
	atomic_store(&o->entered, 1);
	o->code = o->c ? tlsq_connect_wait(o->c, o->timeout_ms)
	               : tlsq_accept(o->l, &o->accepted, o->timeout_ms);
	o->ended_ms = ts_now_ms();
	return NULL;
}

/* ---- conditions ---- */

static struct tlsq_conn_info info_of(tlsq_conn *c)
{
	struct tlsq_conn_info i;
	tlsq_conn_info(c, &i);
	return i;
}

static int recv_blocked(void *arg)
{
	struct reader *r = arg;
	return info_of(r->c).blocked_receivers >= 1;
}
static int send_blocked(void *arg)
{
	return info_of(arg).blocked_senders >= 1;
}
static int recv_parked(void *arg)
{
	return info_of(arg).recv_parked;
}
struct counted {
	void *c; /* a tlsq_conn, or a struct reader for delivered_enough */
	uint64_t want;
	int msgs;
};
static int received_enough(void *arg)
{
	struct counted *w = arg;
	struct tlsq_conn_info i = info_of(w->c);
	return (w->msgs ? i.msgs_received : i.bytes_received) >= w->want;
}
static int delivered_enough(void *arg)
{
	struct counted *w = arg; /* c unused: the reader's own counts */
	struct reader *r = w->c;
	return (w->msgs ? atomic_load(&r->count) : atomic_load(&r->off)) >= w->want;
}
static int ku_received(void *arg)
{
	struct counted *w = arg;
	return info_of(w->c).key_updates_received >= w->want;
}
struct relay_fin_arg {
	relay *r;
	int side;
};
static int fin_done(void *arg)
{
	struct relay_fin_arg *a = arg;
	return relay_fin_done(a->r, a->side);
}
static int opener_entered(void *arg)
{
	return atomic_load(&((struct opener *)arg)->entered);
}

/* ---- the cell's expectations ---- */

static int n_a(const struct cell *c, const char **why)
{
	int connecting = c->st == Q_CONNECTING;
	if (c->end == E_HS_TIMEOUT && !connecting)
		return *why = "the handshake already completed", 1;
	if (connecting && c->end != E_HS_TIMEOUT && c->end != E_CLOSE && c->end != E_ABORT &&
	    c->end != E_FREE && c->end != E_ENGINE_FREE)
		return *why = "needs an established connection", 1;
	if (connecting && c->role == TLSQ_SERVER &&
	    (c->end == E_CLOSE || c->end == E_ABORT || c->end == E_FREE))
		return *why = "a server has no handle before tlsq_accept returns it", 1;
	if (c->end == E_CLOSE_NOTIFY && c->st == Q_SEND)
		return *why = "close_notify ends only S's sending: R may go on sending, a blocked "
		              "sender legitimately stays blocked",
		       1;
	return 0;
}

/* The code R's receivers get after the data. */
static int expected_recv_code(const struct cell *c)
{
	switch (c->end) {
	case E_CLOSE_NOTIFY:
	case E_SHUTDOWN:
		return c->mode == TLSQ_MODE_STREAM ? 0 : TLSQ_ECLOSED;
	case E_FIN:
		return TLSQ_ETRUNCATED;
	case E_RST:
		return TLSQ_ECONNRESET;
	case E_CORRUPT:
	case E_ALERT:
	case E_STORM:
		return TLSQ_ETLS;
	case E_IDLE:
	case E_HS_TIMEOUT:
		return TLSQ_ETIMEDOUT;
	default:
		return TLSQ_ECLOSED;
	}
}

/* The code R's blocked senders get. */
static int expected_send_code(const struct cell *c)
{
	switch (c->end) {
	case E_SHUTDOWN:
		return TLSQ_ECLOSED;
	default:
		return expected_recv_code(c) == 0 ? TLSQ_ECLOSED : expected_recv_code(c);
	}
}

static enum expect_data expected_data(const struct cell *c)
{
	switch (c->end) {
	case E_CLOSE_NOTIFY:
	case E_FIN:
	case E_SHUTDOWN:
		return D_ALL;
	case E_CLOSE:
	case E_ABORT:
		return D_PREFIX;
	case E_FREE:
	case E_HS_TIMEOUT:
		return D_NONE;
	default:
		return D_DECRYPTED;
	}
}

/* A reason fragment the error must contain, or NULL. */
static const char *expected_reason(const struct cell *c)
{
	switch (c->end) {
	case E_ALERT:
		return "alert";
	case E_STORM:
		return "KeyUpdates";
	case E_IDLE:
		return "idle";
	default:
		return NULL;
	}
}

/* ---- one cell ---- */

struct world {
	tlsq_engine *es, *er;
	tlsq_tls *stls, *ctls;
	tlsq_listener *l;
	relay *rl;
	tlsq_conn *r, *s;   /* R and S */
	int r_side, s_side; /* relay sides */
};

static void configs(const struct cell *c, tlsq_engine_config *cr, tlsq_engine_config *cs)
{
	ts_engine_config(cr);
	cr->io_threads = 1;
	cr->rx_budget = RX_BUDGET;
	cr->tx_budget = 32 * 1024;
	cr->cipher_buffer = 16 * 1024;
	cr->socket_buffer = 8 * 1024;
	cr->close_linger_ms = 200;
	cr->keepalive_s = 0;
	if (c->end == E_IDLE)
		cr->idle_timeout_ms = DEADLINE_MS;
	if (c->end == E_HS_TIMEOUT)
		cr->handshake_timeout_ms = DEADLINE_MS;
	if (c->end == E_STORM) {
		cr->max_key_updates_per_s = 1;
		/* The two KeyUpdates must reach R within one second, with the
		 * whole burst of the full state between them: an 8 KiB buffer
		 * set on an accepted socket makes loopback crawl (~100 KB/s, see
		 * the report in docs/guarantees.md), so the kernel's default. */
		cr->socket_buffer = 0;
	}
	*cs = *cr;
	cs->tx_budget = 256 * 1024; /* S queues its whole burst */
	cs->idle_timeout_ms = 0;
	cs->handshake_timeout_ms = 10000;
	cs->max_key_updates_per_s = 100;
}

static int open_world(struct cell *c, struct world *w)
{
	tlsq_engine_config cr, cs;
	configs(c, &cr, &cs);
	memset(w, 0, sizeof *w);
	if (tlsq_engine_new(&cr, &w->er) || tlsq_engine_new(&cs, &w->es)) {
		fail(c, "engine: %s", tlsq_last_error());
		return -1;
	}
	ts_profiles(c->mode, &w->stls, &w->ctls);
	tlsq_engine *srv = c->role == TLSQ_SERVER ? w->er : w->es;
	tlsq_engine *cli = c->role == TLSQ_SERVER ? w->es : w->er;
	if (tlsq_listen(srv, "127.0.0.1:0", w->stls, &w->l)) {
		fail(c, "listen: %s", tlsq_last_error());
		return -1;
	}
	/* Toward R the relay holds up to 1 MiB, so that S's flush completes
	 * while R does not read; toward S little, so that R's send side fills. */
	w->r_side = c->role == TLSQ_SERVER ? RELAY_SERVER : RELAY_CLIENT;
	w->s_side = !w->r_side;
	uint32_t cap[2];
	cap[w->r_side] = 1u << 20;
	cap[w->s_side] = 32 * 1024;
	int stalled = c->st == Q_CONNECTING;
	w->rl = relay_start(tlsq_listener_port(w->l), cap, stalled);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", relay_port(w->rl));
	tlsq_conn *cc = NULL, *sc = NULL;
	if (stalled) {
		/* The handshake never completes; the cell drives the rest. */
		if (tlsq_connect_start(cli, addr, w->ctls, &cc)) {
			fail(c, "connect_start: %s", tlsq_last_error());
			return -1;
		}
		if (c->role == TLSQ_CLIENT)
			w->r = cc;
		else
			w->s = cc;
		return 0;
	}
	if (tlsq_connect(cli, addr, w->ctls, &cc, call_ms)) {
		fail(c, "connect: %s", tlsq_last_error());
		return -1;
	}
	if (tlsq_accept(w->l, &sc, call_ms)) {
		tlsq_conn_free(cc);
		fail(c, "accept failed");
		return -1;
	}
	w->r = c->role == TLSQ_SERVER ? sc : cc;
	w->s = c->role == TLSQ_SERVER ? cc : sc;
	return 0;
}

static void close_world(struct world *w)
{
	/* The relay first: frees below must not wait on it. */
	relay_stop(w->rl);
	tlsq_conn_free(w->s);
	tlsq_conn_free(w->r);
	tlsq_listener_free(w->l);
	tlsq_engine_free(w->es);
	tlsq_engine_free(w->er);
	tlsq_tls_free(w->stls);
	tlsq_tls_free(w->ctls);
}

static void check_within(struct cell *c, const char *who, uint64_t t0, uint64_t ended)
{
	if (ended < t0 || ended - t0 > (uint64_t)bound_ms)
		fail(c, "%s returned %llu ms after the end (bound %d ms)", who,
		     (unsigned long long)(ended - t0), bound_ms);
}

/* The connecting column: a thread blocked in connect_wait / accept. */
static void run_connecting(struct cell *c, struct world *w, int *code_out)
{
	struct opener o = {.timeout_ms = call_ms};
	int server = c->role == TLSQ_SERVER;
	if (server) {
		o.l = w->l;
		/* A handshake that fails never appears in accept: with the
		 * handshake deadline, accept returns at its own timeout. */
		if (c->end == E_HS_TIMEOUT)
			o.timeout_ms = 3 * DEADLINE_MS;
	} else {
		o.c = w->r;
	}
	ts_thread th = ts_spawn(opener_main, &o);
	ts_wait_for(opener_entered, &o, bound_ms);
	uint64_t t0 = ts_now_ms();
	switch (c->end) {
	case E_HS_TIMEOUT:
		break;
	case E_CLOSE: {
		int rc = tlsq_close(w->r, 0, NULL);
		if (rc != TLSQ_EAGAIN && rc != TLSQ_ECLOSED)
			fail(c, "tlsq_close(0) returned %d", rc);
		break;
	}
	case E_ABORT:
		tlsq_abort(w->r);
		break;
	case E_FREE:
		tlsq_conn_free(w->r);
		w->r = NULL;
		break;
	case E_ENGINE_FREE:
		tlsq_engine_free(w->er);
		w->er = NULL;
		break;
	default:
		break;
	}
	ts_join(th);
	if (o.accepted) {
		fail(c, "accept returned a connection that never completed its handshake");
		tlsq_conn_free(o.accepted);
	}
	int want = c->end == E_HS_TIMEOUT ? TLSQ_ETIMEDOUT : TLSQ_ECLOSED;
	*code_out = o.code;
	if (o.code != want)
		fail(c, "%s returned %d (%s), want %d (%s)", server ? "accept" : "connect_wait",
		     o.code, tlsq_strerror(o.code), want, tlsq_strerror(want));
	if (c->end == E_HS_TIMEOUT && server) {
		/* R's deadline is seen as R closing its socket at the relay. */
		uint64_t from = relay_connected_ms(w->rl), at = relay_closed_ms(w->rl, w->r_side);
		if (from == 0 || at == 0)
			fail(c, "R never closed the silent connection (deadline %d ms)",
			     DEADLINE_MS);
		else if (at - from < DEADLINE_MS / 2 || at - from > (uint64_t)bound_ms)
			fail(c, "R closed the silent connection after %llu ms (deadline %d ms)",
			     (unsigned long long)(at - from), DEADLINE_MS);
	} else if (c->end == E_HS_TIMEOUT) {
		/* The deadline runs from the TCP connect (the relay's accept). */
		uint64_t from = relay_connected_ms(w->rl);
		if (from == 0 || o.ended_ms - from < DEADLINE_MS / 2)
			fail(c, "connect_wait gave up after %llu ms, before the %d ms deadline",
			     (unsigned long long)(o.ended_ms - from), DEADLINE_MS);
		check_within(c, "connect_wait", from, o.ended_ms);
		char b[16];
		ssize_t n = c->mode == TLSQ_MODE_STREAM ? tlsq_recv(w->r, b, sizeof b, 0)
		                                        : tlsq_recv_msg(w->r, b, sizeof b, 0);
		if (n != TLSQ_ETIMEDOUT)
			fail(c, "recv after the handshake deadline returned %zd, want %d", n,
			     TLSQ_ETIMEDOUT);
	} else {
		check_within(c, server ? "accept" : "connect_wait", t0, o.ended_ms);
	}
}

/* S asks for a KeyUpdate and waits until R answered it (R's answer comes
 * before R's "k" in the stream, so once S has the "k" its next KeyUpdate
 * asks for an update again). */
static int ku_round_trip(struct cell *c, struct world *w, uint32_t nth)
{
	if (tlsq_key_update(w->s) != TLSQ_OK)
		return fail(c, "tlsq_key_update(S) failed"), -1;
	struct counted k = {w->r, nth, 0};
	if (!ts_wait_for(ku_received, &k, bound_ms))
		return fail(c, "R did not see KeyUpdate %u", nth), -1;
	char b[8];
	int rc = c->mode == TLSQ_MODE_STREAM ? (int)tlsq_send(w->r, "k", 1, call_ms)
	                                     : tlsq_send_msg(w->r, "k", 1, call_ms);
	ssize_t n = c->mode == TLSQ_MODE_STREAM ? tlsq_recv(w->s, b, sizeof b, call_ms)
	                                        : tlsq_recv_msg(w->s, b, sizeof b, call_ms);
	if (rc < 0 || n != 1)
		return fail(c, "KeyUpdate round trip: send %d recv %zd", rc, n), -1;
	return 0;
}

static void run_open(struct cell *c, struct world *w, int *code_out, uint64_t *delivered_out)
{
	int stream = c->mode == TLSQ_MODE_STREAM;
	struct writer sw = {w->s, c->mode, SEED_S, 0, 0};
	struct reader rd = {.c = w->r, .mode = c->mode};
	struct sender snd = {.w = {w->r, c->mode, SEED_R, 0, 0}};
	uint32_t snd_at_end = 0;
	ts_thread rth = {0}, sth = {0}, drain_s = {0};
	int have_rth = 0, have_sth = 0, have_drain_s = 0;
	struct reader sdrain = {.c = w->s, .mode = c->mode};

	if (c->end == E_STORM && ku_round_trip(c, w, 1) < 0)
		return;

	/* ---- the queue state ---- */
	switch (c->st) {
	case Q_EMPTY:
	case Q_SEND: {
		if (w_send(&sw, PARTIAL_BYTES, call_ms)) {
			fail(c, "S could not send");
			return;
		}
		rth = ts_spawn(reader_main, &rd);
		have_rth = 1;
		struct counted want = {&rd, stream ? sw.off : sw.count, !stream};
		if (!ts_wait_for(delivered_enough, &want, bound_ms) ||
		    !ts_wait_for(recv_blocked, &rd, bound_ms))
			fail(c, "setup: R's reader did not get S's data and block");
		if (c->st == Q_SEND) {
			sth = ts_spawn(sender_main, &snd);
			have_sth = 1;
			if (!ts_wait_for(send_blocked, w->r, bound_ms))
				fail(c, "setup: R's sender did not block");
		}
		break;
	}
	case Q_PARTIAL:
	case Q_FULL: {
		int full = c->st == Q_FULL;
		if (w_send(&sw, full ? FULL_BYTES : PARTIAL_BYTES, call_ms) ||
		    tlsq_flush(w->s, call_ms) != TLSQ_OK) {
			fail(c, "S could not send and flush");
			return;
		}
		if (full) {
			if (!ts_wait_for(recv_parked, w->r, bound_ms))
				fail(c, "setup: R never parked its receive side");
		} else {
			struct counted want = {w->r, stream ? sw.off : sw.count, !stream};
			if (!ts_wait_for(received_enough, &want, bound_ms))
				fail(c, "setup: R did not receive S's data");
		}
		break;
	}
	default:
		break;
	}
	if (c->failed)
		goto out;

	/* ---- the end ---- */
	uint64_t t0 = ts_now_ms();
	switch (c->end) {
	case E_CLOSE_NOTIFY:
		if (tlsq_shutdown_send(w->s) != TLSQ_OK)
			fail(c, "tlsq_shutdown_send(S) failed");
		break;
	case E_FIN: {
		if (tlsq_flush(w->s, call_ms) != TLSQ_OK)
			fail(c, "S's flush failed");
		relay_fin(w->rl, w->r_side, info_of(w->s).tls_bytes_sent);
		struct relay_fin_arg a = {w->rl, w->r_side};
		/* In the full state the FIN waits behind what R has not read. */
		if (c->st != Q_FULL && !ts_wait_for(fin_done, &a, bound_ms))
			fail(c, "the relay did not send the FIN");
		break;
	}
	case E_RST:
		relay_rst(w->rl, w->r_side);
		break;
	case E_CORRUPT:
		/* One record (one call): a second could already meet R's alert. */
		relay_corrupt(w->rl, w->r_side);
		if (w_send(&sw, stream ? 100 : 1, call_ms))
			fail(c, "S could not send the record to corrupt");
		break;
	case E_ALERT:
		relay_corrupt(w->rl, w->s_side);
		if (c->st == Q_SEND) {
			/* R's data is queued at the relay already; S must read to
			 * find the bad record. */
			drain_s = ts_spawn(reader_main, &sdrain);
			have_drain_s = 1;
		} else {
			struct writer rw = {w->r, c->mode, SEED_R, 0, 0};
			if (w_send(&rw, stream ? 100 : 1, call_ms))
				fail(c, "R could not send the record to corrupt");
		}
		break;
	case E_IDLE:
		relay_stall(w->rl);
		break;
	case E_STORM:
		if (tlsq_key_update(w->s) != TLSQ_OK)
			fail(c, "second tlsq_key_update(S) failed");
		break;
	case E_CLOSE: {
		int rc = tlsq_close(w->r, 0, NULL);
		if (rc != TLSQ_EAGAIN)
			fail(c, "tlsq_close(R, 0) returned %d, want TLSQ_EAGAIN", rc);
		break;
	}
	case E_ABORT:
		tlsq_abort(w->r);
		break;
	case E_SHUTDOWN:
		if (tlsq_shutdown_send(w->r) != TLSQ_OK || tlsq_shutdown_send(w->s) != TLSQ_OK)
			fail(c, "tlsq_shutdown_send failed");
		break;
	case E_FREE:
		/* The call R's sender is blocked in now (or, if the pipeline
		 * still drained, a later one: see the check below). */
		snd_at_end = atomic_load(&snd.started);
		tlsq_conn_free(w->r);
		w->r = NULL;
		break;
	case E_ENGINE_FREE:
		tlsq_engine_free(w->er);
		w->er = NULL;
		break;
	default:
		break;
	}

	/* ---- blocked threads return ---- */
	if (have_sth) {
		ts_join(sth);
		have_sth = 0;
		check_within(c, "R's blocked send", t0, snd.ended_ms);
		/* alert x send: S fails with R's data unread in its socket, so its
		 * close is a RST right behind the alert; R, writing, may meet the
		 * reset before it reads the alert. Either is a correct report. */
		int alt = c->end == E_ALERT && c->st == Q_SEND ? TLSQ_ECONNRESET : 1;
		/* free x send: the sender was blocked when we looked, but the
		 * pipeline may still drain a little, so that call can return
		 * and the next one begin just as the handle is freed. A call that
		 * begins after tlsq_conn_free gets TLSQ_EINVAL (the header); the
		 * call that was blocked must get TLSQ_ECLOSED. */
		if (c->end == E_FREE && snd.code == TLSQ_EINVAL && snd.last > snd_at_end)
			alt = TLSQ_EINVAL;
		if (snd.code != expected_send_code(c) && snd.code != alt)
			fail(c, "R's blocked send returned %d (%s), want %d (%s)", snd.code,
			     tlsq_strerror(snd.code), expected_send_code(c),
			     tlsq_strerror(expected_send_code(c)));
	}
	if (have_rth) {
		ts_join(rth);
		have_rth = 0;
		check_within(c, "R's blocked recv", t0, rd.ended_ms);
	} else if (w->r) {
		/* R's application reads only now, after the end. */
		r_drain(&rd);
	}
	if (rd.last_call_ms > (uint64_t)bound_ms)
		fail(c, "R's last recv took %llu ms (bound %d): a hang",
		     (unsigned long long)rd.last_call_ms, bound_ms);
	if (have_drain_s)
		ts_join(drain_s);
	have_drain_s = 0;

	/* ---- what R's application got ---- */
	*delivered_out = stream ? atomic_load(&rd.off) : atomic_load(&rd.count);
	*code_out = w->r ? rd.code : 1;
	if (rd.bad)
		fail(c, "R received bytes that are not S's stream (not a prefix)");
	if (!w->r) /* freed: only the blocked threads' results count */
		goto out;
	int want = expected_recv_code(c);
	int alt = c->end == E_ALERT && c->st == Q_SEND ? TLSQ_ECONNRESET : 1;
	if (rd.code != want && rd.code != alt)
		fail(c, "R's recv ended with %d (%s: %s), want %d (%s)", rd.code,
		     tlsq_strerror(rd.code), tlsq_conn_error(w->r), want, tlsq_strerror(want));
	/* Sticky: the next call says the same. */
	char b[16];
	ssize_t again =
	    stream ? tlsq_recv(w->r, b, sizeof b, 0) : tlsq_recv_msg(w->r, b, sizeof b, 0);
	if (again != rd.code)
		fail(c, "a second recv returned %zd, the first ended with %d", again, rd.code);
	const char *frag = rd.code == alt ? NULL : expected_reason(c);
	if (frag && !strstr(tlsq_conn_error(w->r), frag))
		fail(c, "reason \"%s\" does not mention \"%s\"", tlsq_conn_error(w->r), frag);
	if (c->end == E_CORRUPT && strstr(tlsq_conn_error(w->r), "alert"))
		fail(c, "R blames a peer alert for a record it could not decrypt: \"%s\"",
		     tlsq_conn_error(w->r));
	struct tlsq_conn_info i = info_of(w->r);
	uint64_t got = atomic_load(&rd.off), n = atomic_load(&rd.count);
	switch (expected_data(c)) {
	case D_ALL:
		if (stream ? got != sw.off : n != sw.count)
			fail(c, "R got %llu of the %llu %s S sent",
			     (unsigned long long)(stream ? got : n),
			     (unsigned long long)(stream ? sw.off : sw.count),
			     stream ? "bytes" : "messages");
		/* and everything decrypted: */
		__attribute__((fallthrough));
	case D_DECRYPTED:
		if (stream && got != i.bytes_received)
			fail(c, "R decrypted %llu bytes but delivered %llu (%llu lost)",
			     (unsigned long long)i.bytes_received, (unsigned long long)got,
			     (unsigned long long)(i.bytes_received - got));
		if (!stream && (n != i.msgs_received || msgs_wire(n + 1) <= i.bytes_received))
			fail(c,
			     "R decrypted %llu bytes (%llu whole messages, counted %llu) but "
			     "delivered "
			     "%llu messages",
			     (unsigned long long)i.bytes_received,
			     (unsigned long long)(msgs_wire(n + 1) <= i.bytes_received ? n + 1 : n),
			     (unsigned long long)i.msgs_received, (unsigned long long)n);
		break;
	default:
		break;
	}
out:
	if (have_rth || have_sth || have_drain_s) {
		/* Setup failed: end everything so the threads return. */
		if (w->r)
			tlsq_abort(w->r);
		if (have_drain_s || have_sth)
			tlsq_abort(w->s);
		if (have_rth)
			ts_join(rth);
		if (have_sth)
			ts_join(sth);
		if (have_drain_s)
			ts_join(drain_s);
	}
}

static int wanted(const char *line)
{
	const char *f = getenv("TLSQ_ENDINGS_FILTER");
	if (!f || !*f)
		return 1;
	char buf[256];
	snprintf(buf, sizeof buf, "%s", f);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		/* "fin" must not match "engine_free"'s neighbours by accident:
		 * a word matches "=word" followed by a space or the end. */
		char pat[80];
		snprintf(pat, sizeof pat, "=%s ", tok);
		char padded[160];
		snprintf(padded, sizeof padded, "%s ", line);
		if (!strstr(padded, pat))
			return 0;
	}
	return 1;
}

int main(void)
{
	const char *b = getenv("TLSQ_ENDINGS_BOUND_MS");
	if (b && atoi(b) > 0)
		bound_ms = atoi(b);
	call_ms = bound_ms + 1000;
	setvbuf(stdout, NULL, _IOLBF, 0);
	int ok = 0, failed = 0, na = 0;
	uint64_t start = ts_now_ms();
	static char failures[64][200];
	for (int e = 0; e < E_COUNT; e++)
		for (int s = 0; s < Q_COUNT; s++)
			for (int m = 0; m < 2; m++)
				for (int r = 0; r < 2; r++) {
					struct cell c = {.end = e,
					                 .st = s,
					                 .mode = m ? TLSQ_MODE_MESSAGE
					                           : TLSQ_MODE_STREAM,
					                 .role = r ? TLSQ_SERVER : TLSQ_CLIENT};
					snprintf(c.name, sizeof c.name,
					         "ending=%s state=%s mode=%s role=%s",
					         ending_name[e], state_name[s],
					         m ? "msg" : "stream", r ? "server" : "client");
					if (!wanted(c.name))
						continue;
					const char *why;
					if (n_a(&c, &why)) {
						printf("CELL %s: n/a, %s\n", c.name, why);
						na++;
						continue;
					}
					uint64_t t = ts_now_ms();
					struct world w;
					int code = 1;
					uint64_t delivered = 0;
					if (open_world(&c, &w) == 0) {
						if (c.st == Q_CONNECTING)
							run_connecting(&c, &w, &code);
						else
							run_open(&c, &w, &code, &delivered);
					}
					close_world(&w);
					char codes[64];
					if (code == 1)
						snprintf(codes, sizeof codes, "-");
					else
						snprintf(codes, sizeof codes, "%d (%s)", code,
						         tlsq_strerror(code));
					printf("CELL %s: %s, delivered=%llu code=%s ms=%llu%s%s\n",
					       c.name, c.failed ? "FAIL" : "ok",
					       (unsigned long long)delivered, codes,
					       (unsigned long long)(ts_now_ms() - t),
					       c.failed ? ": " : "", c.failed ? c.why : "");
					if (c.failed) {
						if (failed < 64)
							snprintf(failures[failed],
							         sizeof failures[0], "%s", c.name);
						failed++;
					} else {
						ok++;
					}
				}
	printf("SUMMARY: %d ok, %d failed, %d n/a, %llu ms\n", ok, failed, na,
	       (unsigned long long)(ts_now_ms() - start));
	for (int i = 0; i < failed && i < 64; i++)
		printf("FAILED: %s\n", failures[i]);
	return failed ? 1 : 0;
}
