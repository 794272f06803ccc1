/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tlsq.h - a TLS messaging transport in which application threads never
 * touch TLS.
 *
 * This header is the whole public API and its manual. It includes standard
 * headers only and names no type of wolfSSL, libevent or concurrencykit
 * (tools/check-includes checks it): every folder of the library may include
 * it, and an application needs nothing else.
 *
 * MODEL
 *
 *   Each connection has one IO task, a state machine that runs on one of the
 *   engine's IO threads (libevent loops) for the connection's whole life. Only
 *   the IO task calls the TLS library and the socket: it handshakes, encrypts,
 *   decrypts, sends control records (alerts, KeyUpdate replies, tickets,
 *   close_notify) and wakes the threads it unblocked.
 *
 *   Application threads only put plaintext into the connection's transmit
 *   queue and take decrypted data out of its receive queue. Both queues are
 *   lock-free and bounded in BYTES (tx_budget, rx_budget); a call that finds
 *   its queue full (send) or empty (recv) waits up to its timeout.
 *
 * TIMEOUTS
 *
 *   Every blocking call takes `timeout_ms`: 0 = never block (TLSQ_EAGAIN when
 *   it would), -1 = wait forever, N > 0 = wait at most N milliseconds
 *   (TLSQ_ETIMEDOUT when it runs out).
 *
 * THREADS
 *
 *   Every function may be called from any thread, concurrently with any other
 *   function on the same object, unless its comment says otherwise. In
 *   particular any number of threads may send and receive on one connection
 *   at once, and tlsq_close()/tlsq_abort() may be called while other threads
 *   are blocked in send or recv: they return TLSQ_ECLOSED.
 *
 * LIFETIME
 *
 *   Objects returned by tlsq_*_new / tlsq_connect / tlsq_accept / tlsq_listen
 *   are released with the matching *_free. A free must be the last call the
 *   application makes with that handle; calls already blocked in other
 *   threads are woken (TLSQ_ECLOSED) and the memory goes when the last of
 *   them returns. Using a handle after its *_free is undefined behaviour, as
 *   with free(3). Everything else (double close, calls after close, NULL
 *   handles, sizes that overflow) returns TLSQ_EINVAL or TLSQ_ECLOSED.
 *
 * ERRORS
 *
 *   Functions return TLSQ_OK (0) or a non-negative count on success and a
 *   negative tlsq_err on failure. The first fatal error of a connection is
 *   sticky: every later call on it reports it, and tlsq_conn_error() gives a
 *   one-line reason a person understands. For calls that fail before a
 *   connection exists (configuration, connect, listen), tlsq_last_error()
 *   gives the reason for the calling thread's last failure.
 */
#ifndef TLSQ_H
#define TLSQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t */
#include <sys/uio.h>   /* struct iovec */

