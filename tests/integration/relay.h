/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A TCP relay the test controls: client -> relay -> server on loopback, one
 * poll() thread, no sleeps. It forwards bytes both ways and, on command,
 * toward one side: a FIN after forwarding everything it holds, a RST
 * (SO_LINGER {1,0} + close), one corrupted byte in the body of the next TLS
 * record, or a stall (nothing moves either way). Ends it sees from one side
 * (EOF, reset) are passed on to the other after the bytes it holds.
 */
#ifndef TLSQ_TEST_RELAY_H
#define TLSQ_TEST_RELAY_H

#include <stdint.h>

/* Sides and directions: a direction is named by the side it goes toward. */
enum { RELAY_CLIENT = 0, RELAY_SERVER = 1 };

typedef struct relay relay;

/* Listens on 127.0.0.1 (see relay_port) and, once a client connects,
 * connects to 127.0.0.1:upstream_port. `cap` bounds the bytes held toward
 * each side. stalled: forward nothing from the start. */
relay *relay_start(int upstream_port, const uint32_t cap[2], int stalled);
int relay_port(const relay *r);
/* Closes every socket, joins the thread and frees. */
void relay_stop(relay *r);

/* Commands (any thread; they take effect on the relay's thread). */
/* FIN toward `side` once at least `after` bytes were forwarded to it and
 * nothing more is held. */
void relay_fin(relay *r, int side, uint64_t after);
/* RST toward `side` at once (what is held for it is dropped). */
void relay_rst(relay *r, int side);
/* Flip one byte in the body of the first TLS record toward `side` that has
 * not started to go out yet. */
void relay_corrupt(relay *r, int side);
/* Stop forwarding both ways (and stop reading). */
void relay_stall(relay *r);

/* Observations (any thread). */
uint64_t relay_forwarded(relay *r, int side); /* bytes written toward side */
int relay_fin_done(relay *r, int side);
int relay_corrupted(relay *r, int side); /* the byte was flipped */
/* Monotonic ms when `side` closed its socket (EOF or error), 0 if not. */
uint64_t relay_closed_ms(relay *r, int side);
/* Monotonic ms when the relay connected to the server, 0 if not yet. */
uint64_t relay_connected_ms(relay *r);

#endif
