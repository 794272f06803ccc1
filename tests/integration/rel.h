/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers of the reliability tests (tests/integration): raw sockets, the
 * status endpoint's counters, resident memory. Conditions are polled with
 * deadlines; nothing sleeps to synchronise.
 */
#ifndef TLSQ_TEST_REL_H
#define TLSQ_TEST_REL_H

#include <stddef.h>
#include <stdint.h>

#include "tlsq.h"

/* The engine-wide numbers of GET /status (connections.*, errors.*). */
#define REL_NERR 15 /* indexed by -tlsq_err, 1..14 */
typedef struct rel_status {
	int64_t opened, closed, live;
	int64_t errors[REL_NERR];
	int64_t handshakes_failed;
} rel_status;

/* Fetches http://127.0.0.1:port/status?limit=0 and parses it. 0 or -1. */
int rel_status_get(int port, rel_status *out);
/* Polls until connections.live == want or ms pass. Returns the last value. */
int64_t rel_wait_live(int port, int64_t want, int ms);
/* The short name the status endpoint uses for -err ("tls", "timedout"). */
const char *rel_err_name(int err);

/* A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY, or -1. */
int rel_connect(int port);
/* Sends all of buf, ignoring EPIPE/ECONNRESET (the server may close first).
 * Returns bytes sent. */
size_t rel_send_all(int fd, const void *buf, size_t len);
/* Reads until the peer closes or ms pass, keeping the first `cap` bytes in
 * resp (*resp_len). Returns 0 on FIN, 1 on RST, -1 on timeout. */
int rel_read_until_close(int fd, int ms, unsigned char *resp, size_t cap, size_t *resp_len);
/* Closes with SO_LINGER 0: the peer sees a reset. */
void rel_close_rst(int fd);

/* Resident set size of this process in KiB (VmRSS), or -1. */
long rel_rss_kib(void);
/* Raises RLIMIT_NOFILE to at least want (up to the hard limit); returns the
 * soft limit now in force. */
long rel_raise_nofile(long want);

/* A listening TCP socket on 127.0.0.1:0; *port gets the port. */
int rel_listen(int *port);

#endif
