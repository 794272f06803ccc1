/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * evloop.c - what an event-loop program needs beyond the queues: the
 * writable signal (tlsq_conn_send_pollfd) and per-connection user data.
 *
 * Neither touches TLS or the socket: the writable signal is the tx queue's
 * room eventfd (core/txroom.c), set by the IO task when it releases queue
 * credit and cleared by senders; user data is one atomic pointer that tlsq
 * only stores.
 */
#include "iotask.h"

/* see tlsq.h */
int tlsq_conn_send_pollfd(tlsq_conn *c, size_t room)
{
	if (!c || atomic_load(&c->handle_freed))
		return TLSQ_EINVAL;
	return tlsq__txq_room_fd(&c->txq, (uint64_t)room);
}

/* see tlsq.h */
int tlsq_conn_set_user(tlsq_conn *c, void *user)
{
	if (!c)
		return TLSQ_EINVAL;
	/* release: what the setter prepared is visible to whoever gets it. */
	atomic_store_explicit(&c->user, user, memory_order_release);
	return TLSQ_OK;
}

/* see tlsq.h */
void *tlsq_conn_user(const tlsq_conn *c)
{
	if (!c)
		return NULL;
	return atomic_load_explicit(&((tlsq_conn *)c)->user, memory_order_acquire);
}
