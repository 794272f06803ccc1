/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * iotask: the IO threads and the per-connection IO task.
 *
 * Folder rule: iotask/ (IO threads, the IO task, the wolfSSL binding,
 * sockets and listeners) uses core/ and the public contract tlsq.h only. It
 * never calls or includes anything of api/ or status/; what a layer above
 * keeps per engine hangs on the engine as an opaque pointer (upper). Only
 * iotask/'s wolfSSL binding (tls.c, profile.c, credload.c, peercert.c,
 * sharing tls_int.h) includes wolfSSL headers. Checked by tools/check-includes
 * (ctest layers_include_graph, layers_link_graph).
 *
 * Design notes (the invariants everything in iotask/ and api/ relies on):
 *
 * 1. A connection is pinned to one IO thread (c->io) for its whole life.
 *    Every field under "IO task only" is touched only on that thread, and
 *    only that thread calls wolfSSL for the connection (iotask/tls.c, the
 *    per-connection part of the wolfSSL binding).
 * 2. Application threads talk to the IO task only through: the two queues
 *    (core/queue.h), the `requests` bit set, and a notification
 *    (tlsq__conn_kick). The IO task talks back through: the queues, the
 *    atomics under "published", and c->state_ec, incremented after every
 *    change a caller may wait for (handshake done, flushed, closed).
 * 3. Published strings (version, cipher, ...) are written once by the IO task
 *    before it stores state >= OPEN with release; readers load state with
 *    acquire first. The sticky error's reason is written before `error` is
 *    stored (release), and only the IO task sets `error`.
 * 4. References: the application's handle is one reference, the IO task's
 *    registration is one, each call in progress holds one, and a listed
 *    notification holds one. The IO task drops its reference through an
 *    epoch callback after unlinking the connection from its thread's list,
 *    so the status endpoint, which walks the lists inside an epoch section,
 *    never sees freed memory. The memory goes with the last reference.
 */
#ifndef TLSQ_IOTASK_H
#define TLSQ_IOTASK_H

#include <pthread.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdint.h>

#include <ck_epoch.h>

#include "../api/tlsq.h"
#include "buf.h"
#include "err.h"
#include "frame.h"
#include "logring.h"
#include "notify.h"
#include "queue.h"
#include "stats.h"
#include "wait.h"

struct event_base;
struct event;
struct evbuffer;
typedef struct tlsq__tls_ssl tlsq__tls_ssl; /* a WOLFSSL, opaque outside the binding */

/* requests: bits set by application threads, taken by the IO task. */
enum {
	TLSQ__REQ_ADOPT = 1u << 0,      /* new connection: register and start */
	TLSQ__REQ_SHUTDOWN = 1u << 1,   /* close_notify after the queued data */
	TLSQ__REQ_CLOSE = 1u << 2,      /* graceful close */
	TLSQ__REQ_ABORT = 1u << 3,      /* reset now */
	TLSQ__REQ_KEY_UPDATE = 1u << 4, /* send KeyUpdate(update_requested) */
	TLSQ__REQ_FREE = 1u << 5,       /* the application released its handle */
	TLSQ__REQ_RX_ROOM = 1u << 6,    /* a consumer made room in the rx queue */
};

/* ---- failed handshakes (failures.c): one per listener, one per engine ---- */
typedef struct tlsq__failures {
	tlsq__logring ring; /* struct tlsq_accept_failure records */
	tlsq__counter by_reason[TLSQ_FAIL_REASONS];
	tlsq__ec ec; /* incremented after each record */
} tlsq__failures;

