# SPDX-License-Identifier: GPL-2.0-or-later
"""Hand-made ClientHellos that ask a server which key exchange group it
would use, to check what a scanner claims (tests/scanners/scan.py).

sslscan lists a group as accepted when the server answers a ClientHello that
offers only that group with anything that looks like a ServerHello. In TLS 1.3
wolfSSL 5.5.4 answers a group it does not support with a HelloRetryRequest
that names no group (RFC 8446 wants an alert), which the client can only
abort; sslscan counts it as accepted. These probes read the answer: in
TLS 1.3 the group named by the key_share of the (HelloRetryRequest)
ServerHello, in TLS 1.2 the named curve of the ServerKeyExchange."""
import os
import socket
import struct

# IANA codepoint and security bits (as sslscan 2.0.7 prints them) of every
# group sslscan tries.
GROUPS = {
    "sect163k1": (1, 81), "sect163r1": (2, 81), "sect163r2": (3, 81),
    "sect193r1": (4, 96), "sect193r2": (5, 96), "sect233k1": (6, 116),
    "sect233r1": (7, 116), "sect239k1": (8, 119), "sect283k1": (9, 141),
    "sect283r1": (10, 141), "sect409k1": (11, 204), "sect409r1": (12, 204),
    "sect571k1": (13, 285), "sect571r1": (14, 285), "secp160k1": (15, 80),
    "secp160r1": (16, 80), "secp160r2": (17, 80), "secp192k1": (18, 96),
    "secp192r1": (19, 96), "secp224k1": (20, 112), "secp224r1": (21, 112),
    "secp256k1": (22, 128), "secp256r1": (23, 128), "secp384r1": (24, 192),
    "secp521r1": (25, 260), "brainpoolP256r1": (26, 128), "brainpoolP384r1": (27, 192),
    "brainpoolP512r1": (28, 256), "x25519": (29, 128), "x448": (30, 224),
    "ffdhe2048": (256, 112), "ffdhe3072": (257, 128), "ffdhe4096": (258, 150),
    "ffdhe6144": (259, 175), "ffdhe8192": (260, 192),
}
NAMES = {v[0]: k for k, v in GROUPS.items()}
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
SIGALGS = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601]


def u16(v):
    return struct.pack(">H", v)


def vec16(b):
    return u16(len(b)) + b


def ext(kind, body):
    return u16(kind) + vec16(body)


def client_hello(version, suites, exts, session_id=b""):
    body = (u16(0x0303) + os.urandom(32) + bytes([len(session_id)]) + session_id +
            vec16(b"".join(u16(s) for s in suites)) + b"\x01\x00" + vec16(b"".join(exts)))
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + vec16(hs)


def hello_tls13(group):
    """Offers only `group` with an empty key_share: the server must answer
    with a HelloRetryRequest naming the group it wants, or an alert."""
    return client_hello(0x0304, [0x1301, 0x1302, 0x1303], [
        ext(43, b"\x02\x03\x04"),                       # supported_versions: TLS 1.3
        ext(10, vec16(u16(group))),                     # supported_groups
        ext(51, vec16(b"")),                            # key_share: no share yet
        ext(13, vec16(b"".join(u16(a) for a in SIGALGS))),
    ], session_id=os.urandom(32))


def hello_tls12(group):
    """Offers only `group` with the ECDHE AEAD suites of TLS 1.2."""
    return client_hello(0x0303, [0xc02b, 0xc02c, 0xcca9, 0xc02f, 0xc030, 0xcca8], [
        ext(10, vec16(u16(group))),
        ext(11, b"\x01\x00"),                           # ec_point_formats: uncompressed
        ext(13, vec16(b"".join(u16(a) for a in SIGALGS))),
        ext(23, b""),                                   # extended_master_secret
    ])


class Reader:
    """Handshake messages out of the records of one connection."""

    def __init__(self, sock):
        self.sock, self.raw, self.hs = sock, b"", b""

    def _fill(self, n):
        while len(self.raw) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.raw += chunk

    def message(self):
        """(type, body) of the next handshake message; raises EOFError on a
        close and ValueError on an alert or another record type."""
        while len(self.hs) < 4 or len(self.hs) < 4 + int.from_bytes(self.hs[1:4], "big"):
            self._fill(5)
            kind, n = self.raw[0], int.from_bytes(self.raw[3:5], "big")
            self._fill(5 + n)
            rec, self.raw = self.raw[5:5 + n], self.raw[5 + n:]
            if kind == 21:
                level = "fatal" if rec[:1] == b"\x02" else "warning"
                raise ValueError(f"alert {level} {rec[1] if len(rec) > 1 else '?'}")
            if kind != 22:
                raise ValueError(f"record of content type {kind}")
            self.hs += rec
        n = int.from_bytes(self.hs[1:4], "big")
        msg, self.hs = self.hs[:4 + n], self.hs[4 + n:]
        return msg[0], msg[4:]


def extensions(server_hello):
    """{type: body} of a ServerHello body."""
    p = 2 + 32
    p += 1 + server_hello[p]               # session id
    p += 2 + 1                             # cipher suite, compression
    out = {}
    if p + 2 > len(server_hello):
        return out
    end = p + 2 + int.from_bytes(server_hello[p:p + 2], "big")
    p += 2
    while p + 4 <= end:
        kind, n = int.from_bytes(server_hello[p:p + 2], "big"), int.from_bytes(
            server_hello[p + 2:p + 4], "big")
        out[kind] = server_hello[p + 4:p + 4 + n]
        p += 4 + n
    return out


def _exchange(port, hello, timeout):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(hello)
        return Reader(s)
    except OSError:
        s.close()
        raise


def probe_tls13(port, group, timeout=5.0):
    """(selected group id or None, what the server answered)."""
    r = _exchange(port, hello_tls13(group), timeout)
    try:
        kind, body = r.message()
        if kind != 2:
            return None, f"handshake message {kind} instead of a ServerHello"
        hrr = body[2:34] == HRR_RANDOM
        ks = extensions(body).get(51)
        what = "HelloRetryRequest" if hrr else "ServerHello"
        if ks is None or len(ks) < 2:
            return None, what + " without key_share (no group chosen)"
        g = int.from_bytes(ks[:2], "big")
        return g, f"{what} chooses {NAMES.get(g, hex(g))}"
    except (EOFError, ValueError, OSError) as e:
        return None, str(e)
    finally:
        r.sock.close()


def probe_tls12(port, group, timeout=5.0):
    """(named curve of the ServerKeyExchange or None, what the server answered)."""
    r = _exchange(port, hello_tls12(group), timeout)
    try:
        while True:
            kind, body = r.message()
            if kind == 12:
                if body[0] != 3:
                    return None, f"ServerKeyExchange curve type {body[0]}"
                g = int.from_bytes(body[1:3], "big")
                return g, f"ServerKeyExchange on {NAMES.get(g, hex(g))}"
            if kind == 14:
                return None, "ServerHelloDone without a ServerKeyExchange"
    except (EOFError, ValueError, OSError) as e:
        return None, str(e)
    finally:
        r.sock.close()
