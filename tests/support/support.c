/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "support.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #x,          \
			        tlsq_last_error());                                                \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

void ts_engine_config(tlsq_engine_config *cfg)
{
	tlsq_engine_config_init(cfg);
	cfg->io_threads = 2;
	cfg->handshake_timeout_ms = 10000;
	cfg->close_linger_ms = 1000;
}

void ts_profiles(tlsq_mode mode, tlsq_tls **server, tlsq_tls **client)
{
	tlsq_tls_config sc, cc;
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	sc.self_signed = 1;
	sc.mode = mode;
	CHECK(tlsq_tls_new(&sc, server) == TLSQ_OK);
	static _Thread_local char pem[8192];
	CHECK(tlsq_tls_cert_pem(*server, pem, sizeof pem) > 0);
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.ca_pem = pem;
	cc.server_name = "localhost";
	cc.mode = mode;
	CHECK(tlsq_tls_new(&cc, client) == TLSQ_OK);
}

void ts_pair_open(ts_pair *p, const tlsq_engine_config *cfg, tlsq_mode mode)
{
	tlsq_engine_config def;
	memset(p, 0, sizeof *p);
	if (!cfg) {
		ts_engine_config(&def);
		cfg = &def;
	}
	CHECK(tlsq_engine_new(cfg, &p->engine) == TLSQ_OK);
	ts_profiles(mode, &p->server_tls, &p->client_tls);
	CHECK(tlsq_listen(p->engine, "127.0.0.1:0", p->server_tls, &p->listener) == TLSQ_OK);
	p->port = tlsq_listener_port(p->listener);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", p->port);
	CHECK(tlsq_connect(p->engine, addr, p->client_tls, &p->client, 10000) == TLSQ_OK);
	CHECK(tlsq_accept(p->listener, &p->server, 10000) == TLSQ_OK);
}

void ts_pair_close(ts_pair *p)
{
	tlsq_conn_free(p->client);
	tlsq_conn_free(p->server);
	tlsq_listener_free(p->listener);
	tlsq_engine_free(p->engine);
	tlsq_tls_free(p->server_tls);
	tlsq_tls_free(p->client_tls);
	memset(p, 0, sizeof *p);
}

void ts_fill(uint64_t seed, uint64_t offset, void *buf, size_t len)
{
	unsigned char *b = buf;
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (offset + i) * 0x9e3779b97f4a7c15ull ^ seed;
		x ^= x >> 29;
		x *= 0xbf58476d1ce4e5b9ull;
		x ^= x >> 32;
		b[i] = (unsigned char)x;
	}
}

uint64_t ts_fnv(uint64_t h, const void *buf, size_t len)
{
	const unsigned char *b = buf;
	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t ts_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int ts_wait_for(int (*cond)(void *), void *arg, int ms)
{
	uint64_t end = ts_now_ms() + (uint64_t)ms;
	while (!cond(arg)) {
		if (ts_now_ms() >= end)
			return cond(arg);
		sched_yield();
	}
	return 1;
}

int ts_send_pattern(tlsq_conn *c, uint64_t seed, uint64_t len, size_t chunk)
{
	unsigned char *buf = malloc(chunk);
	uint64_t off = 0;
	while (off < len) {
		size_t n = len - off < chunk ? (size_t)(len - off) : chunk;
		ts_fill(seed, off, buf, n);
		ssize_t r = tlsq_send(c, buf, n, 30000);
		if (r != (ssize_t)n) {
			fprintf(stderr, "send at %llu: %zd (%s) %s\n", (unsigned long long)off, r,
			        tlsq_strerror((int)r), tlsq_conn_error(c));
			free(buf);
			return -1;
		}
		off += n;
	}
	free(buf);
	return 0;
}

int ts_recv_pattern(tlsq_conn *c, uint64_t seed, uint64_t len, size_t chunk)
{
	unsigned char *buf = malloc(chunk), *want = malloc(chunk);
	uint64_t off = 0;
	int rc = 0;
	while (off < len) {
		size_t cap = len - off < chunk ? (size_t)(len - off) : chunk;
		ssize_t r = tlsq_recv(c, buf, cap, 30000);
		if (r <= 0) {
			fprintf(stderr, "recv at %llu of %llu: %zd (%s) %s\n",
			        (unsigned long long)off, (unsigned long long)len, r,
			        tlsq_strerror((int)r), tlsq_conn_error(c));
			rc = -1;
			break;
		}
		ts_fill(seed, off, want, (size_t)r);
		if (memcmp(buf, want, (size_t)r) != 0) {
			fprintf(stderr, "mismatch in bytes %llu..%llu\n", (unsigned long long)off,
			        (unsigned long long)(off + (uint64_t)r));
			rc = -1;
			break;
		}
		off += (uint64_t)r;
	}
	free(buf);
	free(want);
	return rc;
}

ts_thread ts_spawn(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	CHECK(pthread_create(&t, NULL, fn, arg) == 0);
	ts_thread r = {(unsigned long)t};
	return r;
}

void *ts_join(ts_thread t)
{
	void *ret = NULL;
	pthread_join((pthread_t)t.id, &ret);
	return ret;
}

const char *ts_pki_dir(void)
{
	return getenv("TLSQ_TEST_PKI");
}
