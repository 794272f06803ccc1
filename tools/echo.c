/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tlsq-echo - a TLS echo server for any number of clients.
 *
 * The main thread accepts; each connection gets a worker thread that echoes
 * through the queue API (stream: tlsq_recv -> tlsq_send; messages:
 * tlsq_msg_recv -> tlsq_send_msg). When the peer's close_notify arrives
 * every byte received before it has been queued for echoing: the worker
 * flushes, then closes gracefully, so the client gets all of it and then
 * our close_notify.
 *
 * On SIGINT/SIGTERM the listener closes, live connections are aborted,
 * the workers are waited for, and the program exits 0. On SIGHUP the
 * certificate, key and CA files are read again (tlsq_tls_reload): new
 * handshakes get them, live connections go on; a reload that fails keeps the
 * old ones serving. One line on stderr says which.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define IOBUF    (64 * 1024)
#define FLUSH_MS 60000 /* a client that stops reading the echo gets this long */

enum { OPT_LISTEN = 'l', OPT_MODE = 'm', OPT_VERBOSE = 'v' };

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: tlsq-echo --listen [HOST:]PORT [--mode stream|msg] [options]\n"
	    "\n"
	    "A TLS echo server for any number of clients: every byte (or message) a client\n"
	    "sends comes back. When the client sends close_notify, everything it sent before\n"
	    "is echoed, then the server closes with close_notify.\n"
	    "\n"
	    "  -l, --listen ADDR           HOST:PORT, [v6]:PORT, :PORT (all addresses) or PORT\n"
	    "                              (127.0.0.1); port 0 picks a free port\n"
	    "  -m, --mode stream|msg       stream: any TLS client (default); msg: tlsq message\n"
	    "                              mode, each message echoed as one message\n"
	    "  -v, --verbose               one line per connection on stderr\n"
	    "  -h, --help                  this text\n"
	    "  -V, --version               versions of tlsq and the crypto library\n"
	    "\n"
	    "SIGHUP reads --cert, --key, --ca (and --key-password-file) again: new\n"
	    "handshakes get the new certificate, live connections go on. A reload that\n"
	    "fails (a missing or broken file, a key of another certificate) keeps the\n"
	    "old certificate serving; one line on stderr says reloaded or why not.\n"
	    "SIGINT/SIGTERM stop the server.\n"
	    "\n%s\n%s",
	    tool_tls_server_help, tool_engine_help);
}

struct session {
	tlsq_conn *c;
	struct session *prev, *next;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct session head; /* circular list of live sessions */
	int live;
	tlsq_mode mode;
	int verbose;
	tlsq_listener *listener; /* under mu: the signal thread closes it */
	int stopping;            /* under mu */
	pthread_mutex_t rmu;     /* SIGHUP reloads: tls and tls_opts */
	tlsq_tls *tls;
	const struct tool_tls_opts *tls_opts;
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER,
         .cv = PTHREAD_COND_INITIALIZER,
         .rmu = PTHREAD_MUTEX_INITIALIZER};

/* Echoes until the peer's close_notify (returns 0) or an error (returns it). */
static int echo_stream(tlsq_conn *c)
{
	char *buf = malloc(IOBUF);
	if (!buf)
		return TLSQ_ENOMEM;
	ssize_t n;
	while ((n = tlsq_recv(c, buf, IOBUF, -1)) > 0) {
		ssize_t s = tlsq_send(c, buf, (size_t)n, -1);
		if (s < 0) {
			n = s;
			break;
		}
	}
	free(buf);
	return (int)n;
}

static int echo_msg(tlsq_conn *c)
{
	for (;;) {
		void *m;
		ssize_t n = tlsq_msg_recv(c, &m, -1);
		if (n == TLSQ_ECLOSED)
			return 0; /* the peer's close_notify after its last message */
		if (n < 0)
			return (int)n;
		int rc = tlsq_send_msg(c, m, (size_t)n, -1);
		tlsq_msg_free(m);
		if (rc < 0)
			return rc;
	}
}

static void *worker(void *arg)
{
	struct session *s = arg;
	tlsq_conn *c = s->c;
	struct tlsq_conn_info in;
	if (srv.verbose)
		tool_print_conn("accepted", c);
	int rc = srv.mode == TLSQ_MODE_MESSAGE ? echo_msg(c) : echo_stream(c);
	tlsq_close_phase ph = TLSQ_CLOSE_NONE;
	char why[256] = "";
	if (rc == 0) {
		/* Everything received has been queued: get it out, then close. */
		rc = tlsq_flush(c, FLUSH_MS);
		int crc = tlsq_close(c, rc == 0 ? 5000 : 0, &ph);
		if (rc == 0)
			rc = crc;
	} else {
		/* The reason now: tlsq_abort's "aborted by the application" may
		 * replace it. An end that is not sticky (TLSQ_EPROTO, the peer
		 * closed inside a message) has only its code. */
		snprintf(why, sizeof why, "%s",
		         *tlsq_conn_error(c) ? tlsq_conn_error(c) : tlsq_strerror(rc));
		tlsq_abort(c);
	}
	tlsq_conn_info(c, &in);
	if (rc == 0 && srv.verbose)
		tool_err("%s closed: %llu bytes echoed", in.peer,
		         (unsigned long long)in.bytes_sent);
	else if (rc != 0 && rc != TLSQ_ECLOSED)
		tool_err("%s failed: %s", in.peer,
		         why[0]               ? why
		         : in.error_reason[0] ? in.error_reason
		                              : tlsq_strerror(rc));

	pthread_mutex_lock(&srv.mu);
	s->prev->next = s->next;
	s->next->prev = s->prev;
	srv.live--;
	pthread_cond_broadcast(&srv.cv);
	pthread_mutex_unlock(&srv.mu);
	tlsq_conn_free(c);
	free(s);
	return NULL;
}

