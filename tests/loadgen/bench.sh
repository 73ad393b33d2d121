#!/usr/bin/env bash
# Runs the benchmark matrix: every scenario against Switchboard (switchboard-gateway on NATS +
# Redis) and against the baseline (nats-server's WebSocket listener), RUNS times each, the
# server pinned to CPU 0 and the loader to CPU 1. Prints a table of medians (with min-max
# spread) and the ratio Switchboard / nats-server, and writes every raw JSON report to
# $OUT. Bounded: every loadgen run has a timeout. Needs nats-server, redis-server, taskset.
#
# usage: tests/loadgen/bench.sh [quick]      (quick: smaller N, one run — a smoke of the script)
#   env: RUNS (3), OUT (target/bench), FANOUT_SIZES ("5000 15000"), IDLE_N (15000),
#        CONNECT_N (15000), BACKEND_CPU (0), SOURCE_IPS (127.0.0.2-9), ROOMS_N (18000: one loader process holds at most ~19,900 sockets), CASES ("fanout latency idle connect rooms")
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
OUT=${OUT:-target/bench}
SECRET=bench-secret-0123456789abcdef0123456789
FANOUT_SIZES=${FANOUT_SIZES:-"5000 15000"}
IDLE_N=${IDLE_N:-15000}
CONNECT_N=${CONNECT_N:-15000}
# CPU of the gateway's NATS and Redis (0: share the gateway's core, the conservative default)
BACKEND_CPU=${BACKEND_CPU:-0}
# Loader source addresses: with one address, every connect() searches the ephemeral ports
# for a free 4-tuple, and past ~14,000 connections that search took half the loader's CPU
# (perf: __inet_hash_connect); eight addresses keep each below ~2,000.
SOURCE_IPS=${SOURCE_IPS:-127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9}
ROOMS_N=${ROOMS_N:-18000}
CASES=${CASES:-"fanout latency idle connect rooms"}
want() { [[ " $CASES " == *" $1 "* ]]; }
if [ "${1:-}" = quick ]; then RUNS=1; FANOUT_SIZES="500"; IDLE_N=500; CONNECT_N=500; ROOMS_N=1000; fi
mkdir -p "$OUT"
cargo build --release -q -p switchboard-gateway -p switchboard-loadgen
GATEWAY=target/release/switchboard-gateway
LOADGEN=target/release/loadgen

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
# Newest first: the gateway goes before its NATS and Redis, so its log shows no outage.
cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT

# start_switchboard: NATS + Redis + gateway on CPU 0; sets SERVER_URL, NATS_URL, SERVER_PID
start_switchboard() {
  local np rp gp; np=$(free_port); rp=$(free_port); gp=$(free_port)
  taskset -c "$BACKEND_CPU" nats-server -a 127.0.0.1 -p "$np" >"$OUT/nats.log" 2>&1 & pids+=($!)
  taskset -c "$BACKEND_CPU" redis-server --bind 127.0.0.1 --port "$rp" --save '' --appendonly no >"$OUT/redis.log" 2>&1 & pids+=($!)
  sleep 0.5
  SWITCHBOARD__BUS__NATS_URL=nats://127.0.0.1:$np SWITCHBOARD__STORE__REDIS_URL=redis://127.0.0.1:$rp \
  SWITCHBOARD__AUTH__HMAC_SECRET=$SECRET SWITCHBOARD__GATEWAY__LISTEN=127.0.0.1:$gp \
  SWITCHBOARD__GATEWAY__CONNECTIONS_PER_USER_PER_MINUTE=100000 SWITCHBOARD__TELEMETRY__LOG_FILTER=warn \
    taskset -c 0 "$GATEWAY" >"$OUT/gateway.log" 2>&1 & SERVER_PID=$!; pids+=($SERVER_PID)
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$gp/readyz" >/dev/null && break; sleep 0.2; done
  SERVER_URL=ws://127.0.0.1:$gp; NATS_URL=nats://127.0.0.1:$np
}

# start_baseline: nats-server with its WebSocket listener on CPU 0
start_baseline() {
  local np wp; np=$(free_port); wp=$(free_port)
  printf 'listen: 127.0.0.1:%s\nwebsocket { listen: "127.0.0.1:%s", no_tls: true }\n' "$np" "$wp" >"$OUT/natsws.conf"
  taskset -c 0 nats-server -c "$OUT/natsws.conf" >"$OUT/natsws.log" 2>&1 & SERVER_PID=$!; pids+=($SERVER_PID)
  sleep 0.5
  SERVER_URL=ws://127.0.0.1:$wp; NATS_URL=nats://127.0.0.1:$np
}

stop_servers() { cleanup; pids=(); }

# run_case NAME TARGET SCENARIO ARGS... : one fresh server per run, JSON to $OUT/NAME.TARGET.RUN.json
run_case() {
  local name=$1 target=$2 scenario=$3; shift 3
  for run in $(seq "$RUNS"); do
    if [ "$target" = switchboard ]; then start_switchboard; else start_baseline; fi
    taskset -c 1 "$LOADGEN" "$scenario" --target "$target" --url "$SERVER_URL" --nats "$NATS_URL" \
      --secret "$SECRET" --server-pid "$SERVER_PID" --source-ips "$SOURCE_IPS" --timeout 300s "$@" \
      >"$OUT/$name.$target.$run.json" 2>"$OUT/$name.$target.$run.log" || echo "  ($name $target run $run reported failures; see $OUT/$name.$target.$run.log)" >&2
    stop_servers
  done
}

if want fanout; then
  for n in $FANOUT_SIZES; do
    run_case "fanout-$n" switchboard fanout --clients "$n" --messages 500 --rate 0
    run_case "fanout-$n" nats-ws fanout --clients "$n" --messages 500 --rate 0
  done
fi
if want latency; then
  run_case latency-5000 switchboard fanout --clients 5000 --messages 200 --rate 20
  run_case latency-5000 nats-ws fanout --clients 5000 --messages 200 --rate 20
fi
if want idle; then
  run_case "idle-$IDLE_N" switchboard idle --clients "$IDLE_N" --duration 30s
  run_case "idle-$IDLE_N" nats-ws idle --clients "$IDLE_N" --duration 30s
fi
if want connect; then
  run_case "connect-$CONNECT_N" switchboard connect-rate --clients "$CONNECT_N" --concurrency 200
  run_case "connect-$CONNECT_N" nats-ws connect-rate --clients "$CONNECT_N" --concurrency 200
fi
if want rooms; then
  # The per-node/per-user shape: ten subscribers per room, messages spread over the rooms.
  rooms=$((ROOMS_N / 10))
  run_case "rooms-$ROOMS_N" switchboard rooms --clients "$ROOMS_N" --rooms "$rooms" --messages "$((rooms * 20))" --rate 0
  run_case "rooms-$ROOMS_N" nats-ws rooms --clients "$ROOMS_N" --rooms "$rooms" --messages "$((rooms * 20))" --rate 0
fi

python3 tests/loadgen/bench_table.py "$OUT"
