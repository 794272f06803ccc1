/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * credload.c - the profile builder's loading (application thread): the own
 * certificate chain and private key from files or PEM buffers, a generated
 * self-signed certificate, and, when wolfSSL refuses a certificate, a key or
 * a CA location, the reason in words a person can act on; warnings about an
 * own certificate that loads but peers will refuse. profile.c decides what
 * to load; this file does the loading. Part of the wolfSSL binding
 * (tls_int.h).
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls_int.h"

/* An in-memory self-signed ECDSA P-256 certificate for localhost,
 * 127.0.0.1 and ::1 (note §9). isCA so that a client may trust it directly. */
int tlsq__make_self_signed(WOLFSSL_CTX *ctx, char **pem_out)
{
	static const unsigned char san[] = {
	    0x30, 0x23,                                              /* GeneralNames */
	    0x82, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', /* dNSName */
	    0x87, 0x04, 127, 0,   0,   1,                            /* iPAddress */
	    0x87, 0x10, 0,   0,   0,   0,   0,   0,   0,   0,        /* iPAddress ::1 */
	    0,    0,    0,   0,   0,   0,   0,   1,
	};
	WC_RNG rng;
	ecc_key key;
	Cert *cert = calloc(1, sizeof *cert);
	unsigned char *der = malloc(4096), kder[256];
	char *pem = malloc(8192);
	int rc = TLSQ_ENOMEM, dsz = 0, ksz = 0;
	if (!cert || !der || !pem)
		goto out_nomem;
	if (wc_InitRng(&rng) != 0)
		goto out_nomem;
	if (wc_ecc_init(&key) != 0)
		goto out_rng;
	rc = TLSQ_EINVAL;
	if (wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1) != 0)
		goto out_key;
	wc_InitCert(cert);
	snprintf(cert->subject.commonName, CTC_NAME_SIZE, "localhost");
	snprintf(cert->subject.org, CTC_NAME_SIZE, "tlsq self-signed");
	cert->sigType = CTC_SHA256wECDSA;
	cert->daysValid = 365;
	cert->isCA = 1;
	memcpy(cert->altNames, san, sizeof san);
	cert->altNamesSz = (int)sizeof san;
	if (wc_MakeCert(cert, der, 4096, NULL, &key, &rng) < 0)
		goto out_key;
	dsz = wc_SignCert(cert->bodySz, cert->sigType, der, 4096, NULL, &key, &rng);
	if (dsz < 0)
		goto out_key;
	ksz = wc_EccKeyToDer(&key, kder, sizeof kder);
	if (ksz < 0)
		goto out_key;
	if (wolfSSL_CTX_use_certificate_buffer(ctx, der, dsz, WOLFSSL_FILETYPE_ASN1) !=
	        WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_use_PrivateKey_buffer(ctx, kder, ksz, WOLFSSL_FILETYPE_ASN1) !=
	        WOLFSSL_SUCCESS)
		goto out_key;
	int psz = wc_DerToPem(der, (word32)dsz, (byte *)pem, 8191, CERT_TYPE);
	if (psz < 0)
		goto out_key;
	pem[psz] = 0;
	*pem_out = pem;
	pem = NULL;
	rc = 0;
out_key:
	wc_ecc_free(&key);
	memset(kder, 0, sizeof kder); /* key material: not left on the stack */
	__asm__ __volatile__("" : : "r"(kder) : "memory");
out_rng:
	wc_FreeRng(&rng);
out_nomem:
	if (rc == TLSQ_ENOMEM)
		tlsq__set_last_error("out of memory generating a self-signed certificate");
	else if (rc != 0)
		tlsq__set_last_error("generating the self-signed certificate failed");
	free(cert);
	free(der);
	free(pem);
	return rc;
}

/* Wipes and frees a buffer that may hold key material. */
static void free_secret(char *s)
{
	if (s == NULL)
		return;
	memset(s, 0, strlen(s));
	__asm__ __volatile__("" : : "r"(s) : "memory");
	free(s);
}

