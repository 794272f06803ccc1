#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The interop matrix (issue 8, Reliability): tlsq against OpenSSL 3, GnuTLS,
stunnel, socat and curl, in TLS 1.2 and TLS 1.3, with tlsq as the client and
as the server, checking data, KeyUpdate both ways and small records.

usage: interop.py TOOLS_DIR PKI_SCRIPT_DIR [--jobs N] [--only REGEX]

Every cell of peer x version x tlsq role x check is printed: a real check
with an observable outcome (bytes by SHA-256, KeyUpdate lines in the peer's
own trace, record sizes in its trace or in tlsq's ciphertext counters, exit
statuses and clean closes on both sides, the negotiated version as tlsq
reports it), or "n/a" with the reason the combination cannot exist. n/a
cells are not counted. Output: one line per cell as it ends, then a
Markdown table, machine-readable lines

  INTEROP|peer|version|role|check|pass|detail      (pass: pass, FAIL, n/a)
  INTEROPVER|peer|version reported by the peer's program
  INTEROPCHECK|check|title

(tools/reliability-report reads them) and "interop: N/M passed". The exit
status is 1 if any cell failed.

tlsq's side: tlsq-echo as the server (tlsq-proxy in front of an HTTP
server for curl, which only speaks HTTP), tlsq-cat as the client. Every
wait is a polled condition with a deadline; the only pacing is that an
interactive command is sent after the previous line has come back, because
s_client and gnutls-cli take a whole stdin read as one command.
"""
import argparse
import concurrent.futures
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, free_port, listening, plain_roundtrip, wait_for  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("tools")
ap.add_argument("pki")
ap.add_argument("--jobs", type=int, default=3, help="cells run at once (default 3)")
ap.add_argument("--only", help="run only the cells whose 'peer version role check' matches")
ARGS = ap.parse_args()

TMP = tempfile.mkdtemp(prefix="tlsq-interop-")
subprocess.run(["sh", os.path.join(ARGS.pki, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
CA, SRV, SRVKEY = (os.path.join(TMP, f) for f in ("ca.pem", "server.pem", "server.key"))
CAT, ECHO, PROXY = (os.path.join(ARGS.tools, "tlsq-" + p) for p in ("cat", "echo", "proxy"))
STUNNEL = "stunnel4" if shutil.which("stunnel4") else "stunnel"

KIB = 1024
N = 1024 * KIB  # payload each way: 64 full records, or 2048 records of 512 bytes
BLOB = os.urandom(N)
BLOB2 = os.urandom(N)
# gnutls-serv --echo is line-based: text for it (18,000 lines, 1 MiB).
TEXT = b"".join(b"line %05d of the tlsq interop text, echoed by gnutls-serv\n" % i
                for i in range(18000))


def write(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


BLOB_PATH, TEXT_PATH = write("blob.bin", BLOB), write("text.txt", TEXT)
# tlsq --key-update-bytes: 5 KeyUpdates per MiB. GnuTLS 3.7 fails the
# connection at more than 8 KeyUpdates in one second ("reached maximum
# number of key updates per 1000 milliseconds"), and 1 MiB takes less.
KU_EVERY = 192 * KIB
KU_MIN = N // KU_EVERY - 1
KU_SENT = "Handshake [length 0005], KeyUpdate"  # openssl -msg

PEERS = ("openssl", "gnutls", "stunnel", "socat", "curl")
VERSIONS = ("1.2", "1.3")
ROLES = ("server", "client")  # tlsq's role
CHECKS = ("data", "ku-peer-requested", "ku-peer-unrequested", "ku-tlsq", "records-512",
          "read-buf-1")
CHECK_TITLES = {
    "data": "1 MiB each way",
    "ku-peer-requested": "peer KeyUpdate, update requested",
    "ku-peer-unrequested": "peer KeyUpdate, not requested",
    "ku-tlsq": "tlsq KeyUpdate every 192 KiB",
    "records-512": "peer sends 512-byte records",
    "read-buf-1": "peer read_buf 1",
}


# ------------------------------------------------------------------ helpers
def sha(b):
    return hashlib.sha256(b).hexdigest()


def same(what, got, want):
    if len(got) != len(want) or got != want:
        raise AssertionError(f"{what}: {len(got)} bytes, want {len(want)}, sha256 "
                             f"{sha(got)[:12]} want {sha(want)[:12]}")


def feed(proc, data):
    """Writes data to a child's stdin from a thread (the pipe fills while
    the child waits for its peer); stdin stays open."""
    def run():
        try:
            proc.send(data)
        except (BrokenPipeError, OSError, ValueError):
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def tlsq_ver(v):
    return "--tls1.2" if v == "1.2" else "--tls1.3"


def ossl_ver(v):
    return "-tls1_2" if v == "1.2" else "-tls1_3"


def gnutls_priority(v):
    return f"--priority=NORMAL:-VERS-ALL:+VERS-TLS{v}"


def socat_ver(v):
    return f"openssl-min-proto-version=TLS{v},openssl-max-proto-version=TLS{v}"


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def status(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as r:
        return json.load(r)["engine"]


def peer_records(msg, direction):
    """Lengths of the application-data records (content type 23) in an
    openssl -msg trace, '>>>' sent by the peer, '<<<' received."""
    lines = msg.splitlines()
    out = []
    for i, line in enumerate(lines[:-1]):
        if line.startswith(direction) and "RecordHeader" in line:
            b = lines[i + 1].split()
            if len(b) == 5 and b[0] == "17":
                out.append(int(b[3] + b[4], 16))
    return out


class Cell:
    """One run of one check: its children (killed at the end), a scratch
    directory, and the version under test."""

    def __init__(self, peer, version, role, check):
        self.peer, self.version, self.role, self.check = peer, version, role, check
        self.procs = []
        self.dir = tempfile.mkdtemp(dir=TMP, prefix=f"{peer}-{version}-{role}-{check}-")

    def path(self, name):
        return os.path.join(self.dir, name)

    def proc(self, argv, **kw):
        p = Proc(argv, **kw)
        self.procs.append(p)
        return p

    def stunnel(self, conf):
        path = self.path("stunnel.conf")
        with open(path, "w") as f:
            f.write("foreground = yes\npid =\ndebug = notice\n" + conf)
        return self.proc([STUNNEL, path])


def tlsq_line(p, what):
    m = re.search(rf"{what} \S+: (TLSv1\.[23]) ([A-Z0-9_-]+)", p.text())
    return m.groups() if m else None


def check_version(cell, p, what):
    """The version tlsq negotiated, from its -v line ("accepted"/"connected to")."""
    got = wait_for(lambda: tlsq_line(p, what), f"tlsq's '{what}' line", 30)
    if got[0] != "TLSv" + cell.version:
        raise AssertionError(f"negotiated {got[0]}, want TLSv{cell.version}")
    return f"{got[0]} {got[1]}"


class TlsqServer:
    """tlsq-echo (or tlsq-proxy) on a port it picks itself, -v, status on."""

    def __init__(self, cell, argv):
        self.cell = cell
        self.p = cell.proc(argv + ["--listen", "127.0.0.1:0", "--status", "0", "-v",
                                   tlsq_ver(cell.version)])
        self.port = int(wait_for(lambda: re.search(r"listening on port (\d+)", self.p.text()),
                                 "tlsq to listen", 30).group(1))
        self.status_port = int(re.search(r"status: http://127\.0\.0\.1:(\d+)/",
                                         self.p.text()).group(1))

    def version(self):
        return check_version(self.cell, self.p, "accepted")

    def closed_cleanly(self, n):
        """tlsq-echo logs a clean close (close_notify both ways) with n bytes echoed."""
        wait_for(lambda: "closed: " in self.p.text() or " failed: " in self.p.text(),
                 "tlsq-echo to close the connection", 30)
        if f"closed: {n} bytes echoed" not in self.p.text():
            raise AssertionError(f"tlsq-echo: {self.p.text().strip().splitlines()[-1]}")

    def stop(self):
        self.p.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(30)
        if rc != 0:
            raise AssertionError(f"tlsq exited {rc} on SIGTERM")


def echo(cell, *extra):
    return TlsqServer(cell, [ECHO, "--cert", SRV, "--key", SRVKEY, *extra])


def cat(cell, port, *extra, status=False, **kw):
    argv = [CAT, "-v", f"127.0.0.1:{port}", "--ca", CA, "--servername", "localhost",
            tlsq_ver(cell.version), *extra]
    if status:
        argv += ["--status", "0"]
    return cell.proc(argv, **kw)


def cat_status_port(p):
    return int(wait_for(lambda: re.search(r"status: http://127\.0\.0\.1:(\d+)/", p.text()),
                        "tlsq-cat's status endpoint", 30).group(1))


def ku_sent(st, what):
    n = st["key_updates"]["sent"]
    if n < KU_MIN:
        raise AssertionError(f"{what} sent {n} KeyUpdates, want >= {KU_MIN}")
    return n


def small_records(st, v):
    """From tlsq's ciphertext counters: the bytes received beyond the
    plaintext are record overhead, 21-29 bytes a record (AEAD tag, header,
    TLS 1.2 explicit nonce or TLS 1.3 content type) plus the handshake. 512
    records of 512 bytes cost >= 10 KiB; 16 full records under 1 KiB."""
    over = st["bytes"]["tls_received"] - st["bytes"]["received"]
    per = 22 if v == "1.3" else 21
    want = per * (N // 512)
    if over < want:
        raise AssertionError(f"ciphertext overhead {over} bytes for {N} plaintext bytes: "
                             f"fewer than {N // 512} records")
    return f"ciphertext overhead {over} B (>= {want}: >= {N // 512} records)"


# ---------------------------------------------------------------- the cells
CELLS = {}  # (peer, role, check) -> function(cell) returning a detail string
NA = {}     # (peer, role, check) -> reason, for every version


def cell(peer, role, *checks):
    def deco(fn):
        for c in checks:
            CELLS[(peer, role, c)] = fn
        return fn
    return deco


def na(peer, role, checks, reason):
    for c in checks:
        NA[(peer, role, c)] = reason


# ---- OpenSSL: s_client against tlsq-echo
@cell("openssl", "server", "data", "ku-tlsq", "records-512", "read-buf-1")
def _(c):
    peer_extra = {"records-512": ["-max_send_frag", "512"],
                  "read-buf-1": ["-read_buf", "1"]}.get(c.check, [])
    srv = echo(c, *(["--key-update-bytes", "192k"] if c.check == "ku-tlsq" else []))
    msg = c.path("msg.txt")
    # -nocommands: a stdin read that begins with K, Q or R is not data.
    cli = c.proc(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-CAfile", CA,
                  "-verify_hostname", "localhost", "-verify_return_error", ossl_ver(c.version),
                  "-quiet", "-no_ign_eof", "-nocommands", "-msg", "-msgfile", msg, *peer_extra])
    feed(cli, BLOB)
    wait_for(lambda: len(cli.out) >= N, "the echo at s_client", 60)
    cli.close_stdin()  # now: s_client sends close_notify and exits
    rc = cli.wait(30)
    same("s_client got back", cli.stdout(), BLOB)
    if rc != 0:
        raise AssertionError(f"s_client exited {rc}")
    srv.closed_cleanly(N)
    ver = srv.version()
    trace = read(msg)
    detail = f"{ver}; sha256 intact, s_client exit 0, close_notify both ways"
    if c.check == "records-512":
        recs = peer_records(trace, ">>>")
        if len(recs) < N // 512 or max(recs) > 512 + 32:
            raise AssertionError(f"s_client sent {len(recs)} records, largest {max(recs)}")
        detail += f"; s_client sent {len(recs)} records of <= {max(recs)} B"
    if c.check == "ku-tlsq":
        got = trace.count("<<< TLS 1.3, " + KU_SENT)
        sent = ku_sent(status(srv.status_port), "tlsq-echo")
        if got < sent:
            raise AssertionError(f"tlsq sent {sent} KeyUpdates, s_client saw {got}")
        detail += (f"; s_client decrypted {got} KeyUpdates from tlsq and everything after "
                   f"them, sent {trace.count('>>> TLS 1.3, ' + KU_SENT)} in reply")
    srv.stop()
    return detail


@cell("openssl", "server", "ku-peer-requested", "ku-peer-unrequested")
def _(c):
    srv = echo(c)
    msg = c.path("msg.txt")
    cli = c.proc(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-CAfile", CA,
                  "-verify_hostname", "localhost", "-verify_return_error", "-tls1_3",
                  "-msg", "-msgfile", msg])
    wait_for(lambda: "Verify return code: 0 (ok)" in cli.text(), "the handshake", 30)
    cli.send(b"before\n")
    wait_for(lambda: b"before\n" in cli.out, "the echo before the KeyUpdate", 30)
    requested = c.check == "ku-peer-requested"
    cli.send(b"K\n" if requested else b"k\n")
    wait_for(lambda: ">>> TLS 1.3, " + KU_SENT in read(msg), "s_client's KeyUpdate", 30)
    if requested:
        wait_for(lambda: "<<< TLS 1.3, " + KU_SENT in read(msg), "tlsq's KeyUpdate reply", 30)
    cli.send(b"after\n")
    wait_for(lambda: b"after\n" in cli.out, "the echo after the KeyUpdate", 30)
    # msg is flushed per record: a reply would be in it before the echo.
    replies = read(msg).count("<<< TLS 1.3, " + KU_SENT)
    if replies != (1 if requested else 0):
        raise AssertionError(f"tlsq sent {replies} KeyUpdates, want {int(requested)}")
    cli.close_stdin()
    rc = cli.wait(30)
    if rc != 0:
        raise AssertionError(f"s_client exited {rc}")
    srv.closed_cleanly(len(b"before\nafter\n"))
    ver = srv.version()
    srv.stop()
    return (f"{ver}; s_client '{'K' if requested else 'k'}': "
            f"{'one KeyUpdate back' if requested else 'no KeyUpdate back'}, echo intact "
            "after it, exit 0, close_notify both ways")


# ---- OpenSSL: tlsq-cat against s_server
@cell("openssl", "client", "data", "ku-tlsq", "records-512", "read-buf-1")
def _(c):
    peer_extra = {"records-512": ["-max_send_frag", "512"],
                  "read-buf-1": ["-read_buf", "1"]}.get(c.check, [])
    port = free_port()
    msg = c.path("msg.txt")
    srv = c.proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", SRV, "-key",
                  SRVKEY, "-naccept", "1", "-quiet", ossl_ver(c.version), "-msg", "-msgfile",
                  msg, *peer_extra])
    wait_for(listening(port), "s_server to listen", 30)
    cli = cat(c, port, *(["--key-update-bytes", "192k"] if c.check == "ku-tlsq" else []),
              status=c.check == "ku-tlsq")
    feed(srv, BLOB2)
    feed(cli, BLOB)
    wait_for(lambda: len(srv.out) >= N and len(cli.out) >= N, "256 KiB each way", 60)
    st = status(cat_status_port(cli)) if c.check == "ku-tlsq" else None
    cli.close_stdin()  # close_notify after the data; s_server answers and exits
    rc, src = cli.wait(30), srv.wait(30)
    same("s_server received", srv.stdout(), BLOB)
    same("tlsq-cat received", cli.stdout(), BLOB2)
    if rc != 0 or src != 0:
        raise AssertionError(f"tlsq-cat exited {rc}, s_server {src}")
    ver = check_version(c, cli, "connected to")
    trace = read(msg)
    detail = f"{ver}; sha256 intact both ways, tlsq-cat and s_server exit 0"
    if c.check == "records-512":
        recs = peer_records(trace, ">>>")
        if len(recs) < N // 512 or max(recs) > 512 + 32:
            raise AssertionError(f"s_server sent {len(recs)} records, largest {max(recs)}")
        detail += f"; s_server sent {len(recs)} records of <= {max(recs)} B"
    if c.check == "ku-tlsq":
        sent = ku_sent(st, "tlsq-cat")
        got = trace.count("<<< TLS 1.3, " + KU_SENT)
        if got < sent:
            raise AssertionError(f"tlsq sent {sent} KeyUpdates, s_server saw {got}")
        detail += (f"; s_server decrypted {got} KeyUpdates from tlsq and everything after "
                   f"them, sent {trace.count('>>> TLS 1.3, ' + KU_SENT)} in reply")
    return detail


@cell("openssl", "client", "ku-peer-requested", "ku-peer-unrequested")
def _(c):
    port = free_port()
    msg = c.path("msg.txt")
    srv = c.proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", SRV, "-key",
                  SRVKEY, "-naccept", "1", "-tls1_3", "-msg", "-msgfile", msg])
    wait_for(listening(port), "s_server to listen", 30)
    cli = cat(c, port)
    cli.send(b"one\n")
    wait_for(lambda: "one" in srv.text(), "tlsq-cat's data at s_server", 30)
    requested = c.check == "ku-peer-requested"
    srv.send(b"K\n" if requested else b"k\n")
    wait_for(lambda: ">>> TLS 1.3, " + KU_SENT in read(msg), "s_server's KeyUpdate", 30)
    srv.send(b"two\n")
    wait_for(lambda: b"two\n" in cli.out, "s_server's data after its KeyUpdate", 30)
    cli.send(b"three\n")
    wait_for(lambda: "three" in srv.text(), "tlsq-cat's data after the KeyUpdate", 30)
    replies = read(msg).count("<<< TLS 1.3, " + KU_SENT)
    if replies != (1 if requested else 0):
        raise AssertionError(f"tlsq sent {replies} KeyUpdates, want {int(requested)}")
    cli.close_stdin()
    rc, src = cli.wait(30), srv.wait(30)
    if rc != 0 or src != 0 or cli.stdout() != b"two\n":
        raise AssertionError(f"tlsq-cat exited {rc} with {cli.stdout()!r}, s_server {src}")
    ver = check_version(c, cli, "connected to")
    return (f"{ver}; s_server '{'K' if requested else 'k'}': "
            f"{'one KeyUpdate back' if requested else 'no KeyUpdate back'}, data both ways "
            "after it, both exit 0")


# ---- GnuTLS: gnutls-cli against tlsq-echo
@cell("gnutls", "server", "data", "ku-tlsq")
def _(c):
    ku = c.check == "ku-tlsq"
    srv = echo(c, *(["--key-update-bytes", "192k"] if ku else []))
    with open(BLOB_PATH, "rb") as stdin:  # at EOF: close_notify, then reads the rest
        cli = c.proc(["gnutls-cli", f"--logfile={c.path('log')}", gnutls_priority(c.version),
                      "--x509cafile", CA, "-p", str(srv.port), "localhost",
                      *(["-d", "4"] if ku else [])], stdin=stdin)
    rc = cli.wait(60)
    same("gnutls-cli got back", cli.stdout(), BLOB)
    if rc != 0:
        raise AssertionError(f"gnutls-cli exited {rc}")
    srv.closed_cleanly(N)
    ver = srv.version()
    detail = f"{ver}; sha256 intact, gnutls-cli exit 0, close_notify both ways"
    if ku:
        sent = ku_sent(status(srv.status_port), "tlsq-echo")
        detail += "; " + gnutls_took(cli.text(), sent, "gnutls-cli")
    srv.stop()
    return detail


@cell("gnutls", "server", "ku-peer-requested", "ku-peer-unrequested")
def _(c):
    srv = echo(c)
    # stderr (the -d 4 trace) merged into stdout keeps the order of events.
    cli = c.proc(["gnutls-cli", f"--logfile={c.path('log')}", gnutls_priority(c.version),
                  "--x509cafile", CA, "-p", str(srv.port), "localhost", "--inline-commands",
                  "-d", "4"], merge=True)
    cli.send(b"before\n")
    wait_for(lambda: re.search(r"(^|\n)before\n", cli.text()), "the echo before the KeyUpdate", 30)
    requested = c.check == "ku-peer-requested"
    cli.send(b"^rekey^\n" if requested else b"^rekey1^\n")
    wait_for(lambda: f"sending key update ({int(requested)})" in cli.text(),
             "gnutls-cli's KeyUpdate", 30)
    if requested:
        wait_for(lambda: "received TLS 1.3 key update (0)" in cli.text(),
                 "tlsq's KeyUpdate reply", 30)
    cli.send(b"after\n")
    wait_for(lambda: re.search(r"(^|\n)after\n", cli.text()), "the echo after the KeyUpdate", 30)
    replies = cli.text().count("received TLS 1.3 key update")
    if replies != (1 if requested else 0):
        raise AssertionError(f"tlsq sent {replies} KeyUpdates, want {int(requested)}")
    cli.close_stdin()
    rc = cli.wait(30)
    if rc != 0:
        raise AssertionError(f"gnutls-cli exited {rc}")
    srv.closed_cleanly(len(b"before\nafter\n"))
    ver = srv.version()
    srv.stop()
    return (f"{ver}; gnutls-cli '^rekey{'' if requested else '1'}^': "
            f"{'one KeyUpdate back' if requested else 'no KeyUpdate back'}, echo intact "
            "after it, exit 0, close_notify both ways")


@cell("gnutls", "server", "records-512")
def _(c):
    # --recordsize 512 caps gnutls-cli's records at 512 bytes; gnutls-cli
    # drops what a partial send leaves (the rest of a longer stdin read), so
    # each write here is one 512-byte chunk, after the previous one came back.
    srv = echo(c)
    cli = c.proc(["gnutls-cli", f"--logfile={c.path('log')}", gnutls_priority(c.version),
                  "--x509cafile", CA, "-p", str(srv.port), "localhost", "--recordsize", "512",
                  "-d", "5"])
    chunks = 64
    for i in range(chunks):
        cli.send(BLOB[i * 512:(i + 1) * 512])
        wait_for(lambda: len(cli.out) >= (i + 1) * 512, f"the echo of chunk {i}", 30)
    cli.close_stdin()
    rc = cli.wait(30)
    same("gnutls-cli got back", cli.stdout(), BLOB[:chunks * 512])
    if rc != 0:
        raise AssertionError(f"gnutls-cli exited {rc}")
    srv.closed_cleanly(chunks * 512)
    ver = srv.version()
    sizes = [int(n) for n in re.findall(r"Preparing Packet Application Data\(23\) with length: "
                                        r"(\d+)", cli.text())]
    if len(sizes) < chunks or max(sizes) > 512:
        raise AssertionError(f"gnutls-cli sent {len(sizes)} records, largest "
                             f"{max(sizes) if sizes else 0}")
    srv.stop()
    return (f"{ver}; gnutls-cli --recordsize 512, fed 512 B at a time: {chunks} x 512 B echoed "
            f"intact, it sent {len(sizes)} records of "
            f"<= {max(sizes)} B plaintext, exit 0, close_notify both ways")


def gnutls_took(trace, sent, who):
    """The KeyUpdates a GnuTLS peer took (its -d 4 trace). wolfSSL sends
    'update_requested' unless its previous request is still unanswered, then
    'not requested'; the peer must take every one."""
    req = trace.count("received TLS 1.3 key update (1)")
    got = req + trace.count("received TLS 1.3 key update (0)")
    if got < sent:
        raise AssertionError(f"tlsq sent {sent} KeyUpdates, {who} took {got}")
    return (f"{who} took all {got} KeyUpdates from tlsq ({req} update requested) and "
            f"decrypted everything after them, sent {trace.count('sending key update (0)')} "
            "in reply")


# ---- GnuTLS: tlsq-cat against gnutls-serv --echo
@cell("gnutls", "client", "data", "ku-tlsq")
def _(c):
    ku = c.check == "ku-tlsq"
    port = free_port()
    srv = c.proc(["gnutls-serv", "--echo", "-p", str(port), "--x509certfile", SRV,
                  "--x509keyfile", SRVKEY, gnutls_priority(c.version), "--disable-client-cert",
                  *(["-d", "4"] if ku else [])])
    wait_for(listening(port), "gnutls-serv to listen", 30)
    cli = cat(c, port, *(["--key-update-bytes", "192k"] if ku else []), status=ku)
    feed(cli, TEXT)
    wait_for(lambda: len(cli.out) >= len(TEXT), "the echo from gnutls-serv", 60)
    st = status(cat_status_port(cli)) if ku else None
    cli.close_stdin()  # close_notify; gnutls-serv answers with its own
    rc = cli.wait(30)
    same("tlsq-cat got back", cli.stdout(), TEXT)
    if rc != 0:
        raise AssertionError(f"tlsq-cat exited {rc}")
    ver = check_version(c, cli, "connected to")
    detail = f"{ver}; {len(TEXT)} B of text echoed line by line, sha256 intact, tlsq-cat exit 0"
    if ku:
        detail += "; " + gnutls_took(srv.text(), ku_sent(st, "tlsq-cat"), "gnutls-serv")
    return detail


# ---- stunnel
@cell("stunnel", "server", "data", "ku-tlsq")
def _(c):
    ku = c.check == "ku-tlsq"
    srv = echo(c, *(["--key-update-bytes", "192k"] if ku else []))
    sp = free_port()
    st = c.stunnel(f"[c]\nclient = yes\naccept = 127.0.0.1:{sp}\nconnect = 127.0.0.1:{srv.port}\n"
                   f"CAfile = {CA}\nverifyChain = yes\ncheckHost = localhost\n"
                   f"sslVersionMin = TLSv{c.version}\nsslVersionMax = TLSv{c.version}\n")
    wait_for(listening(sp), "stunnel to listen", 30)
    same("came back through stunnel", plain_roundtrip(sp, BLOB), BLOB)
    srv.closed_cleanly(N)
    want = f"Connection closed: {N} byte(s) sent to TLS, {N} byte(s) sent to socket"
    wait_for(lambda: want in st.text(), "stunnel's byte counts", 30)
    ver = srv.version()
    detail = (f"{ver}; sha256 intact through stunnel (client), stunnel counted {N} B each way, "
              "close_notify both ways")
    if ku:
        sent = ku_sent(status(srv.status_port), "tlsq-echo")
        detail += f"; tlsq sent {sent} KeyUpdates, stunnel decrypted everything after them"
    srv.stop()
    return detail


@cell("stunnel", "client", "data", "ku-tlsq")
def _(c):
    ku = c.check == "ku-tlsq"
    ep, sp = start_plain_echo(), free_port()
    st = c.stunnel(f"[s]\naccept = 127.0.0.1:{sp}\nconnect = 127.0.0.1:{ep}\ncert = {SRV}\n"
                   f"key = {SRVKEY}\nsslVersionMin = TLSv{c.version}\n"
                   f"sslVersionMax = TLSv{c.version}\n")
    wait_for(listening(sp), "stunnel to listen", 30)
    cli = cat(c, sp, *(["--key-update-bytes", "192k"] if ku else []), status=ku)
    feed(cli, BLOB)
    wait_for(lambda: len(cli.out) >= N, "the echo through stunnel", 60)
    st_json = status(cat_status_port(cli)) if ku else None
    cli.close_stdin()
    rc = cli.wait(30)
    same("tlsq-cat got back", cli.stdout(), BLOB)
    if rc != 0:
        raise AssertionError(f"tlsq-cat exited {rc}")
    want = f"Connection closed: {N} byte(s) sent to TLS, {N} byte(s) sent to socket"
    wait_for(lambda: want in st.text(), "stunnel's byte counts", 30)
    ver = check_version(c, cli, "connected to")
    detail = (f"{ver}; sha256 intact through stunnel (server), stunnel counted {N} B each way, "
              "tlsq-cat exit 0")
    if ku:
        sent = ku_sent(st_json, "tlsq-cat")
        detail += f"; tlsq sent {sent} KeyUpdates, stunnel decrypted everything after them"
    return detail


def start_plain_echo():
    """A plain TCP echo for one connection; FIN after the peer's FIN."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)

    def run():
        conn, _ = ls.accept()
        ls.close()
        conn.settimeout(60)
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        conn.close()
    threading.Thread(target=run, daemon=True).start()
    return ls.getsockname()[1]


