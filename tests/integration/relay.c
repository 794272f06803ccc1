/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * relay.c - see relay.h.
 *
 * One thread, one poll() loop; application threads only set command
 * fields under `mu` and write a byte to the control pipe. Per direction
 * (named by the side it goes toward) the relay holds a linear buffer whose
 * first byte is stream offset `fwd` (bytes already written toward that
 * side), and parses the TLS record headers of what it read so that a
 * corruption can hit a record body that has not gone out yet.
 */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { END_NONE = 0, END_EOF = 1, END_RST = 2 };

struct rec {
	uint64_t start;
	uint32_t len;
};

struct dir {
	unsigned char *buf;
	uint32_t len, cap;
	_Atomic uint64_t fwd; /* bytes written toward the side = offset of buf[0] */
	int src_end;          /* END_*: what the other side did */
	int fin_req;          /* command: FIN once fwd >= fin_after and empty */
	uint64_t fin_after;
	_Atomic int fin_done;
	int rst_req;
	int corrupt_req;   /* command pending (under mu) */
	int corrupt_armed; /* apply to the next record parsed */
	uint64_t target;   /* stream offset of the byte to flip, UINT64_MAX none */
	_Atomic int corrupted;
	/* record parser over the bytes read */
	unsigned char hdr[5];
	int hdr_have;
	uint64_t body_left;
	struct rec *recs;
	size_t nrec, rec_head, rec_cap;
};

