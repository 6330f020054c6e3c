# Shared by the infra scripts: paths, and a record of what Wharf started so `down` stops only that.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/.wharf"
RUN="$STATE/run"
LOGS="$STATE/logs"
mkdir -p "$RUN" "$LOGS"
: "${WHARF_BASE_IMAGE:=wharf/runtime-node:20}"
export WHARF_BASE_IMAGE
# Bumped whenever base-image.sh puts something new in the image, so that setup rebuilds it.
BASE_IMAGE_RECIPE=3

log() { printf '[wharf] %s\n' "$*" >&2; }

# wait_for DESCRIPTION SECONDS COMMAND...
wait_for() {
  local what=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what did not become ready within ${seconds}s"
  return 1
}

mark_started() { grep -qx "$1" "$RUN/started" 2>/dev/null || echo "$1" >> "$RUN/started"; }

# Extra container hosts (infra/hosts.sh): system-wide like the main engine, shared by checkouts.
HOSTS_STATE=/var/lib/wharf-hosts
HOSTS_RUN=/run/wharf-hosts
: "${WHARF_TEST_REGISTRY:=127.0.0.1:5055}"
host_socket() { echo "$HOSTS_RUN/h$1.sock"; }
