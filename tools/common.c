/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common.c - shared option handling, errors and TLS/engine setup of the
 * tlsq programs. Single-threaded use at start-up, except tool_err/tool_die
 * (any thread: one fprintf per line, which stdio locks) and tool_now_ns.
 */
#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static const char *prog = "tlsq";
static void (*prog_usage)(FILE *out);

const char tool_engine_help[] =
    "Engine tuning (sizes take k/m suffixes, KiB/MiB):\n"
    "      --io-threads N          IO threads (default: one per CPU)\n"
    "      --tx-budget BYTES       plaintext queued for sending per connection (default 1m)\n"
    "      --rx-budget BYTES       decrypted bytes waiting per connection (default 1m)\n"
    "      --cipher-buffer BYTES   ciphertext buffer, any size from 1 (default 64k)\n"
    "      --handshake-timeout MS  TLS handshake deadline (default 10000; -1 = none)\n"
    "      --idle-timeout MS       close connections idle this long (default 0 = never)\n"
    "      --keepalive S           TCP keepalive: probe after S idle seconds, then 3 probes\n"
    "                              S/3 s apart (at least 1 s) (default 60; 0 = off)\n"
    "      --max-message BYTES     largest message in message mode (default 16m)\n"
    "      --key-update-bytes BYTES\n"
    "                              TLS 1.3: send a KeyUpdate after every BYTES sent\n"
    "                              (default 0 = never)\n"
    "      --max-key-updates N     TLS 1.3: the peer's KeyUpdates (update_requested)\n"
    "                              tolerated per second; more end the connection with\n"
    "                              an unexpected_message alert (default 100)\n"
    "      --status ADDR           serve the HTTP status endpoint on ADDR (PORT alone\n"
    "                              binds 127.0.0.1; port 0 picks a free port)\n"
    "      --status-token TOKEN    require 'Authorization: Bearer TOKEN' on the status\n"
    "                              endpoint (or set TLSQ_STATUS_TOKEN)\n";

const char tool_tls_help[] =
    "TLS:\n"
    "      --cert FILE             PEM certificate (chain): the server's, or a client's for mTLS\n"
    "      --key FILE              private key of --cert (PEM or DER; encrypted: see\n"
    "                              --key-password-file)\n"
    "      --self-signed           servers: an in-memory self-signed certificate for\n"
    "                              localhost, 127.0.0.1 and ::1\n"
    "      --ca FILE               PEM file of trusted CAs (clients: default the system's;\n"
    "                              servers: verify client certificates against it)\n"
    "      --insecure              clients: do not verify the server's certificate\n"
    "      --servername NAME       clients: SNI and the name the certificate must match\n"
    "                              (default: the host of the address; an IP address is\n"
    "                              matched against the certificate's IP SANs)\n"
    "      --alpn LIST             ALPN protocols, comma-separated (\"h2,http/1.1\")\n"
    "      --tls1.2 | --tls1.3     use only this TLS version\n"
    "      --require-client-cert   servers: require a client certificate valid under --ca\n"
    "      --pin SPEC              accept only a peer whose certificate matches: sha256//BASE64\n"
    "                              (SHA-256 of its public key, as curl --pinnedpubkey) or 64\n"
    "                              hex digits (SHA-256 of the certificate); repeat or separate\n"
    "                              with commas for several. Clients: in addition to --ca, or\n"
    "                              alone with --insecure. Servers: requires a client\n"
    "                              certificate (its chain verified too with --ca)\n"
    "      --key-password-file FILE\n"
    "                              the password of an encrypted --key (its first line)\n"
    "      --sni-cert NAMES,CERT,KEY\n"
    "                              servers: serve CERT (PEM chain) with KEY (unencrypted,\n"
    "                              of --cert's key type) to clients whose SNI matches one of\n"
    "                              NAMES (comma-separated; \"*.example.com\" for one label);\n"
    "                              repeatable; reloaded with --cert on SIGHUP\n";

