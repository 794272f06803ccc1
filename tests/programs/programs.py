#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The programs against peers nobody here wrote (docs/programs.md).

usage: programs.py TOOLS_DIR PKI_SCRIPT_DIR GROUP

One ctest per GROUP (tests/programs/CMakeLists.txt), so they run in parallel:

  cat      tlsq-cat <-> openssl s_server (1 MiB of binary each way, SHA-256)
           and gnutls-serv --echo (text); exit 0 on a clean close, 3 on a
           truncation (python ssl server closing the raw socket; s_server
           killed), 1 on refused / untrusted / expired / wrong host
  echo     socat, openssl s_client and gnutls-cli against tlsq-echo (1 MiB of
           binary by SHA-256), tlsq-cat against it, several clients at once,
           --cipher-buffer 1
  proxy    tlsq-proxy P1: a client that stops reading until the path is full
           still gets its abort to a blasting server within seconds; then
           every byte the server sent arrives and the close is clean both
           ways (plain and TLS upstream)
  stunnel  tlsq-proxy in front of and behind stunnel, 1 MiB by SHA-256
  demo     tlsq-demo -d 2 -c 4 and its summary; --version
  cli      every program: --help, --version, bad options and values
  tls      first contact with certificates: verify by IP address (v4 and v6,
           match and mismatch, cross-checked with openssl s_client
           -verify_ip), key/certificate/CA errors that name their cause,
           warnings for expired, not-yet-valid and CA certificates, a non-TLS
           peer named as such, a stream client at a message-mode server,
           contradictory flags refused, the listen error said once

Every wait is a polled condition with a deadline (never a sleep), ports are
picked free, deadlines are generous for the ASan build.
"""
import hashlib
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import (Proc, case, finish, free_port, listening, plain_roundtrip,  # noqa: E402
                     wait_for)

GROUPS = ("cat", "echo", "proxy", "stunnel", "demo", "cli", "tls")
if len(sys.argv) != 4 or sys.argv[3] not in GROUPS:
    sys.exit(f"usage: programs.py TOOLS_DIR PKI_SCRIPT_DIR {'|'.join(GROUPS)}")
TOOLS, PKI, GROUP = sys.argv[1:4]
TMP = tempfile.mkdtemp(prefix=f"tlsq-programs-{GROUP}-")
subprocess.run(["sh", os.path.join(PKI, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pki(name):
    return os.path.join(TMP, name + ".pem"), os.path.join(TMP, name + ".key")


CA = pki("ca")[0]
SRV, SRVKEY = pki("server")
CAT, ECHO, PROXY, DEMO = (os.path.join(TOOLS, "tlsq-" + p) for p in ("cat", "echo", "proxy",
                                                                     "demo"))
# The benchmarks are built in bench/, beside tools/ in the build tree.
BENCH, QBENCH = (os.path.join(os.path.dirname(os.path.normpath(TOOLS)), "bench", "tlsq-" + p)
                 for p in ("bench", "qbench"))
MIB = 1 << 20


def blob_file(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


BLOB = os.urandom(MIB)
BLOB2 = os.urandom(MIB)
BLOB_PATH = blob_file("blob.bin", BLOB)
# Text for the line-based peers (gnutls-serv --echo): 1.1 MiB of lines.
TEXT = b"".join(b"line %06d of the tlsq text payload, checked line by line\n" % i
                for i in range(20000))
TEXT_PATH = blob_file("text.txt", TEXT)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def same(what, got, want):
    if len(got) != len(want) or sha(got) != sha(want):
        raise AssertionError(f"{what}: {len(got)} bytes, want {len(want)}, "
                             f"sha256 {sha(got)[:16]} want {sha(want)[:16]}")


def one_line(what, err):
    lines = err.strip().splitlines()
    if len(lines) != 1:
        raise AssertionError(f"{what}: stderr is {len(lines)} lines, want one: {err!r}")
    return lines[0]


def stderr_of(p):
    """A child's stderr, once it has exited (its pumps joined)."""
    p.stdout()
    return bytes(p.err).decode("utf-8", "replace")


def group(name, title):
    """case() if the group was asked for, else the case is not run."""
    if name == GROUP:
        return case(title)
    return lambda fn: fn


def feed(proc, data):
    """Writes data to a child's stdin from a thread (a pipe may fill up while
    the child waits for its peer); returns the thread."""
    def run():
        try:
            proc.send(data)
        except (BrokenPipeError, OSError):
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def stop(proc, what):
    """SIGTERM: the program closes what is open and exits 0 (under ASan a
    leak or a late error shows up here as another status)."""
    proc.p.send_signal(signal.SIGTERM)
    rc = proc.wait(60)
    if rc != 0:
        raise AssertionError(f"{what} exited {rc} on SIGTERM: {proc.text()[-1000:]}")


def start_echo(procs, *extra):
    port = free_port()
    echo = Proc([ECHO, "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", SRVKEY, *extra])
    procs.append(echo)
    wait_for(listening(port), "tlsq-echo to listen", timeout=60)
    return port, echo


def run_from_file(procs, argv, path, timeout):
    """Runs a client with stdin from a file; returns (exit status, stdout, stderr)."""
    with open(path, "rb") as stdin:
        p = Proc(argv, stdin=stdin)
        procs.append(p)
        rc = p.wait(timeout)
    return rc, p.stdout(), stderr_of(p)


