/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Plaintext queues between application threads and the IO task.
 *
 *   tx queue: many application threads -> one IO task   (MPSC)
 *   rx queue: one IO task -> many application threads    (SPMC)
 *
 * Both carry tlsq__buf pointers: rx on a concurrencykit ck_ring, tx on a
 * lock-free push stack the consumer takes whole (a multi-producer ring
 * makes producers wait for each other: docs/queues.md). Both are bounded
 * in BYTES (the budget) and in entries (nslots - 1). One send
 * call or one message is one entry, so the bytes of a call are never
 * interleaved with another call's.
 *
 * Admission: a push reserves its bytes and one slot with one CAS on a 64-bit
 * word (low 40 bits bytes, high 24 bits entries). An entry that does not fit
 * the budget is admitted only when the queue is empty (no byte and no entry
 * reserved), so an entry larger than the whole budget waits for the queue
 * to drain and is then admitted alone: nothing deadlocks and the queue never
 * holds more than max(budget, largest entry) bytes. Because the credit
 * includes a ring slot (at most nslots - 1 entries are reserved), a push that
 * got its credit never finds the ring full.
 *
 * Credits: tx credits are given back by the IO task with tlsq__txq_release_sc
 * once the bytes are inside TLS; rx credits go back when a consumer pops.
 *
 * The rx ring (its head and tail with their cache-line padding, and its
 * slots) is one block allocated on first push (tx needs none), so a
 * queue that never carried data costs only the struct.
 *
 * End of queue: tlsq__queue_end(q, code) lets consumers drain what is queued
 * and then get `code` (0 = clean end, negative = error). tlsq__queue_close(q,
 * code) is immediate: every waiter and every later call gets `code` at once
 * (TLSQ_ECLOSED for a local close); queued entries are freed by the next
 * consumer call (only a consumer may dequeue) or by tlsq__queue_fini.
 * After either, every push (tx and rx) fails at once with the code, or with
 * TLSQ_ECLOSED if the code is 0 (a tx queue that was only ended can still be
 * popped by the IO task, so queued bytes get out: that is how a graceful
 * close flushes). A push that races with end/close either fails or is
 * queued before the end: a push that returned TLSQ_OK is always visible in
 * tlsq__queue_entries to whoever saw the end.
 *
 * See docs/queues.md for the memory orderings and the wakeup protocol.
 */
#ifndef TLSQ_CORE_QUEUE_H
#define TLSQ_CORE_QUEUE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_ring.h>

#include "buf.h"
#include "stats.h"
#include "wait.h"

/* The rx ring: ck_ring's cursors, then its slots, in one block. */
typedef struct tlsq__ring {
	ck_ring_t ring;
	ck_ring_buffer_t slot[];
} tlsq__ring;

typedef struct tlsq__queue {
	_Atomic(tlsq__ring *) slots; /* rx: allocated by the first push, then kept */
	unsigned nslots;             /* power of two */
	uint64_t budget;             /* bytes */
	_Atomic uint64_t reserved;   /* bytes | entries << 40 */
	tlsq__ec data_ec;            /* consumers wait here */
	tlsq__ec space_ec;           /* producers wait here */
	_Atomic int end;             /* 0 open, 1 ended (drain first), 2 closed */
	_Atomic int end_code;        /* what consumers get after the end */
	_Atomic(tlsq__buf *) carry;  /* rx: put-back entries (linked by qnext), taken first */
	_Atomic int producer_parked; /* rx: the IO task stopped for lack of room */
	_Atomic uint32_t waiting_producers;
	_Atomic uint32_t waiting_consumers;
	tlsq__qstats stats;
	_Atomic int close_code;        /* what everybody gets after a close */
	_Atomic int64_t unpopped;      /* entries published and not yet popped */
	_Atomic(tlsq__buf *) tx_stack; /* tx: pushed entries, newest first (qnext) */
	tlsq__buf *tx_batch;           /* tx: the consumer's taken entries, oldest first */
	_Atomic int room_fd;           /* tx: eventfd readable while there is room (txroom.c), -1 */
	_Atomic uint64_t room_want;    /* tx: the room it waits for, in bytes */
	_Atomic int room_armed;        /* tx: 1 = cleared; the next room must signal */
	unsigned trimmed_at;           /* rx, producer only: the ring's p_tail at the last trim */
	uint32_t owed;                 /* rx, producer only: batched pushes not yet signalled */
	uint64_t owed_bytes;           /* and their bytes */
} tlsq__queue;

/* budget >= 1 byte; nslots is rounded up to a power of two >= 4. */
int tlsq__queue_init(tlsq__queue *q, size_t budget, unsigned nslots);
/* Frees every queued entry and the ring. No other thread may use q. */
void tlsq__queue_fini(tlsq__queue *q);

/* Bytes currently reserved (queued, or in flight until released). */
uint64_t tlsq__queue_bytes(const tlsq__queue *q);
uint32_t tlsq__queue_entries(const tlsq__queue *q);

