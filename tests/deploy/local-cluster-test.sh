#!/usr/bin/env bash
# Test of deploy/local-cluster.sh: `up` a cluster of debug binaries (2 gateways, publisher,
# aggregator, batch-ingest, device-reader and the demo extras) on free loopback ports, check it over HTTP (no
# WebSocket client), `status`, `down`, and that no process of the cluster is left.
#
#   tests/deploy/local-cluster-test.sh      # from anywhere; needs nats-server, redis-server, curl
#
# BIN_DIR (default target/debug; missing binaries are built), DEMO (default 1: agents, the
# ML node simulator and two mock devices of the device reader too). Every step is bounded (timeout, curl --max-time, polls with a
# deadline), so the test ends within about 4 minutes even when everything hangs.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/deps.sh

ensure_test_services
ensure_command curl curl

export BIN_DIR=${BIN_DIR:-target/debug}
export STATE_DIR=${STATE_DIR:-target/local-cluster-test}
export GATEWAYS=2 DEMO=${DEMO:-1} DEMO_AGENTS=3 UP_TIMEOUT=60 STOP_TIMEOUT=15
unset BASE_PORT SWITCHBOARD_CONFIG
SCRIPT=deploy/local-cluster.sh
# The test's own state: stop what an interrupted earlier run may have left, then start afresh.
timeout 60 "$SCRIPT" down >/dev/null 2>&1 || true
rm -rf "$STATE_DIR"

step_started=0
test_started=$(date +%s%N)
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
step() { step_started=$(date +%s%N); echo "==> $*" >&2; }
took() { echo "    ok ($(ms_since "$step_started") ms)" >&2; }
fail() {
  echo "FAIL: $*" >&2
  timeout 30 "$SCRIPT" status >&2 || true
  exit 1
}

