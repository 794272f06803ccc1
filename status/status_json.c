/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * status_json.c - GET /status: the engine and its connections as JSON
 * (GET /metrics is status_metrics.c).
 *
 * Threads and invariants:
 * - Status thread only. Engine counters are relaxed atomics: each number is
 *   recent, the set is not one instant (a reader may see bytes of a
 *   connection it does not count yet). The documents say so.
 * - Connections are read inside an epoch section of the status thread's
 *   record (tlsq__conn_foreach), so one the IO thread unlinks meanwhile stays
 *   readable until the section ends; connections are read only through
 *   iotask's one snapshot, tlsq__conn_fill_info.
 * - Nothing is allocated inside a section: malloc's arenas are shared with
 *   the IO threads, and a long section delays their reclamation. Buffers are
 *   sized before a walk; a walk that outgrew them is redone.
 * - Every string that can come from the network (peer subject, SNI, ALPN,
 *   error reasons) goes through tlsq__json_string, never a raw "%s".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "status.h"

/* ------------------------------------------------------------------------ */
/* JSON strings                                                              */
/* ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (n bytes available), 0 if the
 * bytes there are not one: overlong forms and surrogates are invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1fu;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0fu;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07u;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
		return 0;
	if (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
		return 0;
	return len;
}

/* see status.h */
void tlsq__json_string(struct evbuffer *out, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strnlen(s, max), i = 0;
	char buf[512];
	size_t w = 0;
	buf[w++] = '"';
	while (i < n) {
		if (w > sizeof buf - 8) { /* room for the longest escape */
			evbuffer_add(out, buf, w);
			w = 0;
		}
		unsigned c = p[i];
		if (c >= 0x80) {
			size_t len = utf8_seq(p + i, n - i);
			if (len == 0) {
				w += (size_t)snprintf(buf + w, 8, "\\ufffd");
				i++;
			} else {
				memcpy(buf + w, p + i, len);
				w += len;
				i += len;
			}
			continue;
		}
		i++;
		if (c == '"' || c == '\\')
			buf[w++] = '\\', buf[w++] = (char)c;
		else if (c == '\n')
			buf[w++] = '\\', buf[w++] = 'n';
		else if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&')
			/* < > & too: the JSON stays inert if pasted into HTML. */
			w += (size_t)snprintf(buf + w, 8, "\\u%04x", c);
		else
			buf[w++] = (char)c;
	}
	buf[w++] = '"';
	evbuffer_add(out, buf, w);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

/* see status.h */
const char *const tlsq__err_names[TLSQ__NERR_NAMES] = {
    "ok",   "again", "timedout", "closed",      "truncated", "connreset", "msgsize", "tls",
    "cert", "nomem", "inval",    "connrefused", "addr",      "io",        "proto",
};

static const char *phase_name(int p)
{
	static const char *const names[] = {"none",          "flushing", "notify-sent",
	                                    "peer-notified", "done",     "aborted"};
	return p >= 0 && p <= TLSQ_CLOSE_ABORTED ? names[p] : "unknown";
}

/* see status.h */
uint64_t tlsq__status_wakeups_sent(const struct tlsq_engine *e)
{
	uint64_t n = 0;
	for (int i = 0; i < e->nio; i++)
		n += tlsq__counter_get(&e->io[i].notifier.sent);
	return n;
}

/* see status.h */
uint64_t tlsq__status_uptime_ms(const struct tlsq_engine *e)
{
	uint64_t now = tlsq__now_ms();
	return now > e->started_mono_ms ? now - e->started_mono_ms : 0;
}

#define C(x) tlsq__counter_get(&e->stats.x)

/* ------------------------------------------------------------------------ */
/* GET /status                                                               */
/* ------------------------------------------------------------------------ */

static void json_engine(const tlsq__status_view *v, struct evbuffer *out)
{
	const struct tlsq_engine *e = v->engine;
	evbuffer_add_printf(out, "{\"version\":");
	tlsq__json_string(out, tlsq_version(), 64);
	evbuffer_add_printf(out,
	                    ",\"uptime_ms\":%" PRIu64 ",\"started_unix_ms\":%" PRIu64
	                    ",\"io_threads\":%d,\"crypto\":{\"library\":",
	                    tlsq__status_uptime_ms(e), e->started_ms, e->nio);
	tlsq__json_string(out, v->crypto, 256);
	evbuffer_add_printf(out, ",\"aesni\":%s}", v->aesni ? "true" : "false");
	evbuffer_add_printf(
	    out,
	    ",\"connections\":{\"opened\":%" PRIu64 ",\"closed\":%" PRIu64 ",\"live\":%" PRId64 "}",
	    C(conns_opened), C(conns_closed),
	    (int64_t)atomic_load_explicit(&e->stats.conns_live, memory_order_relaxed));
	evbuffer_add_printf(out,
	                    ",\"bytes\":{\"sent\":%" PRIu64 ",\"received\":%" PRIu64
	                    ",\"tls_sent\":%" PRIu64 ",\"tls_received\":%" PRIu64 "}",
	                    C(bytes_sent), C(bytes_received), C(tls_bytes_sent),
	                    C(tls_bytes_received));
	evbuffer_add_printf(out, ",\"messages\":{\"sent\":%" PRIu64 ",\"received\":%" PRIu64 "}",
	                    C(msgs_sent), C(msgs_received));
	evbuffer_add_printf(out,
	                    ",\"handshakes\":{\"ok\":%" PRIu64 ",\"failed\":%" PRIu64
	                    ",\"resumed\":%" PRIu64 "}",
	                    C(handshakes_ok), C(handshakes_failed), C(resumed));
	evbuffer_add_printf(out, ",\"alerts\":{\"sent\":%" PRIu64 ",\"received\":%" PRIu64 "}",
	                    C(alerts_sent), C(alerts_received));
	evbuffer_add_printf(out, ",\"key_updates\":{\"sent\":%" PRIu64 ",\"received\":%" PRIu64 "}",
	                    C(key_updates_sent), C(key_updates_received));
	uint64_t rl_ok, rl_failed; /* tlsq_tls_reload, all profiles of the process */
	tlsq__tls_reload_counts(&rl_ok, &rl_failed);
	evbuffer_add_printf(out, ",\"cert_reloads\":{\"ok\":%" PRIu64 ",\"failed\":%" PRIu64 "}",
	                    rl_ok, rl_failed);
	evbuffer_add_printf(out, ",\"accept_dropped\":%" PRIu64 ",\"errors\":{", C(accept_dropped));
	for (int i = 1; i < TLSQ__NERR_NAMES; i++)
		evbuffer_add_printf(out, "%s\"%s\":%" PRIu64, i > 1 ? "," : "", tlsq__err_names[i],
		                    C(errors[i]));
	evbuffer_add_printf(out, "},\"wakeups\":{\"sent\":%" PRIu64 ",\"coalesced\":%" PRIu64 "}}",
	                    tlsq__status_wakeups_sent(e), C(wakeups_saved));
}

static void json_field_str(struct evbuffer *out, const char *key, const char *s, size_t max)
{
	evbuffer_add_printf(out, ",\"%s\":", key);
	tlsq__json_string(out, s, max);
}

static void json_conn(const struct tlsq_conn_info *ci, struct evbuffer *out)
{
	evbuffer_add_printf(out, "{\"id\":%" PRIu64 ",\"role\":\"%s\",\"mode\":\"%s\"", ci->id,
	                    ci->role == TLSQ_SERVER ? "server" : "client",
	                    ci->mode == TLSQ_MODE_MESSAGE ? "message" : "stream");
	evbuffer_add_printf(out, ",\"state\":\"%s\",\"state_code\":%d,\"close_phase\":\"%s\"",
	                    tlsq_state_name(ci->state), (int)ci->state,
	                    phase_name(ci->close_phase));
	json_field_str(out, "peer", ci->peer, sizeof ci->peer);
	json_field_str(out, "version", ci->version, sizeof ci->version);
	json_field_str(out, "cipher", ci->cipher, sizeof ci->cipher);
	json_field_str(out, "group", ci->group, sizeof ci->group);
	json_field_str(out, "alpn", ci->alpn, sizeof ci->alpn);
	json_field_str(out, "sni", ci->sni, sizeof ci->sni);
	json_field_str(out, "peer_subject", ci->peer_subject, sizeof ci->peer_subject);
	json_field_str(out, "peer_sha256", ci->peer_sha256, sizeof ci->peer_sha256);
	json_field_str(out, "peer_sans", ci->peer_sans, sizeof ci->peer_sans);
	evbuffer_add_printf(out,
	                    ",\"resumed\":%s,\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64
	                    ",\"msgs_sent\":%" PRIu64 ",\"msgs_received\":%" PRIu64
	                    ",\"tls_bytes_sent\":%" PRIu64 ",\"tls_bytes_received\":%" PRIu64
	                    ",\"records_sent\":%" PRIu64 ",\"records_received\":%" PRIu64,
	                    ci->resumed ? "true" : "false", ci->bytes_sent, ci->bytes_received,
	                    ci->msgs_sent, ci->msgs_received, ci->tls_bytes_sent,
	                    ci->tls_bytes_received, ci->records_sent, ci->records_received);
	evbuffer_add_printf(
	    out,
	    ",\"tx_queued\":%" PRIu64 ",\"rx_queued\":%" PRIu64
	    ",\"blocked_senders\":%u,\"blocked_receivers\":%u"
	    ",\"key_updates_sent\":%u,\"key_updates_received\":%u"
	    ",\"send_parked\":%s,\"recv_parked\":%s,\"parked_ms\":%" PRIu64 ",\"error\":%d",
	    ci->tx_queued, ci->rx_queued, ci->blocked_senders, ci->blocked_receivers,
	    ci->key_updates_sent, ci->key_updates_received, ci->send_parked ? "true" : "false",
	    ci->recv_parked ? "true" : "false", ci->parked_ms, ci->error);
	evbuffer_add_printf(out, ",\"age_ms\":%" PRIu64, ci->age_ms);
	json_field_str(out, "error_name", ci->error ? tlsq_strerror(ci->error) : "", 64);
	json_field_str(out, "error_reason", ci->error_reason, sizeof ci->error_reason);
	evbuffer_add(out, "}", 1);
}

/* The n connections as JSON objects separated by commas. */
static void json_conn_items(const struct tlsq_conn_info *info, size_t n, struct evbuffer *out)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			evbuffer_add(out, ",", 1);
		json_conn(&info[i], out);
	}
}

