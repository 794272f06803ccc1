/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * status_metrics.c - GET /metrics: the engine's counters, sums over the
 * connections and the HTTP server's own numbers in the Prometheus text
 * exposition format 0.0.4.
 *
 * Status thread only, under the same rules as status_json.c: relaxed
 * counters (each number recent, the set not one instant), connections read
 * only through tlsq__conn_fill_info inside the status thread's epoch
 * section, nothing allocated inside it.
 */
#include <inttypes.h>
#include <stdio.h>

#include <event2/buffer.h>

#include "status.h"

const int tlsq__http_codes[6] = {200, 400, 401, 404, 405, 500};

#define C(x) tlsq__counter_get(&e->stats.x)

/* ------------------------------------------------------------------------ */
/* GET /metrics                                                              */
/* ------------------------------------------------------------------------ */

/* Sums over every connection, for the gauges. */
struct agg {
	uint64_t by_state[TLSQ_STATE_FAILED + 1];
	uint64_t tx_queued, rx_queued;
	uint64_t blocked_send, blocked_recv;
	uint64_t parked_send, parked_recv;
};

static void agg_one(struct tlsq_conn *c, void *arg)
{
	struct agg *a = arg;
	struct tlsq_conn_info ci;
	tlsq__conn_fill_info(c, &ci);
	if (ci.state >= 0 && ci.state <= TLSQ_STATE_FAILED)
		a->by_state[ci.state]++;
	a->tx_queued += ci.tx_queued;
	a->rx_queued += ci.rx_queued;
	a->blocked_send += ci.blocked_senders;
	a->blocked_recv += ci.blocked_receivers;
	a->parked_send += ci.send_parked != 0;
	a->parked_recv += ci.recv_parked != 0;
}

static void head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped. */
static void label_value(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(out, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, s, 1);
	}
}

static void pair(struct evbuffer *out, const char *name, const char *help, const char *label,
                 const char *a, uint64_t va, const char *b, uint64_t vb)
{
	head(out, name, "counter", help);
	evbuffer_add_printf(out, "%s{%s=\"%s\"} %" PRIu64 "\n%s{%s=\"%s\"} %" PRIu64 "\n", name,
	                    label, a, va, name, label, b, vb);
}

static void gauge_pair(struct evbuffer *out, const char *name, const char *help, const char *label,
                       const char *a, uint64_t va, const char *b, uint64_t vb)
{
	head(out, name, "gauge", help);
	evbuffer_add_printf(out, "%s{%s=\"%s\"} %" PRIu64 "\n%s{%s=\"%s\"} %" PRIu64 "\n", name,
	                    label, a, va, name, label, b, vb);
}

