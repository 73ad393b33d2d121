#!/usr/bin/env bash
# The compose test: runs docker-compose.yml, unchanged, with podman-compose and checks the
# cluster from outside.
#
#   tests/deploy/compose-test.sh [BIN_DIR]     # BIN_DIR: prebuilt binaries (default target/debug)
#
# Steps (each timed; table at the end):
#   1. images: tests/deploy/build-images.sh (stand-ins for the base images, Switchboard images
#      from the prebuilt binaries; no registry needed)
#   2. schema: docker-compose.yml against the Compose specification's JSON schema (the copy
#      check-jsonschema ships, pinned in tests/deploy/compose/requirements.txt) and
#      `podman-compose config`; a deliberately broken copy must fail both
#   3. up: `podman-compose --profile demo up -d`, then every health check passes (Podman 4.3 runs
#      health checks only on demand without systemd, so this script runs them)
#   4. checks: tests/deploy/compose/check_cluster.py (load balancer, Prometheus scraping every
#      service, two gateways, HTTP and NATS publish exactly once, node agents, a mock device's
#      readings in room devices.<id>.m1 and GET /api/ws/devices, batch into JetStream, killing a
#      gateway)
#   5. down: `podman-compose down -v`; no container, network or volume of the project is left
#
# Environment: COMPOSE_TEST_TIMEOUT (whole run, default 600 s), COMPOSE_TEST_PROJECT (default
# sbcompose). Host ports are picked free at start. Always cleans up (trap).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh

BIN_DIR=${1:-target/debug}
PROJECT=${COMPOSE_TEST_PROJECT:-sbcompose}
TIMEOUT=${COMPOSE_TEST_TIMEOUT:-600}
VENV=$ROOT/target/deploy-venv
WORK=$ROOT/target/deploy-compose
mkdir -p "$WORK"

ensure_podman
# Service names resolve on compose networks through the CNI dnsname plugin, which Debian's
# podman only recommends (netavark/aardvark-dns would do it too, but switching the network
# backend of a host that already has containers is not this script's business).
if [ "$(podman info --format '{{.Host.NetworkBackend}}')" = cni ] && [ ! -x /usr/lib/cni/dnsname ]; then
  apt_install golang-github-containernetworking-plugin-dnsname
fi
ensure_python_venv "$VENV" tests/deploy/compose/requirements.txt
PY=$VENV/bin/python
PODMAN_COMPOSE=("$VENV/bin/podman-compose" -p "$PROJECT" -f docker-compose.yml)