def socat_argv(port):
    # -t: after stdin EOF (socat then sends close_notify) wait this long for the rest
    return ["socat", "-t", "120", "-T", "120", "-",
            f"OPENSSL:127.0.0.1:{port},cafile={CA},verify=1,commonname=localhost"]


def gnutls_cli_argv(port):
    return ["gnutls-cli", "--logfile=/dev/null", "--x509cafile", CA, "-p", str(port), "localhost"]


def cat_argv(port, *extra):
    return [CAT, f"127.0.0.1:{port}", "--ca", CA, "--servername", "localhost", *extra]


# ---------------------------------------------------------------- tlsq-cat
@group("cat", "tlsq-cat <-> openssl s_server: 1 MiB of binary each way, both exit 0")
def _(procs):
    port = free_port()
    srv = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", SRV, "-key",
                SRVKEY, "-naccept", "1", "-quiet"])
    procs.append(srv)
    wait_for(listening(port), "s_server to listen")
    cat = Proc(cat_argv(port))
    procs.append(cat)
    feed(srv, BLOB2)  # s_server: its stdin to the client
    feed(cat, BLOB)
    wait_for(lambda: len(srv.out) >= MIB and len(cat.out) >= MIB, "1 MiB each way", timeout=120)
    # tlsq-cat's stdin EOF: close_notify after the data; s_server answers
    # with its close_notify and exits; tlsq-cat then exits 0.
    cat.close_stdin()
    rc = cat.wait(60)
    src = srv.wait(60)
    same("s_server received", bytes(srv.out), BLOB)
    same("tlsq-cat received", cat.stdout(), BLOB2)
    if rc != 0 or src != 0:
        raise AssertionError(f"tlsq-cat exited {rc}, s_server {src}: {cat.text()[-300:]}")


@group("cat", "tlsq-cat <-> tlsq-cat: both send 256 KiB and close at once, 10 rounds intact")
def _(procs):
    # Both sides reach stdin EOF and send close_notify at about the same
    # time, each while the other's data is still arriving: every byte
    # before each close_notify must come out, and both exit 0.
    a, b = BLOB[:256 << 10], BLOB2[:256 << 10]
    a_path, b_path = blob_file("a256.bin", a), blob_file("b256.bin", b)
    for rnd in range(10):
        port = free_port()
        with open(a_path, "rb") as sin:
            srv = Proc([CAT, "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", SRVKEY],
                       stdin=sin)
        procs.append(srv)
        wait_for(listening(port), "tlsq-cat to listen", timeout=60)
        rc, out, err = run_from_file(procs, cat_argv(port), b_path, 120)
        src = srv.wait(60)
        same(f"round {rnd}: client received", out, a)
        same(f"round {rnd}: server received", srv.stdout(), b)
        if rc != 0 or src != 0:
            raise AssertionError(f"round {rnd}: client exited {rc}, server {src}: "
                                 f"{err[-300:]} {stderr_of(srv)[-300:]}")


@group("cat", "tlsq-cat -> gnutls-serv --echo: 1.1 MiB of text echoed, exit 0")
def _(procs):
    port = free_port()
    srv = Proc(["gnutls-serv", "--echo", "-p", str(port), "--x509certfile", SRV,
                "--x509keyfile", SRVKEY])
    procs.append(srv)
    wait_for(listening(port), "gnutls-serv to listen")
    rc, out, err = run_from_file(procs, [CAT, f"localhost:{port}", "--ca", CA], TEXT_PATH, 120)
    same("the echo", out, TEXT)
    if rc != 0:
        raise AssertionError(f"tlsq-cat exited {rc}: {err[-300:]}")


def truncating_server(ls, state):
    """Sends one line over TLS, then closes the TCP connection without
    close_notify."""
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(SRV, SRVKEY)
        conn, _ = ls.accept()
        conn.settimeout(60)
        s = ctx.wrap_socket(conn, server_side=True)
        s.sendall(b"partial line\n")
        raw = socket.socket(fileno=s.detach())
        raw.shutdown(socket.SHUT_RDWR)
        raw.close()
        state["ok"] = True
    except Exception as e:  # noqa: BLE001 - reported by the case
        state["error"] = repr(e)
    finally:
        ls.close()


@group("cat", "tlsq-cat exit 3: peer closes TCP without close_notify (stdin open, stdin at EOF)")
def _(procs):
    for stdin_open in (True, False):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        port = ls.getsockname()[1]
        state = {}
        th = threading.Thread(target=truncating_server, args=(ls, state), daemon=True)
        th.start()
        cat = Proc(cat_argv(port), stdin=subprocess.PIPE if stdin_open else subprocess.DEVNULL)
        procs.append(cat)
        rc = cat.wait(60)
        th.join(30)
        if not state.get("ok"):
            raise AssertionError(f"the python server failed: {state.get('error')}")
        line = one_line("truncated", stderr_of(cat))
        if rc != 3 or "truncated" not in line or cat.stdout() != b"partial line\n":
            raise AssertionError(f"stdin open={stdin_open}: exit {rc}, stdout "
                                 f"{cat.stdout()!r}, stderr {line!r}")


