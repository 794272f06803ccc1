/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Memory bounds (G4, docs/reliability.md "Memory"): a tlsq server with
 * 1,000 idle connections and 100 connections whose peer never reads while
 * the application keeps sending with a timeout.
 *
 * The peers run in a child process (this program with --peer), so the
 * resident memory (VmRSS) of this process is the server's alone:
 *
 *   base     after a warm-up (pools, allocator arenas, wolfSSL tables)
 *   idle     after accepting N idle connections       -> per idle connection
 *   blocked  after M never-reading connections were filled until every send
 *            returned TLSQ_ETIMEDOUT                  -> per blocked connection
 *   again    after 5 more timed-out sends on each blocked connection
 *
 * and checks (per_idle <= idle budget), (per_blocked <= blocked budget),
 * (again - blocked <= growth budget). Every check prints one line
 * "MEMORY|name|value KiB|budget KiB|ok/FAILED"; a failed check prints
 * "MEMORY CHECK FAILED: name" and the exit status is 1.
 *
 *   test_memory [--idle N] [--blocked M] [--idle-budget-kib K]
 *               [--blocked-budget-kib K] [--growth-budget-kib K]
 *
 * ctest runs it twice: with the documented budgets (must pass), and with
 * impossible budgets of 1 KiB (must report both checks FAILED: the check
 * can fail).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "integration/rel.h"
#include "support/support.h"

/* Server configuration under test (the budgets derive from it). */
#define TX_BUDGET     (256 * 1024)
#define RX_BUDGET     (64 * 1024)
#define CIPHER_BUFFER (64 * 1024)
#define SOCKET_BUFFER (64 * 1024)
#define CHUNK         (16 * 1024)

/*
 * Documented budgets (KiB), docs/reliability.md "Memory".
 *
 * Idle: an open, handshaken connection with nothing queued keeps its
 * struct tlsq_conn (~2.5 KiB), the WOLFSSL object after the handshake
 * (~6 KiB: keys, record state, session), two empty evbuffers, four events,
 * two queue heads whose slot rings are not allocated until the first
 * push, and the allocator's overhead: measured ~21 KiB; budget 32 KiB.
 *
 * Never-reading peer, application sending with a timeout: the idle cost
 * plus at most
 *   tx_budget                 plaintext waiting in the transmit queue
 *   + cipher_buffer + 16 KiB  ciphertext out (pump_tx stops at the
 *                             high-water mark, after at most one record)
 *   + 16 KiB                  the staging buffer that coalesces small sends
 *   + 32 KiB                  the transmit queue's slot ring (4096 x 8 bytes)
 * = 32 + 256 + 64 + 16 + 16 + 32 = 416 KiB with the configuration above.
 * Kernel socket buffers (socket_buffer) are not in the process's RSS.
 *
 * Growth: 5 more timed-out sends on each of the blocked connections must
 * not grow RSS by more than 2 MiB in all (they queue nothing).
 *
 * ASan adds redzones to every allocation and keeps freed memory in
 * quarantine, so under ASan the bounds only catch gross growth.
 */
#if defined(__SANITIZE_ADDRESS__)
#define IDLE_BUDGET_KIB    128
#define BLOCKED_BUDGET_KIB 2048
#define GROWTH_BUDGET_KIB  16384
#else
#define IDLE_BUDGET_KIB 32
#define BLOCKED_BUDGET_KIB                                                                         \
	(IDLE_BUDGET_KIB + (TX_BUDGET + CIPHER_BUFFER + 16384 + 16384 + 4096 * 8) / 1024)
#define GROWTH_BUDGET_KIB 2048
#endif

#if defined(__SANITIZE_ADDRESS__)
/* Freed memory would stay resident in ASan's quarantine (256 MiB by
 * default) and count as the connections'. ASAN_OPTIONS may still override. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=4";
}
#endif

#define DIE(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "test_memory: " __VA_ARGS__);                                      \
		fprintf(stderr, "\n");                                                             \
		exit(2);                                                                           \
	} while (0)

extern char **environ;

/* ------------------------------------------------------------------------ */
/* The peer process                                                          */
/* ------------------------------------------------------------------------ */

/* Reads commands on stdin: "idle N", "blocked N", "quit". Answers "ok N"
 * once N more connections completed their handshake. Blocked connections'
 * application never reads; their engine's small budgets make the IO task
 * stop reading soon. */