# --- timing -------------------------------------------------------------------------------
STEPS=()
step_started=0
begin() {
  step_started=$(date +%s.%N)
  echo
  echo "=== $* ==="
}
end() {
  local took
  took=$(awk -v a="$step_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  STEPS+=("$1|$took")
  echo "--- $1: ${took}s"
}
print_timings() {
  local entry total=0
  echo
  echo "compose test timings"
  printf '  %-44s %8s\n' step seconds
  for entry in "${STEPS[@]}"; do
    printf '  %-44s %8s\n' "${entry%%|*}" "${entry##*|}"
    total=$(awk -v a="$total" -v b="${entry##*|}" 'BEGIN { print a + b }')
  done
  printf '  %-44s %8s\n' total "$total"
}

# --- cleanup ------------------------------------------------------------------------------
project_leftovers() {
  {
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format 'container {{.Names}}'
    podman network ls --format '{{.Name}}' | grep -E "^${PROJECT}_" | sed 's/^/network /' || true
    podman volume ls --format '{{.Name}}' | grep -E "^${PROJECT}_" | sed 's/^/volume /' || true
    podman volume ls --filter "label=io.podman.compose.project=$PROJECT" --format 'volume {{.Name}}'
  } | sort -u
}

compose_down() {
  timeout 120 "${PODMAN_COMPOSE[@]}" --profile demo --profile observability down -v -t 5 >"$WORK/down.log" 2>&1
}

downed=0
watchdog=
cleanup() {
  local status=$?
  if [ -n "$watchdog" ]; then pkill -P "$watchdog" 2>/dev/null || true; kill "$watchdog" 2>/dev/null || true; fi
  if [ "$downed" = 0 ]; then
    if [ "$status" != 0 ]; then
      echo "compose test failed; container states and recent logs:" >&2
      podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
        --format '  {{.Names}} {{.Status}}' >&2 || true
      for name in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
        echo "--- logs $name" >&2
        podman logs --tail 15 "$name" >&2 2>&1 || true
      done
    fi
    compose_down || echo "podman-compose down failed (see $WORK/down.log)" >&2
    # Whatever down missed (e.g. containers of a profile it did not know).
    for name in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
      podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    done
  fi
  [ "${#STEPS[@]}" -gt 0 ] && print_timings
  exit "$status"
}
trap cleanup EXIT
trap 'echo "compose test: interrupted" >&2; exit 130' INT TERM
# The whole run is bounded: the watchdog interrupts this script and stops the step it is running
# (its direct child), then the trap cleans up.
exec 3>&2
( sleep "$TIMEOUT" && echo "compose test: timed out after ${TIMEOUT}s" >&3 && kill -TERM $$ &&
  pkill -TERM -P $$ ) 2>/dev/null &
watchdog=$!

# A previous run that was killed hard may have left its project behind.
if [ -n "$(project_leftovers)" ]; then
  echo "removing leftovers of an earlier run of project $PROJECT"
  compose_down || true
fi

# --- settings: free host ports, fresh secrets ----------------------------------------------
read -r HTTP_PORT NATS_PORT NATS_MONITOR_PORT BATCH_PORT PROM_PORT GRAFANA_PORT DEVICE_READER_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)
export SWITCHBOARD_BIND=127.0.0.1 SWITCHBOARD_HTTP_PORT=$HTTP_PORT SWITCHBOARD_NATS_PORT=$NATS_PORT \
  SWITCHBOARD_NATS_MONITOR_PORT=$NATS_MONITOR_PORT SWITCHBOARD_BATCH_INGEST_PORT=$BATCH_PORT \
  SWITCHBOARD_PROMETHEUS_PORT=$PROM_PORT SWITCHBOARD_GRAFANA_PORT=$GRAFANA_PORT \
  SWITCHBOARD_DEVICE_READER_PORT=$DEVICE_READER_PORT
SWITCHBOARD_HMAC_SECRET=$("$PY" -c 'import secrets; print(secrets.token_hex(32))')
SWITCHBOARD_API_KEY=$("$PY" -c 'import secrets; print(secrets.token_hex(24))')
export SWITCHBOARD_HMAC_SECRET SWITCHBOARD_API_KEY
# Image names as build-images.sh makes them (set here so a user's .env cannot change them).
export SWITCHBOARD_REGISTRY=${SWITCHBOARD_REGISTRY:-localhost} SWITCHBOARD_TAG=${SWITCHBOARD_TAG:-dev}
SWITCHBOARD_REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
export SWITCHBOARD_REVISION

# --- 1. images ----------------------------------------------------------------------------
begin "images (tests/deploy/build-images.sh $BIN_DIR)"
timeout 600 tests/deploy/build-images.sh "$BIN_DIR"
end "images"

# --- 2. schema ----------------------------------------------------------------------------
begin "docker-compose.yml against the Compose specification schema"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
timeout 60 "${PODMAN_COMPOSE[@]}" --profile demo --profile observability config >"$WORK/config.yml"
echo "podman-compose config: ok ($(grep -c '^  [a-z]' "$WORK/config.yml" || true) top-level entries)"
# A broken copy: an unknown dependency condition and a misspelled key.
broken=$WORK/broken-compose.yml
sed -e '0,/condition: service_healthy/s//condition: service_ready/' \
  -e '0,/^    restart: unless-stopped/s//    restart: unless-stopped\n    helthcheck: {}/' docker-compose.yml >"$broken"
