#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""TLS scanners against tlsq-echo with its defaults (docs/reliability.md).

usage: scan.py TOOLS_DIR PKI_SCRIPT_DIR testssl|sslscan|nmap

One ctest per scanner (tests/scanners/CMakeLists.txt). Each starts tlsq-echo
with nothing but --listen, --cert and --key (every TLS setting is tlsq's
default), runs the scanner with the command of notes/testing-tools.md, checks
its report, then checks that the server still echoes and exits 0 on SIGTERM
(so an ASan build reports what the scanner's probes did to it).

  testssl  -p -s -S -R -U -E (protocols, cipher categories, server defaults,
           renegotiation, vulnerabilities, ciphers per protocol; about a
           minute): no finding of severity HIGH or CRITICAL; SSLv2 to
           TLS 1.1 not offered, TLS 1.2 offered; no NULL, anonymous, export,
           LOW, 3DES/IDEA or CBC category offered; every cipher AEAD
  sslscan  no SSLv2/SSLv3/TLSv1.0/TLSv1.1 enabled; every accepted cipher AEAD
           and none NULL, anon/ADH/AECDH, RC4, (3)DES, CBC; not vulnerable to
           heartbleed, no insecure renegotiation. Two cross-checks of what
           sslscan gets wrong about wolfSSL: the TLS 1.2 floor with
           openssl s_client (-tls1 and -tls1_1 refused by the server,
           -tls1_2 and -tls1_3 accepted), and every key exchange group it
           lists under 128 bits asked for with a hand-made ClientHello
           (tlsprobe.py): the server must not choose it
  nmap     ssl-enum-ciphers: least strength A, only TLSv1.2 and TLSv1.3
           sections, every cipher graded A, no warnings

Prints SCAN|tool|check|pass|detail lines (pass or FAIL) and, per check,
PASS/FAIL lines with a pass/total summary (harness.py). A scanner that is not
installed makes the test exit 77 (skipped; tools/setup --test installs all three).
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from harness import Proc, case, finish, free_port, listening, wait_for  # noqa: E402
import tlsprobe  # noqa: E402

TOOLS = ("testssl", "sslscan", "nmap")
if len(sys.argv) != 4 or sys.argv[3] not in TOOLS:
    sys.exit(f"usage: scan.py TOOLS_DIR PKI_SCRIPT_DIR {'|'.join(TOOLS)}")
BIN, PKI, TOOL = sys.argv[1:4]
if not shutil.which(TOOL):
    print(f"SKIP: {TOOL} is not installed (tools/setup --test installs it)", flush=True)
    sys.exit(77)
TMP = tempfile.mkdtemp(prefix=f"tlsq-scan-{TOOL}-")
subprocess.run(["sh", os.path.join(PKI, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
CA = os.path.join(TMP, "ca.pem")
CERT, KEY = os.path.join(TMP, "scan.pem"), os.path.join(TMP, "scan.key")
ECHO = os.path.join(BIN, "tlsq-echo")

# A cipher suite name, OpenSSL's or IANA's, is acceptable when it names an
# AEAD and nothing weak. OpenSSL's names of CBC suites do not say CBC
# (ECDHE-RSA-AES128-SHA256), hence the AEAD requirement.
WEAK = re.compile(r"NULL|anon|ADH|AECDH|RC4|DES|CBC|EXP|IDEA|SEED|MD5", re.I)
AEAD = re.compile(r"GCM|CHACHA20|POLY1305|CCM", re.I)
failures = []


def report(check, ok, detail):
    """One SCAN line; a failed check is remembered for the case to raise."""
    print(f"SCAN|{TOOL}|{check}|{'pass' if ok else 'FAIL'}|{detail}", flush=True)
    if not ok:
        failures.append(f"{check}: {detail}")


def cipher_problem(name):
    m = WEAK.search(name)
    if m:
        return f"{name} ({m.group(0)})"
    if not AEAD.search(name):
        return f"{name} (not AEAD)"
    return None


def run(argv, timeout):
    t0 = time.monotonic()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    return p.returncode, out, time.monotonic() - t0


def start_echo(procs):
    port = free_port()
    echo = Proc([ECHO, "--listen", f"127.0.0.1:{port}", "--cert", CERT, "--key", KEY])
    procs.append(echo)
    wait_for(listening(port), "tlsq-echo to listen", timeout=60)
    return port, echo


def still_serves(port, echo):
    """After the scan: a verified TLS connection echoes, and SIGTERM ends
    the server with exit 0."""
    ctx = ssl.create_default_context(cafile=CA)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"still here\n")
            got = b""
            while len(got) < 11:
                chunk = s.recv(64)
                if not chunk:
                    break
                got += chunk
    report("echo after the scan", got == b"still here\n",
           "a line over a new verified connection came back" if got == b"still here\n"
           else f"got {got!r} back")
    echo.p.send_signal(signal.SIGTERM)
    rc = echo.wait(60)
    report("exit on SIGTERM", rc == 0, f"tlsq-echo exited {rc}")


def finish_case(procs, port, echo):
    try:
        still_serves(port, echo)
    except (OSError, subprocess.TimeoutExpired) as e:
        report("echo after the scan", False, str(e))
    if failures:
        raise AssertionError("; ".join(failures))


# ------------------------------------------------------------------ testssl
def check_testssl(procs):
    port, echo = start_echo(procs)
    js = os.path.join(TMP, "testssl.json")
    # The command of notes/testing-tools.md, plus --nodns none: the target
    # is an address, and a machine without DNS must not wait for lookups.
    rc, out, secs = run(["testssl", "--quiet", "--color", "0", "--warnings", "off",
                         "--nodns", "none", "--add-ca", CA, "--jsonfile", js,
                         "-p", "-s", "-S", "-R", "-U", "-E", f"127.0.0.1:{port}"], 600)
    if not os.path.exists(js):
        raise AssertionError(f"testssl wrote no JSON (exit {rc}): {out[-2000:]}")
    items = json.load(open(js))
    by_id = {x["id"]: x for x in items}
    report("run", "scanTime" in by_id, f"{len(items)} findings in {secs:.0f} s")

    bad = [f"{x['id']} {x['severity']}: {x['finding']}" for x in items
           if x["severity"] in ("HIGH", "CRITICAL")]
    report("no HIGH or CRITICAL", not bad, "; ".join(bad) or "none")
    for x in items:
        if x["severity"] in ("MEDIUM", "LOW", "WARN"):
            print(f"SCAN|testssl|note {x['id']}|pass|{x['severity']}: {x['finding']}")

    def finding(key):
        return by_id.get(key, {}).get("finding", "(missing)")

    old = {p: finding(p) for p in ("SSLv2", "SSLv3", "TLS1", "TLS1_1")}
    report("TLS 1.2 floor",
           all(v.startswith("not offered") for v in old.values()) and
           finding("TLS1_2").startswith("offered"),
           ", ".join(f"{k} {v}" for k, v in old.items()) + f", TLS1_2 {finding('TLS1_2')}, "
           f"TLS1_3 {finding('TLS1_3')}")
    cats = {c: finding("cipherlist_" + c)
            for c in ("NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE")}
    report("no weak cipher category", all(v.startswith("not offered") for v in cats.values()),
           ", ".join(f"{k} {v}" for k, v in cats.items()) +
           f" (AVERAGE = obsolete CBC); STRONG {finding('cipherlist_STRONG')}")
    suites = [x["finding"].split()[3] for x in items if x["id"].startswith("cipher-tls")]
    probs = [p for p in map(cipher_problem, suites) if p]
    report("AEAD only", suites and not probs,
           "; ".join(probs) if probs else f"{len(suites)} suites: {' '.join(suites)}")
    finish_case(procs, port, echo)


# ------------------------------------------------------------------ sslscan
def s_client_version(port, flag):
    """(negotiated protocol or None, the server's alert if any)."""
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
            "localhost", "-CAfile", CA, flag]
    if flag in ("-tls1", "-tls1_1"):
        # OpenSSL 3 offers TLS 1.0/1.1 only at security level 0.
        argv += ["-cipher", "DEFAULT:@SECLEVEL=0"]
    _, out, _ = run(argv, 30)
    m = re.search(r"^New, (TLSv[\d.]+), Cipher is (\S+)", out, re.M)
    alert = re.search(r"alert (\w[\w ]*\w)[^\n]*SSL alert number (\d+)", out)
    proto = m.group(1) if m and m.group(2) != "(NONE)" else None
    return proto, (f"alert {alert.group(1)} ({alert.group(2)})" if alert else "no alert")


def check_sslscan(procs):
    port, echo = start_echo(procs)
    rc, out, secs = run(["sslscan", "--no-colour", f"127.0.0.1:{port}"], 300)
    open(os.path.join(TMP, "sslscan.txt"), "w").write(out)
    protos = dict(re.findall(r"^(SSLv[23]|TLSv1\.[0-3])\s+(enabled|disabled)$", out, re.M))
    report("run", rc == 0 and len(protos) == 6, f"exit {rc} in {secs:.1f} s, "
           f"{len(protos)} protocols reported")
    old = [p for p in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1") if protos.get(p) != "disabled"]
    report("no protocol below TLS 1.2", not old,
           ", ".join(f"{k} {v}" for k, v in protos.items()))

    # sslscan 2.0.7's TLS 1.2 ClientHello offers 344 cipher suites; wolfSSL
    # 5.5.4 answers a hello with more than 150 with decode_error, so sslscan
    # reports TLS 1.2 disabled. openssl s_client says what the server does.
    got = {f: s_client_version(port, f) for f in ("-tls1", "-tls1_1", "-tls1_2", "-tls1_3")}
    ok = (got["-tls1"][0] is None and got["-tls1_1"][0] is None and
          got["-tls1_2"][0] == "TLSv1.2" and got["-tls1_3"][0] == "TLSv1.3")
    report("TLS 1.2 floor (openssl s_client)", ok,
           ", ".join(f"{f}: {p or 'refused'} ({a})" for f, (p, a) in got.items()) +
           f"; sslscan said TLSv1.2 {protos.get('TLSv1.2')}")

    ciphers = re.findall(r"^(?:Preferred|Accepted)\s+(\S+)\s+(\d+) bits\s+(\S+)", out, re.M)
    probs = [p for p in (cipher_problem(c) for _, _, c in ciphers) if p]
    probs += [f"{c} ({b} bits)" for _, b, c in ciphers if int(b) < 128]
    report("accepted ciphers AEAD only", ciphers and not probs,
           "; ".join(probs) if probs else
           " ".join(f"{v}:{c}" for v, _, c in ciphers))
    report("heartbleed", "vulnerable to heartbleed" in out and
           not re.search(r"(?<!not )vulnerable to heartbleed", out),
           "; ".join(re.findall(r"^\S+ .*vulnerable to heartbleed$", out, re.M)))
    reneg = re.search(r"^(.*renegotiation.*)$", out.split("TLS renegotiation:", 1)[-1], re.M)
    report("renegotiation", reneg is not None and "Insecure" not in reneg.group(1),
           reneg.group(1) if reneg else "no renegotiation line")

    claimed = re.findall(r"^(TLSv1\.[23])\s+(\d+) bits\s+(\S+)", out, re.M)
    weak = sorted({name for _, bits, name in claimed if int(bits) < 128})
    chosen = {"1.3": [], "1.2": []}
    wrong = []
    for name, (gid, bits) in tlsprobe.GROUPS.items():
        for ver, probe in (("1.3", tlsprobe.probe_tls13), ("1.2", tlsprobe.probe_tls12)):
            sel, what = probe(port, gid)
            if sel == gid:
                chosen[ver].append(name)
                if bits < 128 or name in weak:
                    wrong.append(f"TLS {ver} {name} ({bits} bits): {what}")
    report("weak groups sslscan lists are refused", not wrong,
           "; ".join(wrong) if wrong else
           f"sslscan lists {len(claimed)} groups, {len(weak)} under 128 bits; asked alone, "
           f"the server chooses in TLS 1.3: {' '.join(chosen['1.3'])}; "
           f"in TLS 1.2: {' '.join(chosen['1.2'])}")
    finish_case(procs, port, echo)


# --------------------------------------------------------------------- nmap
def check_nmap(procs):
    port, echo = start_echo(procs)
    rc, out, secs = run(["nmap", "-Pn", "-p", str(port), "--script",
                         "ssl-enum-ciphers,ssl-cert", "127.0.0.1"], 300)
    report("run", rc == 0 and "ssl-enum-ciphers:" in out,
           f"exit {rc} in {secs:.1f} s")
    least = re.search(r"least strength: (\S+)", out)
    report("least strength A", least is not None and least.group(1) == "A",
           f"least strength: {least.group(1) if least else '(missing)'}")
    sections = re.findall(r"^\|\s+(SSLv\S+|TLSv[\d.]+):\s*$", out, re.M)
    report("only TLSv1.2 and TLSv1.3", sorted(sections) == ["TLSv1.2", "TLSv1.3"],
           "sections: " + " ".join(sections))
    suites = re.findall(r"^\|\s+(TLS_\S+)(?: \(([^)]*)\))? - (\S+)\s*$", out, re.M)
    probs = [f"{n} graded {g}" for n, _, g in suites if g != "A"]
    probs += [p for p in (cipher_problem(n) for n, _, _ in suites) if p]
    report("every cipher A and AEAD", suites and not probs,
           "; ".join(probs) if probs else
           " ".join(f"{n}({kx})" for n, kx, _ in suites))
    warn = re.search(r"^\|\s+warnings:\s*\n((?:\|\s{7,}.*\n)+)", out, re.M)
    report("no warnings", warn is None,
           " / ".join(l.strip("| ") for l in warn.group(1).splitlines()) if warn else "none")
    finish_case(procs, port, echo)


TITLES = {
    "testssl": "testssl -p -s -S -R -U -E: no HIGH/CRITICAL, TLS 1.2 floor, AEAD only",
    "sslscan": "sslscan: TLS 1.2 floor, AEAD only, no weak group chosen",
    "nmap": "nmap ssl-enum-ciphers: least strength A, TLS 1.2 and 1.3 only",
}
case(TITLES[TOOL])({"testssl": check_testssl, "sslscan": check_sslscan,
                    "nmap": check_nmap}[TOOL])
shutil.rmtree(TMP, ignore_errors=True)
finish("scan_" + TOOL)