# Every PID `up` recorded, so the end (or the trap) can prove none survives.
declare -A PIDS=()
record_pids() {
  local file
  for file in "$STATE_DIR"/pids/*.pid; do
    [ -f "$file" ] || continue
    PIDS[$(basename "$file" .pid)]=$(head -n1 "$file")
  done
}
# One read of /proc: a zombie can be reaped (by an init that reaps late) between two reads.
pid_alive() {
  local state
  state=$(awk '$1 == "State:" { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

cleanup() {
  local status=$? name
  trap - EXIT INT TERM
  record_pids
  if [ ${#PIDS[@]} -gt 0 ] && [ "$status" != 0 ]; then
    echo "==> cleanup: stopping the cluster (logs in $STATE_DIR/logs)" >&2
    timeout 60 "$SCRIPT" down >&2 || true
  fi
  for name in "${!PIDS[@]}"; do
    if pid_alive "${PIDS[$name]}"; then
      echo "cleanup: $name (pid ${PIDS[$name]}) still alive: SIGKILL" >&2
      kill -KILL "${PIDS[$name]}" 2>/dev/null || true
      status=1
    fi
  done
  echo "==> local-cluster test $([ "$status" = 0 ] && echo passed || echo FAILED) in $(ms_since "$test_started") ms" >&2
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true; }

# eventually SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds.
eventually() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

step "up: $GATEWAYS gateways, DEMO=$DEMO, BIN_DIR=$BIN_DIR"
timeout 150 "$SCRIPT" up || fail "up failed"
record_pids
took
# shellcheck source=/dev/null
source "$STATE_DIR/cluster.env"
expected=$((6 + GATEWAYS + (DEMO == 1 ? DEMO_AGENTS + 1 : 0)))
[ ${#PIDS[@]} -eq "$expected" ] || fail "expected $expected PID files, found ${#PIDS[@]}: ${!PIDS[*]}"
for name in "${!PIDS[@]}"; do pid_alive "${PIDS[$name]}" || fail "$name (pid ${PIDS[$name]}) is not running after up"; done
for variable in SWITCHBOARD_GATEWAY_URLS SWITCHBOARD_NATS_URL SWITCHBOARD_REDIS_URL SWITCHBOARD_API_KEY SWITCHBOARD_HMAC_SECRET \
  SWITCHBOARD_DEVICE_READER_URL; do
  [ -n "${!variable:-}" ] || fail "cluster.env lacks $variable"
done
case ",$SWITCHBOARD_GATEWAY_URLS,$SWITCHBOARD_NATS_URL,$SWITCHBOARD_REDIS_URL," in
  *:4222[,/]* | *:6379[,/]* | *:8000[,/]*) fail "the cluster uses a default port: $SWITCHBOARD_GATEWAY_URLS $SWITCHBOARD_NATS_URL $SWITCHBOARD_REDIS_URL" ;;
esac

step "a second up refuses a running cluster"
if timeout 30 "$SCRIPT" up >/dev/null 2>&1; then fail "a second up succeeded"; fi
took

step "/api/ws/stats on gateway 1 counts 2 gateways"
IFS=, read -r -a gateway_urls <<<"$SWITCHBOARD_GATEWAY_URLS"
[ ${#gateway_urls[@]} -eq 2 ] || fail "SWITCHBOARD_GATEWAY_URLS has ${#gateway_urls[@]} URLs: $SWITCHBOARD_GATEWAY_URLS"
stats=""
two_gateways() {
  stats=$(curl -s --max-time 5 "${gateway_urls[0]}/api/ws/stats" || true)
  grep -q '"live_gateways":2[,}]' <<<"$stats"
}
eventually 15 two_gateways || fail "gateway 1 stats: $stats"
echo "    $stats" | cut -c1-300 >&2
for url in "${gateway_urls[@]}"; do
  [ "$(http_code "$url/readyz")" = 200 ] || fail "$url/readyz is not 200"
done
took

step "publisher, aggregator, batch-ingest and device-reader answer /healthz"
for url in "$SWITCHBOARD_PUBLISHER_ADMIN_URL" "$SWITCHBOARD_AGGREGATOR_ADMIN_URL" "$SWITCHBOARD_BATCH_INGEST_URL" \
  "$SWITCHBOARD_DEVICE_READER_URL"; do
  code=$(http_code "$url/healthz")
  [ "$code" = 200 ] || fail "$url/healthz answered $code"
  echo "    $url/healthz 200" >&2
done
publish=$(curl -s -w ' %{http_code}' --max-time 5 -X POST -H "Authorization: Bearer $SWITCHBOARD_API_KEY" \
  -H 'Content-Type: application/json' -d '{"room":"alerts","type":"alert","data":{"test":"local-cluster"}}' \
  "${gateway_urls[1]}/api/ws/publish")
[ "${publish##* }" = 202 ] || fail "publish with the cluster's API key on gateway 2: $publish"
took

if [ "$DEMO" = 1 ]; then
  step "demo: batch-ingest is connected to the ML node simulator and stores its batches"
  nodes=""
  ml_node_storing() {
    nodes=$(curl -s --max-time 5 "$SWITCHBOARD_BATCH_INGEST_URL/v1/progress" || true)
    grep -q '"connection":"connected"' <<<"$nodes" && grep -q '"websocket":[1-9]' <<<"$nodes"
  }
  eventually 20 ml_node_storing || fail "batch-ingest progress: $nodes"
  stats=$(curl -s --max-time 5 "${gateway_urls[0]}/api/ws/stats")
  grep -q '"active_connections":[3-9]' <<<"$stats" || fail "the 3 demo agents are not connected: $stats"
  took

  step "demo: the device reader reads its two mock devices"
  devices=""
  devices_connected() {
    devices=$(curl -s --max-time 5 "$SWITCHBOARD_DEVICE_READER_URL/v1/devices" || true)
    [ "$(grep -o '"state":"connected"' <<<"$devices" | wc -l)" -eq 2 ] &&
      grep -q '"device_id":"demo-opm-1"' <<<"$devices" && grep -q '"device_id":"demo-opm-2"' <<<"$devices"
  }
  eventually 20 devices_connected || fail "device reader /v1/devices: $devices"
  echo "    $devices" | cut -c1-300 >&2
  took
fi

step "status"
status_output=$(timeout 30 "$SCRIPT" status) || fail "status exited non-zero on a healthy cluster:
$status_output"
echo "$status_output" >&2
alive_lines=$(grep -c ' alive ' <<<"$status_output" || true)
[ "$alive_lines" -eq "$expected" ] || fail "status shows $alive_lines processes alive, expected $expected"
took

step "down"
timeout 90 "$SCRIPT" down || fail "down failed"
took

step "no process of the cluster is left"
for name in "${!PIDS[@]}"; do
  if pid_alive "${PIDS[$name]}"; then fail "$name (pid ${PIDS[$name]}) survived down"; fi
done
for url in "${gateway_urls[@]}" "$SWITCHBOARD_PUBLISHER_ADMIN_URL" "$SWITCHBOARD_BATCH_INGEST_URL" "$SWITCHBOARD_DEVICE_READER_URL"; do
  [ "$(http_code "$url/healthz")" = 000 ] || fail "$url still answers after down"
done
echo "    ${#PIDS[@]} PIDs gone: $(for name in "${!PIDS[@]}"; do printf '%s=%s ' "$name" "${PIDS[$name]}"; done)" >&2
ls "$STATE_DIR"/logs/*.log >/dev/null || fail "down removed the logs"
took

step "down again and status on a stopped cluster"
timeout 30 "$SCRIPT" down >/dev/null || fail "down on a stopped cluster failed"
set +e
timeout 30 "$SCRIPT" status >/dev/null
status_code=$?
set -e
[ "$status_code" = 3 ] || fail "status on a stopped cluster exited $status_code, expected 3"
took
