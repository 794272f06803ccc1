/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tlsq-bench - tlsq and its peers side by side, on loopback, in one run
 * (docs/benchmarks.md).
 *
 * For every workload, peer and run, the parent forks a server process and a
 * client process; they talk over 127.0.0.1 and each reports its figures and
 * a 64-bit FNV-1a hash of the bytes it sent or received through a pipe. A run
 * counts only if the hashes and counts agree; a run that does not finish
 * within its deadline is reported as a hang (both children are killed). Each
 * figure is the median of --runs runs, printed with the ratio tlsq/peer.
 *
 * Beside each workload's own figures, every run reports the CPU time (user +
 * system) of both processes, from wait4()'s rusage of the two children (all
 * their threads: for tlsq the application thread and the IO thread), per GB
 * moved (W1, W4), per message (W2), per round trip (W3, both messages and the
 * warm-up) or per connection (W5, W6). Setup (library init, certificate
 * loading, handshakes) is included; on the default sizes it is noise.
 *
 * Workloads (bench_work.c):
 *   W1  bulk: --bulk-bytes (1 GiB) one way in 16 KiB writes        MB/s
 *   W2  64-byte messages one way, one write per message, for
 *       --duration (5 s), pipelined                                msgs/s
 *   W3  64-byte ping-pong, --round-trips (100,000) after 1,000
 *       warm-up round trips                                        p50/p99/p99.9 us
 *   W4  full duplex: --duplex-bytes (512 MiB) each way at once,
 *       a reader and a writer thread per side                      MB/s (both ways)
 *   W5  --connections (2,000) handshaken, then idle                handshakes/s,
 *                                                                  server KiB/conn
 *   W6  --idle-connections (10,000) established and idle           server KiB/conn,
 *                                                                  seconds to set up
 *   W7  --w7-conns (100,000) established from 127.0.0.1..K, then   setup s, handshakes/s,
 *       a random 1% exchange 64-byte messages for --w7-seconds    KiB/conn, msgs/s, p99;
 *       (3) while the rest stay idle; then the same traffic on     the same on 1%
 *       just 1% as many connections (all active). Not in the
 *       default set: -w W7.
 */

#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "tlsq.h"

#define MAXRUNS 25
#define NPEERS  6
#define ZC      5 /* all_peers[ZC]: tlsq-zc, with ratios of its own */
#define NMETRIC 9 /* the most figures a workload has, its CPU figure included */

static const struct bench_peer *const all_peers[NPEERS] = {
    &bench_tlsq, &bench_tcp, &bench_wolfssl, &bench_openssl, &bench_nng, &bench_tlsq_zc};

/* The ratio columns: tlsq against every other peer, then tlsq-zc against
 * every other peer but tlsq (that one is tlsq/tlsq-zc, inverted). */
static int ratio_col(int base, int i, const int *want_p)
{
	if (!want_p[base] || !want_p[i] || i == base)
		return 0;
	return base == 0 || i != 0;
}

static const struct workload {
	const char *name, *what;
	int nmetric; /* the last one is always the CPU figure */
	const char *metric[NMETRIC];
	int lower_better[NMETRIC];
} wl[BENCH_NWORK + 1] = {
    {0},
    {"W1", "bulk one way, 16 KiB writes", 2, {"MB/s", "CPU s/GB"}, {0, 1}},
    {"W2", "64 B messages one way, pipelined", 2, {"msgs/s", "CPU us/msg"}, {0, 1}},
    {"W3",
     "64 B ping-pong round trip",
     4,
     {"p50 us", "p99 us", "p99.9 us", "CPU us/rt"},
     {1, 1, 1, 1}},
    {"W4", "full duplex, both ways at once", 2, {"MB/s", "CPU s/GB"}, {0, 1}},
    {"W5",
     "connections handshaken, then idle",
     3,
     {"handshakes/s", "KiB/conn", "CPU ms/conn"},
     {0, 1, 1}},
    {"W6", "idle connections", 3, {"KiB/conn", "setup s", "CPU ms/conn"}, {1, 1, 1}},
    {"W7",
     "many connections, 1% exchanging",
     9,
     {"setup s", "handshakes/s", "KiB/conn", "heap KiB/conn", "msgs/s", "p99 us",
      "1% conns: msgs/s", "1% conns: p99 us", "CPU ms/conn"},
     {1, 0, 1, 1, 0, 1, 0, 1, 1}},
};

