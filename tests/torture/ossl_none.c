/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ossl_none.c - the torture harness built without OpenSSL: no openssl mode. */
#include <stddef.h>

#include "torture.h"

int tt_ossl_available(void)
{
	return 0;
}

struct tt_ossl *tt_ossl_start(const struct tt_ossl_cfg *cfg, int *port, char *cert_pem, size_t cap)
{
	(void)cfg;
	(void)port;
	(void)cert_pem;
	(void)cap;
	tt_fail("built without OpenSSL: no openssl mode");
	return NULL;
}

const struct tt_ossl_result *tt_ossl_join(struct tt_ossl *o)
{
	(void)o;
	return NULL;
}

void tt_ossl_free(struct tt_ossl *o)
{
	(void)o;
}
