#!/usr/bin/env bash
# Brings the whole platform up on this machine, then deploys examples/hello and invokes it.
# Run it again and it only checks: nothing is restarted or redeployed that is already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bash "$ROOT/infra/setup.sh"

export WHARF_FUNCTIONS_DIR="${WHARF_FUNCTIONS_DIR:-$STATE/functions}"
# Builds happen outside the checkout: one per checkout under /var/lib/wharf. (Inside it, the
# platform's own node_modules would lie above every build folder; the builder ignores them, but
# nothing of the platform's tree belongs near a function's build.)
build_state="${WHARF_BUILD_STATE_DIR:-/var/lib/wharf/up-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)}"
export WHARF_BUILD_DIR="${WHARF_BUILD_DIR:-$build_state/builds}"
export WHARF_BUILDER_CACHE_DIR="${WHARF_BUILDER_CACHE_DIR:-$build_state/build-cache}"
port="${WHARF_API_PORT:-8080}"

for app in api builder runner; do
  pidfile="$RUN/$app.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then continue; fi
  log "starting $app (log: .wharf/logs/$app.log)"
  cd "$ROOT"
  nohup node --import tsx "apps/$app/src/main.ts" >>"$LOGS/$app.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
done
wait_for "the API on port $port" 30 curl -fsS "http://127.0.0.1:$port/health"

(cd "$ROOT" && node --import tsx infra/demo.ts)