struct relay {
	int lfd, port, upstream_port;
	int fd[2];
	int watch_off[2]; /* hung up: no longer polled */
	int ctl[2];
	pthread_t th;
	pthread_mutex_t mu;
	int quit, stall_req;
	_Atomic int stalled;
	struct dir d[2];
	_Atomic uint64_t closed_ms[2];
	_Atomic uint64_t connected_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void mark_closed(relay *r, int side)
{
	uint64_t zero = 0;
	atomic_compare_exchange_strong(&r->closed_ms[side], &zero, now_ms());
}

/* Flips the target byte if it is held now. */
static void corrupt_apply(struct dir *d)
{
	uint64_t base = atomic_load(&d->fwd);
	if (d->target != UINT64_MAX && d->target >= base && d->target < base + d->len) {
		d->buf[d->target - base] ^= 0x5a;
		d->target = UINT64_MAX;
		atomic_store(&d->corrupted, 1);
	}
}

/* The first record not yet started on the wire becomes the target. */
static void corrupt_pick(struct dir *d)
{
	uint64_t base = atomic_load(&d->fwd);
	for (size_t i = d->rec_head; i < d->nrec; i++) {
		if (d->recs[i].start >= base && d->recs[i].len > 0) {
			d->target = d->recs[i].start + 5 + d->recs[i].len / 2;
			return;
		}
	}
	d->corrupt_armed = 1;
}

static void parse_records(struct dir *d, uint64_t off, const unsigned char *p, size_t n)
{
	while (n > 0) {
		if (d->body_left > 0) {
			size_t k = n < d->body_left ? n : (size_t)d->body_left;
			d->body_left -= k;
			p += k;
			off += k;
			n -= k;
			continue;
		}
		d->hdr[d->hdr_have++] = *p++;
		off++;
		n--;
		if (d->hdr_have < 5)
			continue;
		d->hdr_have = 0;
		uint32_t len = (uint32_t)d->hdr[3] << 8 | d->hdr[4];
		d->body_left = len;
		if (d->nrec == d->rec_cap) {
			d->rec_cap = d->rec_cap ? 2 * d->rec_cap : 64;
			d->recs = realloc(d->recs, d->rec_cap * sizeof *d->recs);
		}
		d->recs[d->nrec++] = (struct rec){off - 5, len};
		if (d->corrupt_armed && len > 0) {
			d->corrupt_armed = 0;
			d->target = off - 5 + 5 + len / 2;
		}
	}
}

static void drop_records(struct dir *d)
{
	uint64_t base = atomic_load(&d->fwd);
	while (d->rec_head < d->nrec &&
	       d->recs[d->rec_head].start + 5 + d->recs[d->rec_head].len <= base)
		d->rec_head++;
	if (d->rec_head == d->nrec)
		d->rec_head = d->nrec = 0;
}

static void rst_side(relay *r, int side)
{
	if (r->fd[side] < 0)
		return;
	struct linger lg = {1, 0};
	setsockopt(r->fd[side], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(r->fd[side]);
	r->fd[side] = -1;
	r->d[side].len = 0;
}

/* Reads from `from` into the direction toward the other side. */
static void do_read(relay *r, int from)
{
	struct dir *d = &r->d[!from];
	if (d->len == d->cap)
		return;
	ssize_t n = read(r->fd[from], d->buf + d->len, d->cap - d->len);
	if (n > 0) {
		parse_records(d, atomic_load(&d->fwd) + d->len, d->buf + d->len, (size_t)n);
		d->len += (uint32_t)n;
		corrupt_apply(d);
	} else if (n == 0) {
		d->src_end = END_EOF;
		mark_closed(r, from);
	} else if (errno != EAGAIN && errno != EINTR) {
		d->src_end = errno == ECONNRESET ? END_RST : END_EOF;
		mark_closed(r, from);
	}
}

static void do_write(relay *r, int to)
{
	struct dir *d = &r->d[to];
	if (d->len == 0 || r->fd[to] < 0)
		return;
	ssize_t n = send(r->fd[to], d->buf, d->len, MSG_NOSIGNAL);
	if (n > 0) {
		memmove(d->buf, d->buf + n, d->len - (size_t)n);
		d->len -= (uint32_t)n;
		atomic_fetch_add(&d->fwd, (uint64_t)n);
		drop_records(d);
	} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
		mark_closed(r, to);
		rst_side(r, to); /* the side is gone: drop what it was owed */
	}
}

static int can_read(relay *r, int from)
{
	struct dir *d = &r->d[!from];
	return !atomic_load(&r->stalled) && r->fd[from] >= 0 && !r->watch_off[from] &&
	       r->fd[!from] >= 0 && d->src_end == END_NONE && !atomic_load(&d->fin_done) &&
	       d->len < d->cap;
}

static void take_commands(relay *r)
{
	pthread_mutex_lock(&r->mu);
	if (r->stall_req)
		atomic_store(&r->stalled, 1);
	for (int s = 0; s < 2; s++) {
		struct dir *d = &r->d[s];
		if (d->rst_req) {
			d->rst_req = 0;
			rst_side(r, s);
		}
		if (d->corrupt_req) {
			d->corrupt_req = 0;
			corrupt_pick(d);
			corrupt_apply(d);
		}
	}
	pthread_mutex_unlock(&r->mu);
}

/* After the IO: pass ends on once nothing is held for the side. */
static void pass_ends(relay *r)
{
	pthread_mutex_lock(&r->mu);
	for (int s = 0; s < 2; s++) {
		struct dir *d = &r->d[s];
		if (r->fd[s] < 0 || d->len > 0 || atomic_load(&d->fin_done))
			continue;
		if (d->src_end == END_RST) {
			rst_side(r, s);
		} else if (d->src_end == END_EOF ||
		           (d->fin_req && atomic_load(&d->fwd) >= d->fin_after)) {
			shutdown(r->fd[s], SHUT_WR);
			atomic_store(&d->fin_done, 1);
		}
	}
	pthread_mutex_unlock(&r->mu);
}

static int do_accept(relay *r)
{
	int c = accept(r->lfd, NULL, NULL);
	if (c < 0)
		return 0;
	close(r->lfd);
	r->lfd = -1;
	int u = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)r->upstream_port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(u, (struct sockaddr *)&a, sizeof a) != 0) {
		perror("relay: connect upstream");
		close(u);
		close(c);
		return -1;
	}
	atomic_store(&r->connected_ms, now_ms());
	set_nonblock(c);
	set_nonblock(u);
	r->fd[RELAY_CLIENT] = c;
	r->fd[RELAY_SERVER] = u;
	return 0;
}

