#!/usr/bin/env bash
# The collector benchmarks of docs/benchmarks.md (no test bed needed: agents are simulated):
#   insert  samples written per second through the batched ingest path
#   bytes   database bytes per host-day, with raw samples and after rollups
#   poll    agents polled per 30 s at one saturated core (BENCH_AGENTS, default 5000; ~2 minutes)
#   all     all three (default). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
case ${1:-all} in
    insert|bytes|poll) cargo bench --locked -p fleetdeck-collector --bench collector -- "$1" ;;
    all) cargo bench --locked -p fleetdeck-collector --bench collector ;;
    *) echo "usage: $0 [insert|bytes|poll|all]" >&2; exit 2 ;;
esac
