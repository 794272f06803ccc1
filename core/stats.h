/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Counters for the status endpoint. Written by one side (or by many with
 * atomic adds), read by any thread without locks. All relaxed: a counter
 * orders nothing, and readers only want a recent value.
 */
#ifndef TLSQ_CORE_STATS_H
#define TLSQ_CORE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t tlsq__counter;

static inline void tlsq__count(tlsq__counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
/* For a counter only one thread ever writes (the queue's single consumer
 * or producer): a plain load and store, no locked instruction. Readers on
 * other threads still see whole values (relaxed atomics). */
static inline void tlsq__count_sw(tlsq__counter *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	                      memory_order_relaxed);
}
static inline uint64_t tlsq__counter_get(const tlsq__counter *c)
{
	return atomic_load_explicit((tlsq__counter *)c, memory_order_relaxed);
}

/* Per queue. */
typedef struct tlsq__qstats {
	tlsq__counter bytes_in;  /* bytes pushed (tx: counted as the consumer takes them) */
	tlsq__counter bytes_out; /* bytes popped */
	tlsq__counter entries_in;
	tlsq__counter entries_out;
	tlsq__counter producer_waits; /* times a producer had to sleep */
	tlsq__counter consumer_waits;
	tlsq__counter wakeups_sent;  /* futex wakes issued */
	tlsq__counter wakeups_saved; /* state changes that needed no wake */
} tlsq__qstats;

#endif
