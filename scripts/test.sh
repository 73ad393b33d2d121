#!/usr/bin/env bash
# Runs the whole test suite: unit, contract (memory + real NATS/Redis), gateway integration,
# the JS client (unit, and integration against the real binary), a bounded fuzz run of every
# decoder (scripts/fuzz.sh), end-to-end against real nats-server and redis-server, the deploy
# files (local cluster, Helm, Compose), and the dashboard in headless Chromium. Installs
# nats-server, redis-server, Node.js and Chromium when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh

ensure_test_services

echo "==> cargo build (all targets, all features)" >&2
cargo build --workspace --all-targets --all-features

echo "==> cargo test" >&2
cargo test --workspace --all-features

ensure_browser_tools
ensure_dashboard

echo "==> JS client (clients/js): unit tests, integration against target/debug/switchboard" >&2
(cd clients/js && npm test)
echo "==> dashboard (clients/dashboard): type check and unit tests" >&2
(cd clients/dashboard && npm run typecheck --silent && npm test)

echo "==> fuzz (bounded)" >&2
scripts/fuzz.sh

echo "==> local cluster (deploy/local-cluster.sh, debug binaries)" >&2
tests/deploy/local-cluster-test.sh

echo "==> Helm chart: render, validate, podman kube play" >&2
tests/deploy/helm-test.sh target/debug

echo "==> Docker Compose: images, schema, podman-compose up, cluster checks, down" >&2
tests/deploy/compose-test.sh target/debug

ensure_node_packages tests/dashboard
echo "==> dashboard test (headless Chromium): embedded switchboard, then a two-gateway cluster" >&2
node --test --test-concurrency=1 tests/dashboard/