# ---- socat
@cell("socat", "server", "data", "ku-tlsq", "records-512")
def _(c):
    ku, small = c.check == "ku-tlsq", c.check == "records-512"
    srv = echo(c, *(["--key-update-bytes", "192k"] if ku else []))
    # -b 512: socat reads and writes at most 512 bytes at a time, so each
    # SSL_write is one record of <= 512 bytes.
    cli = c.proc(["socat", "-t", "30", "-T", "60", *(["-b", "512"] if small else []), "-",
                  f"OPENSSL:127.0.0.1:{srv.port},cafile={CA},verify=1,commonname=localhost,"
                  + socat_ver(c.version)])
    feed(cli, BLOB)
    wait_for(lambda: len(cli.out) >= N, "the echo at socat", 60)
    st = status(srv.status_port)
    cli.close_stdin()  # socat sends close_notify and reads the rest
    rc = cli.wait(30)
    same("socat got back", cli.stdout(), BLOB)
    if rc != 0:
        raise AssertionError(f"socat exited {rc}")
    srv.closed_cleanly(N)
    ver = srv.version()
    detail = f"{ver}; sha256 intact, socat exit 0, close_notify both ways"
    if ku:
        detail += (f"; tlsq sent {ku_sent(st, 'tlsq-echo')} KeyUpdates, socat decrypted "
                   "everything after them")
    if small:
        detail += "; socat -b 512, " + small_records(st, c.version)
    srv.stop()
    return detail


