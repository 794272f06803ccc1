/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * msg_client.c - a tlsq message-mode client for tests/protocol/protocol.py:
 * sends the messages of a plan to a peer that echoes each one, from one
 * thread, while the main thread receives the echoes and checks each byte.
 *
 *   msg_client HOST:PORT CA_FILE DATA_FILE SIZE...
 *
 * Message i is the next SIZE_i bytes of DATA_FILE. Sending and receiving run
 * at once (the sender never waits for an echo), so a peer that echoes as it
 * reads never deadlocks against us however large the plan. After the last
 * echo: a graceful close (close_notify both ways). Exit 0 when every echo
 * matched and the close completed; 1 with one line on stderr otherwise.
 * Uses only api/tlsq.h.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tlsq.h>

struct plan {
	tlsq_conn *c;
	const unsigned char *data;
	size_t *size, *off;
	int n;
	int send_rc; /* the first failed send, or TLSQ_OK */
};

static void *sender(void *arg)
{
	struct plan *p = arg;
	for (int i = 0; i < p->n; i++) {
		int rc = tlsq_send_msg(p->c, p->data + p->off[i], p->size[i], 60000);
		if (rc != TLSQ_OK) {
			p->send_rc = rc;
			break;
		}
	}
	return NULL;
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0, got;
	do {
		if (n == cap) {
			cap = cap ? 2 * cap : 1 << 20;
			unsigned char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	*len = n;
	return buf;
}

static int fail(const char *what, int rc, const char *reason)
{
	fprintf(stderr, "msg_client: %s: %s%s%s\n", what, tlsq_strerror(rc), *reason ? ": " : "",
	        reason);
	return 1;
}

/* Receives and checks every echo; returns 0 when all matched. */
static int check_echoes(struct plan *p)
{
	for (int i = 0; i < p->n; i++) {
		void *m;
		ssize_t got = tlsq_msg_recv(p->c, &m, 60000);
		if (got < 0) {
			char what[64];
			snprintf(what, sizeof what, "echo of message %d", i);
			return fail(what, (int)got, tlsq_conn_error(p->c));
		}
		int bad = (size_t)got != p->size[i] || memcmp(m, p->data + p->off[i], p->size[i]);
		tlsq_msg_free(m);
		if (bad) {
			fprintf(stderr,
			        "msg_client: echo of message %d: %zd bytes, want %zu, or bytes "
			        "differ\n",
			        i, got, p->size[i]);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: msg_client HOST:PORT CA_FILE DATA_FILE SIZE...\n");
		return 2;
	}
	struct plan p = {.n = argc - 4};
	size_t data_len = 0, total = 0;
	unsigned char *data = read_file(argv[3], &data_len);
	p.size = calloc((size_t)p.n, sizeof *p.size);
	p.off = calloc((size_t)p.n, sizeof *p.off);
	if (!data || !p.size || !p.off) {
		fprintf(stderr, "msg_client: cannot read %s\n", argv[3]);
		return 1;
	}
	for (int i = 0; i < p.n; i++) {
		p.off[i] = total;
		p.size[i] = strtoull(argv[4 + i], NULL, 10);
		total += p.size[i];
	}
	if (total > data_len) {
		fprintf(stderr, "msg_client: the plan needs %zu bytes, %s has %zu\n", total,
		        argv[3], data_len);
		return 1;
	}
	p.data = data;

	tlsq_engine_config ec;
	tlsq_engine_config_init(&ec);
	ec.io_threads = 1;
	tlsq_engine *e;
	int rc = tlsq_engine_new(&ec, &e);
	if (rc != TLSQ_OK)
		return fail("engine", rc, tlsq_last_error());
	tlsq_tls_config tc;
	tlsq_tls_config_init(&tc, TLSQ_CLIENT);
	tc.mode = TLSQ_MODE_MESSAGE;
	tc.ca_file = argv[2];
	tlsq_tls *tls = NULL;
	int status = 1;
	if ((rc = tlsq_tls_new(&tc, &tls)) != TLSQ_OK) {
		fail(argv[2], rc, tlsq_last_error());
	} else if ((rc = tlsq_connect(e, argv[1], tls, &p.c, 10000)) != TLSQ_OK) {
		fail(argv[1], rc, tlsq_last_error());
	} else {
		pthread_t th;
		pthread_create(&th, NULL, sender, &p);
		status = check_echoes(&p);
		if (status != 0)
			tlsq_abort(p.c); /* wakes the sender if it is blocked */
		pthread_join(th, NULL);
		if (status == 0 && p.send_rc != TLSQ_OK)
			status = fail("send", p.send_rc, tlsq_conn_error(p.c));
		tlsq_close_phase ph;
		if (status == 0 && (rc = tlsq_close(p.c, 10000, &ph)) != TLSQ_OK)
			status = fail("close", rc, tlsq_conn_error(p.c));
		if (status == 0)
			printf("msg_client: %d messages, %zu bytes, every echo intact, closed "
			       "cleanly\n",
			       p.n, total);
	}
	tlsq_conn_free(p.c);
	tlsq_tls_free(tls);
	tlsq_engine_free(e);
	free(data);
	free(p.size);
	free(p.off);
	return status;
}
