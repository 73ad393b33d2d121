#!/usr/bin/env bash
# The scale-out run: GATEWAYS switchboard-gateway processes on ONE nats-server (core NATS, no
# JetStream) and ONE redis-server, CONNECTIONS WebSocket subscribers on one room spread over
# LOADERS `loadgen --role subscriber` processes, then one broadcast round of MESSAGES messages
# from a `loadgen --role publisher` process that must reach every connection with nothing lost.
# Prints per loader process its report and ok/lost, the merged figures of the round, and per
# gateway its RSS and RSS per held connection; writes every file to $OUT. Exits 0 when the run
# was complete (every connection up, nothing lost or duplicated), 1 otherwise.
#
# Topology and choices:
# - Every loader gets `--urls` of ALL gateways and a contiguous `--client-offset`; loadgen sends
#   connection number i (global index) to gateway i % GATEWAYS, so each gateway holds exactly
#   CONNECTIONS/GATEWAYS (±1) connections whatever LOADERS is, and each gateway sees clients
#   from every source address, as behind a round-robin load balancer.
# - Every loader binds its sockets to source addresses of its own (`--source-ips`): loader 0
#   127.0.0.2, loader 1 the next, ... with IPS_PER_LOADER=1. loadgen binds (with SO_REUSEADDR)
#   before connecting, so the ephemeral ports (ip_local_port_range, 28,232 here) are per source
#   address, and the kernel's search for a free port in bind() gets slow as an address fills
#   up: measured here ~10 us per bind up to ~6,000 ports in use on one address, ~1.3 ms from
#   8,000, ~5 ms from 14,000 (system time in the single-threaded loader, which stalls it). So by
#   default each loader gets enough consecutive addresses for <= 4,000 connections each
#   (100,000 over 6 loaders: 5 addresses each, 127.0.0.2-127.0.0.31); IPS_PER_LOADER=1 gives
#   one address per loader.
# - File limits (20,000 per process here, raised to the hard limit below): a loader may hold at
#   most 19,000 connections (loadgen refuses more), a gateway at most its max_connections
#   (19,500 by default, set explicitly below); 100,000 therefore needs >= 6 loaders and >= 6
#   gateways. nats-server and redis-server only hold the gateways' and loaders' own
#   connections, never the WebSocket clients.
# - Subscribers close their connections as soon as the round is complete (coord.rs:
#   fleet.finish() before the result is reported). So the script waits until every subscriber
#   logged "ready" (all its connections set up and subscribed; it then repeats `ready` over
#   NATS until the publisher says `start`), lets them settle SETTLE seconds, reads every
#   gateway's VmRSS and `switchboard_gateway_connections_active` (the "held" figures), and only
#   then starts the publisher. A background sampler also reads every gateway's VmRSS every
#   0.5 s from its start to the end of the run, for the peak (connect phase and round included).
#   RSS per connection = (held RSS - RSS right after the gateway became ready) / connections
#   it held.
# - No CPU pinning: the machine has 2 cores and 1 + 1 + GATEWAYS + LOADERS + 1 processes share
#   them, so the round's duration and rates are the whole machine's, not one gateway's.
# - Nothing is built here (the machine may be busy with someone else's build): it runs
#   target/release/{switchboard-gateway,loadgen}; build them first with
#   `cargo build --release -p switchboard-gateway -p switchboard-loadgen`.
# - Bounded: every loadgen has --timeout TIMEOUT and runs under timeout(1); waiting for the
#   subscribers to be ready (<= TIMEOUT) and to end (<= 60 s after the publisher) is bounded
#   too, so a run stops by itself within about 2 x TIMEOUT + 2 min; a trap stops every
#   process this script started (loaders and gateways first, then NATS and Redis).
#
# usage: tests/loadgen/scaleout.sh
#   env: GATEWAYS (6), CONNECTIONS (100000), LOADERS (6), MESSAGES (10), RATE (0 = as fast as
#        possible), OUT (target/scaleout), TIMEOUT (seconds per loadgen process, 600),
#        SETTLE (seconds between "all ready" and the held RSS reading, 2), CONCURRENCY
#        (handshakes in flight per loader, 200), CONNECT_TIMEOUT (seconds per handshake, 30),
#        IPS_PER_LOADER (source addresses per loader; default: enough for <= 4,000 connections
#        each), LOADER_THREADS (1), GATEWAY_THREADS (0 = one per core),
#        GATEWAY_MAX_CONNECTIONS (19500), GATEWAY_BIN, LOADGEN_BIN
#   e.g. GATEWAYS=3 CONNECTIONS=3000 LOADERS=3 tests/loadgen/scaleout.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then hard=$(cat /proc/sys/fs/nr_open); fi
ulimit -n "$hard"
NOFILE=$(ulimit -n)

