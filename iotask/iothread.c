/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * iothread.c - the engine's IO threads: one libevent loop each.
 *
 * Each IO thread owns: its event_base, a notifier (eventfd + lock-free list
 * of connections with work, core/notify.h), an epoch record, and the list of
 * its connections. Application threads reach it only through
 * tlsq__conn_request/kick. The list is written by the owning thread only and
 * read by the status endpoint inside epoch sections (RCU style), so the IO
 * thread never waits for a reader.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "iotask.h"

#define RECLAIM_MS 50

static void io_on_notify(evutil_socket_t fd, short what, void *arg)
{
	tlsq__iothread *io = arg;
	(void)fd;
	(void)what;
	tlsq__notify_node *n = tlsq__notifier_take_sc(&io->notifier);
	while (n) {
		tlsq__notify_node *next = n->next;
		struct tlsq_conn *c = (struct tlsq_conn *)n;
		/* Clear before looking at the queues: a producer that queues after
		 * this point lists the connection again (core/notify.h). */
		tlsq__notify_clear(n);
		tlsq__conn_run(c);
		tlsq__conn_unref(c); /* the list's reference */
		n = next;
	}
}

static void io_on_reclaim(evutil_socket_t fd, short what, void *arg)
{
	tlsq__iothread *io = arg;
	(void)fd;
	(void)what;
	ck_epoch_poll(&io->epoch_rec);
}

static void io_kill_all(tlsq__iothread *io)
{
	struct tlsq_conn *c = atomic_load(&io->conns);
	while (c) {
		struct tlsq_conn *next = atomic_load(&c->next);
		tlsq__conn_kill(c);
		c = next;
	}
}

static void *io_main(void *arg)
{
	tlsq__iothread *io = arg;
	char name[16];
	snprintf(name, sizeof name, "tlsq-io%d", io->index);
	pthread_setname_np(pthread_self(), name);
	while (!atomic_load(&io->engine->stopping))
		event_base_loop(io->base, EVLOOP_NO_EXIT_ON_EMPTY);
	/* Engine stop: run what was asked, then end every connection. */
	io_on_notify(-1, 0, io);
	io_kill_all(io);
	io_on_notify(-1, 0, io);
	tlsq__linger_fini(io);
	ck_epoch_barrier(&io->epoch_rec);
	return NULL;
}

static int io_init(struct tlsq_engine *e, tlsq__iothread *io, int index)
{
	io->engine = e;
	io->index = index;
	io->base = event_base_new();
	if (!io->base)
		return TLSQ_ENOMEM;
	if (tlsq__notifier_init(&io->notifier) != 0)
		return TLSQ_EIO;
	io->ev_notify =
	    event_new(io->base, io->notifier.efd, EV_READ | EV_PERSIST, io_on_notify, io);
	io->ev_reclaim = event_new(io->base, -1, EV_PERSIST, io_on_reclaim, io);
	if (!io->ev_notify || !io->ev_reclaim)
		return TLSQ_ENOMEM;
	struct timeval tv = {0, RECLAIM_MS * 1000};
	event_add(io->ev_notify, NULL);
	event_add(io->ev_reclaim, &tv);
	ck_epoch_register(&e->epoch, &io->epoch_rec, NULL);
	return 0;
}

static void io_fini(tlsq__iothread *io)
{
	if (io->ev_notify)
		event_free(io->ev_notify);
	if (io->ev_reclaim)
		event_free(io->ev_reclaim);
	if (io->notifier.efd > 0)
		tlsq__notifier_fini(&io->notifier);
	if (io->base)
		event_base_free(io->base);
}