/* ---- engine-wide counters (status endpoint) ---- */
typedef struct tlsq__engine_stats {
	tlsq__counter conns_opened; /* connections created */
	tlsq__counter conns_closed; /* connections torn down */
	tlsq__counter handshakes_ok;
	tlsq__counter handshakes_failed;
	tlsq__counter resumed;
	tlsq__counter alerts_received;
	tlsq__counter alerts_sent;
	tlsq__counter bytes_sent; /* plaintext */
	tlsq__counter bytes_received;
	tlsq__counter tls_bytes_sent; /* ciphertext */
	tlsq__counter tls_bytes_received;
	tlsq__counter msgs_sent;
	tlsq__counter msgs_received;
	tlsq__counter key_updates_sent;
	tlsq__counter key_updates_received;
	tlsq__counter accept_dropped; /* accept queue full */
	tlsq__counter errors[16];     /* by -error code */
	tlsq__counter wakeups_sent;   /* eventfd writes (notifier) */
	tlsq__counter wakeups_saved;
	_Atomic int64_t conns_live;
} tlsq__engine_stats;

typedef struct tlsq__iothread {
	struct tlsq_engine *engine;
	int index;
	pthread_t thread;
	struct event_base *base;
	struct event *ev_notify;
	tlsq__notifier notifier;
	ck_epoch_record_t epoch_rec;
	struct tlsq_conn *_Atomic conns; /* RCU-style list: written by this thread only */
	_Atomic uint32_t nconns;
	_Atomic int running;
	struct event *ev_reclaim;       /* periodic epoch poll */
	struct tlsq__linger *lingering; /* ended, waiting for the peer's FIN (linger.c) */
} tlsq__iothread;

struct tlsq_engine {
	_Atomic uint32_t refs; /* application + each connection and listener */
	tlsq_engine_config cfg;
	char *status_addr_copy, *status_token_copy;
	int nio;
	tlsq__iothread *io;
	_Atomic uint32_t next_io; /* round-robin placement */
	ck_epoch_t epoch;
	tlsq__engine_stats stats;
	uint64_t started_ms; /* wall-clock ms at start (for uptime) */
	uint64_t started_mono_ms;
	struct tlsq_listener *listeners; /* live listeners, guarded by lmu */
	pthread_mutex_t lmu;             /* listener list only: never on the IO path */
	/* The layer above's own state for this engine (api/ puts the status
	 * endpoint's here) and how to free it: called with the engine's memory,
	 * at the last reference, as it may hold an epoch record (ck never
	 * unlists one). iotask never looks inside. */
	void *upper;
	void (*upper_free)(void *upper);
	_Atomic int stopping;
	tlsq__failures failures; /* every listener's failed handshakes (failures.c) */
};

/* ---- the peer's certificates (peercert.c): published once, at the handshake ---- */
#define TLSQ__PEER_CHAIN_MAX 8
typedef struct tlsq__peer {
	int n; /* certificates: [0] is the leaf */
	unsigned char *der[TLSQ__PEER_CHAIN_MAX];
	int len[TLSQ__PEER_CHAIN_MAX];
	char sha256[65];      /* the leaf's DER, lowercase hex */
	char spki_sha256[45]; /* its SubjectPublicKeyInfo, base64 */
	char sans[256];       /* "DNS:a, IP:1.2.3.4" */
} tlsq__peer;
void tlsq__peer_free(tlsq__peer *p);

/* ---- TLS profile (iotask/profile.c) ---- */
/* Everything a profile derives from its certificate, key and CA files:
 * replaced as a whole by tlsq_tls_reload (profile.c). Each connection holds a
 * reference from its SSL's creation to its SSL's end, so a handshake sees
 * one set from start to finish. */
struct tlsq__cred;

struct tlsq_tls {
	_Atomic uint32_t refs;
	tlsq_role role;
	tlsq_mode mode;
	int min_version, max_version;
	int session_resumption;
	char *server_name;
	char *alpn;                      /* wolfSSL form: comma separated */
	struct tlsq__cred *_Atomic cred; /* current credentials (tlsq__cred_get) */
	_Atomic uint32_t cred_readers;   /* threads between loading cred and taking
	                                    their reference: a reload waits for 0 */
	pthread_mutex_t session_mu;      /* client ticket: taken by IO threads only */
	void *session;                   /* WOLFSSL_SESSION, last ticket */
	uint64_t session_gen;            /* the cred generation it was verified under */
};
/* Reloads of all profiles of the process (tlsq_tls_reload), for /status. */
void tlsq__tls_reload_counts(uint64_t *ok, uint64_t *failed);
/* The profile's current certificate i: subject and notAfter (Unix time);
 * i = 0 the own one (-1 when it has none), 1.. those chosen by SNI (their
 * comma-separated names into `names`, "" for 0; -1 past the last). Any
 * thread. */
