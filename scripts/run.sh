#!/usr/bin/env bash
# Runs Fleetdeck on this machine: a demo host (a systemd user manager with two apps, one of which
# crash-loops, and a podman container, via the test bed) watched by fleetdeck-agent on
# 127.0.0.1:7070, fleetdeck-collector on 127.0.0.1:7080 polling it, and the desktop app connected
# to that collector (its key put in the OS keyring). Prints an operator key and curl commands too.
# Ctrl-C stops everything; the demo apps stay (scripts/run.sh --clean removes them).
#   scripts/run.sh --demo         the desktop on a simulated fleet of six hosts instead
#   scripts/run.sh --no-desktop   agent and collector only (as before the desktop existed)
# Without a display (DISPLAY unset), the desktop opens on a virtual one (Xvfb) with its own D-Bus
# session, keyring and notification daemon; the script says how to take a screenshot.
# Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# Kept between runs (token, keys), and private: not a predictable /tmp path a root script writes.
state=${FLEETDECK_DEMO_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/fleetdeck-demo}
port=${FLEETDECK_DEMO_PORT:-7070}

source scripts/lib/desktop.sh
scripts/setup.sh
testbed/testbed.sh up
eval "$(testbed/testbed.sh env)"

clean() {
    systemctl --user stop fleetdeck-demo-web.service fleetdeck-demo-worker.service 2>/dev/null || true
    systemctl --user reset-failed fleetdeck-demo-web.service fleetdeck-demo-worker.service 2>/dev/null || true
    podman rm -f -t 0 fleetdeck-demo-cache >/dev/null 2>&1 || true
}
if [[ ${1:-} == --clean ]]; then clean; echo "demo apps removed"; exit 0; fi
mode=${1:-local}
cport=${FLEETDECK_COLLECTOR_PORT:-7080}
c=http://127.0.0.1:$cport
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# Builds the desktop (UI bundle with trunk, app with the UI embedded) and opens it on the
# collector at $c with key $1, under name $2.
desktop() {
    local key=$1 name=$2 tools=${FLEETDECK_TOOLS:-$HOME/.cache/fleetdeck-tools}
    export PATH=$HOME/.cargo/bin:$tools/npm/node_modules/.bin:$PATH
    (cd ui && trunk build --release)
    cargo build -p fleetdeck --features custom-protocol
    local app=${CARGO_TARGET_DIR:-$root/target}/debug/fleetdeck
    for _ in $(seq 1 100); do curl -sf "$c/healthz" >/dev/null && break; sleep 0.1; done
    if [[ -z ${DISPLAY:-} && -z ${WAYLAND_DISPLAY:-} ]]; then
        export XDG_DATA_HOME=$state/desktop-data FLEETDECK_CONFIG_DIR=$state/desktop-config
        mkdir -p "$XDG_DATA_HOME"
        virtual_display 77
        echo "No display: the desktop runs on the virtual display :77. Look at it with:"
        echo "  DISPLAY=:77 import -window root $state/screenshot.png"
        desktop_session bash -c 'echo "$1" | "$2" --add-collector "$3" --url "$4" --key-stdin --add-only && exec "$2"' \
            _ "$key" "$app" "$name" "$c"
    else
        echo "$key" | "$app" --add-collector "$name" --url "$c" --key-stdin --add-only
        "$app"
    fi
}

if [[ $mode == --demo ]]; then
    cargo build --release -p fleetdeck-collector
    demo_log=$(mktemp)
    "${CARGO_TARGET_DIR:-$root/target}/release/fleetdeck-collector" --demo --port "$cport" | tee "$demo_log" & pids+=($!)
    # (it stores 30 days of the fleet's past first: a few seconds)
    for _ in $(seq 1 1200); do grep -q 'operator key:' "$demo_log" && break; sleep 0.1; done
    key=$(sed -n 's/^ *operator key: *//p' "$demo_log")
    mkdir -p -m 0700 "$state"
    desktop "$key" demo
    exit 0
fi

