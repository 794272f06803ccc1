/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tlsq-proxy - a full-duplex TCP/TLS proxy that cannot deadlock (P1).
 *
 * Each accepted connection is a session with two ends: the client side
 * (downstream) and the upstream. Either end is TLS (a tlsq connection,
 * driven through the API) or plain TCP (a blocking socket, driven with
 * send/recv by our own threads). Each direction is pumped by its own
 * thread, so a peer that stops reading blocks only the direction that
 * writes to it; the other direction keeps flowing.
 *
 * Closing: a clean end of one direction (TCP FIN on a plain end,
 * close_notify on a TLS end) becomes a half-close of the other end
 * (shutdown(SHUT_WR) / tlsq_shutdown_send). An error on either end
 * (reset, truncation, TLS failure) aborts both ends, so the other pump
 * wakes up at once and the peer sees a cut connection, never a clean one.
 * The second pump to finish closes both ends and frees the session.
 *
 * On SIGINT/SIGTERM the listener closes and every session is aborted; the
 * program waits for the sessions to go, then exits 0. On SIGHUP a TLS
 * listening side reads its certificate and key files again
 * (tlsq_tls_reload): new clients get them, live sessions go on, a failed
 * reload keeps the old ones.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define IOBUF (64 * 1024)

enum {
	OPT_LISTEN = 'l',
	OPT_UPSTREAM = 'u',
	OPT_VERBOSE = 'v',
	OPT_LISTEN_TLS = OPT_PROGRAM_BASE,
	OPT_LISTEN_PLAIN,
	OPT_UPSTREAM_TLS,
	OPT_UPSTREAM_PLAIN,
};

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: tlsq-proxy --listen [HOST:]PORT --upstream HOST:PORT [options]\n"
	    "\n"
	    "A full-duplex proxy with TLS or plain TCP on either side. Each direction is\n"
	    "pumped on its own, so a peer that stops reading never stops the other\n"
	    "direction. Closes propagate both ways: a FIN becomes a close_notify and the\n"
	    "other way round; errors reset both sides.\n"
	    "\n"
	    "  -l, --listen ADDR           where clients connect: HOST:PORT, :PORT or PORT\n"
	    "  -u, --upstream HOST:PORT    where the proxy connects for each client\n"
	    "      --listen-tls            clients speak TLS (default; needs --cert/--key or\n"
	    "                              --self-signed)\n"
	    "      --listen-plain          clients speak plain TCP\n"
	    "      --upstream-tls          the upstream speaks TLS (verified with --ca, or the\n"
	    "                              system's CAs; --servername, --insecure)\n"
	    "      --upstream-plain        the upstream speaks plain TCP (default)\n"
	    "  -v, --verbose               one line per connection on stderr\n"
	    "  -h, --help                  this text\n"
	    "  -V, --version               versions of tlsq and the crypto library\n"
	    "\n"
	    "The TLS options below apply to the side they make sense for: --cert, --key,\n"
	    "--self-signed to the listening side; --ca, --insecure, --servername to the\n"
	    "upstream; --alpn, --tls1.2, --tls1.3 to both.\n"
	    "\n"
	    "SIGHUP reads --cert and --key again (--listen-tls): new clients get the new\n"
	    "certificate, live sessions go on; a reload that fails keeps the old one\n"
	    "serving. One line on stderr says reloaded or why not. SIGINT/SIGTERM stop.\n"
	    "\n%s\n%s",
	    tool_tls_help, tool_engine_help);
}

/* One side of a session: a tlsq connection or a plain socket. */
struct end {
	tlsq_conn *c; /* TLS, or NULL */
	int fd;       /* plain, or -1 */
	char name[80];
};

struct session {
	struct session *prev, *next; /* px.sessions, under px.mu */
	struct end down, up;
	atomic_int pumps_left;
	atomic_int failed;
	char why[300]; /* the first failure, written by the thread that set failed */
	atomic_ullong bytes_up, bytes_down;
};

static struct {
	const char *upstream;
	tlsq_engine *engine;
	tlsq_tls *up_tls; /* NULL: plain upstream */
	int verbose;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct session sessions; /* circular list of sessions with open ends, under mu */
	int live;                /* sessions not yet freed, under mu */
	int stopping;            /* under mu */
	tlsq_listener *tl;       /* TLS listener, under mu */
	int lfd;                 /* plain listener */
	pthread_mutex_t rmu;     /* SIGHUP reloads: down_tls, down_o */
	tlsq_tls *down_tls;      /* the listening side's profile */
	const struct tool_tls_opts *down_o;
} px = {.mu = PTHREAD_MUTEX_INITIALIZER,
        .cv = PTHREAD_COND_INITIALIZER,
        .lfd = -1,
        .rmu = PTHREAD_MUTEX_INITIALIZER};

