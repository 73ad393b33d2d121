#!/usr/bin/env bash
# Builds every container image the deploy files need, with Podman, on a machine without any
# registry access:
#
#   tests/deploy/build-images.sh [BIN_DIR]
#
# 1. Local stand-ins for the third-party images that deploy/Dockerfile (ARG RUNTIME_IMAGE) and
#    docker-compose.yml (image: …) name, tagged with exactly those names, made from Debian
#    packages and this host's binaries: the distroless runtime, NATS, Redis, nginx and Prometheus
#    (Grafana has no Debian package: it is left out and reported). Each stand-in follows its real
#    image's conventions where compose relies on them (entrypoint and command, config paths,
#    busybox wget / redis-cli for health checks, /data volumes).
# 2. The Switchboard images, from deploy/Dockerfile with --build-arg BINARIES=prebuilt: the
#    binaries of BIN_DIR (default target/debug, already built with `cargo build --workspace`)
#    are stripped into deploy/dist/ and copied from there, with the dashboard built by
#    ensure_dashboard (scripts/lib/deps.sh) in deploy/dist/dashboard/; the Rust builder and
#    Node stages are never used.
#
# Idempotent: a stand-in whose content did not change is not rebuilt; Switchboard images reuse
# Podman's layer cache. Prints one line per image: `image <name>`. Environment:
#   SWITCHBOARD_REGISTRY (default localhost), SWITCHBOARD_TAG (default dev): Switchboard image
#   names are $SWITCHBOARD_REGISTRY/switchboard/<target>:$SWITCHBOARD_TAG, as in docker-compose.yml.
#   CONTAINERS_CONF: see scripts/lib/deps.sh ensure_podman (set when unset).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh
ensure_podman

BIN_DIR=${1:-target/debug}
REGISTRY=${SWITCHBOARD_REGISTRY:-localhost}
TAG=${SWITCHBOARD_TAG:-dev}
WORK=$ROOT/target/deploy-images
TARGETS=(gateway publisher aggregator batch-ingest device-reader agent standalone mlnode-sim)
BINARIES=(switchboard-gateway switchboard-publisher switchboard-aggregator switchboard-batch-ingest
  switchboard-device-reader switchboard-agent switchboard switchboard-mlnode-sim)
mkdir -p "$WORK"

log() { echo "==> $*" >&2; }

# One build at a time (the compose and Helm tests share deploy/dist and the stand-in trees).
exec 9>"$WORK/.lock"
if ! flock -n 9; then
  log "waiting for another build-images.sh run"
  flock -w 900 9
fi

# ------------------------------------------------------------------------------------------
# Host material: busybox (shell and wget of the alpine-style images), Debian .debs unpacked
# without installing them (no service starts on this host).

ensure_command busybox busybox-static
BUSYBOX=$(command -v busybox)

# deb_root PACKAGE: prints a directory holding PACKAGE's files (downloaded and unpacked once).
deb_root() {
  local package=$1 dir=$WORK/debs/$1
  if [ ! -e "$dir/.unpacked" ]; then
    log "apt-get download $package"
    rm -rf "$dir" && mkdir -p "$dir"
    if ! (cd "$WORK/debs" && apt-get download "$package" >/dev/null 2>&1); then
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2   # package lists missing
      (cd "$WORK/debs" && apt-get download "$package" >/dev/null)
    fi
    dpkg-deb -x "$WORK"/debs/"${package}"_*.deb "$dir"
    rm -f "$WORK"/debs/"${package}"_*.deb
    touch "$dir/.unpacked"
  fi
  echo "$dir"
}