const char tool_tls_server_help[] =
    "TLS:\n"
    "      --cert FILE             PEM certificate (chain)\n"
    "      --key FILE              private key of --cert (PEM or DER; encrypted: see\n"
    "                              --key-password-file)\n"
    "      --self-signed           an in-memory self-signed certificate for localhost,\n"
    "                              127.0.0.1 and ::1\n"
    "      --ca FILE               PEM file of CAs to verify client certificates against\n"
    "      --require-client-cert   require a client certificate valid under --ca\n"
    "      --pin SPEC              require a client certificate that matches: sha256//BASE64\n"
    "                              (SHA-256 of its public key) or 64 hex digits (SHA-256 of\n"
    "                              the certificate); repeatable. With --ca its chain is\n"
    "                              verified too, without it the pin alone decides\n"
    "      --key-password-file FILE\n"
    "                              the password of an encrypted --key (its first line)\n"
    "      --sni-cert NAMES,CERT,KEY\n"
    "                              servers: serve CERT (PEM chain) with KEY (unencrypted,\n"
    "                              of --cert's key type) to clients whose SNI matches one of\n"
    "                              NAMES (comma-separated; \"*.example.com\" for one label);\n"
    "                              repeatable; reloaded with --cert on SIGHUP\n"
    "      --alpn LIST             ALPN protocols, comma-separated (\"h2,http/1.1\")\n"
    "      --tls1.2 | --tls1.3     use only this TLS version\n";

void tool_init(const char *argv0, void (*usage)(FILE *out))
{
	const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
	prog = slash ? slash + 1 : (argv0 && *argv0 ? argv0 : prog);
	prog_usage = usage;
	signal(SIGPIPE, SIG_IGN);
}

const char *tool_name(void)
{
	return prog;
}

static void verr(const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof line, fmt, ap);
	fprintf(stderr, "%s: %s\n", prog, line);
}

void tool_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verr(fmt, ap);
	va_end(ap);
}

void tool_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verr(fmt, ap);
	va_end(ap);
	exit(1);
}

void tool_exit(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verr(fmt, ap);
	va_end(ap);
	exit(status);
}

void tool_print_version(FILE *out)
{
	fprintf(out, "%s (tlsq) %s\n", prog, tlsq_version());
	fprintf(out, "crypto: %s\n", tlsq_crypto_version());
	fprintf(out, "AES-NI: %s\n", tlsq_crypto_aesni() ? "yes" : "no");
}

void tool_common_init(struct tool_common *co)
{
	memset(co, 0, sizeof *co);
	tlsq_engine_config_init(&co->engine);
	const char *token = getenv("TLSQ_STATUS_TOKEN"); /* kept out of `ps` */
	if (token && *token)
		co->engine.status_token = token;
}

size_t tool_parse_size(const char *what, const char *s)
{
	char *end;
	errno = 0;
	if (!s || !isdigit((unsigned char)*s))
		tool_die("%s: '%s' is not a size (try 4096, 64k or 1m)", what, s ? s : "");
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	default:
		break;
	}
	if (*end && (end[0] == 'i' || end[0] == 'I') && (end[1] == 'b' || end[1] == 'B') && shift)
		end += 2; /* "64KiB" */
	if (*end || errno || (shift && v > (~0ULL >> shift)))
		tool_die("%s: '%s' is not a size (try 4096, 64k or 1m)", what, s);
	v <<= shift;
	if (v > (unsigned long long)SIZE_MAX)
		tool_die("%s: '%s' is too large", what, s);
	return (size_t)v;
}

long tool_parse_long(const char *what, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = s ? strtol(s, &end, 10) : 0;
	if (!s || !*s || *end || errno)
		tool_die("%s: '%s' is not a number", what, s ? s : "");
	if (v < min || v > max)
		tool_die("%s: %ld is out of range (%ld to %ld)", what, v, min, max);
	return v;
}

double tool_parse_seconds(const char *what, const char *s)
{
	char *end;
	errno = 0;
	double v = s ? strtod(s, &end) : 0;
	if (!s || !*s || *end || errno || !(v > 0) || v > 1e7)
		tool_die("%s: '%s' is not a positive number of seconds", what, s ? s : "");
	return v;
}

char *tool_addr(const char *s)
{
	size_t n = strlen(s);
	int digits = n > 0 && n <= 5;
	for (size_t i = 0; i < n && digits; i++)
		digits = isdigit((unsigned char)s[i]) != 0;
	char *r = malloc(n + 16);
	if (!r)
		tool_die("out of memory");
	if (digits)
		snprintf(r, n + 16, "127.0.0.1:%s", s);
	else
		memcpy(r, s, n + 1);
	return r;
}

