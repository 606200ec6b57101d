#!/usr/bin/env bash
# The agent benchmarks of docs/benchmarks.md, on the test bed with the static musl agent:
#   snapshot  RSS and CPU per snapshot vs Debian's prometheus-node-exporter, 1,000 requests each
#   crash     SIGKILL -> /v1/events latency, 100 kills of a unit and of a container
#   soak      SOAK_SECS (600) of polling with journald and container log follows and the events
#             stream open at once: the RSS curve and stream health (exits 1 on a lost line)
#   checks    RSS and CPU of the agent with 10 HTTP checks at 1 s against a local server, beside
#             the same agent without checks, CHECKS_SECS (60) each
#   all       snapshot and crash (default). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
testbed/testbed.sh up
eval "$(testbed/testbed.sh env)"
cargo build --locked --profile agent-release --target x86_64-unknown-linux-musl -p fleetdeck-agent
export FLEETDECK_AGENT_BIN=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-musl/agent-release/fleetdeck-agent
ls -l "$FLEETDECK_AGENT_BIN"
case ${1:-all} in
    snapshot) cargo bench --locked -p fleetdeck-agent --bench snapshot_vs_node_exporter ;;
    crash) cargo bench --locked -p fleetdeck-agent --bench crash_events ;;
    soak) cargo bench --locked -p fleetdeck-agent --bench soak ;;   # SOAK_SECS=600 by default
    checks) cargo bench --locked -p fleetdeck-agent --bench checks_load ;;   # CHECKS_SECS=60 by default
    all)
        cargo bench --locked -p fleetdeck-agent --bench snapshot_vs_node_exporter
        cargo bench --locked -p fleetdeck-agent --bench crash_events ;;
    *) echo "usage: $0 [snapshot|crash|soak|checks|all]" >&2; exit 2 ;;
esac
