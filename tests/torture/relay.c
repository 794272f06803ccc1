/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * relay.c - the fault-injecting relay between the two endpoints.
 *
 * One thread, one poll(2) loop, two real loopback sockets: `a` (accepted
 * from the side that connects) and `b` (connected to the target). Each
 * direction keeps what it read in a bounded buffer (so backpressure reaches
 * the sender as it would through a network) as segments, each with the
 * monotonic deadline before which it may not be forwarded; poll's timeout
 * is the nearest deadline, so delay is "hold until a deadline", never a
 * sleep. Writes take 1..max_write bytes at a time on TCP_NODELAY sockets.
 *
 * Ends are passed on faithfully: EOF from one side becomes a FIN (shutdown
 * SHUT_WR) to the other once the buffered bytes are out; a reset becomes a
 * reset (SO_LINGER 0 + close). A fault cuts a direction at a byte offset:
 * FIN (the rest of that direction is read and dropped) or RST to the
 * receiving side, followed by a RST or a FIN to the other side.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "torture.h"

#define BUF_CAP       (128 * 1024)
#define SMALL_BUF_CAP (8 * 1024)
#define MAX_SEGS      4096

struct seg {
	uint32_t len;
	uint64_t due_ns;
};

struct dir {
	struct tt_relay_dir_cfg cfg;
	int src, dst; /* indices into relay.fd */
	unsigned char *buf;
	size_t len;
	struct seg segs[MAX_SEGS];
	unsigned s_head, s_n;
	uint64_t last_due, out;
	int eof;     /* src gave EOF */
	int shut;    /* FIN sent to dst */
	int discard; /* cut: read and drop */
	int fired;
};

struct tt_relay {
	struct tt_relay_cfg cfg;
	size_t cap; /* per direction buffer */
	int lfd, stop[2];
	int fd[2]; /* a, b; -1 once closed */
	struct dir d[2];
	uint64_t rng;
	pthread_t thr;
};

