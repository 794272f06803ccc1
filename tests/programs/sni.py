#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Several certificates chosen by SNI (tlsq-echo --sni-cert) against OpenSSL.

usage: sni.py TOOLS_DIR PKI_SCRIPT_DIR

tlsq-echo serves server.pem (CN=localhost) by default, sni-a.pem for
a.tlsq.test and sni-b.pem for b.tlsq.test and *.b.tlsq.test:
  - openssl s_client -servername NAME, verifying the chain and the name
    (-verify_return_error -verify_hostname), gets the certificate of that
    name, in TLS 1.3 and TLS 1.2, and the echo answers;
  - an unknown name and a client without SNI (-noservername) get the
    default;
  - /status lists the three certificates, the SNI ones with their names,
    and /metrics has a line for each;
  - SIGHUP reloads all three: after the served files are swapped (a gets
    b's certificate and key, the default becomes a's), s_client sees the
    swap for every name.

Every wait is a polled condition with a deadline, ports are picked free.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, case, finish, free_port, listening, wait_for  # noqa: E402

if len(sys.argv) != 3:
    sys.exit("usage: sni.py TOOLS_DIR PKI_SCRIPT_DIR")
TOOLS, PKI = sys.argv[1:3]
TMP = tempfile.mkdtemp(prefix="tlsq-sni-")
subprocess.run(["sh", os.path.join(PKI, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ECHO = os.path.join(TOOLS, "tlsq-echo")
CA = os.path.join(TMP, "ca.pem")


def pki(name):
    return os.path.join(TMP, name + ".pem"), os.path.join(TMP, name + ".key")


def live(slot):
    return os.path.join(TMP, f"live-{slot}.pem"), os.path.join(TMP, f"live-{slot}.key")


def install(slot, name):
    """Serves pki(name) in slot (by rename: a reader sees a whole file)."""
    for src, dst in zip(pki(name), live(slot)):
        shutil.copyfile(src, dst + ".new")
        os.replace(dst + ".new", dst)


def s_client(port, name, tls12=False, check_name=True):
    """openssl s_client with SNI `name` (None: no SNI); the served leaf's
    subject. Verifies the chain always, and the name when one is sent and
    check_name."""
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", CA,
            "-verify_return_error"]
    argv += ["-tls1_2"] if tls12 else ["-tls1_3"]
    if name is None:
        argv += ["-noservername"]
    else:
        argv += ["-servername", name]
        if check_name and name in ("a.tlsq.test", "b.tlsq.test", "x.b.tlsq.test",
                                   "localhost"):
            argv += ["-verify_hostname", name]
    r = subprocess.run(argv, input=b"", capture_output=True, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0 or "-----BEGIN CERTIFICATE-----" not in out:
        raise AssertionError(f"openssl s_client -servername {name} failed ({r.returncode}): "
                             f"{r.stderr.decode('utf-8', 'replace')[-500:]}")
    a = out.index("-----BEGIN CERTIFICATE-----")
    b = out.index("-----END CERTIFICATE-----", a) + len("-----END CERTIFICATE-----")
    x = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
                       input=out[a:b].encode() + b"\n", capture_output=True, check=True)
    return x.stdout.decode().strip().removeprefix("subject=")


def expect(port, table, check_name=True):
    for name, subject in table:
        for tls12 in (False, True):
            got = s_client(port, name, tls12, check_name)
            print(f"      -servername {name or '(none)':16} TLS 1.{2 if tls12 else 3}: {got}")
            if got != subject:
                raise AssertionError(f"-servername {name}: served {got}, want {subject}")


@case("echo --sni-cert: each name its certificate, others the default; SIGHUP reloads all")
def echo_sni(procs):
    install("d", "server")
    install("a", "sni-a")
    install("b", "sni-b")
    port, sport = free_port(), free_port()
    srv = Proc([ECHO, "--listen", f"127.0.0.1:{port}", "--cert", live("d")[0], "--key",
                live("d")[1], "--sni-cert", "a.tlsq.test,{},{}".format(*live("a")),
                "--sni-cert", "b.tlsq.test,*.b.tlsq.test,{},{}".format(*live("b")),
                "--status", f"127.0.0.1:{sport}"])
    procs.append(srv)
    wait_for(listening(port), "tlsq-echo listening")
    expect(port, [("a.tlsq.test", "CN=a.tlsq.test"), ("b.tlsq.test", "CN=b.tlsq.test"),
                  ("x.b.tlsq.test", "CN=b.tlsq.test"), ("localhost", "CN=localhost"),
                  ("other.example", "CN=localhost"), (None, "CN=localhost")])

    st = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sport}/status", timeout=30))
    certs = [(c["subject"], c.get("sni")) for c in st["certificates"] if c["port"] == port]
    print(f"      /status certificates: {certs}")
    if certs != [("/CN=localhost", None), ("/CN=a.tlsq.test", "a.tlsq.test"),
                 ("/CN=b.tlsq.test", "b.tlsq.test,*.b.tlsq.test")]:
        raise AssertionError(f"/status certificates: {st['certificates']}")
    m = urllib.request.urlopen(f"http://127.0.0.1:{sport}/metrics", timeout=30).read().decode()
    want = (f'tlsq_certificate_not_after_seconds{{port="{port}",subject="/CN=a.tlsq.test",'
            'sni="a.tlsq.test"}')
    if want not in m:
        raise AssertionError(f"/metrics lacks {want!r}")

    # Swap every file, then one SIGHUP: all three change together.
    install("d", "sni-a")
    install("a", "sni-b")
    install("b", "server")
    srv.p.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded: for b.tlsq.test" in srv.text(), "'reloaded:' after SIGHUP",
             timeout=60)
    expect(port, [("a.tlsq.test", "CN=b.tlsq.test"), ("b.tlsq.test", "CN=localhost"),
                  (None, "CN=a.tlsq.test")], check_name=False)
    st = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sport}/status", timeout=30))
    if st["engine"]["cert_reloads"] != {"ok": 1, "failed": 0}:
        raise AssertionError(f"/status cert_reloads: {st['engine']['cert_reloads']}")
    srv.p.send_signal(signal.SIGTERM)
    if srv.wait(60) != 0:
        raise AssertionError("tlsq-echo did not exit 0 on SIGTERM")


@case("echo --sni-cert: malformed values are refused at start")
def echo_sni_bad(procs):
    for arg, why in (("a.tlsq.test," + pki("sni-a")[0], "is not NAMES,CERT,KEY"),
                     ("a.*.test,{},{}".format(*pki("sni-a")), "bad name")):
        r = subprocess.run([ECHO, "--listen", "127.0.0.1:0", "--cert", pki("server")[0],
                            "--key", pki("server")[1], "--sni-cert", arg],
                           capture_output=True, timeout=60)
        err = r.stderr.decode("utf-8", "replace")
        print(f"      {err.strip()}")
        if r.returncode == 0 or why not in err:
            raise AssertionError(f"--sni-cert {arg}: exit {r.returncode}, {err!r}")


shutil.rmtree(TMP, ignore_errors=True)
finish("sni")