GATEWAYS=${GATEWAYS:-6}
CONNECTIONS=${CONNECTIONS:-100000}
LOADERS=${LOADERS:-6}
MESSAGES=${MESSAGES:-10}
RATE=${RATE:-0}
OUT=${OUT:-target/scaleout}
TIMEOUT=${TIMEOUT:-600}
SETTLE=${SETTLE:-2}
CONCURRENCY=${CONCURRENCY:-200}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-30}
PER_ADDRESS=4000 # connections per source address for the default IPS_PER_LOADER
LOADER_THREADS=${LOADER_THREADS:-1}
GATEWAY_THREADS=${GATEWAY_THREADS:-0}
GATEWAY_MAX_CONNECTIONS=${GATEWAY_MAX_CONNECTIONS:-19500}
GATEWAY_BIN=${GATEWAY_BIN:-target/release/switchboard-gateway}
LOADGEN_BIN=${LOADGEN_BIN:-target/release/loadgen}
SECRET=scaleout-secret-0123456789abcdef0123456789
RUN_ID=scaleout-$$-$(date +%s)
LOADER_CAP=19000 # loadgen's own --clients limit

die() { echo "scaleout: $*" >&2; exit 2; }
for bin in "$GATEWAY_BIN" "$LOADGEN_BIN"; do
  [ -x "$bin" ] || die "$bin missing; build it: cargo build --release -p switchboard-gateway -p switchboard-loadgen"
done
for tool in nats-server redis-server curl python3 timeout; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
if [ "$GATEWAYS" -lt 1 ] || [ "$LOADERS" -lt 1 ]; then die "need GATEWAYS >= 1 and LOADERS >= 1"; fi
per_loader=$(((CONNECTIONS + LOADERS - 1) / LOADERS))
IPS_PER_LOADER=${IPS_PER_LOADER:-$(((per_loader + PER_ADDRESS - 1) / PER_ADDRESS))}
[ "$IPS_PER_LOADER" -ge 1 ] || IPS_PER_LOADER=1
[ $((LOADERS * IPS_PER_LOADER)) -le 253 ] || die "LOADERS x IPS_PER_LOADER = $((LOADERS * IPS_PER_LOADER)) > 253 addresses 127.0.0.2-254"
per_address=$(((per_loader + IPS_PER_LOADER - 1) / IPS_PER_LOADER))
per_gateway=$(((CONNECTIONS + GATEWAYS - 1) / GATEWAYS))
read -r port_low port_high </proc/sys/net/ipv4/ip_local_port_range
ports=$((port_high - port_low + 1))
[ "$per_loader" -le "$LOADER_CAP" ] || die "$per_loader connections per loader > $LOADER_CAP (loadgen's limit): raise LOADERS"
[ "$per_loader" -le $((NOFILE - 200)) ] || die "$per_loader connections per loader do not fit the file limit $NOFILE: raise LOADERS"
[ "$per_address" -le "$ports" ] || die "$per_address connections per source address > $ports ephemeral ports: raise IPS_PER_LOADER"
[ "$per_gateway" -le "$GATEWAY_MAX_CONNECTIONS" ] || die "$per_gateway connections per gateway > max_connections $GATEWAY_MAX_CONNECTIONS: raise GATEWAYS"
[ "$per_gateway" -le $((NOFILE - 200)) ] || die "$per_gateway connections per gateway do not fit the file limit $NOFILE: raise GATEWAYS"

