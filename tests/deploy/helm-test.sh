#!/usr/bin/env bash
# Checks the Helm chart helm/switchboard:
#
#   tests/deploy/helm-test.sh [BIN_DIR]      (BIN_DIR: built binaries, default target/debug)
#
# 1. lint and render it with Helm's own engine (helm-python-sdk: Helm v4's Go SDK as a library,
#    no helm binary) for every values file in tests/deploy/helm/values/, validate every object
#    strictly against the Kubernetes API schema (kubernetes-validate), check the references
#    between objects (selectors, named ports, Secret/ConfigMap keys, HPA/Ingress/ServiceMonitor
#    targets) and that README.md and values.schema.json cover every value;
# 2. show that a missing nats.url, a schema violation, an invalid manifest and a dangling
#    reference each fail;
# 3. run the rendered Deployments, ConfigMap and Secret with `podman kube play` next to NATS and
#    Redis pods, connect a WebSocket client to the gateway pod (hostPort on 127.0.0.1) with an
#    HS256 token, subscribe, publish with POST /api/ws/publish and receive it, receive the
#    publisher pod's stream, probe the other pods' /readyz (and the device reader's mock device
#    through its management API); then `podman kube down`.
#    Podman does not implement Services, Ingress, HPA, PDB, NetworkPolicy or ServiceMonitor:
#    those are checked statically in step 1 only.
#
# Bounded: every step has a timeout. Cleans up (pods, secret, network, work dir) on exit.
# Prints the time of every step. SKIP_KUBE_PLAY=1 stops after step 2.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh

BIN_DIR=${1:-target/debug}
KUBE_VERSION=${KUBE_VERSION:-1.37.0}   # the newest kubernetes-validate 1.37.0 knows
OLDEST_KUBE_VERSION=1.25.0              # Chart.yaml kubeVersion
HERE=tests/deploy/helm
VENV=target/helm-venv
mkdir -p target
WORK=$(mktemp -d "$ROOT/target/helm-test.XXXXXX")
RUN_ID=sbhelm$$   # prefix of every pod, the network, the secret (fullnameOverride)
NETWORK=$RUN_ID
PY=$VENV/bin/python

log() { echo "==> $*" >&2; }

# --- timings -----------------------------------------------------------------------------
TIMINGS=()
CURRENT_STEP=""
CURRENT_START=0
elapsed() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%7.1f s", (b - a) / 1e9 }'; }
step() { # step NAME TIMEOUT_SECONDS COMMAND...: runs COMMAND bounded by TIMEOUT_SECONDS.
  # A shell function cannot run under timeout(1): the functions below bound each of their own
  # commands and waits. A failure ends the script (set -e); the EXIT trap reports the step.
  local name=$1 limit=$2
  shift 2
  log "$name"
  CURRENT_STEP=$name CURRENT_START=$(date +%s%N)
  if [ "$(type -t "$1")" = function ]; then
    "$@"
  else
    timeout --kill-after=10 "$limit" "$@"
  fi
  TIMINGS+=("$(elapsed "$CURRENT_START")  $name")
  CURRENT_STEP=""
}

