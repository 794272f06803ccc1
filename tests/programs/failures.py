#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Failed handshakes are visible: every kind a server meets, from real peers,
shows up with the right reason in the program's -v line, in GET /status
("failures": counts and the recent list, with the peer's address) and in
GET /metrics (tlsq_accept_failures_total{reason=...}, promtool-clean).

usage: failures.py TOOLS_DIR PKI_SCRIPT_DIR

  echo   tlsq-echo -v --require-client-cert --handshake-timeout 1500 --status 0
         against: openssl s_client without a certificate (no_client_cert),
         openssl s_client -tls1_1 and gnutls-cli with only TLS 1.1 (version),
         a client certificate from an unknown CA (client_cert), a client that
         rejects our certificate (peer_alert), a TCP client that says nothing
         (timeout), curl http:// and random bytes (not_tls), a TCP connect and
         close (peer_closed); then a good client still gets its echo
  cat    tlsq-cat --listen -v prints the failure of curl http:// and then
         serves the next (good) client
  proxy  tlsq-proxy -v prints the failure of random bytes

Every wait is a polled condition with a deadline; the peers run one after
the other, each waited for by its own -v line, so lines match peers in order.
"""
import json
import os
import random
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, case, finish, free_port, listening, wait_for  # noqa: E402

if len(sys.argv) != 3:
    sys.exit("usage: failures.py TOOLS_DIR PKI_SCRIPT_DIR")
TOOLS, PKI = sys.argv[1:3]
TMP = tempfile.mkdtemp(prefix="tlsq-failures-")
subprocess.run(["sh", os.path.join(PKI, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pki(name):
    return os.path.join(TMP, name + ".pem"), os.path.join(TMP, name + ".key")


CA = pki("ca")[0]
SRV, SRVKEY = pki("server")
CLI, CLIKEY = pki("client")
UNTRUSTED, UNTRUSTEDKEY = pki("untrusted")
OTHER_CA = pki("other-ca")[0]
ECHO, CAT, PROXY = (os.path.join(TOOLS, "tlsq-" + p) for p in ("echo", "cat", "proxy"))
LINE = re.compile(r"^(\S+): (handshake failed with|dropped) (\S+) after (\d+) ms, "
                  r"(before the peer sent anything|during the handshake|after the handshake) "
                  r"\[(\w+)\]: (.+)$", re.M)


def failure_lines(proc):
    return LINE.findall(proc.text())


def next_failure(proc, n, what, timeout=30):
    """Waits for the n-th (1-based) failure line of proc; returns it."""
    lines = wait_for(lambda: len(failure_lines(proc)) >= n and failure_lines(proc),
                     f"-v line #{n} ({what})", timeout)
    return lines[n - 1]


def run_peer(argv, stdin=b"", timeout=20):
    subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=timeout)


def s_client(port, *extra):
    return ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", CA,
            "-verify_return_error", *extra]


def tcp(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s, "127.0.0.1:%d" % s.getsockname()[1]


def silent(port):
    """A TCP client that says nothing: the handshake deadline must end it."""
    s, me = tcp(port)
    # the server closes it (recv returns b"" or a reset) after its deadline
    try:
        s.settimeout(30)
        s.recv(1)
    except OSError:
        pass
    s.close()
    return me


def random_bytes(port):
    s, me = tcp(port)
    rnd = random.Random(15)  # fixed: never starts like a TLS record
    data = bytes([0x47]) + rnd.randbytes(300)
    try:
        s.sendall(data)
        s.settimeout(30)
        s.recv(1)
    except OSError:
        pass
    s.close()
    return me


def connect_close(port):
    s, me = tcp(port)
    s.close()
    return me


def http_get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def status_url(proc):
    m = re.search(r"status: (http://[0-9.]+:\d+)/", proc.text())
    return m.group(1) if m else None


# Each kind: (name, function(port) -> our address or None, the reason).
KINDS = [
    ("openssl s_client without a client certificate",
     lambda p: run_peer(s_client(p), b"hello\n"), "no_client_cert"),
    ("openssl s_client -tls1_1", lambda p: run_peer(s_client(p, "-tls1_1")), "version"),
    ("gnutls-cli with only TLS 1.1",
     lambda p: run_peer(["gnutls-cli", "--logfile=/dev/null", "--x509cafile", CA,
                         "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.1", "-p", str(p),
                         "localhost"]), "version"),
    ("openssl s_client with a certificate from an unknown CA",
     lambda p: run_peer(s_client(p, "-cert", UNTRUSTED, "-key", UNTRUSTEDKEY), b"hi\n"),
     "client_cert"),
    ("openssl s_client that does not trust the server",
     lambda p: run_peer(["openssl", "s_client", "-connect", f"127.0.0.1:{p}", "-CAfile",
                         OTHER_CA, "-verify_return_error", "-cert", CLI, "-key", CLIKEY]),
     "peer_alert"),
    ("a TCP client that says nothing", silent, "timeout"),
    ("curl http://", lambda p: run_peer(["curl", "-s", "-m", "10", f"http://127.0.0.1:{p}/"]),
     "not_tls"),
    ("random bytes", random_bytes, "not_tls"),
    ("TCP connect and close", connect_close, "peer_closed"),
]


@case("tlsq-echo: each kind of failed handshake in -v, /status and /metrics")
def _(procs):
    port = free_port()
    echo = Proc([ECHO, "-v", "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", SRVKEY,
                 "--ca", CA, "--require-client-cert", "--handshake-timeout", "1500",
                 "--status", "0"])
    procs.append(echo)
    wait_for(listening(port), "tlsq-echo to listen", timeout=60)
    url = wait_for(lambda: status_url(echo), "the status URL")
    addrs = []
    for i, (what, fn, reason) in enumerate(KINDS, 1):
        addr = fn(port)
        prog, verb, peer, ms, when, got, detail = next_failure(echo, i, what)
        if got != reason or prog != "tlsq-echo" or verb != "handshake failed with":
            raise AssertionError(f"{what}: -v line says [{got}] ({detail}), want [{reason}]")
        if addr and peer != addr:
            raise AssertionError(f"{what}: -v line names {peer}, the peer was {addr}")
        if reason == "timeout" and not 1400 <= int(ms) <= 15000:
            raise AssertionError(f"{what}: failed after {ms} ms, the deadline is 1500 ms")
        if reason in ("timeout", "peer_closed") and when != "before the peer sent anything":
            raise AssertionError(f"{what}: phase {when!r}")
        addrs.append(peer)
        print(f"      {what}: [{got}] {detail}", flush=True)
    # A good client is still served after all that.
    ctx = ssl.create_default_context(cafile=CA)
    ctx.load_cert_chain(CLI, CLIKEY)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                         server_hostname="localhost") as t:
        t.sendall(b"still alive\n")
        back = b""
        while len(back) < 12:
            chunk = t.recv(64)
            if not chunk:
                break
            back += chunk
    if back != b"still alive\n":
        raise AssertionError(f"good client after the failures got {back!r}")

    st = json.loads(http_get(url + "/status"))
    f = st["failures"]
    want = {}
    for _, _, reason in KINDS:
        want[reason] = want.get(reason, 0) + 1
    got = {k: v for k, v in f["counts"].items() if v}
    if got != want or f["total"] != len(KINDS):
        raise AssertionError(f"/status failures.counts {got}, want {want}")
    recent = list(reversed(f["recent"]))  # oldest first, like the -v lines
    if [r["reason"] for r in recent] != [k[2] for k in KINDS]:
        raise AssertionError(f"/status recent reasons {[r['reason'] for r in recent]}")
    if [r["peer"] for r in recent] != addrs:
        raise AssertionError(f"/status recent peers {[r['peer'] for r in recent]}, -v said {addrs}")
    for r in recent:
        if not r["detail"] or r["port"] != port or r["seq"] < 1 or r["unix_ms"] <= 0:
            raise AssertionError(f"/status recent entry incomplete: {r}")
    metrics = http_get(url + "/metrics").decode()
    for reason, n in want.items():
        line = f'tlsq_accept_failures_total{{reason="{reason}"}} {n}'
        if line not in metrics:
            raise AssertionError(f"/metrics lacks {line!r}")
    pc = subprocess.run(["promtool", "check", "metrics"], input=metrics.encode(),
                        capture_output=True, timeout=60)
    if pc.returncode != 0:
        raise AssertionError(f"promtool: {pc.stdout!r} {pc.stderr!r}")


@case("tlsq-cat --listen -v: prints the failed handshake, then serves the next client")
def _(procs):
    port = free_port()
    cat = Proc([CAT, "--listen", "-v", f"127.0.0.1:{port}", "--self-signed"])
    procs.append(cat)
    wait_for(listening(port), "tlsq-cat to listen", timeout=60)
    run_peer(["curl", "-s", "-m", "10", f"http://127.0.0.1:{port}/"])
    _, verb, _, _, _, reason, detail = next_failure(cat, 1, "curl http://")
    if reason != "not_tls":
        raise AssertionError(f"tlsq-cat -v says [{reason}] {detail}")
    subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-quiet",
                    "-no_ign_eof"],
                   input=b"ping\n", capture_output=True, timeout=30)
    cat.wait(30)
    if b"ping" not in cat.stdout():
        raise AssertionError(f"tlsq-cat did not serve the good client: {cat.text()[-500:]}")


@case("tlsq-proxy -v: prints the failed handshake of random bytes")
def _(procs):
    port = free_port()
    up = socket.socket()
    up.bind(("127.0.0.1", 0))
    up.listen(4)
    px = Proc([PROXY, "-v", "--listen", f"127.0.0.1:{port}", "--upstream",
               f"127.0.0.1:{up.getsockname()[1]}", "--self-signed"])
    procs.append(px)
    wait_for(listening(port), "tlsq-proxy to listen", timeout=60)
    me = random_bytes(port)
    _, _, peer, _, _, reason, detail = next_failure(px, 1, "random bytes")
    up.close()
    if reason != "not_tls" or peer != me:
        raise AssertionError(f"tlsq-proxy -v says {peer} [{reason}] {detail}, want {me} [not_tls]")


finish("programs failures")
