#!/usr/bin/env bash
# Builds and runs `switchboard`: every service in one process on the embedded engine, with
# demo data and the web dashboard. Needs the Rust toolchain; installs Node.js through apt when
# missing to build the dashboard (clients/dashboard). Extra arguments go to the binary
# (e.g. --config deploy/config/standalone.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh

ensure_dashboard
export SWITCHBOARD__GATEWAY__DASHBOARD_DIR="${SWITCHBOARD__GATEWAY__DASHBOARD_DIR:-$PWD/clients/dashboard/dist}"
exec cargo run --release -p switchboard-standalone --bin switchboard -- "$@"