/* ------------------------------------------------------------------------ */
/* Choosing the connections                                                  */
/* ------------------------------------------------------------------------ */

/* How interesting a connection is, compared field by field (docs/status.md,
 * "Choosing the connections"): failed or with a fatal error first, then
 * parked (the peer does not read, or the application does not drain), then
 * the rest; within that, parked longest, then most plaintext bytes both ways
 * since it was created, then newest (highest id). Small, so that a heap of
 * them moves keys, not 2 KiB snapshots. */
struct ikey {
	uint64_t tier, parked_ms, bytes, id;
	size_t slot; /* the snapshot in topn.slots */
};

static struct ikey ikey_of(const struct tlsq_conn_info *ci)
{
	uint64_t tier = ci->state == TLSQ_STATE_FAILED || ci->error ? 2
	                : ci->send_parked || ci->recv_parked        ? 1
	                                                            : 0;
	return (struct ikey){tier, ci->parked_ms, ci->bytes_sent + ci->bytes_received, ci->id, 0};
}

/* <0, 0, >0 as a is less, as, more interesting than b. */
static int ikey_cmp(const struct ikey *a, const struct ikey *b)
{
	if (a->tier != b->tier)
		return a->tier < b->tier ? -1 : 1;
	if (a->parked_ms != b->parked_ms)
		return a->parked_ms < b->parked_ms ? -1 : 1;
	if (a->bytes != b->bytes)
		return a->bytes < b->bytes ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* The cap most interesting connections offered so far: a min-heap of keys
 * (the root is the least interesting one kept), each naming its snapshot
 * in slots. Offering is O(log cap) and copies a snapshot only when it is
 * kept. Allocated before the walk. */
struct topn {
	struct ikey *heap;
	struct tlsq_conn_info *slots;
	size_t n, cap;
};

static int topn_init(struct topn *h, size_t cap)
{
	*h = (struct topn){.cap = cap};
	if (cap == 0)
		return 0;
	h->heap = malloc(cap * sizeof *h->heap);
	h->slots = malloc(cap * sizeof *h->slots);
	return h->heap && h->slots ? 0 : TLSQ_ENOMEM;
}

static void topn_free(struct topn *h)
{
	free(h->heap);
	free(h->slots);
}

static void topn_offer(struct topn *h, const struct tlsq_conn_info *ci, struct ikey k)
{
	size_t i;
	if (h->n < h->cap) { /* room: sift up from the end */
		k.slot = h->n;
		for (i = h->n++; i > 0; i = (i - 1) / 2) {
			if (ikey_cmp(&h->heap[(i - 1) / 2], &k) <= 0)
				break;
			h->heap[i] = h->heap[(i - 1) / 2];
		}
	} else { /* full: replace the root if k beats it, sift down */
		if (h->cap == 0 || ikey_cmp(&k, &h->heap[0]) <= 0)
			return;
		k.slot = h->heap[0].slot;
		for (i = 0;;) {
			size_t m = 2 * i + 1;
			if (m >= h->n)
				break;
			if (m + 1 < h->n && ikey_cmp(&h->heap[m + 1], &h->heap[m]) < 0)
				m++;
			if (ikey_cmp(&h->heap[m], &k) >= 0)
				break;
			h->heap[i] = h->heap[m];
			i = m;
		}
	}
	h->heap[i] = k;
	h->slots[k.slot] = *ci;
}

static int ikey_cmp_desc(const void *a, const void *b)
{
	return ikey_cmp(b, a);
}

/* Writes the kept connections, most interesting first. */
static void topn_items(struct topn *h, struct evbuffer *out)
{
	if (h->n == 0) /* heap is NULL with limit=0: qsort must not see it */
		return;
	qsort(h->heap, h->n, sizeof *h->heap, ikey_cmp_desc);
	for (size_t i = 0; i < h->n; i++) {
		if (i)
			evbuffer_add(out, ",", 1);
		json_conn(&h->slots[h->heap[i].slot], out);
	}
}

/* The one pass over every connection: one snapshot each, offered to the
 * attention heap (failed or parked ones only) and, for ?order=interest, to
 * the page's heap; for ?order=id every id is collected (the page is then
 * filled by a second walk over the page's ids only); for ?conn= the one is
 * kept. Nothing is allocated inside (design notes at the top). */
#define ATTENTION_MAX 16

struct pass {
	struct topn attn, top;
	uint64_t *ids; /* TLSQ__ORDER_ID: every id, up to idcap */
	size_t nids, idcap;
	uint64_t conn; /* TLSQ__ORDER_CONN */
	struct tlsq_conn_info *one;
	int want_one, found;
	uint64_t total;
	struct tlsq_conn_info ci; /* the snapshot being looked at */
};

static void pass_one(struct tlsq_conn *c, void *arg)
{
	struct pass *w = arg;
	w->total++;
	if (w->ids && w->nids < w->idcap)
		w->ids[w->nids++] = c->id;
	tlsq__conn_fill_info(c, &w->ci);
	struct ikey k = ikey_of(&w->ci);
	if (k.tier > 0)
		topn_offer(&w->attn, &w->ci, k);
	topn_offer(&w->top, &w->ci, k);
	if (w->want_one && c->id == w->conn && !w->found) {
		*w->one = w->ci;
		w->found = 1;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Walk 2 of ?order=id: the snapshots of the page's connections, those
 * whose ids the pass put on the page (ids, sorted, cap of them).
 * Membership, not an id range: an id is taken when a connection is
 * created, on any thread, but the connection is listed later by its IO
 * thread, so one with an id inside the page's range may appear between the
 * walks; it must not take the place of one of the page's connections. */
struct pagewalk {
	const uint64_t *ids;
	struct tlsq_conn_info *info;
	size_t n, cap;
};

static void pagewalk_one(struct tlsq_conn *c, void *arg)
{
	struct pagewalk *w = arg;
	uint64_t id = c->id;
	if (w->n < w->cap && bsearch(&id, w->ids, w->cap, sizeof *w->ids, cmp_u64)) {
		tlsq__conn_fill_info(c, &w->info[w->n++]);
	}
}

static int cmp_info(const void *a, const void *b)
{
	return cmp_u64(&((const struct tlsq_conn_info *)a)->id,
	               &((const struct tlsq_conn_info *)b)->id);
}

/* Runs the pass into w for q. Returns 0 or TLSQ_ENOMEM. */
static int run_pass(const tlsq__status_view *v, const tlsq__status_query *q, struct pass *w)
{
	const struct tlsq_engine *e = v->engine;
	size_t guess = 64;
	for (int i = 0; i < e->nio; i++)
		guess += atomic_load_explicit(&e->io[i].nconns, memory_order_relaxed);
	if (topn_init(&w->attn, ATTENTION_MAX) ||
	    topn_init(&w->top, q->order == TLSQ__ORDER_INTEREST ? (size_t)q->limit : 0))
		return TLSQ_ENOMEM;
	if (q->order == TLSQ__ORDER_CONN) {
		if (!(w->one = malloc(sizeof *w->one)))
			return TLSQ_ENOMEM;
		w->want_one = 1;
		w->conn = q->conn;
	}
	/* ?order=id needs every id: connections come and go during the walk,
	 * so retry with what we saw if it outgrew the array. */
	for (int attempt = 0; attempt < 4; attempt++) {
		if (q->order == TLSQ__ORDER_ID) {
			uint64_t *ids = realloc(w->ids, guess * sizeof *ids);
			if (!ids)
				return TLSQ_ENOMEM;
			w->ids = ids;
			w->idcap = guess;
		}
		w->nids = 0;
		w->total = 0;
		w->attn.n = w->top.n = 0;
		w->found = 0;
		tlsq__conn_foreach(v->engine, v->epoch, pass_one, w);
		if (!w->ids || w->total <= w->idcap)
			break;
		guess = (size_t)w->total + w->total / 8 + 64;
	}
	if (w->ids)
		qsort(w->ids, w->nids, sizeof *w->ids, cmp_u64);
	return 0;
}

static void pass_free(struct pass *w)
{
	topn_free(&w->attn);
	topn_free(&w->top);
	free(w->ids);
	free(w->one);
}

static const char *order_name(enum tlsq__status_order o)
{
	return o == TLSQ__ORDER_INTEREST ? "interest" : o == TLSQ__ORDER_ID ? "id" : "conn";
}

/* "connections": the connections q chose, after the totals. */
static int json_conns(const tlsq__status_view *v, const tlsq__status_query *q, struct pass *w,
                      struct evbuffer *out)
{
	struct pagewalk pw = {0};
	int rc = 0;
	size_t count = 0;
	if (q->order == TLSQ__ORDER_ID && q->offset < w->nids && q->limit > 0) {
		size_t end =
		    q->offset + q->limit < w->nids ? (size_t)(q->offset + q->limit) : w->nids;
		pw.ids = w->ids + q->offset;
		pw.cap = end - (size_t)q->offset;
		if (!(pw.info = malloc(pw.cap * sizeof *pw.info))) {
			rc = TLSQ_ENOMEM;
		} else {
			tlsq__conn_foreach(v->engine, v->epoch, pagewalk_one, &pw);
			qsort(pw.info, pw.n, sizeof *pw.info, cmp_info);
		}
	}
	count = q->order == TLSQ__ORDER_ID     ? pw.n
	        : q->order == TLSQ__ORDER_CONN ? (size_t)w->found
	                                       : w->top.n;
	evbuffer_add_printf(out,
	                    "{\"order\":\"%s\",\"total\":%" PRIu64 ",\"offset\":%" PRIu64
	                    ",\"limit\":%" PRIu64 ",\"count\":%zu",
	                    order_name(q->order), w->total,
	                    q->order == TLSQ__ORDER_ID ? q->offset : 0,
	                    q->order == TLSQ__ORDER_CONN ? 1 : q->limit, count);
	if (q->order == TLSQ__ORDER_CONN)
		evbuffer_add_printf(out, ",\"conn\":%" PRIu64, q->conn);
	evbuffer_add(out, ",\"items\":[", 10);
	if (q->order == TLSQ__ORDER_ID)
		json_conn_items(pw.info, pw.n, out);
	else if (q->order == TLSQ__ORDER_CONN && w->found)
		json_conn(w->one, out);
	else
		topn_items(&w->top, out);
	evbuffer_add(out, "]}", 2);
	free(pw.info);
	return rc;
}

/* The engine's failed handshakes: counts by reason, the recent ones newest
 * first. The ring is read without a lock (iotask/failures.c). */
static void json_failures(const tlsq__status_view *v, struct evbuffer *out)
{
	struct tlsq_accept_failure recent[TLSQ_FAILURES_KEPT];
	uint64_t counts[TLSQ_FAIL_REASONS], total = 0;
	size_t n = tlsq__failures_read(&v->engine->failures, recent, TLSQ_FAILURES_KEPT, counts);
	evbuffer_add_printf(out, "{\"counts\":{");
	for (int i = 0; i < TLSQ_FAIL_REASONS; i++) {
		evbuffer_add_printf(out, "%s\"%s\":%" PRIu64, i ? "," : "",
		                    tlsq_fail_reason_name(i), counts[i]);
		total += counts[i];
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	evbuffer_add_printf(out, "},\"total\":%" PRIu64 ",\"recent\":[", total);
	for (size_t i = 0; i < n; i++) {
		const struct tlsq_accept_failure *f = &recent[i];
		evbuffer_add_printf(out,
		                    "%s{\"seq\":%" PRIu64 ",\"unix_ms\":%" PRIu64
		                    ",\"age_ms\":%" PRIu64 ",\"duration_ms\":%" PRIu64
		                    ",\"port\":%d,\"reason\":\"%s\",\"phase\":\"%s\",\"error\":%d",
		                    i ? "," : "", f->seq, f->unix_ms,
		                    now > f->unix_ms ? now - f->unix_ms : 0, f->duration_ms,
		                    f->port, tlsq_fail_reason_name(f->reason),
		                    tlsq_fail_phase_name(f->phase), f->error);
		json_field_str(out, "error_name", f->error ? tlsq_strerror(f->error) : "", 64);
		json_field_str(out, "peer", f->peer, sizeof f->peer);
		json_field_str(out, "detail", f->detail, sizeof f->detail);
		evbuffer_add(out, "}", 1);
	}
	evbuffer_add(out, "]}", 2);
}

/* The certificate each TLS listener serves now (after any reload). */
static void json_certs(const tlsq__status_view *v, struct evbuffer *out)
{
	struct tlsq_engine *e = (struct tlsq_engine *)v->engine;
	int n = 0;
	evbuffer_add(out, "[", 1);
	pthread_mutex_lock(&e->lmu);
	for (struct tlsq_listener *l = e->listeners; l; l = l->next) {
		char subj[256], names[512];
		int64_t na;
		/* 0: the own certificate; 1..: those chosen by SNI, with "sni". */
		for (int i = 0; tlsq__tls_cert_summary_at(l->tls, i, subj, sizeof subj, &na, names,
		                                          sizeof names) == 0;
		     i++) {
			evbuffer_add_printf(out, "%s{\"port\":%d,\"subject\":", n++ ? "," : "",
			                    l->port);
			tlsq__json_string(out, subj, sizeof subj);
			if (i > 0) {
				evbuffer_add_printf(out, ",\"sni\":");
				tlsq__json_string(out, names, sizeof names);
			}
			evbuffer_add_printf(out, ",\"not_after_unix\":%" PRId64 "}", na);
		}
	}
	pthread_mutex_unlock(&e->lmu);
	evbuffer_add(out, "]", 1);
}

/* see status.h */
int tlsq__status_json(const tlsq__status_view *v, const tlsq__status_query *q, struct evbuffer *out)
{
	struct pass w = {0};
	int rc = run_pass(v, q, &w);
	evbuffer_add_printf(out, "{\"engine\":");
	json_engine(v, out);
	evbuffer_add_printf(out, ",\"failures\":");
	json_failures(v, out);
	evbuffer_add_printf(out, ",\"certificates\":");
	json_certs(v, out);
	evbuffer_add_printf(out, ",\"attention\":[");
	topn_items(&w.attn, out);
	evbuffer_add_printf(out, "],\"connections\":");
	if (rc == 0)
		rc = json_conns(v, q, &w, out);
	else
		evbuffer_add(out, "null", 4);
	evbuffer_add(out, "}\n", 2);
	pass_free(&w);
	return rc;
}