# add_with_libs ROOTFS SOURCE DEST: copies the executable SOURCE to ROOTFS/DEST with every
# shared library `ldd` lists (and the loader) at its path.
add_with_libs() {
  local rootfs=$1 source=$2 dest=$3 lib
  install -D -m 0755 "$source" "$rootfs$dest"
  for lib in $(ldd "$source" | grep -oE '/[^ ]+\.so[^ ]*'); do
    [ -e "$rootfs$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
  done
}

# add_busybox ROOTFS: /bin/busybox with an applet link for every command it has (sh, wget, …).
add_busybox() {
  local rootfs=$1 applet
  install -D -m 0755 "$BUSYBOX" "$rootfs/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
}

# add_accounts ROOTFS LINE...: /etc/passwd and /etc/group with root, nobody and the given
# "name:uid" accounts, and /tmp.
add_accounts() {
  local rootfs=$1 entry name id
  shift
  mkdir -p "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
  for entry in "$@"; do
    name=${entry%%:*} id=${entry#*:}
    echo "$name:x:$id:$id:$name:/home/$name:/sbin/nologin" >>"$rootfs/etc/passwd"
    echo "$name:x:$id:" >>"$rootfs/etc/group"
  done
}

# build_standin NAME ROOTFS CONTAINERFILE_BODY [OWNER]: builds NAME from ROOTFS (FROM scratch,
# COPY root/ /, then ROOTFS/../owned/ copied with --chown=OWNER, then the body) unless an image of
# that name already has the same content hash. COPY makes everything else root-owned, like the
# files of the real images.
build_standin() {
  local name=$1 rootfs=$2 body=$3 owner=${4:-} ctx hash current containerfile
  ctx=$(dirname "$rootfs")
  containerfile=$ctx.Containerfile
  {
    printf 'FROM scratch\nCOPY root/ /\n'
    [ -z "$owner" ] || printf 'COPY --chown=%s owned/ /\n' "$owner"
    printf '%s\nLABEL io.switchboard.standin="true"\n' "$body"
  } >"$containerfile"
  hash=$( (cd "$ctx" && find . -printf '%p %s %m %l\n' | LC_ALL=C sort && cat "$containerfile") | sha256sum | cut -c1-16)
  current=$(podman image inspect --format '{{index .Labels "io.switchboard.standin-hash"}}' "$name" 2>/dev/null || true)
  if [ "$current" = "$hash" ]; then
    log "stand-in $name is up to date"
  else
    log "building stand-in $name"
    podman build --quiet --format docker --label "io.switchboard.standin-hash=$hash" \
      -f "$containerfile" -t "$name" "$ctx" >/dev/null
  fi
  echo "image $name"
}

# fresh_rootfs KIND: prints an empty ROOTFS directory (and creates its sibling owned/).
fresh_rootfs() {
  local dir=$WORK/rootfs/$1
  rm -rf "$dir" "$dir.Containerfile"
  mkdir -p "$dir/root" "$dir/owned"
  echo "$dir/root"
}

# ------------------------------------------------------------------------------------------
# The stand-ins, one recipe per kind of image.

# Distroless cc (nonroot): glibc, libgcc, libstdc++, libgomp, OpenSSL, CA certificates, the
# nonroot user; no shell. Only what the real image holds, so a binary needing more fails here too.
standin_distroless() {
  local name=$1 rootfs file
  rootfs=$(fresh_rootfs distroless)
  add_accounts "$rootfs" nonroot:65532
  mkdir -p "$rootfs/../owned/home/nonroot"
  for file in $(dpkg -L libc6 libgcc-s1 libstdc++6 libgomp1 libssl3 2>/dev/null | grep -E '\.so(\.[0-9]+)*$'); do
    [ -e "$file" ] && [ ! -d "$file" ] && install -D -m 0755 "$(readlink -f "$file")" "$rootfs$file"
  done
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'PRETTY_NAME="Distroless stand-in (Debian 12 libraries)"\nID=debian\nVERSION_ID="12"\n' >"$rootfs/etc/os-release"
  # The binaries must find every library they need in it.
  local bin missing
  for bin in "${BINARIES[@]}"; do
    missing=$(ldd "$BIN_DIR/$bin" | grep -oE '/[^ ]+\.so[^ ]*' | while read -r lib; do
      [ -e "$rootfs$lib" ] || echo "$lib"
    done)
    if [ -n "$missing" ]; then
      echo "build-images: $bin needs libraries the runtime image does not have: $missing" >&2
      return 1
    fi
  done
  build_standin "$name" "$rootfs" 'USER 65532:65532
WORKDIR /home/nonroot' 65532:65532
}

# nats:*-alpine: nats-server in /usr/local/bin, docker-entrypoint.sh that prepends nats-server to
# flag-only commands, /etc/nats/nats-server.conf, busybox (wget for health checks).
standin_nats() {
  local name=$1 rootfs
  ensure_test_services
  rootfs=$(fresh_rootfs nats)
  add_accounts "$rootfs"
  add_busybox "$rootfs"
  add_with_libs "$rootfs" "$(command -v nats-server || echo /usr/sbin/nats-server)" /usr/local/bin/nats-server
  mkdir -p "$rootfs/etc/nats"
  printf '# stand-in default configuration\nport: 4222\nhttp_port: 8222\n' >"$rootfs/etc/nats/nats-server.conf"
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in entrypoint: a command made only of flags runs nats-server with them.
set -e
case "${1:-}" in "" | -*) set -- nats-server "$@" ;; esac
exec "$@"
EOF
  chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
  build_standin "$name" "$rootfs" 'ENV PATH=/usr/local/bin:/bin
EXPOSE 4222 6222 8222
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["nats-server", "--config", "/etc/nats/nats-server.conf"]'
}

# redis:*-alpine: redis-server and redis-cli in /usr/local/bin, /data as working directory,
# docker-entrypoint.sh that prepends redis-server to flag or .conf commands; protected mode off
# by default, as the official image builds it.
standin_redis() {
  local name=$1 rootfs
  ensure_test_services
  rootfs=$(fresh_rootfs redis)
  add_accounts "$rootfs" redis:999
  add_busybox "$rootfs"
  add_with_libs "$rootfs" "$(command -v redis-server)" /usr/local/bin/redis-server
  add_with_libs "$rootfs" "$(command -v redis-cli)" /usr/local/bin/redis-cli
  mkdir -p "$rootfs/data"
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in entrypoint: flags or a .conf file run redis-server; protected mode is off unless set.
set -e
case "${1:-}" in -* | *.conf) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ]; then
  case " $* " in *" --protected-mode "*) ;; *) set -- "$@" --protected-mode no ;; esac
