/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tlsq-cat - stdin to a TLS connection and the connection to stdout, both
 * at once (like `openssl s_client -quiet` or `ncat --ssl`).
 *
 * Two threads: the main thread receives and writes stdout; the stdin thread
 * reads stdin and sends. On stdin EOF the stdin thread half-closes
 * (tlsq_shutdown_send: close_notify goes after the data) and the main
 * thread keeps receiving until the peer closes. When the peer closes first
 * the program ends without waiting for more stdin: the main thread wakes the
 * stdin thread through a pipe it polls alongside stdin; that thread sends
 * what stdin already has ready (a piped "echo hi" is not lost because the
 * peer happened to close first) and stops. The main thread waits for it for
 * at most DRAIN_MS, then closes the connection (which fails a tlsq_send still
 * blocked with TLSQ_ECLOSED).
 *
 * Exit status: 0 after the peer's close_notify, 3 when the peer ended the
 * TCP stream without it (truncation), 1 on any other error.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define EXIT_TRUNCATED 3
#define IOBUF          (64 * 1024)
#define DRAIN_MS       5000 /* after the peer's close: sending what stdin has ready */

enum { OPT_LISTEN = 'l', OPT_VERBOSE = 'v' };

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: tlsq-cat [options] HOST:PORT\n"
	    "       tlsq-cat --listen [options] [HOST:]PORT\n"
	    "\n"
	    "Copies stdin to a TLS connection and the connection to stdout, both at once.\n"
	    "On stdin EOF it sends close_notify after the data and keeps reading until the\n"
	    "peer closes; when the peer closes first it exits.\n"
	    "\n"
	    "  -l, --listen                serve one connection on the address instead of\n"
	    "                              connecting (needs --cert/--key or --self-signed)\n"
	    "  -v, --verbose               print the connection's TLS parameters on stderr, and\n"
	    "                              (with --listen) each failed handshake\n"
	    "  -h, --help                  this text\n"
	    "  -V, --version               versions of tlsq and the crypto library\n"
	    "\n%s\n%s\n"
	    "Exit status: 0 when the peer closed with close_notify, 3 when the connection\n"
	    "was truncated (TCP closed without close_notify), 1 on any other error.\n",
	    tool_tls_help, tool_engine_help);
}

struct cat {
	tlsq_conn *c;
	int wake[2];             /* main -> stdin thread: stop */
	atomic_int stdin_failed; /* reading stdin failed: exit 1 */
	atomic_int peer_closed;  /* with a wake: send what stdin has ready, then stop */
};

static void *stdin_main(void *arg)
{
	struct cat *k = arg;
	char *buf = malloc(IOBUF);
	if (!buf) {
		tool_err("out of memory");
		atomic_store(&k->stdin_failed, 1);
		tlsq_abort(k->c);
		return NULL;
	}
	int draining = 0; /* the peer closed: only what stdin has ready now */
	for (;;) {
		struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
		                      {.fd = k->wake[0], .events = POLLIN}};
		int ready = poll(p, draining ? 1 : 2, draining ? 0 : -1);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (draining && ready == 0)
			break; /* nothing more ready on stdin */
		if (!draining && p[1].revents) {
			if (!atomic_load(&k->peer_closed))
				break;
			draining = 1;
			continue;
		}
		ssize_t n = read(STDIN_FILENO, buf, IOBUF);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0 && draining)
			break; /* the peer's clean close decided the status */
		if (n < 0) {
			tool_err("reading stdin: %s", strerror(errno));
			atomic_store(&k->stdin_failed, 1);
			tlsq_abort(k->c);
			break;
		}
		if (n == 0) {
			/* close_notify goes out after everything sent so far. */
			tlsq_shutdown_send(k->c);
			break;
		}
		/* A failure here is the connection's; the main thread's receive
		 * reports it (or the main thread closed the connection). */
		if (tlsq_send(k->c, buf, (size_t)n, draining ? DRAIN_MS : -1) < 0)
			break;
	}
	free(buf);
	return NULL;
}

/* Receives until the peer closes; returns the exit status. Writes each
 * received chunk from where tlsq holds it (tlsq_recv_lend): no copy. */