/* Consumers drain, then get `code`. Wakes everybody. Idempotent (first wins). */
void tlsq__queue_end(tlsq__queue *q, int code);
/* Immediate: everybody gets `code` now. Idempotent (first wins). A push
 * into a queue that was ended first still gets the end's code: once the
 * producing side was ended (a local close, free or shutdown of sending),
 * that is what producers are told, whatever failure closes the queue next. */
void tlsq__queue_close(tlsq__queue *q, int code);
/* 1 once tlsq__queue_end was called (whatever happened after). */
int tlsq__queue_was_ended(const tlsq__queue *q);
/* The code tlsq__queue_end was called with, 0 if it was not (seq_cst: what
 * the ender wrote before the end is visible after a non-zero result). */
int tlsq__queue_end_code(const tlsq__queue *q);

/* ---- tx: many producers, one consumer (the IO task) ---- */

/*
 * Queues b (its payload is tlsq__buf_len(b) bytes, charged against the
 * budget; `charge` overrides it when non-zero, e.g. to count a frame
 * header; at most UINT32_MAX). Waits for room up to timeout_ms. On success
 * the queue owns b and *was_empty (may be NULL) is 1 when this push is the
 * one that must notify the consumer: exactly one push of every batch that
 * finds the consumer with nothing left to pop gets 1, so notifying only then
 * never loses a wakeup (docs/queues.md). Returns TLSQ_OK, TLSQ_EAGAIN,
 * TLSQ_ETIMEDOUT, TLSQ_EINVAL (charge too large), TLSQ_ENOMEM, or the
 * end/close code; on failure the caller still owns b.
 */
int tlsq__txq_push_mpsc(tlsq__queue *q, tlsq__buf *b, size_t charge, int timeout_ms,
                        int *was_empty);
/* IO task: the next entry or NULL. Credits stay taken until released.
 * After a close it frees whatever is queued and returns NULL. */
tlsq__buf *tlsq__txq_pop_sc(tlsq__queue *q);
/*
 * For a consumer that is a thread rather than an event loop (tests,
 * benchmarks): like tlsq__txq_pop_sc but waits up to timeout_ms for an
 * entry. Returns TLSQ_OK with *out set, TLSQ_EAGAIN, TLSQ_ETIMEDOUT, the
 * close code, or, once the queue is ended and every credit was released,
 * the end code (*out NULL). Producers wake it only on the empty ->
 * non-empty transition (was_empty).
 */
int tlsq__txq_pop_wait_sc(tlsq__queue *q, tlsq__buf **out, int timeout_ms);
/* IO task: gives back `bytes` and `entries` of credit; wakes waiting producers. */
void tlsq__txq_release_sc(tlsq__queue *q, uint64_t bytes, uint32_t entries);
/*
 * Waits until the queue holds no credit at all (every byte and entry queued
 * was released; with producers still pushing this may never happen).
 * Returns TLSQ_OK, TLSQ_EAGAIN (timeout 0), TLSQ_ETIMEDOUT or the close code.
 */
int tlsq__txq_wait_drained(tlsq__queue *q, int timeout_ms);

/*
 * ---- tx room signal (txroom.c): a writable signal for event loops ----
 *
 * An eventfd that is readable while a push of `want` bytes would be
 * admitted at once (the queue has that much room and a free slot; a `want`
 * above the budget: the queue is empty) or the queue is ended or closed
 * (the push then fails at once). Level-triggered within one stale signal:
 * the consumer sets it when a release makes room, a producer clears it
 * after a push that leaves too little room and after a push that could not
 * wait (TLSQ_EAGAIN / TLSQ_ETIMEDOUT), then looks again. A stale readable
 * state therefore lasts until the next refused push at most, never longer.
 */
/* Any thread: creates the eventfd on first call (later calls return the
 * same one) and sets `want` (0: half the budget). Returns the fd or
 * TLSQ_EIO. The queue closes it in tlsq__queue_fini. */
int tlsq__txq_room_fd(tlsq__queue *q, uint64_t want);
/* 1 if a push of the wanted size would be admitted now or the queue is not open. */
int tlsq__txq_room_ok(tlsq__queue *q);
/* Consumer (after a release), enders and closers: signals if there is room. */
void tlsq__txq_room_signal(tlsq__queue *q);
/* Producers: after a push (refused = it could not wait for room). */
void tlsq__txq_room_after_push(tlsq__queue *q, uint64_t bytes, int refused);

/* ---- rx: one producer (the IO task), many consumers ---- */

/* IO task: bytes that may still be pushed without exceeding the budget. An
 * empty queue always has room for one entry of any size. */