static void nodelay_nonblock(int fd, int small)
{
	int one = 1, sz = 8192;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (small) {
		/* what waits in the kernel must also pass the slow link */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Resets socket i (the peer sees ECONNRESET) and drops what waits for it. */
static void sock_rst(struct tt_relay *r, int i)
{
	if (r->fd[i] < 0)
		return;
	struct linger lg = {1, 0};
	setsockopt(r->fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(r->fd[i]);
	r->fd[i] = -1;
}

static void sock_fin(struct tt_relay *r, struct dir *d)
{
	if (!d->shut && r->fd[d->dst] >= 0)
		shutdown(r->fd[d->dst], SHUT_WR);
	d->shut = 1;
}

static void fire(struct tt_relay *r, struct dir *d)
{
	d->fired = 1;
	d->len = 0;
	d->s_n = 0;
	if (d->cfg.fault == TT_FAULT_FIN) {
		sock_fin(r, d);
		d->discard = 1;
		return;
	}
	sock_rst(r, d->dst);
	if (d->cfg.rst_other) {
		sock_rst(r, d->src);
	} else {
		struct dir *o = &r->d[d == &r->d[0]];
		o->len = 0;
		o->s_n = 0;
		sock_fin(r, o);
	}
}

static void dir_read(struct tt_relay *r, struct dir *d)
{
	unsigned char tmp[16384];
	size_t room = d->discard ? sizeof tmp : r->cap - d->len;
	if (room > sizeof tmp)
		room = sizeof tmp;
	ssize_t n = recv(r->fd[d->src], tmp, room, 0);
	if (n == 0) {
		d->eof = 1;
		return;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		/* a reset (or another error) from src: pass it on as a reset */
		d->eof = 1;
		sock_rst(r, d->src);
		sock_rst(r, d->dst);
		return;
	}
	if (d->discard || d->shut)
		return;
	memcpy(d->buf + d->len, tmp, (size_t)n);
	d->len += (size_t)n;
	uint64_t due = tt_now_ns();
	if (d->cfg.max_delay_ms)
		due += tt_range(&r->rng, 0, (uint64_t)d->cfg.max_delay_ms * 1000000u);
	if (due < d->last_due)
		due = d->last_due; /* never overtake earlier bytes */
	d->last_due = due;
	if (d->s_n > 0 && d->s_n == MAX_SEGS) {
		/* merge into the last segment: same order, a later deadline */
		struct seg *s = &d->segs[(d->s_head + d->s_n - 1) % MAX_SEGS];
		s->len += (uint32_t)n;
		s->due_ns = due;
		return;
	}
	struct seg *s = &d->segs[(d->s_head + d->s_n) % MAX_SEGS];
	s->len = (uint32_t)n;
	s->due_ns = due;
	d->s_n++;
}

static void dir_write(struct tt_relay *r, struct dir *d)
{
	struct seg *s = &d->segs[d->s_head];
	size_t n = tt_range(&r->rng, 1, d->cfg.max_write);
	if (n > s->len)
		n = s->len;
	if (d->cfg.fault && !d->fired && d->out + n > d->cfg.fault_at)
		n = (size_t)(d->cfg.fault_at - d->out);
	if (n == 0) {
		fire(r, d);
		return;
	}
	ssize_t w = send(r->fd[d->dst], d->buf, n, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		/* dst is gone (reset us): tell src the same way */
		sock_rst(r, d->dst);
		sock_rst(r, d->src);
		return;
	}
	memmove(d->buf, d->buf + w, d->len - (size_t)w);
	d->len -= (size_t)w;
	d->out += (uint64_t)w;
	s->len -= (uint32_t)w;
	if (s->len == 0) {
		d->s_head = (d->s_head + 1) % MAX_SEGS;
		d->s_n--;
	}
	if (d->cfg.fault && !d->fired && d->out == d->cfg.fault_at)
		fire(r, d);
}

/* Forwards until both sockets are closed or both directions ended. */
static void relay_loop(struct tt_relay *r)
{
	for (;;) {
		struct pollfd p[3] = {{r->stop[0], POLLIN, 0}, {-1, 0, 0}, {-1, 0, 0}};
		uint64_t now = tt_now_ns(), next = UINT64_MAX;
		int active = 0;
		for (int i = 0; i < 2; i++) {
			struct dir *d = &r->d[i];
			if (d->s_n > 0 && (r->fd[d->dst] < 0 || d->shut)) {
				d->len = 0; /* nowhere to go */
				d->s_n = 0;
			}
			if (r->fd[d->src] >= 0 && !d->eof &&
			    (d->discard || d->shut || d->len < r->cap)) {
				p[1 + d->src].fd = r->fd[d->src];
				p[1 + d->src].events |= POLLIN;
			}
			if (d->s_n > 0) {
				uint64_t due = d->segs[d->s_head].due_ns;
				if (due <= now) {
					p[1 + d->dst].fd = r->fd[d->dst];
					p[1 + d->dst].events |= POLLOUT;
				} else if (due < next) {
					next = due;
				}
			} else if (d->eof && !d->shut) {
				sock_fin(r, d); /* EOF passed on after the data */
			}
			if (r->fd[d->src] >= 0 || (r->fd[d->dst] >= 0 && !d->shut))
				active = 1;
			if (r->fd[d->src] >= 0 && !d->eof)
				active = 1;
		}
		if (!active || (r->d[0].eof && r->d[0].shut && r->d[1].eof && r->d[1].shut))
			return;
		int timeout = -1;
		if (next != UINT64_MAX)
			timeout = (int)((next - now + 999999) / 1000000);
		if (poll(p, 3, timeout) < 0 && errno != EINTR)
			return;
		if (p[0].revents)
			return;
		for (int i = 0; i < 2; i++) {
			struct dir *d = &r->d[i];
			int si = 1 + d->src, di = 1 + d->dst;
			if ((p[si].events & POLLIN) && r->fd[d->src] == p[si].fd &&
			    (p[si].revents & (POLLIN | POLLHUP | POLLERR)))
				dir_read(r, d);
			if ((p[di].events & POLLOUT) && r->fd[d->dst] == p[di].fd && d->s_n > 0 &&
			    (p[di].revents & (POLLOUT | POLLERR | POLLHUP)))
				dir_write(r, d);
		}
	}
}

static void *relay_main(void *arg)
{
	struct tt_relay *r = arg;
	struct pollfd p[2] = {{r->stop[0], POLLIN, 0}, {r->lfd, POLLIN, 0}};
	if (poll(p, 2, -1) <= 0 || p[0].revents)
		return NULL;
	int a = accept(r->lfd, NULL, NULL);
	if (a < 0)
		return NULL;
	int b = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)r->cfg.target_port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(b, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(b);
		r->fd[0] = a;
		sock_rst(r, 0);
		return NULL;
	}
	nodelay_nonblock(a, r->cfg.small);
	nodelay_nonblock(b, r->cfg.small);
	r->fd[0] = a;
	r->fd[1] = b;
	relay_loop(r);
	return NULL;
}

struct tt_relay *tt_relay_start(const struct tt_relay_cfg *cfg, int *port)
{
	struct tt_relay *r = calloc(1, sizeof *r);
	r->cfg = *cfg;
	r->rng = cfg->seed ^ 0x5eed5eedull;
	r->fd[0] = r->fd[1] = -1;
	r->cap = cfg->small ? SMALL_BUF_CAP : BUF_CAP;
	for (int i = 0; i < 2; i++) {
		r->d[i].cfg = cfg->dir[i];
		if (r->d[i].cfg.max_write < 1)
			r->d[i].cfg.max_write = 1;
		r->d[i].buf = malloc(r->cap);
		r->d[i].src = i;
		r->d[i].dst = 1 - i;
	}
	r->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	if (pipe(r->stop) < 0 || bind(r->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(r->lfd, 4) < 0 || getsockname(r->lfd, (struct sockaddr *)&sa, &sl) < 0 ||
	    pthread_create(&r->thr, NULL, relay_main, r) != 0) {
		tt_fail("relay: cannot start: %s", strerror(errno));
		close(r->lfd);
		free(r->d[0].buf);
		free(r->d[1].buf);
		free(r);
		return NULL;
	}
	*port = ntohs(sa.sin_port);
	return r;
}

void tt_relay_stop(struct tt_relay *r, int fired[2], uint64_t bytes[2])
{
	if (write(r->stop[1], "x", 1) != 1)
		tt_fail("relay: cannot stop");
	pthread_join(r->thr, NULL);
	for (int i = 0; i < 2; i++) {
		fired[i] = r->d[i].fired;
		bytes[i] = r->d[i].out;
		if (r->fd[i] >= 0)
			close(r->fd[i]);
		free(r->d[i].buf);
	}
	close(r->lfd);
	close(r->stop[0]);
	close(r->stop[1]);
	free(r);
}