mkdir -p "$OUT"
rm -f "$OUT"/loader-*.json "$OUT"/loader-*.log "$OUT"/gateway-*.log "$OUT"/publisher.json "$OUT"/publisher.log \
  "$OUT"/gateways.tsv "$OUT"/loaders.tsv "$OUT"/rss-samples.tsv "$OUT"/run.env "$OUT"/stats.json "$OUT"/nats.log "$OUT"/redis.log

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { # VmRSS of PID in KiB, 0 when gone; no fork
  local key value _
  while read -r key value _; do
    if [ "$key" = VmRSS: ]; then echo "$value"; return; fi
  done 2>/dev/null <"/proc/$1/status" || true
  echo 0
}
listen_overflows() { # the machine's TcpExt ListenOverflows: SYNs dropped because an accept queue was full
  awk '/^TcpExt:/ { if (!seen) { for (i = 1; i <= NF; i++) name[i] = $i; seen = 1 }
                    else { for (i = 1; i <= NF; i++) if (name[i] == "ListenOverflows") print $i } }' /proc/net/netstat 2>/dev/null || echo 0
}
active_connections() { # switchboard_gateway_connections_active of the gateway on PORT, empty on failure
  curl -sf --max-time 5 "http://127.0.0.1:$1/metrics" | awk '$1 == "switchboard_gateway_connections_active" { print $2 }' || true
}