enum { B_OK, B_FAIL, B_HANG, B_NA /* the peer cannot run it (nng in W7) */ };

struct result {
	int status; /* B_OK if every run passed, else what went wrong first */
	int n;
	double v[NMETRIC][MAXRUNS];
	double med[NMETRIC];
};

static char cert_path[256], key_path[256];

/* ------------------------------------------------------------------------ */
/* One run                                                                   */
/* ------------------------------------------------------------------------ */

static void child(const struct bench_peer *p, int w, int server, int port_pipe, int rep_pipe,
                  int gate, int port, const struct bench_opts *o)
{
	struct bench_rep r = {0};
	bench_listen_any = w == 7; /* W7's client connects to 127.0.0.1..K */
	if (p->init(cert_path, key_path, w) < 0) {
		int bad = -1;
		if (server)
			(void)!write(port_pipe, &bad, sizeof bad);
		(void)!write(rep_pipe, &r, sizeof r);
		_exit(1);
	}
	if (w == 7) {
		if (server) {
			int lp = p->listen();
			(void)!write(port_pipe, &lp, sizeof lp);
			if (lp > 0)
				bench_w7_server(p, o, gate, &r);
		} else {
			bench_w7_client(p, port, o, gate, &r);
		}
		(void)!write(rep_pipe, &r, sizeof r);
		_exit(r.ok ? 0 : 1);
	}
	if (w >= 5) {
		if (server) {
			int lp = p->listen();
			(void)!write(port_pipe, &lp, sizeof lp);
			if (lp > 0)
				bench_conns_server(p, o->conns[w], gate, &r);
		} else {
			bench_conns_client(p, port, o->conns[w], gate, &r);
		}
		/* Connections are left to the exit: closing 10,000 of them one
		 * by one would measure the peers' close, not what W5/W6 are for. */
		(void)!write(rep_pipe, &r, sizeof r);
		_exit(r.ok ? 0 : 1);
	}
	void *c;
	if (server) {
		int lp = p->listen();
		(void)!write(port_pipe, &lp, sizeof lp);
		c = lp < 0 ? NULL : p->accept();
	} else {
		c = p->connect(port);
	}
	if (c)
		bench_work(p, w, server, c, o, &r);
	/* Close first: for tlsq this flushes what the queues still hold (a send
	 * returns when its bytes are queued, not delivered). */
	if (c)
		p->close(c);
	(void)!write(rep_pipe, &r, sizeof r);
	_exit(r.ok ? 0 : 1);
}

/* Waits for pid until deadline; kills it when the deadline passes. Adds the
 * CPU seconds (user + system, all its threads) it used to *cpu. */
