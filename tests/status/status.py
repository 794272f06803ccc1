#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The HTTP status endpoint, checked from outside with real clients.

usage: status.py TOOLS_DIR [numbers|endpoints|token|promtool|page|trouble|demo|abuse|scale ...]

- demo: while tlsq-demo runs, /status shows 2 x clients open connections
  whose counters agree with each other and with /metrics, and never exceed
  the demo's own final summary (which must say OK, exit 0);
- exact numbers: tlsq-echo serves a Python TLS client that sends and gets back
  exactly N bytes; /status and /metrics must say N, per connection and in all;
- curl on every endpoint: codes, content types, 404/405/413/401, path
  traversal, pagination, the default bind address (127.0.0.1 only);
- `promtool check metrics` on /metrics;
- headless Chromium renders the page, which shows the live connections
  (DOM dump) and produces a non-blank screenshot;
- trouble: a peer that stops reading (tlsq-echo) and an application that
  stops draining (tlsq-cat with its stdout unread) are named in words on the
  page within the first screen at 1280 and 390 px (the page's own layout,
  read from the DOM), with the failed handshakes and the #token= hint on 401
  (TLSQ_STATUS_SHOTS=DIR keeps the screenshots);
- abuse: 500 slow-loris connections, 3,000 idle ones, POSTs and oversize
  headers while tlsq-demo runs: /healthz still answers within 100 ms, the
  demo keeps moving messages and ends with every message intact (exit 0).
