#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Instructions per GB for tlsq and naive wolfSSL, repeatable (docs/benchmarks.md).

usage: bench/callgrind.py [--bench PATH] [--bytes 64m] [--peers tlsq,wolfssl]
                          [--top 25] [--keep DIR] [--json FILE] [--vector-copies]
                          [-w W3 [--round-trips 3200]] [--produce]

Runs tlsq-bench's W1 (bulk one way in 16 KiB writes) under
valgrind --tool=callgrind for each peer, twice: once with --bytes (64 MiB) and
once with 16 KiB (setup only: loading, certificates, the handshake). The
instructions (Ir) of the server and client processes of the small run are
taken from those of the large one, so what is left is the cost of moving the
bytes, per GB (1e9 bytes). Prints, from that same difference:

  1. Ir/GB for each peer, sender and receiver apart, and the ratio tlsq/peer;
  2. the top functions of tlsq's profile (self Ir/GB, sender and receiver);
  3. where tlsq's extra instructions go: the functions and groups (copies,
     libevent, tlsq's own code, wolfSSL, libc and locks, ...) whose Ir/GB
     differ most between tlsq and the naive peer.

-w W3 does the same for the 64-byte ping-pong: --round-trips (3,200) minus
200 round trips, both processes, in Ir per round trip.

--peers takes any tlsq-bench peer, tlsq-zc (tlsq's zero-copy calls) included;
the first one is the base of the ratios. --produce passes tlsq-bench's
--produce (W1's sender writes each piece into a buffer first, so that a
zero-copy send has a copy to save: docs/benchmarks.md, "Zero-copy calls").

Instruction counts are nearly independent of the machine's load, unlike
MB/s; they count user-space instructions only: the kernel's side (syscalls,
futex and eventfd wake-ups, socket copies) is not in them, and tlsq-bench's
CPU s/GB is where that shows. The bench's own byte hash (FNV-1a, about
1.1 G Ir/GB on each side) is in every peer's figure alike.

Copies. glibc's memcpy moves blocks of 4 KiB and more (tlsq's and wolfSSL's
16 KiB records) with `rep movsb`, which valgrind counts one instruction per
byte: so by default a copy of every byte costs 1 G Ir/GB, the memcpy line
reads as "copies of each byte", and copies weigh far more in the Ir total
than in a real CPU's cycles. --vector-copies runs the programs with
GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=2147483647, so that memcpy
uses its AVX loop (about 0.1 Ir per byte copied): an Ir total closer to the
cost in cycles. Report which one a figure is.

