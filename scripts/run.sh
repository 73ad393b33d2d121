#!/usr/bin/env bash
# Builds and runs `switchboard`: every service in one process on the embedded engine, with
# the dashboard. Needs only the Rust toolchain. Extra arguments go to the binary
# (e.g. --config deploy/config/standalone.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -p switchboard-standalone --bin switchboard -- "$@"
