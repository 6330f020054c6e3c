#!/usr/bin/env bash
# Stops what `npm run up` started: the three Wharf processes, then any service that setup started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_pid() { # NAME PIDFILE
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 0
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $1"
    kill -TERM "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$2"
}

for app in api builder runner; do stop_pid "$app" "$RUN/$app.pid"; done

if [[ -f "$RUN/started" ]]; then
  while read -r service version; do
    case "$service" in
      redis) stop_pid redis "$RUN/redis.pid" ;;
      dockerd) stop_pid dockerd "$RUN/dockerd.pid" ;;
      dockerd-h) stop_pid "Docker engine $version" "$HOSTS_RUN/h$version.pid" ;;
      registry) stop_pid registry "$HOSTS_RUN/registry.pid" ;;
      postgres) log "stopping PostgreSQL $version"; pg_ctlcluster "$version" main stop || true ;;
    esac
  done < "$RUN/started"
  rm -f "$RUN/started"
fi