/* The label of the first PEM block in text ("CERTIFICATE"), or "". */
static void pem_label(const char *text, char *out, size_t cap)
{
	const char *b = strstr(text, "-----BEGIN ");
	const char *e = b ? strstr(b + 11, "-----") : NULL;
	out[0] = 0;
	if (e)
		snprintf(out, cap, "%.*s", (int)(e - b - 11), b + 11);
}

/* Reads a whole file (binary: DER keys hold NULs), NUL-terminated for the
 * text checks; *len without the NUL. NULL with errno on failure. */
static char *read_file_bytes(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0, got;
	char *s = malloc(cap);
	while (s && (got = fread(s + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (cap - n < 2) {
			char *t = realloc(s, cap * 2);
			if (!t) {
				memset(s, 0, n);
				free(s);
				s = NULL;
				break;
			}
			s = t;
			cap *= 2;
		}
	}
	fclose(f);
	if (s) {
		s[n] = 0;
		*len = n;
	}
	return s;
}

/* A whole text file, NUL-terminated, or NULL with errno. */
char *tlsq__read_text_file(const char *path)
{
	size_t len;
	return read_file_bytes(path, &len);
}

static void free_secret_n(char *s, size_t n)
{
	if (s == NULL)
		return;
	memset(s, 0, n);
	__asm__ __volatile__("" : : "r"(s) : "memory");
	free(s);
}

static int is_pem(const char *buf, size_t n)
{
	return memmem(buf, n, "-----BEGIN ", 11) != NULL;
}

static int key_encrypted(const char *text)
{
	return strstr(text, "ENCRYPTED PRIVATE KEY-----") || strstr(text, "Proc-Type: 4,ENCRYPTED");
}

/* Why a private key that wolfSSL refused did not load, in words. */
static void key_load_error(const char *what, const char *text, size_t n, int have_password)
{
	char label[64];
	if (!is_pem(text, n) && have_password) {
		tlsq__set_last_error("cannot use the DER private key %s: wrong password? (or a "
		                     "damaged file, or a key type tlsq does not support)",
		                     what);
		return;
	}
	if (!is_pem(text, n)) {
		tlsq__set_last_error("the private key %s is neither PEM nor a DER key tlsq can use "
		                     "(a damaged file, or a key type tlsq does not support)",
		                     what);
		return;
	}
	pem_label(text, label, sizeof label);
	if (key_encrypted(text) && !have_password)
		tlsq__set_last_error("the private key %s is encrypted: give its password "
		                     "(key_password; the programs: --key-password-file FILE)",
		                     what);
	else if (key_encrypted(text))
		tlsq__set_last_error("cannot decrypt the private key %s: wrong password? (or an "
		                     "encryption tlsq does not support: use PKCS#8 with AES, "
		                     "openssl pkey -aes256)",
		                     what);
	else if (strstr(label, "PRIVATE KEY") == NULL)
		tlsq__set_last_error(
		    "%s holds no private key but a PEM \"%s\"%s", what, label,
		    strcmp(label, "CERTIFICATE") ? "" : " (certificate and key swapped?)");
	else
		tlsq__set_last_error("the private key %s cannot be used (\"%s\": a key type tlsq "
		                     "does not support, or a damaged file)",
		                     what, label);
}

/* wolfSSL's password callback for an encrypted key: key_password. */
static int key_password_cb(char *buf, int size, int rw, void *userdata)
{
	(void)rw;
	const char *pw = userdata;
	int n = pw ? (int)strlen(pw) : 0;
	if (n <= 0 || n > size)
		return -1;
	memcpy(buf, pw, (size_t)n);
	return n;
}

/* Loads the own private key (PEM or DER, encrypted with key_password) and
 * checks that it belongs to the certificate. */
int tlsq__tls_load_key(const tlsq_tls_config *cfg, WOLFSSL_CTX *ctx)
{
	int kr, enc = 0;
	char *text = NULL;
	size_t n = 0;
	const char *what = cfg->key_file ? cfg->key_file : "(key_pem)";
	if (cfg->key_password) {
		/* Only for the load below: the context keeps no pointer to it. */
		wolfSSL_CTX_set_default_passwd_cb(ctx, key_password_cb);
		wolfSSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)cfg->key_password);
	}
	if (cfg->key_file) {
		errno = 0;
		text = read_file_bytes(cfg->key_file, &n);
		if (text == NULL) {
			tlsq__set_last_error("cannot read the private key %s: %s", cfg->key_file,
			                     errno ? strerror(errno) : "out of memory");
			kr = -1;
			goto out;
		}
		enc = is_pem(text, n) && key_encrypted(text);
		kr = wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)text, (long)n,
		                                       is_pem(text, n) ? WOLFSSL_FILETYPE_PEM
		                                                       : WOLFSSL_FILETYPE_ASN1);
		if (kr != WOLFSSL_SUCCESS)
			key_load_error(what, text, n, cfg->key_password != NULL);
	} else if (cfg->key_pem) {
		n = strlen(cfg->key_pem);
		enc = key_encrypted(cfg->key_pem);
		kr = wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)cfg->key_pem,
		                                       (long)n, WOLFSSL_FILETYPE_PEM);
		if (kr != WOLFSSL_SUCCESS && !is_pem(cfg->key_pem, n))
			tlsq__set_last_error("the private key (key_pem) is not PEM (DER keys load "
			                     "from key_file)");
		else if (kr != WOLFSSL_SUCCESS)
			key_load_error(what, cfg->key_pem, n, cfg->key_password != NULL);
	} else {
		tlsq__set_last_error("a certificate needs its private key (key_file or key_pem)");
		kr = -1;
	}