static void on_signal(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&srv.mu);
	srv.stopping = 1;
	if (srv.listener)
		tlsq_listener_close(srv.listener); /* the accept loop returns TLSQ_ECLOSED */
	pthread_mutex_unlock(&srv.mu);
}

static void on_reload(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&srv.rmu);
	if (srv.tls)
		tool_tls_reload(srv.tls, srv.tls_opts, TLSQ_SERVER, srv.mode);
	pthread_mutex_unlock(&srv.rmu);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"mode", required_argument, NULL, OPT_MODE},
	    {"verbose", no_argument, NULL, OPT_VERBOSE},
	    TOOL_ENGINE_OPTIONS,
	    TOOL_TLS_OPTIONS,
	    TOOL_STD_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct tool_common co;
	char *addr = NULL;
	int opt;
	tool_init(argv[0], usage);
	tool_common_init(&co);
	srv.mode = TLSQ_MODE_STREAM;
	while ((opt = getopt_long(argc, argv, ":l:m:vhV", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_LISTEN:
			free(addr);
			addr = tool_addr(optarg);
			break;
		case OPT_MODE:
			if (!strcmp(optarg, "stream"))
				srv.mode = TLSQ_MODE_STREAM;
			else if (!strcmp(optarg, "msg") || !strcmp(optarg, "message"))
				srv.mode = TLSQ_MODE_MESSAGE;
			else
				tool_die("--mode: '%s' is neither stream nor msg", optarg);
			break;
		case OPT_VERBOSE:
			srv.verbose = 1;
			break;
		default:
			tool_common_option(&co, opt, optarg, argv);
		}
	}
	if (optind < argc)
		tool_die("unexpected argument '%s' (try --help)", argv[optind]);
	if (!addr)
		tool_die("missing --listen ADDR (try --help)");

	tool_on_signals(on_signal, on_reload, NULL); /* before the engine starts its threads */
	tlsq_engine *e = tool_engine_new(&co);
	tlsq_tls *tls = tool_tls_new(&co.tls, TLSQ_SERVER, srv.mode);
	tlsq_listener *l;
	if (tlsq_listen(e, addr, tls, &l) != TLSQ_OK)
		tool_die_listen(addr);
	pthread_mutex_lock(&srv.rmu);
	srv.tls = tls;
	srv.tls_opts = &co.tls;
	pthread_mutex_unlock(&srv.rmu);
	tool_err("listening on port %d (%s mode)", tlsq_listener_port(l),
	         srv.mode == TLSQ_MODE_MESSAGE ? "msg" : "stream");
	pthread_mutex_lock(&srv.mu);
	srv.head.next = srv.head.prev = &srv.head;
	srv.listener = l;
	if (srv.stopping) /* a signal came before the listener existed */
		tlsq_listener_close(l);
	pthread_mutex_unlock(&srv.mu);
	struct tool_faillog flog = {0};
	if (srv.verbose)
		tool_faillog_start(&flog, l);

	for (;;) {
		tlsq_conn *c;
		int rc = tlsq_accept(l, &c, -1);
		if (rc == TLSQ_ECLOSED)
			break;
		if (rc != TLSQ_OK) {
			tool_err("accept: %s", tlsq_strerror(rc));
			continue;
		}
		struct session *s = calloc(1, sizeof *s);
		if (!s) {
			tool_err("out of memory: dropping a connection");
			tlsq_abort(c);
			tlsq_conn_free(c);
			continue;
		}
		s->c = c;
		pthread_mutex_lock(&srv.mu);
		s->next = &srv.head;
		s->prev = srv.head.prev;
		s->prev->next = s;
		srv.head.prev = s;
		srv.live++;
		pthread_mutex_unlock(&srv.mu);
		if ((rc = tool_thread(worker, s)) != 0) {
			tool_err("cannot start a thread: %s", strerror(rc));
			tlsq_abort(c);
			worker(s); /* returns at once: unlinks and frees */
		}
	}

	/* Shutting down: end every connection, wait for the workers. */
	pthread_mutex_lock(&srv.mu);
	for (struct session *s = srv.head.next; s != &srv.head; s = s->next)
		tlsq_abort(s->c);
	while (srv.live > 0)
		pthread_cond_wait(&srv.cv, &srv.mu);
	srv.listener = NULL;
	pthread_mutex_unlock(&srv.mu);
	tool_faillog_stop(&flog); /* the listener is closed: it returns */
	pthread_mutex_lock(&srv.rmu);
	srv.tls = NULL;
	pthread_mutex_unlock(&srv.rmu);
	tlsq_tls_free(tls);
	tlsq_listener_free(l);
	tlsq_engine_free(e);
	free(addr);
	tool_common_fini(&co);
	return 0;
}
