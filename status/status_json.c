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

/* Walk 1: the ids of every listed connection. */
struct idwalk {
	uint64_t *ids;
	size_t n, cap;
	uint64_t total;
};

static void idwalk_one(struct tlsq_conn *c, void *arg)
{
	struct idwalk *w = arg;
	if (w->n < w->cap)
		w->ids[w->n++] = c->id;
	w->total++;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Walk 2: the snapshots of the page's connections, those whose ids walk 1
 * put on the page (ids, sorted, cap of them). Membership, not an id range:
 * an id is taken when a connection is created, on any thread, but the
 * connection is listed later by its IO thread, so one with an id inside the
 * page's range may appear between the walks; it must not take the place of
 * one of the page's connections. */
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

/* Fills w with every connection's id, sorted. Returns 0 or TLSQ_ENOMEM. */
static int collect_ids(const tlsq__status_view *v, struct idwalk *w)
{
	const struct tlsq_engine *e = v->engine;
	size_t guess = 64;
	for (int i = 0; i < e->nio; i++)
		guess += atomic_load_explicit(&e->io[i].nconns, memory_order_relaxed);
	/* Connections come and go during the walk: retry with what we saw. */
	for (int attempt = 0; attempt < 4; attempt++) {
		uint64_t *ids = realloc(w->ids, guess * sizeof *ids);
		if (!ids)
			return TLSQ_ENOMEM;
		*w = (struct idwalk){.ids = ids, .cap = guess};
		tlsq__conn_foreach(v->engine, v->epoch, idwalk_one, w);
		if (w->total <= w->cap)
			break;
		guess = (size_t)w->total + w->total / 8 + 64;
	}
	qsort(w->ids, w->n, sizeof *w->ids, cmp_u64);
	return 0;
}

/* The page [offset, offset + limit) of walk 1's ids, in id order; walk 2
 * fills in those of them still listed. */
static int json_conns(const tlsq__status_view *v, uint64_t offset, uint64_t limit,
                      struct evbuffer *out)
{
	struct idwalk ids = {0};
	struct pagewalk pw = {0};
	int rc = collect_ids(v, &ids);
	if (rc == 0 && offset < ids.n && limit > 0) {
		size_t end = offset + limit < ids.n ? (size_t)(offset + limit) : ids.n;
		pw.ids = ids.ids + offset;
		pw.cap = end - (size_t)offset;
		if (!(pw.info = malloc(pw.cap * sizeof *pw.info))) {
			rc = TLSQ_ENOMEM;
		} else {
			tlsq__conn_foreach(v->engine, v->epoch, pagewalk_one, &pw);
			qsort(pw.info, pw.n, sizeof *pw.info, cmp_info);
		}
	}
	evbuffer_add_printf(out,
	                    "{\"total\":%zu,\"offset\":%" PRIu64 ",\"limit\":%" PRIu64
	                    ",\"count\":%zu,\"items\":[",
	                    ids.n, offset, limit, pw.n);
	json_conn_items(pw.info, pw.n, out);
	evbuffer_add(out, "]}", 2);
	free(pw.info);
	free(ids.ids);
	return rc;
}

/* Walk 3: the connections that need a person's attention, wherever they
 * are in the id order: parked (the peer does not read, or the application
 * does not drain), failed, or with threads blocked. The ATTENTION_MAX of
 * them parked longest (failed ones first) go on every page of /status, so
 * the page can lead with them. The array is allocated before the walk. */
#define ATTENTION_MAX 16

struct attnwalk {
	struct tlsq_conn_info *info;
	size_t n;
};

static uint64_t attn_rank(const struct tlsq_conn_info *ci)
{
	return ci->state == TLSQ_STATE_FAILED ? UINT64_MAX : ci->parked_ms + 1;
}

static void attnwalk_one(struct tlsq_conn *c, void *arg)
{
	struct attnwalk *w = arg;
	struct tlsq_conn_info ci;
	tlsq__conn_fill_info(c, &ci);
	if (!ci.send_parked && !ci.recv_parked && ci.state != TLSQ_STATE_FAILED)
		return;
	size_t slot = w->n;
	if (w->n == ATTENTION_MAX) { /* full: replace the least urgent if c is more */
		slot = 0;
		for (size_t i = 1; i < w->n; i++)
			if (attn_rank(&w->info[i]) < attn_rank(&w->info[slot]))
				slot = i;
		if (attn_rank(&ci) <= attn_rank(&w->info[slot]))
			return;
	} else {
		w->n++;
	}
	w->info[slot] = ci;
}

static int cmp_attn(const void *a, const void *b)
{
	uint64_t x = attn_rank(a), y = attn_rank(b);
	return x > y ? -1 : x < y;
}

static int json_attention(const tlsq__status_view *v, struct evbuffer *out)
{
	struct attnwalk w = {.info = malloc(ATTENTION_MAX * sizeof *w.info)};
	if (!w.info) {
		evbuffer_add(out, "[]", 2);
		return TLSQ_ENOMEM;
	}
	tlsq__conn_foreach(v->engine, v->epoch, attnwalk_one, &w);
	qsort(w.info, w.n, sizeof *w.info, cmp_attn);
	evbuffer_add(out, "[", 1);
	json_conn_items(w.info, w.n, out);
	evbuffer_add(out, "]", 1);
	free(w.info);
	return 0;
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
int tlsq__status_json(const tlsq__status_view *v, uint64_t offset, uint64_t limit,
                      struct evbuffer *out)
{
	evbuffer_add_printf(out, "{\"engine\":");
	json_engine(v, out);
	evbuffer_add_printf(out, ",\"failures\":");
	json_failures(v, out);
	evbuffer_add_printf(out, ",\"certificates\":");
	json_certs(v, out);
	evbuffer_add_printf(out, ",\"attention\":");
	int arc = json_attention(v, out);
	evbuffer_add_printf(out, ",\"connections\":");
	int rc = json_conns(v, offset, limit, out);
	evbuffer_add(out, "}\n", 2);
	return rc ? rc : arc;
}