uint64_t tlsq__rxq_room_sp(const tlsq__queue *q);
/*
 * IO task: queues b without blocking (charge as for tx). Returns TLSQ_OK
 * (sets *was_empty, may be NULL: 1 if no entry was queued or being popped),
 * TLSQ_EAGAIN when there is no room (the queue then remembers that the
 * producer is parked), TLSQ_EINVAL, TLSQ_ENOMEM, or the end/close code.
 */
int tlsq__rxq_push_sp(tlsq__queue *q, tlsq__buf *b, size_t charge, int *was_empty);
/* The same past the budget (only a free slot is needed), for what the
 * producer hands over when it stops for good (engine stop): the queue then
 * holds more than its budget by at most those entries. */
int tlsq__rxq_push_last_sp(tlsq__queue *q, tlsq__buf *b, size_t charge, int *was_empty);
/*
 * The same as tlsq__rxq_push_sp, but waiting consumers are not woken yet:
 * the entry is poppable at once (a consumer that looks finds it), and the
 * producer owes a wake-up that tlsq__rxq_signal_sp pays. The producer must
 * call tlsq__rxq_signal_sp before it stops producing for now (the IO task:
 * at the end of each receive pump), or a consumer asleep on an empty queue
 * sleeps on while entries wait. One futex wake per batch instead of one per
 * entry while the consumer keeps up with the producer (issue 16: W1's
 * receiver woke 1.8 times per socket read). *was_empty is reported as by
 * tlsq__rxq_push_sp, at once (the pollfd is not batched).
 */
int tlsq__rxq_push_batch_sp(tlsq__queue *q, tlsq__buf *b, size_t charge, int *was_empty);
/* Wakes the consumers for the batched pushes, if any are owed. Producer. */
void tlsq__rxq_signal_sp(tlsq__queue *q);
/* Bytes pushed by tlsq__rxq_push_batch_sp and not yet signalled. Producer. */
uint64_t tlsq__rxq_owed_bytes_sp(const tlsq__queue *q);
/*
 * Consumers: takes the next entry (the carry first), waiting up to
 * timeout_ms. Returns TLSQ_OK with *out set, TLSQ_EAGAIN, TLSQ_ETIMEDOUT, the
 * end code after the queue is drained (0 for a clean end: *out is NULL), or
 * the close code. Credits are given back here; if the IO task was parked
 * for lack of room, *unpark is set to 1 (exactly once per park: by one
 * consumer, and not at all if the IO task found room itself first) and the
 * caller must notify the IO task. *unpark is only ever set, never cleared.
 */
int tlsq__rxq_pop_mc(tlsq__queue *q, tlsq__buf **out, int timeout_ms, int *unpark);
/*
 * Consumers: tlsq__rxq_pop_mc for an entry that is lent out (stream
 * zero-copy receive): an entry taken from the ring keeps its byte credit
 * (its slot is given back: it no longer counts as queued), and *held is
 * set to 1; the caller gives it back with tlsq__rxq_release_mc
 * (b->qcharge) when it is done with the entry (after it freed it or put
 * the rest back: once unpopped, the entry holds none). A put-back entry
 * is charged again (its remaining length, past the budget if need be:
 * b->qcharge is set to it), so *held is always 1 on success: everything
 * lent counts. *unpark as for pop.
 */
int tlsq__rxq_pop_held_mc(tlsq__queue *q, tlsq__buf **out, int timeout_ms, int *unpark, int *held);
/* Gives back the credit of a held pop (`charge` = the entry's qcharge,
 * read before the entry was freed or put back); *unpark as for pop. */
void tlsq__rxq_release_mc(tlsq__queue *q, uint32_t charge, int *unpark);
/*
 * Consumers: puts back a partly consumed entry (or a message that did not
 * fit the caller's buffer) so that the next pop returns it first. Its
 * credits were already returned by the pop and are not charged again.
 * Never blocks: put-back entries form a list (several consumers may put
 * back at once; with one consumer there is never more than one). With
 * several consumers, one may get the end code while another still holds an
 * entry it is about to put back (the put-back entry is then still popped).
 */
void tlsq__rxq_unpop_mc(tlsq__queue *q, tlsq__buf *b);
/*
 * IO task (the producer), between pushes: if the ring is empty and at least
 * a page of slots was written since the last trim, gives the slots' pages
 * back to the kernel (madvise MADV_DONTNEED: they read as zeros and are
 * faulted in again by the next pushes). Keeps an idle connection that had
 * traffic from holding up to 32 KiB of touched slots (issue 18) at the
 * cost of one madvise per 512 entries on a busy one. Consumers need
 * nothing for it: an empty ring means every entry's credit went back after
 * its dequeue, so c_head == p_tail; a consumer still inside a dequeue with
 * an older c_head may read a zeroed slot, and its CAS on c_head fails.
 * Returns 1 if it trimmed.
 */
int tlsq__rxq_trim_sp(tlsq__queue *q);
/* 1 if a pop would not block (data, carry, or end), else 0. */
int tlsq__rxq_ready(const tlsq__queue *q);

#endif
