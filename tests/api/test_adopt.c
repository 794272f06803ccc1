/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tlsq_adopt: TLS over a socket connected elsewhere. tlsq on both ends of a
 * Unix socketpair; tlsq adopting the server end of a Unix socket that
 * openssl s_client -unix connects to; what is refused, and that a refused
 * fd stays the caller's.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/support.h"

static tlsq_engine *engine;
static tlsq_tls *server, *client;

static int setup(void **state)
{
	(void)state;
	tlsq_engine_config cfg;
	ts_engine_config(&cfg);
	if (tlsq_engine_new(&cfg, &engine) != TLSQ_OK)
		return -1;
	ts_profiles(TLSQ_MODE_STREAM, &server, &client); /* client: server_name localhost */
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tlsq_engine_free(engine);
	tlsq_tls_free(server);
	tlsq_tls_free(client);
	return 0;
}

static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static void test_socketpair_with_tlsq_on_both_ends_moves_bytes_both_ways(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	tlsq_conn *s, *c;
	assert_int_equal(tlsq_adopt(engine, server, sv[0], NULL, &s), TLSQ_OK);
	assert_int_equal(tlsq_adopt(engine, client, sv[1], NULL, &c), TLSQ_OK);
	assert_int_equal(tlsq_connect_wait(c, 10000), TLSQ_OK);
	assert_int_equal(tlsq_connect_wait(s, 10000), TLSQ_OK);
	struct tlsq_conn_info ci;
	assert_int_equal(tlsq_conn_info(c, &ci), TLSQ_OK);
	printf("client: %s %s, peer %s\n", ci.version, ci.cipher, ci.peer);
	assert_string_equal(ci.peer, "unix:(unnamed)");
	assert_true(ci.peer_subject[0] != 0); /* the server's certificate was verified */
	assert_int_equal(ts_send_pattern(c, 1, 1 << 20, 16384), 0);
	assert_int_equal(ts_recv_pattern(s, 1, 1 << 20, 16384), 0);
	assert_int_equal(ts_send_pattern(s, 2, 1 << 20, 16384), 0);
	assert_int_equal(ts_recv_pattern(c, 2, 1 << 20, 16384), 0);
	/* A graceful close both ways over the adopted sockets. */
	assert_int_equal(tlsq_shutdown_send(c), TLSQ_OK);
	char b;
	assert_int_equal(tlsq_recv(s, &b, 1, 10000), 0);
	assert_int_equal(tlsq_close(s, 10000, NULL), TLSQ_OK);
	assert_int_equal(tlsq_recv(c, &b, 1, 10000), 0);
	tlsq_conn_free(c);
	tlsq_conn_free(s);
}

static void test_verification_applies_to_adopted_client(void **state)
{
	(void)state;
	/* The client checks the name it is given: the server is "localhost". */
	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	char pem[8192];
	assert_true(tlsq_tls_cert_pem(server, pem, sizeof pem) > 0);
	cc.ca_pem = pem;
	tlsq_tls *named;
	assert_int_equal(tlsq_tls_new(&cc, &named), TLSQ_OK);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	tlsq_conn *s, *c;
	assert_int_equal(tlsq_adopt(engine, server, sv[0], NULL, &s), TLSQ_OK);
	assert_int_equal(tlsq_adopt(engine, named, sv[1], "example.org", &c), TLSQ_OK);
	assert_int_equal(tlsq_connect_wait(c, 10000), TLSQ_ECERT);
	printf("reason: %s\n", tlsq_conn_error(c));
	assert_non_null(strstr(tlsq_conn_error(c), "hostname mismatch"));
	tlsq_conn_free(c);
	tlsq_conn_free(s);
	tlsq_tls_free(named);
}

