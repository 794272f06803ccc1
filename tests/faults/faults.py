#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Network and syscall faults between two tlsq programs (docs/reliability.md).

usage: faults.py TOOLS_DIR PKI_SCRIPT_DIR net|syscall

  net      tlsq-echo in one network namespace, tlsq-cat clients in another,
           joined by a veth pair (the host's network is not touched). Faults
           on the link (tc netem is missing on this kernel: nftables and tbf
           instead): random loss, MTU 68, a rate limit, a RST injected
           mid-stream towards either side, the link taken down under traffic
           (idle timeout) and under idle connections (keepalive), and a
           peer that stops reading (keepalive must not cut it).
           Needs CAP_NET_ADMIN: exits 77 (skipped) with one line saying why
           when a namespace cannot be made.
  syscall  tlsq-echo and tlsq-cat on loopback with libfiu's POSIX preload
           (fiu-utils): readv and writev (what tlsq uses on its
           sockets) failing with EINTR/EAGAIN, cut short, or failing with
           random errnos on either side; a deterministic error mid-stream
           (fiu-ctrl); send/recv/sendmsg/recvmsg failing always (tlsq never
           calls them, so nothing may change).

Every connection must end intact (exit 0, every byte by comparison) or with
the error its fault calls for (tlsq-cat: exit 1 and the reason, or 3 for a
truncation), and what it received must be a prefix of what it sent (the echo
returns the stream). Nothing may hang: every wait has a deadline. Nothing may
leak: after each class the server's status endpoint shows no live
connection, and the server exits 0 on SIGTERM (in the ASan build a leak or a
late error changes that status).

Each class prints FAULT|class|case|n_ok|n_total|detail (read by
tools/reliability-report). Waits are polled conditions with deadlines.
TLSQ_FAULTS_ONLY=REGEX runs only the cases whose title matches
("net rst", "keepalive|linkdown", "syscall midstream").
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Proc, case, finish, free_port, wait_for  # noqa: E402

SKIP = 77
GROUPS = ("net", "syscall")
if len(sys.argv) != 4 or sys.argv[3] not in GROUPS:
    sys.exit(f"usage: faults.py TOOLS_DIR PKI_SCRIPT_DIR {'|'.join(GROUPS)}")
TOOLS, PKI, GROUP = sys.argv[1:4]
CAT, ECHO = (os.path.join(TOOLS, "tlsq-" + p) for p in ("cat", "echo"))
KIB, MIB = 1 << 10, 1 << 20
POOL = os.urandom(8 * MIB)  # payloads are slices of one random pool
ONLY = os.environ.get("TLSQ_FAULTS_ONLY")  # a regex: run only the cases it matches

# ctest's timeout or a ^C: still run the finally blocks (namespace removal).
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def fcase(title):
    """harness.case, unless TLSQ_FAULTS_ONLY leaves the case out."""
    if ONLY and not re.search(ONLY, title):
        return lambda fn: fn
    return case(title)


def tool(name, hint):
    path = shutil.which(name) or (os.path.join("/usr/sbin", name)
                                  if os.path.exists(os.path.join("/usr/sbin", name)) else None)
    if not path:
        print(f"faults {GROUP}: {name} is missing ({hint}; tools/setup --test installs it)", flush=True)
        sys.exit(1)
    return path


def run(argv, check=True, timeout=30):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


def fault_line(cls, name, n_ok, n_total, detail):
    print(f"FAULT|{cls}|{name}|{n_ok}|{n_total}|{detail}", flush=True)


# ---------------------------------------------------------------- clients
CLIENT_PREFIX = []  # net: runs the clients in their namespace


class CatProc(Proc):
    """A client's Proc whose text() (printed when a case fails) leaves out
    the binary stdout."""

    def text(self):
        with self.lock:
            return f"[{len(self.out)} bytes on stdout]\n" + bytes(self.err).decode("utf-8",
                                                                               "replace")


class Client:
    """A tlsq-cat client whose stdin is fed from a thread (the pipe may fill
    while the connection is stalled by a fault)."""

    def __init__(self, procs, addr, data, extra=(), env=None, close=True):
        self.data, self.started = data, time.monotonic()
        self.p = CatProc([*CLIENT_PREFIX, CAT, "--ca", CA, "--servername", "localhost", *extra,
                          addr], env=env)
        procs.append(self.p)
        self.exit_at = None  # when it exited, seen by a waiting thread

        def waiter():
            self.p.p.wait()
            at = time.monotonic()
            self.p.join_pumps()  # its last words are in err before exit_at is seen
            self.exit_at = at
        threading.Thread(target=waiter, daemon=True).start()
        self.more(data, close)

    def more(self, data, close=False):
        def feed():
            try:
                self.p.send(data)
                if close:
                    self.p.close_stdin()
            except OSError:
                pass  # the client ended (that is what some faults do)
        threading.Thread(target=feed, daemon=True).start()

    def resume(self, more, close=False):
        """Sends `more` further bytes of the pool after what it sent."""
        start = len(self.data)
        self.data = POOL[:start + more]
        self.more(self.data[start:], close)

    def received(self):
        with self.p.lock:
            return len(self.p.out)

    def end(self, timeout):
        """Waits for the exit (a hang fails the case); returns (rc, got, err)."""
        try:
            rc = self.p.wait(timeout)
            wait_for(lambda: self.exit_at, "the waiter thread", timeout=10)
            self.exited = self.exit_at - self.started
        except subprocess.TimeoutExpired:
            raise AssertionError(f"tlsq-cat still running after {timeout} s (hang)") from None
        got = self.p.stdout()
        err = bytes(self.p.err).decode("utf-8", "replace").strip()
        return rc, got, err


def quiet_client(procs, addr, first, extra=(), env=None):
    """A client that sent the pool's first `first` bytes and got them all
    back: the connection is established and quiet, stdin still open. A
    fault applied now meets the next bytes (Client.resume) for sure."""
    c = Client(procs, addr, POOL[:first], extra, env, close=False)
    wait_for(lambda: c.received() >= first or c.p.p.poll() is not None,
             f"{first // KIB} KiB echoed", timeout=60)
    if c.p.p.poll() is not None:
        raise AssertionError(f"tlsq-cat ended before the fault: {c.p.text()}")
    return c


def judge(results, rc, got, err, data, expect):
    """One connection's outcome against what its fault allows: `expect` maps
    exit statuses to a regex its one stderr line must match (exit 0: no
    line, every byte). The bytes received must be a prefix of those sent.
    Appends (ok, why) to results; returns ok."""
    why = f"exit {rc}, {len(got)} of {len(data)} bytes back, stderr {err!r}"
    ok = got == data[:len(got)]
    if not ok:
        why = "NOT A PREFIX: " + why
    elif rc == 0:
        ok = 0 in expect and got == data and err == ""
    else:
        pat = expect.get(rc)
        ok = pat is not None and len(err.splitlines()) == 1 and re.search(pat, err) is not None
    results.append((ok, why))
    return ok


def verdict(cls, name, results, detail):
    n_ok = sum(1 for ok, _ in results if ok)
    fault_line(cls, name, n_ok, len(results), detail)
    bad = [why for ok, why in results if not ok]
    if bad:
        raise AssertionError(f"{len(bad)} of {len(results)} connections ended wrongly: "
                             + "; ".join(bad[:4]))


CLEAN = {0: None}
RESET = {1: r"reset"}


# ---------------------------------------------------------------- servers
class Echo:
    """tlsq-echo with its status endpoint; `prefix` runs it elsewhere (in the
    namespace), `env` adds libfiu."""

    def __init__(self, procs, listen, status_port, extra=(), prefix=(), env=None):
        self.prefix, self.status_port = list(prefix), status_port
        self.p = Proc([*self.prefix, ECHO, "--listen", listen, "--cert", SRV, "--key", SRVKEY,
                       "--status", str(status_port), "-v", *extra], env=env)
        procs.append(self.p)
        port = listen.rsplit(":", 1)[1]
        wait_for(lambda: self.p.p.poll() is not None or
                 f":{port} " in run([*self.prefix, "ss", "-Hltn", f"sport = :{port}"]).stdout,
                 "tlsq-echo to listen", timeout=60)
        if self.p.p.poll() is not None:
            raise AssertionError(f"tlsq-echo exited {self.p.p.returncode}: {self.p.text()}")

    def status(self):
        """The engine part of GET /status, or None if it did not answer (a
        syscall fault may hit the status endpoint's own reads)."""
        url = f"http://127.0.0.1:{self.status_port}/status?limit=1"
        try:
            if self.prefix:
                out = run([*self.prefix, "curl", "-sS", "--max-time", "5", url]).stdout
            else:
                with urllib.request.urlopen(url, timeout=5) as r:
                    out = r.read().decode()
            return json.loads(out)["engine"]
        except (AssertionError, OSError, ValueError, KeyError):
            return None

    def status_items(self):
        """The connections of GET /status (first page), or None."""
        url = f"http://127.0.0.1:{self.status_port}/status"
        try:
            if self.prefix:
                out = run([*self.prefix, "curl", "-sS", "--max-time", "5", url]).stdout
            else:
                with urllib.request.urlopen(url, timeout=5) as r:
                    out = r.read().decode()
            return json.loads(out)["connections"]["items"]
        except (AssertionError, OSError, ValueError, KeyError):
            return None

    def settled(self, timeout):
        """Waits for connections.live == 0 (nothing left open by a fault);
        returns the engine status."""
        def zero():
            s = self.status()
            return s if s and s["connections"]["live"] == 0 else None
        try:
            return wait_for(zero, "the server's live connections back to 0", timeout=timeout)
        except AssertionError:
            s = self.status()
            raise AssertionError(f"server still has live connections after {timeout} s: "
                                 f"{s['connections'] if s else 'no status'}") from None

    def stop(self):
        self.p.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(60)
        if rc != 0:
            raise AssertionError(f"tlsq-echo exited {rc} on SIGTERM: {self.p.text()[-800:]}")

    def failures(self):
        """The reasons of the server's failed connections (-v lines)."""
        return re.findall(r"failed: (.*)", self.p.text())


def errors(st):
    return {k: v for k, v in st["errors"].items() if v}


TMP = tempfile.mkdtemp(prefix=f"tlsq-faults-{GROUP}-")
subprocess.run(["sh", os.path.join(PKI, "make-pki.sh"), TMP], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
CA = os.path.join(TMP, "ca.pem")
SRV, SRVKEY = os.path.join(TMP, "server.pem"), os.path.join(TMP, "server.key")


# ================================================================ network
class NetNS:
    """Two namespaces, client and server, joined by a veth pair: every fault
    (nftables, tc, MTU, sysctls, link state) stays inside them, and the
    addresses are theirs alone. Names carry our pid so that a crashed run's
    leftovers are recognised and removed."""

    PREFIX = "tlsqf-"
    CADDR, SADDR = "10.0.0.1", "10.0.0.2"

    def __init__(self):
        pid = os.getpid()
        self.cns, self.sns = f"{self.PREFIX}{pid}-c", f"{self.PREFIX}{pid}-s"
        self.cif, self.sif = f"tqc{pid}", f"tqs{pid}"
        self.made = []

    @staticmethod
    def alive(pid):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def remove_stale(self):
        for line in run(["ip", "netns", "list"], check=False).stdout.splitlines():
            m = re.match(rf"{self.PREFIX}(\d+)-[cs]\b", line)
            if m and not self.alive(int(m.group(1))):
                run(["ip", "netns", "del", m.group(0)], check=False)
        for m in re.finditer(r"^\d+: (tq[cs](\d+))[@:]", run(["ip", "-o", "link"]).stdout,
                             re.M):
            if not self.alive(int(m.group(2))):
                run(["ip", "link", "del", m.group(1)], check=False)

    def create(self):
        """Returns None, or why the namespaces cannot be made here."""
        if os.geteuid() != 0:
            return "not root (network namespaces and nftables need CAP_NET_ADMIN)"
        self.remove_stale()
        for name in (self.cns, self.sns):
            p = run(["ip", "netns", "add", name], check=False)
            if p.returncode != 0:
                return f"'ip netns add' failed: {p.stderr.strip()}"
            self.made.append(name)
        run(["ip", "link", "add", self.cif, "type", "veth", "peer", "name", self.sif])
        run(["ip", "link", "set", self.cif, "netns", self.cns])
        run(["ip", "link", "set", self.sif, "netns", self.sns])
        for ns, dev, addr in ((self.cns, self.cif, self.CADDR), (self.sns, self.sif, self.SADDR)):
            # One TCP segment per packet, as on a wire: veth would otherwise
            # pass 64 KiB GSO bursts, which a drop hits whole and which the
            # kernel fails to fragment at MTU 68 (a retransmission then
            # stalls for good).
            run(["ip", "-n", ns, "link", "set", dev, "gso_max_segs", "1"])
            run(["ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        return None

    def destroy(self):
        for name in self.made:  # the veth pair goes with them
            run(["ip", "netns", "del", name], check=False)
        self.made = []

    def cexec(self):
        return ["ip", "netns", "exec", self.cns]

    def sexec(self):
        return ["ip", "netns", "exec", self.sns]

    def both(self, *argv):
        """Runs argv in both namespaces, with DEV replaced by each veth end."""
        for pre, dev in ((self.cexec(), self.cif), (self.sexec(), self.sif)):
            run([*pre, *(dev if a == "DEV" else a for a in argv)])

    def nft(self, script):
        p = subprocess.run([*self.sexec(), "nft", "-f", "-"], input=script, text=True,
                           capture_output=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError(f"nft: {p.stderr.strip()}")

    def nft_counters(self):
        out = run([*self.sexec(), "nft", "list", "table", "inet", "tlsqf"]).stdout
        return sum(int(x) for x in re.findall(r"counter packets (\d+)", out))

    def nft_clear(self):
        run([*self.sexec(), "nft", "delete", "table", "inet", "tlsqf"], check=False)

    def link(self, up):
        """The client's end of the link down (the server's loses its carrier)
        or up again."""
        run(["ip", "-n", self.cns, "link", "set", self.cif, "up" if up else "down"])
        if up:
            wait_for(lambda: "linkdown" not in run([*self.cexec(), "ip", "route"]).stdout and
                     "NO-CARRIER" not in run([*self.sexec(), "ip", "-o", "link", "show",
                                              self.sif]).stdout,
                     "the link back up", timeout=30)

    def unacked(self, port):
        """Bytes in the send queues of the connections of `port`, both sides."""
        n = 0
        for pre, flt in ((self.cexec(), f"dport = :{port}"), (self.sexec(), f"sport = :{port}")):
            out = run([*pre, "ss", "-Htn", "state", "established", flt]).stdout
            n += sum(int(line.split()[1]) for line in out.splitlines() if line.strip())
        return n

    def client_ports(self, port):
        """Local ports of the clients' established connections to the server."""
        out = run([*self.cexec(), "ss", "-Htn", "state", "established",
                   f"dport = :{port}"]).stdout
        return [int(m) for m in re.findall(rf"{re.escape(self.CADDR)}:(\d+)", out)]


NET_PORT, NET_STATUS = 4433, 9464  # inside the server's namespace: nothing else there
NET_ADDR = f"{NetNS.SADDR}:{NET_PORT}"


def net_echo(procs, ns, *extra):
    return Echo(procs, f"0.0.0.0:{NET_PORT}", NET_STATUS, extra, prefix=ns.sexec())


def run_intact(procs, n, size, extra=(), timeout=120):
    """n clients at once, size bytes each; returns (results, seconds)."""
    t0 = time.monotonic()
    clients = [Client(procs, NET_ADDR, POOL[i * size % len(POOL):][:size], extra)
               for i in range(n)]
    results = []
    for c in clients:
        judge(results, *c.end(timeout), c.data, CLEAN)
    return results, time.monotonic() - t0


def settle_and_stop(srv, timeout=20):
    st = srv.settled(timeout)
    srv.stop()
    return st


def net_cases(ns):
    @fcase("net loss: 10% of packets dropped each way, 4 x 1 MiB at once arrive intact")
    def _(procs):
        srv = net_echo(procs, ns)
        ns.nft(f"""table inet tlsqf {{
  chain in {{ type filter hook input priority 0; policy accept;
    tcp dport {NET_PORT} numgen random mod 100 < 10 counter drop
  }}
  chain out {{ type filter hook output priority 0; policy accept;
    tcp sport {NET_PORT} numgen random mod 100 < 10 counter drop
  }}
}}""")
        try:
            results, secs = run_intact(procs, 4, MIB)
            dropped = ns.nft_counters()
        finally:
            ns.nft_clear()
        st = settle_and_stop(srv)
        if dropped == 0:
            raise AssertionError("nft dropped nothing: the fault was not applied")
        verdict("loss", "random_loss_10pct", results,
                f"10% of packets dropped each way ({dropped} dropped); 4 x 1 MiB at once, "
                f"{secs:.1f} s; server errors {errors(st) or 'none'}")

    @fcase("net mtu68: MTU 68 on the link (fragments of 68 bytes), 2 x 256 KiB intact")
    def _(procs):
        # TCP cannot make segments that fit 68 bytes (its minimum MSS is
        # 48): without path MTU discovery (no DF bit) IP cuts them into
        # fragments of at most 68 bytes, as a real MTU-68 hop would have to.
        # Both sockets are made after the sysctl (it applies to new ones).
        ns.both("sysctl", "-qw", "net.ipv4.ip_no_pmtu_disc=1")
        ns.both("ip", "link", "set", "DEV", "mtu", "68")
        srv = net_echo(procs, ns)
        ns.nft("""table inet tlsqf {
  chain pre { type filter hook prerouting priority -500; policy accept;
    ip frag-off & 0x3fff != 0 counter
  }
}""")
        try:
            t0 = time.monotonic()
            results, secs = run_intact(procs, 2, 256 * KIB)
            frags = ns.nft_counters()
        finally:
            ns.nft_clear()
            ns.both("ip", "link", "set", "DEV", "mtu", "1500")
            ns.both("sysctl", "-qw", "net.ipv4.ip_no_pmtu_disc=0")
        st = settle_and_stop(srv)
        if frags == 0:
            raise AssertionError("no IP fragment reached the server: MTU 68 was not in effect")
        verdict("mtu", "mtu_68", results,
                f"MTU 68 both ways ({frags} fragments of at most 68 bytes into the server); "
                f"2 x 256 KiB at once, {secs:.1f} s; server errors {errors(st) or 'none'}")

    @fcase("net rate: tbf 8 Mbit/s each way, 2 x 1 MiB at once intact, no faster than the limit")
    def _(procs):
        srv = net_echo(procs, ns)
        ns.both("tc", "qdisc", "add", "dev", "DEV", "root", "tbf", "rate", "8mbit",
                "burst", "16kb", "latency", "200ms")
        try:
            results, secs = run_intact(procs, 2, MIB)
        finally:
            ns.both("tc", "qdisc", "del", "dev", "DEV", "root")
        st = settle_and_stop(srv)
        floor = 2 * MIB * 8 / 8e6  # 2 MiB each way through 8 Mbit/s
        if secs < 0.8 * floor:
            raise AssertionError(f"2 MiB took {secs:.2f} s, under {floor:.2f} s at 8 Mbit/s: "
                                 "the rate limit was not applied")
        verdict("rate", "tbf_8mbit", results,
                f"tbf 8 Mbit/s each way; 2 x 1 MiB at once in {secs:.1f} s "
                f"({2 * MIB * 8 / secs / 1e6:.1f} Mbit/s, floor {floor:.1f} s); "
                f"server errors {errors(st) or 'none'}")

    @fcase("net rst: a RST injected mid-stream, towards the client and towards the server")
    def _(procs):
        # Towards the client: the server's namespace answers the client's
        # segments with a RST (input hook); the server, which sent nothing
        # since, is left half-open and its idle timeout ends it. Towards the
        # server: its own segments are answered with a RST (output hook); it
        # aborts, and its RST (RSTs pass) resets the client.
        idle_s = 2000
        srv = net_echo(procs, ns, "--idle-timeout", str(idle_s))
        results, cut = [], []
        for hook, match in (("input", "sport"), ("input", "sport"),
                            ("output", "dport"), ("output", "dport")):
            c = quiet_client(procs, NET_ADDR, 512 * KIB)
            ports = ns.client_ports(NET_PORT)
            if len(ports) != 1:
                raise AssertionError(f"expected one connection, see ports {ports}")
            ns.nft(f"""table inet tlsqf {{
  chain c {{ type filter hook {hook} priority 0; policy accept;
    tcp {match} {ports[0]} tcp flags & rst == 0 counter reject with tcp reset
  }}
}}""")
            try:
                c.resume(512 * KIB)
                rc, got, err = c.end(30)
                hits = ns.nft_counters()
            finally:
                ns.nft_clear()
            judge(results, rc, got, err, c.data, RESET)
            cut.append(f"{len(got) // KIB} KiB")
            if hits == 0:
                raise AssertionError("the reset rule matched nothing: the fault was not applied")
            if len(got) == len(c.data):
                raise AssertionError("everything arrived: the reset came too late to test")
        st = settle_and_stop(srv, timeout=idle_s / 1000 + 10)
        # A RST towards the client may still reach the server: the client's
        # kernel answers the server's retransmission of a tail it had not
        # yet seen acknowledged. Then it is a reset, not a timeout.
        e = errors(st)
        n_reset, n_idle = e.pop("connreset", 0), e.pop("timedout", 0)
        if e or n_reset < 2 or n_reset + n_idle != 4:
            raise AssertionError(f"server errors {errors(st)}, want >= 2 connreset (RST "
                                 f"towards it), the rest timedout (half-open): "
                                 f"{srv.failures()}")
        verdict("rst", "rst_mid_stream", results,
                "RST to the client x2, to the server x2, on the next segment after 512 KiB "
                f"echoed; clients exit 1 'connection reset by peer' with {', '.join(cut)} "
                f"(each a prefix); server: {n_reset} x connreset, {n_idle} half-open ended by "
                f"its idle timeout ({idle_s} ms)")

    @fcase("net linkdown: link down under traffic, the idle timeout ends both sides in time")
    def _(procs):
        idle_c, idle_s = 1500, 3000
        srv = net_echo(procs, ns, "--idle-timeout", str(idle_s))
        clients = [quiet_client(procs, NET_ADDR, 64 * KIB, ("--idle-timeout", str(idle_c)))
                   for _ in range(2)]
        results, times = [], []
        ns.link(False)
        try:
            t0 = time.monotonic()
            for c in clients:  # data the link will not carry
                c.resume(64 * KIB)
            for c in clients:
                rc, got, err = c.end(idle_c / 1000 + 10)
                times.append(time.monotonic() - t0)
                judge(results, rc, got, err, c.data, {1: r"idle timeout"})
            st = srv.settled(idle_s / 1000 + 10)
            t_srv = time.monotonic() - t0
        finally:
            ns.link(True)
        if [t for t in times if not idle_c / 1000 - 0.1 <= t <= idle_c / 1000 + 2.5]:
            raise AssertionError(f"clients ended {times} s after the link went down, "
                                 f"want {idle_c / 1000} s (+2.5 s)")
        if errors(st) != {"timedout": 2} or not all("idle timeout" in f
                                                    for f in srv.failures()):
            raise AssertionError(f"server errors {errors(st)}, want 2 idle timeouts: "
                                 f"{srv.failures()}")
        if t_srv > idle_s / 1000 + 3:
            raise AssertionError(f"server closed its side after {t_srv:.1f} s, "
                                 f"want {idle_s / 1000} s (+3 s)")
        after, _ = run_intact(procs, 1, 256 * KIB)
        if not all(ok for ok, _ in after):
            raise AssertionError(f"after the link came back: {after}")
        srv.stop()
        verdict("linkdown", "link_down_idle_timeout", results,
                f"link down with data in flight; clients (--idle-timeout {idle_c}) exit 1 "
                f"'idle timeout' after {', '.join(f'{t:.2f}' for t in times)} s; server "
                f"(--idle-timeout {idle_s}) live 0 after {t_srv:.1f} s, errors "
                f"{errors(st)}; a new connection intact once the link is back")

    @fcase("net keepalive: the link down under idle connections ends both sides in ~4 s")
    def _(procs):
        # Keepalive probes only a connection with nothing unacknowledged:
        # the link goes down once every byte both ways is acknowledged (a
        # connection with data in flight is the idle timeout's case above).
        srv = net_echo(procs, ns, "--keepalive", "1")
        clients = [quiet_client(procs, NET_ADDR, 64 * KIB, ("--keepalive", "1"))
                   for _ in range(2)]
        wait_for(lambda: ns.unacked(NET_PORT) == 0, "every byte acknowledged", timeout=30)
        results, times = [], []
        ns.link(False)
        try:
            t0 = time.monotonic()
            for c in clients:
                rc, got, err = c.end(20)
                times.append(time.monotonic() - t0)
                judge(results, rc, got, err, c.data, {1: r"peer stopped answering"})
            st = srv.settled(20)
            t_srv = time.monotonic() - t0
        finally:
            ns.link(True)
        if errors(st) != {"timedout": 2}:
            raise AssertionError(f"server errors {errors(st)}, want 2 timedout: "
                                 f"{srv.failures()}")
        # a probe after 1 s idle, then 3 probes 1 s apart: about 4 s
        if [t for t in times if not 2.0 <= t <= 8.0] or t_srv > 9.0:
            raise AssertionError(f"clients ended {times} s, server {t_srv:.1f} s after the "
                                 "link went down; keepalive should take about 4 s")
        srv.stop()
        verdict("linkdown", "link_down_keepalive", results,
                "link down under idle connections; --keepalive 1 (a probe after 1 s idle, 3 "
                f"probes 1 s apart): clients exit 1 'peer stopped answering' after "
                f"{', '.join(f'{t:.1f}' for t in times)} s, server live 0 after {t_srv:.1f} s, "
                f"errors {errors(st)}: {'; '.join(sorted(set(srv.failures())))}")

    @fcase("net keepalive: a live peer that stops reading is not cut by keepalive")
    def _(procs):
        # A client whose stdout nobody reads: its receive window closes and
        # the echo's sends back up. Both keep answering, so keepalive
        # (1 s here) must leave the connection alone; TCP_USER_TIMEOUT, for
        # one, would end it after its timeout.
        hold = 7.0
        srv = net_echo(procs, ns, "--keepalive", "1")
        cat = subprocess.Popen([*CLIENT_PREFIX, CAT, "--ca", CA, "--servername", "localhost",
                                "--keepalive", "1", NET_ADDR], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            def feed():
                try:
                    cat.stdin.write(POOL)
                except OSError:
                    pass
            threading.Thread(target=feed, daemon=True).start()

            def parked():  # the server has ciphertext the client's window will not take
                s = srv.status_items()
                return s and s[0]["send_parked"]
            wait_for(parked, "the server's sends blocked by the client", timeout=60)
            t0 = time.monotonic()
            while time.monotonic() - t0 < hold:  # must not end: watched, not slept on
                st = srv.status()
                if cat.poll() is not None or (st and st["connections"]["live"] != 1):
                    raise AssertionError(f"the connection ended after "
                                         f"{time.monotonic() - t0:.1f} s of a peer not "
                                         f"reading: {srv.failures()}")
                time.sleep(0.2)  # polling interval
            unacked = ns.unacked(NET_PORT)
        finally:
            cat.kill()
            cat.wait()
        st = settle_and_stop(srv)
        if unacked == 0:
            raise AssertionError("nothing was waiting: the peer was not blocked")
        verdict("stall", "keepalive_keeps_stalled_peer", [(True, "kept")],
                f"a client that stops reading (zero window, {unacked} bytes "
                f"queued): with --keepalive 1 the connection stays open {hold:.0f} s, ends "
                f"when the client is killed; server errors {errors(st) or 'none'}")


def main_net():
    for name, hint in (("ip", "iproute2"), ("nft", "nftables"), ("tc", "iproute2"),
                       ("ss", "iproute2"), ("curl", "curl"), ("sysctl", "procps")):
        tool(name, hint)
    ns = NetNS()
    try:
        why = ns.create()
        if why:
            print(f"faults net: SKIPPED: cannot make a network namespace: {why}", flush=True)
            sys.exit(SKIP)
        CLIENT_PREFIX[:] = ns.cexec()
        net_cases(ns)
    finally:
        ns.destroy()


# ================================================================ syscalls
FIU_LIB = "/usr/lib/fiu"


def asan_runtime(binary):
    """The ASan runtime a binary is linked with (it must come first in
    LD_PRELOAD, before libfiu's wrappers), or None."""
    out = run(["ldd", binary], check=False).stdout
    m = re.search(r"libasan\.so\S* => (\S+)", out)
    return m.group(1) if m else None


def fiu_env(binary, enable, ctrl=None):
    """What fiu-run -x sets (FIU_ENABLE, FIU_CTRL_FIFO, LD_PRELOAD), plus the
    ASan runtime first where there is one. ctrl: the fiu-ctrl FIFO prefix,
    or None for no control thread (its thread does not block SIGTERM, which
    would then kill a program that waits for it with sigwait)."""
    env = dict(os.environ)
    pre = [os.path.join(FIU_LIB, "fiu_run_preload.so"),
           os.path.join(FIU_LIB, "fiu_posix_preload.so")]
    asan = asan_runtime(binary)
    env["LD_PRELOAD"] = " ".join(([asan] if asan else []) + pre)
    if asan:  # libfiu's own start-up strdup is never freed: not ours to report
        supp = os.path.join(TMP, "lsan-fiu.supp")
        with open(supp, "w") as f:
            f.write("leak:fiu_run_preload.so\nleak:fiu_posix_preload.so\nleak:libfiu.so\n")
        env["LSAN_OPTIONS"] = f"suppressions={supp}:print_suppressions=0"
    env["FIU_ENABLE"] = "\n".join(enable)
    env["FIU_CTRL_FIFO"] = ctrl or ""
    return env


def rnd(point, p, errno_=None):
    return (f"enable_random name={point},probability={p}" +
            (f",failinfo={errno_}" if errno_ else ""))


EINTR, EAGAIN, EIO, ECONNRESET, ETIMEDOUT = 4, 11, 5, 104, 110
READV, WRITEV = "posix/io/rw/readv", "posix/io/rw/writev"


SYSCALL_END_S = 6  # a 1 MiB echo on loopback takes well under a second, ASan included


def local_echo(procs, server_faults=()):
    port, status = free_port(), free_port()
    env = fiu_env(ECHO, server_faults) if server_faults else None
    return (Echo(procs, f"127.0.0.1:{port}", status, ("--handshake-timeout", "30000"), env=env),
            f"127.0.0.1:{port}")


def syscall_batch(procs, addr, n, size, client_faults=(), expect=CLEAN, parallel=4):
    results = []
    env = fiu_env(CAT, client_faults) if client_faults else None
    for start in range(0, n, parallel):
        clients = [Client(procs, addr, POOL[i * 3 * size % (len(POOL) - size):][:size], env=env)
                   for i in range(start, min(n, start + parallel))]
        for c in clients:
            judge(results, *c.end(120), c.data, expect)
            # An error the IO task noticed late shows as a wait for a
            # deadline (the server's handshake deadline is 30 s here).
            if c.exited > SYSCALL_END_S:
                results[-1] = (False, f"ended after {c.exited:.1f} s, not within "
                                      f"{SYSCALL_END_S} s: " + results[-1][1])
    return results


def outcome_summary(results):
    """'9 intact, 13 exit 1, 2 exit 3' from judge()'s reasons."""
    n = {}
    for _, why in results:
        m = re.match(r"(?:NOT A PREFIX: )?exit (\d+)", why)
        rc = int(m.group(1)) if m else -1
        n[rc] = n.get(rc, 0) + 1
    return ", ".join(f"{v} intact" if rc == 0 else f"{v} exit {rc}" for rc, v in sorted(n.items()))


def syscall_cases():
    @fcase("syscall eintr_eagain: readv/writev fail with EINTR or EAGAIN (p 0.25), both sides")
    def _(procs):
        srv, addr = local_echo(procs, [rnd(READV, 0.25, EAGAIN), rnd(WRITEV, 0.25, EINTR)])
        results = syscall_batch(procs, addr, 4, MIB,
                                [rnd(READV, 0.25, EINTR), rnd(WRITEV, 0.25, EAGAIN)])
        st = settle_and_stop(srv)
        if errors(st):
            raise AssertionError(f"server errors {errors(st)}: {srv.failures()}")
        verdict("syscall", "eintr_eagain", results,
                "readv/writev fail with EINTR or EAGAIN at p 0.25 in server and client; "
                "4 x 1 MiB intact, no server error")

    @fcase("syscall short_io: readv/writev cut short (libfiu reduce, p 0.5), both sides")
    def _(procs):
        pts = [rnd(READV + "/reduce", 0.5), rnd(WRITEV + "/reduce", 0.5)]
        srv, addr = local_echo(procs, pts)
        results = syscall_batch(procs, addr, 4, MIB, pts)
        st = settle_and_stop(srv)
        if errors(st):
            raise AssertionError(f"server errors {errors(st)}: {srv.failures()}")
        verdict("syscall", "short_io", results,
                "half of readv/writev calls get fewer iovecs (short reads and writes) in "
                "server and client; 4 x 1 MiB intact")

    @fcase("syscall server_errors: the server's readv/writev fail with random errnos (p 0.003)")
    def _(procs):
        srv, addr = local_echo(procs, [rnd(READV, 0.003), rnd(WRITEV, 0.003)])
        # The server's failure reaches the client as a reset (unread data)
        # or a FIN without close_notify; never as a TLS alert blaming it.
        results = syscall_batch(procs, addr, 24, MIB,
                                expect={0: None,
                                        1: r"connection reset by peer|without close_notify "
                                           r"during the handshake", 3: r"truncated"})
        st = settle_and_stop(srv, timeout=30)
        bad = [f for f in srv.failures() if not re.match(r"socket error (while receiving|while "
                                                         r"sending|during the handshake): ", f)]
        if bad:
            raise AssertionError(f"server failures with other reasons: {bad}")
        verdict("syscall", "server_errors", results,
                "server readv/writev fail with a random errno at p 0.003; 24 x 1 MiB: "
                f"{outcome_summary(results)} (1: reset, 3: truncated; each a prefix); server "
                f"errors {errors(st) or 'none'}, every reason 'socket error while ...: <errno>'")

    @fcase("syscall client_errors: the client's readv/writev fail with random errnos (p 0.003)")
    def _(procs):
        srv, addr = local_echo(procs)
        # A local error is the client's own: exit 1, "socket error", never
        # a truncation (exit 3) or a reset.
        results = syscall_batch(procs, addr, 24, MIB, [rnd(READV, 0.003), rnd(WRITEV, 0.003)],
                                expect={0: None,
                                        1: r"socket error (while receiving|while sending|"
                                           r"during the handshake): "})
        st = settle_and_stop(srv, timeout=30)
        verdict("syscall", "client_errors", results,
                "client readv/writev fail with a random errno at p 0.003; 24 x 1 MiB: "
                f"{outcome_summary(results)} (1: 'socket error while ...: <errno>'; each a "
                "prefix); "
                f"server errors {errors(st) or 'none'}")

    @fcase("syscall midstream: one error switched on mid-stream with fiu-ctrl, the right reason")
    def _(procs):
        srv, addr = local_echo(procs)
        results, ctl = [], os.path.join(TMP, "fiu")
        for point, err, pat in ((READV, EIO, r"socket error while receiving: Input/output error"),
                                (WRITEV, EIO, r"socket error while sending: Input/output error"),
                                (READV, ECONNRESET, r"connection reset by peer while receiving"),
                                (READV, ETIMEDOUT, r"peer stopped answering")):
            c = quiet_client(procs, addr, 256 * KIB, env=fiu_env(CAT, [], ctrl=ctl))
            run(["fiu-ctrl", "-f", ctl, "-c", f"enable name={point},failinfo={err}",
                 str(c.p.p.pid)])
            c.resume(256 * KIB)
            judge(results, *c.end(30), c.data, {1: pat})
        st = settle_and_stop(srv)
        verdict("syscall", "midstream_errno", results,
                "after 256 KiB the client's readv fails with EIO, ECONNRESET, ETIMEDOUT, its "
                "writev with EIO: exit 1 with 'socket error while receiving/sending: "
                "Input/output error', 'connection reset by peer', 'peer stopped answering'; "
                f"server errors {errors(st) or 'none'}")

    @fcase("syscall send_recv: send/recv/sendmsg/recvmsg always fail; tlsq never calls them")
    def _(procs):
        pts = [f"enable name=posix/io/net/{f}" for f in ("send", "recv", "sendto", "recvfrom",
                                                        "sendmsg", "recvmsg")]
        srv, addr = local_echo(procs, pts)
        results = syscall_batch(procs, addr, 2, MIB, pts)
        st = settle_and_stop(srv)
        if errors(st):
            raise AssertionError(f"server errors {errors(st)}")
        verdict("syscall", "send_recv_unused", results,
                "send, recv, sendto, recvfrom, sendmsg, recvmsg fail always in server and client: "
                "2 x 1 MiB intact (tlsq moves its bytes with readv and writev only)")


def main_syscall():
    tool("fiu-ctrl", "fiu-utils")
    if not os.path.exists(os.path.join(FIU_LIB, "fiu_posix_preload.so")):
        print(f"faults syscall: {FIU_LIB}/fiu_posix_preload.so is missing (fiu-utils; "
              "tools/setup --test installs it)", flush=True)
        sys.exit(1)
    syscall_cases()


try:
    main_net() if GROUP == "net" else main_syscall()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
finish(f"faults {GROUP}")