Waits are conditions polled with deadlines; no sleep synchronises anything.
"""
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, case, finish, wait_for  # noqa: E402

TOOLS = sys.argv[1]
SELECTED = set(sys.argv[2:])  # case keys to run; all when none are given


KEYS = set()


def only(key, name):
    """@case(name) if the case key was selected on the command line."""
    KEYS.add(key)
    if SELECTED and key not in SELECTED:
        return lambda fn: fn
    return case(name)
TMP = tempfile.mkdtemp(prefix="tlsq-status-")


def status_url(proc):
    m = re.search(r"status: (http://[0-9.]+:\d+)/", proc.text())
    return m.group(1) if m else None


def http(url, path, method="GET", headers=None, timeout=5.0):
    """One raw HTTP/1.1 request: (code, headers dict, body bytes)."""
    host, port = url[len("http://"):].split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    req = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    for k, v in (headers or {}).items():
        req += f"{k}: {v}\r\n"
    s.sendall((req + "\r\n").encode())
    data = bytearray()
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data.extend(chunk)
    s.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return code, hdrs, body


def start_echo(procs, *extra, env=None):
    echo = Proc([os.path.join(TOOLS, "tlsq-echo"), "--listen", "127.0.0.1:0", "--self-signed",
                 "--status", "0", *extra], env=env, merge=True)
    procs.append(echo)
    wait_for(lambda: status_url(echo) and re.search(r"listening on port (\d+)", echo.text()),
             "tlsq-echo to print its addresses")
    port = int(re.search(r"listening on port (\d+)", echo.text()).group(1))
    return echo, status_url(echo), port


def tls_client(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the in-memory self-signed certificate
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def echo_roundtrip(c, payload, timeout=60.0):
    """Sends payload and reads as many bytes back, from this one thread: an
    ssl socket must not be read and written by two threads at once (OpenSSL
    objects are not thread-safe; doing so gave spurious EOFs and lost
    writes). Returns what came back (short if the peer closed)."""
    c.setblocking(False)
    sent, got = 0, bytearray()
    end = time.monotonic() + timeout
    while len(got) < len(payload):
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"echo: sent {sent}, got {len(got)} of {len(payload)} "
                                 "bytes when the deadline passed")
        select.select([c], [c] if sent < len(payload) else [], [], min(left, 1.0))
        if sent < len(payload):
            try:
                sent += c.send(payload[sent:sent + 16384])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    return bytes(got)
                got.extend(chunk)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
    c.setblocking(True)
    return bytes(got)


N = 1_000_003  # bytes each way: odd on purpose


@only("numbers", "numbers: /status and /metrics count exactly the bytes a client sent and got back")
def _(procs):
    echo, url, port = start_echo(procs)
    c = tls_client(port)
    payload = os.urandom(N)
    got = echo_roundtrip(c, payload)
    if got != payload:
        raise AssertionError(f"echo returned {len(got)} bytes, not the {N} sent")

    def snapshot():
        code, _, body = http(url, "/status")
        doc = json.loads(body)
        items = doc["connections"]["items"]
        if code == 200 and len(items) == 1 and items[0]["bytes_received"] == N \
                and items[0]["bytes_sent"] == N:
            return doc
        return None
    doc = wait_for(snapshot, "/status to show the connection with N bytes each way")
    eng, conn = doc["engine"], doc["connections"]["items"][0]
    if eng["bytes"]["received"] != N or eng["bytes"]["sent"] != N:
        raise AssertionError(f"engine bytes {eng['bytes']}, wanted {N} each way")
    if eng["connections"]["live"] != 1 or doc["connections"]["total"] != 1:
        raise AssertionError(f"live connections {eng['connections']}")
    for k in ("id", "role", "mode", "state", "peer", "version", "cipher", "group",
              "tls_bytes_sent", "tls_bytes_received", "tx_queued", "rx_queued",
              "blocked_senders", "blocked_receivers", "key_updates_sent", "close_phase",
              "error", "error_reason"):
        if k not in conn:
            raise AssertionError(f"connection field {k} missing")
    if conn["role"] != "server" or conn["state"] != "open" or conn["version"] != "TLSv1.3":
        raise AssertionError(f"connection {conn['role']} {conn['state']} {conn['version']}")
    if conn["tls_bytes_received"] <= N:
        raise AssertionError("ciphertext received should exceed the plaintext")
    _, _, metrics = http(url, "/metrics")
    m = metrics.decode()
    for line in (f'tlsq_plaintext_bytes_total{{direction="sent"}} {N}',
                 f'tlsq_plaintext_bytes_total{{direction="received"}} {N}',
                 "tlsq_connections_live 1"):
        if line not in m.splitlines():
            raise AssertionError(f"/metrics lacks the line: {line}")
    c.close()
    wait_for(lambda: json.loads(http(url, "/status")[2])["engine"]["connections"]["live"] == 0,
             "the connection to be gone from /status")
    echo.p.send_signal(signal.SIGTERM)  # a clean exit, so sanitizers report at exit
    if echo.wait(60) != 0:
        raise AssertionError(f"tlsq-echo exited {echo.p.returncode} on SIGTERM")


@only("endpoints", "endpoints: codes, types, 404, 405, 413, traversal, pagination, 127.0.0.1 only")
def _(procs):
    echo, url, port = start_echo(procs)
    clients = [tls_client(port) for _ in range(5)]
    for c in clients:
        c.sendall(b"x")
        c.recv(1)
    expect = {
        ("GET", "/healthz"): (200, "text/plain"),
        ("GET", "/status"): (200, "application/json"),
        ("GET", "/metrics"): (200, "text/plain; version=0.0.4"),
        ("GET", "/"): (200, "text/html"),
        ("GET", "/nope"): (404, None),
        ("GET", "/../../etc/passwd"): (404, None),
        ("GET", "/status/../../../etc/passwd"): (404, None),
        ("GET", "/%2e%2e/%2e%2e/etc/passwd"): (404, None),
        ("POST", "/status"): (405, None),
        ("PUT", "/"): (405, None),
        ("DELETE", "/metrics"): (405, None),
    }
    for (method, path), (want, ctype) in expect.items():
        code, hdrs, body = http(url, path, method)
        if code != want:
            raise AssertionError(f"{method} {path}: {code}, wanted {want}")
        if ctype and not hdrs.get("content-type", "").startswith(ctype):
            raise AssertionError(f"{method} {path}: content-type {hdrs.get('content-type')}")
        if b"root:" in body:
            raise AssertionError(f"{method} {path} served a file from disk")
    code, _, _ = http(url, "/status", headers={"X-Big": "a" * 20000})
    if code not in (400, 413, 431, 0):
        raise AssertionError(f"oversize headers: {code}")
    # curl too, as a person would (--path-as-is: curl itself would drop the ../)
    for args, want in ((["/healthz"], "200"), (["/status"], "200"), (["/metrics"], "200"),
                       (["/"], "200"), (["/nope"], "404"), (["-X", "POST", "/status"], "405"),
                       (["--data", "x=1", "/metrics"], "405"),
                       (["--path-as-is", "/../../etc/passwd"], "404"),
                       (["-H", "X-Big: " + "c" * 10000, "/healthz"], "4")):
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}",
                            *args[:-1], url + args[-1]], capture_output=True, text=True,
                           timeout=30)
        body, _, code = r.stdout.rpartition("\n")
        if not code.startswith(want) or len(code) != 3:
            raise AssertionError(f"curl {' '.join(args)}: {code!r}, wanted {want}")
        if "root:" in body:
            raise AssertionError(f"curl {' '.join(args)} served a file from disk")
    doc = json.loads(http(url, "/status?offset=2&limit=2")[2])
    page = doc["connections"]
    if page["total"] != 5 or page["offset"] != 2 or page["limit"] != 2 or \
            len(page["items"]) != 2:
        raise AssertionError(f"pagination: {page['total']} {page['offset']} {page['limit']} "
                             f"{len(page['items'])}")
    all_ids = [i["id"] for i in json.loads(http(url, "/status")[2])["connections"]["items"]]
    if [i["id"] for i in page["items"]] != sorted(all_ids)[2:4]:
        raise AssertionError("the page is not items 2..3 in id order")
    sport = url.rsplit(":", 1)[1]
    ss = subprocess.run(["ss", "-Hltn", f"sport = :{sport}"], capture_output=True,
                        text=True).stdout
    if "127.0.0.1:" + sport not in ss or "0.0.0.0:" + sport in ss or "*:" + sport in ss:
        raise AssertionError(f"status endpoint bound to: {ss.strip()}")
    for c in clients:
        c.close()


@only("token", "bearer token: /status and /metrics need it, /healthz does not")
def _(procs):
    env = dict(os.environ, TLSQ_STATUS_TOKEN="s3cret-token")
    echo, url, port = start_echo(procs, env=env)
    for path, want in (("/healthz", 200), ("/status", 401), ("/metrics", 401)):
        code, _, _ = http(url, path)
        if code != want:
            raise AssertionError(f"{path} without the token: {code}, wanted {want}")
    for token, want in (("s3cret-token", 200), ("s3cret-tokeX", 401), ("s3cret", 401)):
        code, _, _ = http(url, "/status", headers={"Authorization": "Bearer " + token})
        if code != want:
            raise AssertionError(f"/status with token {token!r}: {code}, wanted {want}")


@only("promtool", "promtool check metrics passes on /metrics (with live connections)")
def _(procs):
    echo, url, port = start_echo(procs)
    c = tls_client(port)
    c.sendall(b"hello")
    c.recv(5)
    _, _, body = http(url, "/metrics")
    if shutil.which("promtool") is None:
        raise AssertionError("promtool is missing (tools/setup installs prometheus)")
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                       timeout=60)
    if r.returncode != 0:
        raise AssertionError("promtool: " + (r.stdout + r.stderr).decode())
    names = set()
    for line in body.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "counter" and not name.endswith("_total"):
                raise AssertionError(f"counter {name} does not end in _total")
        elif line and not line.startswith("#"):
            base = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            if base not in names and re.sub(r"_(bucket|sum|count)$", "", base) not in names:
                raise AssertionError(f"sample {base} has no TYPE line before it")
            if "peer=" in line or 'id="' in line:
                raise AssertionError(f"per-connection label: {line}")
    c.close()


def chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return name
    raise AssertionError("chromium is missing (tools/setup installs it)")


def png_stats(path):
    """(width, height, distinct colours in a sample) of an 8-bit RGB(A) PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError("not a PNG")
    pos, idat = 8, bytearray()
    w = h = 0
    ctype = 2
    while pos < len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if typ == b"IHDR":
            w, h, _, ctype = struct.unpack(">IIBB", body[:10])
        elif typ == b"IDAT":
            idat.extend(body)
        pos += 12 + n
    raw = zlib.decompress(bytes(idat))
    bpp = 4 if ctype == 6 else 3
    stride = 1 + w * bpp
    colours = set()
    for y in range(0, h, max(1, h // 40)):
        row = raw[y * stride + 1:(y + 1) * stride]  # filtered bytes: enough to tell blank
        for x in range(0, len(row) - bpp, bpp * max(1, w // 40)):
            colours.add(bytes(row[x:x + bpp]))
    return w, h, len(colours)


@only("page", "the page renders in headless Chromium and shows the live connections")
def _(procs):
    echo, url, port = start_echo(procs)
    clients = [tls_client(port) for _ in range(3)]
    for c in clients:
        c.sendall(b"ping")
        c.recv(4)
    peers = {"127.0.0.1:%d" % c.getsockname()[1] for c in clients}
    exe = chromium()
    common = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--user-data-dir=" + os.path.join(TMP, "chromium"), "--virtual-time-budget=4000"]
    dom = subprocess.run(common + ["--dump-dom", url + "/"], capture_output=True, text=True,
                         timeout=120).stdout
    missing = [p for p in peers if p not in dom]
    if missing:
        raise AssertionError(f"the rendered page lacks connections {missing}")
    if "TLSv1.3" not in dom:
        raise AssertionError("the rendered page does not show the TLS version")
    shot = os.path.join(TMP, "page.png")
    subprocess.run(common + ["--window-size=1280,900", "--screenshot=" + shot, url + "/"],
                   capture_output=True, timeout=120)
    if not os.path.exists(shot):
        raise AssertionError("no screenshot")
    w, h, colours = png_stats(shot)
    if (w, h) != (1280, 900) or colours < 8:
        raise AssertionError(f"screenshot {w}x{h} with {colours} colours: blank?")
    if os.environ.get("TLSQ_STATUS_SCREENSHOT"):
        shutil.copy(shot, os.environ["TLSQ_STATUS_SCREENSHOT"])
    for c in clients:
        c.close()


def page_dom(url, width, height, shot=None):
    """Loads the page in headless Chromium at width x height; returns the DOM
    after its script ran (and takes a screenshot if asked)."""
    common = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--hide-scrollbars",
              "--user-data-dir=" + os.path.join(TMP, "chromium-%d" % width),
              "--virtual-time-budget=4000", f"--window-size={width},{height}"]
    if shot:
        subprocess.run(common + ["--screenshot=" + shot, url], capture_output=True, timeout=120)
        w, h, colours = png_stats(shot)
        if (w, h) != (width, height) or colours < 8:
            raise AssertionError(f"screenshot {w}x{h} with {colours} colours: blank?")
    return subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True,
                          timeout=120).stdout


def dom_attr(dom, name):
    m = re.search(r'<html[^>]* %s="([^"]*)"' % re.escape(name), dom)
    return m.group(1) if m else None


def attention_item(dom, cid):
    """The text of the attention item of connection cid (tags stripped)."""
    m = re.search(r'<div class="item (bad|warn)" data-id="%d">(.*?)</div></div>' % cid, dom)
    if not m:
        return None, None
    return m.group(1), re.sub(r"<[^>]+>", "", m.group(2))


def blast(sock, total):
    """Sends from a thread until `total` bytes went or the socket blocks for
    good (the test ends it by closing the socket)."""
    def run():
        try:
            sock.sendall(os.urandom(1 << 20) * (total >> 20))
        except OSError:
            pass
    threading.Thread(target=run, daemon=True).start()


def stuck_entry(url, key, min_ms):
    """A condition: /status lists a connection under attention with `key`
    parked for at least min_ms; returns it."""
    def check():
        code, _, body = http(url, "/status")
        if code != 200:
            return None
        for c in json.loads(body)["attention"]:
            if c[key] and c["parked_ms"] >= min_ms:
                return c
        return None
    return check


@only("trouble", "the page leads with trouble: a stuck connection named in words within the "
      "first screen at 1280 and 390 px, failed handshakes with reasons, the #token= hint")
def _(procs):
    # 1. A peer that stops reading: it sends to tlsq-echo and never reads the echo.
    echo, url, port = start_echo(procs, "--handshake-timeout", "1000")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    raw.settimeout(20)
    raw.connect(("127.0.0.1", port))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    hog = ctx.wrap_socket(raw, server_hostname="localhost")
    hog.settimeout(None)
    blast(hog, 64 << 20)
    # and a peer that speaks no TLS, for the failures list
    http_peer = socket.create_connection(("127.0.0.1", port), timeout=20)
    http_peer.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    # stuck: the page calls a park of 5 s or more "stuck" (STUCK_MS)
    c = wait_for(stuck_entry(url, "send_parked", 5500), "the echo's send side parked 5.5 s",
                 timeout=90)
    shots = os.environ.get("TLSQ_STATUS_SHOTS")  # a directory: keep the screenshots
    for width, height in ((1280, 900), (390, 844)):
        shot = os.path.join(shots or TMP, f"trouble-{width}.png")
        dom = page_dom(url + "/", width, height, shot)
        if dom_attr(dom, "data-window") is None:
            raise AssertionError(f"{width} px: the page's script did not run: {dom[:300]!r}")
        sev, text = attention_item(dom, c["id"])
        if not text or c["peer"] not in text or \
                not re.search(r"peer has not read for (\d+ s|\d+m \d+s)", text):
            raise AssertionError(f"{width} px: no attention item naming {c['peer']} as a "
                                 f"peer that has not read: {text!r}")
        if sev != "bad" or "open for" not in text:
            raise AssertionError(f"{width} px: item {sev!r}, without its age: {text!r}")
        in_view = (dom_attr(dom, "data-in-view") or "").split()
        if str(c["id"]) not in in_view:
            raise AssertionError(f"{width} px ({dom_attr(dom, 'data-window')}): the stuck "
                                 f"connection is not within the first screen: {in_view}")
        if width == 1280 and dom_attr(dom, "data-wide") != "false":
            raise AssertionError("1280 px: the page is wider than the window")
        if "Trouble: 1 connection stuck or failed" not in dom:
            raise AssertionError(f"{width} px: no trouble banner")
        if not re.search(r'<span class="why">not tls</span>', dom):
            raise AssertionError(f"{width} px: the failed handshake (not tls) is not listed")
        if ">stuck<" not in dom:
            raise AssertionError(f"{width} px: the table does not call the row stuck")
    hog.close()
    http_peer.close()

    # 2. An application that stops draining: tlsq-cat whose stdout nobody reads.
    errpath = os.path.join(TMP, "cat.err")
    with open(errpath, "wb") as err:
        cat = subprocess.Popen([os.path.join(TOOLS, "tlsq-cat"), "--listen", "127.0.0.1:0",
                                "--self-signed", "--status", "0"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=err)
    try:
        def cat_addrs():
            t = open(errpath, encoding="utf-8", errors="replace").read()
            u = re.search(r"status: (http://[0-9.]+:\d+)/", t)
            p = re.search(r"listening on port (\d+)", t)
            return (u.group(1), int(p.group(1))) if u and p else None
        curl, cport = wait_for(cat_addrs, "tlsq-cat to print its addresses")
        feeder = tls_client(cport)
        feeder.settimeout(None)
        blast(feeder, 16 << 20)
        c = wait_for(stuck_entry(curl, "recv_parked", 1000), "tlsq-cat's receive side parked",
                     timeout=90)
        dom = page_dom(curl + "/", 1280, 900)
        _, text = attention_item(dom, c["id"])
        if not text or not re.search(r"application has not drained [0-9.]+ (KiB|MiB) for", text):
            raise AssertionError(f"no attention item for the undrained application: {text!r}")
        if str(c["id"]) not in (dom_attr(dom, "data-in-view") or "").split():
            raise AssertionError("the undrained connection is not within the first screen")
        feeder.close()
    finally:
        cat.kill()
        cat.wait()

    # 3. A 401 tells how to give the token.
    tok_echo, turl, _ = start_echo(procs, "--status-token", "s3cret")
    dom = page_dom(turl + "/", 1280, 900)
    if "#token=" not in dom or "needs a token" not in dom:
        raise AssertionError("a 401 does not show the #token= hint")


def summary_number(text, label):
    m = re.search(r"^  %s +(\d+)" % re.escape(label), text, re.M)
    if not m:
        raise AssertionError(f"the demo's summary lacks '{label}'")
    return int(m.group(1))


@only("demo", "demo: live connections, consistent counters while it runs, and the final summary")
def _(procs):
    clients = 3
    demo = Proc([os.path.join(TOOLS, "tlsq-demo"), "--duration", "600", "--clients",
                 str(clients), "--status", "0"], merge=True)
    procs.append(demo)
    url = wait_for(lambda: status_url(demo), "the demo's status URL")
    first = demo.text().splitlines()[0]
    if not re.fullmatch(r"tlsq-demo: status: http://127\.0\.0\.1:\d+/", first):
        raise AssertionError(f"first line is not the status URL on 127.0.0.1: {first!r}")

    def status():
        code, _, body = http(url, "/status")
        if code != 200:
            raise AssertionError(f"/status: {code}")
        return json.loads(body)

    def running():
        d = status()
        items = d["connections"]["items"]
        return d if (d["engine"]["connections"]["live"] == 2 * clients and
                     len(items) == 2 * clients and
                     all(i["state"] == "open" and i["msgs_received"] > 100 for i in items)) \
            else None
    wait_for(running, f"{2 * clients} open connections moving messages", timeout=60)
    size = 256 + 4  # --message-size default plus the 4-byte message header
    prev = None
    for _ in range(10):
        d = status()
        eng, items = d["engine"], d["connections"]["items"]
        if eng["connections"]["live"] != 2 * clients or d["connections"]["total"] != 2 * clients:
            raise AssertionError(f"live connections {eng['connections']}, wanted {2 * clients}")
        if sorted(i["role"] for i in items) != ["client"] * clients + ["server"] * clients:
            raise AssertionError("roles: " + str([i["role"] for i in items]))
        for i in items:
            if i["mode"] != "message" or i["version"] != "TLSv1.3" or i["error"] != 0:
                raise AssertionError(f"connection {i['id']}: {i['mode']} {i['version']} "
                                     f"error {i['error']}")
            # one message in flight per client: its two counters differ by at most that
            # (plus one read between the two counters being loaded)
            if abs(i["msgs_sent"] - i["msgs_received"]) > 2:
                raise AssertionError(f"connection {i['id']} sent {i['msgs_sent']}, received "
                                     f"{i['msgs_received']} messages")
            for way in ("sent", "received"):
                if abs(i["bytes_" + way] - size * i["msgs_" + way]) > 2 * size:
                    raise AssertionError(f"connection {i['id']}: {i['bytes_' + way]} bytes "
                                         f"{way} for {i['msgs_' + way]} messages of {size}")
                if i["tls_bytes_" + way] <= i["bytes_" + way]:
                    raise AssertionError(f"connection {i['id']}: ciphertext {way} "
                                         "not above the plaintext")
        m, b = eng["messages"], eng["bytes"]
        if m["received"] > m["sent"] or m["sent"] - m["received"] > 4 * clients:
            raise AssertionError(f"engine messages {m}")
        if abs(b["sent"] - size * m["sent"]) > 4 * clients * size:
            raise AssertionError(f"engine bytes {b} for messages {m}")
        if eng["connections"]["opened"] != 2 * clients or eng["connections"]["closed"] != 0:
            raise AssertionError(f"engine connections {eng['connections']}")
        if eng["handshakes"]["ok"] != 2 * clients or eng["handshakes"]["failed"] != 0:
            raise AssertionError(f"handshakes {eng['handshakes']}")
        if prev and (m["sent"] < prev["sent"] or m["received"] < prev["received"]):
            raise AssertionError(f"counters went backwards: {prev} then {m}")
        prev = m
    # /metrics says the same as (or more than) the /status read just before it
    met = http(url, "/metrics")[2].decode()
    got = re.search(r'^tlsq_messages_total\{direction="received"\} (\d+)$', met, re.M)
    if not got or int(got.group(1)) < prev["received"]:
        raise AssertionError(f"/metrics messages received {got and got.group(1)} < "
                             f"{prev['received']} from /status before it")
    if f"tlsq_connections_live {2 * clients}" not in met.splitlines():
        raise AssertionError("/metrics: tlsq_connections_live is not " + str(2 * clients))
    last = status()
    demo.p.send_signal(signal.SIGINT)  # ends the run with the summary
    rc = demo.wait(120)
    text = demo.stdout().decode("utf-8", "replace")  # joins the pumps: all of it
    if rc != 0 or "result               OK" not in text:
        raise AssertionError(f"demo exit {rc}, or its summary does not say OK")
    sent, received = summary_number(text, "messages sent"), summary_number(text, "messages received")
    echoed = summary_number(text, "messages echoed")
    if not sent == received == echoed:
        raise AssertionError(f"summary sent {sent}, received {received}, echoed {echoed}")
    # every message went client -> server and back: the engine counts each twice
    le = last["engine"]["messages"]
    if not (0 < le["sent"] <= 2 * sent and 0 < le["received"] <= 2 * received):
        raise AssertionError(f"last /status {le} exceeds the summary's 2 x {sent}")
    mine = sum(i["msgs_sent"] for i in last["connections"]["items"] if i["role"] == "client")
    if not 0 < mine <= sent:
        raise AssertionError(f"clients had sent {mine} by the last /status, summary says {sent}")


@only("abuse", "abuse: 500 slow-loris and 3,000 idle connections; /healthz < 100 ms, demo keeps going")
def _(procs):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
    demo = Proc([os.path.join(TOOLS, "tlsq-demo"), "--duration", "600", "--clients", "2",
                 "--status", "0"], merge=True)
    procs.append(demo)
    url = wait_for(lambda: status_url(demo), "the demo's status URL")

    def msgs():
        return json.loads(http(url, "/status")[2])["engine"]["messages"]["received"]

    def rate(seconds=1.0):
        a, t0 = msgs(), time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            time.sleep(0.05)
        return (msgs() - a) / (time.monotonic() - t0)
    wait_for(lambda: msgs() > 1000, "the demo to move messages")
    before = rate()
    host, port = url[len("http://"):].split(":")
    port = int(port)
    stop = threading.Event()
    socks = []

    def slowloris():  # 500 connections, each sending one header byte at a time
        mine = []
        for _ in range(500):
            try:
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex((host, port))
                mine.append(s)
            except OSError:
                break
        socks.extend(mine)
        req = b"GET /status HTTP/1.1\r\nX-Slow: " + b"a" * 10000
        i = 0
        while not stop.is_set():
            for s in mine:
                try:
                    s.send(req[i % len(req):i % len(req) + 1])
                except OSError:
                    pass
            i += 1
            stop.wait(0.2)
    th = threading.Thread(target=slowloris, daemon=True)
    th.start()
    for _ in range(3000):  # idle: connect and never send
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, port))
        socks.append(s)

    def hostile():  # meanwhile: POSTs with bodies and oversize headers, as fast as answered
        while not stop.is_set():
            for method, hdrs in (("POST", {"Content-Length": "5000"}),
                                 ("GET", {"X-Big": "b" * 20000})):
                try:
                    code, _, _ = http(url, "/status", method, hdrs, timeout=5)
                except OSError:
                    continue
                hostile_answers.append((method, code))
            stop.wait(0.01)  # pacing (about 100 pairs/s), so the CPU is left to the demo
    hostile_answers = []
    th2 = threading.Thread(target=hostile, daemon=True)
    th2.start()
    wait_for(lambda: len(hostile_answers) >= 10, "answers to hostile requests")
    lat = []
    for _ in range(20):
        t0 = time.monotonic()
        code, _, body = http(url, "/healthz", timeout=5)
        lat.append((time.monotonic() - t0) * 1000)
        if code != 200 or body.strip() != b"ok":
            raise AssertionError(f"/healthz under abuse: {code} {body[:40]!r}")
    during = rate()

    def metric(name):
        for line in http(url, "/metrics")[2].decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no {name} in /metrics")
    # The abuse reached the server: it accepted thousands and evicted the excess.
    accepted = wait_for(lambda: metric("tlsq_status_http_connections_accepted_total") > 2000
                        and metric("tlsq_status_http_connections_accepted_total"),
                        "the status server to accept the abusive connections")
    evicted = metric("tlsq_status_http_connections_evicted_total")
    if evicted < 1000:
        raise AssertionError(f"only {evicted:.0f} connections evicted of {accepted:.0f}")
    stop.set()
    th.join(10)
    th2.join(10)
    allowed = {"POST": (0, 405, 413), "GET": (0, 400, 413, 431)}
    bad = [a for a in hostile_answers if a[1] not in allowed[a[0]]]
    if bad:
        raise AssertionError(f"hostile requests under abuse answered {bad[:5]}")
    for method in allowed:
        if not any(m == method and c for m, c in hostile_answers):
            raise AssertionError(f"no hostile {method} got an error response under abuse")
    print("      hostile answers:", {a: hostile_answers.count(a) for a in set(hostile_answers)})
    lat.sort()
    print(f"      /healthz under abuse: median {lat[len(lat) // 2]:.1f} ms, max {lat[-1]:.1f} ms;"
          f" demo {before:.0f} -> {during:.0f} msgs/s", flush=True)
    if lat[len(lat) // 2] > 100:
        raise AssertionError(f"/healthz median {lat[len(lat) // 2]:.1f} ms under abuse")
    if during < 0.25 * before:
        raise AssertionError(f"the demo slowed from {before:.0f} to {during:.0f} msgs/s")
    snap = json.loads(http(url, "/status")[2])
    if snap["engine"]["errors"]["closed"] + snap["engine"]["handshakes"]["failed"] != 0:
        raise AssertionError("demo connections failed under abuse")
    # The demo ends with its summary while the abusive connections are still
    # open: the status server's teardown frees them all (ASan checks it).
    demo.p.send_signal(signal.SIGINT)
    rc = demo.wait(120)
    for s in socks:
        s.close()
    if rc != 0 or b"result               OK" not in demo.stdout():
        raise AssertionError(f"the demo failed after the abuse: exit {rc}")


def metric_series(text):
    """The series of a /metrics page (name and labels, no values)."""
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and line[0] != "#"}


def curl_times(url, path, runs=5):
    """curl's time_total for GET path, runs times: sorted seconds, and the
    size of the last body."""
    times, size = [], 0
    for _ in range(runs):
        r = subprocess.run(["curl", "-sS", "--max-time", "30", "-o", "/dev/null", "-w",
                            "%{http_code} %{time_total} %{size_download}", url + path],
                           capture_output=True, text=True, timeout=60)
        code, t, size = r.stdout.split()
        if code != "200":
            raise AssertionError(f"curl {path}: {code}")
        times.append(float(t))
    return sorted(times), int(size)


SCALE = int(os.environ.get("TLSQ_STATUS_SCALE", "3000"))


@only("scale", f"scale: {SCALE:,} connections: /status lists the 100 most interesting, paging "
      "covers each once, /metrics constant-size, bad parameters 400, timed")
def _(procs):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20000), hard))  # for tlsq-echo too
    echo, url, port = start_echo(procs)
    clients = []

    def nconns():
        return json.loads(http(url, "/status?limit=0")[2])["connections"]["total"]

    try:
        for _ in range(3):
            clients.append(tls_client(port))
        wait_for(lambda: nconns() == 3, "3 connections listed")
        small = http(url, "/metrics")[2].decode()
        t0 = time.monotonic()
        while len(clients) < SCALE:
            clients.append(tls_client(port))
        opened = time.monotonic() - t0
        wait_for(lambda: nconns() == SCALE, f"{SCALE} connections listed", timeout=120)
        print(f"      {SCALE - 3} TLS connections opened in {opened:.1f} s", flush=True)
        ports = {c.getsockname()[1]: c for c in clients}

        # Interest: the busiest three by bytes (echoed, so both ways), then
        # the newest; then a peer that stops reading goes first (parked).
        busy = [clients[10], clients[20], clients[30]]
        for i, c in enumerate(busy):
            payload = os.urandom(1000 * (i + 1))
            if echo_roundtrip(c, payload) != payload:
                raise AssertionError("echo differs")

        def top():
            return json.loads(http(url, "/status")[2])
        wanted = [c.getsockname()[1] for c in reversed(busy)]
        doc = wait_for(lambda: (d := top()) and [int(i["peer"].rsplit(":", 1)[1])
                                                  for i in d["connections"]["items"][:3]]
                       == wanted and d, "the busiest three to lead /status")
        conns = doc["connections"]
        items = conns["items"]
        if (conns["order"], conns["total"], conns["limit"], conns["count"], len(items)) != \
                ("interest", SCALE, 100, 100, 100):
            raise AssertionError("default /status: " + json.dumps(
                {k: v for k, v in conns.items() if k != "items"}))
        rest = [i["id"] for i in items[3:]]
        if rest != sorted(rest, reverse=True) or any(i["bytes_sent"] for i in items[3:]):
            raise AssertionError("after the busy ones, /status is not the newest idle first")
        big = json.loads(http(url, "/status?limit=1000")[2])["connections"]
        if big["count"] != 1000 or len(big["items"]) != 1000:
            raise AssertionError(f"limit=1000 gave {big['count']}")
        idle_ids = sorted(i["id"] for i in big["items"][3:])
        if rest != sorted(idle_ids, reverse=True)[:97]:
            raise AssertionError("the newest idle ones are not the highest ids of all")

        stuck = clients[40]
        blast(stuck, 64 << 20)  # never reads the echo: tlsq-echo's send side parks
        sport = stuck.getsockname()[1]
        wait_for(lambda: (i := top()["connections"]["items"][0])["send_parked"] and
                 i["peer"].endswith(f":{sport}"), "the parked connection to lead /status")

        # Every connection exactly once over the pages in id order.
        seen = []
        for off in range(0, SCALE + 1000, 1000):
            page = json.loads(http(url, f"/status?order=id&offset={off}&limit=1000")[2])
            page = page["connections"]
            ids = [i["id"] for i in page["items"]]
            if ids != sorted(ids) or page["total"] != SCALE or page["order"] != "id":
                raise AssertionError(f"page at {off}: total {page['total']}, not in id order")
            seen += page["items"]
        got = [int(i["peer"].rsplit(":", 1)[1]) for i in seen]
        if len(got) != SCALE or set(got) != set(ports) or len({i["id"] for i in seen}) != SCALE:
            raise AssertionError(f"paging gave {len(got)} items, {len(set(got))} distinct, of "
                                 f"{SCALE} connections")
        one = seen[1234 % SCALE]
        doc = json.loads(http(url, f"/status?conn={one['id']}")[2])["connections"]
        if doc["count"] != 1 or doc["items"][0]["peer"] != one["peer"]:
            raise AssertionError(f"?conn={one['id']}: {doc['count']} items")
        doc = json.loads(http(url, f"/status?conn={seen[-1]['id'] + 10**9}")[2])["connections"]
        if doc["count"] != 0 or doc["items"]:
            raise AssertionError("?conn= of no connection listed one")

        # /metrics: the same series with 3 and with SCALE connections.
        large = http(url, "/metrics")[2].decode()
        if metric_series(small) != metric_series(large):
            raise AssertionError("/metrics series differ with more connections: " +
                                 str(metric_series(small) ^ metric_series(large)))
        if len(large) > len(small) + 512:
            raise AssertionError(f"/metrics grew from {len(small)} to {len(large)} bytes")

        for q in ("limit=1001", "limit=-1", "limit=", "limit=1e3", "offset=x", "offset=-5",
                  "order=bytes", "conn=abc", "conn=1&limit=5", "order=interest&offset=100",
                  "page=2", "offset=99999999999999999999"):
            code, _, body = http(url, "/status?" + q)
            text = body.decode()
            if code != 400 or text.count("\n") != 1 or not text.endswith("\n") or len(text) > 100:
                raise AssertionError(f"/status?{q}: {code} {text!r}, wanted 400 and one line")

        # Time what the page loads, at this scale.
        report = []
        for path in ("/", "/status", "/status?limit=1000", "/status?order=id&offset=0&limit=100",
                     "/metrics"):
            times, size = curl_times(url, path)
            report.append((path, times, size))
            print(f"      {path:40s} {size:8d} bytes  time_total min {times[0] * 1000:.1f} ms,"
                  f" median {times[len(times) // 2] * 1000:.1f} ms", flush=True)
        for path, times, _ in report:
            if path in ("/", "/status", "/metrics") and times[0] > 1.0:
                raise AssertionError(f"{path} took {times[0]:.2f} s at best with {SCALE} "
                                     "connections")
        dom = page_dom(url + "/", 1280, 900)  # headless Chromium
        m = re.search(r'id="range">showing 100 of ([0-9,]+) \(the most interesting', dom)
        if not m or int(m.group(1).replace(",", "")) != SCALE:
            raise AssertionError("the page does not say 'showing 100 of N': " +
                                 str(re.search(r'id="range">[^<]*', dom)))
        # A clean exit with every connection still open (sanitizers report at exit).
        echo.p.send_signal(signal.SIGTERM)
        if echo.wait(120) != 0:
            raise AssertionError(f"tlsq-echo exited {echo.p.returncode} on SIGTERM")
    finally:
        for c in clients:
            c.close()


shutil.rmtree(TMP, ignore_errors=True)
if SELECTED - KEYS:  # a misspelt case must not pass by running nothing
    print("unknown cases:", " ".join(sorted(SELECTED - KEYS)), flush=True)
    sys.exit(1)
finish("status")