@group("cat", "tlsq-cat exit 3: openssl s_server killed mid-connection")
def _(procs):
    port = free_port()
    srv = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", SRV, "-key",
                SRVKEY, "-naccept", "1", "-quiet"])
    procs.append(srv)
    wait_for(listening(port), "s_server to listen")
    cat = Proc(cat_argv(port))
    procs.append(cat)
    srv.send(b"hello from s_server\n")
    wait_for(lambda: bytes(cat.out) == b"hello from s_server\n", "the line at tlsq-cat")
    srv.p.send_signal(signal.SIGKILL)
    srv.wait(30)
    rc = cat.wait(60)
    line = one_line("killed peer", stderr_of(cat))
    if rc != 3 or "truncated" not in line:
        raise AssertionError(f"exit {rc}, stderr {line!r}")


@group("cat", "tlsq-cat exit 1 with one line: refused, untrusted, expired, wrong host")
def _(procs):
    port = free_port()
    cat = Proc(cat_argv(port), stdin=subprocess.DEVNULL)
    procs.append(cat)
    rc = cat.wait(60)
    line = one_line("refused", stderr_of(cat))
    if rc != 1 or "refused" not in line:
        raise AssertionError(f"refused: exit {rc}, {line!r}")
    for name in ("untrusted", "expired", "wronghost"):
        port = free_port()
        cert, key = pki(name)
        srv = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", cert,
                    "-key", key, "-naccept", "1", "-quiet"])
        procs.append(srv)
        wait_for(listening(port), "s_server to listen")
        cat = Proc(cat_argv(port), stdin=subprocess.DEVNULL)
        procs.append(cat)
        rc = cat.wait(60)
        line = one_line(name, stderr_of(cat))
        if rc != 1 or not re.search(r"certificate|verif|ASN|date|name|domain", line, re.I):
            raise AssertionError(f"{name}: exit {rc}, stderr {line!r}")
        if cat.stdout():
            raise AssertionError(f"{name}: data on stdout: {cat.stdout()[:100]!r}")


# --------------------------------------------------------------- tlsq-echo
@group("echo", "socat (OpenSSL) -> tlsq-echo: 1 MiB of binary echoed, exit 0")
def _(procs):
    port, echo = start_echo(procs)
    rc, out, err = run_from_file(procs, socat_argv(port), BLOB_PATH, 180)
    same("socat got back", out, BLOB)
    if rc != 0:
        raise AssertionError(f"socat exited {rc}: {err[-300:]}")
    stop(echo, "tlsq-echo")


@group("echo", "openssl s_client -> tlsq-echo: 1 MiB of binary echoed")
def _(procs):
    port, echo = start_echo(procs, "--verbose")
    # -ign_eof: s_client keeps reading after its stdin ends (without it, it
    # quits at stdin EOF and cuts the echo short).
    with open(BLOB_PATH, "rb") as stdin:
        cli = Proc(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", CA,
                    "-verify_hostname", "localhost", "-verify_return_error", "-quiet",
                    "-ign_eof"], stdin=stdin)
    procs.append(cli)
    wait_for(lambda: len(cli.out) >= MIB, "1 MiB back at s_client", timeout=180)
    same("s_client got back", bytes(cli.out), BLOB)
    if cli.p.poll() is not None:
        raise AssertionError(f"s_client exited {cli.p.returncode} before the end")
    cli.kill()  # the server sees a truncation, logs it, and keeps serving
    wait_for(lambda: "without close_notify" in echo.text(), "tlsq-echo to log the truncation")
    stop(echo, "tlsq-echo")


@group("echo", "gnutls-cli -> tlsq-echo: 1 MiB of binary echoed, exit 0")
def _(procs):
    port, echo = start_echo(procs)
    rc, out, err = run_from_file(procs, gnutls_cli_argv(port), BLOB_PATH, 180)
    same("gnutls-cli got back", out, BLOB)
    if rc != 0:
        raise AssertionError(f"gnutls-cli exited {rc}: {err[-300:]}")
    stop(echo, "tlsq-echo")


@group("echo", "tlsq-cat -> tlsq-echo: 1 MiB round trip, half-close, exit 0")
def _(procs):
    port, echo = start_echo(procs)
    rc, out, err = run_from_file(procs, cat_argv(port), BLOB_PATH, 180)
    same("tlsq-cat got back", out, BLOB)
    if rc != 0:
        raise AssertionError(f"tlsq-cat exited {rc}: {err[-300:]}")
    stop(echo, "tlsq-echo")


@group("echo", "tlsq-echo: socat, gnutls-cli, tlsq-cat and s_client at once, 1 MiB each")
def _(procs):
    port, echo = start_echo(procs, "--io-threads", "2")
    s_client = Proc(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", CA,
                     "-verify_return_error", "-quiet", "-ign_eof"])
    procs.append(s_client)
    feed(s_client, BLOB2)
    clients = []
    for argv in (socat_argv(port), gnutls_cli_argv(port), cat_argv(port)):
        with open(BLOB_PATH, "rb") as stdin:
            p = Proc(argv, stdin=stdin)
        procs.append(p)
        clients.append(p)
    for p in clients:
        rc = p.wait(240)
        same(f"{p.p.args[0]} got back", p.stdout(), BLOB)
        if rc != 0:
            raise AssertionError(f"{p.p.args[0]} exited {rc}: {p.text()[-300:]}")
    wait_for(lambda: len(s_client.out) >= MIB, "1 MiB back at s_client", timeout=120)
    same("s_client got back", bytes(s_client.out), BLOB2)
    stop(echo, "tlsq-echo (a client still connected)")


