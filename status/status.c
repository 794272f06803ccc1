/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * status.c - the HTTP status endpoint: libevent's evhttp on its own thread.
 * GET /status (JSON), /metrics (Prometheus), / (a page), /healthz.
 *
 * Design notes:
 * 1. One thread, "tlsq-status", runs its own event_base. Every evhttp object,
 *    connection record and counter below belongs to that thread: start
 *    creates them before the thread exists, stop frees them after joining it.
 *    The engine is read only through atomics and published fields, inside
 *    epoch sections of this thread's record (status_json.c). Nothing here
 *    calls wolfSSL or takes a lock an IO thread takes. This is the only file
 *    that includes <event2/http.h>.
 * 2. libevent 2.1 has neither a connection cap nor an absolute deadline
 *    (evhttp_set_timeout restarts on every read, so a client sending a byte a
 *    second stays forever). Both are built here from public hooks:
 *    evhttp_set_bevcb runs once per accepted connection (we make its
 *    bufferevent and a record); later in the same loop iteration the record
 *    is adopted (bufferevent_getcb yields the evhttp_connection evhttp tied
 *    to the bufferevent); evhttp_connection_set_closecb tells us when evhttp
 *    frees it (libevent 2.1.12 calls it on every free of an incoming
 *    connection; sconn_kill copes if it did not).
 * 3. Records are listed in the order their current request began (accept,
 *    or the dispatch of the previous request on a kept-alive connection).
 *    Every deadline is that start + status_request_timeout_ms, so the list is
 *    also in deadline order: one timer serves all, and the head is the
 *    connection that has waited longest without a request being served.
 * 4. Over status_max_conns, the head is evicted rather than the newcomer
 *    refused: refusing would let max_conns slow clients lock every healthy
 *    request out until their deadlines, whereas eviction keeps /healthz
 *    answering under a slowloris flood. The listener pauses after a burst of
 *    ACCEPT_BURST accepts until the burst is adopted, so open descriptors stay
 *    within max_conns + ACCEPT_BURST.
 * 5. The tlsq__status block holds the thread's ck_epoch record, which must
 *    outlive the IO threads (ck never unlists a record, and they scan the
 *    list until joined): stop frees everything else; tlsq__engine_unref
 *    frees the block.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "status.h"

#define MAX_HEADERS    8192 /* request line + headers; larger gets 413 */
#define MAX_BODY       1024 /* a GET has none; larger gets 413 */
#define ACCEPT_BURST   16   /* accepts before the listener waits for adoption */
#define LISTEN_BACKLOG 128

/* One HTTP connection. */
struct sconn {
	tlsq__status *st;
	struct bufferevent *bev;         /* ours: made in on_bev */
	struct evhttp_connection *evcon; /* NULL until adopted */
	struct sconn *prev, *next;       /* pending list, then the deadline list */
	struct sconn *hnext;             /* hash chain, by evcon */
	uint64_t deadline_ms;
};

struct tlsq__status {
	ck_epoch_record_t epoch; /* first: the block is cache-line aligned */
	tlsq__status_view view;
	struct tlsq_engine *engine;
	pthread_t thread;
	int port; /* bound port; fixed before the thread starts */
	int stopped;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct event *ev_adopt, *ev_deadline;
	struct sconn *pending; /* made by on_bev, adopted by on_adopt */
	unsigned npending;
	int paused;                /* listener disabled until adoption */
	struct sconn *head, *tail; /* adopted, in deadline order */
	struct sconn **hash;
	size_t hmask;
	struct sconn *killing; /* being freed by sconn_kill */
	uint64_t max_conns, timeout_ms;
	const char *token;
	size_t token_len;
	tlsq__http_stats hs;
};

/* ------------------------------------------------------------------------ */
/* Connection records                                                        */
/* ------------------------------------------------------------------------ */

static size_t hash_of(const tlsq__status *st, const struct evhttp_connection *evcon)
{
	uintptr_t p = (uintptr_t)evcon;
	return (size_t)((p >> 4) ^ (p >> 12)) & st->hmask;
}

static struct sconn *sconn_find(tlsq__status *st, struct evhttp_connection *evcon)
{
	struct sconn *sc = st->hash[hash_of(st, evcon)];
	while (sc && sc->evcon != evcon)
		sc = sc->hnext;
	return sc;
}

static void arm_deadline(tlsq__status *st)
{
	if (!st->head)
		return;
	uint64_t now = tlsq__now_ms(), at = st->head->deadline_ms;
	uint64_t ms = at > now ? at - now : 0;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(st->ev_deadline, &tv);
}

