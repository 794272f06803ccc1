/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common.h - what the tlsq programs share: option parsing (engine tuning,
 * TLS profile), one-line errors, version output, plain TCP sockets for the
 * proxy, and a monotonic clock.
 *
 * Each program lists its own long options followed by TOOL_ENGINE_OPTIONS,
 * TOOL_TLS_OPTIONS (if it speaks TLS with user-supplied certificates) and
 * TOOL_STD_OPTIONS, and hands every option it does not know itself to
 * tool_common_option(). Errors go to stderr as one line "prog: reason" and
 * the process exits with 1 (tool_die).
 */
#ifndef TLSQ_TOOLS_COMMON_H
#define TLSQ_TOOLS_COMMON_H

#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tlsq.h"

/* Long-option codes of the shared options; program options use letters. */
enum {
	OPT_IO_THREADS = 1000,
	OPT_TX_BUDGET,
	OPT_RX_BUDGET,
	OPT_CIPHER_BUFFER,
	OPT_HANDSHAKE_TIMEOUT,
	OPT_IDLE_TIMEOUT,
	OPT_STATUS,
	OPT_MAX_MESSAGE,
	OPT_STATUS_TOKEN,
	OPT_CERT,
	OPT_KEY,
	OPT_SELF_SIGNED,
	OPT_CA,
	OPT_INSECURE,
	OPT_SERVERNAME,
	OPT_ALPN,
	OPT_TLS12,
	OPT_TLS13,
	OPT_REQUIRE_CLIENT_CERT,
	OPT_KEY_UPDATE_BYTES,
	OPT_KEEPALIVE,
	OPT_MAX_KEY_UPDATES,
	OPT_PIN,
	OPT_KEY_PASSWORD_FILE,
	OPT_SNI_CERT,
	OPT_PROGRAM_BASE = 2000, /* programs number their own long-only options from here */
};

#define TOOL_ENGINE_OPTIONS                                                                        \
	{"io-threads", required_argument, NULL, OPT_IO_THREADS},                                   \
	    {"tx-budget", required_argument, NULL, OPT_TX_BUDGET},                                 \
	    {"rx-budget", required_argument, NULL, OPT_RX_BUDGET},                                 \
	    {"cipher-buffer", required_argument, NULL, OPT_CIPHER_BUFFER},                         \
	    {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},                 \
	    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},                           \
	    {"keepalive", required_argument, NULL, OPT_KEEPALIVE},                                 \
	    {"status", required_argument, NULL, OPT_STATUS},                                       \
	    {"status-token", required_argument, NULL, OPT_STATUS_TOKEN},                           \
	    {"max-message", required_argument, NULL, OPT_MAX_MESSAGE},                             \
	    {"key-update-bytes", required_argument, NULL, OPT_KEY_UPDATE_BYTES},                   \
	{                                                                                          \
		"max-key-updates", required_argument, NULL, OPT_MAX_KEY_UPDATES                    \
	}

#define TOOL_TLS_OPTIONS                                                                           \
	{"cert", required_argument, NULL, OPT_CERT}, {"key", required_argument, NULL, OPT_KEY},    \
	    {"self-signed", no_argument, NULL, OPT_SELF_SIGNED},                                   \
	    {"ca", required_argument, NULL, OPT_CA},                                               \
	    {"insecure", no_argument, NULL, OPT_INSECURE},                                         \
	    {"servername", required_argument, NULL, OPT_SERVERNAME},                               \
	    {"alpn", required_argument, NULL, OPT_ALPN}, {"tls1.2", no_argument, NULL, OPT_TLS12}, \
	    {"tls1.3", no_argument, NULL, OPT_TLS13},                                              \
	    {"require-client-cert", no_argument, NULL, OPT_REQUIRE_CLIENT_CERT},                   \
	    {"pin", required_argument, NULL, OPT_PIN},                                             \
	    {"sni-cert", required_argument, NULL, OPT_SNI_CERT},                                   \
	{                                                                                          \
		"key-password-file", required_argument, NULL, OPT_KEY_PASSWORD_FILE                \
	}

#define TOOL_STD_OPTIONS                                                                           \
	{"help", no_argument, NULL, 'h'},                                                          \
	{                                                                                          \
		"version", no_argument, NULL, 'V'                                                  \
	}

/* Help text for the shared options, for the programs' usage(). */
extern const char tool_engine_help[];
extern const char tool_tls_help[];
/* The TLS options a server takes (tlsq-echo), without the client-only ones. */
extern const char tool_tls_server_help[];

/* The TLS settings a user gave on the command line. */
struct tool_tls_opts {
	const char *cert, *key, *ca, *servername, *alpn;
	char *pins;                    /* every --pin, comma-separated (heap) */
	const char *key_password_file; /* --key-password-file */
	int self_signed, insecure, require_client_cert;
	int min_version, max_version; /* 0 = library default */
	tlsq_sni_cert *sni;           /* every --sni-cert (heap) */
	int nsni;
};

struct tool_common {
	tlsq_engine_config engine;
	struct tool_tls_opts tls;
};

/*
 * Names the program for messages (basename of argv0) and records its usage
 * function, which tool_common_option() calls for --help. Ignores SIGPIPE:
 * socket errors come back as EPIPE instead of killing the process.
 */
