/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * status.h - the status endpoint (status/): an HTTP server on its own thread
 * (status.c, the only user of libevent's HTTP server) and the documents it
 * serves: GET /status (status_json.c), GET /metrics (status_metrics.c) and
 * the page (status_page.c).
 *
 * Folder rule: status/ uses core/ and iotask/ only, never api/ (api/ starts
 * and stops it, nothing else calls it). It reads connections only through
 * iotask's snapshot, tlsq__conn_fill_info, inside the status thread's epoch
 * section (tlsq__conn_foreach), and the engine through its atomics; it
 * never blocks an IO thread, calls wolfSSL or takes a lock an IO thread
 * takes. tools/check-includes enforces the include side of this.
 *
 * Everything below but tlsq__status_start/stop runs on the status thread.
 * The builders know nothing of HTTP: they fill an evbuffer.
 */
#ifndef TLSQ_STATUS_H
#define TLSQ_STATUS_H

#include <stdint.h>

#include "iotask.h"

struct evbuffer;

typedef struct tlsq__status tlsq__status;

/* The endpoint's life, for api/ (tlsq_engine_new, tlsq_engine_free): start
 * sets e->upper; stop joins the status thread (the memory goes with the
 * engine's, see struct tlsq_engine). */
int tlsq__status_start(struct tlsq_engine *e);
void tlsq__status_stop(struct tlsq_engine *e);

/* Which connections GET /status lists (docs/status.md, "Choosing the
 * connections"): the limit most interesting, a page in id order, or one. */
#define TLSQ__STATUS_LIMIT_DEFAULT 100
#define TLSQ__STATUS_LIMIT_MAX     1000

enum tlsq__status_order {
	TLSQ__ORDER_INTEREST, /* failed, then parked longest, busiest, newest */
	TLSQ__ORDER_ID,       /* [offset, offset + limit) in id order */
	TLSQ__ORDER_CONN,     /* the connection whose id is conn */
};

typedef struct tlsq__status_query {
	enum tlsq__status_order order;
	uint64_t offset; /* TLSQ__ORDER_ID */
	uint64_t limit;  /* TLSQ__ORDER_INTEREST and TLSQ__ORDER_ID */
	uint64_t conn;   /* TLSQ__ORDER_CONN */
} tlsq__status_query;

/* The HTTP server's own numbers, for /metrics. Status thread only. */
typedef struct tlsq__http_stats {
	uint64_t conns;        /* HTTP connections open now */
	uint64_t accepted;     /* HTTP connections accepted */
	uint64_t evicted;      /* closed to make room (connection cap) */
	uint64_t deadline;     /* closed by the request deadline */
	uint64_t responses[6]; /* by code, see tlsq__http_codes */
} tlsq__http_stats;

/* The response codes counted in tlsq__http_stats.responses, same order. */
extern const int tlsq__http_codes[6];

/* What the builders need that is fixed at start. */
typedef struct tlsq__status_view {
	struct tlsq_engine *engine;
	ck_epoch_record_t *epoch; /* registered with the engine's epoch */
	const char *crypto;       /* tlsq_crypto_version(), read once at start */
	int aesni;
} tlsq__status_view;

/* GET /status: the engine and the connections q chooses. Returns 0 or
 * TLSQ_ENOMEM (out may hold a partial document). */
int tlsq__status_json(const tlsq__status_view *v, const tlsq__status_query *q,
                      struct evbuffer *out);

/* GET /metrics: Prometheus text exposition format 0.0.4. */
int tlsq__status_metrics(const tlsq__status_view *v, const tlsq__http_stats *hs,
                         struct evbuffer *out);

/* Short, stable names of the error codes, indexed by -code (1..14), and
 * engine figures both documents show (status_json.c). */
#define TLSQ__NERR_NAMES 15
extern const char *const tlsq__err_names[TLSQ__NERR_NAMES];
uint64_t tlsq__status_wakeups_sent(const struct tlsq_engine *e);
uint64_t tlsq__status_uptime_ms(const struct tlsq_engine *e);

/* Appends s (at most max bytes, stopping at NUL) as a JSON string literal:
 * quotes, backslashes, control characters, <, > and & escaped; invalid UTF-8
 * replaced by U+FFFD, so the output is valid JSON whatever the bytes. */
void tlsq__json_string(struct evbuffer *out, const char *s, size_t max);

/* GET /: the self-contained page, in pieces (C11 promises string
 * literals of 4095 bytes only), NULL-terminated. */
extern const char *const tlsq__status_page[];

#endif