/* Appends sc to the deadline list with a fresh deadline. */
static void list_append(tlsq__status *st, struct sconn *sc)
{
	sc->deadline_ms = tlsq__now_ms() + st->timeout_ms;
	sc->next = NULL;
	sc->prev = st->tail;
	if (st->tail)
		st->tail->next = sc;
	else
		st->head = sc;
	st->tail = sc;
	if (st->head == sc) /* the timer only ever needs the head's deadline */
		arm_deadline(st);
}

static void list_remove(tlsq__status *st, struct sconn *sc)
{
	if (sc->prev)
		sc->prev->next = sc->next;
	else
		st->head = sc->next;
	if (sc->next)
		sc->next->prev = sc->prev;
	else
		st->tail = sc->prev;
	sc->prev = sc->next = NULL;
}

/* Drops the record of a connection evhttp is freeing (or has freed). */
static void sconn_forget(tlsq__status *st, struct sconn *sc)
{
	struct sconn **pp = &st->hash[hash_of(st, sc->evcon)];
	while (*pp && *pp != sc)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = sc->hnext;
	list_remove(st, sc);
	st->hs.conns--;
	free(sc);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
	struct sconn *sc = arg;
	tlsq__status *st = sc->st;
	(void)evcon;
	if (st->killing == sc)
		st->killing = NULL;
	sconn_forget(st, sc);
}

/* Closes the connection now, whatever it is doing. */
static void sconn_kill(tlsq__status *st, struct sconn *sc)
{
	st->killing = sc;
	evhttp_connection_free(sc->evcon); /* runs on_close */
	if (st->killing == sc)             /* it did not: forget it ourselves */
		sconn_forget(st, sc);
	st->killing = NULL;
}

/* Takes the record of a connection whose bufferevent is still ours alone
 * to look at; evhttp_connection is the bufferevent's callback argument. */
static void adopt_one(tlsq__status *st, struct sconn *sc)
{
	struct bufferevent *bev = sc->bev;
	void *evcon = NULL;
	bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
	if (evcon == NULL) {
		/* evhttp gave the connection up (out of memory) and freed the
		 * bufferevent, which set its callbacks to NULL. evhttp closed the
		 * socket, or lost it: never close it twice. */
		bufferevent_setfd(bev, -1);
		free(sc);
	} else {
		sc->evcon = evcon;
		evhttp_connection_set_closecb(sc->evcon, on_close, sc);
		size_t h = hash_of(st, sc->evcon);
		sc->hnext = st->hash[h];
		st->hash[h] = sc;
		st->hs.conns++;
		st->hs.accepted++;
		list_append(st, sc);
	}
	bufferevent_decref(bev); /* on_bev's reference */
}

static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
	tlsq__status *st = arg;
	(void)fd;
	(void)what;
	while (st->pending) {
		struct sconn *sc = st->pending;
		st->pending = sc->next;
		adopt_one(st, sc);
	}
	st->npending = 0;
	while (st->hs.conns > st->max_conns && st->head) {
		st->hs.evicted++;
		sconn_kill(st, st->head);
	}
	if (st->paused) {
		st->paused = 0;
		evconnlistener_enable(evhttp_bound_socket_get_listener(st->bound));
	}
}

/* evhttp's bufferevent factory: called once per accepted connection. */
static struct bufferevent *on_bev(struct event_base *base, void *arg)
{
	tlsq__status *st = arg;
	struct sconn *sc = calloc(1, sizeof *sc);
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!sc || !bev) { /* evhttp then tries its own; untracked if it works */
		free(sc);
		if (bev)
			bufferevent_free(bev);
		return NULL;
	}
	/* Our reference keeps bev readable until adoption even if evhttp gives
	 * the connection up meanwhile. */
	bufferevent_incref(bev);
	sc->st = st;
	sc->bev = bev;
	sc->next = st->pending;
	st->pending = sc;
	event_active(st->ev_adopt, EV_TIMEOUT, 0);
	if (++st->npending >= ACCEPT_BURST && !st->paused) {
		st->paused = 1;
		evconnlistener_disable(evhttp_bound_socket_get_listener(st->bound));
	}
	return bev;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	tlsq__status *st = arg;
	(void)fd;
	(void)what;
	uint64_t now = tlsq__now_ms();
	while (st->head && st->head->deadline_ms <= now) {
		st->hs.deadline++;
		sconn_kill(st, st->head);
	}
	arm_deadline(st);
}

/* A request arrived whole: its connection starts a new deadline (for the
 * response, then the next request) and goes to the back of the list. */