static int receive_all(struct cat *k)
{
	int status;
	for (;;) {
		tlsq_chunk *ch;
		const void *data;
		ssize_t n = tlsq_recv_lend(k->c, &ch, &data, -1);
		if (n > 0) {
			int rc = tool_write_all(STDOUT_FILENO, data, (size_t)n);
			tlsq_recv_release(ch, (size_t)n);
			if (rc < 0) {
				tool_err("writing stdout: %s", strerror(-rc));
				status = 1;
				break;
			}
			continue;
		}
		if (n == 0) {
			status = 0;
			break;
		}
		if (atomic_load(&k->stdin_failed)) {
			status = 1;
			break;
		}
		const char *why = tlsq_conn_error(k->c);
		if (!*why)
			why = tlsq_strerror((int)n);
		if (n == TLSQ_ETRUNCATED) {
			tool_err("connection truncated: %s", why);
			status = EXIT_TRUNCATED;
		} else {
			tool_err("connection failed: %s", why);
			status = 1;
		}
		break;
	}
	return status;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", no_argument, NULL, OPT_LISTEN},
	    {"verbose", no_argument, NULL, OPT_VERBOSE},
	    TOOL_ENGINE_OPTIONS,
	    TOOL_TLS_OPTIONS,
	    TOOL_STD_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct tool_common co;
	int listen_mode = 0, verbose = 0, opt;
	tool_init(argv[0], usage);
	tool_common_init(&co);
	while ((opt = getopt_long(argc, argv, ":lvhV", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_LISTEN:
			listen_mode = 1;
			break;
		case OPT_VERBOSE:
			verbose = 1;
			break;
		default:
			tool_common_option(&co, opt, optarg, argv);
		}
	}
	if (optind != argc - 1)
		tool_die(optind >= argc ? "missing HOST:PORT (try --help)"
		                        : "one address only (try --help)");
	char *addr = tool_addr(argv[optind]);

	tlsq_engine *e = tool_engine_new(&co);
	tlsq_tls *tls =
	    tool_tls_new(&co.tls, listen_mode ? TLSQ_SERVER : TLSQ_CLIENT, TLSQ_MODE_STREAM);
	struct cat k = {0};
	if (listen_mode) {
		tlsq_listener *l;
		if (tlsq_listen(e, addr, tls, &l) != TLSQ_OK)
			tool_die_listen(addr);
		tool_err("listening on port %d", tlsq_listener_port(l));
		struct tool_faillog flog = {0};
		if (verbose)
			tool_faillog_start(&flog, l);
		int rc = tlsq_accept(l, &k.c, -1);
		tlsq_listener_close(l);
		tool_faillog_stop(&flog);
		tlsq_listener_free(l);
		if (rc != TLSQ_OK)
			tool_die("accept: %s", tlsq_strerror(rc));
	} else if (tlsq_connect(e, addr, tls, &k.c, -1) != TLSQ_OK) {
		tool_die("cannot connect to %s: %s", addr, tlsq_last_error());
	}
	if (verbose)
		tool_print_conn(listen_mode ? "accepted" : "connected to", k.c);

	if (pipe(k.wake) < 0)
		tool_die("pipe: %s", strerror(errno));
	pthread_t th;
	if (pthread_create(&th, NULL, stdin_main, &k) != 0)
		tool_die("cannot start a thread");
	int status = receive_all(&k);
	int joined = 0;
	if (status == 0) {
		/* The peer finished: let the stdin thread send what stdin has
		 * ready (for at most DRAIN_MS), then send our close_notify. The
		 * peer may already be gone; that does not make the end we saw less
		 * clean. */
		atomic_store(&k.peer_closed, 1);
		if (write(k.wake[1], "d", 1) < 0)
			tool_err("pipe: %s", strerror(errno));
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += DRAIN_MS / 1000;
		joined = pthread_timedjoin_np(th, NULL, &until) == 0;
		tlsq_close_phase ph;
		int rc = tlsq_close(k.c, 5000, &ph);
		if (verbose && rc != TLSQ_OK)
			tool_err("close: %s (phase %d)", tlsq_strerror(rc), (int)ph);
	} else {
		tlsq_abort(k.c);
		if (write(k.wake[1], "x", 1) < 0)
			tool_err("pipe: %s", strerror(errno));
	}
	if (!joined)
		pthread_join(th, NULL);
	close(k.wake[0]);
	close(k.wake[1]);
	tlsq_conn_free(k.c);
	tlsq_tls_free(tls);
	tlsq_engine_free(e);
	free(addr);
	tool_common_fini(&co);
	return status;
}
