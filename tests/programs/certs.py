#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The programs' certificate options against OpenSSL (docs/programs.md).

usage: certs.py TOOLS_DIR PKI_SCRIPT_DIR GROUP

  pin   --pin on tlsq-cat (client, against openssl s_server), tlsq-echo
        (server, against openssl s_client with a client certificate) and
        tlsq-proxy (upstream): a matching pin (SPKI sha256//BASE64 or the
        certificate's hex fingerprint, as openssl prints them) connects and
        -v shows the peer's subject, SANs and SHA-256; a wrong pin fails with
        one line naming the peer's key, exit 1
  key   keys made by openssl: PKCS#8 encrypted PEM, traditional encrypted
        PEM, DER, encrypted DER, each served to openssl s_client; a missing
        or wrong password is one exact line and exit 1

Every wait is a polled condition with a deadline (never a sleep), ports are
picked free.
"""
import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, case, finish, free_port, listening, wait_for  # noqa: E402

GROUPS = ("pin", "key")
if len(sys.argv) != 4 or sys.argv[3] not in GROUPS:
    sys.exit(f"usage: certs.py TOOLS_DIR PKI_SCRIPT_DIR {'|'.join(GROUPS)}")
TOOLS, PKI, GROUP = sys.argv[1:4]
TMP = tempfile.mkdtemp(prefix=f"tlsq-certs-{GROUP}-")
subprocess.run(["sh", os.path.join(PKI, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pki(name):
    return os.path.join(TMP, name + ".pem"), os.path.join(TMP, name + ".key")


CA = pki("ca")[0]
SRV, SRVKEY = pki("server")
CLI, CLIKEY = pki("client")
CAT, ECHO, PROXY = (os.path.join(TOOLS, "tlsq-" + p) for p in ("cat", "echo", "proxy"))


def group(name, title):
    if name == GROUP:
        return case(title)
    return lambda fn: fn


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True,
                          timeout=60).stdout


def cert_sha256(cert):
    """openssl x509 -fingerprint -sha256: "AB:CD:..." (colons, upper case)."""
    out = openssl("x509", "-in", cert, "-noout", "-fingerprint", "-sha256").decode()
    return out.strip().split("=", 1)[1]


def spki_pin(cert):
    """curl's --pinnedpubkey form, computed by openssl alone."""
    pub = openssl("x509", "-in", cert, "-pubkey", "-noout")
    der = openssl("pkey", "-pubin", "-outform", "DER", data=pub)
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def stderr_of(p):
    p.stdout()
    return bytes(p.err).decode("utf-8", "replace")


def one_line(what, err):
    lines = err.strip().splitlines()
    if len(lines) != 1:
        raise AssertionError(f"{what}: stderr is {len(lines)} lines, want one: {err!r}")
    return lines[0]


def s_server(procs, cert=SRV, key=SRVKEY, *extra):
    port = free_port()
    srv = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", cert, "-key",
                key, "-naccept", "1", "-quiet", *extra])
    procs.append(srv)
    wait_for(listening(port), "s_server to listen")
    return port, srv


def cat_to(procs, port, *extra, data=b"ping\n"):
    cat = Proc([CAT, "-v", f"127.0.0.1:{port}", *extra])
    procs.append(cat)
    try:
        cat.send(data)
        cat.close_stdin()
    except BrokenPipeError:
        pass  # a refused connection may end tlsq-cat before it reads stdin
    rc = cat.wait(60)
    return rc, cat.stdout(), stderr_of(cat)


def identity_line(err, cert):
    """The -v identity line, checked against what openssl says of cert."""
    lines = [ln for ln in err.splitlines() if " identity: " in ln]
    if len(lines) != 1:
        raise AssertionError(f"want one identity line: {err!r}")
    ln = lines[0]
    fp = cert_sha256(cert).replace(":", "").lower()
    for want in (f"sha256 {fp}", "subject /CN=", spki_pin(cert)):
        if want not in ln:
            raise AssertionError(f"identity line lacks {want!r}: {ln!r}")
    return ln


def s_client(procs, port, *extra, ok=True):
    """openssl s_client sends a line to tlsq-echo; returns what came back:
    the line (ok, then s_client is killed) or nothing (s_client exits when
    the server refuses it)."""
    cli = Proc(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", CA,
                "-verify_return_error", "-quiet", *extra])
    procs.append(cli)
    try:
        cli.send(b"hello\n")
    except BrokenPipeError:
        # Refused already (the handshake failed before s_client read its
        # stdin): expected when ok=False, a failure otherwise.
        if ok:
            raise
    if ok:
        wait_for(lambda: b"hello\n" in cli.out or cli.p.poll() is not None,
                 "the echo at s_client", timeout=60)
    else:
        cli.wait(60)
    cli.kill()
    return cli.stdout()