Needs valgrind (tools/setup --test) and a tlsq-bench without sanitizers
(the default build/bench/tlsq-bench). About 2-3 minutes with 64 MiB.
"""
import argparse
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = 16384


def parse_size(s):
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", s)
    if not m:
        raise argparse.ArgumentTypeError(f"'{s}' is not a size")
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[
        m.group(2).lower()]


def run_callgrind(bench, peer, workload, amount, outdir, extra=()):
    """Runs W1 (amount: bytes) or W3 (amount: round trips) under callgrind;
    returns {"server": file, "client": file}."""
    tag = f"{peer}-{amount}"
    pattern = os.path.join(outdir, f"cg.{tag}.%p")
    size = ["--bulk-bytes", str(amount)] if workload == "W1" else ["--round-trips", str(amount)]
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={pattern}",
           bench, "--runs", "1", "-w", workload, "-p", peer, *size, "--slow", "30", *extra]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    if p.returncode != 0:
        sys.exit(f"callgrind.py: {' '.join(cmd)} exited {p.returncode}\n{out}\n{err[-3000:]}")
    # valgrind keeps the pid of the program it starts: that file is the
    # parent (the orchestrator); the two others are its forked children.
    files = [f for f in glob.glob(os.path.join(outdir, f"cg.{tag}.*"))
             if not f.endswith(f".{p.pid}")]
    if len(files) != 2:
        sys.exit(f"callgrind.py: expected 2 child profiles for {tag}, found {files}")
    # The server child is the one that ran the peer's accept (q_accept,
    # w_accept, ...: callgrind names a function the first time it appears).
    acc = re.compile(r"^c?fn=\(\d+\) [a-z]_accept$", re.M)
    server = [f for f in files if acc.search(open(f, errors="replace").read())]
    if len(server) != 1:
        sys.exit(f"callgrind.py: cannot tell the server from the client in {files}")
    return {"server": server[0], "client": [f for f in files if f != server[0]][0]}


LINE = re.compile(r"^\s*([\d,]+) \([ \d.]+%\)\s+(.*?)(?: \[(.*)\])?$")


def functions(path):
    """Self Ir per function of one profile: {(file:function, object): Ir}."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    # A line without [object] is code inlined from another file (a header):
    # it belongs to the object of the function of that name named elsewhere.
    fobj = {}
    for ln in out.splitlines():
        m = LINE.match(ln)
        if m and m.group(3):
            fobj.setdefault(m.group(2).rsplit(":", 1)[-1], m.group(3))
    res, total, obj, started = collections.Counter(), 0, "", False
    for ln in out.splitlines():
        if "PROGRAM TOTALS" in ln:
            total = int(ln.split()[0].replace(",", ""))
            continue
        if ln.startswith("Ir") and "file:function" in ln:
            started = True
            continue
        if not started:
            continue
        m = LINE.match(ln)
        if not m:
            if ln.startswith("----") or not ln.strip():
                if res:
                    break  # the end of the function list
                continue
            continue
        ir, name, o = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
        obj = o or fobj.get(name.rsplit(":", 1)[-1], "?")
        res[(name, os.path.basename(obj))] += ir
    return total, res


# Which folder of this repository each source file is in (callgrind names
# some files by full path, some by the path the compiler was given).
FOLDER = {f: d for d in ("bench", "core", "iotask", "api", "status")
          for f in (os.listdir(os.path.join(ROOT, d)) if os.path.isdir(os.path.join(ROOT, d))
                    else [])}


CALLER = re.compile(r"^\s*([\d,]+) \([ \d.]+%\)\s+<\s+(.*?) \([\d,]+x\)")


