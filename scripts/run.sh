#!/usr/bin/env bash
# Runs Fleetdeck on this machine: a demo host (a systemd user manager with two apps, one of which
# crash-loops, and a podman container, via the test bed) watched by fleetdeck-agent on
# 127.0.0.1:7070, and fleetdeck-collector on 127.0.0.1:7080 polling it. Prints an operator key and
# curl commands to try. Ctrl-C stops both; the demo apps stay (scripts/run.sh --clean removes them).
# scripts/run.sh --demo runs the collector on a simulated fleet of six hosts instead.
# Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state=${FLEETDECK_DEMO_DIR:-/tmp/fleetdeck-demo}
port=${FLEETDECK_DEMO_PORT:-7070}

scripts/setup.sh
testbed/testbed.sh up
eval "$(testbed/testbed.sh env)"

clean() {
    systemctl --user stop fleetdeck-demo-web.service fleetdeck-demo-worker.service 2>/dev/null || true
    systemctl --user reset-failed fleetdeck-demo-web.service fleetdeck-demo-worker.service 2>/dev/null || true
    podman rm -f -t 0 fleetdeck-demo-cache >/dev/null 2>&1 || true
}
if [[ ${1:-} == --clean ]]; then clean; echo "demo apps removed"; exit 0; fi
if [[ ${1:-} == --demo ]]; then
    cargo build --release -p fleetdeck-collector
    exec "${CARGO_TARGET_DIR:-$root/target}/release/fleetdeck-collector" --demo --port "${FLEETDECK_COLLECTOR_PORT:-7080}"
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
mkdir -p "$state"
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

cport=${FLEETDECK_COLLECTOR_PORT:-7080}
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
c=http://127.0.0.1:$cport

"$bin/fleetdeck-agent" --config "$state/agent.toml" &
agent_pid=$!
trap 'kill $agent_pid 2>/dev/null || true' EXIT

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
Ctrl-C stops both.

MSG
"$bin/fleetdeck-collector" --config "$state/collector.toml"
