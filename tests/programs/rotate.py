#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Certificate rotation on SIGHUP (tlsq-echo, tlsq-proxy) against OpenSSL.

usage: rotate.py TOOLS_DIR PKI_SCRIPT_DIR

tlsq-echo serves a certificate file that is replaced (two certificates from
two CAs, in turn) and SIGHUP'd several times while Python ssl clients
(OpenSSL) keep handshaking in a loop, each verifying against both CAs and
echoing a line:
  - every handshake succeeds, and the certificate served is the old or the
    new one, never anything else;
  - after each "reloaded" line, openssl s_client (-verify_return_error) gets
    the new certificate;
  - a connection opened before the first reload still echoes after the last;
  - a reload with a key of another certificate says why in one line and the
    previous certificate keeps serving.
tlsq-proxy's listening side: SIGHUP gives new clients the new certificate.

Every wait is a polled condition with a deadline (never a sleep), ports are
picked free.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, case, finish, free_port, listening, wait_for  # noqa: E402

if len(sys.argv) != 3:
    sys.exit("usage: rotate.py TOOLS_DIR PKI_SCRIPT_DIR")
TOOLS, PKI = sys.argv[1:3]
TMP = tempfile.mkdtemp(prefix="tlsq-rotate-")
subprocess.run(["sh", os.path.join(PKI, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ECHO, PROXY = (os.path.join(TOOLS, "tlsq-" + p) for p in ("echo", "proxy"))


def pki(name):
    return os.path.join(TMP, name + ".pem"), os.path.join(TMP, name + ".key")


# Two generations: the test CA's server certificate, and one from another CA.
GENS = [pki("server"), pki("untrusted")]
BOTH_CA = os.path.join(TMP, "both-ca.pem")
with open(BOTH_CA, "wb") as f:
    for ca in ("ca", "other-ca"):
        with open(pki(ca)[0], "rb") as g:
            f.write(g.read())
LIVE_CERT, LIVE_KEY = os.path.join(TMP, "live.pem"), os.path.join(TMP, "live.key")


def fingerprint_pem(pem_text):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem_text)).hexdigest()


FP = []
for cert, _ in GENS:
    with open(cert) as f:
        FP.append(fingerprint_pem(f.read()))


def install(gen, key_of=None):
    """Replaces the served files (each by rename: a reader sees a whole
    file); key_of serves another generation's key (a broken pair)."""
    for src, dst in ((GENS[gen][0], LIVE_CERT), (GENS[gen if key_of is None else key_of][1],
                                                  LIVE_KEY)):
        tmp = dst + ".new"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def client_ctx():
    ctx = ssl.create_default_context(cafile=BOTH_CA)
    ctx.check_hostname = True
    return ctx


def python_handshake(port, ctx):
    """One verified handshake and an echoed line; the served certificate's
    SHA-256."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            fp = hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
            s.sendall(b"ping\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(64)
                if not chunk:
                    raise AssertionError(f"echo ended early: {got!r}")
                got += chunk
            if got != b"ping\n":
                raise AssertionError(f"echo returned {got!r}")
            return fp


def s_client_fingerprint(port):
    """openssl s_client, verifying against both CAs: the served leaf's
    SHA-256 (raises when verification or the handshake fails)."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile",
                        BOTH_CA, "-verify_return_error", "-servername", "localhost",
                        "-verify_hostname", "localhost"],
                       input=b"", capture_output=True, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0 or "-----BEGIN CERTIFICATE-----" not in out:
        raise AssertionError(f"openssl s_client failed ({r.returncode}): "
                             f"{r.stderr.decode('utf-8', 'replace')[-500:]}")
    a = out.index("-----BEGIN CERTIFICATE-----")
    b = out.index("-----END CERTIFICATE-----", a) + len("-----END CERTIFICATE-----")
    return fingerprint_pem(out[a:b] + "\n")


class Load:
    """Threads handshaking in a loop until stopped."""

    def __init__(self, port, n=3):
        self.port, self.stop_flag = port, threading.Event()
        self.lock = threading.Lock()
        self.seen, self.errors, self.count = {}, [], 0
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def run(self):
        ctx = client_ctx()
        while not self.stop_flag.is_set():
            try:
                fp = python_handshake(self.port, ctx)
                with self.lock:
                    self.seen[fp] = self.seen.get(fp, 0) + 1
                    self.count += 1
            except Exception as e:  # noqa: BLE001 - every failure counts
                with self.lock:
                    self.errors.append(repr(e))
                    self.count += 1

    def at_least(self, n):
        with self.lock:
            return self.count >= n

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(60)


def count(proc, what):
    return proc.text().count(what)


def sighup_and_wait(proc, what, before):
    proc.p.send_signal(signal.SIGHUP)
    wait_for(lambda: count(proc, what) > before, f"'{what}' after SIGHUP", timeout=60)