int tlsq__tls_cert_summary_at(const struct tlsq_tls *t, int i, char *subject, size_t cap,
                              int64_t *not_after, char *names, size_t ncap);

/* ---- listener (iotask/listener.c) ---- */
struct tlsq_listener {
	_Atomic uint32_t refs;
	struct tlsq_engine *engine;
	struct tlsq_tls *tls;
	int fd;
	int port;
	struct event *ev; /* on IO thread 0 */
	/* handshaken connections waiting for tlsq_accept: MPMC ring */
	ck_ring_t ring;
	ck_ring_buffer_t *slots;
	unsigned nslots;
	_Atomic uint32_t queued; /* entries reserved */
	tlsq__ec ec;
	_Atomic int closed;
	_Atomic uint32_t waiters; /* threads inside tlsq_accept (tests) */
	struct tlsq_listener *next;
	tlsq__counter accepted, handshake_failed, dropped;
	tlsq__failures failures;
};

/* ---- connection ---- */
struct tlsq_conn {
	tlsq__notify_node node; /* first: the notifier hands back this */
	_Atomic uint32_t refs;
	uint64_t id;
	struct tlsq_engine *engine;
	tlsq__iothread *io;
	struct tlsq_tls *tls;
	struct tlsq_listener *listener; /* server side until accepted */
	tlsq_role role;
	tlsq_mode mode;
	struct tlsq_conn *_Atomic next; /* IO thread's list (RCU-style) */
	struct tlsq_conn *prev;         /* IO thread only */
	char *host;                     /* client: name to verify, until the handshake */
	ck_epoch_entry_t epoch_entry;

	/* ---- shared with application threads ---- */
	tlsq__queue txq;
	tlsq__queue rxq;
	_Atomic uint32_t requests;
	tlsq__ec state_ec;
	_Atomic int pollfd; /* eventfd, -1 until asked for */
	_Atomic int handle_freed;
	_Atomic int opened;              /* the handshake completed (set once, before state OPEN) */
	_Atomic uint32_t open_waiters;   /* threads inside tlsq_connect(_wait) (tests) */
	_Atomic(void *) user;            /* tlsq_conn_set_user: the application's, never ours */
	_Atomic(tlsq__peer *) peer_cert; /* published by the IO task at the handshake, or NULL */

	/* ---- published by the IO task (see design note 3) ---- */
	_Atomic int state;       /* tlsq_state */
	_Atomic int close_phase; /* tlsq_close_phase */
	_Atomic int error;       /* sticky, 0 until the first fatal error */
	_Atomic int tx_idle;     /* 1: nothing queued, nothing unsent */
	_Atomic int send_parked, recv_parked;
	_Atomic uint64_t parked_since_ms;
	/* No fixed arrays for strings (issue 18: they were 1.2 KiB of every
	 * idle connection): version, cipher and group point at wolfSSL's
	 * static names, the others are allocated when set. NULL reads as "".
	 * error_reason is written before the error is stored and never
	 * changes after. */
	char *error_reason;
	char peer[64];
	const char *version, *cipher, *group;
	char *alpn, *sni, *peer_subject;
	int resumed;
	tlsq__counter bytes_sent, bytes_received, msgs_sent, msgs_received;
	tlsq__counter tls_bytes_sent, tls_bytes_received, records_sent, records_received;
	_Atomic uint32_t key_updates_sent, key_updates_received;