@cell("socat", "client", "data", "ku-tlsq", "records-512")
def _(c):
    ku, small = c.check == "ku-tlsq", c.check == "records-512"
    port = free_port()
    srv = c.proc(["socat", "-T", "60", *(["-b", "512"] if small else []),
                  f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,cert={SRV},key={SRVKEY},"
                  "verify=0," + socat_ver(c.version), "PIPE"])
    wait_for(listening(port), "socat to listen", 30)
    cli = cat(c, port, *(["--key-update-bytes", "192k"] if ku else []), status=ku or small)
    feed(cli, BLOB)
    wait_for(lambda: len(cli.out) >= N, "the echo from socat", 60)
    st = status(cat_status_port(cli)) if ku or small else None
    cli.close_stdin()
    rc, src = cli.wait(30), srv.wait(30)
    same("tlsq-cat got back", cli.stdout(), BLOB)
    if rc != 0 or src != 0:
        raise AssertionError(f"tlsq-cat exited {rc}, socat {src}")
    ver = check_version(c, cli, "connected to")
    detail = f"{ver}; sha256 intact, tlsq-cat and socat exit 0"
    if ku:
        detail += (f"; tlsq sent {ku_sent(st, 'tlsq-cat')} KeyUpdates, socat decrypted "
                   "everything after them")
    if small:
        detail += "; socat -b 512, " + small_records(st, c.version)
    return detail


