/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tsan.h - ThreadSanitizer annotations for hand-offs it cannot see.
 *
 * ck_ring orders a producer's writes before a consumer's reads with
 * inline-asm fences that TSan does not model. Where an object changes hands
 * through a ck ring, the producer calls TSAN_RELEASE(p) before the enqueue
 * and the consumer TSAN_ACQUIRE(p) after the dequeue, on the object's
 * address. Both are nothing outside a TLSQ_TSAN build.
 */
#ifndef TLSQ_CORE_TSAN_H
#define TLSQ_CORE_TSAN_H

#if defined(TLSQ_TSAN)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TSAN_RELEASE(p) __tsan_release(p)
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define TSAN_RELEASE(p) ((void)0)
#define TSAN_ACQUIRE(p) ((void)0)
#endif

#endif
