/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: the status endpoint's request handling (status/status.c on
 * libevent's evhttp: request line, headers, query parsing, routing, the
 * token check, the JSON, metrics and page builders).
 *
 * One engine with the status endpoint on 127.0.0.1:0 (a bearer token set,
 * so the authorization path runs; request deadline 1 s) and one live TLS
 * connection pair, so /status has a connection to describe. Each input is
 * sent as raw bytes on a new loopback TCP connection, followed by a FIN;
 * the endpoint must answer or close within its deadline (+ 4 s slack) or
 * the target traps. The token is "fuzz" (seeds use it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tlsq.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "fuzz_status: %s failed\n", #x);                           \
			__builtin_trap();                                                          \
		}                                                                                  \
	} while (0)

static tlsq_engine *engine;
static int port;

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
	cfg.status_addr = "127.0.0.1:0";
	cfg.status_token = "fuzz";
	cfg.status_request_timeout_ms = 1000;
	CHECK(tlsq_engine_new(&cfg, &engine) == TLSQ_OK);
	port = tlsq_engine_status_port(engine);
	CHECK(port > 0);
	/* One connection pair (kept for the whole run). */
	static tlsq_tls *s, *c;
	static tlsq_listener *l;
	static tlsq_conn *cc, *sc;
	static char pem[8192];
	tlsq_tls_config tc;
	tlsq_tls_config_init(&tc, TLSQ_SERVER);
	tc.self_signed = 1;
	CHECK(tlsq_tls_new(&tc, &s) == TLSQ_OK);
	CHECK(tlsq_tls_cert_pem(s, pem, sizeof pem) > 0);
	tlsq_tls_config_init(&tc, TLSQ_CLIENT);
	tc.ca_pem = pem;
	tc.server_name = "localhost";
	CHECK(tlsq_tls_new(&tc, &c) == TLSQ_OK);
	CHECK(tlsq_listen(engine, "127.0.0.1:0", s, &l) == TLSQ_OK);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", tlsq_listener_port(l));
	CHECK(tlsq_connect(engine, addr, c, &cc, 10000) == TLSQ_OK);
	CHECK(tlsq_accept(l, &sc, 10000) == TLSQ_OK);
	CHECK(tlsq_send(cc, "hello", 5, 1000) == 5);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0); /* loopback: at once */
	CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	size_t off = 0;
	int open = 1, fin = 0;
	char sink[65536];
	uint64_t end = now_ms() + 5000;
	while (open) {
		if (off == size && !fin) {
			shutdown(fd, SHUT_WR);
			fin = 1;
		}
		struct pollfd p = {fd, POLLIN | (fin ? 0 : POLLOUT), 0};
		uint64_t now = now_ms();
		CHECK(now < end); /* the endpoint must answer or close */
		if (poll(&p, 1, (int)(end - now)) <= 0)
			continue;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, sink, sizeof sink, 0);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				open = 0;
		}
		if (!fin && (p.revents & POLLOUT)) {
			ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				off = size;
		}
	}
	close(fd);
	return 0;
}
