#!/usr/bin/env bash
# Brings the whole platform up on this machine, then deploys examples/hello and invokes it.
# Run it again and it only checks: nothing is restarted or redeployed that is already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bash "$ROOT/infra/setup.sh"

export WHARF_FUNCTIONS_DIR="${WHARF_FUNCTIONS_DIR:-$STATE/functions}"
export WHARF_BUILD_DIR="${WHARF_BUILD_DIR:-$STATE/builds}"
export WHARF_BUILDER_CACHE_DIR="${WHARF_BUILDER_CACHE_DIR:-$STATE/build-cache}"
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
