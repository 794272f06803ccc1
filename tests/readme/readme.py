#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The README's C snippet (built by tests/readme/CMakeLists.txt from
README.md as written) against tlsq-echo, the way the README tells a user to
run it.

usage: readme.py HELLO TOOLS_DIR PKI_SCRIPT_DIR

  runs      ./hello localhost:PORT ca.pem prints exactly "hello\\n" (the
            echo), nothing on stderr, exit 0
  errors    every failure is one line on stderr naming what failed, exit 1:
            untrusted server certificate, nothing listening, unreadable CA
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, case, finish, free_port, listening, wait_for  # noqa: E402

if len(sys.argv) != 4:
    sys.exit("usage: readme.py HELLO TOOLS_DIR PKI_SCRIPT_DIR")
HELLO, TOOLS, PKI = (os.path.abspath(a) for a in sys.argv[1:4])
TMP = tempfile.mkdtemp(prefix="tlsq-readme-")
atexit.register(shutil.rmtree, TMP, True)
subprocess.run(["sh", os.path.join(PKI, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
CA = os.path.join(TMP, "ca.pem")


def hello(*args):
    r = subprocess.run([HELLO, *args], capture_output=True, timeout=60, cwd=TMP)
    print(f"      ./hello {' '.join(args)}: exit {r.returncode}, stdout {r.stdout!r}, "
          f"stderr {r.stderr!r}", flush=True)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def echo_server(procs):
    port = free_port()
    procs.append(Proc([os.path.join(TOOLS, "tlsq-echo"), "--listen", str(port),
                       "--cert", os.path.join(TMP, "server.pem"),
                       "--key", os.path.join(TMP, "server.key")]))
    wait_for(listening(port), f"tlsq-echo on {port}")
    return port


def one_error_line(err, *words):
    lines = err.splitlines()
    if len(lines) != 1 or not lines[0].startswith("hello: "):
        raise AssertionError(f"want one 'hello: ...' line on stderr, got {err!r}")
    for w in words:
        if w not in lines[0]:
            raise AssertionError(f"{w!r} not in {lines[0]!r}")


@case("runs: the snippet's line comes back and it exits 0")
def _(procs):
    port = echo_server(procs)
    for _ in range(3):  # and again: nothing left over from the last run
        rc, out, err = hello(f"localhost:{port}", CA)
        if (rc, out, err) != (0, b"hello\n", ""):
            raise AssertionError(f"rc {rc}, stdout {out!r}, stderr {err!r}")


@case("errors: an untrusted server certificate is refused with its reason")
def _(procs):
    port = echo_server(procs)
    rc, out, err = hello(f"localhost:{port}", os.path.join(TMP, "other-ca.pem"))
    if rc != 1 or out:
        raise AssertionError(f"rc {rc}, stdout {out!r}, stderr {err!r}")
    one_error_line(err, f"localhost:{port}: ", "certificate")


@case("errors: nothing listening gives 'refused', exit 1")
def _(procs):
    port = free_port()
    rc, out, err = hello(f"localhost:{port}", CA)
    if rc != 1 or out:
        raise AssertionError(f"rc {rc}, stdout {out!r}, stderr {err!r}")
    one_error_line(err, f"localhost:{port}: ", "refused")


@case("errors: a CA file that does not exist is named, exit 1")
def _(procs):
    missing = os.path.join(TMP, "no-such-ca.pem")
    rc, out, err = hello("localhost:1", missing)
    if rc != 1 or out:
        raise AssertionError(f"rc {rc}, stdout {out!r}, stderr {err!r}")
    one_error_line(err, missing)


finish("readme_snippet")
