#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The IO task against real peers (issue: iotask; guarantees G6, G7, G9).

usage: peers.py TOOLS_DIR PKI_SCRIPT_DIR

Each case starts tlsq-cat (client or --listen server) and a peer that nobody
here wrote (openssl s_client / s_server) or a raw Python socket, waits for
conditions with deadlines (never a sleep as synchronisation), and checks the
observable outcome: bytes that arrived, the exact exit code, a KeyUpdate seen
on the wire, a reason on stderr. Prints one line per case and a pass/total.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, case, finish, free_port, listening, wait_for  # noqa: E402

TOOLS, PKI = sys.argv[1], sys.argv[2]
CAT = os.path.join(TOOLS, "tlsq-cat")
TMP = tempfile.mkdtemp(prefix="tlsq-peers-")
subprocess.run(["sh", os.path.join(PKI, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
CA, SRV, SRVKEY = (os.path.join(TMP, f) for f in ("ca.pem", "server.pem", "server.key"))
CLI, CLIKEY = os.path.join(TMP, "client.pem"), os.path.join(TMP, "client.key")


def s_client(port, *extra):
    return Proc(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", CA,
                 "-verify_hostname", "localhost", "-verify_return_error", *extra])


# --- G9: a tlsq server whose application only reads answers KeyUpdate ---
@case("G9: openssl s_client 'K' to a read-only tlsq server gets a KeyUpdate back")
def _(procs):
    port = free_port()
    srv = Proc([CAT, "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", SRVKEY])
    procs.append(srv)  # its stdin stays open and silent: the app never writes
    wait_for(listening(port), "tlsq-cat to listen")
    cli = s_client(port, "-tls1_3", "-msg")
    procs.append(cli)
    wait_for(lambda: "Verify return code: 0" in cli.text(), "the handshake")
    cli.send(b"before\n")
    wait_for(lambda: b"before\n" in srv.out, "data before the KeyUpdate")
    cli.send(b"K\n")  # KeyUpdate(update_requested)
    wait_for(lambda: "<<< TLS 1.3, Handshake [length 0005], KeyUpdate" in cli.text(),
             "tlsq's KeyUpdate reply")
    cli.send(b"after\n")
    wait_for(lambda: b"after\n" in srv.out, "data after the KeyUpdate")


@case("G9: openssl s_client 'k' (no update requested) gets no KeyUpdate back")
def _(procs):
    port = free_port()
    srv = Proc([CAT, "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", SRVKEY])
    procs.append(srv)
    wait_for(listening(port), "tlsq-cat to listen")
    cli = s_client(port, "-tls1_3", "-msg")
    procs.append(cli)
    wait_for(lambda: "Verify return code: 0" in cli.text(), "the handshake")
    cli.send(b"k\n")  # s_client takes a whole stdin read as the command: wait
    wait_for(lambda: ">>> TLS 1.3, Handshake [length 0005], KeyUpdate" in cli.text(),
             "s_client's KeyUpdate to leave")
    cli.send(b"after\n")
    wait_for(lambda: b"after\n" in srv.out, "data after the KeyUpdate")
    if "<<< TLS 1.3, Handshake [length 0005], KeyUpdate" in cli.text():
        raise AssertionError("tlsq answered a KeyUpdate that requested no update")


# --- tlsq as a client follows the server's KeyUpdates ---
@case("tlsq client follows openssl s_server 'K' and 'k', data intact both ways")
def _(procs):
    port = free_port()
    srv = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", SRV,
                "-key", SRVKEY, "-tls1_3", "-naccept", "1", "-msg"])
    procs.append(srv)
    wait_for(listening(port), "s_server to listen")
    cli = Proc([CAT, f"127.0.0.1:{port}", "--ca", CA, "--servername", "localhost"])
    procs.append(cli)
    cli.send(b"one\n")
    wait_for(lambda: "one" in srv.text(), "client data at the server")
    sent = ">>> TLS 1.3, Handshake [length 0005], KeyUpdate"
    for n, (cmd, word) in enumerate(((b"K\n", b"two\n"), (b"k\n", b"three\n")), 1):
        srv.send(cmd)  # s_server takes a whole stdin read as the command: wait
        wait_for(lambda: srv.text().count(sent) >= n, "s_server's KeyUpdate to leave")
        srv.send(word)
        wait_for(lambda: word in cli.out, "server data after " + cmd.decode().strip())
    cli.send(b"four\n")
    wait_for(lambda: "four" in srv.text(), "client data after the KeyUpdates")
    # K asked for an update: the tlsq client's own KeyUpdate comes back.
    wait_for(lambda: "<<< TLS 1.3, Handshake [length 0005], KeyUpdate" in srv.text(),
             "the tlsq client's KeyUpdate reply")


