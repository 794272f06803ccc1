/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tlsq-qbench - the core queues against a mutex + condition variable queue
 * carrying the same messages (docs/benchmarks.md, "Queues").
 *
 * Two measurements, each repeated --runs times (median reported):
 *   throughput  P producer threads push 64-byte messages into one queue, one
 *               consumer thread pops (blocking when empty) and frees them;
 *               messages/s, for P = 1 and P = 4;
 *   hand-off    the consumer is asleep on an empty queue; a producer stamps
 *               the time and pushes one message; latency = when the consumer
 *               holds it minus the stamp. p50 and p99 over --handoffs pushes.
 *
 * Both queues move the same tlsq__buf pointers from the same pool, with the
 * same byte budget (64 KiB) and the same blocking semantics (producers wait
 * for room, the consumer for data), so the difference is the queue itself:
 * tlsq's tx queue (lock-free push stack, futex event counts, coalesced
 * wakeups) against one mutex and two condition variables (signal when it
 * matters, as people write it). Every message is checked (sequence per producer) on the way out.
 */

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "queue.h"
#include "wait.h"

#define MSG    64
#define BUDGET (64 * 1024)
#define MAXP   16

/* ---- the reference: a bounded FIFO under a mutex ---- */

struct mq {
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	tlsq__buf **slot;
	size_t cap, head, count, bytes;
	int waiting_consumer, waiting_producers;
};

static void mq_init(struct mq *q)
{
	memset(q, 0, sizeof *q);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	q->cap = 4096;
	q->slot = calloc(q->cap, sizeof *q->slot);
}

static void mq_fini(struct mq *q)
{
	free(q->slot);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->not_empty);
	pthread_cond_destroy(&q->not_full);
}

static void mq_push(struct mq *q, tlsq__buf *b)
{
	size_t n = tlsq__buf_len(b);
	pthread_mutex_lock(&q->mu);
	while (q->count == q->cap || (q->count > 0 && q->bytes + n > BUDGET)) {
		q->waiting_producers++;
		pthread_cond_wait(&q->not_full, &q->mu);
		q->waiting_producers--;
	}
	q->slot[(q->head + q->count) % q->cap] = b;
	q->count++;
	q->bytes += n;
	int wake = q->waiting_consumer;
	pthread_mutex_unlock(&q->mu);
	if (wake)
		pthread_cond_signal(&q->not_empty);
}

static tlsq__buf *mq_pop(struct mq *q)
{
	pthread_mutex_lock(&q->mu);
	while (q->count == 0) {
		q->waiting_consumer = 1;
		pthread_cond_wait(&q->not_empty, &q->mu);
		q->waiting_consumer = 0;
	}
	tlsq__buf *b = q->slot[q->head];
	q->head = (q->head + 1) % q->cap;
	q->count--;
	q->bytes -= tlsq__buf_len(b);
	int wake = q->waiting_producers;
	pthread_mutex_unlock(&q->mu);
	if (wake)
		pthread_cond_broadcast(&q->not_full);
	return b;
}

/* ---- one interface over both ---- */

enum kind { TLSQ_Q, MUTEX_Q };
static const char *kind_name[] = {"tlsq (lock-free + futex)", "mutex + condvar"};

struct bq {
	enum kind kind;
	tlsq__queue tq;
	struct mq mq;
};

static void bq_init(struct bq *q, enum kind k)
{
	q->kind = k;
	if (k == TLSQ_Q)
		tlsq__queue_init(&q->tq, BUDGET, 4096);
	else
		mq_init(&q->mq);
}

static void bq_fini(struct bq *q)
{
	if (q->kind == TLSQ_Q)
		tlsq__queue_fini(&q->tq);
	else
		mq_fini(&q->mq);
}

static void bq_push(struct bq *q, tlsq__buf *b)
{
	if (q->kind == MUTEX_Q) {
		mq_push(&q->mq, b);
		return;
	}
	int rc = tlsq__txq_push_mpsc(&q->tq, b, 0, -1, NULL);
	if (rc != TLSQ_OK) {
		fprintf(stderr, "tlsq-qbench: push failed: %d\n", rc);
		exit(1);
	}
}