static int reap(pid_t pid, uint64_t deadline, double *cpu)
{
	int st;
	struct rusage ru;
	while (wait4(pid, &st, WNOHANG, &ru) == 0) {
		if (bench_now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		struct timespec nap = {0, 5000000};
		nanosleep(&nap, NULL);
	}
	*cpu += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return 0;
}

static int read_rep(int fd, struct bench_rep *r)
{
	struct pollfd pf = {fd, POLLIN, 0};
	memset(r, 0, sizeof *r);
	return poll(&pf, 1, 0) == 1 && read(fd, r, sizeof *r) == (ssize_t)sizeof *r ? 0 : -1;
}

/* Seconds a run may take before it counts as a hang. */
static double budget(int w, const struct bench_opts *o)
{
	switch (w) {
	case 1:
		return 120 + (double)o->bulk / 20e6;
	case 2:
		return o->duration + 60;
	case 3:
		return 120 + (double)o->round_trips / 2000;
	case 4:
		return 20 + (double)o->duplex / 50e6;
	case 7:
		return 180 + o->w7_secs + (double)o->conns[w] / 50;
	default:
		return 60 + (double)o->conns[w] / 50;
	}
}

/* Checks the two reports against each other and computes the figures; cpu
 * is both processes' CPU seconds, the last figure of every workload. */
static int figures(int w, const struct bench_opts *o, const struct bench_rep *rc,
                   const struct bench_rep *rs, double cpu, double fig[NMETRIC])
{
	switch (w) {
	case 1:
		if (rc->hash != rs->hash || rs->count != o->bulk)
			return B_FAIL;
		fig[0] = (double)o->bulk / rc->secs / 1e6;
		fig[1] = cpu / ((double)o->bulk / 1e9);
		break;
	case 2:
		if (rc->hash != rs->hash || rc->count != rs->count)
			return B_FAIL;
		fig[0] = (double)rc->count / rc->secs;
		fig[1] = cpu / (double)rc->count * 1e6;
		break;
	case 3:
		if (rc->hash != rs->hash || rc->count != rs->count)
			return B_FAIL;
		fig[0] = rc->p50;
		fig[1] = rc->p99;
		fig[2] = rc->p999;
		fig[3] = cpu / (double)rc->count * 1e6;
		break;
	case 4:
		if (rc->hash != rs->count || rs->hash != rc->count)
			return B_FAIL;
		fig[0] =
		    2.0 * (double)o->duplex / (rc->secs > rs->secs ? rc->secs : rs->secs) / 1e6;
		fig[1] = cpu / (2.0 * (double)o->duplex / 1e9);
		break;
	case 5:
	case 6:
		if (rc->count != o->conns[w] || rs->count != o->conns[w])
			return B_FAIL;
		fig[w == 5 ? 0 : 1] = w == 5 ? (double)rc->count / rc->secs : rc->secs;
		fig[w == 5 ? 1 : 0] = rs->kib;
		fig[2] = cpu / (double)o->conns[w] * 1e3;
		break;
	case 7:
		/* every connection up on both sides, every echo counted by both */
		if (rc->conns != o->conns[7] || rs->conns != o->conns[7] || rc->count != rs->count)
			return B_FAIL;
		fig[0] = rc->secs;
		fig[1] = (double)rc->conns / rc->secs;
		fig[2] = rs->kib;
		fig[3] = rs->heap;
		fig[4] = rc->rate;
		fig[5] = rc->p99;
		fig[8] = cpu / (double)o->conns[7] * 1e3;
		break;
	}
	return B_OK;
}

static int run_pair(const struct bench_peer *p, int w, const struct bench_opts *o,
                    double fig[NMETRIC])
{
	int pp[2], sp[2], cp[2], gp[2];
	if (pipe(pp) || pipe(sp) || pipe(cp) || pipe(gp))
		return B_FAIL;
	fflush(NULL);
	pid_t srv = fork();
	if (srv == 0)
		child(p, w, 1, pp[1], sp[1], gp[1], 0, o);
	int port = -1;
	struct pollfd pf = {pp[0], POLLIN, 0};
	if (poll(&pf, 1, 30000) == 1)
		(void)!read(pp[0], &port, sizeof port);
	pid_t cli = port > 0 ? fork() : -1;
	if (cli == 0)
		child(p, w, 0, -1, cp[1], gp[0], port, o);
	uint64_t deadline = bench_now_ns() + (uint64_t)(budget(w, o) * o->slow * 1e9);
	double cpu = 0;
	int hang = (cli > 0 ? reap(cli, deadline, &cpu) : 0) < 0;
	hang |= reap(srv, hang ? bench_now_ns() : deadline + 5000000000ull, &cpu) < 0;
	struct bench_rep rc, rs;
	int ok =
	    cli > 0 && read_rep(cp[0], &rc) == 0 && read_rep(sp[0], &rs) == 0 && rc.ok && rs.ok;
	for (int i = 0; i < 2; i++) {
		close(pp[i]);
		close(sp[i]);
		close(cp[i]);
		close(gp[i]);
	}
	if (hang)
		return B_HANG;
	if (!ok) {
		fprintf(stderr, "(client: %s, server: %s) ",
		        cli <= 0 ? "did not start"
		        : rc.ok  ? "ok"
		                 : "failed",
		        rs.ok ? "ok" : "failed");
		return B_FAIL;
	}
	return figures(w, o, &rc, &rs, cpu, fig);
}

/* One run of a workload; W7 is two pairs of processes: conns[7] connections
 * with w7_active of them busy, then w7_active connections all busy. */
static int run_once(const struct bench_peer *p, int w, const struct bench_opts *o,
                    double fig[NMETRIC])
{
	if (w != 7)
		return run_pair(p, w, o, fig);
	int st = run_pair(p, 7, o, fig);
	if (st != B_OK)
		return st;
	struct bench_opts base = *o;
	double bf[NMETRIC] = {0};
	base.conns[7] = o->w7_active;
	st = run_pair(p, 7, &base, bf);
	fig[6] = bf[4];
	fig[7] = bf[5];
	return st;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double t[MAXRUNS];
	memcpy(t, v, sizeof(double) * (size_t)n);
	qsort(t, (size_t)n, sizeof *t, cmp_d);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static void print_value(double v)
{
	if (v >= 100000)
		printf(" %11.0f", v);
	else if (v >= 10)
		printf(" %11.1f", v);
	else
		printf(" %11.2f", v); /* CPU figures: seconds per GB, microseconds */
}

static void print_table(struct result res[][NPEERS], const int *want_w, const int *want_p)
{
	printf("\n%-3s %-34s %-22s", "", "workload", "metric");
	for (int i = 0; i < NPEERS; i++)
		if (want_p[i])
			printf(" %11s", all_peers[i]->name);
	printf(" ");
	for (int base = 0; base <= ZC; base += ZC)
		for (int i = 0; i < NPEERS; i++)
			if (ratio_col(base, i, want_p)) {
				char h[24];
				snprintf(h, sizeof h, "%s/%s", all_peers[base]->name,
				         all_peers[i]->name);
				printf(" %*s", base ? 16 : 12, h);
			}
	printf("\n");
	for (int w = 1; w <= BENCH_NWORK; w++) {
		if (!want_w[w])
			continue;
		for (int m = 0; m < wl[w].nmetric; m++) {
			char metric[40];
			snprintf(metric, sizeof metric, "%s (%s)", wl[w].metric[m],
			         wl[w].lower_better[m] ? "low" : "high");
			printf("%-3s %-34s %-22s", m ? "" : wl[w].name, m ? "" : wl[w].what,
			       metric);
			for (int i = 0; i < NPEERS; i++) {
				if (!want_p[i])
					continue;
				struct result *r = &res[w][i];
				if (r->status == B_HANG)
					printf(" %11s", "hang");
				else if (r->status == B_NA)
					printf(" %11s", "n/a");
				else if (r->status == B_FAIL || r->n == 0)
					printf(" %11s", "failed");
				else
					print_value(r->med[m]);
			}
			printf(" ");
			for (int base = 0; base <= ZC; base += ZC) {
				struct result *t = &res[w][base];
				int wd = base ? 16 : 12;
				for (int i = 0; i < NPEERS; i++) {
					if (!ratio_col(base, i, want_p))
						continue;
					struct result *r = &res[w][i];
					if (t->n == 0 || r->n == 0 || r->status != B_OK ||
					    t->status != B_OK || r->med[m] <= 0)
						printf(" %*s", wd, "-");
					else
						printf(" %*.2fx", wd - 1, t->med[m] / r->med[m]);
				}
			}
			printf("\n");
		}
	}
}

static void machine(FILE *f, int json)
{
	char model[200] = "unknown", line[512];
	FILE *c = fopen("/proc/cpuinfo", "r");
	while (c && fgets(line, sizeof line, c))
		if (strncmp(line, "model name", 10) == 0) {
			char *v = strchr(line, ':');
			snprintf(model, sizeof model, "%.199s", v ? v + 2 : line);
			model[strcspn(model, "\n")] = 0;
			break;
		}
	if (c)
		fclose(c);
	struct utsname u;
	uname(&u);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (json) {
		fprintf(f,
		        "  \"machine\": {\"cpu\": \"%s\", \"cores\": %ld, \"kernel\": \"%s %s\",\n"
		        "    \"versions\": {",
		        model, cpus, u.sysname, u.release);
		for (int i = 0; i < NPEERS; i++)
			fprintf(f, "%s\"%s\": \"%s\"", i ? ", " : "", all_peers[i]->name,
			        all_peers[i]->version());
		fprintf(f, "}},\n");
	} else {
		fprintf(f, "machine: %s, %ld CPUs, %s %s\n", model, cpus, u.sysname, u.release);
		for (int i = 0; i < NPEERS; i++)
			fprintf(f, "  %-8s %s\n", all_peers[i]->name, all_peers[i]->version());
	}
}

static int write_json(const char *path, struct result res[][NPEERS], const int *want_w,
                      const int *want_p, const struct bench_opts *o)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "tlsq-bench: cannot write %s\n", path);
		return -1;
	}
	fprintf(f, "{\n");
	machine(f, 1);
	fprintf(f,
	        "  \"options\": {\"runs\": %d, \"bulk_bytes\": %llu, \"duration_s\": %g, "
	        "\"round_trips\": %llu, \"duplex_bytes\": %llu, \"connections\": %llu, "
	        "\"idle_connections\": %llu, \"w7_connections\": %llu, \"w7_active\": %llu, "
	        "\"w7_seconds\": %g, \"produce\": %s},\n  \"results\": [\n",
	        o->runs, (unsigned long long)o->bulk, o->duration,
	        (unsigned long long)o->round_trips, (unsigned long long)o->duplex,
	        (unsigned long long)o->conns[5], (unsigned long long)o->conns[6],
	        (unsigned long long)o->conns[7], (unsigned long long)o->w7_active, o->w7_secs,
	        o->produce ? "true" : "false");
	int first = 1;
	for (int w = 1; w <= BENCH_NWORK; w++)
		for (int i = 0; i < NPEERS; i++) {
			if (!want_w[w] || !want_p[i])
				continue;
			struct result *r = &res[w][i];
			for (int m = 0; m < wl[w].nmetric; m++) {
				fprintf(f,
				        "%s    {\"workload\": \"%s\", \"peer\": \"%s\", "
				        "\"metric\": \"%s\", \"lower_is_better\": %s, ",
				        first ? "" : ",\n", wl[w].name, all_peers[i]->name,
				        wl[w].metric[m], wl[w].lower_better[m] ? "true" : "false");
				first = 0;
				if (r->status != B_OK || r->n == 0)
					fprintf(f, "\"median\": null, \"status\": \"%s\", ",
					        r->status == B_HANG ? "hang"
					        : r->status == B_NA ? "n/a"
					                            : "failed");
				else
					fprintf(f, "\"median\": %.6g, \"status\": \"ok\", ",
					        r->med[m]);
				fprintf(f, "\"runs\": [");
				for (int k = 0; k < r->n; k++)
					fprintf(f, "%s%.6g", k ? ", " : "", r->v[m][k]);
				fprintf(f, "]}");
			}
		}
	fprintf(f, "\n  ]\n}\n");
	return fclose(f) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: tlsq-bench [--workloads W1,...,W7]\n"
	    "                  [--peers tlsq,tcp,wolfssl,openssl,nng,tlsq-zc]\n"
	    "                  [--runs N] [--json FILE] [--quick] [sizes...]\n\n"
	    "Runs tlsq and its peers side by side on loopback: for each workload a server\n"
	    "process and a client process, every byte hashed on both sides, each figure the\n"
	    "median of --runs runs, with the ratio tlsq/peer. A run that does not end\n"
	    "within its deadline is reported as a hang. Peers: tcp (raw blocking TCP),\n"
	    "wolfssl (naive blocking wolfSSL, the same build as tlsq, a mutex around each\n"
	    "call), openssl (blocking OpenSSL 3, likewise), nng (NNG pair1 over tls+tcp,\n"
	    "mbedTLS), tlsq (public API: stream mode, message mode for W2/W3), tlsq-zc\n"
	    "(tlsq with its zero-copy calls in W1 and W4: tlsq_msg_alloc + tlsq_msg_send,\n"
	    "tlsq_recv_lend + tlsq_recv_release; also rated against each peer; not in the\n"
	    "default list). TLS 1.3 with AES-128-GCM (nng: what its mbedTLS offers),\n"
	    "certificates not verified.\n"
	    "Every workload also reports the CPU time (user + system) of both processes\n"
	    "per GB (W1, W4), per message (W2), per round trip (W3), per connection (W5, W6).\n\n"
	    "  -w, --workloads LIST      W1 bulk MB/s, W2 messages/s, W3 ping-pong latency,\n"
	    "                            W4 full duplex MB/s, W5 handshakes/s and KiB per\n"
	    "                            connection, W6 idle connections, W7 100,000\n"
	    "                            connections with 1%% busy (default W1-W6)\n"
	    "  -p, --peers LIST          default tlsq,tcp,wolfssl,openssl,nng; or tlsq-zc\n"
	    "  -r, --runs N              runs per figure (default 3)\n"
	    "  -j, --json FILE           also write the results as JSON\n"
	    "  -q, --quick               small sizes: 64 MiB bulk, 1 s, 10,000 round trips,\n"
	    "                            32 MiB duplex, 200 and 1,000 connections\n"
	    "      --bulk-bytes N        W1 bytes (default 1 GiB; k/m/g suffixes)\n"
	    "      --duration S          W2 seconds (default 5)\n"
	    "      --round-trips N       W3 round trips after warm-up (default 100000)\n"
	    "      --duplex-bytes N      W4 bytes each way (default 512 MiB)\n"
	    "      --connections N       W5 connections (default 2000)\n"
	    "      --idle-connections N  W6 connections (default 10000)\n"
	    "      --w7-conns N          W7 connections (default 100000; 1%% of them, at\n"
	    "                            least 1, exchange messages). Needs about 2N+128\n"
	    "                            descriptors per process: as root tlsq-bench raises\n"
	    "                            the hard limit itself, else ulimit -Hn must allow it\n"
	    "      --w7-seconds S        W7 traffic phase (default 3)\n"
	    "      --produce             W1/W4: the sender writes each 16 KiB piece into a\n"
	    "                            buffer before sending it (copied from the pool, as\n"
	    "                            an application that makes its bytes: read(2), a\n"
	    "                            serialiser); tlsq-zc writes it into the buffer it\n"
	    "                            hands over. Default: senders pass the pool itself\n"
	    "      --slow F              multiply every run's deadline by F (default 1; for\n"
	    "                            valgrind: bench/callgrind.py)\n"
	    "  -h, --help                this text\n"
	    "  -V, --version             versions of tlsq, the crypto library and the peers\n\n"
	    "Progress goes to stderr, the table to stdout. Exit status: 1 if any run\n"
	    "delivered different bytes, or if tlsq or tcp failed or hung; a naive TLS\n"
	    "peer hanging in W4 is reported, not an error.\n");
}

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	switch (*end) {
	case 'k':
	case 'K':
		v *= 1024;
		break;
	case 'm':
	case 'M':
		v *= 1048576;
		break;
	case 'g':
	case 'G':
		v *= 1073741824.0;
		break;
	case '\0':
		break;
	default:
		v = 0;
		break;
	}
	if (v < 1) {
		fprintf(stderr, "tlsq-bench: '%s' is not a size\n", s);
		exit(2);
	}
	return (uint64_t)v;
}

