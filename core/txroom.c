/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * txroom.c - the tx queue's room signal: an eventfd that an event loop
 * watches for "I may send now" (tlsq_conn_send_pollfd).
 *
 * Why: a send with timeout 0 that gets TLSQ_EAGAIN leaves a poll or
 * libevent loop with nothing to wait on; a socket has POLLOUT, the queue
 * needs its own. An eventfd cannot be "not readable and not writable", so
 * the signal is a second eventfd whose READABILITY means room.
 *
 * Who calls what: tlsq__txq_room_fd from any thread; tlsq__txq_room_signal
 * from the consumer after a release and from whoever ends or closes the
 * queue; tlsq__txq_room_after_push from producers. Nothing here blocks, and
 * the consumer (the IO task) never waits for a producer.
 *
 * Invariants:
 * - The fd is written only by the caller that moved room_armed 1 -> 0, and
 *   room_armed goes to 1 only right after a producer cleared the fd. So
 *   while the fd is already readable, releases cost one load (no syscall).
 * - No lost signal: a clearer reads the fd, stores armed = 1, then tests
 *   the room (all seq_cst). A signaller changes `reserved` (or `end`), then
 *   tests armed. In the single total order either the signaller sees
 *   armed = 1 and writes, or the clearer's test comes after the change and
 *   sees the room itself (and then writes).
 * - At most one stale signal per clear: a signaller that exchanged armed
 *   before a clear may write after it. A refused push always clears (it
 *   does not trust room_armed), so a loop that reacts to a stale signal by
 *   sending gets TLSQ_EAGAIN once and the fd is then right.
 */
#include <sys/eventfd.h>
#include <unistd.h>

#include "err.h"
#include "queue_int.h"

int tlsq__txq_room_fd(tlsq__queue *q, uint64_t want)
{
	if (want == 0)
		want = q->budget / 2 ? q->budget / 2 : 1;
	atomic_store(&q->room_want, want);
	int fd = atomic_load_explicit(&q->room_fd, memory_order_acquire);
	if (fd < 0) {
		int nfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (nfd < 0)
			return TLSQ_EIO;
		int expected = -1;
		/* acq_rel: the eventfd exists before a signaller can see it. */
		if (atomic_compare_exchange_strong_explicit(
		        &q->room_fd, &expected, nfd, memory_order_acq_rel, memory_order_acquire)) {
			fd = nfd;
			/* Born cleared: the first room must signal. */
			atomic_store(&q->room_armed, 1);
		} else {
			close(nfd);
			fd = expected;
		}
	}
	/* A new `want` may make the state change either way: look again as a
	 * producer would after a refused push (clear, re-arm, test). */
	tlsq__txq_room_after_push(q, 0, 1);
	return fd;
}

int tlsq__txq_room_ok(tlsq__queue *q)
{
	if (atomic_load(&q->end) != OPEN)
		return 1;
	uint64_t r = atomic_load(&q->reserved), want = atomic_load(&q->room_want);
	uint64_t b = r & BYTES_MASK, e = r >> ENTRY_SHIFT;
	if (b == 0 && e == 0)
		return 1; /* an empty queue admits an entry of any size */
	if (e + 1 >= q->nslots || want > q->budget)
		return 0;
	return b + want <= q->budget;
}

void tlsq__txq_room_signal(tlsq__queue *q)
{
	int fd = atomic_load_explicit(&q->room_fd, memory_order_acquire);
	if (fd < 0 || !atomic_load(&q->room_armed))
		return; /* no fd, or already signalled: one load, no syscall */
	if (tlsq__txq_room_ok(q) && atomic_exchange(&q->room_armed, 0))
		eventfd_write(fd, 1);
}

void tlsq__txq_room_after_push(tlsq__queue *q, uint64_t bytes, int refused)
{
	int fd = atomic_load_explicit(&q->room_fd, memory_order_acquire);
	if (fd < 0)
		return;
	if (refused) {
		/* A refused push of more than `want` would leave a loop
		 * woken for room that is not enough for what it sends: wait
		 * for room for this push instead. */
		uint64_t want = atomic_load(&q->room_want);
		while (bytes > want && !atomic_compare_exchange_weak(&q->room_want, &want, bytes))
			;
	} else if (atomic_load(&q->room_armed) || tlsq__txq_room_ok(q)) {
		return; /* already cleared, or still room: nothing to do */
	}
	eventfd_t v;
	eventfd_read(fd, &v);
	atomic_store(&q->room_armed, 1);
	if (tlsq__txq_room_ok(q) && atomic_exchange(&q->room_armed, 0))
		eventfd_write(fd, 1);
}