static void one(struct evbuffer *out, const char *name, const char *type, const char *help,
                uint64_t v)
{
	head(out, name, type, help);
	evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void metrics_engine(const tlsq__status_view *v, struct evbuffer *out)
{
	const struct tlsq_engine *e = v->engine;
	head(out, "tlsq_build_info", "gauge", "tlsq and crypto library versions; always 1.");
	evbuffer_add_printf(out, "tlsq_build_info{version=\"");
	label_value(out, tlsq_version());
	evbuffer_add_printf(out, "\",crypto=\"");
	label_value(out, v->crypto);
	evbuffer_add_printf(out, "\",aesni=\"%s\"} 1\n", v->aesni ? "true" : "false");
	head(out, "tlsq_start_time_seconds", "gauge", "When the engine started, Unix time.");
	evbuffer_add_printf(out, "tlsq_start_time_seconds %" PRIu64 ".%03u\n", e->started_ms / 1000,
	                    (unsigned)(e->started_ms % 1000));
	head(out, "tlsq_uptime_seconds", "gauge", "Seconds since the engine started.");
	uint64_t up = tlsq__status_uptime_ms(e);
	evbuffer_add_printf(out, "tlsq_uptime_seconds %" PRIu64 ".%03u\n", up / 1000,
	                    (unsigned)(up % 1000));
	one(out, "tlsq_io_threads", "gauge", "IO threads of the engine.", (uint64_t)e->nio);
	one(out, "tlsq_connections_opened_total", "counter",
	    "Connections created (connected or accepted).", C(conns_opened));
	one(out, "tlsq_connections_closed_total", "counter", "Connections torn down.",
	    C(conns_closed));
	int64_t live = atomic_load_explicit(&e->stats.conns_live, memory_order_relaxed);
	one(out, "tlsq_connections_live", "gauge", "Connections created and not yet torn down.",
	    live > 0 ? (uint64_t)live : 0);
	pair(out, "tlsq_handshakes_total", "TLS handshakes by result.", "result", "ok",
	     C(handshakes_ok), "failed", C(handshakes_failed));
	one(out, "tlsq_sessions_resumed_total", "counter", "Handshakes that resumed a session.",
	    C(resumed));
	pair(out, "tlsq_alerts_total", "TLS alerts by direction.", "direction", "sent",
	     C(alerts_sent), "received", C(alerts_received));
	pair(out, "tlsq_plaintext_bytes_total", "Application bytes handed to TLS or decrypted.",
	     "direction", "sent", C(bytes_sent), "received", C(bytes_received));
	pair(out, "tlsq_tls_bytes_total", "Ciphertext bytes written to or read from sockets.",
	     "direction", "sent", C(tls_bytes_sent), "received", C(tls_bytes_received));
	pair(out, "tlsq_messages_total", "Messages sent and received (message mode).", "direction",
	     "sent", C(msgs_sent), "received", C(msgs_received));
	pair(out, "tlsq_key_updates_total", "TLS 1.3 KeyUpdates by direction.", "direction", "sent",
	     C(key_updates_sent), "received", C(key_updates_received));
	uint64_t rl_ok, rl_failed;
	tlsq__tls_reload_counts(&rl_ok, &rl_failed);
	pair(out, "tlsq_cert_reloads_total",
	     "Certificate reloads (tlsq_tls_reload, SIGHUP) of the process, by result.", "result",
	     "ok", rl_ok, "failed", rl_failed);
	head(out, "tlsq_certificate_not_after_seconds", "gauge",
	     "When the certificate a TLS listener serves now expires, Unix time.");
	pthread_mutex_lock((pthread_mutex_t *)&e->lmu);
	for (struct tlsq_listener *l = e->listeners; l; l = l->next) {
		char subj[256], names[512];
		int64_t na;
		for (int i = 0; tlsq__tls_cert_summary_at(l->tls, i, subj, sizeof subj, &na, names,
		                                          sizeof names) == 0;
		     i++) {
			evbuffer_add_printf(
			    out, "tlsq_certificate_not_after_seconds{port=\"%d\",subject=\"",
			    l->port);
			label_value(out, subj);
			if (i > 0) {
				evbuffer_add_printf(out, "\",sni=\"");
				label_value(out, names);
			}
			evbuffer_add_printf(out, "\"} %" PRId64 "\n", na);
		}
	}
	pthread_mutex_unlock((pthread_mutex_t *)&e->lmu);
	one(out, "tlsq_accept_dropped_total", "counter",
	    "Handshaken connections dropped because the accept queue was full.", C(accept_dropped));
	head(out, "tlsq_errors_total", "counter", "Connections failed, by error code.");
	for (int i = 1; i < TLSQ__NERR_NAMES; i++)
		evbuffer_add_printf(out, "tlsq_errors_total{code=\"%s\"} %" PRIu64 "\n",
		                    tlsq__err_names[i], C(errors[i]));
	head(out, "tlsq_accept_failures_total", "counter",
	     "Server connections that never reached tlsq_accept, by reason (failed or "
	     "timed-out handshakes, peers that speak no TLS, accept queue full).");
	for (int i = 0; i < TLSQ_FAIL_REASONS; i++)
		evbuffer_add_printf(out, "tlsq_accept_failures_total{reason=\"%s\"} %" PRIu64 "\n",
		                    tlsq_fail_reason_name(i),
		                    tlsq__counter_get(&e->failures.by_reason[i]));
	pair(out, "tlsq_wakeups_total",
	     "Application-to-IO-thread wakeups: eventfd writes, and wakeups coalesced away.",
	     "result", "sent", tlsq__status_wakeups_sent(e), "coalesced", C(wakeups_saved));
}

static void metrics_conns(const struct agg *a, struct evbuffer *out)
{
	head(out, "tlsq_connections", "gauge", "Listed connections by state.");
	for (int s = 0; s <= TLSQ_STATE_FAILED; s++)
		evbuffer_add_printf(out, "tlsq_connections{state=\"%s\"} %" PRIu64 "\n",
		                    tlsq_state_name(s), a->by_state[s]);
	gauge_pair(out, "tlsq_queued_bytes",
	           "Bytes waiting in the queues, summed over connections.", "queue", "tx",
	           a->tx_queued, "rx", a->rx_queued);
	gauge_pair(out, "tlsq_blocked_threads",
	           "Application threads blocked in send or recv, summed over connections.", "op",
	           "send", a->blocked_send, "recv", a->blocked_recv);
	gauge_pair(out, "tlsq_parked_connections",
	           "Connections whose send side waits for the socket, or whose receive side "
	           "waits for the application.",
	           "direction", "send", a->parked_send, "recv", a->parked_recv);
}

static void metrics_http(const tlsq__http_stats *hs, struct evbuffer *out)
{
	one(out, "tlsq_status_http_connections", "gauge",
	    "Connections open to this status endpoint.", hs->conns);
	one(out, "tlsq_status_http_connections_accepted_total", "counter",
	    "Connections accepted by this status endpoint.", hs->accepted);
	one(out, "tlsq_status_http_connections_evicted_total", "counter",
	    "Status connections closed to stay under the connection cap (oldest first).",
	    hs->evicted);
	one(out, "tlsq_status_http_deadline_closed_total", "counter",
	    "Status connections closed because a request passed its deadline.", hs->deadline);
	head(out, "tlsq_status_http_responses_total", "counter",
	     "Responses of this status endpoint by code (errors libevent answers itself, "
	     "such as 413, are not counted).");
	for (size_t i = 0; i < sizeof tlsq__http_codes / sizeof tlsq__http_codes[0]; i++)
		evbuffer_add_printf(out,
		                    "tlsq_status_http_responses_total{code=\"%d\"} %" PRIu64 "\n",
		                    tlsq__http_codes[i], hs->responses[i]);
}

/* see status.h */
int tlsq__status_metrics(const tlsq__status_view *v, const tlsq__http_stats *hs,
                         struct evbuffer *out)
{
	struct agg a;
	memset(&a, 0, sizeof a);
	tlsq__conn_foreach(v->engine, v->epoch, agg_one, &a);
	metrics_engine(v, out);
	metrics_conns(&a, out);
	metrics_http(hs, out);
	return 0;
}
