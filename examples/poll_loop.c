/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Integrate with your own poll(2) loop: tlsq_conn_pollfd is readable while
 * data waits or the connection ended; read with timeout 0 until TLSQ_EAGAIN.
 */
#include <poll.h>
#include <pthread.h>
#include <string.h>

#include "common.h"

#define TOTAL (1 << 20)

static tlsq_conn *client;

static void *sender(void *arg)
{
	(void)arg;
	static char chunk[4096];
	for (int sent = 0; sent < TOTAL; sent += (int)sizeof chunk)
		if (tlsq_send(client, chunk, sizeof chunk, 5000) < 0)
			DIE("send failed");
	tlsq_shutdown_send(client);
	return NULL;
}

int main(void)
{
	tlsq_engine *e;
	tlsq_listener *l;
	tlsq_tls *ctls;
	char addr[64];
	example_setup(TLSQ_MODE_STREAM, &e, &l, &ctls, addr, sizeof addr);
	if (tlsq_connect(e, addr, ctls, &client, 5000) != TLSQ_OK)
		DIE("connect: %s", tlsq_last_error());
	tlsq_conn *server;
	if (tlsq_accept(l, &server, 5000) != TLSQ_OK)
		DIE("accept failed");
	pthread_t t;
	pthread_create(&t, NULL, sender, NULL);

	struct pollfd pf = {tlsq_conn_pollfd(server), POLLIN, 0};
	long got = 0;
	int done = 0;
	while (!done) {
		if (poll(&pf, 1, 5000) != 1)
			DIE("poll timed out");
		char buf[16384];
		for (;;) {
			ssize_t n = tlsq_recv(server, buf, sizeof buf, 0); /* never blocks */
			if (n == TLSQ_EAGAIN)
				break; /* back to poll */
			if (n == 0) {
				done = 1; /* close_notify */
				break;
			}
			if (n < 0)
				DIE("recv: %s", tlsq_strerror((int)n));
			got += n;
		}
	}
	pthread_join(t, NULL);
	printf("poll loop received %ld of %d bytes\n", got, TOTAL);
	tlsq_close(server, 2000, NULL);
	tlsq_conn_free(server);
	tlsq_conn_free(client);
	tlsq_listener_free(l);
	tlsq_tls_free(ctls);
	tlsq_engine_free(e);
	return got == TOTAL ? 0 : 1;
}
