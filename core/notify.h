/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Application -> IO thread wakeups, coalesced.
 *
 * One notifier per IO thread: an eventfd the IO loop watches, plus a
 * lock-free list (Treiber stack, many pushers, one taker) of the nodes
 * (connections) that have work. A node is pushed at most once until the IO
 * thread takes it: `pending` is checked with a cheap load first, then
 * exchanged. The eventfd is written only when the list goes from empty to
 * non-empty. So N producers queueing M messages cost at most one syscall
 * per IO-loop turn, not one per message.
 *
 * The IO thread must clear a node's pending flag (tlsq__notify_clear)
 * BEFORE it looks at the node's queues; a producer that queues after that
 * will then push the node again. Pushing does not take a reference: the
 * owner of the node must keep it alive while it may be listed (tlsq
 * connections hold a reference for that, see iotask).
 */
#ifndef TLSQ_CORE_NOTIFY_H
#define TLSQ_CORE_NOTIFY_H

#include <stdatomic.h>
#include <stdint.h>

#include "stats.h"

typedef struct tlsq__notify_node {
	struct tlsq__notify_node *next;
	_Atomic int pending;
} tlsq__notify_node;

typedef struct tlsq__notifier {
	int efd; /* eventfd, non-blocking */
	_Atomic(tlsq__notify_node *) head;
	tlsq__counter sent;  /* eventfd writes */
	tlsq__counter saved; /* notifications coalesced away */
} tlsq__notifier;

/* Returns TLSQ_OK or TLSQ_EIO. */
int tlsq__notifier_init(tlsq__notifier *n);
void tlsq__notifier_fini(tlsq__notifier *n);

/*
 * Any thread: asks the IO thread to look at `node`. Returns 1 if the node
 * was listed by this call (the caller's reference rules apply), 0 if it was
 * already pending (coalesced).
 */
int tlsq__notify_mpsc(tlsq__notifier *n, tlsq__notify_node *node);

/*
 * IO thread: clears the eventfd and takes every listed node, oldest first.
 * Returns the list (linked by next) or NULL.
 */
tlsq__notify_node *tlsq__notifier_take_sc(tlsq__notifier *n);

/* IO thread: marks the node not pending; call before handling it. */
static inline void tlsq__notify_clear(tlsq__notify_node *node)
{
	/* seq_cst: the clear must be ordered before the IO thread's loads of the
	 * queues, against the producer's push-then-exchange (store-load). */
	atomic_store(&node->pending, 0);
}

#endif
