#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tlsq-bench smoke test (docs/benchmarks.md): small sizes, not a measurement.

usage: bench_smoke.py TLSQ_BENCH

  1. W1, W2, W3 with every peer (tlsq-zc, the zero-copy tlsq peer, included)
     and W4 with tlsq, tcp and tlsq-zc: exit 0 (every run's hashes agree and
     tlsq and tlsq-zc finish every workload).
  2. The CPU figures are there: for every workload and peer that ran, the
     JSON holds its CPU metric (W1/W4 "CPU s/GB", W2 "CPU us/msg", W3
     "CPU us/rt") with status ok, a positive median and positive runs; the
     table prints a row for each, with a tlsq/peer ratio for every peer and a
     tlsq-zc/peer ratio for every peer but tlsq.
  3. W7 at 500 connections (5 of them busy) with tlsq, tcp, wolfssl and nng:
     exit 0; every W7 figure of tlsq, tcp and wolfssl is there with status ok
     and a positive median (tcp's heap KiB/conn may be 0: raw TCP mallocs
     nothing per connection); nng, which has no descriptor to poll, is "n/a".

The bench has its own deadlines (a run that overruns is a hang, exit 1); the
subprocess timeout below is only a backstop.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

BENCH = sys.argv[1]
CPU = {"W1": "CPU s/GB", "W2": "CPU us/msg", "W3": "CPU us/rt", "W4": "CPU s/GB"}
ALL_PEERS = ["tlsq", "tcp", "wolfssl", "openssl", "nng", "tlsq-zc"]
RUNS = [
    (["--runs", "1", "--bulk-bytes", "8m", "--duration", "0.3", "--round-trips", "2000",
      "-w", "W1,W2,W3", "-p", ",".join(ALL_PEERS)], ["W1", "W2", "W3"], ALL_PEERS),
    (["--runs", "1", "--duplex-bytes", "4m", "-w", "W4", "-p", "tlsq,tcp,tlsq-zc"], ["W4"],
     ["tlsq", "tcp", "tlsq-zc"]),
]
W7_METRICS = ["setup s", "handshakes/s", "KiB/conn", "heap KiB/conn", "msgs/s", "p99 us",
              "1% conns: msgs/s", "1% conns: p99 us", "CPU ms/conn"]
W7_ARGS = ["--runs", "1", "-w", "W7", "-p", "tlsq,tcp,wolfssl,nng", "--w7-conns", "500",
           "--w7-seconds", "0.5"]
failures = []


def check(cond, what):
    print(("PASS  " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


with tempfile.TemporaryDirectory(prefix="tlsq-bench-smoke-") as tmp:
    for k, (args, works, peers) in enumerate(RUNS):
        js = os.path.join(tmp, f"run{k}.json")
        p = subprocess.run([BENCH, *args, "--json", js], capture_output=True, text=True,
                           timeout=600)
        check(p.returncode == 0, f"tlsq-bench {' '.join(args)}: exit {p.returncode}"
              + ("" if p.returncode == 0 else f"\n{p.stderr[-3000:]}"))
        if not os.path.exists(js):
            check(False, f"tlsq-bench wrote no JSON ({js})")
            continue
        with open(js) as f:
            res = json.load(f)["results"]
        for w in works:
            for peer in peers:
                rows = [r for r in res if r["workload"] == w and r["peer"] == peer
                        and r["metric"] == CPU[w]]
                ok = (len(rows) == 1 and rows[0]["status"] == "ok"
                      and rows[0]["lower_is_better"] is True
                      and rows[0]["median"] is not None and rows[0]["median"] > 0
                      and len(rows[0]["runs"]) == 1 and all(v > 0 for v in rows[0]["runs"]))
                check(ok, f"{w} {peer}: JSON has '{CPU[w]}' > 0 ({rows})")
            # The table: the workload's CPU row, one positive value per peer,
            # then a ratio tlsq/peer for every other peer.
            lines = p.stdout.splitlines()
            # W1 and W4 share the metric name: take the row that follows the
            # workload's first line.
            start = next((i for i, ln in enumerate(lines) if ln.startswith(w + " ")), None)
            row = [ln for ln in lines[start:start + 5] if f"{CPU[w]} (low)" in ln] \
                if start is not None else []
            if not row:
                check(False, f"{w}: the table has no '{CPU[w]} (low)' row:\n{p.stdout}")
                continue
            cells = row[0].split(f"{CPU[w]} (low)")[1].split()
            values = [c for c in cells if not c.endswith("x")]
            ratios = [c for c in cells if c.endswith("x")]
            nratios = len(peers) - 1 + (len(peers) - 2 if "tlsq-zc" in peers else 0)
            ok = (len(values) == len(peers) and all(float(v) > 0 for v in values)
                  and len(ratios) == nratios
                  and all(re.fullmatch(r"\d+\.\d\dx", r) for r in ratios))
            check(ok, f"{w}: table row '{row[0].strip()}' has {len(peers)} positive "
                  f"CPU figures and {nratios} ratios tlsq/peer and tlsq-zc/peer")

    js = os.path.join(tmp, "w7.json")
    p = subprocess.run([BENCH, *W7_ARGS, "--json", js], capture_output=True, text=True,
                       timeout=600)
    check(p.returncode == 0, f"tlsq-bench {' '.join(W7_ARGS)}: exit {p.returncode}"
          + ("" if p.returncode == 0 else f"\n{p.stderr[-3000:]}"))
    res = []
    if os.path.exists(js):
        with open(js) as f:
            res = [r for r in json.load(f)["results"] if r["workload"] == "W7"]
    for peer in ["tlsq", "tcp", "wolfssl"]:
        for metric in W7_METRICS:
            rows = [r for r in res if r["peer"] == peer and r["metric"] == metric]
            # tcp mallocs nothing per connection; under ASan mallinfo2
            # sees none of ASan's allocations (the ASan stage sets this).
            zero_ok = metric == "heap KiB/conn" and (
                peer == "tcp" or os.environ.get("TLSQ_BENCH_NO_MALLINFO") == "1")
            ok = (len(rows) == 1 and rows[0]["status"] == "ok"
                  and rows[0]["median"] is not None
                  and (rows[0]["median"] >= 0 if zero_ok else rows[0]["median"] > 0))
            check(ok, f"W7 {peer}: '{metric}' ok and positive ({rows})")
    rows = [r for r in res if r["peer"] == "nng"]
    check(len(rows) == len(W7_METRICS) and all(r["status"] == "n/a" for r in rows),
          f"W7 nng: every figure n/a ({rows})")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
