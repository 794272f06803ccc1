/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * err.c - errors and their names: tlsq_strerror, the state and failure
 * names, tlsq_version, and the thread-local last error every layer records
 * into (tlsq__set_last_error) and tlsq_last_error reads. Depends on nothing
 * but the public enums.
 */
#include <stdarg.h>
#include <stdio.h>

#include "err.h"

static _Thread_local char last_error[512];

void tlsq__set_last_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
}

/* see tlsq.h */
const char *tlsq_last_error(void)
{
	return last_error;
}

/* see tlsq.h */
const char *tlsq_strerror(int err)
{
	switch (err) {
	case TLSQ_OK:
		return "success";
	case TLSQ_EAGAIN:
		return "would block";
	case TLSQ_ETIMEDOUT:
		return "timed out";
	case TLSQ_ECLOSED:
		return "connection closed";
	case TLSQ_ETRUNCATED:
		return "connection truncated (no close_notify)";
	case TLSQ_ECONNRESET:
		return "connection reset by peer";
	case TLSQ_EMSGSIZE:
		return "message too large";
	case TLSQ_ETLS:
		return "TLS protocol error";
	case TLSQ_ECERT:
		return "certificate verification failed";
	case TLSQ_ENOMEM:
		return "out of memory";
	case TLSQ_EINVAL:
		return "invalid argument";
	case TLSQ_ECONNREFUSED:
		return "connection refused";
	case TLSQ_EADDR:
		return "bad or unresolvable address";
	case TLSQ_EIO:
		return "I/O error";
	case TLSQ_EPROTO:
		return "message framing violated by peer";
	default:
		return "unknown error";
	}
}

/* see tlsq.h */
const char *tlsq_state_name(int st)
{
	static const char *names[] = {"connecting",  "handshaking", "open",   "send-closed",
	                              "recv-closed", "closing",     "closed", "failed"};
	return st >= 0 && st <= TLSQ_STATE_FAILED ? names[st] : "unknown";
}

/* see tlsq.h */
const char *tlsq_fail_reason_name(int reason)
{
	static const char *const names[TLSQ_FAIL_REASONS] = {
	    "other",       "timeout",        "not_tls",      "version",
	    "cipher",      "no_client_cert", "client_cert",  "peer_alert",
	    "peer_closed", "protocol",       "accept_queue",
	};
	return reason >= 0 && reason < TLSQ_FAIL_REASONS ? names[reason] : "unknown";
}

/* see tlsq.h */
const char *tlsq_fail_phase_name(int phase)
{
	static const char *const names[] = {"connected", "handshake", "accept"};
	return phase >= 0 && phase <= TLSQ_PHASE_ACCEPT ? names[phase] : "unknown";
}

/* see tlsq.h */
const char *tlsq_version(void)
{
	return TLSQ_VERSION_STRING;
}
