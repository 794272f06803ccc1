#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Writes the seed corpora of tests/fuzz/corpus/<target>. Run once; the
output is committed (crash reproducers found later are added by hand as
corpus/<target>/crash-*). Real ClientHellos come from Python's ssl module
(MemoryBIO, TLS 1.2 and 1.3) and from openssl s_client and gnutls-cli
captured on a loopback socket."""
import os
import socket
import ssl
import struct
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- frame: 2 bytes max (LE), 1 byte split seed, then frames ----
def frames(*bodies):
    return b"".join(struct.pack(">I", len(b)) + b for b in bodies)


put("frame", "empty-messages", b"\x00\x01\x07" + frames(b"", b"", b""))
put("frame", "small-messages", b"\x00\x10\x03" + frames(b"hello", b"x" * 100, b"", b"world"))
put("frame", "exact-max", b"\x40\x00\x11" + frames(b"m" * 64))
put("frame", "over-max", b"\x10\x00\x05" + frames(b"ok") + struct.pack(">I", 17) + b"y" * 17)
put("frame", "huge-header", b"\xff\xff\x01" + b"\xff\xff\xff\xfb" + b"z" * 32)
put("frame", "partial-header", b"\x00\x10\x02" + frames(b"abc") + b"\x00\x00")
put("frame", "partial-body", b"\x00\x10\x09" + frames(b"abc") + struct.pack(">I", 200) + b"q" * 50)


# ---- handshake: what a client sends first ----
def memory_hello(minv, maxv):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version, ctx.maximum_version = minv, maxv
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def captured(argv):
    """The first bytes a TLS client program sends to a loopback socket."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    argv = [a.replace("PORT", str(port)) for a in argv]
    try:
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        return None
    ls.settimeout(10)
    try:
        c, _ = ls.accept()
    except OSError:
        p.kill()
        return None
    c.settimeout(5)
    data = b""
    while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
        try:
            chunk = c.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    c.close()
    p.kill()
    p.wait()
    ls.close()
    return data


V = ssl.TLSVersion
put("handshake", "python-tls13", memory_hello(V.TLSv1_3, V.TLSv1_3))
put("handshake", "python-tls12", memory_hello(V.TLSv1_2, V.TLSv1_2))
put("handshake", "python-any", memory_hello(V.TLSv1_2, V.TLSv1_3))
for name, argv in [
    ("openssl-tls13", ["openssl", "s_client", "-connect", "127.0.0.1:PORT", "-tls1_3"]),
    ("openssl-tls12", ["openssl", "s_client", "-connect", "127.0.0.1:PORT", "-tls1_2"]),
    ("openssl-alpn-sni", ["openssl", "s_client", "-connect", "127.0.0.1:PORT",
                          "-servername", "localhost", "-alpn", "h2,http/1.1"]),
    ("gnutls", ["gnutls-cli", "--insecure", "-p", "PORT", "127.0.0.1"]),
]:
    d = captured(argv)
    if d:
        put("handshake", name, d)
put("handshake", "http-get", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
put("handshake", "sslv2-hello", bytes([0x80, 43, 1, 3, 0, 0, 18, 0, 0, 0, 16]) +
    bytes([0, 0, 0x2f, 0, 0, 0x35, 0, 0, 0x0a, 1, 0, 0x80, 7, 0, 0xc0, 3, 0, 0x80]) + b"c" * 16)
put("handshake", "zero-length-records", b"\x16\x03\x01\x00\x00" * 8)
put("handshake", "record-overflow", b"\x16\x03\x01\x48\x01" + b"\x00" * 64)
put("handshake", "alert", b"\x15\x03\x03\x00\x02\x02\x28")

# ---- status: raw HTTP requests (the target's token is "fuzz") ----
auth = b"Authorization: Bearer fuzz\r\n"
for name, req in [
    ("get-status", b"GET /status HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"),
    ("get-status-page", b"GET /status?offset=0&limit=1 HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"),
    ("get-status-bad-query", b"GET /status?limit=abc&offset=%zz HTTP/1.0\r\n" + auth + b"\r\n"),
    ("get-metrics", b"GET /metrics HTTP/1.0\r\n" + auth + b"\r\n"),
    ("get-metrics-noauth", b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("get-metrics-badauth", b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer nope\r\n\r\n"),
    ("get-page", b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("get-healthz", b"GET /healthz HTTP/1.0\r\n\r\n"),
    ("head-status", b"HEAD /status HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"),
    ("post-body", b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" + auth +
     b"\r\nhello"),
    ("chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n"),
    ("two-requests", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\n" +
     auth + b"\r\n"),
    ("not-found", b"GET /nope/../status HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bad-method", b"BREW /status HTTP/1.1\r\n\r\n"),
    ("garbage", b"\x00\x01\x02 / HTTP/9.9\r\n\r\n"),
]:
    put("status", name, req)
print("seeds written under", os.path.join(here, "corpus"))
