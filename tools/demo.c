/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tlsq-demo - the main job out of the box: a TLS 1.3 echo server and N
 * client worker threads in one process, talking through tlsq's message
 * mode over loopback with an in-memory self-signed certificate.
 *
 * Threads: N clients (each its own connection, doing request/response
 * round trips and timing each one), one acceptor, one server worker per
 * accepted connection (echoing messages), and the main thread, which
 * prints progress and, at the end, the summary. Counters are per client
 * and atomic (relaxed: they are statistics, read only for progress until
 * the threads are joined, and joining orders the final reads).
 *
 * The run passes (exit 0) only if every client connected, every message
 * came back intact, the server echoed exactly what the clients sent, and
 * every connection closed cleanly both ways.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

enum { OPT_DURATION = 'd', OPT_CLIENTS = 'c', OPT_SIZE = 's' };

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: tlsq-demo [options]\n"
	        "\n"
	        "Runs a TLS 1.3 echo server and client threads in one process (in-memory\n"
	        "self-signed certificate, tlsq message mode, loopback). Each client sends a\n"
	        "message, waits for its echo, and times the round trip, for --duration seconds.\n"
	        "Shows live progress, then a summary: messages, MB/s, latency percentiles, and\n"
	        "the TLS version and cipher. Exits 0 only if every message came back intact.\n"
	        "Ctrl-C ends the run early (with the summary).\n"
	        "\n"
	        "  -d, --duration SECONDS      how long to run (default 5)\n"
	        "  -c, --clients N             client threads, one connection each (default 4)\n"
	        "  -s, --message-size BYTES    message size, k/m suffixes allowed (default 256)\n"
	        "  -h, --help                  this text\n"
	        "  -V, --version               tlsq, crypto library, AES-NI: yes|no\n"
	        "\n%s",
	        tool_engine_help);
}

/* ---- latency histogram: log-linear, 64 buckets per power of two (< 1.6% error) ---- */

#define SUB_BITS 6
#define SUB      (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)

static unsigned hist_bucket(uint64_t v)
{
	if (v < SUB)
		return (unsigned)v;
	unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - SUB_BITS;
	return (shift + 1) * SUB + (unsigned)((v >> shift) & (SUB - 1));
}

/* The middle of bucket b. */
static double hist_value(unsigned b)
{
	if (b < SUB)
		return b;
	unsigned shift = b / SUB - 1;
	double lo = (double)((uint64_t)(SUB + b % SUB) << shift);
	return lo + (double)((uint64_t)1 << shift) / 2.0;
}

/* The smallest value with at least fraction p of the samples at or below it. */
static double hist_percentile(const uint64_t *h, uint64_t total, double p)
{
	uint64_t want = (uint64_t)ceil(p * (double)total), seen = 0;
	if (want == 0)
		want = 1;
	for (unsigned b = 0; b < NBUCKETS; b++) {
		seen += h[b];
		if (seen >= want)
			return hist_value(b);
	}
	return 0;
}

/* ---- the run ---- */

struct client {
	pthread_t th;
	int id;
	tlsq_conn *c;
	atomic_ullong sent, received; /* messages */
	uint64_t hist[NBUCKETS];      /* round-trip latency, ns; owned by the thread */
	uint64_t max_ns;
	char error[300]; /* "" if the client did well */
	struct tlsq_conn_info info;
};

struct server_conn {
	pthread_t th;
	tlsq_conn *c;
	atomic_ullong echoed;
	char error[300];
};

static struct {
	double duration;
	int nclients;
	size_t msg_size;
	tlsq_engine *engine;
	tlsq_tls *client_tls;
	tlsq_listener *listener;
	char addr[64];
	struct client *clients;
	struct server_conn *servers; /* nclients slots */
	int nservers;                /* written by the acceptor; read after joining it */
	pthread_t acceptor;
	atomic_int stop;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled on stop */
} demo = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void request_stop(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&demo.mu);
	atomic_store(&demo.stop, 1);
	pthread_cond_broadcast(&demo.cv);
	pthread_mutex_unlock(&demo.mu);
}

static void conn_failed(char *out, size_t cap, const char *what, tlsq_conn *c, int rc)
{
	const char *why = c ? tlsq_conn_error(c) : "";
	snprintf(out, cap, "%s: %s", what, *why ? why : tlsq_strerror(rc));
}

