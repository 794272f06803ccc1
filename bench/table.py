#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Markdown tables from tlsq-bench --json (docs/benchmarks.md).

usage: bench/table.py bench.json

Prints three tables from one run: the medians of every figure with the ratio
tlsq/peer, the CPU figures alone (CPU per GB, per message, per round trip,
per connection) with their ratios, and every single run, to show the spread.
"""
import json
import sys


def fmt(v):
    if v is None:
        return "–"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:,.1f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    with open(sys.argv[1]) as f:
        d = json.load(f)
    res = d["results"]
    peers = list(dict.fromkeys(r["peer"] for r in res))
    rows = list(dict.fromkeys((r["workload"], r["metric"]) for r in res))
    by = {(r["workload"], r["metric"], r["peer"]): r for r in res}
    # ratio columns: tlsq/peer for every other peer, then (with tlsq-zc)
    # tlsq-zc/peer for every peer but tlsq, as tlsq-bench prints them
    cols = [("tlsq", p) for p in peers if p != "tlsq" and "tlsq" in peers]
    cols += [("tlsq-zc", p) for p in peers
             if p not in ("tlsq", "tlsq-zc") and "tlsq-zc" in peers]

    def cell(w, m, p):
        r = by.get((w, m, p))
        if r is None:
            return "–"
        return fmt(r["median"]) if r["status"] == "ok" else r["status"]

    def ratio(w, m, base, p):
        t, r = by.get((w, m, base)), by.get((w, m, p))
        if not t or not r or t["status"] != "ok" or r["status"] != "ok" or not r["median"]:
            return "–"
        return f"{t['median'] / r['median']:.2f}x"

    def table(select):
        print("| | metric | " + " | ".join(peers) + " | "
              + " | ".join(f"{b}/{p}" for b, p in cols) + " |")
        print("|---|---|" + "---:|" * (len(peers) + len(cols)))
        for w, m in rows:
            if not select(m):
                continue
            lb = by[(w, m, peers[0])]["lower_is_better"]
            print(f"| {w} | {m} ({'lower' if lb else 'higher'} is better) | "
                  + " | ".join(cell(w, m, p) for p in peers) + " | "
                  + " | ".join(ratio(w, m, b, p) for b, p in cols) + " |")

    table(lambda m: not m.startswith("CPU"))
    print()
    table(lambda m: m.startswith("CPU"))
    print()
    print("| | metric | " + " | ".join(peers) + " |")
    print("|---|---|" + "---|" * len(peers))
    for w, m in rows:
        print(f"| {w} | {m} | " + " | ".join(
            ", ".join(fmt(v) for v in by[(w, m, p)]["runs"]) if (w, m, p) in by else "–"
            for p in peers) + " |")


if __name__ == "__main__":
    main()
