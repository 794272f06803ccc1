#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The programs against peers nobody here wrote (docs/programs.md).

usage: programs.py TOOLS_DIR PKI_SCRIPT_DIR

- tlsq-cat against openssl s_server and gnutls-serv;
- openssl s_client, socat and gnutls-cli against tlsq-echo (1 MiB of binary
  checked by SHA-256 with socat; text with the line-based clients);
- tlsq-echo --cipher-buffer 1 still echoes 1 MiB intact;
- tlsq-proxy: a client that stops reading and sends an abort, a server that
  blasts data: the abort arrives within seconds (P1), the close propagates,
  with a plain and with a TLS upstream;
- tlsq-proxy in front of and behind stunnel;
- tlsq-demo runs to completion with numbers that add up; --version;
- every program: --help, engine options, one-line errors, exit codes.
"""
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, case, finish, free_port, listening, wait_for  # noqa: E402

TOOLS, PKI = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix="tlsq-programs-")
subprocess.run(["sh", os.path.join(PKI, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
CA, SRV, SRVKEY = (os.path.join(TMP, f) for f in ("ca.pem", "server.pem", "server.key"))
CAT, ECHO, PROXY, DEMO = (os.path.join(TOOLS, "tlsq-" + p) for p in ("cat", "echo", "proxy",
                                                                     "demo"))
MIB = 1 << 20
BLOB = os.path.join(TMP, "blob.bin")
with open(BLOB, "wb") as f:
    f.write(os.urandom(MIB))
BLOB_SHA = hashlib.sha256(open(BLOB, "rb").read()).hexdigest()
TEXT = b"".join(b"line %06d of the tlsq text payload, checked line by line\n" % i
                for i in range(2000))


def sha(b):
    return hashlib.sha256(b).hexdigest()


def start_echo(procs, *extra):
    port = free_port()
    echo = Proc([ECHO, "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", SRVKEY, *extra])
    procs.append(echo)
    wait_for(listening(port), "tlsq-echo to listen")
    return port


def socat_roundtrip(procs, port, timeout=120):
    """1 MiB through socat's OpenSSL client to an echo; returns what came back.
    socat sends close_notify at stdin EOF and waits (-t) for the rest."""
    with open(BLOB, "rb") as stdin:
        p = Proc(["socat", "-t", "60", "-T", "60", "-",
                  f"OPENSSL:127.0.0.1:{port},cafile={CA},commonname=localhost"], stdin=stdin)
        procs.append(p)
        rc = p.wait(timeout)
    if rc != 0:
        raise AssertionError(f"socat exited {rc}: {p.text()[-300:]}")
    return p.stdout()


# --- tlsq-cat against OpenSSL and GnuTLS servers ---
@case("tlsq-cat -> openssl s_server: 1 MiB binary arrives intact, clean close, exit 0")
def _(procs):
    port = free_port()
    srv = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", SRV, "-key",
                SRVKEY, "-naccept", "1", "-quiet"])
    procs.append(srv)
    wait_for(listening(port), "s_server to listen")
    with open(BLOB, "rb") as stdin:
        cat = Proc([CAT, f"127.0.0.1:{port}", "--ca", CA, "--servername", "localhost"],
                   stdin=stdin)
        procs.append(cat)
        wait_for(lambda: len(srv.out) >= MIB, "1 MiB at s_server", timeout=120)
        srv.close_stdin()  # s_server then closes with close_notify
        rc = cat.wait(60)
    if sha(bytes(srv.out[:MIB])) != BLOB_SHA or len(srv.out) != MIB:
        raise AssertionError(f"s_server got {len(srv.out)} bytes, checksum mismatch")
    if rc != 0:
        raise AssertionError(f"tlsq-cat exited {rc}: {cat.text()}")


@case("tlsq-cat -> gnutls-serv --echo: text echoed line for line, exit 0")
def _(procs):
    port = free_port()
    srv = Proc(["gnutls-serv", "--echo", "-p", str(port), "--x509certfile", SRV,
                "--x509keyfile", SRVKEY])
    procs.append(srv)
    wait_for(listening(port), "gnutls-serv to listen")
    cat = Proc([CAT, f"localhost:{port}", "--ca", CA])
    procs.append(cat)
    cat.send(TEXT)
    wait_for(lambda: len(cat.out) >= len(TEXT), "the echo of every line", timeout=60)
    if bytes(cat.out[:len(TEXT)]) != TEXT:
        raise AssertionError("the echoed text differs")
    cat.close_stdin()  # close_notify; gnutls-serv answers it
    rc = cat.wait(30)
    if rc not in (0, 3):
        raise AssertionError(f"tlsq-cat exited {rc}: {cat.text()[-300:]}")


@case("tlsq-cat exit codes: 1 on refused and on an untrusted certificate, with a reason")
def _(procs):
    port = free_port()
    cat = Proc([CAT, f"127.0.0.1:{port}", "--ca", CA])
    procs.append(cat)
    rc = cat.wait(30)
    if rc != 1 or "refused" not in cat.text():
        raise AssertionError(f"refused: exit {rc}, {cat.text()!r}")
    untrusted = os.path.join(TMP, "untrusted")
    srv = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert",
                untrusted + ".pem", "-key", untrusted + ".key", "-naccept", "1", "-quiet"])
    procs.append(srv)
    wait_for(listening(port), "s_server to listen")
    cat = Proc([CAT, f"127.0.0.1:{port}", "--ca", CA, "--servername", "localhost"])
    procs.append(cat)
    rc = cat.wait(30)
    err = cat.text()
    if rc != 1 or "certificate" not in err or len(err.strip().splitlines()) != 1:
        raise AssertionError(f"untrusted: exit {rc}, stderr {err!r}")


# --- clients nobody here wrote against tlsq-echo ---
@case("socat (OpenSSL) -> tlsq-echo: 1 MiB binary echoed intact")
def _(procs):
    port = start_echo(procs)
    back = socat_roundtrip(procs, port)
    if sha(back) != BLOB_SHA:
        raise AssertionError(f"echo returned {len(back)} bytes, checksum mismatch")


@case("tlsq-echo --cipher-buffer 1: socat's 1 MiB still echoed intact")
def _(procs):
    port = start_echo(procs, "--cipher-buffer", "1")
    back = socat_roundtrip(procs, port, timeout=240)
    if sha(back) != BLOB_SHA:
        raise AssertionError(f"echo returned {len(back)} bytes, checksum mismatch")


@case("openssl s_client -> tlsq-echo: text echoed")
def _(procs):
    port = start_echo(procs)
    cli = Proc(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", CA,
                "-verify_hostname", "localhost", "-verify_return_error", "-quiet"])
    procs.append(cli)
    payload = TEXT[:64 * 1024]
    cli.send(payload)
    wait_for(lambda: len(cli.out) >= len(payload), "the echo", timeout=60)
    if bytes(cli.out[:len(payload)]) != payload:
        raise AssertionError("s_client got a different echo")


@case("gnutls-cli -> tlsq-echo: text echoed")
def _(procs):
    port = start_echo(procs)
    cli = Proc(["gnutls-cli", "--x509cafile", CA, "-p", str(port), "localhost"])
    procs.append(cli)
    payload = TEXT[:64 * 1024]
    wait_for(lambda: "Handshake was completed" in cli.text(), "the handshake")
    cli.send(payload)
    wait_for(lambda: payload in bytes(cli.out), "the echo", timeout=60)


@case("tlsq-cat -> tlsq-echo: 1 MiB round trip, half-close, exit 0")
def _(procs):
    port = start_echo(procs)
    with open(BLOB, "rb") as stdin:
        cat = Proc([CAT, f"127.0.0.1:{port}", "--ca", CA, "--servername", "localhost"],
                   stdin=stdin)
        procs.append(cat)
        rc = cat.wait(120)
    back = cat.stdout()
    if rc != 0 or sha(back) != BLOB_SHA:
        raise AssertionError(f"exit {rc}, {len(back)} bytes back")


# --- tlsq-proxy: P1, a client that stops reading still gets its abort through ---
def blaster(port, use_tls, got_abort, closed, ready):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(1)
    ready.set()
    conn, _ = ls.accept()
    ls.close()
    if use_tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(SRV, SRVKEY)
        conn = ctx.wrap_socket(conn, server_side=True)
    conn.settimeout(0.05)
    chunk = b"z" * 16384
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:  # blast, but keep reading: the abort must get through
            conn.send(chunk)
        except (socket.timeout, ssl.SSLWantWriteError, BlockingIOError):
            pass
        except OSError:
            break
        try:
            data = conn.recv(4096)
            if not data:
                closed.set()
                break
            seen += data
            if b"ABORT\n" in seen and not got_abort.is_set():
                got_abort.set()
        except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
            pass
        except (OSError, ssl.SSLError):
            closed.set()
            break
    conn.close()


for upstream_tls in (False, True):
    @case("tlsq-proxy P1: reader stops, its abort still arrives; close propagates "
          f"({'TLS' if upstream_tls else 'plain'} upstream)")
    def _(procs, upstream_tls=upstream_tls):
        up, lp = free_port(), free_port()
        got_abort, closed, ready = threading.Event(), threading.Event(), threading.Event()
        th = threading.Thread(target=blaster, args=(up, upstream_tls, got_abort, closed, ready),
                              daemon=True)
        th.start()
        ready.wait(10)
        argv = [PROXY, "--listen", f"127.0.0.1:{lp}", "--upstream", f"127.0.0.1:{up}",
                "--listen-plain", "--tx-budget", "64k", "--rx-budget", "64k"]
        argv += ["--upstream-tls", "--ca", CA, "--servername", "localhost"] if upstream_tls \
            else ["--upstream-plain"]
        proxy = Proc(argv)
        procs.append(proxy)
        wait_for(listening(lp), "tlsq-proxy to listen")
        c = socket.create_connection(("127.0.0.1", lp))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        got = 0
        while got < 4 * MIB:  # read a lot, then stop reading for good
            got += len(c.recv(65536))
        t0 = time.monotonic()
        c.sendall(b"ABORT\n")
        if not got_abort.wait(10):
            raise AssertionError("the abort did not reach the blasting server in 10 s")
        took = time.monotonic() - t0
        c.close()  # the close goes through the proxy to the server
        if not closed.wait(15):
            raise AssertionError("the server never saw the client's close")
        print(f"      abort arrived after {took * 1000:.0f} ms", flush=True)


# --- tlsq-proxy and stunnel, both ways ---
def echo_server(port, ready):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4)
    ready.set()
    conn, _ = ls.accept()
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    conn.close()
    ls.close()


def stunnel(procs, name, conf):
    path = os.path.join(TMP, name + ".conf")
    with open(path, "w") as f:
        f.write("foreground = yes\npid =\n" + conf)
    p = Proc(["stunnel4" if shutil.which("stunnel4") else "stunnel", path])
    procs.append(p)
    return p


def plain_roundtrip(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    data = open(BLOB, "rb").read()
    back = bytearray()

    def reader():
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            back.extend(chunk)
    th = threading.Thread(target=reader)
    th.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    th.join(120)
    s.close()
    return bytes(back)


@case("client -> tlsq-proxy (TLS upstream) -> stunnel server -> echo: 1 MiB intact")
def _(procs):
    ep, sp, pp = free_port(), free_port(), free_port()
    ready = threading.Event()
    threading.Thread(target=echo_server, args=(ep, ready), daemon=True).start()
    ready.wait(10)
    stunnel(procs, "front", f"[s]\naccept = 127.0.0.1:{sp}\nconnect = 127.0.0.1:{ep}\n"
                            f"cert = {SRV}\nkey = {SRVKEY}\n")
    wait_for(listening(sp), "stunnel to listen")
    proxy = Proc([PROXY, "--listen", f"127.0.0.1:{pp}", "--listen-plain", "--upstream",
                  f"127.0.0.1:{sp}", "--upstream-tls", "--ca", CA, "--servername", "localhost"])
    procs.append(proxy)
    wait_for(listening(pp), "tlsq-proxy to listen")
    back = plain_roundtrip(pp)
    if sha(back) != BLOB_SHA:
        raise AssertionError(f"{len(back)} bytes came back, checksum mismatch")


@case("client -> stunnel client -> tlsq-proxy (TLS listen) -> echo: 1 MiB intact")
def _(procs):
    ep, sp, pp = free_port(), free_port(), free_port()
    ready = threading.Event()
    threading.Thread(target=echo_server, args=(ep, ready), daemon=True).start()
    ready.wait(10)
    proxy = Proc([PROXY, "--listen", f"127.0.0.1:{pp}", "--listen-tls", "--cert", SRV,
                  "--key", SRVKEY, "--upstream", f"127.0.0.1:{ep}", "--upstream-plain"])
    procs.append(proxy)
    wait_for(listening(pp), "tlsq-proxy to listen")
    stunnel(procs, "back", f"[c]\nclient = yes\naccept = 127.0.0.1:{sp}\n"
                           f"connect = 127.0.0.1:{pp}\nCAfile = {CA}\nverifyChain = yes\n"
                           "checkHost = localhost\n")
    wait_for(listening(sp), "stunnel to listen")
    back = plain_roundtrip(sp)
    if sha(back) != BLOB_SHA:
        raise AssertionError(f"{len(back)} bytes came back, checksum mismatch")


# --- tlsq-demo ---
@case("tlsq-demo -d 2 -c 4: exit 0, sent == received == echoed, a summary that adds up")
def _(procs):
    demo = Proc([DEMO, "--duration", "2", "--clients", "4", "--message-size", "300"], merge=True)
    procs.append(demo)
    rc = demo.wait(120)
    out = demo.text()
    nums = {k: int(m.group(1)) for k in ("sent", "received", "echoed")
            if (m := re.search(rf"messages {k}\s+(\d+)", out))}
    if rc != 0 or len(nums) != 3:
        raise AssertionError(f"exit {rc}, summary {nums}")
    if not nums["sent"] == nums["received"] == nums["echoed"] > 0:
        raise AssertionError(f"numbers do not add up: {nums}")
    for want in ("latency p50", "latency p99", "latency p99.9", "TLSv1.3", "OK"):
        if want not in out:
            raise AssertionError(f"no '{want}' in the summary")


@case("tlsq-demo --version: version, crypto library, AES-NI as the CPU says")
def _(procs):
    out = subprocess.run([DEMO, "--version"], capture_output=True, text=True, timeout=30)
    aes = " aes " in " " + open("/proc/cpuinfo").read().replace("\n", " ") + " "
    if out.returncode != 0 or not re.search(r"\b\d+\.\d+\.\d+\b", out.stdout) or \
            "wolfSSL 5.5.4" not in out.stdout or f"AES-NI: {'yes' if aes else 'no'}" not in out.stdout:
        raise AssertionError(f"--version said {out.stdout!r}")


@case("every program: --help (exit 0, engine options), bad option (one line, exit 2)")
def _(procs):
    opts = ("--io-threads", "--tx-budget", "--rx-budget", "--cipher-buffer",
            "--handshake-timeout", "--idle-timeout", "--status")
    for prog in (CAT, ECHO, PROXY, DEMO):
        h = subprocess.run([prog, "--help"], capture_output=True, text=True, timeout=30)
        missing = [o for o in opts if o not in h.stdout]
        if h.returncode != 0 or missing:
            raise AssertionError(f"{prog} --help: exit {h.returncode}, missing {missing}")
        b = subprocess.run([prog, "--no-such-option"], capture_output=True, text=True,
                           timeout=30)
        if b.returncode == 0 or len(b.stderr.strip().splitlines()) > 2 or not b.stderr:
            raise AssertionError(f"{prog} bad option: exit {b.returncode}, {b.stderr!r}")
        c = subprocess.run([prog, "--cipher-buffer", "lots"], capture_output=True, text=True,
                           timeout=30)
        if c.returncode == 0 or "cipher-buffer" not in c.stderr:
            raise AssertionError(f"{prog} --cipher-buffer lots: {c.returncode} {c.stderr!r}")


shutil.rmtree(TMP, ignore_errors=True)
finish("programs")