# --- ALPN and SNI against openssl s_server ---
@case("ALPN: tlsq client offers h2 to openssl s_server -alpn, both sides agree")
def _(procs):
    port = free_port()
    srv = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", SRV,
                "-key", SRVKEY, "-alpn", "h2,http/1.1", "-naccept", "1"])
    procs.append(srv)
    wait_for(listening(port), "s_server to listen")
    cli = Proc([CAT, "-v", f"127.0.0.1:{port}", "--ca", CA, "--servername", "localhost",
                "--alpn", "h2"])
    procs.append(cli)
    wait_for(lambda: "ALPN protocols advertised by the client: h2" in srv.text(),
             "the ALPN offer at the server")
    wait_for(lambda: ", alpn h2" in cli.text(), "the chosen ALPN at the client")


@case("SNI: tlsq client sends the server name to openssl s_server")
def _(procs):
    port = free_port()
    srv = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", SRV,
                "-key", SRVKEY, "-naccept", "1", "-servername", "localhost",
                "-cert2", SRV, "-key2", SRVKEY])
    procs.append(srv)
    wait_for(listening(port), "s_server to listen")
    cli = Proc([CAT, f"127.0.0.1:{port}", "--ca", CA, "--servername", "localhost"])
    procs.append(cli)
    cli.send(b"sni\n")
    wait_for(lambda: 'Hostname in TLS extension: "localhost"' in srv.text(),
             "the SNI at the server")
    wait_for(lambda: "sni" in srv.text().split("CIPHER is", 1)[-1], "data after the handshake")


# --- mTLS: tlsq server requires a client certificate ---
@case("mTLS: tlsq server accepts s_client with a client certificate")
def _(procs):
    port = free_port()
    srv = Proc([CAT, "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", SRVKEY,
                "--ca", CA, "--require-client-cert"])
    procs.append(srv)
    wait_for(listening(port), "tlsq-cat to listen")
    cli = s_client(port, "-cert", CLI, "-key", CLIKEY)
    procs.append(cli)
    cli.send(b"with-cert\n")
    wait_for(lambda: b"with-cert\n" in srv.out, "data from the authenticated client")


@case("mTLS: tlsq server refuses s_client without a client certificate")
def _(procs):
    port = free_port()
    srv = Proc([CAT, "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", SRVKEY,
                "--ca", CA, "--require-client-cert"])
    procs.append(srv)
    wait_for(listening(port), "tlsq-cat to listen")
    cli = s_client(port)
    procs.append(cli)
    try:
        cli.send(b"no-cert\n")
    except BrokenPipeError:
        pass  # s_client may already have read the alert and exited
    wait_for(lambda: "alert certificate required" in cli.text(),
             "the certificate_required alert at the client")
    cli.wait(20)
    # A failed handshake never reaches tlsq_accept: the server keeps serving.
    if b"no-cert" in srv.out:
        raise AssertionError("data from an unauthenticated client reached the application")
    ok = s_client(port, "-cert", CLI, "-key", CLIKEY)
    procs.append(ok)
    ok.send(b"with-cert\n")
    wait_for(lambda: b"with-cert\n" in srv.out, "the next, authenticated client")


# --- resumption: openssl s_client resumes a session with a tlsq server ---
@case("resumption: s_client -sess_out then -sess_in resumes against tlsq-echo")
def _(procs):
    port = free_port()
    echo = Proc([os.path.join(TOOLS, "tlsq-echo"), "--listen", f"127.0.0.1:{port}",
                 "--cert", SRV, "--key", SRVKEY])
    procs.append(echo)
    wait_for(listening(port), "tlsq-echo to listen")
    sess = os.path.join(TMP, "sess.pem")
    first = s_client(port, "-sess_out", sess)
    procs.append(first)
    first.send(b"ping1\n")
    wait_for(lambda: "ping1" in first.text() and os.path.exists(sess)
             and os.path.getsize(sess) > 0, "a session ticket")
    first.close_stdin()
    first.wait(20)
    second = s_client(port, "-sess_in", sess)
    procs.append(second)
    second.send(b"ping2\n")
    wait_for(lambda: "ping2" in second.text(), "the echo on the resumed connection")
    if "Reused, TLSv1.3" not in second.text():
        raise AssertionError("the second connection did not resume")
    second.close_stdin()
    second.wait(20)