def stop(proc, what):
    proc.p.send_signal(signal.SIGTERM)
    rc = proc.wait(60)
    if rc != 0:
        raise AssertionError(f"{what} exited {rc} on SIGTERM: {proc.text()[-1000:]}")


# ------------------------------------------------------------------- --pin
@group("pin", "tlsq-cat --pin: the SPKI pin (with --insecure) and the certificate "
       "fingerprint (with --ca) connect to openssl s_server; -v shows the identity")
def _(procs):
    for extra in (["--insecure", "--pin", spki_pin(SRV)],
                  ["--ca", CA, "--pin", cert_sha256(SRV)],
                  # several pins: one of them matches
                  ["--ca", CA, "--pin", spki_pin(CLI), "--pin", spki_pin(SRV)]):
        port, srv = s_server(procs)
        srv.send(b"from s_server\n")
        rc, out, err = cat_to(procs, port, *extra)
        if rc != 0 or out != b"from s_server\n":
            raise AssertionError(f"{extra}: exit {rc}, stdout {out!r}, {err!r}")
        ln = identity_line(err, SRV)
        if "DNS:localhost" not in ln or "IP:127.0.0.1" not in ln:
            raise AssertionError(f"SANs missing: {ln!r}")
        srv.kill()


@group("pin", "tlsq-cat --pin with another key's pin: one line naming the peer's key, exit 1, "
       "no byte through")
def _(procs):
    for extra in (["--insecure", "--pin", spki_pin(CLI)],
                  ["--ca", CA, "--pin", cert_sha256(CLI)]):
        port, srv = s_server(procs)
        srv.send(b"secret\n")
        rc, out, err = cat_to(procs, port, *extra)
        line = one_line(str(extra), err)
        want = f"certificate pin mismatch: the peer's public key is {spki_pin(SRV)}"
        if rc != 1 or out or want not in line or not line.startswith("tlsq-cat: cannot connect"):
            raise AssertionError(f"{extra}: exit {rc}, stdout {out!r}, {line!r}")
        srv.kill()


@group("pin", "tlsq-cat: a malformed --pin is refused at start with one line")
def _(procs):
    r = subprocess.run([CAT, "--insecure", "--pin", "sha256//nope", "127.0.0.1:1"],
                       capture_output=True, text=True, timeout=60)
    line = one_line("bad pin", r.stderr)
    if r.returncode != 1 or "pin" not in line or not line.startswith("tlsq-cat: TLS setup: "):
        raise AssertionError(f"exit {r.returncode}, {line!r}")


@group("pin", "tlsq-echo --pin: openssl s_client with the pinned client certificate "
       "gets its bytes back, -v shows the client's identity; without a certificate or "
       "with another one it is refused")
def _(procs):
    for extra in ([], ["--ca", CA]):
        port = free_port()
        echo = Proc([ECHO, "-v", "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key",
                     SRVKEY, "--pin", spki_pin(CLI), *extra])
        procs.append(echo)
        wait_for(listening(port), "tlsq-echo to listen", timeout=60)
        out = s_client(procs, port, "-cert", CLI, "-key", CLIKEY)
        if out != b"hello\n":
            raise AssertionError(f"{extra} pinned client: got {out!r}")
        wait_for(lambda: " identity: " in echo.text(), "the client's identity line")
        identity_line(bytes(echo.err).decode(), CLI)
        # Another certificate (the server's own, clientAuth aside: the pin decides),
        # and no certificate: no byte comes back.
        for args in (["-cert", SRV, "-key", SRVKEY], []):
            out = s_client(procs, port, *args, ok=False)
            if out:
                raise AssertionError(f"{extra} {args}: echoed {out!r}")
        # Without --ca the pin refuses the server's certificate; with --ca its
        # chain check does first (no clientAuth). No certificate: refused.
        want = "certificate pin mismatch: the peer's public key is " + spki_pin(SRV) \
            if not extra else "[client_cert]: certificate verify failed"
        wait_for(lambda: want in echo.text() and "[no_client_cert]" in echo.text(),
                 f"{want!r} and no_client_cert in -v")
        stop(echo, "tlsq-echo")


@group("pin", "tlsq-proxy --pin pins the upstream: the right pin relays, a wrong one "
       "closes the client's connection; --pin without --upstream-tls is refused")