static void *server_main(void *arg)
{
	struct server_conn *s = arg;
	size_t cap = demo.msg_size ? demo.msg_size : 1;
	char *buf = malloc(cap);
	if (!buf) {
		snprintf(s->error, sizeof s->error, "out of memory");
		tlsq_abort(s->c);
		return NULL;
	}
	for (;;) {
		ssize_t n = tlsq_recv_msg(s->c, buf, cap, -1);
		if (n == TLSQ_ECLOSED) { /* the client's close_notify */
			int rc = tlsq_close(s->c, 5000, NULL);
			if (rc != TLSQ_OK)
				conn_failed(s->error, sizeof s->error, "server close", s->c, rc);
			break;
		}
		if (n < 0) {
			conn_failed(s->error, sizeof s->error, "server receive", s->c, (int)n);
			tlsq_abort(s->c);
			break;
		}
		int rc = tlsq_send_msg(s->c, buf, (size_t)n, -1);
		if (rc != TLSQ_OK) {
			conn_failed(s->error, sizeof s->error, "server send", s->c, rc);
			tlsq_abort(s->c);
			break;
		}
		atomic_fetch_add_explicit(&s->echoed, 1, memory_order_relaxed);
	}
	free(buf);
	return NULL;
}

static void *acceptor_main(void *arg)
{
	(void)arg;
	while (demo.nservers < demo.nclients) {
		struct server_conn *s = &demo.servers[demo.nservers];
		if (tlsq_accept(demo.listener, &s->c, -1) != TLSQ_OK)
			break; /* listener closed: some client never connected */
		if (pthread_create(&s->th, NULL, server_main, s) != 0) {
			snprintf(s->error, sizeof s->error, "cannot start a thread");
			tlsq_abort(s->c);
			tlsq_conn_free(s->c);
			s->c = NULL;
			break;
		}
		demo.nservers++;
	}
	return NULL;
}

/* Fills the message with a pattern of the client and sequence number. */
static void fill(unsigned char *m, size_t len, int id, uint64_t seq)
{
	uint64_t tag = ((uint64_t)id << 48) ^ seq;
	for (size_t i = 0; i < len && i < 8; i++)
		m[i] = (unsigned char)(tag >> (8 * i));
}