	/* ---- IO task only ---- */
	int fd;
	tlsq__tls_ssl *ssl;
	struct tlsq__cred *cred;   /* the credentials ssl was made from (profile.c) */
	struct event *ev_read;     /* from registration to the end */
	struct event *ev_write;    /* made when first needed (tlsq__conn_event) */
	struct event *ev_timer;    /* made when a deadline is set, freed when none is */
	struct event *ev_cont;     /* fd-less, made on the first yield: continues after it */
	struct evbuffer *in, *out; /* ciphertext */
	int reading, writing;      /* which events are armed */
	int read_drained;          /* the last read found the socket empty */
	int send_errno;            /* the direct send's hard error, for sock_write */
	int registered;            /* on the IO thread's list */
	int eof, rst;              /* socket saw FIN / RST */
	int sock_error;            /* errno of a failed socket call */
	int tls13;
	/* Facts, each set once; state.c derives the state from them. */
	int connected;       /* the socket is connected (client: connect done) */
	int hs_done;         /* the handshake completed */
	int recv_closed;     /* peer's close_notify seen (or EOF) */
	int send_closed;     /* our close_notify queued */
	int shutdown_wanted; /* app asked for close_notify */
	int closing;         /* graceful close in progress */
	int key_update_wanted;
	int app_gone;       /* handle freed */
	int rx_end_pending; /* end the rx queue once rx_hold is delivered */
	int rx_end_code;
	int ku_storm;               /* peer exceeded max_key_updates_per_s */
	int notify_flushed;         /* our close_notify reached the kernel */
	int finished;               /* socket and TLS released */
	int in_read;                /* inside wolfSSL_read: output is control */
	char *verify_reason;        /* the verify callback's first failure (peercert.c), or NULL */
	tlsq__peer *peer_pending;   /* the chain as the verify callback saw it (peercert.c) */
	int notify_built;           /* our close_notify is in c->out: send nothing after it */
	unsigned char first_in[24]; /* the peer's first bytes, to name a non-TLS peer */
	uint8_t first_in_len;
	tlsq__buf *tx_cur;  /* entry partly handed to TLS */
	tlsq__buf *staging; /* coalescing buffer for small entries */
	tlsq__buf *rx_cur;  /* stream: buffer being filled */
	tlsq__buf *rx_hold; /* a full buffer/message waiting for room */
	tlsq__frame_dec dec;
	uint64_t handshake_deadline_ms, idle_deadline_ms, close_deadline_ms;
	uint64_t connect_deadline_ms;
	uint64_t next_key_update_ms;
	uint64_t bytes_since_key_update;
	uint64_t last_io_ms;
	uint64_t ku_window_start_ms;
	uint32_t ku_in_window;
	uint64_t timer_armed_ms;   /* deadline the timer is set for, 0 = none */
	uint64_t created_ms;       /* monotonic ms at tlsq__conn_new (age, failures) */
	int tls_fail_err;          /* wolfSSL error of the failure (tls_fail) */
	int tls_fail_alert;        /* fatal alert received with it, or -1 */
	unsigned char rec_hdr[5];  /* the last record header wolfSSL read */
	unsigned char rec_body[2]; /* and the first bytes of its body */
	int rec_body_len;
	uint32_t tls_rx_need; /* ciphertext bytes wolfSSL's last WANT_READ asked for */
};

/* ---- iothread.c ---- */
int tlsq__engine_start(struct tlsq_engine *e);
void tlsq__engine_stop(struct tlsq_engine *e);
void tlsq__engine_ref(struct tlsq_engine *e);
void tlsq__engine_unref(struct tlsq_engine *e);
/* Registers the calling (non-IO) thread with the engine's epoch, for
 * tlsq__conn_foreach. */
void tlsq__epoch_register(struct tlsq_engine *e, ck_epoch_record_t *rec);
/* Calls fn for every live connection, inside an epoch section of rec. fn
 * must not block. */
