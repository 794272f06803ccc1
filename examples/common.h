/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared by the examples: an engine with a self-signed server listening on
 * 127.0.0.1 and a client profile that trusts it. */
#ifndef EXAMPLE_COMMON_H
#define EXAMPLE_COMMON_H
#include <stdio.h>
#include <stdlib.h>

#include "tlsq.h"

#define DIE(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, __VA_ARGS__);                                                      \
		fputc('\n', stderr);                                                               \
		exit(1);                                                                           \
	} while (0)

static inline void example_setup(tlsq_mode mode, tlsq_engine **e, tlsq_listener **l,
                                 tlsq_tls **client_tls, char *addr, size_t cap)
{
	static char pem[8192];
	tlsq_tls *srv;
	tlsq_tls_config sc, cc;
	if (tlsq_engine_new(NULL, e) != TLSQ_OK)
		DIE("engine: %s", tlsq_last_error());
	tlsq_tls_config_init(&sc, TLSQ_SERVER);
	sc.self_signed = 1;
	sc.mode = mode;
	if (tlsq_tls_new(&sc, &srv) != TLSQ_OK)
		DIE("server profile: %s", tlsq_last_error());
	tlsq_tls_cert_pem(srv, pem, sizeof pem);
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.ca_pem = pem; /* trust the self-signed certificate */
	cc.server_name = "localhost";
	cc.mode = mode;
	if (tlsq_tls_new(&cc, client_tls) != TLSQ_OK)
		DIE("client profile: %s", tlsq_last_error());
	if (tlsq_listen(*e, "127.0.0.1:0", srv, l) != TLSQ_OK)
		DIE("listen: %s", tlsq_last_error());
	tlsq_tls_free(srv); /* the listener keeps its own reference */
	snprintf(addr, cap, "127.0.0.1:%d", tlsq_listener_port(*l));
}
#endif
