/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * logring.h - the last N records of an event log, written by any number of
 * threads and read by any number of others, without a lock and without
 * ever making a writer wait.
 *
 * Why: the IO tasks record each failed handshake for the application and
 * the status endpoint to read (tlsq_listener_failures). A writer is an IO
 * thread, so it must never block on a reader; a reader must never see a
 * record half-written (a "torn" peer address next to another failure's
 * reason).
 *
 * How: records are numbered 1, 2, ... by one fetch-add; record n lives in
 * slot (n - 1) % TLSQ__LOGRING_SLOTS, whose own sequence word says what the
 * slot holds: 2n - 1 while record n is being written, 2n once it is
 * complete (a per-slot seqlock). The payload is a row of relaxed atomic
 * words, so a reader racing a writer reads stale or new words, never
 * undefined behaviour, and then throws the copy away because the sequence
 * word moved.
 *
 * Contract:
 * - tlsq__logring_push: any thread, never blocks, never retries. If the
 *   slot is still being written by a writer one lap behind (that is, more
 *   than TLSQ__LOGRING_SLOTS records were pushed while it stalled), the
 *   newer record is dropped: push returns 0. Numbers stay unique.
 * - tlsq__logring_read: any thread, never blocks, never writes.
 * - A record larger than TLSQ__LOGRING_BYTES is a bug (asserted).
 */
#ifndef TLSQ_CORE_LOGRING_H
#define TLSQ_CORE_LOGRING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TLSQ__LOGRING_SLOTS 32
#define TLSQ__LOGRING_WORDS 48
#define TLSQ__LOGRING_BYTES (TLSQ__LOGRING_WORDS * 8)

typedef struct tlsq__logring_slot {
	_Atomic uint64_t seq; /* 0 empty, 2n - 1 writing record n, 2n holds record n */
	_Atomic uint64_t w[TLSQ__LOGRING_WORDS];
} tlsq__logring_slot;

typedef struct tlsq__logring {
	_Atomic uint64_t last; /* number of the last record taken (0: none) */
	tlsq__logring_slot slots[TLSQ__LOGRING_SLOTS];
} tlsq__logring;

/* Zeroed memory is an empty ring; this zeroes it. */
void tlsq__logring_init(tlsq__logring *r);

/* Appends rec (len bytes, at most TLSQ__LOGRING_BYTES). Returns the
 * record's number (>= 1), or 0 if it was dropped (see the contract). */
uint64_t tlsq__logring_push(tlsq__logring *r, const void *rec, size_t len);

/* The number of the last record taken (complete or not yet). */
uint64_t tlsq__logring_last(const tlsq__logring *r);

enum {
	TLSQ__LOGRING_OK = 1,       /* copied */
	TLSQ__LOGRING_GONE = 0,     /* overwritten, dropped, or never pushed */
	TLSQ__LOGRING_PENDING = -1, /* still being written (or not yet started) */
};

/* Copies record n (len bytes) into out if the ring still holds it. */
int tlsq__logring_read(const tlsq__logring *r, uint64_t n, void *out, size_t len);

#endif