@group("echo", "tlsq-echo --cipher-buffer 1: 1 MiB still echoed intact (socat)")
def _(procs):
    port, echo = start_echo(procs, "--cipher-buffer", "1")
    rc, out, err = run_from_file(procs, socat_argv(port), BLOB_PATH, 240)
    same("socat got back", out, BLOB)
    if rc != 0:
        raise AssertionError(f"socat exited {rc}: {err[-300:]}")
    stop(echo, "tlsq-echo")


# -------------------------------------------------------------- tlsq-proxy
class Blaster(threading.Thread):
    """A server that sends random data as fast as the path takes it while
    reading what comes back. It reports `stalled` once its sends have made
    no progress for STALL seconds (the whole path is full), `got_abort` when
    "ABORT\\n" arrives; then it finishes the record it was sending, closes
    cleanly (close_notify or FIN) and waits for the peer's clean close."""
    STALL = 0.5

    def __init__(self, ls, use_tls):
        super().__init__(daemon=True)
        self.ls, self.use_tls = ls, use_tls
        self.stalled, self.got_abort, self.done = (threading.Event(), threading.Event(),
                                                   threading.Event())
        self.sent = hashlib.sha256()
        self.sent_len = 0
        self.abort_at = None
        self.error = None
        self.clean_close = False

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - reported by the case
            self.error = repr(e)
        finally:
            self.done.set()

    def _run(self):
        conn, _ = self.ls.accept()
        self.ls.close()
        conn.settimeout(60)
        if self.use_tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(SRV, SRVKEY)
            conn = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
        pool = os.urandom(MIB)
        off = 0
        pending = b""
        seen = b""
        last_progress = time.monotonic()
        deadline = last_progress + 240
        conn.settimeout(0.02)
        while not self.got_abort.is_set():
            now = time.monotonic()
            if now > deadline:
                raise AssertionError("no abort in 240 s")
            if not pending:
                pending = pool[off:off + 16384]
                off = (off + 16384) % MIB
            readable, writable, _ = select.select([conn], [conn], [], 0.02)
            if writable:
                try:  # an SSL write that timed out is retried with the same bytes
                    n = conn.send(pending)
                    self.sent.update(pending[:n])
                    self.sent_len += n
                    pending = pending[n:]
                    last_progress = time.monotonic()
                except (socket.timeout, ssl.SSLWantWriteError, BlockingIOError):
                    pass
            if now - last_progress > self.STALL and self.sent_len > 4 * MIB:
                self.stalled.set()
            if readable or (self.use_tls and conn.pending()):
                try:
                    data = conn.recv(4096)
                    if not data:
                        raise AssertionError("the proxy closed before the abort")
                    seen += data
                    if b"ABORT\n" in seen:
                        self.abort_at = time.monotonic()
                        self.got_abort.set()
                except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
                    pass
        if seen != b"ABORT\n":
            raise AssertionError(f"the server received {seen[:100]!r}")
        conn.settimeout(120)  # the client reads again: finish, then close
        while pending:
            n = conn.send(pending)
            self.sent.update(pending[:n])
            self.sent_len += n
            pending = pending[n:]
        if self.use_tls:
            conn = conn.unwrap()  # close_notify out, waits for the peer's
            self.clean_close = True
            conn.close()
        else:
            conn.shutdown(socket.SHUT_WR)
            self.clean_close = conn.recv(1) == b""  # the client's FIN, no reset
            conn.close()


for upstream_tls in (False, True):
    @group("proxy", "tlsq-proxy P1: reader stops, its abort still arrives, then a clean close "
           f"({'TLS' if upstream_tls else 'plain'} upstream)")
    def _(procs, upstream_tls=upstream_tls):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        up = ls.getsockname()[1]
        srv = Blaster(ls, upstream_tls)
        srv.start()
        lp = free_port()
        argv = [PROXY, "--listen", f"127.0.0.1:{lp}", "--upstream", f"127.0.0.1:{up}",
                "--listen-plain", "--tx-budget", "64k", "--rx-budget", "64k", "--verbose"]
        argv += ["--upstream-tls", "--ca", CA, "--servername", "localhost"] if upstream_tls \
            else ["--upstream-plain"]
        proxy = Proc(argv)
        procs.append(proxy)
        wait_for(listening(lp), "tlsq-proxy to listen")
        c = socket.create_connection(("127.0.0.1", lp), timeout=120)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        got = hashlib.sha256()
        got_len = 0
        while got_len < 4 * MIB:  # read a lot...
            data = c.recv(65536)
            if not data:
                raise AssertionError(f"EOF after {got_len} bytes: {srv.error}")
            got.update(data)
            got_len += len(data)
        # ...then stop reading until the server cannot send any more
        wait_for(lambda: srv.stalled.is_set() or srv.done.is_set(), "the path to fill up",
                 timeout=120)
        if not srv.stalled.is_set():
            raise AssertionError(f"the server ended: {srv.error}")
        t0 = time.monotonic()
        c.sendall(b"ABORT\n")
        if not srv.got_abort.wait(10):
            raise AssertionError("the abort did not reach the blocked server in 10 s "
                                 f"({srv.error})")
        took = srv.abort_at - t0
        while True:  # read again: everything the server sent, then its close
            data = c.recv(65536)
            if not data:
                break
            got.update(data)
            got_len += len(data)
        c.close()
        if not srv.done.wait(60) or srv.error:
            raise AssertionError(f"the server: {srv.error or 'no clean close in 60 s'}")
        if not srv.clean_close:
            raise AssertionError("the server did not see a clean close")
        if got_len != srv.sent_len or got.hexdigest() != srv.sent.hexdigest():
            raise AssertionError(f"the client got {got_len} bytes, the server sent "
                                 f"{srv.sent_len} (or the checksum differs)")
        wait_for(lambda: "closed cleanly" in proxy.text(), "the proxy to log a clean close")
        if "aborted" in proxy.text():
            raise AssertionError(f"the proxy aborted: {proxy.text()[-300:]}")
        stop(proxy, "tlsq-proxy")
        print(f"      abort arrived after {took * 1000:.0f} ms (path full); "
              f"{got_len} bytes delivered", flush=True)


