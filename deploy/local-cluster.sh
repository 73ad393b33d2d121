#!/usr/bin/env bash
# A Switchboard cluster as local processes, no containers:
#
#   deploy/local-cluster.sh up       start nats-server -js, redis-server, N gateways, publisher,
#                                    aggregator, batch-ingest, device-reader (DEMO=1: agents, an ML
#                                    node and two mock devices too),
#                                    wait until every one is ready, write STATE_DIR/cluster.env
#   deploy/local-cluster.sh status   each process alive or dead, and its /healthz (and /readyz)
#   deploy/local-cluster.sh down     SIGTERM by PID, bounded wait, then SIGKILL; logs are kept
#
# Environment (relative paths are taken from the repository root):
#   GATEWAYS=2            gateway processes, each on its own port (clients pick a URL)
#   BASE_PORT=            first of a block of 10+GATEWAYS loopback ports (layout below);
#                         unset: a free block between 20000 and 32000 is picked
#   STATE_DIR=target/local-cluster   logs/, pids/, nats/ (JetStream), redis/, cluster.env
#   BIN_DIR=target/release           where the switchboard-* binaries are; built with cargo when
#                                    missing (--release for target/release), or always with BUILD=1
#   DEMO=0                1: DEMO_AGENTS (3) switchboard-agent processes (each signs its own node
#                         token with the cluster's HMAC secret) and one switchboard-mlnode-sim
#                         registered with batch-ingest (POST /v1/nodes); the device reader
#                         reads two mock devices, demo-opm-1 (modules 1 and 2, every 500 ms) and
#                         demo-opm-2 (module 1, every second), from STATE_DIR/device-reader.toml
#                         (device tables are file only), rooms devices.<id>.m<module>
#   UP_TIMEOUT=60         seconds `up` waits for every process to be ready
#   STOP_TIMEOUT=15       seconds `down` waits after SIGTERM (per stage) before SIGKILL
#   SWITCHBOARD_HMAC_SECRET, SWITCHBOARD_API_KEY   reused when set (else
#                         SWITCHBOARD__AUTH__HMAC_SECRET / __API_KEY), generated otherwise
#   SWITCHBOARD__*        any other setting, passed to every process (e.g.
#                         SWITCHBOARD__TELEMETRY__LOG_FORMAT=pretty); SWITCHBOARD_CONFIG is ignored
#
# Ports, from BASE_PORT: +0 NATS, +1 NATS monitoring, +2 Redis, +3 publisher admin,
# +4 aggregator admin, +5 batch-ingest, +6 ML node simulator, +7 device-reader (management API,
# /metrics, /healthz, /readyz), +10... gateways.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

GATEWAYS=${GATEWAYS:-2}
DEMO=${DEMO:-0}
DEMO_AGENTS=${DEMO_AGENTS:-3}
UP_TIMEOUT=${UP_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-15}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
absolute() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s' "$ROOT/$1" ;; esac; }
STATE_DIR=$(absolute "${STATE_DIR:-target/local-cluster}")
BIN_DIR=$(absolute "${BIN_DIR:-$TARGET_DIR/release}")
LOG_DIR=$STATE_DIR/logs
PID_DIR=$STATE_DIR/pids
MANIFEST=$STATE_DIR/cluster.procs
ENV_FILE=$STATE_DIR/cluster.env
REDIS_CLI=$(command -v redis-cli || echo /usr/bin/redis-cli)
# Never collide with the NATS, Redis and gateway defaults a developer may be running.
RESERVED_PORTS=" 4222 6379 8000 8222 "

SERVICE_BINARIES=(switchboard-gateway switchboard-publisher switchboard-aggregator switchboard-batch-ingest
  switchboard-device-reader)
DEMO_BINARIES=(switchboard-agent switchboard-mlnode-sim)

