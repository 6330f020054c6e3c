#!/usr/bin/env bash
# Installs what is missing and starts what is not running: Debian packages (Docker engine, Redis,
# PostgreSQL), npm dependencies, the three services, the database and the base runtime image.
# Idempotent, and quick when everything is already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- Debian packages -------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v curl >/dev/null || missing+=(curl)
# The base image's shell for custom runtimes: it must be the static build.
[[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
# The tests compile the example custom runtime written in C, statically.
[[ -e /usr/lib/x86_64-linux-gnu/libc.a || -e /usr/lib/aarch64-linux-gnu/libc.a ]] && command -v cc >/dev/null || missing+=(gcc libc6-dev)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- npm dependencies ------------------------------------------------------------------------
lock_hash=$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)
if [[ ! -d "$ROOT/node_modules" || "$(cat "$STATE/npm-lock.sha256" 2>/dev/null)" != "$lock_hash" ]]; then
  log "installing npm dependencies"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$STATE/npm-lock.sha256"
fi

# --- Redis -----------------------------------------------------------------------------------
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting redis"
  mkdir -p "$STATE/redis"
  redis-server "$ROOT/infra/redis.conf" --dir "$STATE/redis" --daemonize yes \
    --pidfile "$RUN/redis.pid" --logfile "$LOGS/redis.log"
  wait_for redis 10 redis-cli -h 127.0.0.1 -p 6379 ping
  mark_started redis
fi

# --- PostgreSQL ------------------------------------------------------------------------------
pg_version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$pg_version main"; then
  log "creating PostgreSQL cluster $pg_version/main"
  pg_createcluster "$pg_version" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1==v && $2=="main" {print $4}' | grep -q online; then
  log "starting PostgreSQL $pg_version"
  pg_ctlcluster "$pg_version" main start
  mark_started "postgres $pg_version"
fi
wait_for postgresql 20 su postgres -c "psql -qAtc 'select 1'"
psql_admin() { su postgres -c "psql -qAt -v ON_ERROR_STOP=1 -c \"$1\""; }
if [[ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'wharf'")" != 1 ]]; then
  log "creating database role wharf"
  # CREATEDB: the test suite gives each run a database of its own.
  psql_admin "CREATE ROLE wharf LOGIN CREATEDB PASSWORD 'wharf'" >/dev/null
fi
if [[ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'wharf'")" != 1 ]]; then
  log "creating database wharf"
  psql_admin "CREATE DATABASE wharf OWNER wharf" >/dev/null
fi

# --- Docker engine ---------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  log "starting the Docker engine"
  # An engine that was killed leaves its pid file, and dockerd refuses to start past it.
  if [[ -f "$RUN/dockerd.pid" ]] && ! ps -p "$(cat "$RUN/dockerd.pid")" -o comm= 2>/dev/null | grep -qx dockerd; then rm -f "$RUN/dockerd.pid"; fi
  # Functions run with no network at all, so the engine needs neither a bridge nor iptables.
  nohup dockerd --bridge none --iptables=false --pidfile "$RUN/dockerd.pid" >>"$LOGS/dockerd.log" 2>&1 < /dev/null &
  wait_for "the Docker engine" 60 docker info
  mark_started dockerd
fi

# --- Base runtime image ----------------------------------------------------------------------
node_version=$(node --version)
want="$node_version/$BASE_IMAGE_RECIPE"
have=$(docker image inspect --format '{{index .Config.Labels "wharf.node-version"}}/{{index .Config.Labels "wharf.base-recipe"}}' "$WHARF_BASE_IMAGE" 2>/dev/null || true)
if [[ -z "$have" ]] && ! docker image inspect "$WHARF_BASE_IMAGE" >/dev/null 2>&1; then
  if [[ "$WHARF_BASE_IMAGE" == wharf/runtime-node:* ]]; then
    log "building base image $WHARF_BASE_IMAGE"
    bash "$ROOT/infra/base-image.sh" "$WHARF_BASE_IMAGE"
  else
    log "pulling base image $WHARF_BASE_IMAGE"
    docker pull "$WHARF_BASE_IMAGE"
  fi
elif [[ "$WHARF_BASE_IMAGE" == wharf/runtime-node:* && "$have" != "$want" ]]; then
  log "rebuilding base image $WHARF_BASE_IMAGE: want Node/recipe $want, image has ${have:-none}"
  bash "$ROOT/infra/base-image.sh" "$WHARF_BASE_IMAGE"
fi
log "services ready (redis, postgresql, docker, base image $WHARF_BASE_IMAGE)"