static void sconn_touch(tlsq__status *st, struct evhttp_request *req)
{
	struct sconn *sc = sconn_find(st, evhttp_request_get_connection(req));
	if (!sc)
		return;
	int was_head = st->head == sc;
	list_remove(st, sc);
	list_append(st, sc);
	if (was_head) /* the timer may now fire early: harmless, it re-arms */
		arm_deadline(st);
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */
/* ------------------------------------------------------------------------ */

static void count_response(tlsq__status *st, int code)
{
	for (size_t i = 0; i < sizeof tlsq__http_codes / sizeof tlsq__http_codes[0]; i++)
		if (tlsq__http_codes[i] == code)
			st->hs.responses[i]++;
}

static void reply(tlsq__status *st, struct evhttp_request *req, int code, const char *reason,
                  const char *type, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	count_response(st, code);
	evhttp_send_reply(req, code, reason, body);
}

static void reply_text(tlsq__status *st, struct evhttp_request *req, int code, const char *reason,
                       const char *text)
{
	struct evbuffer *b = evbuffer_new();
	if (b)
		evbuffer_add(b, text, strlen(text));
	reply(st, req, code, reason, "text/plain; charset=utf-8", b);
	if (b)
		evbuffer_free(b);
}

/* Compares in time that depends on the token's length only, never on
 * where the first difference is. */
static int token_equal(const char *given, const char *token, size_t n)
{
	size_t glen = strlen(given);
	unsigned char d = glen != n;
	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(given[i < glen ? i : 0] ^ token[i]);
	return d == 0;
}

static int authorized(const tlsq__status *st, struct evhttp_request *req)
{
	if (!st->token)
		return 1;
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	for (h += 7; *h == ' '; h++)
		;
	return token_equal(h, st->token, st->token_len);
}

/* A query parameter of decimal digits, at most max; absent gives def.
 * Returns -1 if present but not such a number. */
static int query_u64(const struct evkeyvalq *q, const char *key, uint64_t def, uint64_t max,
                     uint64_t *out)
{
	const char *s = evhttp_find_header(q, key);
	size_t n = s ? strlen(s) : 0;
	if (!s) {
		*out = def;
		return 0;
	}
	if (n == 0 || n > 19 || strspn(s, "0123456789") != n)
		return -1;
	uint64_t v = strtoull(s, NULL, 10);
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* Parses the query of GET /status into sq (docs/status.md, "Choosing the
 * connections"). Returns NULL, or the one-line reason for a 400. */
static const char *status_query(const char *query, tlsq__status_query *sq)
{
	struct evkeyvalq q;
	const char *why = NULL;
	TAILQ_INIT(&q);
	*sq = (tlsq__status_query){.order = TLSQ__ORDER_INTEREST};
	if (query && evhttp_parse_query_str(query, &q) != 0) {
		evhttp_clear_headers(&q);
		return "the query is not key=value pairs\n";
	}
	for (struct evkeyval *kv = q.tqh_first; kv && !why; kv = kv->next.tqe_next)
		if (strcmp(kv->key, "offset") && strcmp(kv->key, "limit") &&
		    strcmp(kv->key, "order") && strcmp(kv->key, "conn"))
			why =
			    "unknown parameter: the parameters are offset, limit, order and conn\n";
	const char *order = evhttp_find_header(&q, "order");
	int has_offset = evhttp_find_header(&q, "offset") != NULL;
	if (why) {
	} else if (evhttp_find_header(&q, "conn")) {
		sq->order = TLSQ__ORDER_CONN;
		if (query_u64(&q, "conn", 0, UINT64_MAX, &sq->conn))
			why = "conn must be a connection id (a decimal number)\n";
		else if (order || has_offset || evhttp_find_header(&q, "limit"))
			why = "conn names one connection: no offset, limit or order with it\n";
	} else if (order && strcmp(order, "interest") && strcmp(order, "id")) {
		why = "order must be interest or id\n";
	} else if (query_u64(&q, "offset", 0, UINT64_MAX / 2, &sq->offset)) {
		why = "offset must be a decimal number\n";
	} else if (query_u64(&q, "limit", TLSQ__STATUS_LIMIT_DEFAULT, TLSQ__STATUS_LIMIT_MAX,
	                     &sq->limit)) {
		why = "limit must be a decimal number from 0 to 1000\n";
	} else if (order && strcmp(order, "interest") == 0 && has_offset) {
		why = "offset pages in id order: use order=id (or no order)\n";
	} else if ((order && strcmp(order, "id") == 0) || has_offset) {
		sq->order = TLSQ__ORDER_ID;
	}
	evhttp_clear_headers(&q);
	return why;
}

/* Replies with the document b that a builder returned rc for (b NULL: not
 * allocated): 200 and b, or 500 if either failed. Frees b. */
static void reply_doc(tlsq__status *st, struct evhttp_request *req, struct evbuffer *b, int rc,
                      const char *type)
{
	if (b && rc == 0)
		reply(st, req, 200, "OK", type, b);
	else
		reply_text(st, req, 500, "Internal Server Error", "out of memory\n");
	if (b)
		evbuffer_free(b);
}

static void serve_status(tlsq__status *st, struct evhttp_request *req, const char *query)
{
	tlsq__status_query sq;
	const char *why = status_query(query, &sq);
	if (why) {
		reply_text(st, req, 400, "Bad Request", why);
		return;
	}
	struct evbuffer *b = evbuffer_new();
	reply_doc(st, req, b, b ? tlsq__status_json(&st->view, &sq, b) : TLSQ_ENOMEM,
	          "application/json");
}

static void serve_metrics(tlsq__status *st, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	reply_doc(st, req, b, b ? tlsq__status_metrics(&st->view, &st->hs, b) : TLSQ_ENOMEM,
	          "text/plain; version=0.0.4; charset=utf-8");
}

static void serve_page(tlsq__status *st, struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	/* Everything is inline; the page may only talk back to us. */
	evhttp_add_header(h, "Content-Security-Policy",
	                  "default-src 'none'; script-src 'unsafe-inline'; "
	                  "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
	                  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	struct evbuffer *b = evbuffer_new();
	for (int i = 0; b && tlsq__status_page[i]; i++) /* static: lend it, do not copy */
		evbuffer_add_reference(b, tlsq__status_page[i], strlen(tlsq__status_page[i]), NULL,
		                       NULL);
	reply(st, req, 200, "OK", "text/html; charset=utf-8", b);
	if (b)
		evbuffer_free(b);
}

enum route { R_NONE, R_PAGE, R_STATUS, R_METRICS, R_HEALTHZ };

static enum route route_of(const char *path)
{
	if (!path)
		return R_NONE;
	if (strcmp(path, "/") == 0)
		return R_PAGE;
	if (strcmp(path, "/status") == 0)
		return R_STATUS;
	if (strcmp(path, "/metrics") == 0)
		return R_METRICS;
	if (strcmp(path, "/healthz") == 0)
		return R_HEALTHZ;
	return R_NONE;
}

/* Order: 404 before 405 before 401, so each answer reveals nothing the
 * previous did not. The page and /healthz carry no data and need no token
 * (the page sends the token it finds in its URL fragment). */
static void on_request(struct evhttp_request *req, void *arg)
{
	tlsq__status *st = arg;
	sconn_touch(st, req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum route r = route_of(uri ? evhttp_uri_get_path(uri) : NULL);
	if (r == R_NONE) {
		reply_text(st, req, 404, "Not Found", "not found\n");
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
		reply_text(st, req, 405, "Method Not Allowed", "only GET is allowed\n");
		return;
	}
	if ((r == R_STATUS || r == R_METRICS) && !authorized(st, req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		                  "Bearer realm=\"tlsq\"");
		reply_text(st, req, 401, "Unauthorized", "a bearer token is required\n");
		return;
	}
	switch (r) {
	case R_PAGE:
		serve_page(st, req);
		break;
	case R_STATUS:
		serve_status(st, req, evhttp_uri_get_query(uri));
		break;
	case R_METRICS:
		serve_metrics(st, req);
		break;
	default:
		reply_text(st, req, 200, "OK", "ok\n");
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* Start and stop                                                            */
/* ------------------------------------------------------------------------ */

static void *status_main(void *arg)
{
	tlsq__status *st = arg;
	pthread_setname_np(pthread_self(), "tlsq-status");
	tlsq__epoch_register(st->engine, &st->epoch);
	/* Until stop's loopexit: a timer event, so it is not lost if it comes
	 * before the loop starts (a loopbreak would be). */
	event_base_loop(st->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Binds the listening socket (iotask's, as tlsq_listen's); returns its fd
 * or -1 (last error set). */
static int status_listen(const char *addr, int *port)
{
	int fd = tlsq__listen_socket(addr, LISTEN_BACKLOG, 0, port);
	if (fd < 0) {
		char why[256];
		snprintf(why, sizeof why, "%s", tlsq_last_error());
		tlsq__set_last_error("status endpoint: %s", why);
		return -1;
	}
	return fd;
}

static int status_http_init(tlsq__status *st, int fd)
{
	st->http = evhttp_new(st->base);
	if (!st->http) {
		close(fd);
		return TLSQ_ENOMEM;
	}
	evhttp_set_max_headers_size(st->http, MAX_HEADERS);
	evhttp_set_max_body_size(st->http, MAX_BODY);
	/* Let every method reach on_request, which answers 405 with Allow. */
	evhttp_set_allowed_methods(st->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                         EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	                                         EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(st->http, on_request, st);
	evhttp_set_bevcb(st->http, on_bev, st);
	st->bound = evhttp_accept_socket_with_handle(st->http, fd);
	if (!st->bound) {
		close(fd);
		return TLSQ_ENOMEM;
	}
	return 0;
}

/* Frees what start made, except the block itself (design note 5). */
static void status_teardown(tlsq__status *st)
{
	if (st->ev_adopt && st->pending)
		on_adopt(-1, 0, st); /* so that evhttp_free's closes find records */
	if (st->http)
		evhttp_free(st->http); /* frees every connection: on_close each */
	while (st->head)               /* only if a close callback was skipped */
		sconn_forget(st, st->head);
	if (st->ev_adopt)
		event_free(st->ev_adopt);
	if (st->ev_deadline)
		event_free(st->ev_deadline);
	if (st->base)
		event_base_free(st->base);
	free(st->hash);
	st->http = NULL;
	st->ev_adopt = st->ev_deadline = NULL;
	st->base = NULL;
	st->hash = NULL;
}

static int status_init(tlsq__status *st, struct tlsq_engine *e)
{
	const tlsq_engine_config *cfg = &e->cfg;
	st->engine = e;
	st->view = (tlsq__status_view){e, &st->epoch, tlsq_crypto_version(), tlsq_crypto_aesni()};
	st->max_conns = cfg->status_max_conns > 0 ? (uint64_t)cfg->status_max_conns : 256;
	st->timeout_ms =
	    cfg->status_request_timeout_ms > 0 ? (uint64_t)cfg->status_request_timeout_ms : 5000;
	st->token = cfg->status_token && *cfg->status_token ? cfg->status_token : NULL;
	st->token_len = st->token ? strlen(st->token) : 0;
	size_t nb = 64;
	while (nb < 2 * st->max_conns && nb < (1u << 20))
		nb *= 2;
	st->hash = calloc(nb, sizeof *st->hash);
	st->hmask = nb - 1;
	st->base = event_base_new();
	if (!st->hash || !st->base)
		return TLSQ_ENOMEM;
	st->ev_adopt = event_new(st->base, -1, 0, on_adopt, st);
	st->ev_deadline = evtimer_new(st->base, on_deadline, st);
	if (!st->ev_adopt || !st->ev_deadline)
		return TLSQ_ENOMEM;
	int fd = status_listen(cfg->status_addr, &st->port);
	if (fd < 0)
		return TLSQ_EADDR;
	return status_http_init(st, fd);
}

int tlsq__status_start(struct tlsq_engine *e)
{
	size_t size = (sizeof(tlsq__status) + 63) / 64 * 64;
	tlsq__status *st = aligned_alloc(64, size);
	if (!st) {
		tlsq__set_last_error("out of memory");
		return TLSQ_ENOMEM;
	}
	memset(st, 0, size);
	int rc = status_init(st, e);
	if (rc == 0) {
		/* The status thread takes no signal meant for the application. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		int prc = pthread_create(&st->thread, NULL, status_main, st);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (prc != 0) {
			tlsq__set_last_error("cannot start the status thread: %s", strerror(prc));
			rc = TLSQ_EIO;
		}
	} else if (rc == TLSQ_ENOMEM) {
		tlsq__set_last_error("status endpoint: out of memory");
	}
	if (rc != 0) { /* no thread, so no epoch record registered: free it all */
		status_teardown(st);
		free(st);
		return rc;
	}
	e->upper = st; /* freed with the engine's memory (its epoch record) */
	e->upper_free = free;
	return 0;
}

void tlsq__status_stop(struct tlsq_engine *e)
{
	tlsq__status *st = e->upper;
	if (!st || st->stopped)
		return;
	st->stopped = 1;
	event_base_loopexit(st->base, NULL);
	pthread_join(st->thread, NULL);
	status_teardown(st);
	ck_epoch_unregister(&st->epoch);
}

/* see tlsq.h */
int tlsq_engine_status_port(const tlsq_engine *e)
{
	if (!e || !e->upper)
		return TLSQ_EINVAL;
	return ((const tlsq__status *)e->upper)->port;
}