clean
# systemd expands ${NAME} in command lines: the demo scripts use $NAME only.
systemd-run --user --quiet --unit=fleetdeck-demo-web.service \
    busybox sh -c 'i=0; while true; do i=$((i+1)); echo "GET /api/items 200 (request $i)"; sleep 2; done'
systemd-run --user --quiet --unit=fleetdeck-demo-worker.service \
    -p Restart=always -p RestartSec=5s -p StartLimitIntervalSec=0 \
    busybox sh -c 'echo "worker starting"; sleep 20; echo "worker: lost database connection" >&2; exit 3'
podman run -d --quiet --name fleetdeck-demo-cache "$TESTBED_IMAGE" \
    sh -c 'while true; do echo cache tick; sleep 5; done' >/dev/null

cargo build --release -p fleetdeck-agent -p fleetdeck-collector
mkdir -p -m 0700 "$state"
if [[ ! -s $state/agent.token ]]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$state/agent.token")
fi
if [[ ! -e $state/web.env ]]; then
    printf '# demo web app\nPORT=8080\nDATABASE_URL=postgres://demo:demo@localhost/demo\nFEATURE_FLAGS=beta\n' >"$state/web.env"
    chmod 600 "$state/web.env"
fi
cat >"$state/agent.toml" <<TOML
listen = ["127.0.0.1:$port"]
token_file = "agent.token"
systemd = "user"
sample_interval = "10s"

[[apps]]
name = "web"
systemd_unit = "fleetdeck-demo-web.service"
env_file = "$state/web.env"
allow_actions = true

[[apps]]
name = "worker"
systemd_unit = "fleetdeck-demo-worker.service"

[[apps]]
name = "cache"
docker_container = "fleetdeck-demo-cache"
allow_actions = true
TOML

cat >"$state/collector.toml" <<TOML
listen = ["127.0.0.1:$cport"]
database = "collector.db"
poll_interval = "10s"

[[agents]]
name = "demo-host"
url = "http://127.0.0.1:$port"
token_file = "agent.token"
TOML
bin=${CARGO_TARGET_DIR:-$root/target}/release
if [[ ! -s $state/operator.key ]]; then
    (umask 077 && "$bin/fleetdeck-collector" --config "$state/collector.toml" keys create --name demo-operator --role operator |
        tail -n 1 >"$state/operator.key")
fi
key=$(<"$state/operator.key")

"$bin/fleetdeck-agent" --config "$state/agent.toml" & pids+=($!)

cat <<MSG

Fleetdeck demo: agent on 127.0.0.1:$port, collector on $c ($state)
  operator key: $key
  fleet:   curl -s -H "Authorization: Bearer $key" $c/v1/fleet | jq .summary
  host:    curl -s -H "Authorization: Bearer $key" $c/v1/hosts/demo-host | jq '.apps[].status | {name, state}'
  metrics: curl -s -H "Authorization: Bearer $key" "$c/v1/hosts/demo-host/metrics?step=10s" | jq '.points[-1]'
  uptime:  curl -s -H "Authorization: Bearer $key" $c/v1/hosts/demo-host/apps/web/uptime | jq .ratio
  events:  curl -sN -H "Authorization: Bearer $key" $c/v1/events/stream
  logs:    curl -sN -H "Authorization: Bearer $key" $c/v1/hosts/demo-host/apps/web/logs/stream
  .env:    curl -s -H "Authorization: Bearer $key" $c/v1/hosts/demo-host/apps/web/env | jq .entries
  act:     curl -s -X POST -H "Authorization: Bearer $key" $c/v1/hosts/demo-host/apps/web/actions/restart | jq .status.state
  crash:   eval "\$(testbed/testbed.sh env)"; systemctl --user kill -s KILL fleetdeck-demo-web.service
  (the agent itself: token in $state/agent.token, http://127.0.0.1:$port)
Ctrl-C stops everything.

MSG
if [[ $mode == --no-desktop ]]; then
    "$bin/fleetdeck-collector" --config "$state/collector.toml"
else
    "$bin/fleetdeck-collector" --config "$state/collector.toml" & pids+=($!)
    desktop "$key" local
fi