# ---- curl (through tlsq-proxy: curl speaks HTTP)
class HttpEcho(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPD = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HttpEcho)
threading.Thread(target=HTTPD.serve_forever, daemon=True).start()


@cell("curl", "server", "data", "ku-tlsq")
def _(c):
    ku = c.check == "ku-tlsq"
    srv = TlsqServer(c, [PROXY, "--cert", SRV, "--key", SRVKEY, "--upstream",
                         f"127.0.0.1:{HTTPD.server_address[1]}", "--upstream-plain",
                         *(["--key-update-bytes", "192k"] if ku else [])])
    out = c.path("out.bin")
    cli = c.proc(["curl", "-sS", "--fail", "-v", "--cacert", CA, f"--tlsv{c.version}",
                  "--tls-max", c.version, "-H", "Expect:", "--data-binary", "@" + BLOB_PATH,
                  "-o", out, f"https://localhost:{srv.port}/echo"])
    rc = cli.wait(60)
    with open(out, "rb") as f:
        same("curl got back", f.read(), BLOB)
    if rc != 0:
        raise AssertionError(f"curl exited {rc}")
    wait_for(lambda: "closed cleanly" in srv.p.text() or "aborted" in srv.p.text(),
             "tlsq-proxy to close", 30)
    if "closed cleanly" not in srv.p.text():
        raise AssertionError("tlsq-proxy: " + srv.p.text().strip().splitlines()[-1])
    if f"SSL connection using TLSv{c.version}" not in cli.text():
        raise AssertionError(f"curl did not report TLSv{c.version}")
    ver = srv.version()
    detail = (f"{ver}; POST of 1 MiB echoed by an HTTP server behind tlsq-proxy, sha256 "
              "intact, curl exit 0, proxy closed cleanly")
    if ku:
        detail += (f"; tlsq sent {ku_sent(status(srv.status_port), 'tlsq-proxy')} KeyUpdates, "
                   "curl decrypted everything after them")
    srv.stop()
    return detail