fi
exec "$@"
EOF
  chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
  build_standin "$name" "$rootfs" 'ENV PATH=/usr/local/bin:/bin
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]'
}

# nginx:*-alpine: nginx with /etc/nginx/nginx.conf including /etc/nginx/conf.d/*.conf in the
# http block (mount a server there), logs to stdout/stderr, user nginx, busybox.
standin_nginx() {
  local name=$1 rootfs deb
  rootfs=$(fresh_rootfs nginx)
  deb=$(deb_root nginx)
  add_accounts "$rootfs" nginx:101
  add_busybox "$rootfs"
  add_with_libs "$rootfs" "$deb/usr/sbin/nginx" /usr/sbin/nginx
  mkdir -p "$rootfs/etc/nginx/conf.d" "$rootfs/var/lib/nginx" "$rootfs/var/log/nginx" "$rootfs/run" "$rootfs/var/lock"
  printf 'types {\n    text/html html;\n    text/plain txt;\n    application/json json;\n    application/javascript js;\n    text/css css;\n}\n' >"$rootfs/etc/nginx/mime.types"
  ln -s /dev/stdout "$rootfs/var/log/nginx/access.log"
  ln -s /dev/stderr "$rootfs/var/log/nginx/error.log"
  cat >"$rootfs/etc/nginx/nginx.conf" <<'EOF'
# stand-in main configuration: servers come from conf.d
user nginx;
worker_processes auto;
error_log /var/log/nginx/error.log notice;
pid /run/nginx.pid;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
EOF
  printf 'server {\n    listen 80;\n    location / { return 200 "stand-in default server\\n"; }\n}\n' >"$rootfs/etc/nginx/conf.d/default.conf"
  build_standin "$name" "$rootfs" 'ENV PATH=/usr/sbin:/bin
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]'
}

