#!/usr/bin/env bash
# Collector soak (docs/reliability.md): the real collector binary polls AGENTS virtual agents
# (fleetdeck-sim-serve: one HTTP server, four apps per host, a sample every 10 s, as the poll
# benchmark) every 30 s for MINUTES, subscribed to every agent's event stream as in production.
# Every 10 s it samples the collector's RSS/PSS; the simulator logs every poll request it answers.
# At the end it writes summary.json and summary.txt (RSS after warm-up/end/max/slope, poll latency
# p50/p99/max, polls due vs seen, missed intervals; definitions in scripts/lib/soak_collector.py)
# and exits 1 if RSS grew by more than SOAK_MAX_GROWTH_MIB or any interval was missed.
#
#   scripts/soak-collector.sh [MINUTES=30] [AGENTS=2000]
#
# Environment: SOAK_STORE=postgres stores in a new database on the test bed's PostgreSQL
# (FLEETDECK_TEST_PG_URL and PGPASSFILE, from `testbed/testbed.sh env`; dropped at the end),
# sampling its size and the server's CPU; SOAK_INTERVAL (poll_interval in s, default 30), SOAK_SLACK (s, default 5),
# SOAK_MAX_GROWTH_MIB (default 16), SOAK_OUT (results, default
# ~/.cache/fleetdeck-soak/collector-<UTC time>), CARGO_TARGET_DIR. Loopback only; stops by itself
# and removes its temporary directory and processes, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-30}
agents=${2:-2000}
interval=${SOAK_INTERVAL:-30}
slack=${SOAK_SLACK:-5}
max_growth=${SOAK_MAX_GROWTH_MIB:-16}
[[ $minutes =~ ^[0-9]+$ && $minutes -ge 1 ]] || { echo "MINUTES must be a whole number >= 1 (got '$minutes')" >&2; exit 2; }
[[ $agents =~ ^[0-9]+$ && $agents -ge 1 ]] || { echo "AGENTS must be a whole number >= 1 (got '$agents')" >&2; exit 2; }
[[ $interval =~ ^[0-9]+$ && $interval -ge 1 ]] || { echo "SOAK_INTERVAL must be whole seconds >= 1 (got '$interval')" >&2; exit 2; }
# The collector's per-agent delay window: min(poll_interval / 10, 3 s) (collector/src/run.rs; each agent's place in it is a hash of its name, poll.rs `phase`).
jitter=$(python3 -c "print(min($interval / 10, 3))")

log() { printf '[soak-collector %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

out=${SOAK_OUT:-$HOME/.cache/fleetdeck-soak/collector-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
tmp=$(mktemp -d)
pids=()
pg_db=
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    [[ -z $pg_db ]] || psql "$FLEETDECK_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the release binaries"
cargo build --locked --release -p fleetdeck-collector -p fleetdeck-sim --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release

# A random bench token, one file for every virtual agent, mode 0600 as the collector requires.
python3 -c 'import secrets; print(secrets.token_hex(24))' >"$tmp/agent.token"
chmod 600 "$tmp/agent.token"
# /metrics is scraped every 30 s, as a Prometheus server would (its time and size in scrapes.csv).
python3 -c 'import secrets; print(secrets.token_hex(24))' >"$tmp/metrics.token"
chmod 600 "$tmp/metrics.token"

"$bin/fleetdeck-sim-serve" --hosts "$agents" --token-file "$tmp/agent.token" \
    --poll-log "$out/polls.log" >"$tmp/sim.out" 2>"$out/simulator.log" &
sim_pid=$!
pids+=("$sim_pid")
deadline=$((SECONDS + 60))
until grep -q '^PORT=' "$tmp/sim.out"; do
    kill -0 "$sim_pid" 2>/dev/null || { log "the simulator exited: $(cat "$out/simulator.log")"; exit 1; }
    ((SECONDS < deadline)) || { log "the simulator printed no port within 60 s"; exit 1; }
    sleep 0.1
done
sim_port=$(sed -n 's/^PORT=//p' "$tmp/sim.out")

database=collector.db
sample_db=(--db "$tmp/collector.db")
if [[ ${SOAK_STORE:-sqlite} == postgres ]]; then
    [[ -n ${FLEETDECK_TEST_PG_URL:-} && -n ${PGPASSFILE:-} ]] ||
        { log "SOAK_STORE=postgres needs FLEETDECK_TEST_PG_URL and PGPASSFILE: eval \"\$(testbed/testbed.sh env)\""; exit 2; }
    pg_db=soak_$(date -u +%Y%m%d%H%M%S)
    psql "$FLEETDECK_TEST_PG_URL" -qc "CREATE DATABASE $pg_db" >/dev/null
    database="${FLEETDECK_TEST_PG_URL%/*}/$pg_db?passfile=$PGPASSFILE"
    sample_db=(--pg-url "$database")
    log "storing in PostgreSQL: ${database%%\?*}"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
    printf 'listen = ["127.0.0.1:%s"]\ndatabase = "%s"\npoll_interval = "%ss"\n' "$port" "$database" "$interval"
    printf '[metrics]\ntoken_file = "metrics.token"\n'
    for ((i = 0; i < agents; i++)); do
        printf '\n[[agents]]\nname = "sim-%05d"\nurl = "http://127.0.0.1:%s/agents/%d"\ntoken_file = "agent.token"\n' \
            "$((i + 1))" "$sim_port" "$i"
    done
} >"$tmp/collector.toml"

log "simulator: $agents agents on 127.0.0.1:$sim_port (pid $sim_pid); starting the collector on 127.0.0.1:$port"
RUST_LOG=${RUST_LOG:-warn} "$bin/fleetdeck-collector" --config "$tmp/collector.toml" 2>"$out/collector.log" &
collector_pid=$!
pids+=("$collector_pid")
deadline=$((SECONDS + 60))
until curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    kill -0 "$collector_pid" 2>/dev/null || { log "the collector exited: $(tail -5 "$out/collector.log")"; exit 1; }
    ((SECONDS < deadline)) || { log "the collector did not answer /healthz within 60 s"; exit 1; }
    sleep 0.2
done
log "collector up (pid $collector_pid); sampling for $minutes min into $out"

rc=0
python3 scripts/lib/soak_collector.py sample --collector-pid "$collector_pid" --sim-pid "$sim_pid" "${sample_db[@]}" \
    --metrics-url "http://127.0.0.1:$port/metrics" --metrics-token "$tmp/metrics.token" \
    --seconds "$((minutes * 60))" --out "$out" || rc=$?

# Stop the collector, then the simulator (SIGTERM: it flushes its poll log), before the analysis.
for pid in "$collector_pid" "$sim_pid"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done
pids=()
((rc == 0)) || { log "the run ended early; logs in $out"; exit 1; }

log "collector warnings: $(grep -c 'WARN' "$out/collector.log" || true), errors: $(grep -c 'ERROR' "$out/collector.log" || true)"
python3 scripts/lib/soak_collector.py analyze --poll-log "$out/polls.log" --agents "$agents" \
    --interval "$interval" --jitter "$jitter" --slack "$slack" --max-growth-mib "$max_growth" \
    --out "$out" || rc=$?
log "summary: $out/summary.txt and $out/summary.json"
exit "$rc"