int tlsq__engine_start(struct tlsq_engine *e)
{
	ck_epoch_init(&e->epoch);
	e->io = calloc((size_t)e->nio, sizeof *e->io);
	if (!e->io)
		return TLSQ_ENOMEM;
	for (int i = 0; i < e->nio; i++) {
		e->io[i].notifier.efd = -1;
		int rc = io_init(e, &e->io[i], i);
		if (rc)
			return rc;
	}
	for (int i = 0; i < e->nio; i++) {
		/* IO threads never take signals meant for the application. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		int rc = pthread_create(&e->io[i].thread, NULL, io_main, &e->io[i]);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != 0) {
			tlsq__set_last_error("cannot start IO thread: %s", strerror(rc));
			return TLSQ_EIO;
		}
		atomic_store(&e->io[i].running, 1);
	}
	return 0;
}

static void io_wake(tlsq__iothread *io)
{
	eventfd_write(io->notifier.efd, 1);
}

void tlsq__engine_stop(struct tlsq_engine *e)
{
	atomic_store(&e->stopping, 1);
	for (int i = 0; i < e->nio; i++) {
		if (!atomic_load(&e->io[i].running))
			continue;
		event_base_loopbreak(e->io[i].base);
		io_wake(&e->io[i]);
	}
	for (int i = 0; i < e->nio; i++) {
		if (atomic_exchange(&e->io[i].running, 0))
			pthread_join(e->io[i].thread, NULL);
	}
}

void tlsq__engine_ref(struct tlsq_engine *e)
{
	atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

void tlsq__engine_unref(struct tlsq_engine *e)
{
	if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (e->io) {
		for (int i = 0; i < e->nio; i++) {
			ck_epoch_unregister(&e->io[i].epoch_rec);
			io_fini(&e->io[i]);
		}
		free(e->io);
	}
	pthread_mutex_destroy(&e->lmu);
	if (e->upper_free)
		e->upper_free(e->upper); /* may hold an epoch record: only now */
	free(e->status_addr_copy);
	free(e->status_token_copy);
	free(e);
}

tlsq__iothread *tlsq__io_pick(struct tlsq_engine *e)
{
	uint32_t n = atomic_fetch_add_explicit(&e->next_io, 1, memory_order_relaxed);
	return &e->io[n % (uint32_t)e->nio];
}

void tlsq__conn_kick(struct tlsq_conn *c)
{
	if (atomic_load_explicit(&c->engine->stopping, memory_order_relaxed))
		return;
	tlsq__notify_node *n = &c->node;
	/* Store-load ordering: the caller's queue push must be visible before we
	 * read `pending`, against the IO thread's clear-then-read-the-queue
	 * (tlsq__notify_clear). Without the fence, x86 may satisfy this load
	 * before the push leaves the store buffer: we skip the wakeup while the
	 * IO thread finds the queue empty, and the data sits there. */
	atomic_thread_fence(memory_order_seq_cst);
	/* Cheap load: already listed means the IO thread will look. */
	if (atomic_load_explicit(&n->pending, memory_order_relaxed)) {
		tlsq__count(&c->engine->stats.wakeups_saved, 1);
		return;
	}
	tlsq__conn_ref(c); /* held by the list until the IO thread handles it */
	if (!tlsq__notify_mpsc(&c->io->notifier, n)) {
		tlsq__conn_unref(c);
		tlsq__count(&c->engine->stats.wakeups_saved, 1);
	}
}

void tlsq__conn_request(struct tlsq_conn *c, uint32_t bits)
{
	/* seq_cst RMW: ordered before the notifier's pending exchange. */
	atomic_fetch_or(&c->requests, bits);
	tlsq__conn_kick(c);
}

void tlsq__epoch_register(struct tlsq_engine *e, ck_epoch_record_t *rec)
{
	ck_epoch_register(&e->epoch, rec, NULL);
}

void tlsq__conn_foreach(struct tlsq_engine *e, ck_epoch_record_t *rec,
                        void (*fn)(struct tlsq_conn *c, void *arg), void *arg)
{
	ck_epoch_begin(rec, NULL);
	for (int i = 0; i < e->nio; i++) {
		/* acquire: pairs with the release that linked each connection. */
		struct tlsq_conn *c = atomic_load_explicit(&e->io[i].conns, memory_order_acquire);
		while (c) {
			fn(c, arg);
			c = atomic_load_explicit(&c->next, memory_order_acquire);
		}
	}
	ck_epoch_end(rec, NULL);
}