out:
	if (cfg->key_password) {
		wolfSSL_CTX_set_default_passwd_cb(ctx, NULL);
		wolfSSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	}
	free_secret_n(text, n);
	if (kr != WOLFSSL_SUCCESS)
		return TLSQ_EINVAL;
	/* wolfSSL loads a key of another certificate without a word; every
	 * handshake would then fail at the peer (-330 "verify problem based on
	 * signature"). */
	if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
		/* A traditional encrypted PEM key (AES-CBC, no integrity check)
		 * decrypts with a wrong password into a key of garbage. */
		if (enc && cfg->key_password)
			tlsq__set_last_error(
			    "cannot decrypt the private key %s: wrong password? (if "
			    "it is right, the key does not match the certificate %s)",
			    what, cfg->cert_file ? cfg->cert_file : "(cert_pem)");
		else
			tlsq__set_last_error("the private key %s does not match the certificate %s",
			                     what, cfg->cert_file ? cfg->cert_file : "(cert_pem)");
		return TLSQ_EINVAL;
	}
	return 0;
}

/* Why a certificate file that wolfSSL refused did not load. */
void tlsq__cert_load_error(const char *path)
{
	errno = 0;
	char *text = tlsq__read_text_file(path);
	char label[64] = "";
	if (text)
		pem_label(text, label, sizeof label);
	if (text == NULL)
		tlsq__set_last_error("cannot read the certificate %s: %s", path,
		                     errno ? strerror(errno) : "out of memory");
	else if (label[0] == 0)
		tlsq__set_last_error("the certificate %s is not PEM (DER? convert it: openssl x509 "
		                     "-inform DER -in CERT -out CERT.pem)",
		                     path);
	else if (strcmp(label, "CERTIFICATE") != 0)
		tlsq__set_last_error(
		    "%s holds no certificate but a PEM \"%s\"%s", path, label,
		    strstr(label, "PRIVATE KEY") ? " (certificate and key swapped?)" : "");
	else
		tlsq__set_last_error("the certificate %s cannot be used (damaged, or a key type "
		                     "tlsq does not support)",
		                     path);
	free_secret(text);
}