@case("echo: handshakes under load across SIGHUP reloads; broken reload keeps the old")
def echo_rotation(procs):
    install(0)
    port, sport = free_port(), free_port()
    srv = Proc([ECHO, "--listen", f"127.0.0.1:{port}", "--cert", LIVE_CERT, "--key", LIVE_KEY,
                "--status", f"127.0.0.1:{sport}"])
    procs.append(srv)
    wait_for(listening(port), "tlsq-echo listening")
    if s_client_fingerprint(port) != FP[0]:
        raise AssertionError("the first certificate is not served")
    ctx = client_ctx()
    early = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                            server_hostname="localhost")
    load = Load(port)
    current, reloads = 0, 0
    try:
        for _ in range(6):
            with load.lock:
                n = load.count
            wait_for(lambda: load.at_least(n + 5), "handshakes under the current certificate",
                     timeout=120)
            current ^= 1
            install(current)
            sighup_and_wait(srv, "reloaded:", reloads)
            reloads += 1
            got = s_client_fingerprint(port)
            if got != FP[current]:
                raise AssertionError(f"after reload {reloads}: served {got}, want {FP[current]}")
        # A key that belongs to the other certificate: refused, old one serves.
        with load.lock:
            n = load.count
        install(current ^ 1, key_of=current)
        sighup_and_wait(srv, "reload failed", 0)
        line = [ln for ln in srv.text().splitlines() if "reload failed" in ln][0]
        print("      " + line)
        if "still serving the previous certificate" not in line or "key" not in line:
            raise AssertionError(f"reload failure line: {line!r}")
        wait_for(lambda: load.at_least(n + 5), "handshakes after the failed reload", timeout=120)
        if s_client_fingerprint(port) != FP[current]:
            raise AssertionError("a failed reload changed the served certificate")
    finally:
        load.stop()
    early.sendall(b"still here\n")
    got = b""
    while not got.endswith(b"\n"):
        chunk = early.recv(64)
        if not chunk:
            break
        got += chunk
    early.close()
    print(f"      {load.count} handshakes, {reloads} reloads, served: "
          + ", ".join(f"gen{FP.index(k)}={v}" if k in FP else f"UNKNOWN {k}={v}"
                      for k, v in load.seen.items()))
    if load.errors:
        raise AssertionError(f"{len(load.errors)} failed handshakes, first: {load.errors[0]}")
    if any(k not in FP for k in load.seen):
        raise AssertionError(f"a certificate that is neither old nor new: {load.seen}")
    if len(load.seen) != 2:
        raise AssertionError(f"both certificates should have served: {load.seen}")
    if got != b"still here\n":
        raise AssertionError(f"the connection from before the reloads echoed {got!r}")
    # The reloads are counted in /status and /metrics.
    st = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sport}/status", timeout=30))
    if st["engine"]["cert_reloads"] != {"ok": reloads, "failed": 1}:
        raise AssertionError(f"/status cert_reloads: {st['engine']['cert_reloads']}")
    certs = st["certificates"]
    now = time.time()
    if (len(certs) != 1 or certs[0]["port"] != port or "CN=localhost" not in certs[0]["subject"]
            or not now < certs[0]["not_after_unix"] < now + 367 * 86400):
        raise AssertionError(f"/status certificates: {certs}")
    m = urllib.request.urlopen(f"http://127.0.0.1:{sport}/metrics", timeout=30).read().decode()
    for want in (f'tlsq_cert_reloads_total{{result="ok"}} {reloads}\n',
                 f'tlsq_certificate_not_after_seconds{{port="{port}",subject="',
                 'tlsq_cert_reloads_total{result="failed"} 1\n'):
        if want not in m:
            raise AssertionError(f"/metrics lacks {want!r}")
    srv.p.send_signal(signal.SIGTERM)
    if srv.wait(60) != 0:
        raise AssertionError("tlsq-echo did not exit 0 on SIGTERM")


@case("proxy: SIGHUP reloads the listening side's certificate")
def proxy_rotation(procs):
    install(0)
    up = free_port()
    upstream = Proc([ECHO, "--listen", f"127.0.0.1:{up}", "--self-signed"])
    procs.append(upstream)
    wait_for(listening(up), "upstream tlsq-echo listening")
    port = free_port()
    px = Proc([PROXY, "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{up}",
               "--upstream-tls", "--insecure", "--cert", LIVE_CERT, "--key", LIVE_KEY])
    procs.append(px)
    wait_for(listening(port), "tlsq-proxy listening")
    ctx = client_ctx()
    if python_handshake(port, ctx) != FP[0]:
        raise AssertionError("the proxy does not serve the first certificate")
    install(1)
    sighup_and_wait(px, "reloaded:", 0)
    if python_handshake(port, ctx) != FP[1]:
        raise AssertionError("the proxy does not serve the new certificate after SIGHUP")
    if s_client_fingerprint(port) != FP[1]:
        raise AssertionError("openssl s_client does not get the new certificate")


shutil.rmtree(TMP, ignore_errors=True)
finish("rotate")
