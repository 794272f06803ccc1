/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * failures.c - connections that never reached tlsq_accept: a failed or
 * timed-out handshake, a peer that speaks no TLS, a full accept queue.
 *
 * Why: such a connection has no handle, so without this nobody (neither
 * the application nor the operator) learns that it happened or why.
 *
 * Who calls what:
 * - tlsq__listener_failed: the IO thread of the failed connection (any of
 *   the engine's IO threads, so several at once). It never blocks: one
 *   fetch-add per counter, one lock-free ring push per ring (listener's and
 *   engine's, core/logring.h), one event-count increment.
 * - tlsq_listener_failures / tlsq_listener_next_failure: application
 *   threads; tlsq__failures_read: the status thread. Readers only load.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "iotask.h"

_Static_assert(sizeof(struct tlsq_accept_failure) <= TLSQ__LOGRING_BYTES,
               "a failure record must fit a log ring slot");

void tlsq__failures_init(tlsq__failures *f)
{
	tlsq__logring_init(&f->ring);
	for (int i = 0; i < TLSQ_FAIL_REASONS; i++)
		atomic_init(&f->by_reason[i], 0);
	tlsq__ec_init(&f->ec);
}

static void failures_add(tlsq__failures *f, struct tlsq_accept_failure *rec)
{
	tlsq__count(&f->by_reason[rec->reason], 1);
	/* The record carries its own number: the ring's, known only after the
	 * push; readers overwrite seq with it on the way out. */
	tlsq__logring_push(&f->ring, rec, sizeof *rec);
	tlsq__ec_inc(&f->ec);
}

/* see iotask.h */
void tlsq__listener_failed(struct tlsq_listener *l, struct tlsq_conn *c, int phase)
{
	struct tlsq_engine *e = l->engine;
	if (atomic_load_explicit(&e->stopping, memory_order_relaxed))
		return; /* ended by tlsq_engine_free: not the peer's failure */
	struct tlsq_accept_failure rec;
	memset(&rec, 0, sizeof rec);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	rec.unix_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	uint64_t now = tlsq__now_ms();
	rec.duration_ms = now > c->created_ms ? now - c->created_ms : 0;
	rec.phase = (tlsq_fail_phase)phase;
	rec.reason = phase == TLSQ_PHASE_ACCEPT ? TLSQ_FAIL_ACCEPT_QUEUE
	                                        : (tlsq_fail_reason)tlsq__tls_fail_reason(c);
	if (phase == TLSQ_PHASE_HANDSHAKE && tlsq__counter_get(&c->tls_bytes_received) == 0)
		rec.phase = TLSQ_PHASE_CONNECTED;
	rec.error = atomic_load(&c->error);
	rec.port = l->port;
	memcpy(rec.peer, c->peer, sizeof rec.peer);
	rec.peer[sizeof rec.peer - 1] = 0;
	snprintf(rec.detail, sizeof rec.detail, "%s", c->error_reason ? c->error_reason : "");
	failures_add(&l->failures, &rec);
	failures_add(&e->failures, &rec);
}

/* Copies record n into *out with its number; OK, GONE or PENDING. */
static int failures_get(const tlsq__failures *f, uint64_t n, struct tlsq_accept_failure *out)
{
	int r = tlsq__logring_read(&f->ring, n, out, sizeof *out);
	if (r == TLSQ__LOGRING_OK)
		out->seq = n;
	return r;
}

/* see iotask.h */
size_t tlsq__failures_read(const tlsq__failures *f, struct tlsq_accept_failure *out, size_t cap,
                           uint64_t *counts)
{
	size_t k = 0;
	uint64_t last = tlsq__logring_last(&f->ring);
	for (uint64_t n = last; n > 0 && last - n < TLSQ__LOGRING_SLOTS && k < cap; n--)
		if (failures_get(f, n, &out[k]) == TLSQ__LOGRING_OK)
			k++;
	if (counts)
		for (int i = 0; i < TLSQ_FAIL_REASONS; i++)
			counts[i] = tlsq__counter_get(&f->by_reason[i]);
	return k;
}

/* see tlsq.h */
ssize_t tlsq_listener_failures(tlsq_listener *l, struct tlsq_accept_failure *out, size_t cap,
                               uint64_t *counts)
{
	if (!l || (!out && cap > 0))
		return TLSQ_EINVAL;
	return (ssize_t)tlsq__failures_read(&l->failures, out, cap, counts);
}

/* The oldest record newer than `after` still kept: 1 found, 0 none yet. */
static int failures_next(const tlsq__failures *f, uint64_t after, struct tlsq_accept_failure *out)
{
	uint64_t last = tlsq__logring_last(&f->ring);
	uint64_t first = last > TLSQ__LOGRING_SLOTS ? last - TLSQ__LOGRING_SLOTS + 1 : 1;
	if (first <= after)
		first = after + 1;
	for (uint64_t n = first; n <= last; n++)
		if (failures_get(f, n, out) == TLSQ__LOGRING_OK)
			return 1;
	return 0;
}

struct next_arg {
	uint64_t after;
	struct tlsq_accept_failure *out;
};

static int next_take(struct tlsq_listener *l, void *arg)
{
	struct next_arg *a = arg;
	return failures_next(&l->failures, a->after, a->out);
}

/* see tlsq.h */
int tlsq_listener_next_failure(tlsq_listener *l, uint64_t after, struct tlsq_accept_failure *out,
                               int timeout_ms)
{
	if (!l || !out)
		return TLSQ_EINVAL;
	struct next_arg a = {after, out};
	return tlsq__listener_wait(l, &l->failures.ec, next_take, &a, timeout_ms);
}
