/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * torture.h - the parts of the torture harness (tests/torture): a
 * fault-injecting relay, the self-describing chunks both sides send and
 * check, and the OpenSSL peer. See torture.c for the run and its
 * invariants, docs/reliability.md "Torture harness" for how to use it.
 */
#ifndef TLSQ_TORTURE_H
#define TLSQ_TORTURE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- random numbers: splitmix64, one state per thread ------------------ */

static inline uint64_t tt_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
/* Uniform in [lo, hi]. */
static inline uint64_t tt_range(uint64_t *s, uint64_t lo, uint64_t hi)
{
	return lo + tt_rand(s) % (hi - lo + 1);
}
/* 1 with probability pct/100. */
static inline int tt_pct(uint64_t *s, unsigned pct)
{
	return tt_rand(s) % 100 < pct;
}

uint64_t tt_now_ns(void);
static inline uint64_t tt_now_ms(void)
{
	return tt_now_ns() / 1000000u;
}

/* Reports a failure of the current seed (first one wins; thread-safe). */
void tt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int tt_verbose;

/* ---- chunks ------------------------------------------------------------
 * Every send (stream) or message is one chunk: a 24-byte header
 * {magic, side, tid, seq, len, checksum} and `len` payload bytes. The
 * checksum covers the header fields and the payload, so a receiver can
 * check each chunk on its own, and per sending thread the sequence numbers
 * tell loss, duplication and reordering apart. */
#define TT_HDR       24
#define TT_MAX_TID   8
#define TT_MAX_CHUNK (256 * 1024)

/* Builds chunk (side, tid, seq) with `len` payload bytes into buf (at least
 * TT_HDR + len). Returns its total length. */
size_t tt_chunk_make(unsigned char *buf, unsigned side, unsigned tid, uint32_t seq, uint32_t len,
                     uint64_t seed);

/* What one direction delivered, per sending thread. */
struct tt_rxlog {
	unsigned side;                   /* the sender's side id expected in chunks */
	uint32_t next[TT_MAX_TID];       /* stream: next seq expected per tid */
	unsigned char *seen[TT_MAX_TID]; /* message: bitmap of seqs received */
	uint32_t seen_cap[TT_MAX_TID];
	uint64_t chunks, bytes;
	/* stream: bytes of an incomplete chunk at the end of what arrived */
	unsigned char *acc;
	size_t acc_len, acc_cap;
};
void tt_rxlog_init(struct tt_rxlog *l, unsigned side);
void tt_rxlog_fini(struct tt_rxlog *l);
/* Stream mode: feeds received bytes (in stream order). 0 or -1 (failed). */
int tt_rxlog_stream(struct tt_rxlog *l, const void *buf, size_t len, const char *who);
/* Message mode: one whole message; last[] is the receiving thread's last
 * seq per tid (+1; 0 = none yet) to check per-thread order. 0 or -1. */
int tt_rxlog_msg(struct tt_rxlog *l, const void *msg, size_t len, uint32_t *last, const char *who);
/* Count of seqs of `tid` received; -1 (failed) if they are not 0..k-1. */
int64_t tt_rxlog_count(const struct tt_rxlog *l, unsigned tid, int msg_mode, const char *who);

/* ---- the relay ---------------------------------------------------------
 * One thread, poll(2), real loopback sockets. It accepts one connection on
 * its own port and connects to `target_port`, then forwards both ways:
 * every write takes 1..max_write bytes (TCP_NODELAY, so 1 means one-byte
 * segments), every read is held until its own monotonic deadline (now + a
 * random delay up to max_delay_ms, never before the bytes read earlier).
 * A fault at byte `fault_at` of one direction cuts it (FIN) or resets it
 * (RST). FIN and RST from an endpoint are passed on as they came. */
enum tt_fault { TT_FAULT_NONE = 0, TT_FAULT_FIN = 1, TT_FAULT_RST = 2 };
struct tt_relay_dir_cfg {
	unsigned max_write;    /* >= 1 */
	unsigned max_delay_ms; /* 0 = forward at once */
	int fault;             /* enum tt_fault */
	uint64_t fault_at;     /* byte offset in this direction */
	int rst_other;         /* after a RST fault: 1 RST, 0 FIN the other side */
};
struct tt_relay_cfg {
	int target_port;
	int small; /* small socket buffers and relay buffer (slow links) */
	uint64_t seed;
	struct tt_relay_dir_cfg dir[2]; /* [0] accepted->target, [1] back */
};
struct tt_relay;
/* Starts the relay; returns it and its port in *port, or NULL. */
struct tt_relay *tt_relay_start(const struct tt_relay_cfg *cfg, int *port);
/* Stops it (closing what is left) and joins the thread. Returns in fired[d]
 * whether direction d's fault happened and in bytes[d] what went through. */
void tt_relay_stop(struct tt_relay *r, int fired[2], uint64_t bytes[2]);

/* ---- the OpenSSL peer --------------------------------------------------
 * A thread with a blocking socket: OpenSSL 3 as server (listening on its
 * own port) or client (connecting to `connect_port`), echoing every byte it
 * reads with blocking SSL_read/SSL_write, checking the chunks as it goes,
 * and answering the peer's close_notify with its own. */
struct tt_ossl_cfg {
	int server;       /* 1: OpenSSL is the server */
	int connect_port; /* client: where to connect */
	int tls12;        /* 1: TLS 1.2 only */
	uint64_t seed;
	unsigned max_read;       /* SSL_read sizes 1..max_read */
	unsigned key_update_pct; /* chance of an SSL_key_update before a write */
	unsigned tlsq_side;      /* side id in the chunks it receives */
	int io_timeout_ms;       /* a blocking call longer than this fails (--hang-ms) */
};
struct tt_ossl_result {
	int handshake_ok;
	int clean_end; /* SSL_read returned ZERO_RETURN (tlsq's close_notify) */
	int error;     /* 1 if it ended by an error */
	char reason[160];
	uint64_t bytes_in, bytes_out;
	uint64_t after_close; /* bytes read after its close_notify, until EOF */
	struct tt_rxlog log;  /* what it received, checked */
};
struct tt_ossl;
/* Server: also returns the listening port. PEM of its certificate (for the
 * tlsq client's ca_pem) in cert_pem. NULL on failure. */
struct tt_ossl *tt_ossl_start(const struct tt_ossl_cfg *cfg, int *port, char *cert_pem, size_t cap);
/* Joins the thread (it ends when its socket ends). Result stays valid until
 * tt_ossl_free. */
const struct tt_ossl_result *tt_ossl_join(struct tt_ossl *o);
void tt_ossl_free(struct tt_ossl *o);
int tt_ossl_available(void);

#endif