static int parse_list(const char *arg, int *want, int n, int (*lookup)(const char *))
{
	char *s = strdup(arg), *save = NULL;
	memset(want, 0, sizeof(int) * (size_t)n);
	for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int i = lookup(t);
		if (i < 0) {
			free(s);
			return -1;
		}
		want[i] = 1;
	}
	free(s);
	return 0;
}

static int workload_index(const char *t)
{
	int n = (t[0] == 'W' || t[0] == 'w') ? atoi(t + 1) : 0;
	if (n < 1 || n > BENCH_NWORK) {
		fprintf(stderr, "tlsq-bench: unknown workload '%s' (W1..W7)\n", t);
		return -1;
	}
	return n;
}

static int peer_index(const char *t)
{
	for (int i = 0; i < NPEERS; i++)
		if (strcmp(t, all_peers[i]->name) == 0)
			return i;
	fprintf(stderr,
	        "tlsq-bench: unknown peer '%s' (tlsq, tcp, wolfssl, openssl, nng, tlsq-zc)\n", t);
	return -1;
}

static void parse_args(int argc, char **argv, struct bench_opts *o, int *want_w, int *want_p,
                       const char **json)
{
	enum { O_BULK = 1000, O_DUR, O_RT, O_DUP, O_CONN, O_IDLE, O_SLOW, O_W7N, O_W7S, O_PROD };
	static const struct option lo[] = {
	    {"workloads", required_argument, NULL, 'w'},
	    {"peers", required_argument, NULL, 'p'},
	    {"runs", required_argument, NULL, 'r'},
	    {"json", required_argument, NULL, 'j'},
	    {"quick", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"bulk-bytes", required_argument, NULL, O_BULK},
	    {"duration", required_argument, NULL, O_DUR},
	    {"round-trips", required_argument, NULL, O_RT},
	    {"duplex-bytes", required_argument, NULL, O_DUP},
	    {"connections", required_argument, NULL, O_CONN},
	    {"idle-connections", required_argument, NULL, O_IDLE},
	    {"slow", required_argument, NULL, O_SLOW},
	    {"w7-conns", required_argument, NULL, O_W7N},
	    {"w7-seconds", required_argument, NULL, O_W7S},
	    {"produce", no_argument, NULL, O_PROD},
	    {NULL, 0, NULL, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "w:p:r:j:qhV", lo, NULL)) != -1) {
		switch (ch) {
		case 'w':
			if (parse_list(optarg, want_w, BENCH_NWORK + 1, workload_index) < 0)
				exit(2);
			break;
		case 'p':
			if (parse_list(optarg, want_p, NPEERS, peer_index) < 0)
				exit(2);
			break;
		case 'r':
			o->runs = atoi(optarg);
			if (o->runs < 1 || o->runs > MAXRUNS) {
				fprintf(stderr, "tlsq-bench: --runs wants 1..%d\n", MAXRUNS);
				exit(2);
			}
			break;
		case 'j':
			*json = optarg;
			break;
		case 'q':
			o->bulk = 64ull << 20;
			o->duration = 1;
			o->round_trips = 10000;
			o->duplex = 32ull << 20;
			o->conns[5] = 200;
			o->conns[6] = 1000;
			break;
		case O_BULK:
			o->bulk = parse_size(optarg) / 16384 * 16384;
			break;
		case O_DUR:
			o->duration = strtod(optarg, NULL);
			break;
		case O_RT:
			o->round_trips = parse_size(optarg);
			break;
		case O_DUP:
			o->duplex = parse_size(optarg) / 16384 * 16384;
			break;
		case O_CONN:
			o->conns[5] = parse_size(optarg);
			break;
		case O_SLOW:
			o->slow = strtod(optarg, NULL);
			break;
		case O_IDLE:
			o->conns[6] = parse_size(optarg);
			break;
		case O_W7N:
			o->conns[7] = parse_size(optarg);
			break;
		case O_W7S:
			o->w7_secs = strtod(optarg, NULL);
			break;
		case O_PROD:
			o->produce = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			/* The same first lines as every tlsq program (docs/programs.md). */
			printf("tlsq-bench (tlsq) %s\ncrypto: %s\nAES-NI: %s\n", tlsq_version(),
			       tlsq_crypto_version(), tlsq_crypto_aesni() ? "yes" : "no");
			for (int i = 0; i < NPEERS; i++)
				printf("peer %-8s %s\n", all_peers[i]->name,
				       all_peers[i]->version());
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	o->w7_active = o->conns[7] / 100 ? o->conns[7] / 100 : 1;
	if (optind < argc || o->bulk < 16384 || o->duplex < 16384 || o->duration <= 0 ||
	    o->slow < 1 || o->w7_secs <= 0) {
		fprintf(stderr, "tlsq-bench: sizes must be at least 16k, the duration positive and "
		                "--slow at least 1\n");
		exit(2);
	}
}

/* Each side of W5/W6/W7 holds a descriptor per connection, W7's server two
 * (the socket and tlsq's pollfd): raise the soft limit to the hard one, and
 * the hard one too where we may (root or CAP_SYS_RESOURCE, up to
 * /proc/sys/fs/nr_open). Children inherit it. */
static void raise_nofile(const struct bench_opts *o, const int *want_w)
{
	struct rlimit rl;
	uint64_t need = (o->conns[5] > o->conns[6] ? o->conns[5] : o->conns[6]) + 256;
	if (want_w[7] && 2 * o->conns[7] + 128 > need)
		need = 2 * o->conns[7] + 128;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		struct rlimit up = {need, need};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need)
		fprintf(stderr,
		        "tlsq-bench: the descriptor limit (%llu) is below the %llu these "
		        "connections may need (W7: two per connection, the socket and tlsq's "
		        "pollfd): raising the hard limit needs CAP_SYS_RESOURCE (root in a "
		        "container may not have it). Raise it before starting (ulimit -Hn %llu "
		        "as root; 'nofile' in /etc/security/limits.conf; LimitNOFILE= for a "
		        "systemd unit; at most /proc/sys/fs/nr_open), or use fewer connections "
		        "(W7: --w7-conns %llu fits)\n",
		        (unsigned long long)rl.rlim_cur, (unsigned long long)need,
		        (unsigned long long)need,
		        (unsigned long long)(rl.rlim_cur > 256 ? (rl.rlim_cur - 128) / 2 : 1));
}