static void *relay_main(void *arg)
{
	relay *r = arg;
	for (;;) {
		struct pollfd p[4];
		int np = 0;
		p[np++] = (struct pollfd){.fd = r->ctl[0], .events = POLLIN};
		int il = -1, is[2] = {-1, -1};
		if (r->lfd >= 0) {
			il = np;
			p[np++] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
		}
		for (int s = 0; s < 2; s++) {
			if (r->fd[s] < 0 || r->watch_off[s])
				continue;
			short ev = 0;
			if (atomic_load(&r->stalled))
				ev = POLLRDHUP; /* only notice a close */
			else {
				if (can_read(r, s))
					ev |= POLLIN;
				if (r->d[s].len > 0)
					ev |= POLLOUT;
			}
			is[s] = np;
			p[np++] = (struct pollfd){.fd = r->fd[s], .events = ev};
		}
		if (poll(p, (nfds_t)np, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN) {
			char b[64];
			while (read(r->ctl[0], b, sizeof b) > 0) {
			}
			pthread_mutex_lock(&r->mu);
			int quit = r->quit;
			pthread_mutex_unlock(&r->mu);
			if (quit)
				break;
			take_commands(r);
		}
		if (il >= 0 && (p[il].revents & POLLIN) && do_accept(r) < 0)
			break;
		for (int s = 0; s < 2; s++) {
			if (is[s] < 0 || r->fd[s] < 0)
				continue;
			short re = p[is[s]].revents;
			if (atomic_load(&r->stalled)) {
				if (re & (POLLRDHUP | POLLHUP | POLLERR)) {
					mark_closed(r, s);
					r->watch_off[s] = 1;
				}
				continue;
			}
			if ((re & (POLLIN | POLLHUP | POLLERR)) && can_read(r, s))
				do_read(r, s);
			else if (re & (POLLHUP | POLLERR)) {
				/* Gone and nothing more can be taken from it now: stop
				 * watching (level-triggered, it would spin). */
				mark_closed(r, s);
				r->watch_off[s] = 1;
			}
			if ((re & POLLOUT) && r->fd[s] >= 0)
				do_write(r, s);
		}
		pass_ends(r);
	}
	return NULL;
}

relay *relay_start(int upstream_port, const uint32_t cap[2], int stalled)
{
	relay *r = calloc(1, sizeof *r);
	r->upstream_port = upstream_port;
	r->fd[0] = r->fd[1] = -1;
	pthread_mutex_init(&r->mu, NULL);
	atomic_init(&r->stalled, stalled);
	for (int s = 0; s < 2; s++) {
		r->d[s].cap = cap[s];
		r->d[s].buf = malloc(cap[s]);
		r->d[s].target = UINT64_MAX;
	}
	if (pipe2(r->ctl, O_NONBLOCK | O_CLOEXEC) != 0)
		abort();
	r->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof a;
	if (bind(r->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(r->lfd, 4) != 0 ||
	    getsockname(r->lfd, (struct sockaddr *)&a, &al) != 0)
		abort();
	r->port = ntohs(a.sin_port);
	if (pthread_create(&r->th, NULL, relay_main, r) != 0)
		abort();
	return r;
}

int relay_port(const relay *r)
{
	return r->port;
}

static void kick(relay *r)
{
	char b = 1;
	if (write(r->ctl[1], &b, 1) < 0 && errno != EAGAIN)
		abort();
}

void relay_stop(relay *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->quit = 1;
	pthread_mutex_unlock(&r->mu);
	kick(r);
	pthread_join(r->th, NULL);
	if (r->lfd >= 0)
		close(r->lfd);
	for (int s = 0; s < 2; s++) {
		if (r->fd[s] >= 0)
			close(r->fd[s]);
		free(r->d[s].buf);
		free(r->d[s].recs);
	}
	close(r->ctl[0]);
	close(r->ctl[1]);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

void relay_fin(relay *r, int side, uint64_t after)
{
	pthread_mutex_lock(&r->mu);
	r->d[side].fin_after = after;
	r->d[side].fin_req = 1;
	pthread_mutex_unlock(&r->mu);
	kick(r);
}

void relay_rst(relay *r, int side)
{
	pthread_mutex_lock(&r->mu);
	r->d[side].rst_req = 1;
	pthread_mutex_unlock(&r->mu);
	kick(r);
}

void relay_corrupt(relay *r, int side)
{
	pthread_mutex_lock(&r->mu);
	r->d[side].corrupt_req = 1;
	pthread_mutex_unlock(&r->mu);
	kick(r);
}

void relay_stall(relay *r)
{
	pthread_mutex_lock(&r->mu);
	r->stall_req = 1;
	pthread_mutex_unlock(&r->mu);
	kick(r);
}

uint64_t relay_forwarded(relay *r, int side)
{
	return atomic_load(&r->d[side].fwd);
}

int relay_fin_done(relay *r, int side)
{
	return atomic_load(&r->d[side].fin_done);
}

int relay_corrupted(relay *r, int side)
{
	return atomic_load(&r->d[side].corrupted);
}

uint64_t relay_closed_ms(relay *r, int side)
{
	return atomic_load(&r->closed_ms[side]);
}

uint64_t relay_connected_ms(relay *r)
{
	return atomic_load(&r->connected_ms);
}