# --- cleanup -----------------------------------------------------------------------------
PODMAN_USED=0
SECRET_NAME=""
cleanup() {
  local status=$?
  set +e
  if [ "$PODMAN_USED" = 1 ]; then
    if [ $status != 0 ]; then
      log "logs of the kube play containers (last 15 lines each)"
      for c in $(podman ps -a --format '{{.Names}}' 2>/dev/null | grep -E "^$RUN_ID-"); do
        echo "--- $c" >&2
        podman logs --tail 15 "$c" >&2 2>&1
      done
    fi
    [ -f "$WORK/app.yaml" ] && timeout 60 podman kube down "$WORK/app.yaml" >/dev/null 2>&1
    [ -f "$WORK/backends.yaml" ] && timeout 60 podman kube down "$WORK/backends.yaml" >/dev/null 2>&1
    [ -n "$SECRET_NAME" ] && podman secret rm "$SECRET_NAME" >/dev/null 2>&1
    podman network rm -f "$NETWORK" >/dev/null 2>&1
  fi
  rm -rf "$WORK"
  if [ -n "$CURRENT_STEP" ]; then
    TIMINGS+=("$(elapsed "$CURRENT_START")  $CURRENT_STEP  (FAILED, status $status$([ $status = 124 ] && echo ": timed out"))")
  fi
  if [ ${#TIMINGS[@]} -gt 0 ]; then
    echo "helm-test timings:"
    printf '  %s\n' "${TIMINGS[@]}"
  fi
  if [ $status = 0 ]; then echo "helm-test: passed"; else echo "helm-test: FAILED (status $status)"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1 and 2: static checks ---------------------------------------------------------------
step "python venv ($VENV)" 600 bash -c "source scripts/lib/deps.sh && ensure_python_venv $VENV $HERE/requirements.txt"

for values in "$HERE"/values/*.yaml; do
  step "lint with $(basename "$values")" 60 "$PY" "$HERE/check.py" lint "$values"
done
for values in "$HERE"/values/*.yaml; do
  name=$(basename "$values" .yaml)
  step "render + validate (Kubernetes $KUBE_VERSION) $name" 120 \
    "$PY" "$HERE/check.py" render "$values" "$WORK/$name.yaml" "$KUBE_VERSION"
  step "render + validate (Kubernetes $OLDEST_KUBE_VERSION) $name" 120 \
    "$PY" "$HERE/check.py" render "$values" "$WORK/$name.$OLDEST_KUBE_VERSION.yaml" "$OLDEST_KUBE_VERSION"
done
# The gateway with an admin listener of its own (a later issue): probes, Service, ServiceMonitor
# and NetworkPolicy move to the port `admin`.
step "render + validate production with gateway.adminPort 9090" 120 \
  "$PY" "$HERE/check.py" render "$HERE/values/production.yaml" "$WORK/production-admin-port.yaml" "$KUBE_VERSION" \
  '{"gateway": {"adminPort": 9090}}'
step "README.md and values.schema.json cover values.yaml" 60 "$PY" "$HERE/check.py" coverage
step "failures are caught" 120 "$PY" "$HERE/check.py" expect-failures "$HERE/invalid" "$HERE/values/minimal.yaml" "$KUBE_VERSION"

if [ "${SKIP_KUBE_PLAY:-0}" = 1 ]; then
  log "SKIP_KUBE_PLAY=1: podman kube play not run"
  exit 0
fi

# --- 3: podman kube play -------------------------------------------------------------------
ensure_podman
# Pods need Podman's pause image, which Podman builds locally around catatonit.
ensure_command catatonit catatonit
PODMAN_USED=1

SERVICES=(gateway publisher aggregator batch-ingest device-reader)
BINARIES=(switchboard-gateway switchboard-publisher switchboard-aggregator switchboard-batch-ingest
  switchboard-device-reader)
SB_REGISTRY=localhost
SB_TAG=dev
NATS_IMAGE=""
REDIS_IMAGE=""

# Throwaway image for when tests/deploy/build-images.sh is missing or builds no NATS/Redis
# stand-in: the binary and the libraries ldd lists, FROM scratch.
throwaway_image() { # throwaway_image NAME BINARY
  local name=$1 binary=$2 ctx lib
  ctx=$(mktemp -d "$WORK/image.XXXXXX")
  install -D -m 0755 "$binary" "$ctx/bin/$(basename "$binary")"
  for lib in $(ldd "$binary" | grep -oE '/[^ ]+\.so[^ ]*'); do
    install -D -m 0755 "$(readlink -f "$lib")" "$ctx$lib"
  done
  mkdir -p "$ctx/tmp" && chmod 1777 "$ctx/tmp"
  printf 'FROM scratch\nCOPY . /\nENTRYPOINT ["/bin/%s"]\n' "$(basename "$binary")" >"$ctx/Containerfile"
  timeout 300 podman build --quiet -f "$ctx/Containerfile" -t "$name" "$ctx" >/dev/null
  echo "image $name (throwaway, built by helm-test.sh)"
}

images() {
  local i missing=0 out="$WORK/images.txt"
  for i in "${!BINARIES[@]}"; do [ -x "$BIN_DIR/${BINARIES[$i]}" ] || missing=1; done
  if [ $missing = 1 ]; then
    log "binaries missing in $BIN_DIR: cargo build --workspace --bins"
    timeout 1200 cargo build --workspace --bins
  fi
  if [ -f tests/deploy/build-images.sh ]; then
    SWITCHBOARD_REGISTRY=$SB_REGISTRY SWITCHBOARD_TAG=$SB_TAG timeout 900 bash tests/deploy/build-images.sh "$BIN_DIR" >"$out"
    cat "$out"
    NATS_IMAGE=$(sed -n 's/^image \(.*\/nats:.*\)$/\1/p' "$out" | head -1)
    REDIS_IMAGE=$(sed -n 's/^image \(.*\/redis:.*\)$/\1/p' "$out" | head -1)
  else
    echo "tests/deploy/build-images.sh is missing: building throwaway Switchboard images"
    SB_TAG=helm-test-throwaway
    for i in "${!SERVICES[@]}"; do
      throwaway_image "$SB_REGISTRY/switchboard/${SERVICES[$i]}:$SB_TAG" "$BIN_DIR/${BINARIES[$i]}"
    done
  fi
  for i in "${!SERVICES[@]}"; do
    podman image exists "$SB_REGISTRY/switchboard/${SERVICES[$i]}:$SB_TAG" ||
      { echo "image $SB_REGISTRY/switchboard/${SERVICES[$i]}:$SB_TAG was not built" >&2; return 1; }
  done
  if [ -z "$NATS_IMAGE" ]; then
    NATS_IMAGE=localhost/switchboard-helm-test/nats:throwaway
    ensure_test_services
    throwaway_image "$NATS_IMAGE" "$(command -v nats-server || echo /usr/sbin/nats-server)"
  fi
  if [ -z "$REDIS_IMAGE" ]; then
    REDIS_IMAGE=localhost/switchboard-helm-test/redis:throwaway
    ensure_test_services
    throwaway_image "$REDIS_IMAGE" "$(command -v redis-server)"
  fi
  echo "NATS: $NATS_IMAGE, Redis: $REDIS_IMAGE, Switchboard: $SB_REGISTRY/switchboard/<service>:$SB_TAG"
}
step "images (tests/deploy/build-images.sh $BIN_DIR)" 1800 images

# The backends as plain Pods on a network of their own. Their addresses go into nats.url and
# redis.url: this Podman (4.3, CNI without the dnsname plugin) has no DNS on its networks.
container_ip() { podman inspect --format "{{(index .NetworkSettings.Networks \"$NETWORK\").IPAddress}}" "$1"; }
wait_log() { # wait_log CONTAINER TEXT SECONDS
  local deadline=$((SECONDS + $3))
  until podman logs "$1" 2>&1 | grep -q "$2"; do
    [ $SECONDS -lt $deadline ] || { echo "$1: no '$2' in its log after $3 s" >&2; return 1; }
    sleep 0.5
  done
}
backends() {
  timeout 30 podman network create "$NETWORK" >/dev/null
  cat >"$WORK/backends.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $RUN_ID-nats
spec:
  containers:
    - name: nats
      image: $NATS_IMAGE
      args: ["-js", "-p", "4222", "-sd", "/tmp/nats-js"]
      securityContext: {runAsUser: 0}
---
apiVersion: v1
kind: Pod
metadata:
  name: $RUN_ID-redis
spec:
  containers:
    - name: redis
      image: $REDIS_IMAGE
      args: ["--port", "6379", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", "/tmp"]
      securityContext: {runAsUser: 0}
EOF
  timeout 120 podman kube play --network "$NETWORK" "$WORK/backends.yaml" >/dev/null
  wait_log "$RUN_ID-nats-nats" "Server is ready" 30
  wait_log "$RUN_ID-redis-redis" "Ready to accept connections" 30
  NATS_IP=$(container_ip "$RUN_ID-nats-nats")
  REDIS_IP=$(container_ip "$RUN_ID-redis-redis")
  echo "NATS pod at $NATS_IP:4222, Redis pod at $REDIS_IP:6379 (network $NETWORK)"
}
step "kube play NATS and Redis pods" 180 backends

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
app() {
  # Podman 4.3's kube play also publishes every containerPort that has no hostPort on the host
  # (0.0.0.0:<containerPort>): free ports keep those from colliding with anything else here.
  GATEWAY_PORT=$(free_port) PUBLISHER_PORT=$(free_port) AGGREGATOR_PORT=$(free_port) BATCH_INGEST_PORT=$(free_port)
  DEVICE_READER_PORT=$(free_port)
  local overrides
  overrides=$(printf '{"fullnameOverride":"%s","nats":{"url":"nats://%s:4222"},"redis":{"url":"redis://%s:6379"},"image":{"registry":"%s","tag":"%s"},"gateway":{"hostPort":%s},"publisher":{"adminPort":%s},"aggregator":{"adminPort":%s},"batchIngest":{"port":%s},"deviceReader":{"port":%s}}' \
    "$RUN_ID" "$NATS_IP" "$REDIS_IP" "$SB_REGISTRY" "$SB_TAG" "$GATEWAY_PORT" "$PUBLISHER_PORT" "$AGGREGATOR_PORT" "$BATCH_INGEST_PORT" \
    "$DEVICE_READER_PORT")
  timeout 120 "$PY" "$HERE/check.py" render "$HERE/values/kube-play.yaml" "$WORK/release.yaml" "$KUBE_VERSION" "$overrides"
  timeout 60 "$PY" "$HERE/check.py" kube-play-files "$WORK/release.yaml" "$WORK/app.yaml" "$WORK/secret.json" >"$WORK/info.txt"
  mapfile -t info <"$WORK/info.txt"
  SECRET_NAME=${info[0]}
  echo "kube play runs: Deployment, ConfigMap, Secret; checked statically only: ${info[1]}"
  # Podman 4.3 stores a Secret that kube play reads from YAML as YAML, but resolves secretKeyRef
  # only from secrets holding JSON: create the secret from the rendered Secret's data instead.
  echo "Secret $SECRET_NAME: created with podman secret create (JSON of its data), not through kube play"
  timeout 30 podman secret create "$SECRET_NAME" "$WORK/secret.json" >/dev/null
  # Without systemd, Podman cannot schedule the health checks it makes of the probes; it says
  # so on stderr and goes on (the probes are exercised below with --probe instead).
  if ! timeout 180 podman kube play --network "$NETWORK" "$WORK/app.yaml" >"$WORK/play.log" 2>&1; then
    cat "$WORK/play.log" >&2
    return 1
  fi
  grep -v -e 'unable to get systemd connection' -e '^[0-9a-f]\{64\}$' -e '^Pod:$' -e '^Container:$' -e '^$' "$WORK/play.log" || true
  # kube play exits 0 even when a container fails at once; the checks below tell.
  podman ps -a --format '{{.Names}}  {{.Status}}  {{.Ports}}' | grep -E "^$RUN_ID-" || true
}
step "kube play the rendered Deployments, ConfigMap and Secret" 300 app

ws() {
  local secret api_key
  secret=$("$PY" -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["auth"]["hmacSecret"])' "$HERE/values/kube-play.yaml")
  api_key=$("$PY" -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["auth"]["apiKey"])' "$HERE/values/kube-play.yaml")
  timeout 120 "$PY" "$HERE/ws_check.py" "http://127.0.0.1:$GATEWAY_PORT" "$secret" "$api_key"
}
step "WebSocket through the gateway pod: subscribe, publish, receive" 150 ws

# The other pods have no hostPort: probe their admin port from inside with the binary's own
# `--probe` (the images are distroless: no shell, no curl).
probe_pods() {
  local svc port container entry deadline
  for svc in "publisher:$PUBLISHER_PORT" "aggregator:$AGGREGATOR_PORT" "batch-ingest:$BATCH_INGEST_PORT" \
    "device-reader:$DEVICE_READER_PORT"; do
    port=${svc#*:} svc=${svc%%:*}
    container=$(podman ps --format '{{.Names}}' | grep -E "^$RUN_ID-$svc-pod-[0-9]+-$svc\$" | head -1)
    [ -n "$container" ] || { echo "$svc: no running container" >&2; return 1; }
    entry=$(podman inspect --format '{{.Config.Entrypoint}}' "$container") # a string in Podman 4.3
    entry=${entry%% *}
    deadline=$((SECONDS + 60))
    until timeout 10 podman exec "$container" "$entry" --probe "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
      if [ $SECONDS -ge $deadline ]; then
        echo "$svc: /readyz not 2xx within 60 s ($entry --probe)" >&2
        timeout 10 podman exec "$container" "$entry" --probe "http://127.0.0.1:$port/readyz" >&2 || true
        return 1
      fi
      sleep 1
    done
    # What the liveness probe and a ServiceMonitor would fetch on the same port.
    for path in /healthz /metrics; do
      timeout 10 podman exec "$container" "$entry" --probe "http://127.0.0.1:$port$path" >/dev/null 2>&1 ||
        { echo "$svc: $path on port $port is not 2xx" >&2; return 1; }
    done
    echo "$container: /readyz, /healthz, /metrics 2xx on port $port"
    if [ "$svc" = device-reader ]; then
      # The mock device of kube-play.yaml's deviceReader.configToml (ConfigMap file) is known.
      timeout 10 podman exec "$container" "$entry" --probe "http://127.0.0.1:$port/v1/devices/kube-mock-1" >/dev/null 2>&1 ||
        { echo "$svc: GET /v1/devices/kube-mock-1 is not 2xx (device table of the ConfigMap not read?)" >&2; return 1; }
      echo "$container: GET /v1/devices/kube-mock-1 2xx (device from deviceReader.configToml)"
    fi
  done
}
step "publisher, aggregator, batch-ingest, device-reader pods: /readyz, /healthz, /metrics (--probe)" 240 probe_pods

# Stopping the gateway as Kubernetes deletes a pod: SIGTERM to the container while the pod's
# network stays up. The gateway must tell its client to reconnect and close it with 1001
# (gateway.shutdown_delay, then the drain) within terminationGracePeriodSeconds. Podman 4.3's
# kube play ignores terminationGracePeriodSeconds (its containers get the default stop timeout,
# 10 s), and both `podman kube down` and `podman pod stop` take the pod's network down while the
# gateway is still draining, so the client would only see the socket vanish: the test stops the
# gateway container with `podman stop --time <terminationGracePeriodSeconds>` first.
drain() {
  local secret client_pid deadline container grace
  secret=$("$PY" -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["auth"]["hmacSecret"])' "$HERE/values/kube-play.yaml")
  grace=$("$PY" -c 'import sys,yaml; print(next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-gateway"))["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])' "$WORK/app.yaml")
  container=$(podman ps --format '{{.Names}}' | grep -E "^$RUN_ID-gateway-pod-[0-9]+-gateway\$" | head -1)
  timeout 120 "$PY" "$HERE/ws_check.py" "http://127.0.0.1:$GATEWAY_PORT" "$secret" --drain >"$WORK/drain.log" 2>&1 &
  client_pid=$!
  deadline=$((SECONDS + 30))
  until grep -q '^subscribed' "$WORK/drain.log"; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 $client_pid 2>/dev/null; then
      cat "$WORK/drain.log" >&2
      kill $client_pid 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
  echo "podman stop --time $grace $container (terminationGracePeriodSeconds $grace)"
  timeout $((grace + 30)) podman stop --time "$grace" "$container" >/dev/null 2>"$WORK/stop.log" ||
    { cat "$WORK/stop.log" >&2; return 1; }
  if ! wait $client_pid; then
    echo "the gateway did not drain its client:" >&2
    cat "$WORK/drain.log" >&2
    return 1
  fi
  cat "$WORK/drain.log"
  [ "$(podman inspect --format '{{.State.ExitCode}}' "$container")" = 0 ] ||
    { echo "$container exited with $(podman inspect --format '{{.State.ExitCode}}' "$container")" >&2; return 1; }
  echo "$container exited 0 after draining"
}
step "SIGTERM to the gateway: reconnect, close 1001, exit 0" 120 drain

down() {
  timeout 120 podman kube down "$WORK/app.yaml" >/dev/null 2>"$WORK/down.log" || { cat "$WORK/down.log" >&2; return 1; }
  timeout 60 podman kube down "$WORK/backends.yaml" >/dev/null 2>"$WORK/down.log" || { cat "$WORK/down.log" >&2; return 1; }
  rm -f "$WORK/app.yaml" "$WORK/backends.yaml"
  if podman ps -a --format '{{.Names}}' | grep -E "^$RUN_ID-"; then
    echo "containers left after podman kube down" >&2
    return 1
  fi
  echo "podman kube down removed every pod"
}
step "podman kube down" 180 down
