/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * queue_int.h - what queue.c (common parts and tx) and rxq.c (rx) share.
 * Not for use outside core/queue*.c; the contract is queue.h.
 */
#ifndef TLSQ_CORE_QUEUE_INT_H
#define TLSQ_CORE_QUEUE_INT_H

#include <limits.h>

#include "queue.h"
#include "tsan.h"

#define ENTRY_SHIFT 40
#define BYTES_MASK  ((UINT64_C(1) << ENTRY_SHIFT) - 1)
#define ONE_ENTRY   (UINT64_C(1) << ENTRY_SHIFT)
#define BUDGET_MAX  (UINT64_C(1) << 38) /* leaves room for nslots 4 GiB entries */
#define NSLOTS_MAX  (1u << 23)          /* entries must fit 24 bits */
#define CODE_UNSET  INT_MIN

enum { OPEN = 0, ENDED = 1, CLOSED = 2 };

/* The code a push (or a producer-side waiter) gets once the queue is not
 * open: the end/close code, or TLSQ_ECLOSED if that is 0. */
int tlsq__q_push_code(tlsq__queue *q, int end);
/* The code a consumer gets after the end (0 is a clean end). */
int tlsq__q_consumer_code(tlsq__queue *q, int end);
/* One attempt at a credit for `bytes` and one slot; 1 on success, with the
 * entries reserved before ours in *entries_before. seq_cst load and CAS. */
int tlsq__q_reserve(tlsq__queue *q, uint64_t bytes, uint64_t *entries_before);
/* The same, past the budget: only a free slot is needed (rx, engine stop). */
int tlsq__q_reserve_slot(tlsq__queue *q, uint64_t bytes, uint64_t *entries_before);
/* Gives credit back (seq_cst RMW). Wakes nobody. */
void tlsq__q_give_back(tlsq__queue *q, uint64_t bytes, uint64_t entries);
/* Publishes b (credit held) on the ring: mp = tx (MPSC enqueue), else rx
 * (SPMC enqueue). TLSQ_OK or TLSQ_ENOMEM (ring memory). */
int tlsq__q_publish(tlsq__queue *q, tlsq__buf *b, uint64_t bytes, int mp);

#endif