/* > 0 bytes, 0 at a clean end, < 0 an error (a tlsq code or -errno). */
static ssize_t end_read(struct end *e, void *buf, size_t cap)
{
	if (e->c)
		return tlsq_recv(e->c, buf, cap, -1);
	for (;;) {
		ssize_t n = recv(e->fd, buf, cap, 0);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

static int end_write(struct end *e, const void *buf, size_t len)
{
	if (e->c) {
		ssize_t n = tlsq_send(e->c, buf, len, -1);
		return n < 0 ? (int)n : 0;
	}
	return tool_write_all(e->fd, buf, len);
}

static void end_shutdown(struct end *e)
{
	if (e->c)
		tlsq_shutdown_send(e->c);
	else
		shutdown(e->fd, SHUT_WR);
}

/* Wakes every thread blocked on the end; plain sockets then reset on close. */
static void end_abort(struct end *e)
{
	if (e->c) {
		tlsq_abort(e->c);
	} else if (e->fd >= 0) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(e->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		shutdown(e->fd, SHUT_RDWR);
	}
}

/* Returns 0, or a tlsq error if a TLS end did not close cleanly both ways. */
static int end_close(struct end *e, int graceful)
{
	int rc = 0;
	if (e->c) {
		if (graceful)
			rc = tlsq_close(e->c, 5000, NULL);
		tlsq_conn_free(e->c);
	} else if (e->fd >= 0) {
		close(e->fd);
	}
	return rc;
}

static const char *end_error(struct end *e, ssize_t err)
{
	if (!e->c)
		return strerror((int)-err);
	const char *r = tlsq_conn_error(e->c);
	return *r ? r : tlsq_strerror((int)err);
}

static void session_fail(struct session *s, const char *fmt, const char *name, const char *why)
{
	if (atomic_exchange(&s->failed, 1) == 0)
		snprintf(s->why, sizeof s->why, fmt, name, why);
	end_abort(&s->down);
	end_abort(&s->up);
}

static void session_finish(struct session *s)
{
	/* Unlinked first: from here on only this thread touches the ends. */
	pthread_mutex_lock(&px.mu);
	s->prev->next = s->next;
	s->next->prev = s->prev;
	pthread_mutex_unlock(&px.mu);
	int failed = atomic_load(&s->failed);
	int rc1 = end_close(&s->down, !failed);
	int rc2 = end_close(&s->up, !failed);
	unsigned long long up = atomic_load(&s->bytes_up), down = atomic_load(&s->bytes_down);
	if (failed)
		tool_err("%s: aborted (%s), %llu bytes up, %llu bytes down", s->down.name, s->why,
		         up, down);
	else if (rc1 || rc2)
		tool_err("%s: closed, %llu bytes up, %llu bytes down; close: %s", s->down.name, up,
		         down, tlsq_strerror(rc1 ? rc1 : rc2));
	else if (px.verbose)
		tool_err("%s: closed cleanly, %llu bytes up, %llu bytes down", s->down.name, up,
		         down);
	free(s);
	pthread_mutex_lock(&px.mu);
	px.live--;
	pthread_cond_broadcast(&px.cv);
	pthread_mutex_unlock(&px.mu);
}

/* Copies src to dst until src ends; the second pump to finish ends the session. */
static void pump(struct session *s, struct end *src, struct end *dst, atomic_ullong *count)
{
	char *buf = malloc(IOBUF);
	if (!buf) {
		session_fail(s, "%s: %s", src->name, "out of memory");
	} else {
		for (;;) {
			ssize_t n = end_read(src, buf, IOBUF);
			if (n == 0) {
				end_shutdown(dst); /* FIN <-> close_notify */
				break;
			}
			if (n < 0) {
				if (!atomic_load(&s->failed))
					session_fail(s, "%s: %s", src->name, end_error(src, n));
				break;
			}
			int rc = end_write(dst, buf, (size_t)n);
			if (rc < 0) {
				if (!atomic_load(&s->failed))
					session_fail(s, "%s: %s", dst->name, end_error(dst, rc));
				break;
			}
			atomic_fetch_add(count, (unsigned long long)n);
		}
		free(buf);
	}
	if (atomic_fetch_sub(&s->pumps_left, 1) == 1)
		session_finish(s);
}

static void *pump_up(void *arg)
{
	struct session *s = arg;
	pump(s, &s->down, &s->up, &s->bytes_up);
	return NULL;
}

/* Connects the upstream, starts the upward pump, pumps downward itself. */
static void *session_main(void *arg)
{
	struct session *s = arg;
	char why[200];
	tlsq_conn *uc = NULL;
	int ufd = -1;
	if (px.up_tls) {
		if (tlsq_connect(px.engine, px.upstream, px.up_tls, &uc, -1) != TLSQ_OK) {
			snprintf(why, sizeof why, "%s", tlsq_last_error());
			goto fail;
		}
	} else if ((ufd = tool_tcp_connect(px.upstream, why, sizeof why)) < 0) {
		goto fail;
	}
	/* Published under the lock, so that a shutdown sees it to abort it. */
	pthread_mutex_lock(&px.mu);
	s->up.c = uc;
	s->up.fd = ufd;
	int stop = px.stopping;
	pthread_mutex_unlock(&px.mu);
	if (stop) {
		snprintf(why, sizeof why, "shutting down");
		goto fail;
	}
	if (px.verbose)
		tool_err("%s: connected to upstream %s", s->down.name, px.upstream);
	int rc = tool_thread(pump_up, s);
	if (rc != 0) {
		snprintf(why, sizeof why, "cannot start a thread: %s", strerror(rc));
		goto fail;
	}
	pump(s, &s->up, &s->down, &s->bytes_down);
	return NULL;
fail:
	if (atomic_exchange(&s->failed, 1) == 0)
		snprintf(s->why, sizeof s->why, "upstream %s: %s", px.upstream, why);
	pthread_mutex_lock(&px.mu);
	s->up.c = uc;
	s->up.fd = ufd;
	pthread_mutex_unlock(&px.mu);
	end_abort(&s->down);
	end_abort(&s->up);
	session_finish(s);
	return NULL;
}

static void session_start(tlsq_conn *c, int fd)
{
	struct session *s = calloc(1, sizeof *s);
	if (!s) {
		tool_err("out of memory: dropping a connection");
		if (c) {
			tlsq_abort(c);
			tlsq_conn_free(c);
		} else {
			close(fd);
		}
		return;
	}
	s->down.c = c;
	s->down.fd = c ? -1 : fd;
	s->up.fd = -1;
	atomic_init(&s->pumps_left, 2);
	if (c) {
		struct tlsq_conn_info in;
		tlsq_conn_info(c, &in);
		snprintf(s->down.name, sizeof s->down.name, "%s", in.peer);
		if (px.verbose)
			tool_print_conn("accepted", c);
	} else {
		tool_tcp_peer(fd, s->down.name, sizeof s->down.name);
		if (px.verbose)
			tool_err("accepted %s", s->down.name);
	}
	snprintf(s->up.name, sizeof s->up.name, "upstream %s", px.upstream);
	pthread_mutex_lock(&px.mu);
	s->next = &px.sessions;
	s->prev = px.sessions.prev;
	s->prev->next = s;
	px.sessions.prev = s;
	px.live++;
	pthread_mutex_unlock(&px.mu);
	int rc = tool_thread(session_main, s);
	if (rc != 0) {
		atomic_store(&s->failed, 1);
		snprintf(s->why, sizeof s->why, "cannot start a thread: %s", strerror(rc));
		end_abort(&s->down);
		session_finish(s);
	}
}

static void on_reload(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&px.rmu);
	if (px.down_tls)
		tool_tls_reload(px.down_tls, px.down_o, TLSQ_SERVER, TLSQ_MODE_STREAM);
	else
		tool_err("SIGHUP: no TLS listening side (yet), nothing to reload");
	pthread_mutex_unlock(&px.rmu);
}

static void on_signal(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&px.mu);
	px.stopping = 1;
	if (px.tl)
		tlsq_listener_close(px.tl);
	if (px.lfd >= 0)
		shutdown(px.lfd, SHUT_RDWR); /* a blocked accept() fails with EINVAL */
	pthread_mutex_unlock(&px.mu);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"upstream", required_argument, NULL, OPT_UPSTREAM},
	    {"listen-tls", no_argument, NULL, OPT_LISTEN_TLS},
	    {"listen-plain", no_argument, NULL, OPT_LISTEN_PLAIN},
	    {"upstream-tls", no_argument, NULL, OPT_UPSTREAM_TLS},
	    {"upstream-plain", no_argument, NULL, OPT_UPSTREAM_PLAIN},
	    {"verbose", no_argument, NULL, OPT_VERBOSE},
	    TOOL_ENGINE_OPTIONS,
	    TOOL_TLS_OPTIONS,
	    TOOL_STD_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct tool_common co;
	char *addr = NULL;
	int listen_tls = 1, upstream_tls = 0, opt;
	tool_init(argv[0], usage);
	tool_common_init(&co);
	while ((opt = getopt_long(argc, argv, ":l:u:vhV", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_LISTEN:
			free(addr);
			addr = tool_addr(optarg);
			break;
		case OPT_UPSTREAM:
			px.upstream = optarg;
			break;
		case OPT_LISTEN_TLS:
			listen_tls = 1;
			break;
		case OPT_LISTEN_PLAIN:
			listen_tls = 0;
			break;
		case OPT_UPSTREAM_TLS:
			upstream_tls = 1;
			break;
		case OPT_UPSTREAM_PLAIN:
			upstream_tls = 0;
			break;
		case OPT_VERBOSE:
			px.verbose = 1;
			break;
		default:
			tool_common_option(&co, opt, optarg, argv);
		}
	}
	if (optind < argc)
		tool_die("unexpected argument '%s' (try --help)", argv[optind]);
	if (!addr || !px.upstream)
		tool_die("missing %s (try --help)",
		         addr ? "--upstream HOST:PORT" : "--listen ADDR");
	if (co.tls.require_client_cert)
		tool_die("--require-client-cert is not supported by tlsq-proxy");

	/* Split the TLS options between the two sides. */
	struct tool_tls_opts down_o = co.tls, up_o = co.tls;
	down_o.ca = NULL;
	down_o.insecure = 0;
	down_o.servername = NULL;
	down_o.pins = NULL; /* --pin is for the upstream server */
	up_o.cert = up_o.key = NULL;
	up_o.key_password_file = NULL;
	up_o.sni = NULL; /* --sni-cert is for the listening side */
	up_o.nsni = 0;
	up_o.self_signed = 0;
	if (co.tls.pins && !upstream_tls)
		tool_die("--pin needs --upstream-tls (it pins the upstream server)");
	if (!listen_tls && (co.tls.cert || co.tls.self_signed || co.tls.nsni))
		tool_die("--cert/--self-signed/--sni-cert need --listen-tls");
	if (!upstream_tls && (co.tls.ca || co.tls.insecure || co.tls.servername))
		tool_die("--ca/--insecure/--servername need --upstream-tls");

	tool_on_signals(on_signal, on_reload, NULL); /* before the engine starts its threads */
	px.engine = tool_engine_new(&co);
	tlsq_tls *down_tls =
	    listen_tls ? tool_tls_new(&down_o, TLSQ_SERVER, TLSQ_MODE_STREAM) : NULL;
	px.up_tls = upstream_tls ? tool_tls_new(&up_o, TLSQ_CLIENT, TLSQ_MODE_STREAM) : NULL;

	tlsq_listener *tl = NULL;
	int lfd = -1, port;
	if (listen_tls) {
		if (tlsq_listen(px.engine, addr, down_tls, &tl) != TLSQ_OK)
			tool_die_listen(addr);
		pthread_mutex_lock(&px.rmu);
		px.down_tls = down_tls;
		px.down_o = &down_o;
		pthread_mutex_unlock(&px.rmu);
		port = tlsq_listener_port(tl);
	} else {
		lfd = tool_tcp_listen(addr);
		port = tool_tcp_port(lfd);
	}
	tool_err("listening on port %d (%s) -> %s (%s)", port, listen_tls ? "TLS" : "plain",
	         px.upstream, upstream_tls ? "TLS" : "plain");
	pthread_mutex_lock(&px.mu);
	px.sessions.next = px.sessions.prev = &px.sessions;
	px.tl = tl;
	px.lfd = lfd;
	if (px.stopping) {
		if (tl)
			tlsq_listener_close(tl);
		else
			shutdown(lfd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&px.mu);
	struct tool_faillog flog = {0};
	if (tl && px.verbose)
		tool_faillog_start(&flog, tl);

	for (;;) {
		if (tl) {
			tlsq_conn *c;
			int rc = tlsq_accept(tl, &c, -1);
			if (rc == TLSQ_ECLOSED)
				break;
			if (rc == TLSQ_OK)
				session_start(c, -1);
			else
				tool_err("accept: %s", tlsq_strerror(rc));
		} else {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				session_start(NULL, fd);
				continue;
			}
			pthread_mutex_lock(&px.mu);
			int stop = px.stopping;
			pthread_mutex_unlock(&px.mu);
			if (stop)
				break;
			if (errno != EINTR && errno != ECONNABORTED)
				tool_err("accept: %s", strerror(errno));
		}
	}

	/* Shutting down: abort every session, wait until they are gone. */
	pthread_mutex_lock(&px.mu);
	px.tl = NULL;
	px.lfd = -1;
	for (struct session *s = px.sessions.next; s != &px.sessions; s = s->next)
		session_fail(s, "%s: %s", s->down.name, "proxy shutting down");
	while (px.live > 0)
		pthread_cond_wait(&px.cv, &px.mu);
	pthread_mutex_unlock(&px.mu);
	if (tl) {
		tool_faillog_stop(&flog); /* the listener is closed: it returns */
		tlsq_listener_free(tl);
	} else
		close(lfd);
	pthread_mutex_lock(&px.rmu);
	tlsq_tls *down = px.down_tls;
	px.down_tls = NULL;
	pthread_mutex_unlock(&px.rmu);
	tlsq_tls_free(down);
	tlsq_engine_free(px.engine);
	tlsq_tls_free(px.up_tls);
	free(addr);
	tool_common_fini(&co);
	return 0;
}
