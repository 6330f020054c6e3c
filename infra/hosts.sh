#!/usr/bin/env bash
# More container hosts on this one machine, for the multi-host tests and the soak: an image
# registry on loopback and Docker engines 2..WHARF_HOSTS (engine 1 is the one setup.sh starts),
# each a separate host — own data root, exec root, socket and pid file, no bridge. Like the main
# engine they live outside the checkout (any checkout reuses them). Idempotent, quick when up.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

hosts=${WHARF_HOSTS:-3}

if ! command -v docker-registry >/dev/null; then
  log "installing docker-registry"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker-registry >/dev/null
  # The package starts its own service on :5000; Wharf runs its own, on loopback only.
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# --- registry --------------------------------------------------------------------------------
mkdir -p "$HOSTS_STATE/registry" "$HOSTS_RUN"
if ! curl -fsS "http://$WHARF_TEST_REGISTRY/v2/" >/dev/null 2>&1; then
  log "starting the image registry on $WHARF_TEST_REGISTRY"
  cat > "$HOSTS_RUN/registry.yml" <<EOF
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $HOSTS_STATE/registry }
  delete: { enabled: true }
http: { addr: $WHARF_TEST_REGISTRY }
EOF
  nohup docker-registry serve "$HOSTS_RUN/registry.yml" >>"$LOGS/registry.log" 2>&1 < /dev/null &
  echo $! > "$HOSTS_RUN/registry.pid"
  wait_for "the registry" 20 curl -fsS "http://$WHARF_TEST_REGISTRY/v2/"
  mark_started registry
fi

# --- engines 2..N ----------------------------------------------------------------------------
for n in $(seq 2 "$hosts"); do
  socket=$(host_socket "$n")
  if DOCKER_HOST="unix://$socket" docker info >/dev/null 2>&1; then continue; fi
  log "starting Docker engine $n (unix://$socket)"
  mkdir -p "$HOSTS_STATE/h$n" "$HOSTS_RUN/h$n"
  # An engine that was killed leaves its pid file, and dockerd refuses to start past it.
  pidfile="$HOSTS_RUN/h$n.pid"
  if [[ -f "$pidfile" ]] && ! ps -p "$(cat "$pidfile")" -o comm= 2>/dev/null | grep -qx dockerd; then rm -f "$pidfile"; fi
  # Its containers cannot outlive the restart (no live-restore); shims orphaned by a crash, and a
  # container start they were in the middle of, would otherwise stay behind for good.
  pkill -KILL -f "containerd-shim.* -address $HOSTS_RUN/h$n/containerd/containerd.sock" 2>/dev/null || true
  # Loopback registries need no TLS (the engine allows plain HTTP for 127.0.0.0/8).
  nohup dockerd --data-root "$HOSTS_STATE/h$n" --exec-root "$HOSTS_RUN/h$n" --host "unix://$socket" \
    --pidfile "$HOSTS_RUN/h$n.pid" --bridge none --iptables=false >>"$LOGS/dockerd-h$n.log" 2>&1 < /dev/null &
  wait_for "Docker engine $n" 60 env DOCKER_HOST="unix://$socket" docker info
  mark_started "dockerd-h $n"
done
log "hosts ready (registry $WHARF_TEST_REGISTRY, engines 1..$hosts)"
