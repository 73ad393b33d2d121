# Installs what the scripts need on a fresh Debian machine, only when it is missing.
# Sourced by scripts/test.sh; every function is idempotent.

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    echo "==> apt-get update" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  echo "==> apt-get install $*" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# ensure_command COMMAND PACKAGE: installs PACKAGE when COMMAND is not on PATH (or in /usr/sbin).
ensure_command() {
  local command=$1 package=$2
  if ! command -v "$command" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$command" ] && [ ! -x "/usr/bin/$command" ]; then
    apt_install "$package"
  fi
}

ensure_test_services() {
  ensure_command nats-server nats-server
  ensure_command redis-server redis-server
}

ensure_browser_tools() {
  ensure_command node nodejs
  ensure_command npm npm
  ensure_command chromium chromium
}

# ensure_node_packages DIR: installs DIR's locked npm packages when node_modules is missing or stale.
ensure_node_packages() {
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    echo "==> npm ci in $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2 && touch node_modules)
  fi
}

# ensure_dashboard: builds the JS client (clients/js) and the web dashboard on it
# (clients/dashboard) into their dist/ directories, from their npm lock files. Installs Node.js
# and npm through apt when missing. Both builds take seconds, so they always run: a stale
# dashboard can never be served. Prints nothing on stdout.
ensure_dashboard() {
  ensure_command node nodejs
  ensure_command npm npm
  local package
  for package in clients/js clients/dashboard; do
    ensure_node_packages "$package"
    echo "==> npm run build in $package" >&2
    (cd "$package" && npm run build --silent >&2)
  done
}

# ensure_python_venv DIR REQUIREMENTS: a virtualenv at DIR with the pinned packages of
# REQUIREMENTS (a pip lock file: every package, transitive ones included, with ==), rebuilt when
# the file is newer than the venv. Installs python3 and its venv module through apt when missing.
ensure_python_venv() {
  local dir=$1 requirements=$2
  ensure_command python3 python3
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then apt_install python3-venv; fi
  if [ ! -x "$dir/bin/python" ] || [ "$requirements" -nt "$dir/.installed" ]; then
    echo "==> python venv $dir from $requirements" >&2
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements" >&2
    touch "$dir/.installed"
  fi
}

# ensure_podman: Podman and runc from Debian, and CONTAINERS_CONF pointed at the project's
# containers.conf (runc instead of crun, cgroupfs, ulimits the sandbox allows; see deploy/podman).
ensure_podman() {
  ensure_command podman podman
  ensure_command runc runc
  # kube play's pods need the pause binary.
  ensure_command catatonit catatonit
  export CONTAINERS_CONF="${CONTAINERS_CONF:-$(pwd)/deploy/podman/containers.conf}"
}

# cargo-fuzz, pinned; scripts/fuzz.sh runs it on the stable toolchain with RUSTC_BOOTSTRAP=1.
CARGO_FUZZ_VERSION=0.13.2
ensure_cargo_fuzz() {
  # libFuzzer itself is C++, built by libfuzzer-sys.
  ensure_command c++ g++
  if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    echo "==> cargo install cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked >&2
  fi
}