# ---- what cannot exist. First a role the peer does not have, then
# KeyUpdate in TLS 1.2, then what the peer's program cannot do.
NO_ROLE = {("curl", "client"): "curl is only a client: there is no curl server for a tlsq "
                               "client"}
KU_CHECKS = ("ku-peer-requested", "ku-peer-unrequested", "ku-tlsq")
PEER_KU = ("ku-peer-requested", "ku-peer-unrequested")
na("gnutls", "client", PEER_KU, "gnutls-serv has no command to send a KeyUpdate")
na("gnutls", "client", ("records-512",),
   "gnutls-serv --echo answers line by line (records of one line already); "
   "--recordsize would only cap them")
na("gnutls", "server", ("read-buf-1",), "gnutls-cli has no read buffer option")
na("gnutls", "client", ("read-buf-1",), "gnutls-serv has no read buffer option")
for p in ("stunnel", "socat", "curl"):
    for r in ROLES:
        na(p, r, PEER_KU, f"{p} has no command to send a KeyUpdate")
        na(p, r, ("read-buf-1",), f"{p} has no read buffer option")
for p in ("stunnel", "curl"):
    for r in ROLES:
        na(p, r, ("records-512",), f"{p} has no option to limit its record size")

# Cells that fail because of a known tlsq bug (counted as failures): none.
KNOWN_FAIL = {}


