/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Integrate with your own libevent loop: watch tlsq_conn_pollfd with
 * EV_READ|EV_PERSIST and drain with timeout 0 in the callback.
 */
#include <pthread.h>
#include <string.h>

#include <event2/event.h>

#include "common.h"

#define MESSAGES 20000

struct app {
	tlsq_conn *server;
	struct event_base *base;
	long got;
};

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct app *a = arg;
	(void)fd;
	(void)what;
	char buf[256];
	for (;;) {
		ssize_t n = tlsq_recv_msg(a->server, buf, sizeof buf, 0);
		if (n == TLSQ_EAGAIN)
			return;
		if (n == TLSQ_ECLOSED) { /* peer finished */
			event_base_loopbreak(a->base);
			return;
		}
		if (n < 0)
			DIE("recv_msg: %s", tlsq_strerror((int)n));
		a->got++;
	}
}

static tlsq_conn *client;

static void *sender(void *arg)
{
	(void)arg;
	for (int i = 0; i < MESSAGES; i++)
		if (tlsq_send_msg(client, "tick", 4, 5000) != TLSQ_OK)
			DIE("send_msg failed");
	tlsq_shutdown_send(client);
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
	struct app a = {0};
	if (tlsq_accept(l, &a.server, 5000) != TLSQ_OK)
		DIE("accept failed");
	a.base = event_base_new();
	struct event *ev =
	    event_new(a.base, tlsq_conn_pollfd(a.server), EV_READ | EV_PERSIST, on_readable, &a);
	event_add(ev, NULL);
	pthread_t t;
	pthread_create(&t, NULL, sender, NULL);
	event_base_dispatch(a.base);
	pthread_join(t, NULL);
	printf("libevent loop received %ld of %d messages\n", a.got, MESSAGES);
	event_free(ev);
	event_base_free(a.base);
	tlsq_close(a.server, 2000, NULL);
	tlsq_conn_free(a.server);
	tlsq_conn_free(client);
	tlsq_listener_free(l);
	tlsq_tls_free(ctls);
	tlsq_engine_free(e);
	return a.got == MESSAGES ? 0 : 1;
}
