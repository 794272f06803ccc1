/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * notify.c - coalesced application -> IO thread wakeups (see notify.h).
 *
 * Invariants:
 * - A node is on the list at most once: it is pushed only by the caller
 *   that moved its `pending` flag from 0 to 1, and the flag goes back to 0
 *   only when the IO thread has taken the node (tlsq__notify_clear).
 * - The eventfd is written only by the push that found the list empty, so
 *   while the IO thread has not taken the list, later pushes cost no
 *   syscall. Its counter may hold a stale 1 after a take (see take_sc):
 *   that costs one spurious wakeup, never a lost one.
 * - The list is a Treiber stack with many pushers and one taker that takes
 *   the whole list with one exchange. Nodes are never unlinked one by one
 *   while others push, so there is no ABA problem.
 *
 * Concurrency: tlsq__notify_mpsc from any thread; tlsq__notifier_take_sc
 * and tlsq__notify_clear from the IO thread that owns the notifier;
 * init/fini with nobody else.
 */
#include <sys/eventfd.h>
#include <unistd.h>

#include "err.h"
#include "notify.h"

int tlsq__notifier_init(tlsq__notifier *n)
{
	n->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	atomic_init(&n->head, NULL);
	atomic_init(&n->sent, 0);
	atomic_init(&n->saved, 0);
	return n->efd < 0 ? TLSQ_EIO : TLSQ_OK;
}

void tlsq__notifier_fini(tlsq__notifier *n)
{
	if (n->efd >= 0)
		close(n->efd);
	n->efd = -1;
}

int tlsq__notify_mpsc(tlsq__notifier *n, tlsq__notify_node *node)
{
	/*
	 * The cheap look, then the exchange; both seq_cst. They pair with
	 * tlsq__notify_clear (a seq_cst store followed by the IO thread's
	 * loads of the node's queues): either we see the clear and list the
	 * node again, or the IO thread, looking after its clear, sees what our
	 * caller queued before calling us. A plain load would let x86 read
	 * `pending` before the caller's queue stores are visible.
	 */
	if (atomic_load(&node->pending) || atomic_exchange(&node->pending, 1)) {
		tlsq__count(&n->saved, 1);
		return 0;
	}
	tlsq__notify_node *head = atomic_load_explicit(&n->head, memory_order_relaxed);
	do
		node->next = head;
	/* release: node->next is written before the node is reachable */
	while (!atomic_compare_exchange_weak_explicit(&n->head, &head, node, memory_order_release,
	                                              memory_order_relaxed));
	if (head == NULL) {
		/* Empty -> non-empty: the only push that needs the syscall. */
		eventfd_write(n->efd, 1);
		tlsq__count(&n->sent, 1);
	} else {
		tlsq__count(&n->saved, 1);
	}
	return 1;
}

tlsq__notify_node *tlsq__notifier_take_sc(tlsq__notifier *n)
{
	eventfd_t v;
	/*
	 * Read (reset) the eventfd first, then take the list. A push after
	 * the take finds the list empty and writes the eventfd again, so no
	 * wakeup is lost; a push between the read and the take is taken now
	 * and leaves a stale eventfd count: one spurious wakeup that finds an
	 * empty list. Taking first and reading second could lose a wakeup.
	 */
	(void)eventfd_read(n->efd, &v);
	/* acquire: pairs with the pushers' release; their next links are visible */
	tlsq__notify_node *l = atomic_exchange_explicit(&n->head, NULL, memory_order_acquire);
	tlsq__notify_node *r = NULL;
	while (l != NULL) { /* reverse the stack: oldest first, for fairness */
		tlsq__notify_node *next = l->next;
		l->next = r;
		r = l;
		l = next;
	}
	return r;
}