void tlsq__conn_foreach(struct tlsq_engine *e, ck_epoch_record_t *rec,
                        void (*fn)(struct tlsq_conn *c, void *arg), void *arg);
/* Picks the IO thread for a new connection. */
tlsq__iothread *tlsq__io_pick(struct tlsq_engine *e);
/* Asks the IO task of c to look at its queues and requests. Any thread. */
void tlsq__conn_kick(struct tlsq_conn *c);
/* Sets request bits and kicks. Any thread. */
void tlsq__conn_request(struct tlsq_conn *c, uint32_t bits);

/* ---- linger.c (IO thread) ---- */
/* Ends the socket of a connection: writes `out` (NULL or the ciphertext
 * still queued, the fatal alert of a failure last; taken and freed), then
 * FIN, then discards input until the peer's FIN, an error or `ms`, then
 * closes fd (never a RST for late input). `failed`: reset instead if `ms`
 * runs out. ms <= 0: one best-effort write and close at once. Takes fd. */
void tlsq__linger(tlsq__iothread *io, int fd, int ms, struct evbuffer *out, int failed);
/* Closes every socket still lingering (IO thread exit). */
void tlsq__linger_fini(tlsq__iothread *io);

/* ---- conn.c ---- */
/* Allocates a connection for fd (already non-blocking) in `state`. */
struct tlsq_conn *tlsq__conn_new(struct tlsq_engine *e, struct tlsq_tls *tls, int fd,
                                 tlsq_state state);
void tlsq__conn_ref(struct tlsq_conn *c);
void tlsq__conn_unref(struct tlsq_conn *c);
/* Releases the application's handle (tlsq_conn_free; a listener's accept
 * queue at its end): closes the rx queue, ends the tx queue, asks the IO task
 * to finish and drops the handle's reference. Once per connection; any
 * thread. */
void tlsq__conn_release(struct tlsq_conn *c);
/* IO thread: c's write, timer or continue event, made on first use (an
 * idle connection keeps only its read event: issue 18); NULL when out of
 * memory. */
enum { TLSQ__EV_WRITE, TLSQ__EV_TIMER, TLSQ__EV_CONT };
struct event *tlsq__conn_event(struct tlsq_conn *c, int which);
/* IO thread: handles requests and drives the state machine. */
void tlsq__conn_run(struct tlsq_conn *c);
/* state.c (IO thread): the state machine and its event entry points. */
void tlsq__conn_step(struct tlsq_conn *c);
/* Derives the state and close phase from the connection's facts and
 * publishes every change with its entry actions: the only writer of
 * c->state and c->close_phase. */
void tlsq__conn_advance(struct tlsq_conn *c);
/* Entry of HANDSHAKING (also for a server's connection at registration):
 * the TLS object and the handshake deadline. < 0: failed (conn_fail). */
int tlsq__conn_begin_handshake(struct tlsq_conn *c);
/* pump.c (IO thread): data movement, called by the step. Each returns 1 if
 * anything moved. */
enum { TLSQ__RX_READ, TLSQ__RX_HANDOVER, TLSQ__RX_FINAL };
/* Hands decrypted data to the rx queue and, with TLSQ__RX_READ, decrypts
 * more; TLSQ__RX_HANDOVER only hands over (after the end), TLSQ__RX_FINAL
 * past the budget (engine stop). */