static int ms_arg(const char *what, const char *s, long min)
{
	return (int)tool_parse_long(what, s, min, 86400000L);
}

void tool_common_fini(struct tool_common *co)
{
	free((char *)co->engine.status_addr);
	free(co->tls.pins);
	for (int i = 0; i < co->tls.nsni; i++)
		free((char *)co->tls.sni[i].names); /* CERT and KEY point into it */
	free(co->tls.sni);
}

void tool_common_option(struct tool_common *co, int opt, const char *arg, char *const argv[])
{
	tlsq_engine_config *e = &co->engine;
	struct tool_tls_opts *t = &co->tls;
	switch (opt) {
	case OPT_IO_THREADS:
		e->io_threads = (int)tool_parse_long("--io-threads", arg, 0, 1024);
		break;
	case OPT_TX_BUDGET:
		e->tx_budget = tool_parse_size("--tx-budget", arg);
		break;
	case OPT_RX_BUDGET:
		e->rx_budget = tool_parse_size("--rx-budget", arg);
		break;
	case OPT_CIPHER_BUFFER:
		e->cipher_buffer = tool_parse_size("--cipher-buffer", arg);
		break;
	case OPT_HANDSHAKE_TIMEOUT:
		e->handshake_timeout_ms = ms_arg("--handshake-timeout", arg, -1);
		break;
	case OPT_IDLE_TIMEOUT:
		e->idle_timeout_ms = ms_arg("--idle-timeout", arg, 0);
		break;
	case OPT_KEEPALIVE:
		e->keepalive_s = (int)tool_parse_long("--keepalive", arg, 0, 86400);
		break;
	case OPT_MAX_MESSAGE:
		e->max_message = tool_parse_size("--max-message", arg);
		break;
	case OPT_KEY_UPDATE_BYTES:
		e->key_update_bytes = tool_parse_size("--key-update-bytes", arg);
		break;
	case OPT_MAX_KEY_UPDATES:
		e->max_key_updates_per_s =
		    (unsigned)tool_parse_long("--max-key-updates", arg, 1, 1000000);
		break;
	case OPT_STATUS:
		e->status_addr = tool_addr(arg);
		break;
	case OPT_STATUS_TOKEN:
		e->status_token = arg;
		break;
	case OPT_CERT:
		t->cert = arg;
		break;
	case OPT_KEY:
		t->key = arg;
		break;
	case OPT_SELF_SIGNED:
		t->self_signed = 1;
		break;
	case OPT_CA:
		t->ca = arg;
		break;
	case OPT_INSECURE:
		t->insecure = 1;
		break;
	case OPT_SERVERNAME:
		t->servername = arg;
		break;
	case OPT_ALPN:
		t->alpn = arg;
		break;
	case OPT_TLS12:
	case OPT_TLS13: {
		int v = opt == OPT_TLS12 ? TLSQ_TLS1_2 : TLSQ_TLS1_3;
		if (t->min_version && t->min_version != v)
			tool_die("--tls1.2 and --tls1.3 exclude each other (give neither to allow "
			         "both)");
		t->min_version = t->max_version = v;
		break;
	}
	case OPT_REQUIRE_CLIENT_CERT:
		t->require_client_cert = 1;
		break;
	case OPT_PIN: {
		if (!arg[0])
			tool_die("--pin: empty (try sha256//BASE64 or 64 hex digits)");
		size_t old = t->pins ? strlen(t->pins) : 0;
		char *p = realloc(t->pins, old + strlen(arg) + 2);
		if (!p)
			tool_die("out of memory");
		snprintf(p + old, strlen(arg) + 2, "%s%s", old ? "," : "", arg);
		t->pins = p;
		break;
	}
	case OPT_KEY_PASSWORD_FILE:
		t->key_password_file = arg;
		break;
	case OPT_SNI_CERT: {
		/* NAMES,CERT,KEY: the last two commas end the names. */
		char *v = strdup(arg);
		char *k = v ? strrchr(v, ',') : NULL;
		if (!v)
			tool_die("out of memory");
		if (k)
			*k = 0;
		char *c = k ? strrchr(v, ',') : NULL;
		if (!c || c == v || !c[1] || !k[1])
			tool_die("--sni-cert: \"%s\" is not NAMES,CERT,KEY", arg);
		*c = 0;
		tlsq_sni_cert *n = realloc(t->sni, (size_t)(t->nsni + 1) * sizeof *n);
		if (!n)
			tool_die("out of memory");
		n[t->nsni++] = (tlsq_sni_cert){v, c + 1, k + 1, NULL};
		t->sni = n;
		break;
	}
	case 'h':
		if (prog_usage)
			prog_usage(stdout);
		exit(0);
	case 'V':
		tool_print_version(stdout);
		exit(0);
	case ':':
		tool_die("option '%s' needs an argument (try --help)", argv[optind - 1]);
	case '?':
	default:
		if (optopt > 0 && optopt < 128)
			tool_die("unknown option '-%c' (try --help)", optopt);
		tool_die("unknown option '%s' (try --help)", argv[optind - 1]);
	}
}