pids=()
sampler_pid=
# Loaders and gateways first (a gateway drains within its drain_timeout, 10 s), then NATS and
# Redis, so the gateways' logs show no bus or store errors of the shutdown.
infra_pids=()
cleanup() {
  local pid
  for pid in "$sampler_pid" "${pids[@]:-}"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
  for _ in $(seq 60); do
    local alive=0
    for pid in "${pids[@]:-}"; do
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    [ "$alive" = 0 ] && break
    sleep 0.25
  done
  for pid in "${pids[@]:-}"; do
    if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  for pid in "${infra_pids[@]:-}"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One NATS and one Redis for every gateway.
nats_port=$(free_port); redis_port=$(free_port)
nats-server -a 127.0.0.1 -p "$nats_port" >"$OUT/nats.log" 2>&1 & infra_pids+=($!)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >"$OUT/redis.log" 2>&1 & infra_pids+=($!)
NATS_URL=nats://127.0.0.1:$nats_port
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
  sleep 0.1
done

gw_pid=(); gw_port=(); gw_rss_start=(); urls=()
for g in $(seq 0 $((GATEWAYS - 1))); do
  port=$(free_port)
  SWITCHBOARD__BUS__NATS_URL=$NATS_URL SWITCHBOARD__STORE__REDIS_URL=redis://127.0.0.1:$redis_port \
  SWITCHBOARD__AUTH__HMAC_SECRET=$SECRET SWITCHBOARD__GATEWAY__LISTEN=127.0.0.1:$port \
  SWITCHBOARD__GATEWAY__CONNECTIONS_PER_USER_PER_MINUTE=100000 SWITCHBOARD__TELEMETRY__LOG_FILTER=warn \
  SWITCHBOARD__GATEWAY__MAX_CONNECTIONS=$GATEWAY_MAX_CONNECTIONS SWITCHBOARD__GATEWAY__WORKER_THREADS=$GATEWAY_THREADS \
    "$GATEWAY_BIN" >"$OUT/gateway-$g.log" 2>&1 & pids+=($!)
  gw_pid[g]=$!; gw_port[g]=$port; urls+=("ws://127.0.0.1:$port")
done
for g in $(seq 0 $((GATEWAYS - 1))); do
  ready=
  for _ in $(seq 100); do
    if curl -sf --max-time 2 "http://127.0.0.1:${gw_port[g]}/readyz" >/dev/null; then ready=1; break; fi
    kill -0 "${gw_pid[g]}" 2>/dev/null || break
    sleep 0.2
  done
  [ -n "$ready" ] || die "gateway $g (port ${gw_port[g]}) not ready; see $OUT/gateway-$g.log"
done
for g in $(seq 0 $((GATEWAYS - 1))); do gw_rss_start[g]=$(rss_kib "${gw_pid[g]}"); done
URLS=$(IFS=,; echo "${urls[*]}")
echo "scaleout: $GATEWAYS gateways (${gw_port[*]}), nats :$nats_port, redis :$redis_port; $CONNECTIONS connections over $LOADERS loaders (≤ $per_loader each from $IPS_PER_LOADER source address(es), ≤ $per_gateway per gateway), file limit $NOFILE" >&2

# Every gateway's VmRSS every 0.5 s until the end: "seconds gateway kib" lines.
(
  while :; do
    now=$(date +%s.%N)
    for g in "${!gw_pid[@]}"; do echo "$now $g $(rss_kib "${gw_pid[g]}")"; done
    sleep 0.5
  done >"$OUT/rss-samples.tsv"
) & sampler_pid=$!

overflows_before=$(listen_overflows)
# The subscriber processes: loader k holds connections [offset, offset + clients).
loader_pid=(); loader_ip=(); loader_source=(); loader_offset=(); loader_clients=()
offset=0
for k in $(seq 0 $((LOADERS - 1))); do
  clients=$((CONNECTIONS / LOADERS + (k < CONNECTIONS % LOADERS ? 1 : 0)))
  first_ip=$((2 + k * IPS_PER_LOADER)); last_ip=$((first_ip + IPS_PER_LOADER - 1))
  loader_ip[k]=$(seq -s, -f '127.0.0.%.0f' "$first_ip" "$last_ip")
  loader_source[k]=127.0.0.$first_ip; [ "$last_ip" = "$first_ip" ] || loader_source[k]+="-$last_ip"
  loader_offset[k]=$offset; loader_clients[k]=$clients
  timeout -k 10 $((TIMEOUT + 30)) "$LOADGEN_BIN" fanout --role subscriber --run-id "$RUN_ID" \
    --urls "$URLS" --nats "$NATS_URL" --secret "$SECRET" --source-ips "${loader_ip[k]}" \
    --clients "$clients" --client-offset "$offset" --messages "$MESSAGES" --rate "$RATE" \
    --concurrency "$CONCURRENCY" --connect-timeout "${CONNECT_TIMEOUT}s" --threads "$LOADER_THREADS" --timeout "${TIMEOUT}s" \
    >"$OUT/loader-$k.json" 2>"$OUT/loader-$k.log" & pids+=($!)
  loader_pid[k]=$!
  offset=$((offset + clients))
done

# Wait until every subscriber is ready (or gone), bounded by TIMEOUT.
started=$SECONDS; started_at=$EPOCHREALTIME; next_progress=$((SECONDS + 5)); all_ready=
while [ $((SECONDS - started)) -lt "$TIMEOUT" ]; do
  waiting=0; gone=0
  for k in "${!loader_pid[@]}"; do
    grep -q 'ready, waiting for start' "$OUT/loader-$k.log" 2>/dev/null && continue
    if kill -0 "${loader_pid[k]}" 2>/dev/null; then waiting=$((waiting + 1)); else gone=$((gone + 1)); fi
  done
  if [ "$gone" -gt 0 ]; then echo "scaleout: $gone loader(s) exited before they were ready; see $OUT/loader-*.log" >&2; break; fi
  if [ "$waiting" -eq 0 ]; then all_ready=1; break; fi
  if [ "$SECONDS" -ge "$next_progress" ]; then
    total=0
    for g in "${!gw_port[@]}"; do total=$((total + $(active_connections "${gw_port[g]}" || true) + 0)); done
    echo "scaleout: $((SECONDS - started)) s: $total of $CONNECTIONS connections open, $waiting loader(s) still connecting" >&2
    next_progress=$((SECONDS + 5))
  fi
  sleep 0.5
done
overflows=$(($(listen_overflows) - overflows_before))
connect_s=$(python3 -c "print(f'{$EPOCHREALTIME - $started_at:.1f}')")

# The held figures, while every connection is open and before anything is published.
gw_rss_held=(); gw_conns=()
if [ -n "$all_ready" ]; then
  sleep "$SETTLE"
  for g in "${!gw_pid[@]}"; do
    gw_rss_held[g]=$(rss_kib "${gw_pid[g]}")
    gw_conns[g]=$(active_connections "${gw_port[g]}")
  done
  curl -sf --max-time 5 "http://127.0.0.1:${gw_port[0]}/api/ws/stats" >"$OUT/stats.json" || true
  echo "scaleout: all $LOADERS loaders ready after ${connect_s} s; publishing $MESSAGES message(s)" >&2
  publisher_rc=0
  timeout -k 10 $((TIMEOUT + 30)) "$LOADGEN_BIN" fanout --role publisher --run-id "$RUN_ID" \
    --expect-subscribers "$LOADERS" --nats "$NATS_URL" --messages "$MESSAGES" --rate "$RATE" \
    --timeout "${TIMEOUT}s" >"$OUT/publisher.json" 2>"$OUT/publisher.log" || publisher_rc=$?
else
  echo "scaleout: not every loader was ready within ${TIMEOUT} s; no broadcast" >&2
  publisher_rc=skipped
  for k in "${!loader_pid[@]}"; do kill "${loader_pid[k]}" 2>/dev/null || true; done
fi

# The subscribers end by themselves once the publisher has their results; one still running
# a minute after the publisher ended is waiting for a `start` or `done` that never comes.
grace_end=$((SECONDS + 60))
while [ "$SECONDS" -lt "$grace_end" ]; do
  running=0
  for k in "${!loader_pid[@]}"; do kill -0 "${loader_pid[k]}" 2>/dev/null && running=$((running + 1)); done
  [ "$running" -eq 0 ] && break
  sleep 0.5
done
loader_rc=()
for k in "${!loader_pid[@]}"; do
  if kill -0 "${loader_pid[k]}" 2>/dev/null; then
    echo "scaleout: loader $k still running after the round; stopping it" >&2
    kill "${loader_pid[k]}" 2>/dev/null || true
  fi
  rc=0; wait "${loader_pid[k]}" || rc=$?
  loader_rc[k]=$rc
done
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=

{
  printf 'gateway\tpid\tport\trss_start_kib\trss_held_kib\tconnections_held\n'
  for g in "${!gw_pid[@]}"; do
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$g" "${gw_pid[g]}" "${gw_port[g]}" "${gw_rss_start[g]}" "${gw_rss_held[g]:-}" "${gw_conns[g]:-}"
  done
} >"$OUT/gateways.tsv"
{
  printf 'loader\tsource_ip\tclient_offset\tclients\texit_code\treport\n'
  for k in "${!loader_pid[@]}"; do
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$k" "${loader_source[k]}" "${loader_offset[k]}" "${loader_clients[k]}" "${loader_rc[k]}" "$OUT/loader-$k.json"
  done
} >"$OUT/loaders.tsv"
cat >"$OUT/run.env" <<EOF
GATEWAYS=$GATEWAYS
CONNECTIONS=$CONNECTIONS
LOADERS=$LOADERS
IPS_PER_LOADER=$IPS_PER_LOADER
MESSAGES=$MESSAGES
RATE=$RATE
CONNECT_S=$connect_s
LISTEN_OVERFLOWS=$overflows
PUBLISHER_EXIT=$publisher_rc
PUBLISHER_REPORT=$OUT/publisher.json
NOFILE=$NOFILE
EOF

python3 tests/loadgen/scaleout_table.py "$OUT"