int tlsq__pump_rx(struct tlsq_conn *c, int how);
int tlsq__pump_tx(struct tlsq_conn *c);      /* encrypt queued plaintext */
int tlsq__pump_control(struct tlsq_conn *c); /* KeyUpdate, close_notify */
/* The handshake is done and our close_notify not built, no error. */
int tlsq__conn_can_send(const struct tlsq_conn *c);
int tlsq__sock_read(struct tlsq_conn *c);  /* ciphertext in; bytes read */
int tlsq__sock_write(struct tlsq_conn *c); /* ciphertext out */
size_t tlsq__out_len(struct tlsq_conn *c); /* ciphertext waiting to go out */
void tlsq__conn_on_read(struct tlsq_conn *c);
void tlsq__conn_on_write(struct tlsq_conn *c);
void tlsq__conn_timer(struct tlsq_conn *c);
/* conn.c (IO thread): releases socket and TLS once the state is final. */
void tlsq__conn_finish(struct tlsq_conn *c);
/* IO thread: engine stop; tears down at once. */
void tlsq__conn_kill(struct tlsq_conn *c);
/* pump.c (IO thread): nothing will run for c again (engine stop): drops the
 * decrypted data held back for lack of room and ends the rx queue now, so
 * receivers get what is queued and then the end, never a wait for ever. */
void tlsq__conn_rx_end_now(struct tlsq_conn *c);
/* pump.c (IO thread): ends the rx queue now if an end is pending and
 * nothing decrypted waits to be handed over (tlsq__conn_fail: a receiver
 * that sees the error then finds the queue ended, not empty). */
void tlsq__conn_rx_end_if_idle(struct tlsq_conn *c);
/* Sets *dst to a new string made from fmt (printf-style), freeing the old
 * one; on failure leaves *dst NULL and returns TLSQ_ENOMEM. */