# ----------------------------------------------------- tlsq-proxy + stunnel
def echo_server(ls):
    """A plain TCP echo for one connection; half-closes after the peer's FIN."""
    conn, _ = ls.accept()
    ls.close()
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    conn.close()


def start_echo_server():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    threading.Thread(target=echo_server, args=(ls,), daemon=True).start()
    return ls.getsockname()[1]


def stunnel(procs, name, conf):
    path = os.path.join(TMP, name + ".conf")
    with open(path, "w") as f:
        f.write("foreground = yes\npid =\ndebug = notice\n" + conf)
    p = Proc(["stunnel4" if shutil.which("stunnel4") else "stunnel", path])
    procs.append(p)
    return p


@group("stunnel", "client -> tlsq-proxy (TLS upstream) -> stunnel server -> echo: 1 MiB")
def _(procs):
    ep, sp, pp = start_echo_server(), free_port(), free_port()
    st = stunnel(procs, "front", f"[s]\naccept = 127.0.0.1:{sp}\nconnect = 127.0.0.1:{ep}\n"
                                 f"cert = {SRV}\nkey = {SRVKEY}\n")
    wait_for(listening(sp), "stunnel to listen")
    proxy = Proc([PROXY, "--listen", f"127.0.0.1:{pp}", "--listen-plain", "--upstream",
                  f"127.0.0.1:{sp}", "--upstream-tls", "--ca", CA, "--servername", "localhost",
                  "-v"])
    procs.append(proxy)
    wait_for(listening(pp), "tlsq-proxy to listen")
    same("came back", plain_roundtrip(pp, BLOB), BLOB)
    wait_for(lambda: "closed cleanly" in proxy.text(), "the proxy to log a clean close")
    wait_for(lambda: f"{MIB} byte(s) sent to socket" in st.text(),
             "stunnel to log 1 MiB to the echo")
    stop(proxy, "tlsq-proxy")


@group("stunnel", "client -> stunnel client -> tlsq-proxy (TLS listen) -> echo: 1 MiB")
def _(procs):
    ep, sp, pp = start_echo_server(), free_port(), free_port()
    proxy = Proc([PROXY, "--listen", f"127.0.0.1:{pp}", "--listen-tls", "--cert", SRV,
                  "--key", SRVKEY, "--upstream", f"127.0.0.1:{ep}", "--upstream-plain", "-v"])
    procs.append(proxy)
    wait_for(listening(pp), "tlsq-proxy to listen")
    st = stunnel(procs, "back", f"[c]\nclient = yes\naccept = 127.0.0.1:{sp}\n"
                                f"connect = 127.0.0.1:{pp}\nCAfile = {CA}\nverifyChain = yes\n"
                                "checkHost = localhost\n")
    wait_for(listening(sp), "stunnel to listen")
    same("came back", plain_roundtrip(sp, BLOB), BLOB)
    wait_for(lambda: "closed cleanly" in proxy.text(), "the proxy to log a clean close")
    wait_for(lambda: f"{MIB} byte(s) sent to TLS" in st.text(), "stunnel to log 1 MiB")
    stop(proxy, "tlsq-proxy")


# --------------------------------------------------------------- tlsq-demo
def field(out, name):
    m = re.search(rf"^\s*{re.escape(name)}\s+([\d.]+)", out, re.M)
    if not m:
        raise AssertionError(f"no '{name}' in the summary:\n{out}")
    return float(m.group(1))