if "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$broken" >"$WORK/broken-schema.log" 2>&1; then
  echo "the schema check accepted a broken compose file ($broken)" >&2
  exit 1
fi
echo "broken copy rejected by the schema check:"
grep -E "was unexpected|is not one of" "$WORK/broken-schema.log" | head -3 | sed 's/^/    /'
if timeout 60 "$VENV/bin/podman-compose" -p "$PROJECT-broken" -f "$broken" config >"$WORK/broken-config.log" 2>&1; then
  echo "podman-compose config accepted the broken copy too (it does not validate keys)"
else
  echo "broken copy rejected by podman-compose config: $(grep -m1 -iE 'error|not a valid' "$WORK/broken-config.log" || tail -1 "$WORK/broken-config.log")"
fi
end "schema"

# --- 3. up --------------------------------------------------------------------------------
begin "podman-compose --profile demo up -d, then healthy"
# --no-deps: start order still follows depends_on, but without podman's --requires, whose
# dependency graph Podman 4.3 cannot build for two levels of dependencies ("depends on container
# ... not found in input list"). Podman < 4.6 has no health condition either: podman-compose
# starts dependants without waiting, and the services' restart policy covers the gap.
timeout 180 "${PODMAN_COMPOSE[@]}" --profile demo up -d --no-build --no-deps >"$WORK/up.log" 2>&1 || {
  tail -20 "$WORK/up.log" >&2
  exit 1
}
# Prometheus of the observability profile (Grafana has no stand-in here: checked statically).
timeout 60 "${PODMAN_COMPOSE[@]}" --profile observability up -d --no-build --no-deps prometheus \
  >>"$WORK/up.log" 2>&1 || { tail -20 "$WORK/up.log" >&2; exit 1; }
end "up"

begin "wait until every health check passes"
deadline=$((SECONDS + 150))
while :; do
  pending=()
  for name in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
    has_check=$(podman inspect --format '{{if .Config.Healthcheck}}yes{{end}}' "$name" 2>/dev/null || true)
    [ "$has_check" = yes ] || continue
    podman healthcheck run "$name" >/dev/null 2>&1 || pending+=("$name")
  done
  for name in "${pending[@]}"; do
    restarts=$(podman inspect --format '{{.RestartCount}}' "$name" 2>/dev/null || echo 0)
    if [ "${restarts:-0}" -gt 5 ]; then
      echo "$name keeps crashing ($restarts restarts)" >&2
      exit 1
    fi
  done
  [ "${#pending[@]}" = 0 ] && break
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "not healthy after 150 s: ${pending[*]}" >&2
    exit 1
  fi
  sleep 2
done
podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '  {{.Names}}  {{.Status}}'
end "healthy"

# --- 4. checks ----------------------------------------------------------------------------
begin "black-box cluster checks (check_cluster.py)"
timeout 240 "$PY" tests/deploy/compose/check_cluster.py --http "http://127.0.0.1:$HTTP_PORT" \
  --nats "nats://127.0.0.1:$NATS_PORT" --batch-ingest "http://127.0.0.1:$BATCH_PORT" \
  --secret="$SWITCHBOARD_HMAC_SECRET" --api-key="$SWITCHBOARD_API_KEY" --project "$PROJECT" --demo \
  --prometheus "http://127.0.0.1:$PROM_PORT" --dev-token "$(deploy/compose/dev-token.sh | awk '/^token:/ { print $2 }')"
end "checks"

# --- 5. down ------------------------------------------------------------------------------
begin "podman-compose down -v leaves nothing behind"
compose_down || { tail -20 "$WORK/down.log" >&2; exit 1; }
downed=1
leftovers=$(project_leftovers)
if [ -n "$leftovers" ]; then
  echo "left behind by down -v:" >&2
  echo "$leftovers" >&2
  exit 1
fi
echo "no container, network or volume of project $PROJECT left"
end "down"

echo
echo "compose test passed"
