/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: what a tlsq server does with the bytes a client sends
 * before the handshake completes.
 *
 * One engine with one IO thread and a server listener (self-signed ECDSA
 * certificate, the default profile) lives for the whole process. Each input
 * becomes one server connection exactly as the listener makes them
 * (tlsq__conn_new in HANDSHAKING, owned by the listener, adopted by an IO
 * thread), except that its socket is one end of an AF_UNIX socketpair
 * instead of an accepted TCP socket: no ports, no TIME_WAIT, thousands of
 * connections a second. The input is written to the other end, then a FIN;
 * the server must answer (or not) and close within 10 s (its handshake
 * deadline is 60 s: a close only at the deadline means it missed the FIN)
 * and release the connection: connections.live back to zero, or the target
 * traps (a hang).
 * The IO task, the wolfSSL callbacks, the state machine, the deadline
 * timers and the teardown all run as in production.
 *
 * wolfSSL itself is not instrumented for coverage (it is the Debian build),
 * so the seed corpus carries real ClientHellos (tlsq, OpenSSL 1.2/1.3,
 * GnuTLS) for the mutations to start from.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "iotask.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "fuzz_handshake: %s failed\n", #x);                        \
			__builtin_trap();                                                          \
		}                                                                                  \
	} while (0)

static tlsq_engine *engine;
static tlsq_tls *tls;
static tlsq_listener *listener;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	tlsq_engine_config cfg;
	tlsq_engine_config_init(&cfg);
	cfg.io_threads = 1;
	/* Far beyond the 10 s the harness allows after its FIN: a server that
	 * missed the bytes or the FIN, and would only close at the deadline,
	 * is caught as a hang (the margin is for loaded CI machines). */
	cfg.handshake_timeout_ms = 60000;
	CHECK(tlsq_engine_new(&cfg, &engine) == TLSQ_OK);
	tlsq_tls_config tc;
	tlsq_tls_config_init(&tc, TLSQ_SERVER);
	tc.self_signed = 1;
	CHECK(tlsq_tls_new(&tc, &tls) == TLSQ_OK);
	CHECK(tlsq_listen(engine, "127.0.0.1:0", tls, &listener) == TLSQ_OK);
	return 0;
}

/* What listener_on_accept (iotask/net.c) does with an accepted socket. */
static void adopt(int fd)
{
	struct tlsq_conn *c = tlsq__conn_new(engine, listener->tls, fd, TLSQ_STATE_HANDSHAKING);
	CHECK(c != NULL);
	snprintf(c->peer, sizeof c->peer, "fuzz");
	atomic_fetch_add(&listener->refs, 1);
	c->listener = listener;
	tlsq__conn_request(c, TLSQ__REQ_ADOPT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	adopt(sv[0]);
	int fd = sv[1];
	size_t off = 0;
	int open = 1, fin = 0;
	char sink[16384];
	size_t got = 0;
	uint64_t start = now_ms(), end = start + 10000;
	/* Write the input (draining what the server answers), then FIN, then
	 * read until the server closes. */
	while (open) {
		if (off == size && !fin) {
			shutdown(fd, SHUT_WR);
			fin = 1;
		}
		struct pollfd p = {fd, POLLIN | (fin ? 0 : POLLOUT), 0};
		uint64_t now = now_ms();
		if (now >= end) {
			fprintf(stderr,
			        "fuzz_handshake: no close %llu ms after the input "
			        "(%zu of %zu bytes written, FIN %s, %zu bytes answered)\n",
			        (unsigned long long)(now - start), off, size,
			        fin ? "sent" : "not sent", got);
			__builtin_trap(); /* the server must end the connection */
		}
		if (poll(&p, 1, (int)(end - now)) <= 0)
			continue;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, sink, sizeof sink, 0);
			if (n > 0)
				got += (size_t)n;
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				open = 0;
		}
		if (!fin && (p.revents & POLLOUT)) {
			ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				off = size; /* the server closed first: done writing */
		}
	}
	close(fd);
	/* A handshake can hardly complete, but if it did: accept and free. */
	tlsq_conn *a;
	while (tlsq_accept(listener, &a, 0) == TLSQ_OK)
		tlsq_conn_free(a);
	/* The connection is released before the next input. */
	while (atomic_load(&engine->stats.conns_live) != 0) {
		CHECK(now_ms() < end + 10000);
		struct timespec ts = {0, 100 * 1000};
		nanosleep(&ts, NULL); /* polling interval */
	}
	return 0;
}