static void test_refused_fds_stay_the_callers(void **state)
{
	(void)state;
	tlsq_conn *c = (tlsq_conn *)1;
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(tlsq_adopt(engine, server, p[0], NULL, &c), TLSQ_EINVAL);
	assert_null(c);
	printf("pipe: %s\n", tlsq_last_error());
	assert_non_null(strstr(tlsq_last_error(), "not a stream socket"));
	assert_true(fd_open(p[0]));
	close(p[0]);
	close(p[1]);

	int u = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(tlsq_adopt(engine, server, u, NULL, &c), TLSQ_EINVAL);
	printf("unconnected: %s\n", tlsq_last_error());
	assert_non_null(strstr(tlsq_last_error(), "not connected"));
	assert_true(fd_open(u));
	close(u);

	tlsq_tls_config cc;
	tlsq_tls_config_init(&cc, TLSQ_CLIENT);
	cc.verify = TLSQ_VERIFY_NONE;
	tlsq_tls *anon;
	assert_int_equal(tlsq_tls_new(&cc, &anon), TLSQ_OK);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(tlsq_adopt(engine, anon, sv[1], NULL, &c), TLSQ_EINVAL);
	printf("no name: %s\n", tlsq_last_error());
	assert_non_null(strstr(tlsq_last_error(), "needs the server's name"));
	assert_true(fd_open(sv[1]));
	close(sv[0]);
	close(sv[1]);
	tlsq_tls_free(anon);
}

/* openssl s_client -unix connects; tlsq adopts the accepted end as server. */
static void test_openssl_s_client_over_a_unix_socket(void **state)
{
	(void)state;
	if (system("command -v openssl >/dev/null 2>&1") != 0)
		skip();
	char dir[] = "/tmp/tlsq-adopt-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[96], ca[96], cmd[512];
	snprintf(path, sizeof path, "%s/sock", dir);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	char pem[8192];
	ssize_t n = tlsq_tls_cert_pem(server, pem, sizeof pem);
	assert_true(n > 0);
	FILE *f = fopen(ca, "w");
	assert_non_null(f);
	fwrite(pem, 1, (size_t)n, f);
	fclose(f);

	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(l, 1), 0);
	/* -quiet implies -ign_eof: s_client reads until our close_notify. */
	snprintf(cmd, sizeof cmd,
	         "printf 'hello over unix\\n' | openssl s_client -unix %s -CAfile %s "
	         "-servername localhost -verify_hostname localhost -verify_return_error -quiet "
	         "2>/dev/null",
	         path, ca);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	int fd = accept(l, NULL, NULL);
	assert_true(fd >= 0);
	tlsq_conn *s;
	assert_int_equal(tlsq_adopt(engine, server, fd, NULL, &s), TLSQ_OK);
	assert_int_equal(tlsq_connect_wait(s, 20000), TLSQ_OK);
	struct tlsq_conn_info si;
	assert_int_equal(tlsq_conn_info(s, &si), TLSQ_OK);
	printf("server side: %s %s, peer %s\n", si.version, si.cipher, si.peer);
	assert_non_null(strstr(si.peer, "unix:"));
	char got[64] = "";
	size_t have = 0;
	while (have < 16) {
		ssize_t r = tlsq_recv(s, got + have, sizeof got - 1 - have, 20000);
		assert_true(r > 0);
		have += (size_t)r;
	}
	assert_memory_equal(got, "hello over unix\n", 16);
	assert_int_equal(tlsq_send(s, "and back\n", 9, 10000), 9);
	assert_int_equal(tlsq_close(s, 20000, NULL), TLSQ_OK);
	char line[64] = "";
	assert_non_null(fgets(line, sizeof line, p));
	assert_string_equal(line, "and back\n");
	assert_int_equal(pclose(p), 0);
	tlsq_conn_free(s);
	close(l);
	unlink(path);
	unlink(ca);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_socketpair_with_tlsq_on_both_ends_moves_bytes_both_ways),
	    cmocka_unit_test(test_verification_applies_to_adopted_client),
	    cmocka_unit_test(test_refused_fds_stay_the_callers),
	    cmocka_unit_test(test_openssl_s_client_over_a_unix_socket),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
