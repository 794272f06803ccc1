#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A failing connection says why on the wire, then ends with a FIN (issue 19).

usage: alerts.py TOOLS_DIR [RUNS]

Raw peers written here (Python's ssl over MemoryBIO: every record is ours to
build, corrupt and pipeline) against tlsq-echo. Each run ends on the server's
side; the peer then reports what reached it: the fatal alert (as OpenSSL
names it) and how the TCP connection ended: 'fin' (EOF), 'rst'
(ECONNRESET) or 'timeout'. A run passes only with the expected alert AND a
FIN. Cells:

  bad_record  TLS 1.2 and 1.3 x --cipher-buffer 1, 16, default: valid data,
              one record with a flipped ciphertext byte and more data, all in
              one pipelined send while a second thread reads the echo
              -> bad_record_mac, then FIN. RUNS runs per cell (default 20).
  storm       tlsq-cat with --key-update-bytes 1 (a KeyUpdate after every
              record) against tlsq-echo --max-key-updates 1 -> the client
              reports the peer's unexpected_message alert.
  idle        --idle-timeout: a silent peer after the handshake
              -> internal_error, then FIN.
  handshake   --handshake-timeout: a peer that sends its ClientHello and
              stops -> internal_error, then FIN.
  msgsize     --mode msg --max-message 64: a message header announcing more
              -> decode_error, then FIN.

Before the fix (close() with unread input) the bad_record cells lost the
alert to a RST in some runs and ended in RST in all of them; the other cells
got no alert at all.
"""
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, case, finish, free_port, listening, wait_for  # noqa: E402

TOOLS = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
ECHO = os.path.join(TOOLS, "tlsq-echo")
CAT = os.path.join(TOOLS, "tlsq-cat")
END_S = 20.0  # bound for one run's end (the server lingers at most 2 s)
PAR = 4       # runs at once per cell

V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def context(version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


class Peer:
    """One TCP connection driven through an SSLObject. Only the thread that
    calls read_to_end touches the SSLObject after the handshake."""

    def __init__(self, port, version):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=END_S)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context(version).wrap_bio(self.inc, self.out, server_hostname="localhost")

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def client_hello(self):
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.flush()

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                d = self.sock.recv(65536)
                if not d:
                    raise AssertionError("EOF during the handshake")
                self.inc.write(d)

    def records(self, data):
        """The ciphertext of data, as the records the SSLObject makes."""
        self.obj.write(data)
        return self.out.read()

    def read_to_end(self, feed_only_at_end=False):
        """Reads until the TCP connection ends. Returns (alert, end, got):
        the alert OpenSSL reported ('' if none), 'fin' / 'rst' / 'timeout',
        and the plaintext bytes received."""
        alert, end, got, raw = "", "timeout", 0, bytearray()
        deadline = time.monotonic() + END_S

        def process():
            nonlocal alert, got
            if alert:
                return
            try:
                if not self.obj.server_side and self.obj.version() is None:
                    self.obj.do_handshake()
                while True:
                    got += len(self.obj.read(65536))
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLZeroReturnError:
                alert = "close_notify"
            except ssl.SSLError as e:
                alert = e.reason or str(e)
            try:
                self.flush()
            except OSError:
                pass

        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536)
            except ConnectionResetError:
                end = "rst"
                break
            except socket.timeout:
                break
            if not d:
                end = "fin"
                break
            if feed_only_at_end:
                raw.extend(d)
                continue
            self.inc.write(d)
            process()
        if feed_only_at_end and raw:
            self.inc.write(bytes(raw))
        process()
        return alert, end, got

    def close(self):
        self.sock.close()


def echo(*args):
    port = free_port()
    p = Proc([ECHO, "--listen", f"127.0.0.1:{port}", "--self-signed", "-v", *args])
    wait_for(listening(port), "tlsq-echo to listen")
    return p, port


def corrupt(rec):
    """Flips a byte inside the first record's ciphertext (past the header
    and TLS 1.2's explicit nonce): the AEAD tag check must fail."""
    b = bytearray(rec)
    b[5 + 8 + 2] ^= 0x5A
    return bytes(b)


def bad_record_run(port, version, before, after):
    peer = Peer(port, version)
    try:
        peer.handshake()
        wire = (peer.records(b"A" * before) + corrupt(peer.records(b"B" * 100)) +
                peer.records(b"C" * after))

        def writer():
            try:
                peer.sock.sendall(wire)  # pipelined: the server fails mid-way
            except OSError:
                pass
        w = threading.Thread(target=writer, daemon=True)
        w.start()
        alert, end, got = peer.read_to_end()
        w.join(END_S)
        return alert, end, got
    finally:
        peer.close()


