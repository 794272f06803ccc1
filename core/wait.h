/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Blocking waits with deadlines, on concurrencykit event counts (ck_ec) over
 * Linux futexes. No mutex, no condition variable.
 *
 * The protocol of every wait in tlsq:
 *
 *     uint32_t seen = tlsq__ec_value(ec);   // 1. read the count
 *     if (condition holds) return;          // 2. check (acquire loads)
 *     tlsq__ec_wait(ec, seen, deadline);    // 3. sleep unless it moved
 *
 * and of every wake: change the state (release), then tlsq__ec_inc(ec). ck_ec
 * only makes the futex syscall when a waiter has flagged itself, so a wake
 * with nobody waiting costs one atomic increment.
 */
#ifndef TLSQ_CORE_WAIT_H
#define TLSQ_CORE_WAIT_H

#include <stdint.h>
#include <time.h>

#include <ck_ec.h>

typedef struct ck_ec32 tlsq__ec;

/* Absolute CLOCK_MONOTONIC deadline for `timeout_ms` (> 0). */
void tlsq__deadline(struct timespec *dl, int timeout_ms);
/* Milliseconds left until dl (0 if passed). */
int tlsq__deadline_left_ms(const struct timespec *dl);
/* Monotonic clock in nanoseconds / milliseconds. */
uint64_t tlsq__now_ns(void);
uint64_t tlsq__now_ms(void);

void tlsq__ec_init(tlsq__ec *ec);
uint32_t tlsq__ec_value(const tlsq__ec *ec);
/* Wakes everybody waiting on ec (cheap when nobody is). */
void tlsq__ec_inc(tlsq__ec *ec);
/*
 * Sleeps while the count still equals `seen`, until `dl` (NULL = forever).
 * Returns 0 when the count moved (or a spurious wake), -1 when the deadline
 * passed.
 */
int tlsq__ec_wait(tlsq__ec *ec, uint32_t seen, const struct timespec *dl);

/*
 * Helper for the 0 / -1 / N convention: returns 1 and fills *dl for N > 0,
 * 0 for -1 (no deadline, pass NULL), and -1 for 0 (do not block).
 */
int tlsq__timeout_deadline(int timeout_ms, struct timespec *dl);

#endif
