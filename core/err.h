/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Folder rule: core/ (queues, buffers, waits, wakeups, framing, counters,
 * errors and their names) depends on nothing above it: no TLS, no libevent,
 * no iotask/, status/ or api/ header but the public contract tlsq.h, no
 * call upward. Checked by tools/check-includes (ctest layers_*).
 *
 * Errors and their names (err.c). Core uses the public enums of tlsq.h, the
 * one header outside core/ that core/ includes (the public contract, free of
 * foreign types), so no translation is ever needed.
 */
#ifndef TLSQ_CORE_ERR_H
#define TLSQ_CORE_ERR_H

#include "../api/tlsq.h"

/* Records the calling thread's last error (tlsq_last_error), printf-style.
 * Any thread, any layer. */
void tlsq__set_last_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