static tlsq__buf *bq_pop(struct bq *q)
{
	if (q->kind == MUTEX_Q)
		return mq_pop(&q->mq);
	tlsq__buf *b;
	int rc = tlsq__txq_pop_wait_sc(&q->tq, &b, -1);
	if (rc != TLSQ_OK) {
		fprintf(stderr, "tlsq-qbench: pop failed: %d\n", rc);
		exit(1);
	}
	tlsq__txq_release_sc(&q->tq, b->qcharge, 1);
	return b;
}

/* ---- throughput ---- */

struct prod {
	struct bq *q;
	uint32_t id;
	uint64_t n;
};

static void *producer(void *arg)
{
	struct prod *p = arg;
	for (uint64_t s = 0; s < p->n; s++) {
		tlsq__buf *b = tlsq__buf_alloc(MSG);
		if (b == NULL)
			exit(1);
		memset(b->data, (int)(s & 0xff), MSG);
		b->tag = (uint64_t)p->id << 48 | s;
		b->wr = MSG;
		bq_push(p->q, b);
	}
	return NULL;
}

static double throughput(enum kind k, int np, uint64_t total)
{
	struct bq q;
	struct prod pp[MAXP];
	pthread_t t[MAXP];
	uint64_t next[MAXP] = {0}, per = total / (uint64_t)np;
	bq_init(&q, k);
	uint64_t t0 = tlsq__now_ns();
	for (int i = 0; i < np; i++) {
		pp[i] = (struct prod){&q, (uint32_t)i, per};
		pthread_create(&t[i], NULL, producer, &pp[i]);
	}
	for (uint64_t got = 0; got < per * (uint64_t)np; got++) {
		tlsq__buf *b = bq_pop(&q);
		uint32_t id = (uint32_t)(b->tag >> 48);
		uint64_t s = b->tag & ((1ull << 48) - 1);
		if (id >= (uint32_t)np || s != next[id] ||
		    b->data[MSG - 1] != (unsigned char)(s & 0xff)) {
			fprintf(stderr, "tlsq-qbench: %s delivered a wrong message\n",
			        kind_name[k]);
			exit(1);
		}
		next[id]++;
		tlsq__buf_free(b);
	}
	double secs = (double)(tlsq__now_ns() - t0) / 1e9;
	for (int i = 0; i < np; i++)
		pthread_join(t[i], NULL);
	bq_fini(&q);
	return (double)(per * (uint64_t)np) / secs;
}

/* ---- hand-off latency ---- */

struct ho {
	struct bq *q;
	int n;
	uint64_t *lat;
	_Atomic int done;
};

