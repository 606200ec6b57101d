#!/usr/bin/env bash
# Desktop benchmarks (docs/benchmarks.md): cold start to first paint of the fleet and resident
# memory of the app with its WebKit processes, on a 50-host demo fleet, on a virtual display.
# Release builds. Usage: scripts/bench-desktop.sh [hosts (50)] [runs (5)]
#   or: scripts/bench-desktop.sh memory [minutes (10)] [hosts (50)]: memory over time with an app's
#       log following (every demo app logs every 20 ms), sampled every 30 s (e2e/bench_memory.py).
#   or: scripts/bench-desktop.sh floor: the engine's own floor, WebKitGTK's MiniBrowser showing
#       about:blank, by process and mapping as BENCH_MODE=smaps shows the app (e2e/bench_smaps.py).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
tools=${FLEETDECK_TOOLS:-$HOME/.cache/fleetdeck-tools}
export PATH=$HOME/.cargo/bin:$tools/npm/node_modules/.bin:$PATH
mode=${BENCH_MODE:-startup}
if [[ ${1:-} == floor ]]; then
    source scripts/lib/desktop.sh
    scripts/setup.sh
    work=$(mktemp -d /tmp/fleetdeck-bench.XXXXXX)
    pids=()
    trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
    virtual_display $((90 + RANDOM % 100))
    export XDG_DATA_HOME=$work/data XDG_CONFIG_HOME=$work/config XDG_CACHE_HOME=$work/cache \
        BENCH_APP=$(pkg-config --variable=libdir webkit2gtk-4.1)/webkit2gtk-4.1/MiniBrowser \
        BENCH_APP_ARGS=about:blank
    echo "WebKitGTK $(pkg-config --modversion webkit2gtk-4.1) MiniBrowser on about:blank, $(nproc) cores, $(date -u +%F)"
    desktop_session python3 e2e/bench_smaps.py
    exit
elif [[ ${1:-} == memory ]]; then
    mode=memory; shift
    export BENCH_MINUTES=${1:-10}
    hosts=${2:-50}
else
    hosts=${1:-50}
    export BENCH_RUNS=${2:-5}
fi

source scripts/lib/desktop.sh
scripts/setup.sh
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then # BENCH_NO_BUILD=1: measure the binaries as built
    (cd ui && trunk build --release)
    cargo build --locked --release -p fleetdeck --features custom-protocol
    cargo build --locked --release -p fleetdeck-collector
fi

work=$(mktemp -d /tmp/fleetdeck-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port=$(free_port)
chatty=()
# (BENCH_LOG_EVERY: how often each demo app logs in the memory bench, or with DIAG_FOLLOW=1)
[[ $mode == memory || ${DIAG_FOLLOW:-0} == 1 ]] && chatty=(--log-every "${BENCH_LOG_EVERY:-20ms}")
# (no stored history: the window measured is the live fleet's, and 50 hosts' 30 days take a while)
"$target/release/fleetdeck-collector" --demo --port "$port" --hosts "$hosts" --history-days 0 "${chatty[@]}" >"$work/demo.log" 2>&1 & pids+=($!)
for _ in $(seq 1 300); do grep -q 'operator key:' "$work/demo.log" && break; sleep 0.1; done
key=$(sed -n 's/^ *operator key: *//p' "$work/demo.log")
[[ -n $key ]] || { cat "$work/demo.log"; exit 1; }

virtual_display $((90 + RANDOM % 100))
export FLEETDECK_CONFIG_DIR=$work/config XDG_DATA_HOME=$work/data XDG_STATE_HOME=$work/state \
    XDG_CONFIG_HOME=$work/xdg-config BENCH_APP=$target/release/fleetdeck \
    BENCH_COLLECTOR_URL=http://127.0.0.1:$port BENCH_KEY=$key
mkdir -p "$work/data"
# At most 10 notifications shown at once (as in the desktop E2E): the demo raises ~14 a minute,
# and dunst redrawing hundreds of them took most of a core by the end of a long soak.
printf '[global]\n    notification_limit = 10\n' >"$work/dunstrc"
export DUNST_CONFIG=$work/dunstrc
echo "fleet: $hosts hosts x 4 apps (fleetdeck-collector --demo), $(nproc) cores, $(date -u +%F)"
# store the demo collector (key into the keyring) without opening a window, then measure
desktop_session bash -c '
    echo "$1" | "$BENCH_APP" --add-collector demo --url "$2" --key-stdin --add-only
    python3 "e2e/bench_$3.py"
' _ "$key" "http://127.0.0.1:$port" "$mode"