@group("demo", "tlsq-demo -d 2 -c 4: exit 0, sent == received == echoed, numbers add up")
def _(procs):
    demo = Proc([DEMO, "-d", "2", "-c", "4"])
    procs.append(demo)
    rc = demo.wait(180)
    out = demo.stdout().decode("utf-8", "replace")
    if rc != 0:
        raise AssertionError(f"exit {rc}: {demo.text()[-500:]}")
    sent, received, echoed = (int(field(out, "messages " + k))
                              for k in ("sent", "received", "echoed"))
    if not sent == received == echoed > 0:
        raise AssertionError(f"sent {sent}, received {received}, echoed {echoed}")
    secs, rate = field(out, "duration"), field(out, "round trips/s")
    size = int(re.search(r"(\d+)-byte messages", out).group(1))
    if field(out, "clients") != 4 or not 2.0 <= secs < 30:
        raise AssertionError(f"clients/duration: {out}")
    if abs(rate - received / secs) > 0.01 * rate + 1:
        raise AssertionError(f"round trips/s {rate} != {received} / {secs}")
    mbs = field(out, "throughput")
    if abs(mbs - received * size / secs / 1e6) > 0.01 * mbs + 0.01:
        raise AssertionError(f"throughput {mbs} MB/s != {received} x {size} B / {secs} s")
    lat = [field(out, "latency " + p) for p in ("p50", "p99", "p99.9", "max")]
    if lat != sorted(lat) or lat[0] <= 0:
        raise AssertionError(f"latencies out of order: {lat}")
    progress = [int(n) for n in re.findall(r"(\d+) round trips", out)]
    if not progress or progress != sorted(progress) or progress[-1] > received:
        raise AssertionError(f"progress lines {progress} vs {received} received")
    for want in ("TLSv1.3", "result               OK"):
        if want not in out:
            raise AssertionError(f"no '{want}' in the summary:\n{out}")


@group("demo", "tlsq-demo --version: version, crypto library, AES-NI as /proc/cpuinfo says")
def _(procs):
    out = subprocess.run([DEMO, "--version"], capture_output=True, text=True, timeout=60)
    with open("/proc/cpuinfo") as f:
        flags = [ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")]
    aes = bool(flags) and "aes" in flags[0]
    want = f"AES-NI: {'yes' if aes else 'no'}"
    if out.returncode != 0 or not re.search(r"tlsq-demo \(tlsq\) \d+\.\d+\.\d+", out.stdout) \
            or not re.search(r"wolfSSL \d+\.\d+\.\d+", out.stdout) or want not in out.stdout:
        raise AssertionError(f"exit {out.returncode}, want '{want}': {out.stdout!r}")


# ------------------------------------------------------- every program's CLI
ENGINE_OPTS = ("--io-threads", "--tx-budget", "--rx-budget", "--cipher-buffer",
               "--handshake-timeout", "--idle-timeout", "--status")


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@group("cli", "every program: --help exits 0 and lists the engine options; --version")
def _(procs):
    for prog in (CAT, ECHO, PROXY, DEMO):
        h = run([prog, "--help"])
        missing = [o for o in ENGINE_OPTS if o not in h.stdout]
        if h.returncode != 0 or missing or h.stderr:
            raise AssertionError(f"{prog} --help: exit {h.returncode}, missing {missing}, "
                                 f"stderr {h.stderr!r}")
        v = run([prog, "--version"])
        name = os.path.basename(prog)
        if v.returncode != 0 or not v.stdout.startswith(f"{name} (tlsq) "):
            raise AssertionError(f"{prog} --version: exit {v.returncode}, {v.stdout!r}")


@group("cli", "tlsq-bench and tlsq-qbench --version: 'NAME (tlsq) X.Y.Z', exit 0")
def _(procs):
    for prog in (BENCH, QBENCH):
        if not os.path.exists(prog):
            print(f"      {os.path.basename(prog)} is not built here: skipped", flush=True)
            continue
        v = run([prog, "--version"])
        name = os.path.basename(prog)
        if v.returncode != 0 or not re.match(rf"{name} \(tlsq\) \d+\.\d+\.\d+\n", v.stdout):
            raise AssertionError(f"{name} --version: exit {v.returncode}, {v.stdout!r} "
                                 f"{v.stderr!r}")
        h = run([prog, "--help"])
        if "--version" not in h.stdout:
            raise AssertionError(f"{name} --help does not list --version")


@group("cli", "every program: bad options and values exit 1 with one line on stderr")
def _(procs):
    bad = (["--no-such-option"], ["--io-threads"], ["--cipher-buffer", "lots"],
           ["--tx-budget", "-5"], ["--idle-timeout", "soon"])
    for prog in (CAT, ECHO, PROXY, DEMO):
        name = os.path.basename(prog)
        for args in bad:
            r = run([prog, *args])
            line = one_line(f"{name} {' '.join(args)}", r.stderr)
            if r.returncode != 1 or not line.startswith(name + ": ") or \
                    args[0].lstrip("-") not in line or r.stdout:
                raise AssertionError(f"{name} {args}: exit {r.returncode}, {line!r}")
    for argv in ([CAT], [CAT, "a:1", "b:2"], [ECHO], [PROXY, "--listen", "0"],
                 [PROXY, "--listen", "0", "--upstream", "x:1", "--listen-plain",
                  "--self-signed"]):
        r = run(argv)
        line = one_line(" ".join(argv[1:]) or "no arguments", r.stderr)
        if r.returncode != 1:
            raise AssertionError(f"{argv}: exit {r.returncode}, {line!r}")

# ------------------------------------------------ first contact: TLS profile
def s_server(procs, name, host="127.0.0.1"):
    """openssl s_server with PKI certificate NAME on host (v4 or v6), one
    connection; returns the port."""
    port = free_port()
    cert, key = pki(name)
    srv = Proc(["openssl", "s_server", "-accept", f"[{host}]:{port}" if ":" in host
                else f"{host}:{port}", "-cert", cert, "-key", key, "-naccept", "1", "-quiet"])
    procs.append(srv)
    wait_for(listening(port), "s_server to listen")
    return port, srv


def cat_to(procs, addr, *extra, data=b"ping\n"):
    """tlsq-cat --ca ca.pem ADDR (no --servername: the host is what is
    verified) with data on stdin; returns (exit status, stdout, stderr)."""
    cat = Proc([CAT, "--ca", CA, addr, *extra])
    procs.append(cat)
    feed(cat, data).join(30)
    cat.close_stdin()
    rc = cat.wait(60)
    return rc, cat.stdout(), stderr_of(cat)


@group("tls", "verify by IP: IP SANs match at 127.0.0.1 and [::1]; other IPs, or IPs "
       "written as DNS names, do not (openssl s_client -verify_ip agrees)")
def _(procs):
    cases = [("server", "127.0.0.1", True), ("server", "::1", True),
             ("wrongip", "127.0.0.1", False), ("wrongip", "::1", False),
             ("dnsip", "127.0.0.1", False), ("dnsip", "::1", False)]
    for name, ip, ok in cases:
        port, srv = s_server(procs, name, ip)
        addr = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        srv.send(b"hello over IP\n")
        rc, out, err = cat_to(procs, addr)
        if ok and (rc != 0 or out != b"hello over IP\n" or b"ping\n" not in bytes(srv.out)):
            raise AssertionError(f"{name} at {addr}: exit {rc}, stdout {out!r}, {err!r}")
        if not ok:
            line = one_line(f"{name} at {addr}", err)
            if rc != 1 or f"IP address mismatch, wanted {ip}," not in line or out:
                raise AssertionError(f"{name} at {addr}: exit {rc}, {line!r}, stdout {out!r}")
        srv.kill()
        # The cross-check: OpenSSL's verdict on the same certificate and IP.
        port, srv = s_server(procs, name, ip)
        addr = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        r = subprocess.run(["openssl", "s_client", "-connect", addr, "-CAfile", CA,
                            "-verify_ip", ip, "-verify_return_error"],
                           input=b"", capture_output=True, timeout=60)
        srv.kill()
        if (r.returncode == 0) != ok:
            raise AssertionError(f"openssl s_client -verify_ip {ip} on {name}: exit "
                                 f"{r.returncode}, tlsq said {'ok' if ok else 'mismatch'}")


@group("tls", "tlsq-echo with a certificate with IP SANs: tlsq-cat 127.0.0.1 and "
       "openssl s_client -verify_ip 127.0.0.1 both verify it")
def _(procs):
    port, echo = start_echo(procs)
    rc, out, err = cat_to(procs, f"127.0.0.1:{port}", data=BLOB[:65536])
    same("the echo at 127.0.0.1", out, BLOB[:65536])
    if rc != 0:
        raise AssertionError(f"tlsq-cat 127.0.0.1: exit {rc}: {err}")
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", CA,
                        "-verify_ip", "127.0.0.1", "-verify_return_error"], input=b"",
                       capture_output=True, timeout=60)
    if r.returncode != 0 or b"Verify return code: 0 (ok)" not in r.stdout:
        raise AssertionError(f"s_client -verify_ip: exit {r.returncode}")
    stop(echo, "tlsq-echo")


