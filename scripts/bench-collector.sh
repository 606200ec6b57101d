#!/usr/bin/env bash
# The collector benchmarks of docs/benchmarks.md (insert, bytes and poll simulate their agents;
# crash runs a real agent on the test bed):
#   insert  samples written per second through the batched ingest path
#   bytes   database bytes per host-day, with raw samples and after rollups
#   poll    agents polled per 30 s at one saturated core (BENCH_AGENTS, default 5000; ~2 minutes)
#   crash   SIGKILL of a unit -> event on the collector's /v1/events/stream, 50 rounds (test bed)
#   streams 500 stream clients hammering one agent through the collector for 60 s (BENCH_SECS):
#           the agent's /healthz, other hosts' polls, memory, threads, descriptors (test bed)
#   all     insert, bytes and poll (default). Run as root on Debian 12.
# FLEETDECK_BENCH_STORE=postgres: insert, bytes and poll store in PostgreSQL (the test bed's
# server, started here) instead of SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [[ ${FLEETDECK_BENCH_STORE:-} == postgres ]]; then
    testbed/testbed.sh pg up
    eval "$(testbed/testbed.sh env | grep -E 'FLEETDECK_TEST_PG_URL|PGPASSFILE')"
fi
case ${1:-all} in
    crash)
        testbed/testbed.sh up
        eval "$(testbed/testbed.sh env)"
        cargo build --locked --release -p fleetdeck-agent
        cargo bench --locked -p fleetdeck-collector --bench crash_to_stream ;;
    streams)
        testbed/testbed.sh up
        eval "$(testbed/testbed.sh env)"
        cargo build --locked --release -p fleetdeck-agent
        cargo bench --locked -p fleetdeck-collector --bench stream_load ;;
    insert|bytes|poll) cargo bench --locked -p fleetdeck-collector --bench collector -- "$1" ;;
    all) cargo bench --locked -p fleetdeck-collector --bench collector ;;
    *) echo "usage: $0 [insert|bytes|poll|crash|streams|all]" >&2; exit 2 ;;
esac