static void *client_main(void *arg)
{
	struct client *k = arg;
	size_t len = demo.msg_size, cap = len ? len : 1;
	unsigned char *out = malloc(cap), *in = malloc(cap);
	int rc;
	if (!out || !in) {
		snprintf(k->error, sizeof k->error, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = (unsigned char)(i * 31 + (size_t)k->id);
	if ((rc = tlsq_connect(demo.engine, demo.addr, demo.client_tls, &k->c, -1)) != TLSQ_OK) {
		snprintf(k->error, sizeof k->error, "connect: %s", tlsq_last_error());
		goto done;
	}
	for (uint64_t seq = 0; !atomic_load_explicit(&demo.stop, memory_order_relaxed); seq++) {
		fill(out, len, k->id, seq);
		uint64_t t0 = tool_now_ns();
		if ((rc = tlsq_send_msg(k->c, out, len, -1)) != TLSQ_OK) {
			conn_failed(k->error, sizeof k->error, "send", k->c, rc);
			break;
		}
		atomic_fetch_add_explicit(&k->sent, 1, memory_order_relaxed);
		ssize_t n = tlsq_recv_msg(k->c, in, cap, -1);
		uint64_t dt = tool_now_ns() - t0;
		if (n < 0) {
			conn_failed(k->error, sizeof k->error, "receive", k->c, (int)n);
			break;
		}
		if ((size_t)n != len || memcmp(in, out, len) != 0) {
			snprintf(k->error, sizeof k->error,
			         "message %llu came back altered (%zd bytes, sent %zu)",
			         (unsigned long long)seq, n, len);
			break;
		}
		atomic_fetch_add_explicit(&k->received, 1, memory_order_relaxed);
		k->hist[hist_bucket(dt)]++;
		if (dt > k->max_ns)
			k->max_ns = dt;
	}
	tlsq_conn_info(k->c, &k->info);
	if (k->error[0]) {
		tlsq_abort(k->c);
	} else {
		tlsq_close_phase ph;
		if ((rc = tlsq_close(k->c, 5000, &ph)) != TLSQ_OK)
			snprintf(k->error, sizeof k->error, "close: %s (reached phase %d)",
			         tlsq_strerror(rc), (int)ph);
	}
done:
	free(out);
	free(in);
	return NULL;
}

static void totals(uint64_t *sent, uint64_t *received)
{
	*sent = *received = 0;
	for (int i = 0; i < demo.nclients; i++) {
		*sent += atomic_load_explicit(&demo.clients[i].sent, memory_order_relaxed);
		*received += atomic_load_explicit(&demo.clients[i].received, memory_order_relaxed);
	}
}

/* Waits until `deadline_ns` or a stop; returns 1 when stopped. */
static int wait_until(uint64_t deadline_ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = tool_now_ns();
	uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
	uint64_t abs = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + left;
	ts.tv_sec = (time_t)(abs / 1000000000u);
	ts.tv_nsec = (long)(abs % 1000000000u);
	pthread_mutex_lock(&demo.mu);
	while (!atomic_load(&demo.stop) && pthread_cond_timedwait(&demo.cv, &demo.mu, &ts) == 0) {
	}
	int stopped = atomic_load(&demo.stop);
	pthread_mutex_unlock(&demo.mu);
	return stopped;
}

/* Prints progress until the duration is over (or Ctrl-C); returns the seconds run. */
static double run_progress(int tty)
{
	uint64_t start = tool_now_ns();
	uint64_t end = start + (uint64_t)(demo.duration * 1e9);
	uint64_t tick = tty ? 250000000u : 1000000000u;
	uint64_t last_t = start, last_n = 0;
	for (uint64_t next = start + tick;; next += tick) {
		if (next > end)
			next = end;
		int stopped = wait_until(next);
		uint64_t now = tool_now_ns(), sent, received;
		totals(&sent, &received);
		double dt = (double)(now - last_t) / 1e9;
		double rate = dt > 0 ? (double)(received - last_n) / dt : 0;
		double el = (double)(now - start) / 1e9;
		if (tty)
			printf("\r  %5.1f s  %10.0f msgs/s  %8.1f MB/s  %12llu round trips ", el,
			       rate, rate * (double)demo.msg_size / 1e6,
			       (unsigned long long)received);
		else
			printf("  %5.1f s  %10.0f msgs/s  %8.1f MB/s  %12llu round trips\n", el,
			       rate, rate * (double)demo.msg_size / 1e6,
			       (unsigned long long)received);
		fflush(stdout);
		last_t = now;
		last_n = received;
		if (stopped || now >= end)
			break;
	}
	if (tty)
		printf("\n");
	request_stop(NULL);
	return (double)(tool_now_ns() - start) / 1e9;
}

static int setup(const struct tool_common *co)
{
	static char pem[16384];
	tlsq_tls_config sc, cc;
	tlsq_tls *server_tls;
	demo.engine = tool_engine_new(co);
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	sc.mode = TLSQ_MODE_MESSAGE;
	sc.self_signed = 1;
	sc.min_version = TLSQ_TLS1_3;
	if (tlsq_tls_new(&sc, &server_tls) != TLSQ_OK)
		tool_die("server TLS profile: %s", tlsq_last_error());
	if (tlsq_tls_cert_pem(server_tls, pem, sizeof pem) < 0)
		tool_die("cannot export the self-signed certificate: %s", tlsq_last_error());
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.mode = TLSQ_MODE_MESSAGE;
	cc.ca_pem = pem; /* trust exactly the server's self-signed certificate */
	cc.server_name = "localhost";
	cc.min_version = TLSQ_TLS1_3;
	if (tlsq_tls_new(&cc, &demo.client_tls) != TLSQ_OK)
		tool_die("client TLS profile: %s", tlsq_last_error());
	if (tlsq_listen(demo.engine, "127.0.0.1:0", server_tls, &demo.listener) != TLSQ_OK)
		tool_die("cannot listen on 127.0.0.1: %s", tlsq_last_error());
	tlsq_tls_free(server_tls);
	snprintf(demo.addr, sizeof demo.addr, "127.0.0.1:%d", tlsq_listener_port(demo.listener));
	return 0;
}

static int summary(double secs)
{
	static uint64_t hist[NBUCKETS];
	uint64_t sent, received, echoed = 0, max_ns = 0;
	int ok = 1;
	totals(&sent, &received);
	for (int i = 0; i < demo.nservers; i++)
		echoed += atomic_load(&demo.servers[i].echoed);
	for (int i = 0; i < demo.nclients; i++) {
		for (unsigned b = 0; b < NBUCKETS; b++)
			hist[b] += demo.clients[i].hist[b];
		if (demo.clients[i].max_ns > max_ns)
			max_ns = demo.clients[i].max_ns;
	}
	const struct tlsq_conn_info *in = &demo.clients[0].info;
	double mb = (double)received * (double)demo.msg_size / 1e6;
	printf("\n");
	printf("  clients              %d (one TLS connection each), %zu-byte messages\n",
	       demo.nclients, demo.msg_size);
	printf("  duration             %.2f s\n", secs);
	printf("  messages sent        %llu\n", (unsigned long long)sent);
	printf("  messages received    %llu\n", (unsigned long long)received);
	printf("  messages echoed      %llu (by the server)\n", (unsigned long long)echoed);
	printf("  round trips/s        %.0f\n", secs > 0 ? (double)received / secs : 0.0);
	printf("  throughput           %.2f MB/s each way (MB = 10^6 bytes)\n",
	       secs > 0 ? mb / secs : 0.0);
	if (received) {
		printf("  latency p50          %.1f µs\n",
		       hist_percentile(hist, received, 0.50) / 1e3);
		printf("  latency p99          %.1f µs\n",
		       hist_percentile(hist, received, 0.99) / 1e3);
		printf("  latency p99.9        %.1f µs\n",
		       hist_percentile(hist, received, 0.999) / 1e3);
		printf("  latency max          %.1f µs\n", (double)max_ns / 1e3);
	}
	printf("  TLS                  %s %s%s%s\n", in->version[0] ? in->version : "-", in->cipher,
	       in->group[0] ? ", " : "", in->group);
	for (int i = 0; i < demo.nclients; i++)
		if (demo.clients[i].error[0]) {
			printf("  error                client %d: %s\n", i, demo.clients[i].error);
			ok = 0;
		}
	for (int i = 0; i < demo.nservers; i++)
		if (demo.servers[i].error[0]) {
			printf("  error                server connection %d: %s\n", i,
			       demo.servers[i].error);
			ok = 0;
		}
	if (demo.nservers != demo.nclients) {
		printf("  error                the server accepted %d of %d connections\n",
		       demo.nservers, demo.nclients);
		ok = 0;
	}
	if (sent != received || received != echoed || received == 0) {
		printf("  error                the numbers do not add up\n");
		ok = 0;
	}
	printf("  result               %s\n",
	       ok ? "OK: every message came back intact, every connection closed cleanly"
	          : "FAILED");
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"duration", required_argument, NULL, OPT_DURATION},
	    {"clients", required_argument, NULL, OPT_CLIENTS},
	    {"message-size", required_argument, NULL, OPT_SIZE},
	    TOOL_ENGINE_OPTIONS,
	    TOOL_STD_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct tool_common co;
	int opt;
	tool_init(argv[0], usage);
	tool_common_init(&co);
	demo.duration = 5;
	demo.nclients = 4;
	demo.msg_size = 256;
	while ((opt = getopt_long(argc, argv, ":d:c:s:hV", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_DURATION:
			demo.duration = tool_parse_seconds("--duration", optarg);
			break;
		case OPT_CLIENTS:
			demo.nclients = (int)tool_parse_long("--clients", optarg, 1, 10000);
			break;
		case OPT_SIZE:
			demo.msg_size = tool_parse_size("--message-size", optarg);
			break;
		default:
			tool_common_option(&co, opt, optarg, argv);
		}
	}
	if (optind < argc)
		tool_die("unexpected argument '%s' (try --help)", argv[optind]);
	if (demo.msg_size > co.engine.max_message)
		co.engine.max_message = demo.msg_size;

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&demo.cv, &ca);
	pthread_condattr_destroy(&ca);
	tool_on_signal(request_stop, NULL); /* before any thread starts */

	setup(&co);
	demo.clients = calloc((size_t)demo.nclients, sizeof *demo.clients);
	demo.servers = calloc((size_t)demo.nclients, sizeof *demo.servers);
	if (!demo.clients || !demo.servers)
		tool_die("out of memory");
	printf("tlsq-demo %s (%s, AES-NI: %s): %d clients, %zu-byte messages, %g s on %s\n",
	       tlsq_version(), tlsq_crypto_version(), tlsq_crypto_aesni() ? "yes" : "no",
	       demo.nclients, demo.msg_size, demo.duration, demo.addr);
	fflush(stdout);
	if (pthread_create(&demo.acceptor, NULL, acceptor_main, NULL) != 0)
		tool_die("cannot start a thread");
	int started = 0;
	for (; started < demo.nclients; started++) {
		struct client *k = &demo.clients[started];
		k->id = started;
		if (pthread_create(&k->th, NULL, client_main, k) != 0) {
			tool_err("cannot start client thread %d", started);
			request_stop(NULL);
			break;
		}
	}
	double secs = run_progress(isatty(STDOUT_FILENO));
	for (int i = 0; i < started; i++)
		pthread_join(demo.clients[i].th, NULL);
	if (started < demo.nclients) /* the summary reports the missing ones */
		snprintf(demo.clients[started].error, sizeof demo.clients[started].error,
		         "thread did not start");
	tlsq_listener_close(demo.listener); /* ends the acceptor if a client never came */
	pthread_join(demo.acceptor, NULL);
	for (int i = 0; i < demo.nservers; i++)
		pthread_join(demo.servers[i].th, NULL);
	int status = summary(secs);

	for (int i = 0; i < demo.nservers; i++)
		tlsq_conn_free(demo.servers[i].c);
	for (int i = 0; i < demo.nclients; i++)
		tlsq_conn_free(demo.clients[i].c);
	tlsq_listener_free(demo.listener);
	tlsq_tls_free(demo.client_tls);
	tlsq_engine_free(demo.engine);
	free(demo.clients);
	free(demo.servers);
	free((char *)co.engine.status_addr);
	return status;
}