def profile_error(args, want, what):
    """tlsq-echo with these TLS arguments exits 1 with one line containing want."""
    r = run([ECHO, "--listen", "127.0.0.1:0", *args])
    line = one_line(what, r.stderr)
    if r.returncode != 1 or want not in line or not line.startswith("tlsq-echo: "):
        raise AssertionError(f"{what}: exit {r.returncode}, {line!r}, want {want!r}")


@group("tls", "key and certificate errors name the cause: mismatch, missing, encrypted, "
       "not a key, swapped; the CA error gives errno")
def _(procs):
    ck = pki("client")[1]
    enc, der = os.path.join(TMP, "enc.key"), os.path.join(TMP, "der.key")
    subprocess.run(["openssl", "pkey", "-in", SRVKEY, "-aes256", "-passout", "pass:x", "-out",
                    enc], check=True)
    with open(der, "wb") as f:  # neither PEM nor a DER key (DER keys load: certs.py)
        f.write(b"\x30\x03\x02\x01\x00garbage")
    missing = os.path.join(TMP, "no-such.key")
    profile_error(["--cert", SRV, "--key", ck],
                  f"the private key {ck} does not match the certificate {SRV}", "mismatch")
    profile_error(["--cert", SRV, "--key", missing],
                  f"cannot read the private key {missing}: No such file or directory",
                  "missing key")
    profile_error(["--cert", SRV, "--key", enc], f"the private key {enc} is encrypted",
                  "encrypted key")
    profile_error(["--cert", SRV, "--key", der], f"the private key {der} is neither PEM nor a DER key",
                  "not a key")
    profile_error(["--cert", SRVKEY, "--key", SRV], "(certificate and key swapped?)", "swapped")
    profile_error(["--cert", missing, "--key", SRVKEY],
                  f"cannot read the certificate {missing}: No such file or directory",
                  "missing certificate")
    profile_error(["--cert", SRV, "--key", SRVKEY, "--ca", missing],
                  f"cannot read the CA file {missing}: No such file or directory", "missing CA")
    profile_error(["--cert", SRV, "--key", SRVKEY, "--ca", SRVKEY],
                  f"the CA file {SRVKEY} holds no usable PEM certificate", "CA not a cert")