def plan():
    rows = []
    for peer in PEERS:
        for v in VERSIONS:
            for role in ROLES:
                for check in CHECKS:
                    key = (peer, role, check)
                    if (peer, role) in NO_ROLE:
                        reason = NO_ROLE[(peer, role)]
                    elif v == "1.2" and check in KU_CHECKS:
                        reason = "KeyUpdate is TLS 1.3 only"
                    elif key in NA:
                        reason = NA[key]
                    elif key in CELLS:
                        reason = None
                    else:
                        raise SystemExit(f"interop.py: no cell and no reason for {key}")
                    rows.append((peer, v, role, check, reason))
    return rows


def peer_versions():
    """Each peer's version as it reports it, for the log and the report."""
    probes = {"openssl": (["openssl", "version"], r"OpenSSL (\S+)"),
              "gnutls": (["gnutls-cli", "--version"], r"gnutls-cli (\S+)"),
              "stunnel": ([STUNNEL, "-version"], r"stunnel (\S+)"),
              "socat": (["socat", "-V"], r"socat version (\S+)"),
              "curl": (["curl", "--version"], r"curl (\S+)")}
    out = {}
    for peer, (argv, rx) in probes.items():
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                               stdin=subprocess.DEVNULL)
            m = re.search(rx, p.stdout + p.stderr)
            out[peer] = m.group(1) if m else "?"
        except OSError:
            out[peer] = "missing"
    return out