# --- G7: a silent peer is cut at the handshake deadline ---
@case("G7: a peer that connects and stays silent is closed at the handshake deadline")
def _(procs):
    port = free_port()
    srv = Proc([CAT, "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", SRVKEY,
                "--handshake-timeout", "500"])
    procs.append(srv)
    wait_for(listening(port), "tlsq-cat to listen")
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.monotonic()
    s.settimeout(10)
    try:
        got = s.recv(100)  # the server closes: EOF (or a reset)
    except ConnectionResetError:
        got = b""
    except socket.timeout:
        got = None
    took = time.monotonic() - t0
    s.close()
    if got != b"" or not 0.4 <= took <= 5.0:
        raise AssertionError(f"closed after {took:.2f} s with {got!r}; wanted EOF after ~0.5 s")
    # The listener is unaffected: the next client is served.
    cli = s_client(port)
    procs.append(cli)
    cli.send(b"next\n")
    wait_for(lambda: b"next\n" in srv.out, "the next client's data")


# --- G6: close_notify vs FIN without it vs reset, seen by a tlsq client ---
def python_tls_server(port, ending, ready, go, payload=b"payload\n", done=None):
    """Serves one TLS connection: sends payload, waits for go (if any), then
    ends with close_notify, a FIN without it, or a RST; sets done after."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(SRV, SRVKEY)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1)
    ready.set()
    raw, _ = ls.accept()
    ls.close()
    tls = ctx.wrap_socket(raw, server_side=True)
    tls.sendall(payload)
    if go is not None:
        go.wait(20)  # the client has the payload: a reset cannot take it back
    if ending == "close_notify":
        tls.unwrap().close()
    elif ending == "fin":
        tls.shutdown(socket.SHUT_RDWR)  # drops the TLS layer: a FIN, no close_notify
        tls.close()
    else:  # reset: SO_LINGER 0 turns close into a RST
        import struct
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        tls.close()
    if done is not None:
        done.set()

for ending, want_rc, want_text in (("close_notify", 0, None), ("fin", 3, "truncat"),
                                   ("reset", 1, "reset")):
    @case(f"G6: tlsq client told '{ending}' apart: exit {want_rc}, all data delivered")
    def _(procs, ending=ending, want_rc=want_rc, want_text=want_text):
        port = free_port()
        ready, go = threading.Event(), threading.Event()
        th = threading.Thread(target=python_tls_server, args=(port, ending, ready, go),
                              daemon=True)
        th.start()
        if not ready.wait(10):
            raise AssertionError("python server did not start")
        cli = Proc([CAT, f"127.0.0.1:{port}", "--ca", CA, "--servername", "localhost"])
        procs.append(cli)
        wait_for(lambda: b"payload\n" in cli.out, "the payload")
        go.set()
        rc = cli.wait(20)
        if rc != want_rc:
            raise AssertionError(f"exit {rc}, wanted {want_rc}; stderr {cli.text()!r}")
        if want_text and want_text not in cli.text().lower():
            raise AssertionError(f"no '{want_text}' in the reason: {cli.text()!r}")
        th.join(10)


# --- G6: a slow reader still gets every byte decrypted before a FIN ---
@case("G6: a slow reader gets all 1.2 MB sent before a FIN, then exit 3 (truncated)")
def _(procs):
    # The application (tlsq-cat's stdout) is not drained until the server has
    # sent everything and its FIN: the rx queue fills, the IO task holds a
    # chunk back, and the rest of the ciphertext and the FIN wait in its
    # ciphertext buffer. When the reader catches up, the IO task decrypts the last
    # records and finds the end in the same step. The partly filled last
    # chunk was dropped there (issue: 2,994,432 of 3,000,000 bytes arrived).
    import hashlib
    for rnd in range(3):
        port = free_port()
        data = os.urandom(1_200_000)
        ready, done = threading.Event(), threading.Event()
        th = threading.Thread(target=python_tls_server,
                              args=(port, "fin", ready, None, data, done), daemon=True)
        th.start()
        if not ready.wait(10):
            raise AssertionError("python server did not start")
        # A small rx queue and a ciphertext buffer that holds the rest: the
        # last records and the FIN are all read before the reader catches up.
        p = subprocess.Popen([CAT, "--rx-budget", "64k", "--cipher-buffer", "4m",
                              f"127.0.0.1:{port}", "--ca", CA, "--servername", "localhost"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            if not done.wait(30):  # everything fits the buffers on the way
                raise AssertionError("the server could not send 1.2 MB to an undrained client")
            got = p.stdout.read()  # now drain, as fast as we can
            rc = p.wait(20)
            err = p.stderr.read().decode("utf-8", "replace")
        finally:
            p.kill()
            p.wait()
        th.join(10)
        if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
            raise AssertionError(f"round {rnd}: {len(got)} of {len(data)} bytes arrived "
                                 f"(intact prefix: {data.startswith(got)}); {err!r}")
        if rc != 3 or "truncat" not in err.lower():
            raise AssertionError(f"round {rnd}: exit {rc}, wanted 3 (truncated): {err!r}")


# --- an end found by the read that follows the handshake is not missed ---
@case("G6/G7: a client that sends its Finished and a FIN in one segment: exit 3 at once")
def _(procs):
    # The server's read after the one that completes the handshake finds
    # the FIN. The IO task stopped watching the socket at the end and left
    # the step loop before wolfSSL was told: the connection hung until some
    # deadline (with --handshake-timeout -1: for ever). TCP_CORK holds the
    # Finished back so that it leaves with the FIN, in one segment.
    import ssl
    ctx = ssl.create_default_context(cafile=CA)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    for rnd in range(5):
        port = free_port()
        srv = Proc([CAT, "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", SRVKEY,
                    "--handshake-timeout", "-1"])
        procs.append(srv)
        wait_for(listening(port), "tlsq-cat to listen")
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                s.sendall(out.read())
                inc.write(s.recv(65536))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        s.sendall(out.read())  # the Finished, held back by the cork
        s.shutdown(socket.SHUT_WR)  # ... and sent with the FIN
        t0 = time.monotonic()
        try:
            rc = srv.wait(5)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"round {rnd}: tlsq-cat --listen still running 5 s after "
                                 "the FIN (missed end)") from None
        s.close()
        if rc != 3 or "truncated" not in srv.text():
            raise AssertionError(f"round {rnd}: exit {rc} after {time.monotonic() - t0:.2f} s, "
                                 f"wanted 3: {srv.text()!r}")


# --- a clean close is not turned into a reset by bytes after close_notify ---
@case("G6: bytes after the peer's close_notify do not reset the echo still in flight")
def _(procs):
    # OpenSSL answers a KeyUpdate that reaches it after its own close_notify
    # (stunnel, socat): bytes a server gets after the close_notify exchange.
    # A close() with unread input, or input after close(), makes the kernel
    # send a RST, and the RST drops what the client has not read yet.
    import ssl
    port = free_port()
    echo = Proc([os.path.join(TOOLS, "tlsq-echo"), "--listen", f"127.0.0.1:{port}",
                 "--cert", SRV, "--key", SRVKEY, "-v"])
    procs.append(echo)
    wait_for(listening(port), "tlsq-echo to listen")
    ctx = ssl.create_default_context(cafile=CA)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    s = socket.create_connection(("127.0.0.1", port), timeout=30)

    def flush():
        data = out.read()
        if data:
            s.sendall(data)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            inc.write(s.recv(65536))
    flush()
    data = os.urandom(1 << 20)
    tls.write(data)
    try:
        tls.unwrap()  # our close_notify; the server's comes later
    except ssl.SSLWantReadError:
        pass
    flush()
    # Unread, the whole echo fits in the loopback socket buffers: the server
    # writes it, its close_notify, and ends the connection.
    wait_for(lambda: f"closed: {len(data)} bytes echoed" in echo.text(),
             "tlsq-echo to end the connection cleanly")
    s.sendall(b"\x17\x03\x03\x00\x16" + os.urandom(22))  # one record more
    got = bytearray()
    while True:
        try:
            chunk = tls.read(65536)
            if not chunk:
                break
            got += chunk
            continue
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            break
        raw = s.recv(65536)  # a reset raises here
        if not raw:
            raise AssertionError(f"EOF without close_notify after {len(got)} bytes")
        inc.write(raw)
    s.close()
    if bytes(got) != data:
        raise AssertionError(f"echoed {len(got)} of {len(data)} bytes")


shutil.rmtree(TMP, ignore_errors=True)
finish("peers")
