/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers shared by the core/ unit tests: threads, waiting for a condition
 * with a deadline (never sleeping as synchronisation), checksums, and the
 * sanitizer switch that scales the stress tests down.
 *
 * cmocka's assertions may only run on the main thread, so worker threads
 * record what went wrong in atomics and the test asserts on them after
 * joining.
 */
#ifndef TLSQ_TESTS_CORE_QTEST_H
#define TLSQ_TESTS_CORE_QTEST_H

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "wait.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(TLSQ_TSAN) ||         \
    defined(TLSQ_VALGRIND)
#define QT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define QT_SANITIZED 1
#endif
#endif
#ifndef QT_SANITIZED
#define QT_SANITIZED 0
#endif

/* How long a "prompt" reaction may take: generous, for loaded CI machines
 * and sanitizers; a hang still fails well inside the ctest timeout. */
#define QT_PROMPT_MS 5000

static inline uint64_t qt_now_ms(void)
{
	return tlsq__now_ms();
}

/* Spins (sched_yield) until *v >= want or ms pass. 1 if reached. */
static inline int qt_wait_ge(_Atomic uint32_t *v, uint32_t want, int ms)
{
	uint64_t end = qt_now_ms() + (uint64_t)ms;
	while (atomic_load(v) < want) {
		if (qt_now_ms() > end)
			return 0;
		sched_yield();
	}
	return 1;
}

static inline pthread_t qt_spawn(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	if (pthread_create(&t, NULL, fn, arg) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		abort();
	}
	return t;
}

static inline void qt_join(pthread_t t)
{
	pthread_join(t, NULL);
}

/* A buffer of `len` bytes filled with `byte`. */
static inline tlsq__buf *qt_buf(size_t len, unsigned char byte)
{
	tlsq__buf *b = tlsq__buf_alloc(len);
	if (b == NULL)
		abort();
	memset(b->data, byte, len);
	b->wr = (uint32_t)len;
	return b;
}

/* FNV-1a 64. */
static inline uint64_t qt_fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
#define QT_FNV_INIT 0xcbf29ce484222325ull

/* Runs the group, then empties the pool so LeakSanitizer sees a clean heap. */
static inline int qt_run(const char *name, const struct CMUnitTest *tests, size_t n)
{
	int rc = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
	tlsq__pool_trim();
	return rc;
}
#define QT_RUN(tests) qt_run(#tests, tests, sizeof(tests) / sizeof((tests)[0]))

#endif
