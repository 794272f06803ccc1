#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tlsq's message mode on the wire (docs/protocol.md), spoken by a peer
written from that document alone with Python's ssl module (class MsgPeer
below, about 40 lines), both ways:

usage: protocol.py MSG_CLIENT TOOLS_DIR PKI_SCRIPT_DIR

  py->echo    Python client -> tlsq-echo --mode msg, TLS 1.3 and 1.2: a
              0-byte message, 1 byte, record-size edges, 100 KB, 3 MiB (over
              the 1 MiB receive budget), each sent whole, with its header
              split over four 1-byte records and its body over three, and 20
              small ones in one record; every echo compared by SHA-256
  tlsq->py    msg_client (tlsq, message mode, sender and receiver threads)
              -> a Python echo server that checks each message as it arrives
              and echoes it whole, split over records, or two in one record
  limits      a message of exactly --max-message is echoed; a header
              announcing one byte more ends the connection (not a clean
              close) and tlsq-echo says why
  cut         close_notify in the middle of a message: tlsq-echo reports it
              and echoes nothing of it

A message split across records: Python's recv() returns one TLS record at
most, so a message whose bytes came from more than one recv() was split; the
cases count such messages and require them where the sizes force a split.
"""
import atexit
import hashlib
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, case, finish, free_port, listening, wait_for  # noqa: E402

if len(sys.argv) != 4:
    sys.exit("usage: protocol.py MSG_CLIENT TOOLS_DIR PKI_SCRIPT_DIR")
MSG_CLIENT, TOOLS, PKI = (os.path.abspath(a) for a in sys.argv[1:4])
TMP = tempfile.mkdtemp(prefix="tlsq-protocol-")
atexit.register(shutil.rmtree, TMP, True)
subprocess.run(["sh", os.path.join(PKI, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
CA, SRV, SRVKEY = (os.path.join(TMP, f) for f in ("ca.pem", "server.pem", "server.key"))
ECHO = os.path.join(TOOLS, "tlsq-echo")
MIB = 1 << 20


# --- the peer: docs/protocol.md in Python -----------------------------------
class MsgPeer:
    """Message mode over a TLS socket: each message is a 4-byte big-endian
    length, then that many bytes; nothing else, in either direction."""

    def __init__(self, sock, max_message=16 * MIB):
        self.sock, self.max = sock, max_message
        self.buf = bytearray()
        self.reads = 0        # recv() calls that returned data (one record at most each)
        self.split = 0        # messages whose bytes came from more than one recv()

    def send(self, payload, pieces=1, split_header=False):
        """Sends one message; each piece is a separate TLS record (sendall
        per piece), so pieces > 1 or split_header split it across records."""
        frame = struct.pack(">I", len(payload)) + payload
        cuts = [0, 1, 2, 3, 4] if split_header else [0, 4]
        body = len(payload)
        cuts += [4 + body * k // pieces for k in range(1, pieces)] + [4 + body]
        for a, b in zip(cuts, cuts[1:]):
            if b > a:
                self.sock.sendall(frame[a:b])

    def _fill(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(1 << 20)
            if not data:  # the peer's close_notify
                if self.buf:
                    raise AssertionError(f"close_notify in the middle of a message "
                                         f"({len(self.buf)} bytes of it)")
                return False
            self.reads += 1
            self.buf += data
        return True

    def recv(self):
        """The next message, or None after the peer's close_notify."""
        first = self.reads + (0 if self.buf else 1)
        if not self._fill(4):
            return None
        (n,) = struct.unpack(">I", self.buf[:4])
        if n > self.max:
            raise AssertionError(f"peer announced {n} bytes, the maximum is {self.max}")
        self._fill(4 + n)
        msg = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        if self.reads > first:
            self.split += 1
        return msg


# --- helpers ----------------------------------------------------------------
def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


def same(what, got, want):
    if got is None or len(got) != len(want) or sha(got) != sha(want):
        raise AssertionError(f"{what}: {None if got is None else len(got)} bytes, want "
                             f"{len(want)} (sha256 {sha(got or b'')} want {sha(want)})")


def client_ctx(version):
    ctx = ssl.create_default_context(cafile=CA)
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


def echo_server(procs, *extra):
    port = free_port()
    procs.append(Proc([ECHO, "--listen", str(port), "--mode", "msg", "--cert", SRV,
                       "--key", SRVKEY, *extra]))
    wait_for(listening(port), f"tlsq-echo on {port}")
    return port


def connect(port, version=ssl.TLSVersion.TLSv1_3):
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    return client_ctx(version).wrap_socket(raw, server_hostname="localhost",
                                           suppress_ragged_eofs=False)


def close_both_ways(s, peer):
    """Our close_notify, then the echo server's: a clean end both ways."""
    tail = s.unwrap()  # sends close_notify, waits for the peer's
    if peer.buf:
        raise AssertionError(f"{len(peer.buf)} bytes left over before the close")
    tail.close()


SIZES = [0, 1, 5, 16384 - 4, 16384, 16385, 100000, 3 * MIB, 0]