void tool_init(const char *argv0, void (*usage)(FILE *out));
const char *tool_name(void);

/* Defaults for the shared options. */
void tool_common_init(struct tool_common *co);

/*
 * Handles one option returned by getopt_long that the program did not
 * handle itself: the shared options, --help, --version, and getopt's '?' and
 * ':' (which become a one-line error). Exits on --help, --version and
 * errors.
 */
void tool_common_option(struct tool_common *co, int opt, const char *arg, char *const argv[]);
/* Frees what tool_common_option allocated (--status, --pin, --sni-cert). */
void tool_common_fini(struct tool_common *co);

/* Prints "prog (tlsq) X.Y.Z", the crypto library and AES-NI: yes|no. */
void tool_print_version(FILE *out);

/* "prog: <message>" on stderr; tool_die then exits with status 1. */
void tool_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void tool_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Exits with `status` after the one-line message. */
_Noreturn void tool_exit(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parsers: each dies with a one-line error naming `what` on bad input. */
size_t tool_parse_size(const char *what, const char *s); /* 4096, 64k, 1m, 1g */
long tool_parse_long(const char *what, const char *s, long min, long max);
double tool_parse_seconds(const char *what, const char *s); /* 2, 0.5 */

/*
 * Normalises an address argument: "PORT" alone becomes "127.0.0.1:PORT";
 * anything else is returned as is. The result is heap-allocated.
 */
char *tool_addr(const char *s);

/* Starts the engine; on failure prints the reason and exits 1. Prints the
 * status endpoint's URL on stderr when it is on. */
tlsq_engine *tool_engine_new(const struct tool_common *co);

/*
 * Builds a TLS profile from the command-line settings; dies with the
 * library's reason on failure, and on contradictory settings (--insecure
 * with --ca, --self-signed or --require-client-cert for a client,
 * --insecure or --servername for a server). Prints the profile's warnings
 * (tlsq_tls_warnings), one "prog: warning: ..." line each. A server needs
 * --cert/--key or --self-signed; a client without --ca and without
 * --insecure trusts the system's CA bundle.
 */
tlsq_tls *tool_tls_new(const struct tool_tls_opts *o, tlsq_role role, tlsq_mode mode);
/* Reads the files the options name again, into t (tlsq_tls_reload), and logs
 * one line: "prog: reloaded: certificate F, key K" or "prog: reload failed,
 * still serving the previous certificate: REASON"; then any warnings.
 * Returns 0 or -1. */
int tool_tls_reload(tlsq_tls *t, const struct tool_tls_opts *o, tlsq_role role, tlsq_mode mode);

/* After tlsq_listen failed on addr: one line "prog: cannot listen on ADDR:
 * reason" (the address once), exit 1. */
_Noreturn void tool_die_listen(const char *addr);

/* Prints one line about an established connection on stderr (version,
 * cipher, peer) and, when the peer sent a certificate, a second line with
 * its identity: subject, subjectAltNames, SHA-256 fingerprint of the
 * certificate and the pin of its public key (sha256//BASE64). */
void tool_print_conn(const char *what, tlsq_conn *c);

/* Prints one line about a connection that never reached tlsq_accept:
 * "prog: handshake failed with PEER after N ms, during the handshake
 * [REASON]: DETAIL". */
void tool_print_failure(const struct tlsq_accept_failure *f);

/*
 * -v: a thread that prints every failed handshake of a listener as it
 * happens (tlsq_listener_next_failure). Stop it after tlsq_listener_close
 * and before tlsq_listener_free: tool_faillog_stop joins the thread, which
 * first prints what is still kept.
 */
struct tool_faillog {
	tlsq_listener *l;
	pthread_t thread;
	int started;
};
void tool_faillog_start(struct tool_faillog *f, tlsq_listener *l);
void tool_faillog_stop(struct tool_faillog *f);

/*
 * Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, so call it before
 * any thread (the engine's included) starts, and starts a thread that calls
 * fn(arg) when the first of them arrives; a second one ends the process
 * at once (status 130).
 */
void tool_on_signal(void (*fn)(void *), void *arg);
/* The same, except that SIGHUP calls reload(arg) instead (every time, on the
 * signal thread): for servers that reload their certificates. */
void tool_on_signals(void (*fn)(void *), void (*reload)(void *), void *arg);

/* Starts a detached thread with a small stack; 0 or an errno. */
int tool_thread(void *(*fn)(void *), void *arg);

/* Monotonic time. */
uint64_t tool_now_ns(void);

/* ---- plain TCP (the proxy's non-TLS sides) ---- */

/* Listens on "HOST:PORT"/"[v6]:PORT"/":PORT"; returns the fd or dies. */
int tool_tcp_listen(const char *addr);
/* The bound port of a listening socket. */
int tool_tcp_port(int fd);
/* Connects (blocking) to "HOST:PORT"; returns the fd, or -1 with a reason in
 * `why` (cap bytes). */
int tool_tcp_connect(const char *addr, char *why, size_t cap);
/* Writes all of buf to any descriptor; returns 0 or -errno. */
int tool_write_all(int fd, const void *buf, size_t len);
/* "1.2.3.4:5678" of the socket's peer. */
void tool_tcp_peer(int fd, char *buf, size_t cap);

#endif /* TLSQ_TOOLS_COMMON_H */
