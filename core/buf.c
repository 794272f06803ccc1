/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * buf.c - the buffer pool (see buf.h).
 *
 * Invariants:
 * - A buffer of class c has exactly class_size[c] bytes of data and goes
 *   back to class c's cache (or to free() when the cache is full); a buffer
 *   with cls == PLAIN was malloc'd at its exact size and goes to free().
 * - Each class caches at most CACHE_SLOTS - 1 buffers on a ck_ring used
 *   MPMC (any thread frees, any thread allocates: senders allocate and the
 *   IO task frees on tx, the other way round on rx). A full cache falls
 *   back to free(), an empty one to malloc(): the pool never blocks and
 *   never holds more than (CACHE_SLOTS - 1) * (256 + 4 KiB + 16.25 KiB +
 *   64 KiB) ~ 87 MiB, and only as much as the process once had in flight.
 * - The rings' slot arrays are allocated on the first free into a class
 *   (published with a CAS), so a process that never frees into a class
 *   pays nothing for it. They live until exit; cached buffers stay
 *   reachable through them, so LeakSanitizer does not count them as leaks.
 *   tlsq__pool_trim empties the caches (engine shutdown, leak tests).
 *
 * Concurrency: every function may be called from any thread at any time.
 * A buffer changes hands through a cache ring: the freeing thread's writes
 * to it must happen-before the allocating thread's. ck_ring's fences order
 * them, but ThreadSanitizer cannot see ck's inline-asm fences, so each
 * hand-off is annotated (__tsan_release before the enqueue, __tsan_acquire
 * after the dequeue, on the buffer's address).
 */
#include <stdatomic.h>
#include <stdlib.h>

#include <ck_ring.h>

#include "buf.h"
#include "ring.h"
#include "stats.h"
#include "tsan.h"

#define NCLASS      4
#define CACHE_SLOTS 1024 /* per class; a power of two; holds CACHE_SLOTS - 1 */
#define PLAIN       0xff
#define BUF_MAX     (UINT32_MAX - 64)

static const uint32_t class_size[NCLASS] = {256, 4096, 16384 + 256, 65536};

struct pool_class {
	ck_ring_t ring;
	_Atomic(ck_ring_buffer_t *) slots; /* NULL until the first free */
};

/* ck_ring_init only sets size and mask, so the rings are initialised
 * statically: no once-flag on the allocation path. */
#define CLASS_INIT                                                                                 \
	{                                                                                          \
		.ring = {.size = CACHE_SLOTS, .mask = CACHE_SLOTS - 1 }                            \
	}
static struct pool_class pool[NCLASS] = {CLASS_INIT, CLASS_INIT, CLASS_INIT, CLASS_INIT};

static tlsq__counter st_allocs, st_frees, st_hits, st_mallocs;
/* Signed: a buffer can be dequeued (and subtracted) by one thread before
 * the thread that enqueued it has added it. */
static _Atomic int64_t st_cached_bytes;

static int class_of(size_t cap)
{
	for (int i = 0; i < NCLASS; i++)
		if (cap <= class_size[i])
			return i;
	return -1;
}

/* The class's slot array, allocating it on first use; NULL if out of memory. */
static ck_ring_buffer_t *class_slots(struct pool_class *pc)
{
	/* Acquire: pairs with the release CAS below; the zeroed array is
	 * visible before we hand it to ck_ring. */
	ck_ring_buffer_t *s = atomic_load_explicit(&pc->slots, memory_order_acquire);
	if (s != NULL)
		return s;
	ck_ring_buffer_t *mine = calloc(CACHE_SLOTS, sizeof *mine), *cur = NULL;
	if (mine == NULL)
		return NULL;
	if (atomic_compare_exchange_strong_explicit(&pc->slots, &cur, mine, memory_order_acq_rel,
	                                            memory_order_acquire))
		return mine;
	free(mine); /* another thread published its array first */
	return cur;
}

/* One cached buffer of class `cls`, or NULL. */
static tlsq__buf *cache_get(int cls)
{
	struct pool_class *pc = &pool[cls];
	ck_ring_buffer_t *s = atomic_load_explicit(&pc->slots, memory_order_acquire);
	void *p;
	if (s == NULL || !ck_ring_dequeue_mpmc(&pc->ring, s, &p))
		return NULL;
	TSAN_ACQUIRE(p);
	atomic_fetch_sub_explicit(&st_cached_bytes, class_size[cls], memory_order_relaxed);
	return p;
}

tlsq__buf *tlsq__buf_alloc(size_t cap)
{
	if (cap > BUF_MAX)
		return NULL;
	tlsq__count(&st_allocs, 1);
	int cls = class_of(cap);
	tlsq__buf *b = NULL;
	if (cls >= 0 && (b = cache_get(cls)) != NULL) {
		tlsq__count(&st_hits, 1);
	} else {
		size_t data = cls >= 0 ? class_size[cls] : cap;
		b = malloc(sizeof *b + data);
		if (b == NULL)
			return NULL;
		tlsq__count(&st_mallocs, 1);
		b->cap = (uint32_t)data;
		b->cls = cls >= 0 ? (uint8_t)cls : PLAIN;
	}
	b->rd = b->wr = 0;
	b->qcharge = 0;
	b->flags = 0;
	b->pad_ = 0;
	b->pad2_ = 0;
	b->tag = 0;
	b->qnext = NULL;
	return b;
}

void tlsq__buf_free(tlsq__buf *b)
{
	if (b == NULL)
		return;
	tlsq__count(&st_frees, 1);
	if (b->cls < NCLASS) {
		struct pool_class *pc = &pool[b->cls];
		ck_ring_buffer_t *s = class_slots(pc);
		uint32_t size = class_size[b->cls];
		/* Release before the enqueue: once the pointer is in the ring,
		 * another thread may dequeue and reuse it. */
		TSAN_RELEASE(b);
		if (s != NULL && tlsq__ring_enqueue_mp(&pc->ring, s, b)) {
			atomic_fetch_add_explicit(&st_cached_bytes, size, memory_order_relaxed);
			return;
		}
	}
	free(b);
}

void tlsq__pool_stats_get(tlsq__pool_stats *out)
{
	out->allocs = tlsq__counter_get(&st_allocs);
	out->frees = tlsq__counter_get(&st_frees);
	out->hits = tlsq__counter_get(&st_hits);
	out->mallocs = tlsq__counter_get(&st_mallocs);
	int64_t c = atomic_load_explicit(&st_cached_bytes, memory_order_relaxed);
	out->cached_bytes = c > 0 ? (uint64_t)c : 0;
}

void tlsq__pool_trim(void)
{
	for (int i = 0; i < NCLASS; i++) {
		tlsq__buf *b;
		while ((b = cache_get(i)) != NULL)
			free(b);
	}
}