# --- cases ------------------------------------------------------------------
for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    @case(f"py->echo {version.name}: 0 bytes .. 3 MiB, whole, split over records, "
          "20 in one record")
    def _(procs, version=version):
        port = echo_server(procs)
        s = connect(port, version)
        p = MsgPeer(s)
        i = 0
        for how in ("whole", "split"):
            for n in SIZES:
                msg = os.urandom(n)
                if how == "whole":
                    p.send(msg)
                else:
                    p.send(msg, pieces=3, split_header=True)
                same(f"echo of {n} bytes sent {how}", p.recv(), msg)
                i += 1
        small = [os.urandom(k * 13 % 301) for k in range(20)]  # includes 0 bytes
        s.sendall(b"".join(struct.pack(">I", len(m)) + m for m in small))  # one record
        for k, m in enumerate(small):
            same(f"echo of batched message {k}", p.recv(), m)
        if p.split < 2:  # each 3 MiB echo spans many records
            raise AssertionError(f"only {p.split} echoes were split across records")
        print(f"      {i + 20} messages echoed intact; {p.split} echoes arrived split "
              f"across records ({p.reads} records read)", flush=True)
        close_both_ways(s, p)


@case("tlsq->py: msg_client's messages checked on arrival, echoed whole, split and batched")
def _(procs):
    plan = [0, 1, 7, 4, 0, 16380, 16384, 70000, 3 * MIB, 2, 0] + \
           [k * 37 % 500 for k in range(60)] + [MIB + 3, 0]
    data = os.urandom(sum(plan))
    with open(os.path.join(TMP, "plan.bin"), "wb") as f:
        f.write(data)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(SRV, SRVKEY)
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    result = {}

    def serve():
        try:
            lsock.settimeout(60)
            raw, _ = lsock.accept()
            raw.settimeout(30)
            s = ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
            p = MsgPeer(s)
            off, pending = 0, b""
            for i, n in enumerate(plan):
                got = p.recv()
                same(f"message {i} from tlsq", got, data[off:off + n])
                off += n
                frame = struct.pack(">I", len(got)) + got
                if i % 3 == 2:  # held back: goes out with the next one
                    pending = frame
                elif pending:  # two messages in one sendall (one record)
                    s.sendall(pending + frame)
                    pending = b""
                elif i % 3 == 0:
                    p.send(got)
                else:
                    p.send(got, pieces=3, split_header=True)
            if pending:
                s.sendall(pending)
            if p.recv() is not None:
                raise AssertionError("more messages than the plan")
            s.unwrap().close()
            result["ok"] = (p.reads, p.split)
        except Exception as e:  # noqa: BLE001 - reported by the case
            result["error"] = repr(e)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    r = subprocess.run([MSG_CLIENT, f"localhost:{port}", CA, os.path.join(TMP, "plan.bin"),
                        *map(str, plan)], capture_output=True, text=True, timeout=240)
    th.join(60)
    lsock.close()
    print(f"      msg_client: exit {r.returncode}: {(r.stdout + r.stderr).strip()}", flush=True)
    if "error" in result:
        raise AssertionError("python server: " + result["error"])
    if r.returncode != 0 or "ok" not in result:
        raise AssertionError(f"msg_client exit {r.returncode}, server {result}")
    reads, split = result["ok"]
    if split < 2:  # the 3 MiB and 1 MiB messages span many records
        raise AssertionError(f"only {split} messages from tlsq were split across records")
    print(f"      {len(plan)} messages each way intact; {split} of tlsq's arrived split "
          f"across records ({reads} records read)", flush=True)


@case("limits: exactly --max-message passes, a header one byte over ends the connection")
def _(procs):
    port = echo_server(procs, "--max-message", "1024")
    s = connect(port)
    p = MsgPeer(s)
    msg = os.urandom(1024)
    p.send(msg)
    same("echo of a 1024-byte message", p.recv(), msg)
    s.sendall(struct.pack(">I", 1025))
    try:
        got = s.recv(65536)
        ended = f"recv returned {got!r}"
        clean = got == b""
    except (ssl.SSLError, OSError) as e:  # EOF without close_notify, reset or an alert
        ended, clean = repr(e), False
    if clean:
        raise AssertionError("the connection ended with a clean close_notify")
    why = "peer announced a message of 1025 bytes; the maximum is 1024"
    wait_for(lambda: why in procs[0].text(), f"tlsq-echo to say {why!r}", 30)
    print(f"      python saw: {ended}", flush=True)
    s.close()


@case("cut: close_notify inside a message is reported and nothing of it echoed")
def _(procs):
    port = echo_server(procs)
    s = connect(port)
    p = MsgPeer(s)
    p.send(b"whole")
    same("echo before the cut", p.recv(), b"whole")
    s.sendall(struct.pack(">I", 100) + b"x" * 50)  # half a message, then close_notify
    try:
        s.unwrap()
        got = b""
    except (ssl.SSLError, OSError) as e:
        got = repr(e).encode()
    # The receiver gets TLSQ_EPROTO; tlsq-echo prints its reason, or the
    # error's name while the reason is not published (see docs/protocol.md).
    whys = ("peer closed in the middle of a message", "message framing violated by peer")
    wait_for(lambda: any(w in procs[0].text() for w in whys), f"tlsq-echo to say {whys}", 30)
    if b"x" * 50 in got:
        raise AssertionError("part of the cut message was echoed")
    s.close()


finish("protocol_msg_python")