static int peer_main(int port)
{
	rel_raise_nofile(8192);
	signal(SIGPIPE, SIG_IGN);
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.socket_buffer = SOCKET_BUFFER;
	tlsq_engine *idle_e, *blocked_e;
	if (tlsq_engine_new(&cfg, &idle_e) != TLSQ_OK)
		DIE("peer engine: %s", tlsq_last_error());
	cfg.rx_budget = 16 * 1024;
	cfg.cipher_buffer = 16 * 1024;
	cfg.socket_buffer = 16 * 1024;
	if (tlsq_engine_new(&cfg, &blocked_e) != TLSQ_OK)
		DIE("peer engine: %s", tlsq_last_error());
	tlsq_tls_config tc;
	tlsq_tls_config_init(&tc, TLSQ_CLIENT);
	tc.verify = TLSQ_VERIFY_NONE; /* the server's identity does not matter here */
	tlsq_tls *tls;
	if (tlsq_tls_new(&tc, &tls) != TLSQ_OK)
		DIE("peer profile: %s", tlsq_last_error());
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	size_t cap = 4096, n = 0;
	tlsq_conn **conns = calloc(cap, sizeof *conns);
	char line[128];
	while (fgets(line, sizeof line, stdin)) {
		int k = 0;
		tlsq_engine *e = NULL;
		if (sscanf(line, "idle %d", &k) == 1)
			e = idle_e;
		else if (sscanf(line, "blocked %d", &k) == 1)
			e = blocked_e;
		else
			break;
		if (n + (size_t)k > cap)
			DIE("too many connections");
		size_t first = n;
		for (int i = 0; i < k; i++)
			if (tlsq_connect_start(e, addr, tls, &conns[n++]) != TLSQ_OK)
				DIE("connect_start: %s", tlsq_last_error());
		for (size_t i = first; i < n; i++) {
			int rc = tlsq_connect_wait(conns[i], 30000);
			if (rc != TLSQ_OK)
				DIE("connection %zu: %s: %s", i, tlsq_strerror(rc),
				    tlsq_conn_error(conns[i]));
		}
		printf("ok %d\n", k);
		fflush(stdout);
	}
	for (size_t i = 0; i < n; i++) {
		tlsq_abort(conns[i]);
		tlsq_conn_free(conns[i]);
	}
	free(conns);
	tlsq_engine_free(idle_e);
	tlsq_engine_free(blocked_e);
	tlsq_tls_free(tls);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The server                                                                */
/* ------------------------------------------------------------------------ */

static struct {
	pid_t pid;
	FILE *to, *from;
} peer;

static void peer_start(int port)
{
	int in[2], out[2];
	if (pipe(in) != 0 || pipe(out) != 0)
		DIE("pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addclose(&fa, in[1]);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	char ps[16];
	snprintf(ps, sizeof ps, "%d", port);
	char *argv[] = {"test_memory", "--peer", ps, NULL};
	/* The path /proc/self/exe names, not the link itself: under valgrind
	 * the link is valgrind's own binary, readlink gives this program. */
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		DIE("readlink /proc/self/exe");
	self[n] = 0;
	if (posix_spawn(&peer.pid, self, &fa, NULL, argv, environ) != 0)
		DIE("spawn the peer");
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	peer.to = fdopen(in[1], "w");
	peer.from = fdopen(out[0], "r");
}

/* Asks the peer for k connections and accepts them into conns. */
static void peer_connect(const char *kind, int k, tlsq_listener *l, tlsq_conn **conns)
{
	fprintf(peer.to, "%s %d\n", kind, k);
	fflush(peer.to);
	for (int i = 0; i < k; i++) {
		int rc = tlsq_accept(l, &conns[i], 30000);
		if (rc != TLSQ_OK)
			DIE("accept %s %d of %d: %s", kind, i, k, tlsq_strerror(rc));
	}
	char line[64];
	if (!fgets(line, sizeof line, peer.from) || strncmp(line, "ok", 2) != 0)
		DIE("the peer failed (%s %d)", kind, k);
}

struct filler {
	tlsq_conn **conns;
	int n;
	int rounds;    /* 0: fill until the first timeout; else sends per conn */
	uint64_t sent; /* bytes accepted */
	int timeouts, other;
};

static void *fill(void *arg)
{
	struct filler *f = arg;
	unsigned char *buf = malloc(CHUNK);
	memset(buf, 'x', CHUNK);
	for (int i = 0; i < f->n; i++) {
		if (f->rounds == 0) {
			/* Until three sends in a row time out: the kernel may
			 * still take a little after the first one. */
			uint64_t end = ts_now_ms() + 30000;
			int in_row = 0;
			for (;;) {
				ssize_t r = tlsq_send(f->conns[i], buf, CHUNK, 50);
				if (r == CHUNK) {
					f->sent += CHUNK;
					in_row = 0;
				} else if (r == TLSQ_ETIMEDOUT) {
					if (++in_row == 3) {
						f->timeouts++;
						break;
					}
				} else {
					f->other++;
					break;
				}
				if (ts_now_ms() > end) {
					f->other++;
					break;
				}
			}
		} else {
			for (int k = 0; k < f->rounds; k++) {
				ssize_t r = tlsq_send(f->conns[i], buf, CHUNK, 20);
				if (r == CHUNK)
					f->sent += CHUNK;
				else if (r == TLSQ_ETIMEDOUT)
					f->timeouts++;
				else
					f->other++;
			}
		}
	}
	free(buf);
	return NULL;
}

#define FILLERS 4

static void fill_all(tlsq_conn **conns, int n, int rounds, uint64_t *sent, int *timeouts,
                     int *other)
{
	struct filler f[FILLERS];
	ts_thread t[FILLERS];
	int per = (n + FILLERS - 1) / FILLERS;
	for (int i = 0; i < FILLERS; i++) {
		int a = i * per, b = a + per > n ? n : a + per;
		f[i] = (struct filler){conns + a, b > a ? b - a : 0, rounds, 0, 0, 0};
		t[i] = ts_spawn(fill, &f[i]);
	}
	*sent = 0;
	*timeouts = *other = 0;
	for (int i = 0; i < FILLERS; i++) {
		ts_join(t[i]);
		*sent += f[i].sent;
		*timeouts += f[i].timeouts;
		*other += f[i].other;
	}
}

static int failures;

static void check(const char *name, double value_kib, long budget_kib)
{
	int ok = value_kib <= (double)budget_kib;
	printf("MEMORY|%s|%.1f|%ld|%s\n", name, value_kib, budget_kib, ok ? "ok" : "FAILED");
	if (!ok) {
		printf("MEMORY CHECK FAILED: %s: %.1f KiB > budget %ld KiB\n", name, value_kib,
		       budget_kib);
		failures++;
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int n_idle = 1000, n_blocked = 100;
	long idle_budget = IDLE_BUDGET_KIB, blocked_budget = BLOCKED_BUDGET_KIB,
	     growth_budget = GROWTH_BUDGET_KIB;
	for (int i = 1; i < argc; i += 2) { /* option, value */
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--peer") == 0 && v)
			return peer_main(atoi(v));
		if (!v)
			DIE("usage: see the comment at the top of test_memory.c");
		if (strcmp(a, "--idle") == 0)
			n_idle = atoi(v);
		else if (strcmp(a, "--blocked") == 0)
			n_blocked = atoi(v);
		else if (strcmp(a, "--idle-budget-kib") == 0)
			idle_budget = atol(v);
		else if (strcmp(a, "--blocked-budget-kib") == 0)
			blocked_budget = atol(v);
		else if (strcmp(a, "--growth-budget-kib") == 0)
			growth_budget = atol(v);
		else
			DIE("unknown option %s", a);
	}
	signal(SIGPIPE, SIG_IGN);
	long nofile = rel_raise_nofile(8192);
	if (nofile < 2 * (n_idle + n_blocked) + 100)
		DIE("RLIMIT_NOFILE is %ld, too low", nofile);
	uint64_t t0 = ts_now_ms();

	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	cfg.tx_budget = TX_BUDGET;
	cfg.rx_budget = RX_BUDGET;
	cfg.cipher_buffer = CIPHER_BUFFER;
	cfg.socket_buffer = SOCKET_BUFFER;
	cfg.handshake_timeout_ms = 30000;
	cfg.accept_backlog = 2048;
	tlsq_engine *e;
	if (tlsq_engine_new(&cfg, &e) != TLSQ_OK)
		DIE("engine: %s", tlsq_last_error());
	tlsq_tls_config sc;
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	sc.self_signed = 1;
	tlsq_tls *tls;
	tlsq_listener *l;
	if (tlsq_tls_new(&sc, &tls) != TLSQ_OK || tlsq_listen(e, "127.0.0.1:0", tls, &l) != TLSQ_OK)
		DIE("listen: %s", tlsq_last_error());
	peer_start(tlsq_listener_port(l));

	tlsq_conn **conns = calloc((size_t)(n_idle + n_blocked + 8), sizeof *conns);
	/* Warm-up: a few idle connections, kept open (nothing is freed before
	 * the measurements, so no freed memory is reused and hides a cost):
	 * wolfSSL's tables, the allocator's arenas, the IO threads' stacks. */
	tlsq_conn **warm = conns + n_idle + n_blocked;
	peer_connect("idle", 8, l, warm);
	uint64_t sent;
	int timeouts, other;
	long base = rel_rss_kib();

	peer_connect("idle", n_idle, l, conns);
	long after_idle = rel_rss_kib();

	peer_connect("blocked", n_blocked, l, conns + n_idle);
	uint64_t t1 = ts_now_ms();
	fill_all(conns + n_idle, n_blocked, 0, &sent, &timeouts, &other);
	uint64_t fill_ms = ts_now_ms() - t1;
	long after_blocked = rel_rss_kib();
	if (timeouts != n_blocked || other != 0)
		DIE("filling: %d of %d connections ended in ETIMEDOUT, %d otherwise", timeouts,
		    n_blocked, other);
	uint64_t queued = 0, max_queued = 0;
	for (int i = 0; i < n_blocked; i++) {
		struct tlsq_conn_info ci;
		tlsq_conn_info(conns[n_idle + i], &ci);
		if (ci.error)
			DIE("blocked connection %d failed: %s", i, ci.error_reason);
		queued += ci.tx_queued;
		if (ci.tx_queued > max_queued)
			max_queued = ci.tx_queued;
	}
	if (max_queued > TX_BUDGET)
		DIE("a transmit queue holds %llu bytes, over its budget",
		    (unsigned long long)max_queued);

	/* The application keeps sending: every send times out, memory stays. */
	uint64_t sent2;
	int timeouts2, other2;
	fill_all(conns + n_idle, n_blocked, 5, &sent2, &timeouts2, &other2);
	long after_again = rel_rss_kib();
	if (other2 != 0 || timeouts2 < 5 * n_blocked * 3 / 4)
		DIE("more sends: %d of %d timed out, %d other errors", timeouts2, 5 * n_blocked,
		    other2);

	printf("MEMINFO|rss_base_kib|%ld\n", base);
	printf("MEMINFO|rss_idle_kib|%ld\n", after_idle);
	printf("MEMINFO|rss_blocked_kib|%ld\n", after_blocked);
	printf("MEMINFO|rss_again_kib|%ld\n", after_again);
	printf("MEMINFO|idle_conns|%d\n", n_idle);
	printf("MEMINFO|blocked_conns|%d\n", n_blocked);
	printf("MEMINFO|blocked_sent_kib|%llu\n", (unsigned long long)(sent >> 10));
	printf("MEMINFO|blocked_tx_queued_kib|%llu\n", (unsigned long long)(queued >> 10));
	printf("MEMINFO|fill_ms|%llu\n", (unsigned long long)fill_ms);
	printf("MEMINFO|more_sends_timed_out|%d/%d\n", timeouts2, 5 * n_blocked);
	check("per_idle_connection", (double)(after_idle - base) / n_idle, idle_budget);
	check("per_blocked_connection", (double)(after_blocked - after_idle) / n_blocked,
	      blocked_budget);
	check("growth_on_more_sends", (double)(after_again - after_blocked), growth_budget);

	fclose(peer.to); /* the peer quits */
	int status = 0;
	waitpid(peer.pid, &status, 0);
	fclose(peer.from);
	for (int i = 0; i < n_idle + n_blocked + 8; i++) {
		tlsq_abort(conns[i]);
		tlsq_conn_free(conns[i]);
	}
	free(conns);
	tlsq_listener_free(l);
	tlsq_engine_free(e);
	tlsq_tls_free(tls);
	printf("MEMINFO|seconds|%.1f\n", (double)(ts_now_ms() - t0) / 1000.0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		DIE("the peer process failed");
	printf(failures ? "memory: %d check(s) FAILED\n" : "memory: all checks passed\n", failures);
	return failures ? 1 : 0;
}