def printable(p):
    """The end of a child's stderr (or of its output, if merged), without
    the binary payloads."""
    with p.lock:
        raw = bytes(p.err) or bytes(p.out)
    text = raw[-1500:].decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() or ch in "\n\t" else "." for ch in text)


def run_cell(peer, v, role, check):
    c = Cell(peer, v, role, check)
    t0 = time.monotonic()
    try:
        detail = CELLS[(peer, role, check)](c)
        ok = True
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        ok, detail = False, f"{type(e).__name__}: {e}"
        for p in c.procs:
            detail += f"\n      --- {' '.join(map(str, p.p.args[:2]))}:\n" + printable(p)
    finally:
        for p in c.procs:
            p.kill()
    return ok, detail, time.monotonic() - t0


def main():
    t0 = time.monotonic()
    rows = plan()
    if ARGS.only:
        rows = [r for r in rows if re.search(ARGS.only, " ".join(r[:4]))]
    results = {}
    todo = [r for r in rows if r[4] is None]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, ARGS.jobs)) as pool:
        futs = {pool.submit(run_cell, *r[:4]): r for r in todo}
        for f in concurrent.futures.as_completed(futs):
            r = futs[f]
            ok, detail, secs = f.result()
            results[r[:4]] = (ok, detail)
            name = " ".join(r[:4])
            print(f"{'PASS' if ok else 'FAIL'}  {name} ({secs:.1f} s): {detail}", flush=True)

    print("\n| peer | version | tlsq role | check | result |")
    print("|---|---|---|---|---|")
    machine = []
    passed = total = 0
    for peer, v, role, check, reason in rows:
        if reason is not None:
            res, short, flag = f"n/a: {reason}", reason, "n/a"
        else:
            ok, detail = results[(peer, v, role, check)]
            total += 1
            passed += ok
            short = detail.splitlines()[0]
            known = KNOWN_FAIL.get((peer, v, role, check))
            if ok:
                res, flag = f"pass: {short}", "pass"
            else:
                res = f"**FAIL**{' (known: ' + known + ')' if known else ''}: {short}"
                flag = "FAIL"
        print(f"| {peer} | TLS {v} | {role} | {CHECK_TITLES[check]} | {res} |")
        machine.append(f"INTEROP|{peer}|{v}|{role}|{check}|{flag}|{short.replace('|', '/')}")
    print()
    versions = peer_versions()
    print("\n".join(f"INTEROPVER|{p}|{versions[p]}" for p in PEERS))
    print("\n".join(f"INTEROPCHECK|{c}|{CHECK_TITLES[c]}" for c in CHECKS))
    print("\n".join(machine))
    print(f"\ninterop: {passed}/{total} passed ({len(rows) - total} n/a) in "
          f"{time.monotonic() - t0:.1f} s", flush=True)
    HTTPD.shutdown()
    shutil.rmtree(TMP, ignore_errors=True)
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