#ifdef __cplusplus
extern "C" {
#endif

#define TLSQ_VERSION_MAJOR  0
#define TLSQ_VERSION_MINOR  1
#define TLSQ_VERSION_PATCH  0
#define TLSQ_VERSION_STRING "0.1.0"
/* One number that grows with each release: 0xMMmmpp. */
#define TLSQ_VERSION_NUMBER                                                                        \
	((TLSQ_VERSION_MAJOR << 16) | (TLSQ_VERSION_MINOR << 8) | TLSQ_VERSION_PATCH)

#if defined(TLSQ_STATIC)
#define TLSQ_API
#elif defined(TLSQ_BUILDING)
#define TLSQ_API __attribute__((visibility("default")))
#else
#define TLSQ_API
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

typedef enum tlsq_err {
	TLSQ_OK = 0,
	TLSQ_EAGAIN = -1,        /* would block and timeout_ms was 0: not a failure */
	TLSQ_ETIMEDOUT = -2,     /* timeout_ms ran out, a connection deadline passed,
	                            or TCP gave up on a silent peer (keepalive) */
	TLSQ_ECLOSED = -3,       /* the object was closed (locally, or the peer finished) */
	TLSQ_ETRUNCATED = -4,    /* peer ended the TCP stream without close_notify */
	TLSQ_ECONNRESET = -5,    /* peer reset the connection */
	TLSQ_EMSGSIZE = -6,      /* message larger than the maximum, or than the buffer */
	TLSQ_ETLS = -7,          /* TLS protocol failure or alert */
	TLSQ_ECERT = -8,         /* certificate verification failed */
	TLSQ_ENOMEM = -9,        /* out of memory */
	TLSQ_EINVAL = -10,       /* invalid argument, configuration or state */
	TLSQ_ECONNREFUSED = -11, /* TCP connection refused */
	TLSQ_EADDR = -12,        /* address could not be parsed, resolved or bound */
	TLSQ_EIO = -13,          /* other socket or system error */
	TLSQ_EPROTO = -14,       /* peer broke tlsq's message framing */
} tlsq_err;

/* A static English description of an error code ("timed out"). Never NULL. */
TLSQ_API const char *tlsq_strerror(int err);

/*
 * The reason for the calling thread's last failed call that has no
 * connection to keep it (configuration, tlsq_connect, tlsq_listen, ...).
 * Thread-local; valid until the thread's next tlsq call. Never NULL.
 */
TLSQ_API const char *tlsq_last_error(void);

/* ------------------------------------------------------------------------ */
/* Versions                                                                  */
/* ------------------------------------------------------------------------ */

/* tlsq's version string at run time, e.g. "0.1.0". */
TLSQ_API const char *tlsq_version(void);
/* The crypto library, e.g. "wolfSSL 5.5.4 (Debian 5.5.4-2+deb12u3)". */
TLSQ_API const char *tlsq_crypto_version(void);
/* 1 if AES runs on AES-NI instructions on this CPU, 0 if not. */
TLSQ_API int tlsq_crypto_aesni(void);

/* ------------------------------------------------------------------------ */
/* Engine                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct tlsq_engine tlsq_engine;

/*
 * Engine configuration. Fill it with tlsq_engine_config_init(), then change
 * what you need. Budgets are per connection.
 */
typedef struct tlsq_engine_config {
	int io_threads;           /* IO threads; 0 = one per CPU (default) */
	size_t tx_budget;         /* plaintext bytes queued for sending; default 1 MiB */
	size_t rx_budget;         /* decrypted bytes waiting for recv; default 1 MiB */
	size_t cipher_buffer;     /* ciphertext buffer: high-water mark of the
	                             outgoing buffer and the most read from or
	                             written to the socket in one call. Any value
	                             from 1 works (1 is slow). Default 64 KiB */
	size_t control_reserve;   /* extra ciphertext room kept for control records
	                             (KeyUpdate replies, alerts, close_notify) on
	                             top of cipher_buffer; default 16 KiB */
	size_t max_message;       /* largest message in message mode; default 16 MiB */
	int connect_timeout_ms;   /* TCP connect deadline when the call gives -1; default 30000 */
	int handshake_timeout_ms; /* TLS handshake deadline; default 10000; -1 = none */
	int idle_timeout_ms; /* close after this long with no bytes either way; 0 = never (default)
	                      */
	int close_linger_ms; /* how long a background close (free without close)
	                        waits for the peer's close_notify, and how long
	                        a cleanly closed socket keeps reading (and
	                        discarding) until the peer's FIN, so that late
	                        input never turns the close into a RST. A
	                        failed connection (not an abort) ends the same
	                        way after its fatal alert, and is reset if this
	                        runs out first (docs/reliability.md). 0 =
	                        close the socket at once; default 2000 */
	int keepalive_s;     /* TCP keepalive: probe after this many idle
	                        seconds, then 3 probes keepalive_s/3 (at
	                        least 1) seconds apart; a dead peer gives
	                        TLSQ_ETIMEDOUT. It finds a vanished peer only
	                        while nothing sent is unacknowledged (else
	                        TCP retransmits for ~15 minutes: use
	                        idle_timeout_ms). 0 = off; default 60 */
	int socket_buffer;   /* SO_SNDBUF/SO_RCVBUF in bytes; 0 = the kernel's
	                        (default). Small values make backpressure
	                        reach the application sooner. */
	uint64_t key_update_bytes;  /* TLS 1.3: send a KeyUpdate after this many bytes
	                               sent; 0 = never (default) */
	int key_update_interval_ms; /* TLS 1.3: send a KeyUpdate this often; 0 = never (default) */
	unsigned max_key_updates_per_s; /* peer KeyUpdate(update_requested) tolerated per
	                                   second before the connection fails (the peer
	                                   gets an unexpected_message alert); default
	                                   100. update_not_requested ones are not seen
	                                   (wolfSSL 5.5.4 gives no hook): they make no
	                                   reply, so they cost CPU like any record and
	                                   no memory */
	int accept_backlog;       /* handshaken connections waiting in tlsq_accept; default 1024 */
	const char *status_addr;  /* "HOST:PORT" for the HTTP status endpoint; NULL = off
	                             (default). "PORT" alone binds 127.0.0.1. */
	const char *status_token; /* if set, the status endpoint requires
	                             "Authorization: Bearer <token>" */
	int status_max_conns;     /* status endpoint connection cap; default 256 */
	int status_request_timeout_ms; /* absolute deadline of one HTTP request; default 5000 */
} tlsq_engine_config;

/* Fills `cfg` with the defaults above. */
TLSQ_API void tlsq_engine_config_init(tlsq_engine_config *cfg);

/*
 * Starts the IO threads (and the status endpoint if cfg->status_addr is
 * set). `cfg` may be NULL for the defaults; it is copied. Returns TLSQ_OK,
 * TLSQ_EINVAL (bad configuration, see tlsq_last_error), TLSQ_EADDR (status
 * address), TLSQ_ENOMEM or TLSQ_EIO.
 */
TLSQ_API int tlsq_engine_new(const tlsq_engine_config *cfg, tlsq_engine **out);

/*
 * Closes every listener and connection (abortively: call tlsq_close first
 * for a graceful end), stops the status endpoint and joins the IO threads.
 * Connections, listeners and TLS objects of this engine must not be used
 * afterwards except to free them. NULL is ignored. Must not be called from
 * an IO thread (that is, not from inside a tlsq callback; there are none).
 */
TLSQ_API void tlsq_engine_free(tlsq_engine *e);

/* The TCP port the status endpoint listens on (useful with port 0), or
 * TLSQ_EINVAL if it is off. */
TLSQ_API int tlsq_engine_status_port(const tlsq_engine *e);

/* ------------------------------------------------------------------------ */
/* TLS profiles                                                              */
/* ------------------------------------------------------------------------ */

typedef enum tlsq_role { TLSQ_CLIENT = 0, TLSQ_SERVER = 1 } tlsq_role;

typedef enum tlsq_mode {
	TLSQ_MODE_STREAM = 0,  /* a byte stream: interoperates with any TLS peer */
	TLSQ_MODE_MESSAGE = 1, /* length-prefixed messages: tlsq to tlsq */
} tlsq_mode;

typedef enum tlsq_verify {
	TLSQ_VERIFY_DEFAULT = 0, /* clients: PEER; servers: NONE */
	TLSQ_VERIFY_NONE = 1,    /* no certificate check (clients: insecure!) */
	TLSQ_VERIFY_PEER = 2,    /* verify a certificate if the peer sends one;
	                            clients also check the host name */
	TLSQ_VERIFY_REQUIRE = 3, /* servers: require a valid client certificate (mTLS) */
} tlsq_verify;

#define TLSQ_TLS1_2 0x0303
#define TLSQ_TLS1_3 0x0304

/*
 * A TLS profile: everything a connection needs to know before its first
 * byte: role, certificates, verification, versions, ciphers, ALPN and the
 * framing mode. Fill with tlsq_tls_config_init(), then set what you need.
 * All strings are copied by tlsq_tls_new().
 */
typedef struct tlsq_conn tlsq_conn;

/*
 * What a verify hook (tlsq_tls_config.verify_hook) sees of the peer's own
 * certificate: copies made by the IO task, never wolfSSL objects. Valid
 * during the call only.
 */
typedef struct tlsq_peer_view {
	const unsigned char *der; /* the leaf certificate, DER */
	size_t der_len;
	const char *subject;     /* one line, "/O=.../CN=..." */
	const char *sans;        /* "DNS:a, IP:1.2.3.4", "" if none */
	const char *sha256;      /* of the certificate: 64 lowercase hex digits */
	const char *spki_sha256; /* of its public key: base64 (as a pin, without
	                            "sha256//") */
	int verified;            /* 1: the chain was verified against the CAs
	                            (the profile's verify mode was not NONE) */
} tlsq_peer_view;

/*
 * A verify hook: the application's own decision on the peer's certificate,
 * after tlsq's checks (chain, host name, pins) passed. Return 0 to accept;
 * anything else rejects, and the connection fails with TLSQ_ECERT and
 * "certificate rejected by the verify hook: REASON" (write REASON, one
 * line, into `reason`, `cap` bytes with the NUL). Runs on the connection's
 * IO thread, inside the handshake: it must not block or wait (no tlsq call
 * with a timeout, no tlsq_*_free of this connection); it may call
 * tlsq_conn_peer_cert(c, ...) for the rest of the chain and
 * tlsq_conn_user(c). It runs once per full handshake that presented a
 * certificate. A resumed session presents none and does not call it; a
 * client resumes only sessions that passed it, and a server with a hook
 * never resumes (as with pins).
 */
typedef int (*tlsq_verify_hook)(tlsq_conn *c, const tlsq_peer_view *peer, void *arg, char *reason,
                                size_t cap);

/*
 * Several certificates chosen by SNI (tlsq_tls_config.sni_certs): one
 * entry per extra certificate a server serves. `names` is a comma-separated
 * list of host names, each exact ("a.example.com") or a wildcard for one
 * label ("*.example.com" matches "x.example.com", not "example.com" nor
 * "x.y.example.com"); compared without case. The first entry with a name
 * that matches the client's SNI serves; a client that sends no SNI, or a
 * name that matches no entry, gets the profile's own certificate
 * (cert_file/cert_pem/self_signed). Each key must be of the same type and
 * size as the profile's own key (e.g. all ECDSA P-256): wolfSSL picks the
 * signature algorithm before the certificate is chosen. The choice is made
 * on the connection's IO thread during the handshake; the entries are part
 * of the profile's credential set (tlsq_tls_reload replaces them with the
 * rest), and the status endpoint lists each with its names.
 */
typedef struct tlsq_sni_cert {
	const char *names;        /* "a.example.com,*.a.example.com" */
	const char *cert_file;    /* PEM certificate (chain) file */
	const char *key_file;     /* its private key: PEM or DER, encrypted too */
	const char *key_password; /* NULL = the key is not encrypted */
} tlsq_sni_cert;

typedef struct tlsq_tls_config {
	tlsq_role role;
	tlsq_mode mode;               /* default TLSQ_MODE_STREAM */
	const char *cert_file;        /* PEM certificate (chain) file */
	const char *key_file;         /* private key file: PEM, or DER (detected: a
	                                 file without a PEM header); encrypted
	                                 (PKCS#8 "ENCRYPTED PRIVATE KEY", or
	                                 traditional "Proc-Type: 4,ENCRYPTED")
	                                 with key_password */
	const char *cert_pem;         /* or: the PEM certificate in memory */
	const char *key_pem;          /* or: the PEM key in memory (encrypted too) */
	const char *key_password;     /* password of an encrypted key_file/key_pem;
	                                 used by tlsq_tls_new (and tlsq_tls_reload)
	                                 only, never kept. NULL = the key is not
	                                 encrypted */
	int self_signed;              /* 1: generate an in-memory self-signed ECDSA
	                                 P-256 certificate for "localhost",
	                                 127.0.0.1 and ::1 (demos and tests) */
	const char *ca_file;          /* PEM file of trusted CAs */
	const char *ca_dir;           /* directory of trusted CAs (hashed names) */
	const char *ca_pem;           /* trusted CAs in memory (PEM) */
	tlsq_verify verify;           /* default TLSQ_VERIFY_DEFAULT */
	const char *server_name;      /* clients: SNI and the name the certificate
	                                 must match; NULL = the host of the address.
	                                 An IPv4 or IPv6 literal ("127.0.0.1",
	                                 "::1") is matched against the certificate's
	                                 IP address SANs only, byte for byte (never
	                                 DNS names or the CN), and sends no SNI */
	const char *alpn;             /* comma-separated protocols, "h2,http/1.1" */
	int min_version;              /* TLSQ_TLS1_2 (default) or TLSQ_TLS1_3 */
	int max_version;              /* TLSQ_TLS1_3 (default) or TLSQ_TLS1_2 */
	const char *ciphers;          /* wolfSSL/OpenSSL-style list; NULL = AEAD only:
	                                 TLS 1.3 AES-GCM and ChaCha20, TLS 1.2
	                                 ECDHE with AES-GCM or ChaCha20 */
	int session_resumption;       /* 1 (default): servers issue TLS 1.3 tickets,
	                                 clients reuse the last ticket per profile */
	const char *pins;             /* certificate pinning: comma-separated, each
	                                 "sha256//BASE64" (the SHA-256 of the peer's
	                                 SubjectPublicKeyInfo, as curl's
	                                 --pinnedpubkey) or 64 hex digits, colons
	                                 allowed (the SHA-256 of the peer's
	                                 certificate, as openssl x509 -fingerprint
	                                 -sha256). The peer's leaf must match one,
	                                 checked when the handshake completes, before
	                                 any application byte moves; a mismatch fails
	                                 the connection with TLSQ_ECERT. Clients: in
	                                 addition to verification, or instead of it
	                                 with TLSQ_VERIFY_NONE (trust a self-signed
	                                 peer by its key). Servers: a client
	                                 certificate is required; with
	                                 TLSQ_VERIFY_NONE it is trusted on the pin
	                                 alone, else its chain is verified too; a
	                                 pinned server never resumes sessions. NULL =
	                                 no pinning (default) */
	tlsq_verify_hook verify_hook; /* NULL (default), or the application's
	                              check of the peer's certificate (see
	                              tlsq_verify_hook): clients, in addition to
	                              verification or, with TLSQ_VERIFY_NONE,
	                              instead of it; servers: a client
	                              certificate is then required, and with
	                              TLSQ_VERIFY_NONE the hook alone decides */
	void *verify_hook_arg;        /* passed to verify_hook */
	/* servers: extra certificates chosen by the client's SNI (see
	 * tlsq_sni_cert), n_sni_certs of them; read and copied by tlsq_tls_new
	 * and tlsq_tls_reload (which reloads them all with the rest, in one
	 * atomic swap). NULL (default) = one certificate for every name. */
	const tlsq_sni_cert *sni_certs;
	int n_sni_certs;
} tlsq_tls_config;

typedef struct tlsq_tls tlsq_tls;

/* Fills `cfg` with defaults for `role`. */
TLSQ_API void tlsq_tls_config_init(tlsq_tls_config *cfg, tlsq_role role);

/*
 * Builds a TLS profile (loads certificates and keys). A server needs a
 * certificate and key (or self_signed). A client that verifies needs a CA.
 * Returns TLSQ_OK, TLSQ_EINVAL with the reason in tlsq_last_error(), or
 * TLSQ_ENOMEM. The reasons name the file and the cause: a file that cannot
 * be read (with the system's reason: "No such file or directory"), an
 * encrypted private key without key_password ("the private key F is
 * encrypted: give its password"), a wrong key_password ("cannot decrypt the
 * private key F: wrong password?"), a certificate that is not PEM (DER), a
 * key that is neither PEM nor DER, a file
 * holding the other kind of PEM block (certificate and key swapped), a
 * private key that does not belong to the certificate, a CA file that holds
 * no certificate, contradictory settings. The profile may be shared by any
 * number of listeners and connections, on any engine; it is
 * reference-counted and goes when the last user does.
 */
TLSQ_API int tlsq_tls_new(const tlsq_tls_config *cfg, tlsq_tls **out);
TLSQ_API void tlsq_tls_free(tlsq_tls *tls);

/*
 * Certificate rotation without a restart: gives a running profile a new
 * certificate, key, SNI certificates (sni_certs: all of them, replaced as
 * a whole), CA set, verification mode, pins and cipher list, read
 * from cfg the way tlsq_tls_new reads them (so passing the same cfg again
 * re-reads the same files, e.g. after an ACME client renewed them). role,
 * mode, versions, server_name, alpn and session_resumption stay as the
 * profile was built; cfg->role must equal the profile's.
 *
 * Atomic: the new set is built completely on the calling thread first
 * (files read, key checked against the certificate), then swapped in.
 * Handshakes that start afterwards use the new set; connections and
 * handshakes already under way keep the set they started with until they
 * end; no handshake ever sees a mix. A client profile also forgets its
 * saved session ticket, so its next handshake is verified under the new
 * CAs and pins.
 *
 * Returns TLSQ_OK; or TLSQ_EINVAL (a file that cannot be read or parsed, a
 * key that does not match the certificate, a role that differs: the same
 * reasons as tlsq_tls_new, one line in tlsq_last_error()) or TLSQ_ENOMEM,
 * and then the profile is unchanged and keeps serving with its previous
 * set. Reloads are counted in the status endpoint ("cert_reloads",
 * tlsq_cert_reloads_total). Any application thread, concurrently with
 * connections using the profile; concurrent reloads of one profile are
 * safe and the last swap wins. Never call it from a tlsq callback.
 */
TLSQ_API int tlsq_tls_reload(tlsq_tls *tls, const tlsq_tls_config *cfg);

/*
 * Copies the profile's own certificate, in PEM, into buf (NUL-terminated).
 * Returns its length, TLSQ_EMSGSIZE if cap is too small, TLSQ_EINVAL if the
 * profile has no certificate. Lets a client trust a self-signed server:
 * pass the PEM as the client's ca_pem. After tlsq_tls_reload, the new
 * certificate. Any thread.
 */
TLSQ_API ssize_t tlsq_tls_cert_pem(const tlsq_tls *tls, char *buf, size_t cap);

/*
 * Trouble with the profile's own certificate that does not stop it from
 * being built but will make peers refuse the handshake: the certificate has
 * expired or is not valid yet, or (servers) it is a CA certificate
 * (basicConstraints CA:TRUE). Returns NULL when there is none, else one or
 * more lines separated by '\n' (no trailing newline), each naming the file;
 * the string lives as long as the profile, or until its next successful
 * tlsq_tls_reload (it then describes the new certificate: call again). Not
 * checked for self_signed. Any thread.
 */
TLSQ_API const char *tlsq_tls_warnings(const tlsq_tls *tls);

/* ------------------------------------------------------------------------ */
/* Listening, connecting                                                     */
/* ------------------------------------------------------------------------ */

typedef struct tlsq_listener tlsq_listener;

/*
 * Listens on "HOST:PORT", "[v6]:PORT" or ":PORT" (all addresses). Port 0
 * picks a free port (see tlsq_listener_port). Connections are accepted and
 * handshaken by the IO threads and wait for tlsq_accept. `tls` must be a
 * server profile. Returns TLSQ_OK, TLSQ_EADDR, TLSQ_EINVAL.
 */
TLSQ_API int tlsq_listen(tlsq_engine *e, const char *addr, tlsq_tls *tls, tlsq_listener **out);

/* The bound TCP port. */
TLSQ_API int tlsq_listener_port(const tlsq_listener *l);

/*
 * Takes the next connection whose handshake completed. Returns TLSQ_OK,
 * TLSQ_EAGAIN, TLSQ_ETIMEDOUT or TLSQ_ECLOSED (listener closed). Connections
 * whose handshake failed never appear here; read them with
 * tlsq_listener_failures (below).
 */
TLSQ_API int tlsq_accept(tlsq_listener *l, tlsq_conn **out, int timeout_ms);

/*
 * Failed handshakes. A connection that never reaches tlsq_accept (its
 * handshake failed or timed out, the peer spoke no TLS, or it was dropped
 * because the accept queue was full) is recorded on its listener: counts by
 * reason since the listener started, and the most recent
 * TLSQ_FAILURES_KEPT failures in full. The engine keeps the same for all
 * its listeners together, for the status endpoint ("failures" in /status,
 * tlsq_accept_failures_total in /metrics). Connections ended by
 * tlsq_engine_free are not failures.
 */
typedef enum tlsq_fail_reason {
	TLSQ_FAIL_OTHER = 0,          /* anything else (out of memory, socket error) */
	TLSQ_FAIL_TIMEOUT = 1,        /* handshake deadline passed: peer silent or too slow */
	TLSQ_FAIL_NOT_TLS = 2,        /* the peer does not speak TLS (HTTP, random bytes) */
	TLSQ_FAIL_VERSION = 3,        /* no TLS version in common (an old client) */
	TLSQ_FAIL_CIPHER = 4,         /* no cipher suite or group in common */
	TLSQ_FAIL_NO_CLIENT_CERT = 5, /* certificate required, client sent none */
	TLSQ_FAIL_CLIENT_CERT = 6,    /* client certificate did not verify */
	TLSQ_FAIL_PEER_ALERT = 7,     /* the client gave up with an alert, e.g. it
	                                 does not trust our certificate */
	TLSQ_FAIL_PEER_CLOSED = 8,    /* the client closed or reset TCP mid-handshake */
	TLSQ_FAIL_PROTOCOL = 9,       /* any other TLS protocol error */
	TLSQ_FAIL_ACCEPT_QUEUE = 10,  /* handshaken, but the accept queue was full
	                                 or the listener closed */
} tlsq_fail_reason;
#define TLSQ_FAIL_REASONS 11 /* number of reasons: size of a counts array */

/* How far the connection got. */
typedef enum tlsq_fail_phase {
	TLSQ_PHASE_CONNECTED = 0, /* TCP accepted, the peer sent nothing yet */
	TLSQ_PHASE_HANDSHAKE = 1, /* the peer sent data, the handshake did not complete */
	TLSQ_PHASE_ACCEPT = 2,    /* handshaken, not handed to tlsq_accept */
} tlsq_fail_phase;

#define TLSQ_FAILURES_KEPT 32

struct tlsq_accept_failure {
	uint64_t seq;         /* 1, 2, ... per listener (per engine in the
	                         engine's list); a gap means failures that
	                         were overwritten before being read */
	uint64_t unix_ms;     /* when it failed, Unix time in milliseconds */
	uint64_t duration_ms; /* from TCP accept to the failure */
	tlsq_fail_reason reason;
	tlsq_fail_phase phase;
	int error;        /* the tlsq_err the connection failed with */
	int port;         /* the listener's port */
	char peer[64];    /* "1.2.3.4:5678" */
	char detail[256]; /* one line: "peer sent no certificate but one is required" */
};

/* A short stable name for a reason ("no_client_cert") or a phase
 * ("handshake"), used by the programs and the status endpoint. Never NULL. */
TLSQ_API const char *tlsq_fail_reason_name(int reason);
TLSQ_API const char *tlsq_fail_phase_name(int phase);

/*
 * Copies up to `cap` of the listener's most recent failures into `out`,
 * newest first, and returns how many (at most TLSQ_FAILURES_KEPT), or
 * TLSQ_EINVAL. Never blocks, and never makes an IO thread wait: the IO
 * tasks write each entry under its own sequence number, and a reader that
 * races a writer skips that entry rather than see it torn. `counts`, if not
 * NULL, receives TLSQ_FAIL_REASONS counters (failures by reason since the
 * listener was created; they are exact even when entries were overwritten).
 * Any thread, any time until tlsq_listener_free, also after
 * tlsq_listener_close.
 */
TLSQ_API ssize_t tlsq_listener_failures(tlsq_listener *l, struct tlsq_accept_failure *out,
                                        size_t cap, uint64_t *counts);

/*
 * Waits for a failure newer than `after` (a seq; 0 for the first) and copies
 * the oldest such one still kept into *out: pass out->seq back as `after` to
 * follow the failures one by one (a program's log line). Returns TLSQ_OK,
 * TLSQ_EAGAIN, TLSQ_ETIMEDOUT, or TLSQ_ECLOSED once the listener is closed
 * and nothing newer is kept. Any thread; several may wait at once.
 */
TLSQ_API int tlsq_listener_next_failure(tlsq_listener *l, uint64_t after,
                                        struct tlsq_accept_failure *out, int timeout_ms);

/* Stops accepting; blocked tlsq_accept calls return TLSQ_ECLOSED. Idempotent. */
TLSQ_API void tlsq_listener_close(tlsq_listener *l);
/* Closes and releases the listener. Connections already accepted live on. */
TLSQ_API void tlsq_listener_free(tlsq_listener *l);

/*
 * Connects to "HOST:PORT" and completes the TLS handshake. `tls` must be a
 * client profile. Waits up to timeout_ms for the whole (-1: the engine's
 * connect + handshake deadlines). Returns TLSQ_OK, TLSQ_EADDR (name did not
 * resolve), TLSQ_ECONNREFUSED, TLSQ_ETIMEDOUT, TLSQ_ECERT (with a reason such
 * as "certificate verify failed: hostname mismatch, wanted example.org"),
 * TLSQ_ETLS. On failure *out is NULL and tlsq_last_error() has the reason.
 * Once the handshake has completed the result is TLSQ_OK, even if the peer
 * has already sent data and closed (or reset) by the time this returns: the
 * data, then the end or the error, come from tlsq_recv.
 */
TLSQ_API int tlsq_connect(tlsq_engine *e, const char *addr, tlsq_tls *tls, tlsq_conn **out,
                          int timeout_ms);

/*
 * Non-blocking form: resolves the name (this may block on DNS), starts the
 * connection and returns at once with a handle. Finish with
 * tlsq_connect_wait, or just start sending: data queued before the
 * handshake completes goes out after it.
 */
TLSQ_API int tlsq_connect_start(tlsq_engine *e, const char *addr, tlsq_tls *tls, tlsq_conn **out);
/* Waits until the handshake of `c` completed (TLSQ_OK, also if the
 * connection has ended since) or failed (its error). */
TLSQ_API int tlsq_connect_wait(tlsq_conn *c, int timeout_ms);

/*
 * Adopts a socket that is already connected: a Unix domain socket (one end
 * of socketpair(), a connect() or accept() of the application's), a socket
 * from socket activation, a TCP connection accepted elsewhere. `fd` must be
 * a connected SOCK_STREAM socket. The TLS handshake runs in the role of
 * `tls`: a server profile answers a client on the other end, a client
 * profile starts the handshake and needs the server's name, `host` (or the
 * profile's server_name), for SNI and to verify the certificate (with pins
 * and TLSQ_VERIFY_NONE any name will do). Returns at once, like
 * tlsq_connect_start: finish with tlsq_connect_wait (both roles), or start
 * sending. The connection never appears in tlsq_accept.
 *
 * On TLSQ_OK the fd belongs to tlsq: it is made non-blocking and
 * close-on-exec, and closed by tlsq when the connection ends; do not read,
 * write or close it afterwards. On an error the fd is untouched (except,
 * for TLSQ_EIO, its O_NONBLOCK flag) and still the caller's. Returns
 * TLSQ_OK; TLSQ_EINVAL (NULL argument, not a connected stream socket, a
 * client without a name: the reason in tlsq_last_error); TLSQ_EIO;
 * TLSQ_ENOMEM. The peer address in tlsq_conn_info is "unix:PATH" (or
 * "unix:(unnamed)") for a Unix socket. Any application thread.
 */
TLSQ_API int tlsq_adopt(tlsq_engine *e, tlsq_tls *tls, int fd, const char *host, tlsq_conn **out);

/* ------------------------------------------------------------------------ */
/* Stream mode                                                               */
/* ------------------------------------------------------------------------ */

/*
 * Queues `len` bytes for sending. All or nothing: returns `len` once every
 * byte is queued, or a negative error with nothing queued. The bytes of one
 * call are never interleaved with another call's (G1). A send larger than
 * tx_budget waits until the queue is empty and is then admitted whole, so
 * the queue holds at most max(tx_budget, the largest single send).
 * Returns len, TLSQ_EAGAIN, TLSQ_ETIMEDOUT, TLSQ_ECLOSED (closed, or after
 * tlsq_shutdown_send), or the connection's sticky error.
 */
TLSQ_API ssize_t tlsq_send(tlsq_conn *c, const void *buf, size_t len, int timeout_ms);

/*
 * Gather send: queues the `iovcnt` pieces of `iov`, in order, as ONE send
 * (atomic like tlsq_send: all or nothing, never interleaved with another
 * call's bytes), without the caller concatenating them first. Empty pieces
 * are allowed; iov may be NULL when iovcnt is 0. Returns the total length,
 * TLSQ_EINVAL (iovcnt < 0, a NULL base with a length, a total above
 * SSIZE_MAX), or the errors of tlsq_send. Any thread.
 */
TLSQ_API ssize_t tlsq_sendv(tlsq_conn *c, const struct iovec *iov, int iovcnt, int timeout_ms);

/*
 * Receives up to `cap` bytes. Returns the count (> 0), 0 once the peer's
 * close_notify was received and everything before it was read, or a negative
 * error: TLSQ_EAGAIN, TLSQ_ETIMEDOUT, TLSQ_ECLOSED (closed locally),
 * TLSQ_ETRUNCATED (TCP FIN without close_notify), TLSQ_ECONNRESET, or the
 * sticky error. Data received before an error is always delivered first.
 * With several threads receiving on one stream, each call gets a contiguous
 * piece of the stream; pieces are not handed out in stream order across
 * threads (use message mode to share work among threads).
 */
TLSQ_API ssize_t tlsq_recv(tlsq_conn *c, void *buf, size_t cap, int timeout_ms);

/*
 * Zero-copy stream receive: a lend and a release instead of a copy.
 *
 * tlsq_recv_lend lends the caller the next received chunk as it came from
 * the IO task (a record or a few, up to about 16 KiB; or the unconsumed
 * rest of one): *data points at its bytes, the return value is their count
 * (> 0), and *chunk is the handle that gives it back. The bytes are
 * read-only and stay valid and unchanged until the release. Returns what
 * tlsq_recv returns: the count, 0 at the clean end (close_notify, all read),
 * or the same errors, with *chunk and *data NULL whenever nothing was lent.
 * TLSQ_EINVAL: NULL arguments, or a message-mode connection.
 *
 * tlsq_recv_release(chunk, consumed) gives the chunk back after the caller
 * used its first `consumed` bytes (0 .. the length lent). The rest, if
 * any, goes back to the front of the receive queue: the next tlsq_recv or
 * tlsq_recv_lend on the connection starts there. For one receiving thread
 * the stream stays in order as long as only the rest of the LAST chunk it
 * lent goes back (rests put back go out last-in first-out; a thread that
 * holds several chunks releases all but the last one whole). Returns
 * TLSQ_OK, or TLSQ_EINVAL for a NULL chunk or consumed above the length
 * (the chunk then stays lent).
 * Releasing a chunk twice, or using its bytes after the release, is
 * undefined, as with free(3) (a second release is refused with TLSQ_EINVAL
 * on a best-effort basis only).
 *
 * Threads: any number of threads may lend at once; each gets a different
 * chunk, exactly as each concurrent tlsq_recv gets a different piece:
 * chunks are not handed out in stream order across threads, and a rest put
 * back by one thread may go to another. One thread may hold several chunks.
 * A chunk may be released by any thread, not only the one that lent it, and
 * tlsq_recv_lend, tlsq_recv_release and tlsq_recv mix freely.
 *
 * Budget: a lent chunk still counts against rx_budget (and in
 * tlsq_conn_info's rx_queued) until it is released: the IO task stops
 * reading from the socket while the queue plus what is lent fill the
 * budget. So release what you are done with before waiting for more: a
 * caller that keeps rx_budget bytes lent and lends again waits for data
 * that cannot come (it gets TLSQ_ETIMEDOUT, or waits forever with -1).
 *
 * Pollfd: tlsq_conn_pollfd is readable while something is left to lend or
 * receive; lending the last queued chunk makes it unreadable, and a
 * release that puts a rest back makes it readable again.
 *
 * Lifetime: a chunk lives on its own until released, whatever happens to
 * its connection. tlsq_close, tlsq_abort, a failure, tlsq_conn_free and
 * tlsq_engine_free leave lent bytes valid, and tlsq_recv_release stays
 * safe after all of them, including after tlsq_conn_free and
 * tlsq_engine_free have returned: the chunk keeps the memory it needs (the
 * connection's, freed at the last release). Every lent chunk must be
 * released once, or its memory and the connection's leak. After a close,
 * abort or free a rest given back is discarded, as unread data is.
 */
typedef struct tlsq_chunk tlsq_chunk;
TLSQ_API ssize_t tlsq_recv_lend(tlsq_conn *c, tlsq_chunk **chunk, const void **data,
                                int timeout_ms);
TLSQ_API int tlsq_recv_release(tlsq_chunk *chunk, size_t consumed);

/* ------------------------------------------------------------------------ */
/* Message mode                                                              */
/* ------------------------------------------------------------------------ */

/*
 * Sends one message of `len` bytes (0 allowed, at most max_message). Returns
 * TLSQ_OK, TLSQ_EMSGSIZE, or the errors of tlsq_send.
 */
TLSQ_API int tlsq_send_msg(tlsq_conn *c, const void *buf, size_t len, int timeout_ms);

/*
 * Sends ONE message made of the `iovcnt` pieces of `iov` in order (a header
 * and a body, say): the peer receives a single message of the total length.
 * Returns TLSQ_OK, TLSQ_EMSGSIZE (total above max_message), TLSQ_EINVAL (as
 * for tlsq_sendv), or the errors of tlsq_send_msg. Any thread.
 */
TLSQ_API int tlsq_send_msgv(tlsq_conn *c, const struct iovec *iov, int iovcnt, int timeout_ms);

/*
 * Receives one whole message into buf. Returns its length, 0-length messages
 * included (so 0 means an empty message, not the end: the end is
 * TLSQ_ECLOSED after the peer's close_notify), TLSQ_EMSGSIZE if the message is
 * larger than cap (the message stays queued for the next call; use
 * tlsq_msg_recv for unknown sizes), or the errors of tlsq_recv. Only complete
 * messages are ever delivered: a message cut by the end of the connection is
 * dropped and reported by the error that follows.
 */
TLSQ_API ssize_t tlsq_recv_msg(tlsq_conn *c, void *buf, size_t cap, int timeout_ms);

/*
 * Zero-copy messages. tlsq_msg_alloc returns a buffer of `len` bytes to fill
 * (NULL if out of memory or len > 2^32-5). tlsq_msg_send hands it to the
 * connection: on TLSQ_OK tlsq owns it; on failure the caller still owns it
 * (unchanged: send it again, or release it with tlsq_msg_free).
 * tlsq_msg_recv gives the next message's buffer to the caller, who releases
 * it with tlsq_msg_free. tlsq_msg_len gives a buffer's length.
 *
 * tlsq_msg_send on a message connection sends one message (at most
 * max_message: TLSQ_EMSGSIZE). Returns TLSQ_OK, TLSQ_EMSGSIZE, TLSQ_EINVAL
 * (NULL arguments), or the errors of tlsq_send.
 *
 * tlsq_msg_send on a STREAM connection is a zero-copy tlsq_send: the
 * buffer's tlsq_msg_len bytes are queued as stream data (no header), as
 * ONE send, with every rule of tlsq_send: all or nothing, never interleaved
 * with another call's bytes (G1), the same tx_budget (a buffer larger than
 * tx_budget waits for an empty queue and is then admitted whole; max_message
 * does not apply), the same timeouts and the same errors (TLSQ_EAGAIN,
 * TLSQ_ETIMEDOUT, TLSQ_ECLOSED when closed, aborted, freed or after
 * tlsq_shutdown_send, even while blocked, or the connection's sticky
 * error). A 0-byte buffer returns TLSQ_OK and queues nothing (tlsq takes the
 * buffer), as tlsq_send of 0 bytes returns 0. The saving is the copy
 * tlsq_send makes into a buffer of its own: it pays when the application
 * writes its bytes into the buffer in the first place (docs/benchmarks.md,
 * "Zero-copy calls"). tlsq_msg_recv is message mode only: a stream receives
 * without a copy with tlsq_recv_lend.
 */
TLSQ_API void *tlsq_msg_alloc(size_t len);
TLSQ_API int tlsq_msg_send(tlsq_conn *c, void *msg, int timeout_ms);
TLSQ_API ssize_t tlsq_msg_recv(tlsq_conn *c, void **msg, int timeout_ms);
TLSQ_API size_t tlsq_msg_len(const void *msg);
TLSQ_API void tlsq_msg_free(void *msg);

/* ------------------------------------------------------------------------ */
/* Flow, closing                                                             */
/* ------------------------------------------------------------------------ */

/*
 * Waits until everything queued before the call has been encrypted and
 * written to the kernel. Returns TLSQ_OK, TLSQ_ETIMEDOUT, TLSQ_EAGAIN, or the
 * connection's error.
 */
TLSQ_API int tlsq_flush(tlsq_conn *c, int timeout_ms);

/*
 * Half-close: close_notify goes out after the data already queued; later
 * sends return TLSQ_ECLOSED; receiving goes on until the peer closes.
 * Idempotent; does not block.
 */
TLSQ_API int tlsq_shutdown_send(tlsq_conn *c);

typedef enum tlsq_close_phase {
	TLSQ_CLOSE_NONE = 0,          /* not closing */
	TLSQ_CLOSE_FLUSHING = 1,      /* sending what was queued */
	TLSQ_CLOSE_NOTIFY_SENT = 2,   /* our close_notify is in the kernel */
	TLSQ_CLOSE_PEER_NOTIFIED = 3, /* the peer's close_notify was received */
	TLSQ_CLOSE_DONE = 4,          /* both close_notify exchanged; socket closed */
	TLSQ_CLOSE_ABORTED = 5,       /* ended by abort, error or deadline */
} tlsq_close_phase;

/*
 * Graceful close: sends what was queued, then close_notify, then waits for
 * the peer's close_notify (discarding data that arrives meanwhile), all
 * within timeout_ms; when the time runs out the connection is aborted.
 * Blocked senders and receivers return TLSQ_ECLOSED at once. Returns TLSQ_OK
 * when the close completed both ways; otherwise the error (TLSQ_ETIMEDOUT,
 * TLSQ_ETRUNCATED, ...), with the phase reached in *phase if not NULL.
 * Idempotent: a second call waits for the same close and reports it.
 */
TLSQ_API int tlsq_close(tlsq_conn *c, int timeout_ms, tlsq_close_phase *phase);

/* Immediate close: queued data is discarded and the TCP connection is reset
 * (RST). Bytes already flushed into the kernel but not yet sent may be
 * discarded by the reset too: call tlsq_close when the peer must get them. */
TLSQ_API void tlsq_abort(tlsq_conn *c);

/*
 * Releases the handle. A connection still open is closed gracefully in the
 * background (bounded by close_linger_ms). NULL is ignored.
 */
TLSQ_API void tlsq_conn_free(tlsq_conn *c);

/*
 * TLS 1.3: asks the IO task to send a KeyUpdate: our sending keys change at
 * once. It asks the peer to update too (update_requested), except while an
 * earlier request of ours is still unanswered: wolfSSL 5.5.4 then sends
 * update_not_requested (the peer's answer to the first request moves its
 * keys anyway). Does not block. TLSQ_EINVAL on TLS 1.2.
 */
TLSQ_API int tlsq_key_update(tlsq_conn *c);

/* ------------------------------------------------------------------------ */
/* Event-loop integration                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A file descriptor that is readable (POLLIN) while received data (or a
 * message) is waiting or the connection has ended, for poll/epoll/libevent.
 * Level-triggered: it stays readable until the data is taken. Owned by the
 * connection; do not close or read it. Returns the fd or a negative error.
 */
TLSQ_API int tlsq_conn_pollfd(tlsq_conn *c);

/*
 * The writable signal: a second descriptor, readable (POLLIN; watch it for
 * READING, like tlsq_conn_pollfd) while a send of `room` bytes would be
 * queued without waiting, or the sending side has ended (closed, failed,
 * after tlsq_shutdown_send: the send then returns its error at once).
 * `room` 0 means half of tx_budget; a value above tx_budget means "the
 * transmit queue is empty" (a send that large is admitted only then).
 *
 * Use it like POLLOUT on a socket: after a send with timeout 0 returned
 * TLSQ_EAGAIN, watch this fd and send again when it is readable; stop
 * watching it while you have nothing to send (it stays readable while
 * there is room). Level-triggered: the IO task makes it readable when it
 * takes bytes out of the queue and there is room again; a send that leaves
 * less room, or one that returns TLSQ_EAGAIN, makes it unreadable. After a
 * TLSQ_EAGAIN it is readable again only once that send would fit (a
 * refused send larger than `room` raises `room` to its own size). A
 * readiness may be stale by one event (another thread sent meanwhile): the
 * send then returns TLSQ_EAGAIN again; never a busy loop.
 *
 * Each call sets `room` and returns the same fd. Owned by the connection:
 * do not read, write or close it. Returns the fd, TLSQ_EINVAL or TLSQ_EIO.
 * Any thread; no thread but the IO task ever touches the socket or TLS.
 */
TLSQ_API int tlsq_conn_send_pollfd(tlsq_conn *c, size_t room);

/*
 * Per-connection user data: a pointer the application attaches to the
 * connection (its session, a dispatch-table entry) and gets back from the
 * handle, e.g. in an event-loop callback that was given only the
 * connection. tlsq never looks at it or frees it. Set is a release store
 * and get an acquire load: what the setter wrote before setting is visible
 * to a thread that gets the pointer. NULL until set. Any thread, until
 * tlsq_conn_free. tlsq_conn_set_user returns TLSQ_OK or TLSQ_EINVAL
 * (NULL connection); tlsq_conn_user returns NULL for a NULL connection.
 */
TLSQ_API int tlsq_conn_set_user(tlsq_conn *c, void *user);
TLSQ_API void *tlsq_conn_user(const tlsq_conn *c);

/* ------------------------------------------------------------------------ */
/* Information                                                               */
/* ------------------------------------------------------------------------ */

typedef enum tlsq_state {
	TLSQ_STATE_CONNECTING = 0,
	TLSQ_STATE_HANDSHAKING = 1,
	TLSQ_STATE_OPEN = 2,
	TLSQ_STATE_SEND_CLOSED = 3, /* our close_notify sent; still receiving */
	TLSQ_STATE_RECV_CLOSED = 4, /* peer's close_notify received; still sending */
	TLSQ_STATE_CLOSING = 5,     /* both directions finishing */
	TLSQ_STATE_CLOSED = 6,
	TLSQ_STATE_FAILED = 7,
} tlsq_state;

/* A short name for a state ("open"). */
TLSQ_API const char *tlsq_state_name(int state);

/* struct, not typedef: the name tlsq_conn_info is the function below. */
struct tlsq_conn_info {
	uint64_t id; /* unique within the process */
	tlsq_role role;
	tlsq_mode mode;
	tlsq_state state;
	tlsq_close_phase close_phase;
	char peer[64];             /* "1.2.3.4:5678" */
	char version[16];          /* "TLSv1.3" once handshaken, else "" */
	char cipher[64];           /* IANA name, "TLS_AES_128_GCM_SHA256" */
	char group[32];            /* key exchange group, "X25519" */
	char alpn[64];             /* negotiated ALPN protocol or "" */
	char sni[256];             /* server name (sent by a client, received by a server) */
	char peer_subject[256];    /* "/CN=localhost", or "" without a peer certificate */
	char peer_sha256[65];      /* SHA-256 of the peer's certificate (DER), lowercase
	                              hex, or "" (no certificate, or a resumed session) */
	char peer_spki_sha256[45]; /* SHA-256 of its public key (SubjectPublicKeyInfo),
	                              base64: pin it as "sha256//" followed by this */
	char peer_sans[256];       /* its subjectAltNames, "DNS:a.example, IP:10.0.0.1" */
	int resumed;               /* 1 if the session was resumed */
	uint64_t bytes_sent;       /* plaintext bytes handed to TLS */
	uint64_t bytes_received;   /* plaintext bytes decrypted */
	uint64_t msgs_sent, msgs_received;
	uint64_t tls_bytes_sent; /* ciphertext bytes written to the socket */
	uint64_t tls_bytes_received;
	uint64_t records_sent, records_received;
	uint64_t tx_queued; /* bytes waiting in the transmit queue */
	uint64_t rx_queued; /* bytes waiting for recv (lent chunks included until released) */
	uint32_t blocked_senders, blocked_receivers;
	uint32_t key_updates_sent;
	uint32_t key_updates_received;
	int send_parked;        /* 1 while the socket does not take our data */
	int recv_parked;        /* 1 while reading stopped because the application
	                           has not drained the receive queue */
	uint64_t parked_ms;     /* how long the longest current park has lasted */
	uint64_t age_ms;        /* since the connection was created (accepted or connect started) */
	int error;              /* sticky error code or TLSQ_OK */
	char error_reason[256]; /* one-line reason, "" if none */
};

/* Fills `info` with a consistent snapshot published by the IO task. */
TLSQ_API int tlsq_conn_info(tlsq_conn *c, struct tlsq_conn_info *info);

/*
 * The peer's certificates, as the IO task copied them when the handshake
 * completed (application threads never ask wolfSSL): index 0 is the peer's
 * own (leaf) certificate; 1, 2, ... the rest of the chain it sent, when the
 * certificate was verified (up to 8 in all). `pem` 1 gives PEM text
 * (NUL-terminated), 0 DER bytes. Returns the length (without the NUL); with
 * buf NULL and cap 0, the length it would copy (PEM needs one byte more for
 * the NUL); TLSQ_EMSGSIZE if cap is too small; TLSQ_EINVAL when there is
 * no such certificate (before the handshake, a peer without a certificate,
 * a resumed session, index past the chain). Any thread, until
 * tlsq_conn_free.
 */
TLSQ_API ssize_t tlsq_conn_peer_cert(tlsq_conn *c, int index, int pem, void *buf, size_t cap);

/*
 * The connection's sticky error as one line ("certificate verify failed:
 * hostname mismatch, wanted example.org"), or "" if none. The string lives
 * as long as the connection handle.
 */
TLSQ_API const char *tlsq_conn_error(tlsq_conn *c);

#ifdef __cplusplus
}
#endif

#endif /* TLSQ_H */
