#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""bench/callgrind.py works (docs/benchmarks.md, "Instructions per GB").

usage: bench_callgrind.py CALLGRIND_PY TLSQ_BENCH

Runs the script on a 1 MiB W1 (not a measurement: it checks the tool) and
checks its JSON: for tlsq and wolfssl, sender and receiver, a positive Ir/GB
in a sane range (0.5 to 200 G instructions per GB: AES-GCM alone is about
1 per byte, the bench's hash another), AES-GCM among the receiver's
functions, and the printed table with the ratio tlsq/wolfssl.
"""
import json
import os
import subprocess
import sys
import tempfile

SCRIPT, BENCH = sys.argv[1:3]
failures = []


def check(cond, what):
    print(("PASS  " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


with tempfile.TemporaryDirectory(prefix="tlsq-bench-callgrind-") as tmp:
    js = os.path.join(tmp, "cg.json")
    p = subprocess.run([sys.executable, SCRIPT, "--bench", BENCH, "--bytes", "1m", "--top", "5",
                        "--json", js], capture_output=True, text=True, timeout=1200)
    check(p.returncode == 0, f"callgrind.py exit {p.returncode}"
          + ("" if p.returncode == 0 else f"\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"))
    check("tlsq/wolfssl" in p.stdout and "Top functions of tlsq's sender" in p.stdout
          and "Where tlsq's extra instructions go" in p.stdout,
          "the table, tlsq's top functions and the difference are printed")
    res = {}
    if os.path.exists(js):
        with open(js) as f:
            res = json.load(f)["peers"]
    for peer in ("tlsq", "wolfssl"):
        for side in ("client", "server"):
            v = res.get(peer, {}).get(side, {}).get("ir_per_gb", 0)
            check(0.5e9 <= v <= 200e9, f"{peer} {side}: {v / 1e9:.2f} G Ir/GB in 0.5..200")
        fns = res.get(peer, {}).get("server", {}).get("functions", {})
        check(any("AES_GCM_decrypt" in k or "GHASH" in k for k in fns),
              f"{peer} receiver: AES-GCM decryption among its functions")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
