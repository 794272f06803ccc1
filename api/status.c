/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Placeholder until the status endpoint lands (issue 6). */
#include "iotask.h"

int tlsq__status_start(struct tlsq_engine *e)
{
	(void)e;
	tlsq__set_last_error("the status endpoint is not built in this version");
	return TLSQ_EINVAL;
}

void tlsq__status_stop(struct tlsq_engine *e)
{
	(void)e;
}

/* see tlsq.h */
int tlsq_engine_status_port(const tlsq_engine *e)
{
	(void)e;
	return TLSQ_EINVAL;
}