def copy_callers(path):
    """Ir of memcpy/memmove by the function that called it: {caller: Ir}."""
    out = subprocess.run(["callgrind_annotate", "--tree=caller", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    res, block = collections.Counter(), []
    for ln in out.splitlines():
        if not ln.strip():
            block = []
            continue
        if "*  " in ln and re.search(r":(__)?mem(cpy|move)\w*", ln):
            for b in block:
                m = CALLER.match(b)
                if m:
                    res[short(m.group(2))] += int(m.group(1).replace(",", ""))
            block = []
            continue
        block.append(ln)
    return res


def group(name, obj):
    """Which part of the stack a function belongs to."""
    fn = name.rsplit(":", 1)[-1]
    src = "/" + FOLDER.get(os.path.basename(name.rsplit(":", 1)[0]), "?") + "/"
    if re.match(r"__mem(cpy|move|set)|memcpy|memmove|memset", fn):
        return "copies (memcpy/memmove/memset)"
    if "libevent" in obj:
        return "libevent (evbuffer, event loop)"
    if fn.startswith("ck_") or "libck" in obj:
        return "concurrencykit"
    if "/bench/" in src:
        return "the bench itself (hash, loops)"
    for d, g in (("/core/", "tlsq core/ (queues, pool, waits)"),
                 ("/iotask/", "tlsq iotask/ (IO task, callbacks)"),
                 ("/api/", "tlsq api/"), ("/status/", "tlsq status/")):
        if d in src:
            return g
    if obj.startswith("tlsq-bench"):
        if re.search(r"AES|GCM|GHASH|Sha|SHA|sp_256|curve|fe_|ge_", fn):
            return "wolfSSL crypto (AES-GCM, hashes, keys)"
        return "wolfSSL record layer and other"
    if obj.startswith("libc"):
        if re.search(r"pthread|mutex|futex|lll_|cond_|sem_", fn):
            return "libc locks and futex wrappers"
        return "libc other (syscall stubs, malloc)"
    if obj.startswith("ld-linux"):
        return "dynamic loader"
    return "other"


def short(name):
    fn = name.rsplit(":", 1)[-1]
    src = name.rsplit(":", 1)[0]
    return f"{fn} ({os.path.basename(src)})" if src not in ("???", "") else fn


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "tlsq-bench"))
    ap.add_argument("--bytes", type=parse_size, default=64 << 20)
    ap.add_argument("--peers", default="tlsq,wolfssl")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--keep", help="keep the callgrind profiles in this folder")
    ap.add_argument("--json", help="also write the figures as JSON")
    ap.add_argument("--vector-copies", action="store_true",
                    help="memcpy without rep movsb (see the description)")
    ap.add_argument("-w", "--workload", choices=("W1", "W3"), default="W1")
    ap.add_argument("--round-trips", type=int, default=3200, help="W3: the large run")
    ap.add_argument("--produce", action="store_true",
                    help="W1: tlsq-bench --produce (senders write each piece into a buffer)")
    a = ap.parse_args()
    a.bytes = a.bytes // 16384 * 16384
    if a.vector_copies:
        os.environ["GLIBC_TUNABLES"] = "glibc.cpu.x86_rep_movsb_threshold=2147483647"
    peers = a.peers.split(",")
    if a.bytes <= SMALL or not shutil.which("valgrind") or not os.access(a.bench, os.X_OK):
        sys.exit("callgrind.py: needs valgrind, an executable --bench and --bytes > 16k")
    outdir = a.keep or tempfile.mkdtemp(prefix="tlsq-callgrind-")
    os.makedirs(outdir, exist_ok=True)
    for f in glob.glob(os.path.join(outdir, "cg.*")):
        os.unlink(f)
    if a.workload == "W1":
        lo, hi, what = SMALL, a.bytes, "bytes"
        per_gb = 1e9 / (hi - lo)
        unit, scale, fmt = "G Ir/GB", 1e9, "8.2f"
    else:
        lo, hi, what = 200, a.round_trips, "round trips"
        if hi <= lo:
            sys.exit("callgrind.py: --round-trips must be more than 200")
        per_gb = 1.0 / (hi - lo)  # "per GB" reads "per round trip" below
        unit, scale, fmt = "Ir/round trip", 1.0, "8.0f"
    fig = {}  # peer -> side -> (Ir/unit, Counter of function Ir/unit)
    for peer in peers:
        print(f"callgrind: {a.workload} {peer}, {lo} and {hi} {what} ...", file=sys.stderr,
              flush=True)
        extra = ["--produce"] if a.produce else []
        small = run_callgrind(a.bench, peer, a.workload, lo, outdir, extra)
        large = run_callgrind(a.bench, peer, a.workload, hi, outdir, extra)
        fig[peer] = {}
        for side in ("client", "server"):
            t0, f0 = functions(small[side])
            t1, f1 = functions(large[side])
            fns = collections.Counter({k: (f1[k] - f0.get(k, 0)) * per_gb for k in f1})
            c0, c1 = copy_callers(small[side]), copy_callers(large[side])
            copies = collections.Counter({k: (c1[k] - c0.get(k, 0)) * per_gb for k in c1})
            fig[peer][side] = ((t1 - t0) * per_gb, fns, copies)

    def gir(v):
        return format(v / scale, fmt)

    if a.workload == "W1":
        print(f"\nW1 one way, 16 KiB writes: ({a.bytes >> 20} MiB run) - (16 KiB run), "
              "user-space instructions (Ir) per GB moved, in G Ir/GB; memcpy "
              + ("without rep movsb (--vector-copies)" if a.vector_copies else
                 "as glibc runs it (rep movsb: 1 Ir per byte copied)"))
    else:
        print(f"\nW3 64-byte ping-pong: ({hi} round trips) - ({lo} round trips), user-space "
              "instructions (Ir) per round trip; 'sender' is the client (pings), 'receiver' "
              "the server (echoes)")
    print(f"{'peer':10} {'sender':>8} {'receiver':>8} {'both':>8}")
    for peer in peers:
        s, r = fig[peer]["client"][0], fig[peer]["server"][0]
        print(f"{peer:10} {gir(s)} {gir(r)} {gir(s + r)}")
    base = peers[0]
    for peer in peers[1:]:
        rs = [fig[base][x][0] / fig[peer][x][0] for x in ("client", "server")]
        both = (sum(fig[base][x][0] for x in fig[base]) /
                sum(fig[peer][x][0] for x in fig[peer]))
        print(f"{base + '/' + peer:10} {rs[0]:7.2f}x {rs[1]:7.2f}x {both:7.2f}x")
    if not a.vector_copies and a.workload == "W1":
        print("memcpy Ir per byte moved (= copies of each byte, rep movsb):")
        for peer in peers:
            c = [sum(v for (n, o), v in fig[peer][x][1].items()
                     if group(n, o).startswith("copies")) / 1e9 for x in ("client", "server")]
            print(f"{peer:10} {c[0]:8.2f} {c[1]:8.2f} {c[0] + c[1]:8.2f}")

    for side, what in (("client", "sender"), ("server", "receiver")):
        print(f"\nTop functions of {base}'s {what} (self, {unit}; callgrind_annotate "
              "--inclusive=no on the difference)")
        for (name, obj), v in fig[base][side][1].most_common(a.top):
            if v <= 0:
                break
            print(f"  {gir(v)}  {short(name)} [{obj}]")

    for peer in peers:
        for side, what in (("client", "sender"), ("server", "receiver")):
            print(f"\nmemcpy/memmove in {peer}'s {what}, by caller ({unit}):")
            for n, v in fig[peer][side][2].most_common(6):
                if v < 0.005 * scale:
                    break
                print(f"  {gir(v)}  {n}")

    for peer in peers[1:]:
        print(f"\nWhere {base}'s extra instructions go, against {peer} "
              f"({unit}, sender + receiver)")
        groups = collections.defaultdict(lambda: [0.0, 0.0])
        fns = collections.defaultdict(lambda: [0.0, 0.0])
        for k, pr in enumerate((base, peer)):
            for side in ("client", "server"):
                for (name, obj), v in fig[pr][side][1].items():
                    groups[group(name, obj)][k] += v
                    fns[(short(name), obj)][k] += v
        print(f"  {'group':42} {base:>8} {peer:>8} {'extra':>8}")
        for g, (x, y) in sorted(groups.items(), key=lambda kv: kv[1][1] - kv[1][0]):
            if abs(x - y) >= 0.005 * scale or max(x, y) >= 0.05 * scale:
                print(f"  {g:42} {gir(x)} {gir(y)} {gir(x - y)}")
        tot = [sum(v[k] for v in groups.values()) for k in (0, 1)]
        print(f"  {'total':42} {gir(tot[0])} {gir(tot[1])} {gir(tot[0] - tot[1])}")
        print(f"  functions with the largest difference:")
        for (n, obj), (x, y) in sorted(fns.items(), key=lambda kv: kv[1][1] - kv[1][0])[:a.top]:
            if x - y < 0.005 * scale:
                break
            print(f"  {gir(x)} {gir(y)} {gir(x - y)}  {n} [{obj}]")

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"workload": a.workload, "unit": unit, "bytes": a.bytes, "vector_copies": a.vector_copies, "peers": {
                pr: {side: {"ir_per_gb": fig[pr][side][0],
                            "copies_by_caller": dict(fig[pr][side][2].most_common(20)),
                            "functions": {f"{n} [{o}]": v for (n, o), v in
                                          fig[pr][side][1].most_common(200)}}
                     for side in fig[pr]} for pr in peers}}, f, indent=1)
    if not a.keep:
        shutil.rmtree(outdir)


if __name__ == "__main__":
    main()
