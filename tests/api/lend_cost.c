/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * lend_cost: what the receiving application thread pays per byte on a
 * W1-like stream (one sender, 16 KiB sends, one receiver that discards the
 * data), with tlsq_recv (a copy into a 64 KiB buffer) or with
 * tlsq_recv_lend/tlsq_recv_release (no copy).
 *
 *   lend_cost copy|lend MIB
 *
 * Prints the receiving thread's CPU time (CLOCK_THREAD_CPUTIME_ID) per GiB.
 * For an instruction count of the receive loop alone, run it under
 *   valgrind --tool=callgrind --toggle-collect=recv_loop_copy \
 *            --toggle-collect=recv_loop_lend lend_cost lend 64
 * Not a test: a measurement (docs/api.md, "Receive without a copy").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/support.h"

#define SEND_CHUNK 16384
#define RECV_BUF   (64 * 1024)

struct snd {
	tlsq_conn *c;
	uint64_t len;
	int rc;
};

static void *send_main(void *arg)
{
	struct snd *s = arg;
	static unsigned char buf[SEND_CHUNK];
	memset(buf, 0x5a, sizeof buf);
	for (uint64_t off = 0; off < s->len; off += SEND_CHUNK)
		if (tlsq_send(s->c, buf, SEND_CHUNK, 60000) != SEND_CHUNK)
			return s->rc = -1, NULL;
	s->rc = tlsq_shutdown_send(s->c);
	return NULL;
}

__attribute__((noinline)) static uint64_t recv_loop_copy(tlsq_conn *c, unsigned char *buf)
{
	uint64_t got = 0;
	ssize_t n;
	while ((n = tlsq_recv(c, buf, RECV_BUF, 60000)) > 0)
		got += (uint64_t)n;
	return n == 0 ? got : 0;
}

__attribute__((noinline)) static uint64_t recv_loop_lend(tlsq_conn *c)
{
	uint64_t got = 0;
	ssize_t n;
	tlsq_chunk *ch;
	const void *data;
	while ((n = tlsq_recv_lend(c, &ch, &data, 60000)) > 0) {
		got += (uint64_t)n;
		tlsq_recv_release(ch, (size_t)n);
	}
	return n == 0 ? got : 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "copy") && strcmp(argv[1], "lend"))) {
		fprintf(stderr, "usage: lend_cost copy|lend MIB\n");
		return 2;
	}
	int lend = strcmp(argv[1], "lend") == 0;
	uint64_t len = strtoull(argv[2], NULL, 10) << 20;
	ts_pair p;
	ts_pair_open(&p, NULL, TLSQ_MODE_STREAM);
	unsigned char *buf = malloc(RECV_BUF);
	struct snd s = {p.client, len, -9};
	ts_thread t = ts_spawn(send_main, &s);
	struct timespec a, b;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	uint64_t got = lend ? recv_loop_lend(p.server) : recv_loop_copy(p.server, buf);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	ts_join(t);
	double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	printf("%s bytes=%llu recv_thread_cpu_ms=%.1f cpu_ms_per_GiB=%.1f %s\n", argv[1],
	       (unsigned long long)got, ns / 1e6, ns / 1e6 / ((double)got / (1 << 30)),
	       got == len && s.rc == 0 ? "ok" : "FAILED");
	free(buf);
	ts_pair_close(&p);
	return got == len && s.rc == 0 ? 0 : 1;
}