tlsq_engine *tool_engine_new(const struct tool_common *co)
{
	tlsq_engine *e = NULL;
	int rc = tlsq_engine_new(&co->engine, &e);
	if (rc != TLSQ_OK) {
		if (co->engine.status_addr)
			tool_die("cannot start the engine with --status %s: %s",
			         co->engine.status_addr, tlsq_last_error());
		tool_die("cannot start the engine: %s", tlsq_last_error());
	}
	if (co->engine.status_addr) {
		int port = tlsq_engine_status_port(e);
		const char *a = co->engine.status_addr;
		const char *colon = strrchr(a, ':');
		char host[256];
		size_t hl = colon ? (size_t)(colon - a) : 0;
		if (hl >= sizeof host)
			hl = sizeof host - 1;
		memcpy(host, a, hl);
		host[hl] = 0;
		if (!hl || !strcmp(host, "0.0.0.0") || !strcmp(host, "[::]"))
			snprintf(host, sizeof host, "127.0.0.1");
		fprintf(stderr, "%s: status: http://%s:%d/\n", prog, host, port);
	}
	return e;
}

static const char *system_ca(void)
{
	static const char *const files[] = {"/etc/ssl/certs/ca-certificates.crt",
	                                    "/etc/pki/tls/certs/ca-bundle.crt",
	                                    "/etc/ssl/cert.pem"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (access(files[i], R_OK) == 0)
			return files[i];
	return NULL;
}

/* The first line of --key-password-file (heap; wipe with free_password). */
static char *read_password(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		tool_die("--key-password-file: cannot read %s: %s", path, strerror(errno));
	char line[1024];
	if (!fgets(line, sizeof line, f))
		line[0] = 0;
	fclose(f);
	line[strcspn(line, "\r\n")] = 0;
	char *pw = strdup(line);
	memset(line, 0, sizeof line);
	__asm__ __volatile__("" : : "r"(line) : "memory");
	if (!pw)
		tool_die("out of memory");
	if (!pw[0])
		tool_die("--key-password-file: %s holds no password (an empty first line)", path);
	return pw;
}

static void free_password(char *pw)
{
	if (!pw)
		return;
	memset(pw, 0, strlen(pw));
	__asm__ __volatile__("" : : "r"(pw) : "memory");
	free(pw);
}

/* The profile configuration the options ask for (the contradictions die:
 * they are start-up errors). */
static void tls_config_of(const struct tool_tls_opts *o, tlsq_role role, tlsq_mode mode,
                          tlsq_tls_config *out)
{
	tlsq_tls_config c;
	tlsq_tls_config_init(&c, role);
	c.mode = mode;
	if ((o->cert != NULL) != (o->key != NULL))
		tool_die("--cert and --key go together");
	if (o->key_password_file && !o->key)
		tool_die("--key-password-file needs --key");
	c.pins = o->pins;
	if (o->cert && o->self_signed)
		tool_die("--self-signed and --cert exclude each other");
	c.cert_file = o->cert;
	c.key_file = o->key;
	c.self_signed = o->self_signed;
	c.alpn = o->alpn;
	if (o->min_version)
		c.min_version = o->min_version;
	if (o->max_version)
		c.max_version = o->max_version;
	if (role == TLSQ_SERVER) {
		if (!o->cert && !o->self_signed)
			tool_die("a server needs --cert and --key, or --self-signed");
		if (o->insecure || o->servername)
			tool_die("--insecure and --servername are client options");
		c.sni_certs = o->sni;
		c.n_sni_certs = o->nsni;
		c.ca_file = o->ca;
		if (o->require_client_cert) {
			if (!o->ca)
				tool_die("--require-client-cert needs --ca");
			c.verify = TLSQ_VERIFY_REQUIRE;
		} else if (o->ca) {
			c.verify = o->pins ? TLSQ_VERIFY_REQUIRE : TLSQ_VERIFY_PEER;
		} else if (o->pins) {
			c.verify = TLSQ_VERIFY_NONE; /* the pin alone decides */
		}
	} else {
		if (o->require_client_cert)
			tool_die("--require-client-cert is a server option");
		if (o->nsni)
			tool_die("--sni-cert is a server option");
		if (o->self_signed)
			tool_die("--self-signed is a server option (a client trusts a self-signed "
			         "server with --ca FILE, or skips verification with --insecure)");
		if (o->insecure && o->ca)
			tool_die(
			    "--insecure and --ca exclude each other (--ca verifies the server, "
			    "--insecure does not)");
		c.server_name = o->servername;
		if (o->insecure) {
			c.verify = TLSQ_VERIFY_NONE;
			c.ca_file = o->ca;
		} else {
			c.ca_file = o->ca ? o->ca : system_ca();
			if (!c.ca_file)
				tool_die("no CA to verify the server with: give --ca FILE (or "
				         "--insecure)");
		}
	}
	*out = c;
}

/* tool_tls_new's work (*out NULL) or tool_tls_reload's (*out the profile):
 * 0 with *out set, or -1 with the reason in `why`. */
static int tls_build(const struct tool_tls_opts *o, tlsq_role role, tlsq_mode mode, tlsq_tls **out,
                     char *why, size_t cap)
{
	tlsq_tls_config c;
	tls_config_of(o, role, mode, &c);
	/* Read at every reload: the password may have changed with the key. */
	char *pw = o->key_password_file ? read_password(o->key_password_file) : NULL;
	c.key_password = pw;
	int rc = *out ? tlsq_tls_reload(*out, &c) : tlsq_tls_new(&c, out);
	free_password(pw);
	if (rc != TLSQ_OK) {
		snprintf(why, cap, "%s", tlsq_last_error());
		return -1;
	}
	return 0;
}

static void print_warnings(const tlsq_tls *t)
{
	/* One line per warning: an expired certificate, a CA as a server's. */
	const char *w = tlsq_tls_warnings(t);
	while (w && *w) {
		size_t n = strcspn(w, "\n");
		tool_err("warning: %.*s", (int)n, w);
		w += n + (w[n] == '\n');
	}
}

tlsq_tls *tool_tls_new(const struct tool_tls_opts *o, tlsq_role role, tlsq_mode mode)
{
	tlsq_tls *t = NULL;
	char why[512];
	if (tls_build(o, role, mode, &t, why, sizeof why) != 0)
		tool_die("TLS setup: %s", why);
	print_warnings(t);
	return t;
}

int tool_tls_reload(tlsq_tls *t, const struct tool_tls_opts *o, tlsq_role role, tlsq_mode mode)
{
	char why[512];
	if (tls_build(o, role, mode, &t, why, sizeof why) != 0) {
		tool_err("reload failed, still serving the previous certificate: %s", why);
		return -1;
	}
	if (o->cert)
		tool_err("reloaded: certificate %s, key %s%s%s", o->cert, o->key,
		         o->ca ? ", CA " : "", o->ca ? o->ca : "");
	else
		tool_err("reloaded: a new self-signed certificate");
	for (int i = 0; i < o->nsni; i++)
		tool_err("reloaded: for %s certificate %s, key %s", o->sni[i].names,
		         o->sni[i].cert_file, o->sni[i].key_file);
	print_warnings(t);
	return 0;
}

void tool_print_conn(const char *what, tlsq_conn *c)
{
	struct tlsq_conn_info in;
	if (tlsq_conn_info(c, &in) != TLSQ_OK)
		return;
	fprintf(stderr, "%s: %s %s: %s %s%s%s%s%s%s\n", prog, what, in.peer, in.version, in.cipher,
	        in.peer_subject[0] ? ", peer " : "", in.peer_subject, in.alpn[0] ? ", alpn " : "",
	        in.alpn, in.resumed ? ", resumed" : "");
	/* The peer's identity; a resumed session carries no certificate. */
	if (in.peer_sha256[0])
		fprintf(stderr, "%s: %s identity: subject %s; SANs %s; sha256 %s; pin sha256//%s\n",
		        prog, in.peer, in.peer_subject[0] ? in.peer_subject : "(none)",
		        in.peer_sans[0] ? in.peer_sans : "(none)", in.peer_sha256,
		        in.peer_spki_sha256[0] ? in.peer_spki_sha256 : "?");
}

void tool_print_failure(const struct tlsq_accept_failure *f)
{
	static const char *const when[] = {"before the peer sent anything", "during the handshake",
	                                   "after the handshake"};
	fprintf(stderr, "%s: %s %s after %llu ms, %s [%s]: %s\n", prog,
	        f->phase == TLSQ_PHASE_ACCEPT ? "dropped" : "handshake failed with", f->peer,
	        (unsigned long long)f->duration_ms,
	        f->phase <= TLSQ_PHASE_ACCEPT ? when[f->phase] : "?",
	        tlsq_fail_reason_name(f->reason),
	        f->detail[0] ? f->detail : tlsq_strerror(f->error));
}

static void *faillog_main(void *p)
{
	struct tool_faillog *f = p;
	struct tlsq_accept_failure rec;
	uint64_t after = 0;
	while (tlsq_listener_next_failure(f->l, after, &rec, -1) == TLSQ_OK) {
		if (after && rec.seq > after + 1)
			fprintf(stderr, "%s: %llu failed handshakes not shown (too many at once)\n",
			        prog, (unsigned long long)(rec.seq - after - 1));
		tool_print_failure(&rec);
		after = rec.seq;
	}
	return NULL;
}

void tool_faillog_start(struct tool_faillog *f, tlsq_listener *l)
{
	f->l = l;
	f->started = pthread_create(&f->thread, NULL, faillog_main, f) == 0;
	if (!f->started)
		tool_err("cannot start the failure log thread");
}

void tool_faillog_stop(struct tool_faillog *f)
{
	if (f->started)
		pthread_join(f->thread, NULL);
	f->started = 0;
}

uint64_t tool_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct sig_ctx {
	sigset_t set;
	void (*fn)(void *);
	void (*reload)(void *);
	void *arg;
};

static void *signal_main(void *p)
{
	struct sig_ctx *s = p;
	int sig, stopped = 0;
	while (sigwait(&s->set, &sig) == 0) {
		if (sig == SIGHUP && s->reload) {
			s->reload(s->arg);
		} else if (!stopped) {
			stopped = 1;
			s->fn(s->arg);
		} else {
			_exit(130);
		}
	}
	return NULL;
}

void tool_on_signal(void (*fn)(void *), void *arg)
{
	tool_on_signals(fn, NULL, arg);
}

void tool_on_signals(void (*fn)(void *), void (*reload)(void *), void *arg)
{
	static struct sig_ctx s; /* lives as long as the process */
	sigemptyset(&s.set);
	sigaddset(&s.set, SIGINT);
	sigaddset(&s.set, SIGTERM);
	sigaddset(&s.set, SIGHUP);
	s.fn = fn;
	s.reload = reload;
	s.arg = arg;
	pthread_sigmask(SIG_BLOCK, &s.set, NULL);
	if (tool_thread(signal_main, &s) != 0)
		tool_die("cannot start a thread");
}

int tool_thread(void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;
	pthread_t t;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 512 * 1024);
	int rc = pthread_create(&t, &a, fn, arg);
	pthread_attr_destroy(&a);
	return rc;
}

void tool_die_listen(const char *addr)
{
	const char *why = tlsq_last_error();
	/* tlsq_listen's bind/listen errors name the address already. */
	if (strncmp(why, "cannot listen on ", 17) == 0)
		tool_die("%s", why);
	tool_die("cannot listen on %s: %s", addr, why);
}