die() { echo "local-cluster: $*" >&2; exit 1; }
say() { echo "local-cluster: $*" >&2; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
since() { local ms=$(($(now_ms) - $1)); printf '%d.%03ds' $((ms / 1000)) $((ms % 1000)); }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ---------------------------------------------------------------- processes and PID files

# pid_of NAME: the PID recorded for NAME, or nothing.
pid_of() { [ -f "$PID_DIR/$1.pid" ] && head -n1 "$PID_DIR/$1.pid" || true; }

# alive PID BINARY: the PID runs BINARY (so a reused PID is never signalled) and is no zombie.
alive() {
  local pid=$1 binary=$2 argv0="" state=""
  is_uint "$pid" || return 1
  { IFS= read -r -d '' argv0 <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
  argv0=${argv0%% *} # redis-server rewrites its title to "redis-server host:port"
  [ "${argv0##*/}" = "$binary" ] || return 1
  state=$(awk '$1 == "State:" { print $2 }' "/proc/$pid/status" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

# Manifest lines: NAME BINARY URL PROBE (PROBE: http://…/readyz, redis://host:port,
# tcp://host:port, agents://host:port).
manifest_lines() { [ -f "$MANIFEST" ] && grep -v '^#' "$MANIFEST" || true; }

alive_count() {
  local count=0 name binary url probe
  while read -r name binary url probe; do
    [ -n "$name" ] || continue
    if alive "$(pid_of "$name")" "$binary"; then count=$((count + 1)); fi
  done < <(manifest_lines)
  echo "$count"
}

# tail_log NAME [LINES]: the end of NAME's log since the last `up` (logs are appended to).
tail_log() {
  local name=$1 lines=${2:-30}
  echo "----- $LOG_DIR/$name.log (last $lines lines of this run) -----" >&2
  if [ -f "$LOG_DIR/$name.log" ]; then
    awk '/^==== local-cluster up / { n = 0 } { kept[n++] = $0 } END { for (i = 0; i < n; i++) print kept[i] }' \
      "$LOG_DIR/$name.log" | tail -n "$lines" >&2
  else
    echo "(no log)" >&2
  fi
  echo "-----" >&2
}

# ---------------------------------------------------------------- probes

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time "${2:-2}" "$1" 2>/dev/null || true; }

# probe PROBE: succeeds when the process answers as ready.
probe() {
  local address=${1#*://}
  case $1 in
    http://*) [ "$(http_code "$1")" = 200 ] ;;
    redis://*) [ "$(timeout 2 "$REDIS_CLI" -h "${address%:*}" -p "${address##*:}" ping 2>/dev/null)" = PONG ] ;;
    tcp://*) (exec 3<>"/dev/tcp/${address%:*}/${address##*:}") 2>/dev/null ;;
    agents://*)
      # Agents have no listener: ready once the gateway at host:port counts every demo agent
      # among the cluster's connections.
      local active
      active=$(curl -s --max-time 2 "http://$address/api/ws/stats" | sed -n 's/.*"active_connections":\([0-9]*\).*/\1/p')
      [ "${active:-0}" -ge "$DEMO_AGENTS" ]
      ;;
    *) return 1 ;;
  esac
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- status

cmd_status() {
  [ -f "$MANIFEST" ] || { echo "no local cluster in $STATE_DIR"; return 3; }
  local name binary url probe pid state health code bad=0 live=0
  printf '%-14s %-8s %-7s %-38s %s\n' NAME PID STATE ADDRESS HEALTH
  while read -r name binary url probe; do
    [ -n "$name" ] || continue
    pid=$(pid_of "$name")
    if alive "$pid" "$binary"; then
      state=alive
      live=$((live + 1))
    elif [ -n "$pid" ]; then
      state=dead # crashed or killed behind our back: the PID file is still there
      bad=1
    else
      state=stopped
    fi
    health=-
    if [ "$state" = alive ]; then
      case $probe in
        http://*)
          code=$(http_code "${probe%/*}/healthz")
          health="/healthz $code"
          [ "$code" = 200 ] || bad=1
          if [ "${probe##*/}" = readyz ]; then
            code=$(http_code "$probe")
            health="$health, /readyz $code"
            [ "$code" = 200 ] || bad=1
          fi
          ;;
        redis://*) if probe "$probe"; then health="PING ok"; else health="PING failed"; bad=1; fi ;;
        tcp://*) if probe "$probe"; then health="port open"; else health="port closed"; bad=1; fi ;;
      esac
    fi
    printf '%-14s %-8s %-7s %-38s %s\n' "$name" "${pid:--}" "$state" "$url" "$health"
  done < <(manifest_lines)
  if [ "$live" = 0 ] && [ "$bad" = 0 ]; then echo "not running (logs in $LOG_DIR)"; return 3; fi
  [ -f "$ENV_FILE" ] && echo "environment: source $ENV_FILE"
  return "$bad"
}

# ---------------------------------------------------------------- down

# reap DEADLINE_MS STARTED_MS: waits until every STOPPING entry ("NAME PID BINARY") has exited
# or DEADLINE_MS has passed; removes the PID files of the exited ones from STOPPING.
reap() {
  local entry name pid binary
  local -a left
  while :; do
    left=()
    for entry in "${STOPPING[@]}"; do
      read -r name pid binary <<<"$entry"
      if alive "$pid" "$binary"; then
        left+=("$entry")
      else
        say "stopped $name (pid $pid) in $(since "$2")"
        rm -f "$PID_DIR/$name.pid"
      fi
    done
    STOPPING=("${left[@]}")
    if [ ${#STOPPING[@]} -eq 0 ] || [ "$(now_ms)" -ge "$1" ]; then return 0; fi
    sleep 0.1
  done
}

# stop_stage NAME...: SIGTERM to each live process, wait up to STOP_TIMEOUT, SIGKILL the rest.
stop_stage() {
  local name binary pid started entry
  STOPPING=()
  for name in "$@"; do
    binary=$(manifest_lines | awk -v n="$name" '$1 == n { print $2 }')
    pid=$(pid_of "$name")
    if alive "$pid" "$binary"; then
      kill -TERM "$pid" 2>/dev/null || true
      STOPPING+=("$name $pid $binary")
    else
      rm -f "$PID_DIR/$name.pid"
    fi
  done
  started=$(now_ms)
  reap $((started + STOP_TIMEOUT * 1000)) "$started"
  for entry in "${STOPPING[@]}"; do
    read -r name pid binary <<<"$entry"
    say "$name (pid $pid) still running after ${STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  done
  reap $(($(now_ms) + 5000)) "$started"
  for entry in "${STOPPING[@]}"; do
    read -r name pid binary <<<"$entry"
    say "$name (pid $pid) survived SIGKILL"
  done
}

# Clients first (so agents do not reconnect to a draining gateway), then the services while the
# bus and store are still there for their drain, then NATS and Redis.
cmd_down() {
  if [ ! -f "$MANIFEST" ]; then echo "no local cluster in $STATE_DIR: nothing to stop"; return 0; fi
  if [ "$(alive_count)" = 0 ]; then
    rm -f "$PID_DIR"/*.pid
    echo "local cluster in $STATE_DIR is not running; logs are in $LOG_DIR"
    return 0
  fi
  local started stage names
  started=$(now_ms)
  for stage in 'agent-|mlnode-sim' 'gateway-|publisher|aggregator|batch-ingest|device-reader' 'nats|redis'; do
    names=$(manifest_lines | awk '{ print $1 }' | grep -E "^($stage)" || true)
    # shellcheck disable=SC2086 # names are single words
    [ -z "$names" ] || stop_stage $names
  done
  if [ "$(alive_count)" != 0 ]; then die "some processes could not be stopped (see status)"; fi
  echo "local cluster stopped in $(since "$started"); logs kept in $LOG_DIR"
}

# ---------------------------------------------------------------- up

find_tools() {
  command -v curl >/dev/null 2>&1 || die "needs curl (apt-get install curl)"
  # nats-server may be in /usr/sbin, which a user's PATH can lack.
  if ! PATH=$PATH:/usr/sbin command -v nats-server >/dev/null || ! command -v redis-server >/dev/null; then
    say "nats-server or redis-server missing: installing them (scripts/lib/deps.sh)"
    # shellcheck source=../scripts/lib/deps.sh
    source "$ROOT/scripts/lib/deps.sh"
    ensure_test_services
  fi
  NATS_SERVER=$(PATH=$PATH:/usr/sbin command -v nats-server) && REDIS_SERVER=$(command -v redis-server) ||
    die "nats-server or redis-server still missing"
  [ -x "$REDIS_CLI" ] || die "needs redis-cli (apt-get install redis-tools)"
}

# ensure_binaries BINARY...: builds the missing ones (all of them with BUILD=1).
ensure_binaries() {
  local -a packages=()
  local binary
  for binary in "$@"; do
    # Each binary's package has the binary's name.
    if [ "${BUILD:-0}" = 1 ] || [ ! -x "$BIN_DIR/$binary" ]; then packages+=(-p "$binary"); fi
  done
  [ ${#packages[@]} -gt 0 ] || return 0
  case $BIN_DIR in
    "$TARGET_DIR/release") say "building ${packages[*]} (release)"; cargo build --release "${packages[@]}" >&2 ;;
    "$TARGET_DIR/debug") say "building ${packages[*]} (debug)"; cargo build "${packages[@]}" >&2 ;;
    *) die "$BIN_DIR lacks ${packages[*]//-p /}; build them or point BIN_DIR at target/release or target/debug" ;;
  esac
  for binary in "$@"; do [ -x "$BIN_DIR/$binary" ] || die "$BIN_DIR/$binary missing after the build"; done
}

choose_ports() {
  local block=$((10 + GATEWAYS)) base tries taken=""
  # block_free BASE: no port of the block is reserved or in use; else says which in `taken`.
  block_free() {
    local p
    for ((p = $1; p < $1 + block; p++)); do
      case $RESERVED_PORTS in *" $p "*) taken="$p, reserved for a developer's own NATS/Redis/gateway"; return 1 ;; esac
      if port_taken "$p"; then taken="$p, in use"; return 1; fi
    done
  }
  if [ -n "${BASE_PORT:-}" ]; then
    is_uint "$BASE_PORT" && [ "$BASE_PORT" -ge 1024 ] && [ $((BASE_PORT + block)) -le 65535 ] ||
      die "BASE_PORT=$BASE_PORT: need a number from 1024 to $((65535 - block))"
    block_free "$BASE_PORT" || die "BASE_PORT=$BASE_PORT: ports $BASE_PORT-$((BASE_PORT + block - 1)) include $taken"
    base=$BASE_PORT
  else
    # Below the kernel's ephemeral range (32768+), so outgoing connections do not take them.
    for ((tries = 0; tries < 100; tries++)); do
      base=$((20000 + (RANDOM % ((32000 - 20000 - block) / 10)) * 10))
      if block_free "$base"; then break; fi
      base=""
    done
    [ -n "$base" ] || die "found no free block of $block ports between 20000 and 32000; set BASE_PORT"
  fi
  NATS_PORT=$base NATS_MONITOR_PORT=$((base + 1)) REDIS_PORT=$((base + 2))
  PUBLISHER_PORT=$((base + 3)) AGGREGATOR_PORT=$((base + 4)) BATCH_INGEST_PORT=$((base + 5))
  MLNODE_PORT=$((base + 6)) DEVICE_READER_PORT=$((base + 7)) GATEWAY_BASE_PORT=$((base + 10))
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# mint_token CLAIMS_JSON: an HS256 JWT signed with the cluster's secret (openssl), or nothing.
mint_token() {
  command -v openssl >/dev/null 2>&1 || return 0
  local header payload signature
  header=$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url)
  payload=$(printf '%s' "$1" | b64url)
  signature=$(printf '%s.%s' "$header" "$payload" |
    openssl dgst -sha256 -mac HMAC -macopt "key:$HMAC_SECRET" -binary | b64url)
  printf '%s.%s.%s' "$header" "$payload" "$signature"
}

choose_secrets() {
  HMAC_SECRET=${SWITCHBOARD_HMAC_SECRET:-${SWITCHBOARD__AUTH__HMAC_SECRET:-}}
  API_KEY=${SWITCHBOARD_API_KEY:-${SWITCHBOARD__AUTH__API_KEY:-}}
  [ -n "$HMAC_SECRET" ] || HMAC_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
  [ -n "$API_KEY" ] || API_KEY=$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')
  [ ${#HMAC_SECRET} -ge 32 ] || die "the HMAC secret must be at least 32 bytes"
}

# launch NAME BINARY_PATH URL PROBE [VAR=value...] [-- ARGS...]: starts one process in its own
# session, output appended to its log, PID in pids/NAME.pid, a line in the manifest.
launch() {
  local name=$1 path=$2 url=$3 probe=$4 binary
  shift 4
  local -a settings=() args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do settings+=("$1"); shift; done
  [ $# -eq 0 ] || { shift; args=("$@"); }
  binary=$(basename -- "$path")
  local log=$LOG_DIR/$name.log
  printf '==== local-cluster up %s: %s %s\n' "$(date -u +%FT%TZ)" "$path" "${args[*]}" >>"$log"
  # setsid: out of the terminal's process group, so ^C in the shell that ran `up` does not
  # reach it; it is not a group leader here, so setsid execs in place and $! is the PID.
  env "${settings[@]}" setsid "$path" "${args[@]}" >>"$log" 2>&1 </dev/null 9>&- &
  local pid=$! deadline=$(($(now_ms) + 2000))
  echo "$pid" >"$PID_DIR/$name.pid"
  echo "$name $binary $url $probe" >>"$MANIFEST"
  STARTED+=("$name")
  # env and setsid exec in place; until they have, alive() (which checks the binary's name)
  # would take the process for a dead one.
  while ! alive "$pid" "$binary" && [ -e "/proc/$pid" ] && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.01; done
}

# wait_ready NAME...: until every named process answers its probe; fails at once when one dies,
# and at UP_TIMEOUT, printing the tail of the log of each one at fault.
wait_ready() {
  local started name binary url probe deadline pending
  started=$(now_ms)
  deadline=$((started + UP_TIMEOUT * 1000))
  local -a waiting=("$@")
  while :; do
    pending=()
    for name in "${waiting[@]}"; do
      read -r _ binary url probe < <(manifest_lines | awk -v n="$name" '$1 == n')
      if ! alive "$(pid_of "$name")" "$binary"; then
        say "$name exited during start-up"
        tail_log "$name"
        return 1
      fi
      if probe "$probe"; then
        say "$name ready ($url) after $(since "$started")"
      else
        pending+=("$name")
      fi
    done
    [ ${#pending[@]} -gt 0 ] || return 0
    waiting=("${pending[@]}")
    if [ "$(now_ms)" -ge "$deadline" ]; then
      say "not ready after ${UP_TIMEOUT}s: ${waiting[*]}"
      for name in "${waiting[@]}"; do tail_log "$name"; done
      return 1
    fi
    sleep 0.2
  done
}

# Stops what a failed or interrupted `up` started; the logs stay.
abort_up() {
  local status=$?
  [ "$UP_DONE" = 1 ] && return 0
  trap - EXIT INT TERM
  if [ ${#STARTED[@]} -gt 0 ]; then
    say "up failed: stopping the ${#STARTED[@]} processes it started (logs kept in $LOG_DIR)"
    STOP_TIMEOUT=5 cmd_down >/dev/null 2>&1 || true
  fi
  exit $((status == 0 ? 1 : status))
}

cmd_up() {
  is_uint "$GATEWAYS" && [ "$GATEWAYS" -ge 1 ] || die "GATEWAYS=$GATEWAYS: need a number of at least 1"
  is_uint "$UP_TIMEOUT" && is_uint "$STOP_TIMEOUT" && is_uint "$DEMO_AGENTS" || die "UP_TIMEOUT, STOP_TIMEOUT and DEMO_AGENTS are numbers"
  mkdir -p "$LOG_DIR" "$PID_DIR" "$STATE_DIR/nats" "$STATE_DIR/redis"
  exec 9>"$STATE_DIR/.lock"
  flock -n 9 || die "another local-cluster.sh is working on $STATE_DIR"
  local running
  running=$(alive_count)
  if [ "$running" != 0 ]; then
    echo "local cluster already running in $STATE_DIR ($running processes alive):" >&2
    cmd_status >&2 || true
    die "run \`$0 down\` first (or use another STATE_DIR)"
  fi
  local started binary output
  local -a binaries=("${SERVICE_BINARIES[@]}")
  [ "$DEMO" = 1 ] && binaries+=("${DEMO_BINARIES[@]}")
  started=$(now_ms)
  find_tools
  ensure_binaries "${binaries[@]}"
  choose_ports
  choose_secrets
  rm -f "$PID_DIR"/*.pid "$ENV_FILE" "$STATE_DIR/device-reader.toml"
  echo "# NAME BINARY URL PROBE (written by deploy/local-cluster.sh up)" >"$MANIFEST"
  STARTED=() UP_DONE=0
  trap abort_up EXIT
  trap 'say "interrupted"; exit 130' INT TERM

  # The one environment every service shares (each ignores the sections it does not read);
  # per-process listen addresses come on top.
  unset SWITCHBOARD_CONFIG SWITCHBOARD__TELEMETRY__ADMIN_LISTEN
  export SWITCHBOARD__BUS__NATS_URL=nats://127.0.0.1:$NATS_PORT
  export SWITCHBOARD__STORE__REDIS_URL=redis://127.0.0.1:$REDIS_PORT
  export SWITCHBOARD__AUTH__HMAC_SECRET=$HMAC_SECRET SWITCHBOARD__AUTH__API_KEY=$API_KEY
  # The device reader's devices come from a file only ([[device_reader.devices]] tables):
  # with DEMO=1 it gets two mock devices from a TOML file written here.
  local -a device_reader_args=() check_args=()
  if [ "$DEMO" = 1 ]; then
    write_demo_devices "$STATE_DIR/device-reader.toml"
    device_reader_args=(--config "$STATE_DIR/device-reader.toml")
  fi
  # Checked before anything starts; the agent's check also proves it can sign its own token.
  for binary in "${binaries[@]}"; do
    [ "$binary" != switchboard-mlnode-sim ] || continue # command-line arguments only
    check_args=(--check-config)
    [ "$binary" != switchboard-device-reader ] || check_args+=("${device_reader_args[@]}")
    if ! output=$("$BIN_DIR/$binary" "${check_args[@]}" 2>&1); then
      echo "$output" >&2
      die "$binary refuses the cluster's configuration (above)"
    fi
  done

  launch nats "$NATS_SERVER" "$SWITCHBOARD__BUS__NATS_URL" "http://127.0.0.1:$NATS_MONITOR_PORT/healthz" -- \
    -js -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" -sd "$STATE_DIR/nats" -n local-cluster
  launch redis "$REDIS_SERVER" "$SWITCHBOARD__STORE__REDIS_URL" "$SWITCHBOARD__STORE__REDIS_URL" -- \
    --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$STATE_DIR/redis" --logfile ''
  wait_ready nats redis

  local i port
  local -a services=()
  # The gateways serve the built dashboard (scripts/run.sh or the test suite builds it) unless
  # SWITCHBOARD__GATEWAY__DASHBOARD_DIR says otherwise.
  if [ -z "${SWITCHBOARD__GATEWAY__DASHBOARD_DIR+set}" ] && [ -f "$ROOT/clients/dashboard/dist/index.html" ]; then
    export SWITCHBOARD__GATEWAY__DASHBOARD_DIR=$ROOT/clients/dashboard/dist
  fi
  GATEWAY_URLS=() WS_URLS=()
  for ((i = 1; i <= GATEWAYS; i++)); do
    port=$((GATEWAY_BASE_PORT + i - 1))
    GATEWAY_URLS+=("http://127.0.0.1:$port") WS_URLS+=("ws://127.0.0.1:$port/api/ws/connect")
    launch "gateway-$i" "$BIN_DIR/switchboard-gateway" "http://127.0.0.1:$port" "http://127.0.0.1:$port/readyz" \
      "SWITCHBOARD__GATEWAY__LISTEN=127.0.0.1:$port" "SWITCHBOARD__GATEWAY__SERVER_ID=gateway-$i"
    services+=("gateway-$i")
  done
  launch publisher "$BIN_DIR/switchboard-publisher" "http://127.0.0.1:$PUBLISHER_PORT" \
    "http://127.0.0.1:$PUBLISHER_PORT/readyz" \
    "SWITCHBOARD__TELEMETRY__ADMIN_LISTEN=127.0.0.1:$PUBLISHER_PORT" "SWITCHBOARD__PUBLISHER__INSTANCE_ID=publisher-1"
  launch aggregator "$BIN_DIR/switchboard-aggregator" "http://127.0.0.1:$AGGREGATOR_PORT" \
    "http://127.0.0.1:$AGGREGATOR_PORT/readyz" \
    "SWITCHBOARD__TELEMETRY__ADMIN_LISTEN=127.0.0.1:$AGGREGATOR_PORT" "SWITCHBOARD__AGGREGATOR__REPLICA_ID=aggregator-1"
  launch batch-ingest "$BIN_DIR/switchboard-batch-ingest" "http://127.0.0.1:$BATCH_INGEST_PORT" \
    "http://127.0.0.1:$BATCH_INGEST_PORT/readyz" "SWITCHBOARD__BATCH_INGEST__LISTEN=127.0.0.1:$BATCH_INGEST_PORT"
  launch device-reader "$BIN_DIR/switchboard-device-reader" "http://127.0.0.1:$DEVICE_READER_PORT" \
    "http://127.0.0.1:$DEVICE_READER_PORT/readyz" "SWITCHBOARD__DEVICE_READER__LISTEN=127.0.0.1:$DEVICE_READER_PORT" \
    "SWITCHBOARD__DEVICE_READER__INSTANCE_ID=device-reader-1" -- "${device_reader_args[@]}"
  wait_ready "${services[@]}" publisher aggregator batch-ingest device-reader

  if [ "$DEMO" = 1 ]; then start_demo; fi

  write_env_file
  UP_DONE=1
  trap - EXIT INT TERM
  echo "local cluster up in $(since "$started"): $GATEWAYS gateways (${GATEWAY_URLS[*]}), state in $STATE_DIR"
  [ -z "$DASHBOARD_URL" ] || echo "dashboard: $DASHBOARD_URL"
  echo "environment: source $ENV_FILE"
}

# write_demo_devices FILE: the device reader's configuration with DEMO=1, two mock devices (the
# other settings come from the environment, like every process's).
write_demo_devices() {
  cat >"$1" <<'EOF'
# Written by deploy/local-cluster.sh up (DEMO=1): two simulated instruments for the demo.
# Readings go to rooms devices.<id>.m<module> (event data), statuses to room devices.
[[device_reader.devices]]
id = "demo-opm-1"
driver = "mock"
modules = [1, 2]
interval = "500ms"
wavelength_nm = 1550.0
level_dbm = -20.0
fault_rate = 0.01

[[device_reader.devices]]
id = "demo-opm-2"
driver = "mock"
modules = [1]
interval = "1s"
wavelength_nm = 1310.0
level_dbm = -12.0
EOF
}

# Node agents spread over the gateways, and one simulated ML node that batch-ingest is told to
# collect from through its management API.
start_demo() {
  local i url
  local -a agents=()
  for ((i = 1; i <= DEMO_AGENTS; i++)); do
    url=${WS_URLS[$(((i - 1) % GATEWAYS))]}
    # No agent.token: the agent signs its own node token with the shared auth.hmac_secret.
    launch "agent-$i" "$BIN_DIR/switchboard-agent" "$url" "agents://127.0.0.1:$GATEWAY_BASE_PORT" \
      "SWITCHBOARD__AGENT__GATEWAY_URL=$url" "SWITCHBOARD__AGENT__NODE_ID=demo-node-$i" \
      "SWITCHBOARD__AGENT__LAYER=demo" "SWITCHBOARD__AGENT__UPDATE_INTERVAL=2s"
    agents+=("agent-$i")
  done
  local ml_ws=ws://127.0.0.1:$MLNODE_PORT/api/v1/pow/ws
  local callback=http://127.0.0.1:$BATCH_INGEST_PORT/v1/poc-batches
  launch mlnode-sim "$BIN_DIR/switchboard-mlnode-sim" "$ml_ws" "tcp://127.0.0.1:$MLNODE_PORT" -- \
    --listen "127.0.0.1:$MLNODE_PORT" --callback "$callback" --batches forever --interval 1s --node-num 1
  wait_ready mlnode-sim
  local reply
  reply=$(curl -sS --max-time 5 -X POST -H 'Content-Type: application/json' \
    -d "{\"id\":\"ml-node-1\",\"url\":\"$ml_ws\"}" "http://127.0.0.1:$BATCH_INGEST_PORT/v1/nodes" 2>&1) ||
    die "registering the ML node with batch-ingest failed: $reply"
  grep -q '"ok":true' <<<"$reply" || die "batch-ingest refused the ML node: $reply"
  say "mlnode-sim registered with batch-ingest as ml-node-1"
  wait_ready "${agents[@]}"
}

write_env_file() {
  local now tmp=$ENV_FILE.tmp
  now=$(date +%s)
  DEV_TOKEN=$(mint_token "{\"sub\":\"local-dev\",\"role\":\"admin\",\"iat\":$now,\"exp\":$((now + 86400))}")
  DASHBOARD_URL=""
  [ -z "$DEV_TOKEN" ] || DASHBOARD_URL="${GATEWAY_URLS[0]}/?token=$DEV_TOKEN"
  # Single-quoted values, so the file also reads as a dotenv file.
  kv() { printf "export %s='%s'\n" "$1" "${2//\'/\'\\\'\'}"; }
  (
    umask 077
    {
      echo "# Switchboard local cluster, written by deploy/local-cluster.sh up at $(date -u +%FT%TZ)."
      echo "# source it: URLs and secrets for clients and tests, and the SWITCHBOARD__* settings any"
      echo "# further process needs to join this cluster."
      kv SWITCHBOARD_STATE_DIR "$STATE_DIR"
      kv SWITCHBOARD_GATEWAY_URLS "$(IFS=,; echo "${GATEWAY_URLS[*]}")"
      kv SWITCHBOARD_GATEWAY_URL "${GATEWAY_URLS[0]}"
      kv SWITCHBOARD_WS_URLS "$(IFS=,; echo "${WS_URLS[*]}")"
      kv SWITCHBOARD_NATS_URL "$SWITCHBOARD__BUS__NATS_URL"
      kv SWITCHBOARD_REDIS_URL "$SWITCHBOARD__STORE__REDIS_URL"
      kv SWITCHBOARD_PUBLISHER_ADMIN_URL "http://127.0.0.1:$PUBLISHER_PORT"
      kv SWITCHBOARD_AGGREGATOR_ADMIN_URL "http://127.0.0.1:$AGGREGATOR_PORT"
      kv SWITCHBOARD_BATCH_INGEST_URL "http://127.0.0.1:$BATCH_INGEST_PORT"
      kv SWITCHBOARD_DEVICE_READER_URL "http://127.0.0.1:$DEVICE_READER_PORT"
      kv SWITCHBOARD_API_KEY "$API_KEY"
      kv SWITCHBOARD_HMAC_SECRET "$HMAC_SECRET"
      echo "# an admin token for the dashboard and tests, valid 24 h (empty without openssl)"
      kv SWITCHBOARD_DEV_TOKEN "$DEV_TOKEN"
      kv SWITCHBOARD_DASHBOARD_URL "$DASHBOARD_URL"
      kv SWITCHBOARD__BUS__NATS_URL "$SWITCHBOARD__BUS__NATS_URL"
      kv SWITCHBOARD__STORE__REDIS_URL "$SWITCHBOARD__STORE__REDIS_URL"
      kv SWITCHBOARD__AUTH__HMAC_SECRET "$HMAC_SECRET"
      kv SWITCHBOARD__AUTH__API_KEY "$API_KEY"
    } >"$tmp"
  )
  mv "$tmp" "$ENV_FILE"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 64
    ;;
esac