def check_runs(name, results, want_alert):
    bad = [(i, a, e) for i, (a, e, _) in enumerate(results)
           if want_alert not in a.upper() or e != "fin"]
    alerts = sum(1 for a, _, _ in results if want_alert in a.upper())
    fins = sum(1 for _, e, _ in results if e == "fin")
    print(f"      {name}: alert {alerts}/{len(results)}, FIN {fins}/{len(results)}", flush=True)
    if bad:
        raise AssertionError(f"{len(bad)} of {len(results)} runs failed; first: run {bad[0][0]} "
                             f"alert={bad[0][1]!r} end={bad[0][2]}")


# --- bad record: valid data, a corrupted record, more data, pipelined ---
for version, vname in ((V12, "TLS 1.2"), (V13, "TLS 1.3")):
    for cb in ("1", "16", None):
        label = f"bad record, {vname}, --cipher-buffer {cb or 'default'}"

        @case(f"{label}: bad_record_mac then FIN in {RUNS} of {RUNS} runs")
        def _(procs, version=version, cb=cb, label=label):
            args = ["--cipher-buffer", cb] if cb else []
            srv, port = echo(*args)
            procs.append(srv)
            # 1-byte buffers cost a system call per byte: smaller payloads.
            before, after = (4096, 65536) if cb == "1" else (262144, 102400)
            with ThreadPoolExecutor(PAR) as ex:
                results = list(ex.map(lambda _: bad_record_run(port, version, before, after),
                                      range(RUNS)))
            check_runs(label, results, "BAD_RECORD_MAC")


# --- KeyUpdate storm: tlsq-cat asks for a KeyUpdate after every record ---
@case(f"storm: a KeyUpdate storm peer receives unexpected_message ({RUNS} runs)")
def _(procs):
    srv, port = echo("--tls1.3", "--max-key-updates", "1")
    procs.append(srv)
    data = b"k" * (4 << 20)

    def run(_):
        cli = subprocess.run([CAT, "-v", f"127.0.0.1:{port}", "--insecure", "--tls1.3",
                              "--key-update-bytes", "1", "--cipher-buffer", "1k"],
                             input=data, capture_output=True, timeout=60)
        return cli.stderr.decode("utf-8", "replace")
    with ThreadPoolExecutor(PAR) as ex:
        outs = list(ex.map(run, range(RUNS)))
    bad = [o for o in outs if "alert unexpected_message" not in o]
    print(f"      storm: alert {len(outs) - len(bad)}/{len(outs)}", flush=True)
    if bad:
        raise AssertionError("a storm peer got no unexpected_message alert: " + bad[0][-400:])


# --- the other deliberate ends, both versions ---
def deliberate(name, args, want, make_run):
    for version, vname in ((V12, "TLS 1.2"), (V13, "TLS 1.3")):
        @case(f"{name}, {vname}: {want.lower()} then FIN ({RUNS} runs)")
        def _(procs, version=version, vname=vname):
            srv, port = echo(*args)
            procs.append(srv)
            with ThreadPoolExecutor(PAR) as ex:
                results = list(ex.map(lambda _: make_run(port, version), range(RUNS)))
            check_runs(f"{name}, {vname}", results, want)


def idle_run(port, version):
    peer = Peer(port, version)
    try:
        peer.handshake()
        return peer.read_to_end()
    finally:
        peer.close()


def handshake_run(port, version):
    peer = Peer(port, version)
    try:
        peer.client_hello()
        # The server's flight and its alert are fed only after the end: the
        # peer never answered, so the server's handshake timed out.
        return peer.read_to_end(feed_only_at_end=True)
    finally:
        peer.close()


def msgsize_run(port, version):
    peer = Peer(port, version)
    try:
        peer.handshake()
        peer.sock.sendall(peer.records((1000).to_bytes(4, "big") + b"x" * 16))
        return peer.read_to_end()
    finally:
        peer.close()


deliberate("idle timeout", ["--idle-timeout", "300"], "INTERNAL_ERROR", idle_run)
deliberate("handshake timeout", ["--handshake-timeout", "300"], "INTERNAL_ERROR",
           handshake_run)
deliberate("message over --max-message", ["--mode", "msg", "--max-message", "64"],
           "DECODE_ERROR", msgsize_run)

finish("alerts")