/* A throw-away self-signed ECDSA P-256 certificate for localhost. */
static int make_cert(char *dir)
{
	char cmd[1024];
	if (!mkdtemp(dir))
		return -1;
	snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
	snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
	snprintf(cmd, sizeof cmd,
	         "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
	         "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
	         "-keyout %s -out %s >/dev/null 2>&1",
	         key_path, cert_path);
	return system(cmd) == 0 ? 0 : -1;
}

static void run_all(struct result res[][NPEERS], const int *want_w, const int *want_p,
                    const struct bench_opts *o)
{
	for (int w = 1; w <= BENCH_NWORK; w++) {
		if (!want_w[w])
			continue;
		for (int i = 0; i < NPEERS; i++) {
			if (!want_p[i])
				continue;
			struct result *r = &res[w][i];
			if (w == 7 && !all_peers[i]->pollfd) {
				fprintf(stderr, "  W7 %-8s not run (no descriptor to poll)\n",
				        all_peers[i]->name);
				r->status = B_NA;
				continue;
			}
			for (int k = 0; k < o->runs; k++) {
				double fig[NMETRIC] = {0};
				fprintf(stderr, "  %s %-8s run %d/%d ... ", wl[w].name,
				        all_peers[i]->name, k + 1, o->runs);
				int st = run_once(all_peers[i], w, o, fig);
				if (st != B_OK) {
					fprintf(stderr, "%s\n",
					        st == B_HANG ? "HANG (killed at the deadline)"
					                     : "FAILED");
					r->status = st;
					break; /* a hang hangs again; report it, move on */
				}
				for (int m = 0; m < wl[w].nmetric; m++) {
					r->v[m][r->n] = fig[m];
					fprintf(stderr, "%s%.3g %s", m ? ", " : "", fig[m],
					        wl[w].metric[m]);
				}
				fprintf(stderr, "\n");
				r->n++;
			}
			for (int m = 0; m < wl[w].nmetric && r->n; m++)
				r->med[m] = median(r->v[m], r->n);
		}
	}
}