/* Appends one warning line to t->warnings. */
static void warn(struct tlsq__cred *t, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	size_t old = t->warnings ? strlen(t->warnings) : 0;
	char *w = realloc(t->warnings, old + strlen(line) + 2);
	if (w == NULL)
		return; /* a warning is not worth failing for */
	snprintf(w + old, strlen(line) + 2, "%s%s", old ? "\n" : "", line);
	t->warnings = w;
}

static void asn1_time_str(const WOLFSSL_ASN1_TIME *a, char *buf, size_t cap)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	if (wolfSSL_ASN1_TIME_to_tm(a, &tm) != WOLFSSL_SUCCESS ||
	    strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, cap, "(unreadable date)");
}

/* Own certificate trouble that does not stop tlsq from starting but will
 * make peers refuse the handshake: tlsq_tls_warnings. */
void tlsq__tls_cert_warnings(struct tlsq__cred *t, tlsq_role role, const char *what)
{
	WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(
	    (const unsigned char *)t->cert_pem, (int)strlen(t->cert_pem), WOLFSSL_FILETYPE_PEM);
	if (x == NULL)
		return;
	char when[64];
	const WOLFSSL_ASN1_TIME *nb = wolfSSL_X509_get_notBefore(x);
	const WOLFSSL_ASN1_TIME *na = wolfSSL_X509_get_notAfter(x);
	if (na && wolfSSL_X509_cmp_current_time(na) < 0) {
		asn1_time_str(na, when, sizeof when);
		warn(t,
		     "the certificate %s expired on %s: peers that verify it will refuse the "
		     "handshake",
		     what, when);
	} else if (nb && wolfSSL_X509_cmp_current_time(nb) > 0) {
		asn1_time_str(nb, when, sizeof when);
		warn(t,
		     "the certificate %s is not valid before %s: peers that verify it will "
		     "refuse the handshake until then (is the clock right?)",
		     what, when);
	}
	if (role == TLSQ_SERVER && wolfSSL_X509_get_isCA(x)) {
		unsigned ku = wolfSSL_X509_get_keyUsage(x);
		warn(t,
		     "the certificate %s is a CA certificate (basicConstraints CA:TRUE%s); many "
		     "clients refuse one as a server certificate: use a certificate the CA issued",
		     what,
		     ku && !(ku & KEYUSE_DIGITAL_SIG) ? ", key usage without digitalSignature"
		                                      : "");
	}
	wolfSSL_X509_free(x);
}

/* Why CA locations that wolfSSL refused did not load: errno first. */
void tlsq__ca_load_error(const char *file, const char *dir)
{
	if (file) {
		FILE *f = fopen(file, "rb");
		if (f == NULL) {
			tlsq__set_last_error("cannot read the CA file %s: %s", file,
			                     strerror(errno));
			return;
		}
		fclose(f);
	}
	if (dir) {
		DIR *d = opendir(dir);
		if (d == NULL) {
			tlsq__set_last_error("cannot read the CA directory %s: %s", dir,
			                     strerror(errno));
			return;
		}
		closedir(d);
	}
	tlsq__set_last_error("the CA %s %s holds no usable PEM certificate (a file that is not "
	                     "PEM, or a damaged one)",
	                     file ? "file" : "directory", file ? file : dir);
}

/* see tls_int.h */
unsigned char *tlsq__key_der(const char *path, const char *password, int *len)
{
	size_t n = 0;
	char *text = read_file_bytes(path, &n);
	if (text == NULL)
		return NULL;
	unsigned char *der = malloc(n + 1);
	int got = -1;
	if (der && is_pem(text, n))
		got = wc_KeyPemToDer((const unsigned char *)text, (int)n, der, (int)n, password);
	else if (der) {
		memcpy(der, text, n);
		got = (int)n;
	}
	free_secret_n(text, n);
	if (got <= 0) {
		free_secret_n((char *)der, n + 1);
		return NULL;
	}
	*len = got;
	return der;
}
