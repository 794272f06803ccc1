/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * wait.c - blocking waits with deadlines: ck_ec event counts over futexes.
 *
 * Invariants:
 * - Every deadline is an absolute CLOCK_MONOTONIC time: a wall-clock jump
 *   neither shortens nor stretches a wait, and a wait that is woken
 *   spuriously and sleeps again keeps its original deadline.
 * - Every tlsq__ec is used in ck_ec's MULTI-producer mode. The counts in
 *   tlsq are incremented from more than one thread (the IO task wakes
 *   consumers, but any application thread may close a queue and wake the
 *   same waiters), and ck_ec's single-producer mode is only correct with
 *   one incrementer: its `inc` is a non-atomic read-modify-write.
 * - ck_ec only calls FUTEX_WAKE when a waiter has set the count's flag bit,
 *   so tlsq__ec_inc with nobody asleep is one locked increment.
 * - In multi-producer mode the flag bit is set and cleared with atomic
 *   RMWs, so it can never be lost. ck_ec's exponential backoff (sleeps of
 *   2 ms, 16 ms, 128 ms, 1 s) exists only to recover lost flags in
 *   single-producer mode; it also ignores the caller's deadline (a 200 ms
 *   wait could sleep until 1 s). wait_pred() below replaces every partial
 *   deadline with the caller's own, so a sleeper wakes exactly once: when
 *   the count moves or its deadline passes.
 *
 * Concurrency: any thread may call anything here, on any count.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wait.h"

/* The largest time_t: "no deadline" for the futex wrapper. */
#define TIME_T_MAX ((time_t)(((uint64_t)1 << (sizeof(time_t) * CHAR_BIT - 1)) - 1))

static int ec_gettime(const struct ck_ec_ops *ops, struct timespec *out)
{
	(void)ops;
	return clock_gettime(CLOCK_MONOTONIC, out);
}

/*
 * FUTEX_WAIT_BITSET takes an ABSOLUTE timeout on CLOCK_MONOTONIC (unless
 * FUTEX_CLOCK_REALTIME is given), which is exactly what ck_ec hands us, so
 * no clock read and no relative conversion is needed. The kernel compares
 * *addr with `expected` under its futex lock: a wake between ck_ec's last
 * check and this call makes it return EAGAIN at once (no lost wakeup).
 * EINTR, EAGAIN and ETIMEDOUT all just return: ck_ec re-checks the count
 * and the deadline.
 */
static void ec_wait32(const struct ck_ec_wait_state *st, const uint32_t *addr, uint32_t expected,
                      const struct timespec *deadline)
{
	(void)st;
	if (deadline != NULL && deadline->tv_sec == TIME_T_MAX)
		deadline = NULL;
	syscall(SYS_futex, addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, deadline, NULL,
	        FUTEX_BITSET_MATCH_ANY);
}

static void ec_wake32(const struct ck_ec_ops *ops, const uint32_t *addr)
{
	(void)ops;
	syscall(SYS_futex, addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL, NULL, 0);
}

static struct ck_ec_ops ec_ops = {
    .gettime = ec_gettime,
    .wait32 = ec_wait32,
    .wake32 = ec_wake32,
    /* ck_ec spins this many times (pause) before and after flagging the
     * count: a hand-off to a thread that is just about to wait costs a
     * few hundred nanoseconds instead of a futex round trip. */
    .busy_loop_iter = 100,
};

/*
 * On two CPUs or fewer the spin takes the CPU from the very thread that
 * would end the wait (the IO thread): tlsq-bench W3 p50 went from 54 to
 * 43 us with 10 iterations instead of 100 on a 2-vCPU machine
 * (docs/benchmarks.md). Set once, before main() and before any thread
 * exists, so nothing races with the waits that read it.
 */
__attribute__((constructor)) static void ec_ops_tune(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n > 0 && n <= 2)
		ec_ops.busy_loop_iter = 10;
}

static const struct ck_ec_mode ec_mode = {
    .ops = &ec_ops, .single_producer = false, /* see the invariants above */
};

/*
 * ck_ec calls this before every sleep with the partial deadline of its
 * backoff schedule; we replace it with the caller's deadline (data), or
 * with "never" when there is none. Returning 0 means "keep waiting".
 */
static int wait_pred(const struct ck_ec_wait_state *st, struct timespec *partial)
{
	const struct timespec *dl = st->data;
	if (dl != NULL) {
		*partial = *dl;
	} else {
		partial->tv_sec = TIME_T_MAX;
		partial->tv_nsec = 0;
	}
	return 0;
}

void tlsq__deadline(struct timespec *dl, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, dl);
	dl->tv_sec += timeout_ms / 1000;
	dl->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl->tv_nsec >= 1000000000L) {
		dl->tv_sec++;
		dl->tv_nsec -= 1000000000L;
	}
}

int tlsq__deadline_left_ms(const struct timespec *dl)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long ns =
	    (long long)(dl->tv_sec - now.tv_sec) * 1000000000LL + (dl->tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return 0;
	long long ms = (ns + 999999) / 1000000; /* round up: 0 only once passed */
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

uint64_t tlsq__now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

uint64_t tlsq__now_ms(void)
{
	return tlsq__now_ns() / 1000000ull;
}

void tlsq__ec_init(tlsq__ec *ec)
{
	ck_ec32_init(ec, 0);
}

uint32_t tlsq__ec_value(const tlsq__ec *ec)
{
	/* Acquire (ck_ec32_value ends with an acquire fence): the state a
	 * waker changed before its increment is visible to the loads of the
	 * condition that follow. */
	return ck_ec32_value(ec);
}

void tlsq__ec_inc(tlsq__ec *ec)
{
	/* A locked increment, preceded by ck's store-atomic fence: the state
	 * change made before it is visible to anyone who sees the new count,
	 * and the increment is a full barrier on x86. */
	ck_ec32_inc(ec, &ec_mode);
}

int tlsq__ec_wait(tlsq__ec *ec, uint32_t seen, const struct timespec *dl)
{
	/* ck_ec32_wait_pred returns 0 when the count moved, -1 at the
	 * deadline, or wait_pred's value (always 0). It returns early, with
	 * no syscall, if the count already differs from `seen`. */
	return ck_ec32_wait_pred(ec, &ec_mode, seen, wait_pred, (void *)dl, dl);
}

int tlsq__timeout_deadline(int timeout_ms, struct timespec *dl)
{
	if (timeout_ms == 0)
		return -1;
	if (timeout_ms < 0)
		return 0;
	tlsq__deadline(dl, timeout_ms);
	return 1;
}
