#!/usr/bin/env bash
# The agent benchmark of docs/benchmarks.md: the static musl agent vs Debian's
# prometheus-node-exporter, 1,000 requests each, on the test bed. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
testbed/testbed.sh up
eval "$(testbed/testbed.sh env)"
cargo build --locked --release --target x86_64-unknown-linux-musl -p fleetdeck-agent
export FLEETDECK_AGENT_BIN=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-musl/release/fleetdeck-agent
ls -l "$FLEETDECK_AGENT_BIN"
cargo bench --locked -p fleetdeck-agent --bench snapshot_vs_node_exporter
