#!/usr/bin/env python3
"""Prints the benchmark table from the JSON reports bench.sh wrote: median of the runs per
case and target, the min-max spread, and the ratio Switchboard / nats-server."""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "target/bench"
cases = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    name, target, _run, _ = os.path.basename(path).split(".")
    try:
        report = json.load(open(path))
    except (ValueError, OSError):
        continue
    cases.setdefault(name, {}).setdefault(target, []).append(report)

def figures(report):
    idle = report.get("idle") or {}
    return {
        "deliveries/s": report.get("deliveries_per_s"),
        "p99 latency ms": (report.get("latency") or {}).get("p99_us", 0) / 1000.0,
        "connections/s": report.get("connections_per_s"),
        "handshake p99 ms": (report.get("handshake") or {}).get("p99_us", 0) / 1000.0,
        "RSS KiB/conn": idle.get("rss_per_connection_kib"),
        "CPU µs/conn/s": idle.get("server_cpu_us_per_connection_per_s"),
        "lost": report.get("lost"),
        "loader CPU %": report.get("loader_measure_cpu_percent"),
        "server CPU %": report.get("server_measure_cpu_percent"),
        "server core busy %": (report.get("core_busy_percent") or [None])[0],
    }

wanted = {
    "fanout": ["deliveries/s", "p99 latency ms", "lost", "server CPU %", "server core busy %", "loader CPU %"],
    "latency": ["p99 latency ms", "deliveries/s", "lost", "server CPU %", "loader CPU %"],
    "idle": ["RSS KiB/conn", "CPU µs/conn/s", "loader CPU %"],
    "connect": ["connections/s", "handshake p99 ms", "server CPU %", "server core busy %", "loader CPU %"],
    "rooms": ["deliveries/s", "p99 latency ms", "lost", "server CPU %", "server core busy %", "loader CPU %"],
}
print(f"| case | figure | Switchboard (median, min-max) | nats-server WS (median, min-max) | ratio |")
print("|---|---|---|---|---|")
for name in sorted(cases):
    kind = name.split("-")[0]
    for figure in wanted.get(kind, []):
        cells, medians = [], []
        for target in ("switchboard", "nats-ws"):
            values = [figures(r)[figure] for r in cases[name].get(target, []) if figures(r)[figure] is not None]
            if values:
                median = statistics.median(values)
                medians.append(median)
                cells.append(f"{median:,.2f} ({min(values):,.2f}-{max(values):,.2f}, n={len(values)})")
            else:
                medians.append(None)
                cells.append("-")
        ratio = "-"
        if all(m not in (None, 0) for m in medians):
            ratio = f"{medians[0] / medians[1]:.2f}"
        print(f"| {name} | {figure} | {cells[0]} | {cells[1]} | {ratio} |")