def _(procs):
    for pin, ok in ((spki_pin(SRV), True), (spki_pin(CLI), False)):
        up, srv = s_server(procs)
        srv.send(b"upstream says hi\n")
        port = free_port()
        px = Proc([PROXY, "-v", "--listen", f"127.0.0.1:{port}", "--listen-plain",
                   "--upstream", f"127.0.0.1:{up}", "--upstream-tls", "--ca", CA, "--servername",
                   "localhost", "--pin", pin])
        procs.append(px)
        wait_for(listening(port), "tlsq-proxy to listen", timeout=60)
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        got = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk or b"\n" in got + chunk:
                got += chunk
                break
            got += chunk
        s.close()
        if ok and bytes(got) != b"upstream says hi\n":
            raise AssertionError(f"right pin: got {bytes(got)!r}")
        if not ok:
            if got:
                raise AssertionError(f"wrong pin: got {bytes(got)!r}")
            wait_for(lambda: "pin mismatch" in px.text(), "the proxy's pin mismatch line")
        stop(px, "tlsq-proxy")
        srv.kill()
    r = subprocess.run([PROXY, "--listen", "127.0.0.1:0", "--listen-plain", "--upstream",
                        "127.0.0.1:1",
                        "--pin", spki_pin(SRV)], capture_output=True, text=True, timeout=60)
    line = one_line("--pin without --upstream-tls", r.stderr)
    if r.returncode != 1 or "--pin needs --upstream-tls" not in line:
        raise AssertionError(f"exit {r.returncode}, {line!r}")


# ------------------------------------------------------------------- keys
def write(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def serve_and_check(procs, key, *extra):
    """tlsq-echo with this key answers openssl s_client (verified)."""
    port = free_port()
    echo = Proc([ECHO, "--listen", f"127.0.0.1:{port}", "--cert", SRV, "--key", key, *extra])
    procs.append(echo)
    wait_for(lambda: listening(port)() or echo.p.poll() is not None, "tlsq-echo to start",
             timeout=60)
    if echo.p.poll() is not None:
        raise AssertionError(f"{key}: tlsq-echo exited {echo.p.returncode}: {echo.text()}")
    out = s_client(procs, port, "-verify_hostname", "localhost")
    if out != b"hello\n":
        raise AssertionError(f"{key}: s_client got {out!r}")
    stop(echo, "tlsq-echo")


def refused(key, extra, want):
    r = subprocess.run([ECHO, "--listen", "127.0.0.1:0", "--cert", SRV, "--key", key, *extra],
                       capture_output=True, text=True, timeout=60)
    line = one_line(key, r.stderr)
    if r.returncode != 1 or line != want:
        raise AssertionError(f"{key} {extra}: exit {r.returncode}, {line!r}, want {want!r}")


PW = write("pw.txt", b"s3cret pass\n")  # a trailing newline, a space inside
BADPW = write("bad.txt", b"not it\n")
P8 = os.path.join(TMP, "p8.key")
TRAD = os.path.join(TMP, "trad.key")
DER = os.path.join(TMP, "der.key")
P8DER = os.path.join(TMP, "p8der.key")
if GROUP == "key":
    openssl("pkcs8", "-topk8", "-in", SRVKEY, "-v2", "aes256", "-passout", "pass:s3cret pass",
            "-out", P8)
    openssl("ec", "-in", SRVKEY, "-aes128", "-passout", "pass:s3cret pass", "-out", TRAD)
    openssl("pkey", "-in", SRVKEY, "-outform", "DER", "-out", DER)
    openssl("pkcs8", "-topk8", "-in", SRVKEY, "-v2", "aes256", "-passout", "pass:s3cret pass",
            "-outform", "DER", "-out", P8DER)


@group("key", "DER, PKCS#8 encrypted PEM, traditional encrypted PEM and encrypted DER keys "
       "serve openssl s_client")
def _(procs):
    serve_and_check(procs, DER)
    for key in (P8, TRAD, P8DER):
        serve_and_check(procs, key, "--key-password-file", PW)


@group("key", "a missing or wrong password: one exact line, exit 1")
def _(procs):
    enc = "tlsq-echo: TLS setup: the private key {} is encrypted: give its password " \
          "(key_password; the programs: --key-password-file FILE)"
    refused(P8, [], enc.format(P8))
    refused(TRAD, [], enc.format(TRAD))
    refused(P8, ["--key-password-file", BADPW],
            f"tlsq-echo: TLS setup: cannot decrypt the private key {P8}: wrong password? (or "
            "an encryption tlsq does not support: use PKCS#8 with AES, openssl pkey -aes256)")
    refused(TRAD, ["--key-password-file", BADPW],
            f"tlsq-echo: TLS setup: cannot decrypt the private key {TRAD}: wrong password? "
            f"(if it is right, the key does not match the certificate {SRV})")
    refused(P8DER, ["--key-password-file", BADPW],
            f"tlsq-echo: TLS setup: cannot use the DER private key {P8DER}: wrong password? "
            "(or a damaged file, or a key type tlsq does not support)")
    missing = os.path.join(TMP, "no-such.txt")
    refused(P8, ["--key-password-file", missing],
            f"tlsq-echo: --key-password-file: cannot read {missing}: No such file or directory")
    refused(P8, ["--key-password-file", write("empty.txt", b"\n")],
            f"tlsq-echo: --key-password-file: {TMP}/empty.txt holds no password (an empty "
            "first line)")


shutil.rmtree(TMP, ignore_errors=True)
finish("certs " + GROUP)