@group("tls", "a warning line for an expired, a not-yet-valid and a CA certificate; none "
       "for a good one")
def _(procs):
    for name, want in (("expired", "expired on 2021-01-01 00:00:00 UTC"),
                       ("future", "is not valid before 2099-01-01 00:00:00 UTC"),
                       ("ca", "is a CA certificate (basicConstraints CA:TRUE"),
                       ("server", None)):
        cert, key = pki(name)
        port = free_port()
        echo = Proc([ECHO, "--listen", f"127.0.0.1:{port}", "--cert", cert, "--key", key])
        procs.append(echo)
        wait_for(listening(port), f"tlsq-echo ({name}) to listen", timeout=60)
        stop(echo, f"tlsq-echo ({name})")
        lines = stderr_of(echo).strip().splitlines()
        warns = [ln for ln in lines if ln.startswith("tlsq-echo: warning: ")]
        if want is None:
            if warns:
                raise AssertionError(f"{name}: unexpected warnings {warns}")
            continue
        if len(warns) != 1 or want not in warns[0] or cert not in warns[0]:
            raise AssertionError(f"{name}: want one warning with {want!r}: {lines}")


def http_like_server(ls, reply, state):
    """Answers the first bytes of a connection with `reply` and closes."""
    try:
        conn, _ = ls.accept()
        conn.settimeout(30)
        state["got"] = conn.recv(4096)
        conn.sendall(reply)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(4096)
        conn.close()
    except OSError as e:
        state["error"] = repr(e)
    finally:
        ls.close()


@group("tls", "a peer that does not speak TLS: 'the peer does not speak TLS (it sent "
       "'HTTP/1.1 400 Bad Request...')', exit 1")
def _(procs):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    state = {}
    th = threading.Thread(target=http_like_server, daemon=True, args=(
        ls, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", state))
    th.start()
    rc, out, err = cat_to(procs, f"127.0.0.1:{port}", data=b"")
    th.join(30)
    line = one_line("non-TLS peer", err)
    want = "the peer does not speak TLS (it sent 'HTTP/1.1 400 Bad Request...')"
    if rc != 1 or want not in line or not state.get("got", b"").startswith(b"\x16\x03"):
        raise AssertionError(f"exit {rc}, {line!r}, want {want!r} ({state})")


@group("tls", "a stream client at a message-mode tlsq-echo: the server says the header is "
       "text from a stream-mode peer")
def _(procs):
    port, echo = start_echo(procs, "--mode", "msg")
    rc, out, err = cat_to(procs, f"127.0.0.1:{port}", data=b"hello, message mode\n")
    want = ("peer announced a message of 1751477356 bytes; the maximum is 16777216 (the "
            "header is the text 'hell': a stream-mode peer?")
    wait_for(lambda: want in echo.text(), "tlsq-echo to name the stream-mode peer")
    if rc == 0 or out:
        raise AssertionError(f"the client: exit {rc}, stdout {out!r}, {err!r}")
    print(f"      the stream client: exit {rc}, {err.strip()!r}", flush=True)
    stop(echo, "tlsq-echo")


@group("tls", "contradictory flags are refused with one line; tlsq-echo --help lists no "
       "client-only option; the listen error says its prefix once")
def _(procs):
    for argv, want in (([CAT, "--tls1.2", "--tls1.3", "x:1"], "--tls1.2 and --tls1.3 exclude"),
                       ([CAT, "--tls1.3", "--tls1.2", "x:1"], "--tls1.2 and --tls1.3 exclude"),
                       ([CAT, "--insecure", "--ca", CA, "x:1"], "--insecure and --ca exclude"),
                       ([CAT, "--self-signed", "x:1"], "--self-signed is a server option"),
                       ([PROXY, "--listen", "0", "--upstream", "x:1", "--upstream-tls",
                         "--insecure", "--ca", CA, "--listen-plain"],
                        "--insecure and --ca exclude")):
        r = run(argv)
        line = one_line(" ".join(argv[1:]), r.stderr)
        if r.returncode != 1 or want not in line:
            raise AssertionError(f"{argv[1:]}: exit {r.returncode}, {line!r}, want {want!r}")
    h = run([ECHO, "--help"])
    for opt in ("--insecure", "--servername"):
        if opt in h.stdout:
            raise AssertionError(f"tlsq-echo --help lists the client option {opt}")
    for opt in ("--cert", "--key", "--self-signed", "--ca", "--require-client-cert"):
        if opt not in h.stdout:
            raise AssertionError(f"tlsq-echo --help lacks {opt}")
    port, echo = start_echo(procs)
    r = run([ECHO, "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", SRVKEY])
    line = one_line("port in use", r.stderr)
    if r.returncode != 1 or line.count("cannot listen on") != 1 or "in use" not in line:
        raise AssertionError(f"port in use: exit {r.returncode}, {line!r}")
    stop(echo, "tlsq-echo")


shutil.rmtree(TMP, ignore_errors=True)
finish("programs " + GROUP)
