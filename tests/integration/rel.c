/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "rel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support/support.h"

static const char *const err_names[REL_NERR] = {
    "ok",   "again", "timedout", "closed",      "truncated", "connreset", "msgsize", "tls",
    "cert", "nomem", "inval",    "connrefused", "addr",      "io",        "proto",
};

const char *rel_err_name(int err)
{
	int i = err < 0 ? -err : err;
	return i < REL_NERR ? err_names[i] : "?";
}

int rel_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

int rel_listen(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

size_t rel_send_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	return off;
}

int rel_read_until_close(int fd, int ms, unsigned char *resp, size_t cap, size_t *resp_len)
{
	uint64_t end = ts_now_ms() + (uint64_t)ms;
	size_t have = 0;
	unsigned char tmp[4096];
	for (;;) {
		uint64_t now = ts_now_ms();
		if (now >= end) {
			if (resp_len)
				*resp_len = have;
			return -1;
		}
		struct pollfd pfd = {fd, POLLIN, 0};
		int r = poll(&pfd, 1, (int)(end - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t n = recv(fd, tmp, sizeof tmp, 0);
		if (n > 0) {
			size_t k = (size_t)n;
			if (resp && have < cap) {
				size_t c = cap - have < k ? cap - have : k;
				memcpy(resp + have, tmp, c);
				have += c;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (resp_len)
			*resp_len = have;
		return n == 0 ? 0 : 1;
	}
}

void rel_close_rst(int fd)
{
	struct linger lg = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

static int64_t json_int(const char *doc, const char *scope, const char *key)
{
	const char *s = strstr(doc, scope);
	if (!s)
		return -1;
	char k[64];
	snprintf(k, sizeof k, "\"%s\":", key);
	const char *p = strstr(s, k);
	if (!p)
		return -1;
	return strtoll(p + strlen(k), NULL, 10);
}

int rel_status_get(int port, rel_status *out)
{
	int fd = rel_connect(port);
	if (fd < 0)
		return -1;
	static const char req[] = "GET /status?limit=0 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	rel_send_all(fd, req, sizeof req - 1);
	size_t cap = 64 * 1024, len = 0;
	unsigned char *buf = malloc(cap + 1);
	int r = rel_read_until_close(fd, 5000, buf, cap, &len);
	close(fd);
	if (r != 0 || len == 0) {
		free(buf);
		return -1;
	}
	buf[len] = 0;
	const char *doc = strstr((char *)buf, "\r\n\r\n");
	if (!doc || strncmp((char *)buf, "HTTP/1.", 7) != 0 ||
	    strstr((char *)buf, " 200 ") == NULL) {
		free(buf);
		return -1;
	}
	memset(out, 0, sizeof *out);
	out->opened = json_int(doc, "\"connections\":{", "opened");
	out->closed = json_int(doc, "\"connections\":{", "closed");
	out->live = json_int(doc, "\"connections\":{", "live");
	out->handshakes_failed = json_int(doc, "\"handshakes\":{", "failed");
	for (int i = 1; i < REL_NERR; i++)
		out->errors[i] = json_int(doc, "\"errors\":{", err_names[i]);
	free(buf);
	return out->live >= 0 ? 0 : -1;
}

int64_t rel_wait_live(int port, int64_t want, int ms)
{
	uint64_t end = ts_now_ms() + (uint64_t)ms;
	rel_status st;
	int64_t last = -1;
	for (;;) {
		if (rel_status_get(port, &st) == 0) {
			last = st.live;
			if (last == want)
				return last;
		}
		if (ts_now_ms() >= end)
			return last;
		/* polling interval of a condition with a deadline */
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

long rel_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long kib = -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

long rel_raise_nofile(long want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if ((long)rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max >= want
		                  ? (rlim_t)want
		                  : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (long)rl.rlim_cur;
}
