#!/usr/bin/env python3
"""Prints the Markdown tables of a scaleout.sh run from the files it wrote to OUT: the loader
processes' reports, the publisher's merged figures of the broadcast round, and every gateway's
RSS (right after start, with every connection held, peak of the samples) and RSS per held
connection. Exits 0 when the run was complete, 1 otherwise."""
import csv
import json
import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "target/scaleout"


def read_json(path):
    try:
        with open(path) as file:
            text = file.read().strip()
        return json.loads(text.splitlines()[-1]) if text else None
    except (OSError, ValueError, IndexError):
        return None


def read_tsv(name):
    try:
        with open(os.path.join(out, name)) as file:
            return list(csv.DictReader(file, delimiter="\t"))
    except OSError:
        return []


def number(value):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def ms(latency, key):
    value = (latency or {}).get(key)
    return "-" if value is None else f"{value / 1000:.2f}"


def fmt(value, spec=","):
    return "-" if value is None else format(value, spec)


params = {}
try:
    with open(os.path.join(out, "run.env")) as file:
        for line in file:
            key, _, value = line.strip().partition("=")
            params[key] = value
except OSError:
    pass
connections = number(params.get("CONNECTIONS"))
messages = number(params.get("MESSAGES"))

print(
    f"## Scale-out run: {params.get('GATEWAYS', '?')} gateways, {fmt(connections)} connections, "
    f"{params.get('LOADERS', '?')} loader processes ({params.get('IPS_PER_LOADER', '?')} source address(es) each), "
    f"{params.get('MESSAGES', '?')} message(s) at rate "
    f"{params.get('RATE', '?')} (connect phase {params.get('CONNECT_S', '?')} s)"
)
print()
print("### Loader processes (subscribers)")
print()
print("| loader | source | offset | clients | connected | failed | deliveries | lost | dup | ok | exit | handshake p99 ms | peak RSS KiB | report |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
loaders_ok = True
for row in read_tsv("loaders.tsv"):
    report = read_json(row["report"])
    if report is None:
        loaders_ok = False
        print(f"| {row['loader']} | {row['source_ip']} | {row['client_offset']} | {row['clients']} | - | - | - | - | - | no report | {row['exit_code']} | - | - | {row['report']} |")
        continue
    loaders_ok &= bool(report.get("ok"))
    print(
        f"| {row['loader']} | {row['source_ip']} | {fmt(number(row['client_offset']))} | {fmt(report.get('clients'))} "
        f"| {fmt(report.get('connected'))} | {fmt(report.get('connect_failures'))} | {fmt(report.get('deliveries'))} "
        f"| {fmt(report.get('lost'))} | {fmt(report.get('duplicates'))} | {'ok' if report.get('ok') else 'FAILED'} "
        f"| {row['exit_code']} | {ms(report.get('handshake'), 'p99_us')} | {fmt(report.get('loader_peak_rss_kib'))} | {row['report']} |"
    )

print()
print("### Broadcast round (publisher's merged report)")
print()
publisher = read_json(os.path.join(out, "publisher.json"))
round_ok = False
if publisher is None:
    print(f"no publisher report (publisher exit: {params.get('PUBLISHER_EXIT', '?')}); see {out}/publisher.log")
else:
    latency = publisher.get("latency")
    print("| processes | connected | expected | deliveries | lost | duplicates | out of order | round s | deliveries/s | p50 ms | p99 ms | max ms | ending | ok |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {publisher.get('processes')} | {fmt(publisher.get('connected'))} | {fmt(publisher.get('expected_deliveries'))} "
        f"| {fmt(publisher.get('deliveries'))} | {fmt(publisher.get('lost'))} | {fmt(publisher.get('duplicates'))} "
        f"| {fmt(publisher.get('out_of_order'))} | {publisher.get('duration_s', 0):.3f} | {fmt(publisher.get('deliveries_per_s'), ',.0f')} "
        f"| {ms(latency, 'p50_us')} | {ms(latency, 'p99_us')} | {ms(latency, 'max_us')} "
        f"| {publisher.get('ending')} | {'ok' if publisher.get('ok') else 'FAILED'} |"
    )
    handshake = publisher.get("handshake")
    print(
        f"\nhandshakes of all connections: p50 {ms(handshake, 'p50_us')} ms · p99 {ms(handshake, 'p99_us')} ms · "
        f"max {ms(handshake, 'max_us')} ms; loader processes' CPU {publisher.get('loader_cpu_s')} s, "
        f"largest loader peak RSS {fmt(publisher.get('loader_peak_rss_kib'))} KiB"
    )
    round_ok = bool(publisher.get("ok"))
    if connections is not None and publisher.get("connected") != connections:
        round_ok = False
        print(f"\n{fmt(publisher.get('connected'))} of {fmt(connections)} connections took part")
    if connections is not None and messages is not None and publisher.get("deliveries") != connections * messages:
        round_ok = False
        print(f"\n{fmt(publisher.get('deliveries'))} deliveries, {fmt(connections * messages)} owed")
    for sample in publisher.get("error_samples") or []:
        print(f"\nerror: {sample}")

print()
print("### Gateways (RSS in KiB; per connection = (held - start) / connections held)")
print()
peaks = {}
try:
    with open(os.path.join(out, "rss-samples.tsv")) as file:
        for line in file:
            parts = line.split()
            if len(parts) == 3:
                gateway, kib = parts[1], number(parts[2]) or 0
                peaks[gateway] = max(peaks.get(gateway, 0), kib)
except OSError:
    pass
print("| gateway | pid | port | connections held | RSS start | RSS held | RSS peak | KiB/conn held | KiB/conn peak |")
print("|---|---|---|---|---|---|---|---|---|")
totals = {"conns": 0, "start": 0, "held": 0, "peak": 0}
for row in read_tsv("gateways.tsv"):
    conns, start, held = number(row["connections_held"]), number(row["rss_start_kib"]), number(row["rss_held_kib"])
    peak = peaks.get(row["gateway"])
    per_held = (held - start) / conns if conns and held is not None and start is not None else None
    per_peak = (peak - start) / conns if conns and peak is not None and start is not None else None
    totals["conns"] += conns or 0
    totals["start"] += start or 0
    totals["held"] += held or 0
    totals["peak"] += peak or 0
    print(
        f"| {row['gateway']} | {row['pid']} | {row['port']} | {fmt(conns)} | {fmt(start)} | {fmt(held)} | {fmt(peak)} "
        f"| {fmt(per_held, '.2f')} | {fmt(per_peak, '.2f')} |"
    )
if totals["conns"]:
    print(
        f"| all | | | {totals['conns']:,} | {totals['start']:,} | {totals['held']:,} | {totals['peak']:,} (sum of peaks) "
        f"| {(totals['held'] - totals['start']) / totals['conns']:.2f} | {(totals['peak'] - totals['start']) / totals['conns']:.2f} |"
    )
try:
    with open(os.path.join(out, "stats.json")) as file:
        stats = json.load(file)
    print(
        f"\ncluster (/api/ws/stats): {fmt(stats.get('active_connections'))} active connections on "
        f"{stats.get('live_gateways')} live gateways"
    )
except (OSError, ValueError):
    pass

overflows = number(params.get("LISTEN_OVERFLOWS"))
if overflows:
    print(
        f"\nnote: {overflows:,} listen-queue overflows on this machine during the connect phase: "
        "those SYNs were dropped and retried after 1 s or more, which shows in the handshake times"
    )

ok = loaders_ok and round_ok
print()
print("OK: every connection received every message" if ok else "FAILED")
sys.exit(0 if ok else 1)