# prom/prometheus: /bin/prometheus, config /etc/prometheus/prometheus.yml, data /prometheus,
# user nobody, busybox.
standin_prometheus() {
  local name=$1 rootfs deb
  rootfs=$(fresh_rootfs prometheus)
  deb=$(deb_root prometheus)
  add_accounts "$rootfs"
  add_busybox "$rootfs"
  add_with_libs "$rootfs" "$deb/usr/bin/prometheus" /bin/prometheus
  mkdir -p "$rootfs/etc/prometheus"
  printf 'global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ["localhost:9090"]\n' >"$rootfs/etc/prometheus/prometheus.yml"
  mkdir -p "$rootfs/../owned/prometheus"
  build_standin "$name" "$rootfs" 'USER 65534:65534
EXPOSE 9090
VOLUME /prometheus
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' 65534:65534
}

# ------------------------------------------------------------------------------------------
# Which third-party images the files name (defaults of ${VAR:-default} taken as written).

for bin in "${BINARIES[@]}"; do
  [ -x "$BIN_DIR/$bin" ] || { echo "build-images: $BIN_DIR/$bin is missing (cargo build --workspace first)" >&2; exit 1; }
done

runtime_image=$(sed -n 's/^ARG RUNTIME_IMAGE=//p' deploy/Dockerfile)
mapfile -t compose_images < <(grep -oE '^\s+image:\s*\S+' docker-compose.yml | sed -E 's/^\s+image:\s*//; s/^"//; s/"$//' |
  sed -E 's/\$\{[A-Z_]+:-([^}]*)\}/\1/g' | grep -v '/switchboard/' | sort -u)

for image in "$runtime_image" "${compose_images[@]}"; do
  case "$image" in
    *distroless*) standin_distroless "$image" ;;
    */nats:*) standin_nats "$image" ;;
    */redis:*) standin_redis "$image" ;;
    */nginx:*) standin_nginx "$image" ;;
    */prometheus:*) standin_prometheus "$image" ;;
    *) log "no stand-in for $image (not available here; services using it cannot run in tests)" ;;
  esac
done

# ------------------------------------------------------------------------------------------
# Switchboard images from the prebuilt binaries.

mkdir -p deploy/dist
for bin in "${BINARIES[@]}"; do
  # Copied (without debug info) when the source binary differs from the one copied last time.
  source_id=$(stat -L -c '%i %s %Y' "$BIN_DIR/$bin")" $(readlink -f "$BIN_DIR/$bin")"
  if [ ! -e "deploy/dist/$bin" ] || [ "$(cat "$WORK/dist-$bin.source" 2>/dev/null)" != "$source_id" ]; then
    strip --strip-debug -o "deploy/dist/$bin.tmp" "$BIN_DIR/$bin"
    mv "deploy/dist/$bin.tmp" "deploy/dist/$bin"
    echo "$source_id" >"$WORK/dist-$bin.source"
  fi
done
# The dashboard as scripts/run.sh builds it (npm ci from the lock files, npm run build), for
# the gateway and standalone images.
ensure_dashboard
rm -rf deploy/dist/dashboard.tmp
cp -r clients/dashboard/dist deploy/dist/dashboard.tmp
rm -rf deploy/dist/dashboard
mv deploy/dist/dashboard.tmp deploy/dist/dashboard
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
for target in "${TARGETS[@]}"; do
  name=$REGISTRY/switchboard/$target:$TAG
  log "building $name"
  podman build --quiet --format docker -f deploy/Dockerfile --target "$target" \
    --build-arg BINARIES=prebuilt --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    -t "$name" . >/dev/null
  echo "image $name"
done
