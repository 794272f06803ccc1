/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Send messages from worker threads: four threads share one connection and
 * send 10,000 messages each; the server side receives them with timeouts,
 * then both ends close gracefully without losing a message.
 */
#include <pthread.h>
#include <string.h>

#include "common.h"

#define WORKERS    4
#define PER_WORKER 10000

static tlsq_conn *client;

static void *worker(void *arg)
{
	long id = (long)arg;
	char msg[64];
	for (int i = 0; i < PER_WORKER; i++) {
		int n = snprintf(msg, sizeof msg, "worker %ld message %d", id, i);
		int rc = tlsq_send_msg(client, msg, (size_t)n,
		                       5000); /* blocks while the queue is full */
		if (rc != TLSQ_OK)
			DIE("send_msg: %s", tlsq_strerror(rc));
	}
	return NULL;
}

int main(void)
{
	tlsq_engine *e;
	tlsq_listener *l;
	tlsq_tls *ctls;
	char addr[64];
	example_setup(TLSQ_MODE_MESSAGE, &e, &l, &ctls, addr, sizeof addr);
	if (tlsq_connect(e, addr, ctls, &client, 5000) != TLSQ_OK)
		DIE("connect: %s", tlsq_last_error());
	tlsq_conn *server;
	if (tlsq_accept(l, &server, 5000) != TLSQ_OK)
		DIE("accept failed");

	pthread_t t[WORKERS];
	for (long i = 0; i < WORKERS; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(t[i], NULL);
	/* Close without losing data: close_notify goes after everything queued. */
	tlsq_shutdown_send(client);

	long got = 0;
	char buf[128];
	for (;;) {
		ssize_t n = tlsq_recv_msg(server, buf, sizeof buf, 5000);
		if (n == TLSQ_ECLOSED)
			break; /* the peer's close_notify, after its last message */
		if (n < 0)
			DIE("recv_msg: %s (%s)", tlsq_strerror((int)n), tlsq_conn_error(server));
		got++;
	}
	tlsq_close_phase ph;
	int rc = tlsq_close(server, 5000, &ph);
	printf("received %ld of %d messages; close: %s (phase %d)\n", got, WORKERS * PER_WORKER,
	       tlsq_strerror(rc), (int)ph);
	tlsq_conn_free(server);
	tlsq_conn_free(client);
	tlsq_listener_free(l);
	tlsq_tls_free(ctls);
	tlsq_engine_free(e);
	return got == WORKERS * PER_WORKER && rc == TLSQ_OK ? 0 : 1;
}