int tlsq__str_set(char **dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records the first fatal error (IO thread only), printf-style reason. */
void tlsq__conn_fail(struct tlsq_conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* conn.c (IO thread): fails c for the socket error `err` (an errno) that
 * happened `during` ("while sending"): ECONNRESET/EPIPE -> TLSQ_ECONNRESET,
 * ETIMEDOUT (keepalive or retransmissions gave up) and the unreachable
 * errors TCP reports instead when it gives up -> TLSQ_ETIMEDOUT,
 * anything else -> TLSQ_EIO. Returns the tlsq error. */
int tlsq__sock_fail(struct tlsq_conn *c, int err, const char *during);
/* pump.c (IO thread, the send callback): writes up to n bytes of ciphertext
 * straight to the socket when that is allowed (an open socket, no error
 * seen); returns the bytes written, 0 if none. A hard error is left for
 * the next flush to find and report. */
size_t tlsq__sock_send_direct(struct tlsq_conn *c, const void *p, size_t n);
/* The sticky error (0 if none), as soon as anyone may have seen it: also
 * while tlsq__conn_fail is between ending the rx queue and storing the
 * error. The reason is complete when this is non-zero. Any thread. */
int tlsq__conn_error_code(struct tlsq_conn *c);
/* The one snapshot of a connection: fills info from the published fields
 * and the peer's certificate snapshot (tlsq_conn_info, the status
 * endpoint). Any thread. */
void tlsq__conn_fill_info(struct tlsq_conn *c, struct tlsq_conn_info *info);
/* Signals the pollfd (if any) that data or the end is ready. */
void tlsq__conn_pollfd_signal(struct tlsq_conn *c);

/* ---- net.c ---- */
/* Parses "host:port", "[v6]:port", ":port"; resolves; fills ss. */
int tlsq__resolve(const char *addr, int passive, struct sockaddr_storage *ss, unsigned *sslen,
                  char *host, size_t hostcap);
void tlsq__sockaddr_str(const struct sockaddr *sa, char *buf, size_t cap);
/* TCP_NODELAY, the engine's socket buffer and keepalive on a connection's fd. */
void tlsq__sock_tune(struct tlsq_engine *e, int fd);
/* The argument checks of tlsq_listen and tlsq_connect_start: TLSQ_EINVAL
 * (last error set) for a NULL argument or a profile of the other role. */
int tlsq__net_check_args(const char *fn, const tlsq_engine *e, const char *addr,
                         const tlsq_tls *tls, const void *out, tlsq_role role);

/* ---- listener.c ---- */
/* Opens a non-blocking listening socket on addr ("HOST:PORT", "[v6]:PORT",
 * ":PORT" for every address, v4 and v6): SO_REUSEADDR, sockbuf (> 0) as
 * SO_SNDBUF/SO_RCVBUF before listen, the backlog. Returns the fd and sets
 * *port (the bound one), or returns a tlsq error with the last error set
 * (tlsq_listen, the status endpoint). Any thread. */
int tlsq__listen_socket(const char *addr, int backlog, int sockbuf, int *port);
void tlsq__listener_deliver(struct tlsq_listener *l, struct tlsq_conn *c);
void tlsq__listener_unref(struct tlsq_listener *l);
/* Application threads: waits on `ec` until take(l, arg) returns 1
 * (TLSQ_OK), the listener is closed (TLSQ_ECLOSED) or timeout_ms passes,
 * holding a listener reference meanwhile (tlsq_accept,
 * tlsq_listener_next_failure). */
int tlsq__listener_wait(struct tlsq_listener *l, tlsq__ec *ec,
                        int (*take)(struct tlsq_listener *l, void *arg), void *arg, int timeout_ms);
/* Engine free: closes every listener (waiters in tlsq_accept get
 * TLSQ_ECLOSED); the application still frees them. Any thread but an IO
 * thread. */
void tlsq__listeners_close_all(struct tlsq_engine *e);

/* ---- failures.c ---- */
void tlsq__failures_init(tlsq__failures *f);
/* IO thread of c: c, a server connection of l, ends without reaching
 * tlsq_accept (phase: tlsq_fail_phase). Records it on l and its engine
 * unless the engine is stopping. Never blocks. */
void tlsq__listener_failed(struct tlsq_listener *l, struct tlsq_conn *c, int phase);
/* Status thread: the engine's records, newest first; counts may be NULL. */
size_t tlsq__failures_read(const tlsq__failures *f, struct tlsq_accept_failure *out, size_t cap,
                           uint64_t *counts);

/* ---- tls.c: the wolfSSL binding, per connection ---- */
int tlsq__tls_global_init(void);
/* Creates the WOLFSSL for c with the profile's settings; host is the
 * client's target name (for SNI and the hostname check). */
int tlsq__tls_ssl_new(struct tlsq_conn *c, const char *host);
void tlsq__tls_ssl_free(struct tlsq_conn *c);
/* Handshake step: 1 done, 0 wants IO, < 0 failed (conn failed with reason). */
int tlsq__tls_handshake(struct tlsq_conn *c);
/* Fills the published strings after the handshake. */
void tlsq__tls_publish(struct tlsq_conn *c);
/* Decrypts up to n bytes: > 0 count, 0 wants input, TLSQ__TLS_EOF on the
 * peer's close_notify, or < 0 a tlsq error (conn failed with reason). */
#define TLSQ__TLS_EOF (-1000)
int tlsq__tls_read(struct tlsq_conn *c, void *buf, int n);
/* Encrypts n bytes (all of them, or < 0 with the conn failed). */
int tlsq__tls_write(struct tlsq_conn *c, const void *buf, int n);
/* Queues close_notify. 0 ok, < 0 error. */
int tlsq__tls_shutdown(struct tlsq_conn *c);
/* TLS 1.3 KeyUpdate(update_requested). 0 ok, < 0 error. */
int tlsq__tls_key_update(struct tlsq_conn *c);
/* Saves the client session (ticket) into the profile. */
void tlsq__tls_save_session(struct tlsq_conn *c);
/* The tlsq_fail_reason of a server connection whose handshake failed. */
int tlsq__tls_fail_reason(const struct tlsq_conn *c);
/* A failed connection's last record (conn.c, before the WOLFSSL is freed):
 * if tlsq itself ended it (a timeout once a handshake started, the message
 * framing, a KeyUpdate storm, out of memory), appends the fatal alert that
 * fits to c->out. Returns the alert wolfSSL or this call sent (also counted
 * in the engine's alert counters), -1 for none. */
int tlsq__tls_end_alert(struct tlsq_conn *c);

#endif