int main(int argc, char **argv)
{
	struct bench_opts o = {.bulk = 1ull << 30,
	                       .duplex = 512ull << 20,
	                       .round_trips = 100000,
	                       .duration = 5.0,
	                       .slow = 1.0,
	                       .runs = 3};
	o.conns[5] = 2000;
	o.conns[6] = 10000;
	o.conns[7] = 100000;
	o.w7_secs = 3.0;
	int want_w[BENCH_NWORK + 1] = {0, 1, 1, 1, 1, 1, 1, 0}, want_p[NPEERS] = {1, 1, 1, 1, 1, 0};
	const char *json = NULL;
	parse_args(argc, argv, &o, want_w, want_p, &json);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(&o, want_w);
	char dir[] = "/tmp/tlsq-bench-XXXXXX";
	if (make_cert(dir) < 0) {
		fprintf(stderr,
		        "tlsq-bench: could not make a certificate with the openssl command\n");
		return 1;
	}
	machine(stdout, 0);
	fflush(stdout);
	static struct result res[BENCH_NWORK + 1][NPEERS];
	run_all(res, want_w, want_p, &o);
	print_table(res, want_w, want_p);
	printf("\n(high) = higher is better, (low) = lower is better; the ratio is tlsq's median\n"
	       "divided by the peer's (tlsq-zc/peer: tlsq-zc's), so for (low) metrics a ratio\n"
	       "below 1 favours tlsq.\n"
	       "CPU = user + system time of both processes (all threads), per GB moved\n"
	       "(W1, W4; GB = 1e9 bytes), per message (W2), per round trip (W3) or per\n"
	       "connection (W5, W6), setup included.\n");
	int bad = json && write_json(json, res, want_w, want_p, &o) < 0;
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	/* Exit 1 if bytes ever differed, or if tlsq or raw TCP failed: a naive
	 * TLS peer hanging in W4 is a finding, not a failure of the run. */
	for (int w = 1; w <= BENCH_NWORK; w++)
		for (int i = 0; i < NPEERS; i++)
			if (res[w][i].status == B_FAIL ||
			    (res[w][i].status == B_HANG && (i < 2 || i == ZC)))
				bad = 1;
	if (bad)
		fprintf(stderr, "tlsq-bench: some runs failed (see above)\n");
	return bad;
}