static void *handoff_consumer(void *arg)
{
	struct ho *h = arg;
	for (int i = 0; i < h->n; i++) {
		tlsq__buf *b = bq_pop(h->q);
		h->lat[i] = tlsq__now_ns() - b->tag;
		tlsq__buf_free(b);
		atomic_store(&h->done, i + 1);
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void handoff(enum kind k, int n, double *p50, double *p99)
{
	struct bq q;
	struct ho h = {&q, n, calloc((size_t)n, sizeof(uint64_t)), 0};
	pthread_t t;
	bq_init(&q, k);
	pthread_create(&t, NULL, handoff_consumer, &h);
	for (int i = 0; i < n; i++) {
		/* Give the consumer time to fall asleep on the empty queue: the
		 * figure is the wake-up path, not a spinning hand-off. */
		struct timespec nap = {0, 200 * 1000};
		nanosleep(&nap, NULL);
		tlsq__buf *b = tlsq__buf_alloc(MSG);
		b->wr = MSG;
		b->tag = tlsq__now_ns();
		bq_push(&q, b);
		while (atomic_load(&h.done) <= i)
			sched_yield();
	}
	pthread_join(t, NULL);
	qsort(h.lat, (size_t)n, sizeof *h.lat, cmp_u64);
	*p50 = (double)h.lat[n / 2] / 1000.0;
	*p99 = (double)h.lat[(size_t)n * 99 / 100] / 1000.0;
	free(h.lat);
	bq_fini(&q);
}

/* ---- main ---- */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(FILE *f)
{
	fprintf(
	    f, "Usage: tlsq-qbench [--messages N] [--handoffs N] [--runs N]\n\n"
	       "Compares tlsq's tx queue (lock-free stack, futex event counts, coalesced wakeups)\n"
	       "with a mutex + condition variable queue carrying the same 64-byte messages\n"
	       "under the same 64 KiB budget: messages/s with 1 and 4 producers and one\n"
	       "consumer, and the hand-off latency to a consumer asleep on an empty queue.\n"
	       "Each figure is the median of --runs runs; ratios are tlsq / mutex.\n\n"
	       "  -m, --messages N   messages per throughput run (default 2000000)\n"
	       "  -H, --handoffs N   hand-offs per latency run (default 20000)\n"
	       "  -r, --runs N       runs per figure (default 5)\n"
	       "  -h, --help         this text\n"
	       "  -V, --version      the tlsq version\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"messages", required_argument, NULL, 'm'}, {"handoffs", required_argument, NULL, 'H'},
	    {"runs", required_argument, NULL, 'r'},     {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},        {NULL, 0, NULL, 0}};
	long long msgs = 2000000, hand = 20000, runs = 5;
	int c;
	while ((c = getopt_long(argc, argv, "m:H:r:hV", opts, NULL)) != -1) {
		char *end = NULL;
		long long v = 0;
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (c == 'V') {
			/* The queues only: no TLS, so no crypto library line. */
			printf("tlsq-qbench (tlsq) %s\n", TLSQ_VERSION_STRING);
			return 0;
		}
		if (c == '?') {
			usage(stderr);
			return 2;
		}
		v = strtoll(optarg, &end, 10);
		if (*end != '\0' || v < 1) {
			fprintf(stderr, "tlsq-qbench: --%s wants a positive number, got '%s'\n",
			        c == 'm'   ? "messages"
			        : c == 'H' ? "handoffs"
			                   : "runs",
			        optarg);
			return 2;
		}
		if (c == 'm')
			msgs = v;
		else if (c == 'H')
			hand = v;
		else
			runs = v > 101 ? 101 : v;
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("tlsq-qbench: %lld messages x %lld runs, %lld hand-offs, %ld CPUs\n", msgs, runs,
	       hand, cpus);
	double r[2][3][101];
	const int prods[2] = {1, 4};
	for (int i = 0; i < runs; i++) {
		for (int k = 0; k < 2; k++) {
			for (int p = 0; p < 2; p++) {
				r[k][p][i] = throughput((enum kind)k, prods[p], (uint64_t)msgs);
				fprintf(stderr,
				        "  run %d/%lld  %-24s %d producer(s): %.2f M msgs/s\n",
				        i + 1, runs, kind_name[k], prods[p], r[k][p][i] / 1e6);
			}
		}
	}
	double p50[2][101], p99[2][101];
	for (int i = 0; i < runs; i++)
		for (int k = 0; k < 2; k++) {
			handoff((enum kind)k, (int)hand, &p50[k][i], &p99[k][i]);
			fprintf(stderr, "  run %d/%lld  %-24s hand-off p50 %.1f us, p99 %.1f us\n",
			        i + 1, runs, kind_name[k], p50[k][i], p99[k][i]);
		}
	double t1[2], t4[2], l50[2], l99[2];
	for (int k = 0; k < 2; k++) {
		t1[k] = median(r[k][0], (int)runs);
		t4[k] = median(r[k][1], (int)runs);
		l50[k] = median(p50[k], (int)runs);
		l99[k] = median(p99[k], (int)runs);
	}
	printf("\n%-30s %16s %16s %8s\n", "figure (median)", kind_name[0], kind_name[1], "ratio");
	printf("%-30s %16.2f %16.2f %7.2fx\n", "M msgs/s, 1 producer", t1[0] / 1e6, t1[1] / 1e6,
	       t1[0] / t1[1]);
	printf("%-30s %16.2f %16.2f %7.2fx\n", "M msgs/s, 4 producers", t4[0] / 1e6, t4[1] / 1e6,
	       t4[0] / t4[1]);
	printf("%-30s %16.1f %16.1f %7.2fx\n", "hand-off p50 us (lower=better)", l50[0], l50[1],
	       l50[1] / l50[0]);
	printf("%-30s %16.1f %16.1f %7.2fx\n", "hand-off p99 us (lower=better)", l99[0], l99[1],
	       l99[1] / l99[0]);
	printf("\nGoals: >= 5x the mutex queue with 4 producers: %s; hand-off p50 < 10 us: %s\n",
	       t4[0] >= 5 * t4[1] ? "met" : "NOT met", l50[0] < 10 ? "met" : "NOT met");
	return 0;
}
