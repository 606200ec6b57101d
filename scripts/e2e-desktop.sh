#!/usr/bin/env bash
# The desktop's end-to-end test: builds the UI (trunk) and the app (with its UI embedded), starts a
# real agent watching a real systemd unit of the test bed and a real collector polling it, then,
# on a virtual display (Xvfb) inside a fresh D-Bus session with gnome-keyring and dunst, drives
# the real app through tauri-driver + WebKitWebDriver (e2e/desktop.py). Screenshots of each view go
# to $E2E_SHOTS (default: the target dir's e2e-shots/).
# Needs the test bed up and its environment (scripts/test.sh does both) and scripts/setup.sh run.
# Usage: scripts/e2e-desktop.sh [--release] [script.py]   (default e2e/desktop.py; the log view
# benchmark, e2e/bench_logs.py, runs on the same harness)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
tools=${FLEETDECK_TOOLS:-$HOME/.cache/fleetdeck-tools}
export PATH=$HOME/.cargo/bin:$tools/npm/node_modules/.bin:$PATH
: "${TESTBED_DIR:?run eval \"\$(testbed/testbed.sh env)\" first}"

log() { printf '[e2e] %s\n' "$*" >&2; }
source scripts/lib/desktop.sh
profile=debug; release=()
if [[ ${1:-} == --release ]]; then profile=release; release=(--release); shift; fi
script=${1:-e2e/desktop.py}

if [[ ${E2E_NO_BUILD:-0} != 1 ]]; then # E2E_NO_BUILD=1: use the binaries as built (benchmarks)
    log "building the UI and the app"
    (cd ui && trunk build --release)
    cargo build --locked "${release[@]}" -p fleetdeck --features custom-protocol
    cargo build --locked -p fleetdeck-agent -p fleetdeck-collector
fi
app=$target/$profile/fleetdeck

work=$(mktemp -d /tmp/fleetdeck-e2e.XXXXXX)
shots=${E2E_SHOTS:-$target/e2e-shots}
rm -rf "$shots"; mkdir -p "$shots"
unit=fleetdeck-e2e-web-$$.service
burst=fleetdeck-e2e-burst-$$.service
echo_unit=fleetdeck-e2e-echo-$$.service
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    keep_logs_for_the_secrets_check
    systemctl --user stop "$unit" "$burst" "$echo_unit" 2>/dev/null || true
    systemctl --user reset-failed "$unit" "$burst" "$echo_unit" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# With FLEETDECK_TEST_LOGS set (scripts/test.sh), the daemons' logs and every secret this run used go
# there for scripts/check-secrets.sh. (The driver's log is left out: it holds what the test typed.)
keep_logs_for_the_secrets_check() {
    local dir=${FLEETDECK_TEST_LOGS:-}
    [[ -n $dir ]] || return 0
    mkdir -p "$dir"
    for f in agent joined collector; do
        [[ -f $work/$f.log ]] && cp "$work/$f.log" "$dir/e2e-desktop-$f-$$.log"
    done
    for f in "$work"/state/fleetdeck/fleetdeck*.log; do # the app's own log file
        [[ -f $f ]] && cp "$f" "$dir/e2e-desktop-app-$$-$(basename "$f")"
    done
    (
        umask 077
        [[ -s $work/agent.token ]] && cat "$work/agent.token" && echo
        [[ -s $work/joined.token ]] && cat "$work/joined.token" && echo
        [[ -n ${key:-} ]] && echo "$key"
        printf '%s\n' s3cr3t-e2e bonjour-e2e stale-write
    ) >>"$dir/secrets.txt"
}

wait_listening() { # log file, what
    for _ in $(seq 1 150); do grep -q 'listening addr=' "$1" 2>/dev/null && return 0; sleep 0.2; done
    log "$2 did not start:"; cat "$1" >&2; return 1
}

# The app under test: prints a line each half second and whatever the test writes to its say-file
# (with the shell's own echo: journald cannot tell which unit a line of a process that already
# exited came from, so `cat` would lose the line's unit). A line written to its die-file is its
# last: it prints it and exits with code 3 (a crash whose context names that line).
say=$work/say
die=$work/die
printf 'PORT=8080\nGREETING=hello\nAPI_TOKEN=s3cr3t-e2e\n' >"$work/web.env"
chmod 600 "$work/web.env"
# (no start limit: the crash benchmark kills and starts it many times in a row)
systemd-run --user --quiet --unit="$unit" -p StartLimitIntervalSec=0 busybox sh -c \
    "i=0; while true; do i=\$((i+1)); if [ -f $say ]; then read -r said <$say; rm -f $say; echo \"\$said\"; fi; if [ -f $die ]; then read -r last <$die; rm -f $die; echo \"\$last\"; exit 3; fi; echo \"tick \$i\"; sleep 0.5; done"

# A second app for the log view benchmark: every 10 ms it writes as many lines as $work/rate says
# (0 at first), numbered, and the last number to $work/burst.seq. Journald's rate limit is off for it.
echo 0 >"$work/rate"
systemd-run --user --quiet --unit="$burst" -p LogRateLimitIntervalSec=0 busybox sh -c \
    "n=0; while true; do read -r r <$work/rate; j=0; while [ \$j -lt \$r ]; do n=\$((n+1)); echo \"burst \$n\"; j=\$((j+1)); done; echo \$n >$work/burst.seq; sleep 0.01; done"

# A third, for the log latency benchmark: it echoes each line written to its FIFO at once.
mkfifo "$work/echo.fifo"
systemd-run --user --quiet --unit="$echo_unit" busybox sh -c \
    "while true; do while read -r line; do echo \"\$line\"; done <$work/echo.fifo; done"

aport=$(free_port); cport=$(free_port); dead=$(free_port); closed=$(free_port)
# A TCP check to a port nobody listens on: the web app is degraded. E2E_CHECKS=0 leaves it out
# (an agent without endpoint checks refuses the table).
checks=""
if [[ ${E2E_CHECKS:-1} != 0 ]]; then
    checks=$(printf '[[apps.checks]]\nname = "port"\ntcp = "127.0.0.1:%s"\ninterval = "2s"\ntimeout = "1s"\n' "$closed")
fi
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/agent.token")
cat >"$work/agent.toml" <<TOML
listen = ["127.0.0.1:$aport"]
token_file = "agent.token"
systemd = "user"
sample_interval = "2s"

[[apps]]
name = "web"
systemd_unit = "$unit"
env_file = "$work/web.env"
allow_actions = true
$checks

[[apps]]
name = "burst"
systemd_unit = "$burst"

[[apps]]
name = "echo"
systemd_unit = "$echo_unit"
TOML
# A webhook receiver, so the test sees what the collector sends (a silenced crash: nothing).
hport=$(free_port)
: >"$work/webhooks.log"
python3 "$root/e2e/webhook_receiver.py" "$hport" "$work/webhooks.log" & pids+=($!)
(umask 077 && cat >"$work/collector.toml") <<TOML
listen = ["127.0.0.1:$cport"]
database = "collector.db"
poll_interval = "2s"

[alerts]
grace = "0s"

[[webhooks]]
url = "http://127.0.0.1:$hport/hook"

[[agents]]
name = "e2e-host"
url = "http://127.0.0.1:$aport"
token_file = "agent.token"
TOML
key=$("$target/debug/fleetdeck-collector" --config "$work/collector.toml" keys create --name e2e --role operator | tail -n 1)
"$target/debug/fleetdeck-agent" --config "$work/agent.toml" >"$work/agent.log" 2>&1 & pids+=($!)
wait_listening "$work/agent.log" agent
# A second agent, on no collector's list: the test joins it with `agents add` while the app runs.
jport=$(free_port)
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/joined.token")
# (It runs the echo app: the fleet log search finds a line on each of the two hosts.)
printf 'listen = ["127.0.0.1:%s"]\ntoken_file = "joined.token"\nsystemd = "user"\nsample_interval = "1s"\n\n[[apps]]\nname = "echo"\nsystemd_unit = "%s"\n' \
    "$jport" "$echo_unit" >"$work/joined.toml"
"$target/debug/fleetdeck-agent" --config "$work/joined.toml" >"$work/joined.log" 2>&1 & pids+=($!)
wait_listening "$work/joined.log" "the second agent"
"$target/debug/fleetdeck-collector" --config "$work/collector.toml" >"$work/collector.log" 2>&1 & pids+=($!)
collector_pid=$!
wait_listening "$work/collector.log" collector

virtual_display $((90 + RANDOM % 100))

# dunst's context menu (`dunstctl context`, a notification's other actions) asks a dmenu: this one
# answers the first action line holding the text the test writes to $E2E_DUNST_PICK.
cat >"$work/dunst-pick.sh" <<'SH'
#!/bin/sh
grep -m1 -F -- "$(cat "$0.pattern" 2>/dev/null)" || true
SH
chmod +x "$work/dunst-pick.sh"
# At most 10 shown at once, the rest waiting in dunst's queue: redrawing 200 critical ones on
# screen slowed dunst's answers to Notify until a 200-crash burst took over 90 s on a fresh machine.
printf '[global]\n    dmenu = %s\n    notification_limit = 10\n' "$work/dunst-pick.sh" >"$work/dunstrc"

export E2E_APP=$app E2E_COLLECTOR_URL=http://127.0.0.1:$cport E2E_KEY=$key E2E_HOST=e2e-host \
    E2E_APP_NAME=web E2E_UNIT=$unit E2E_ENV_FILE=$work/web.env E2E_SAY_FILE=$say E2E_DIE_FILE=$die \
    E2E_CRASH_CONTEXT=${E2E_CRASH_CONTEXT:-1} E2E_CHECKS=${E2E_CHECKS:-1} E2E_CLOSED_PORT=$closed \
    E2E_NOTIFY_LOG=$work/notify.log E2E_WEBHOOK_LOG=$work/webhooks.log E2E_SHOTS=$shots E2E_APP_LOG=$work/driver.log \
    E2E_DEAD_URL=http://127.0.0.1:$dead E2E_SYSTEMD_BUS=$DBUS_SESSION_BUS_ADDRESS \
    E2E_JOIN_URL=http://127.0.0.1:$jport E2E_JOIN_TOKEN=$work/joined.token \
    E2E_COLLECTOR_PID=$collector_pid E2E_COLLECTOR_CMD="$target/debug/fleetdeck-collector --config $work/collector.toml" \
    FLEETDECK_UNREACHABLE_GRACE_SECS=3 \
    E2E_BURST_RATE=$work/rate E2E_BURST_SEQ=$work/burst.seq E2E_ECHO_FIFO=$work/echo.fifo \
    FLEETDECK_CONFIG_DIR=$work/config XDG_DATA_HOME=$work/data XDG_STATE_HOME=$work/state \
    XDG_CONFIG_HOME=$work/xdg-config DUNST_LOG=$work/dunst.log \
    DUNST_CONFIG=$work/dunstrc E2E_DUNST_PICK=$work/dunst-pick.sh.pattern \
    FLEETDECK_WEBKIT_COMPOSITING=1
# (WebKitWebDriver's screenshots hang without WebKit's compositing mode, which the app turns off
# by default to save memory: the test keeps it on; the DOM and everything under test is the same.)
mkdir -p "$work/data"

rc=0
desktop_session bash -c '
    dbus-monitor --session "type=method_call,interface=org.freedesktop.Notifications,member=Notify" >"$E2E_NOTIFY_LOG" 2>&1 & mon=$!
    tauri-driver --port 4444 --native-port 4445 >"$E2E_APP_LOG" 2>&1 & td=$!
    for _ in $(seq 1 100); do curl -sf http://127.0.0.1:4444/status >/dev/null && break; sleep 0.1; done
    rc=0; "$1" "$2" || rc=$?
    kill $td $mon 2>/dev/null || true
    exit $rc
' _ "$tools/venv/bin/python" "$script" || rc=$?
if ((rc)); then
    log "FAILED; app/driver log:"; tail -n 60 "$work/driver.log" >&2 || true
    log "collector log:"; tail -n 20 "$work/collector.log" >&2 || true
    log "agent log:"; grep -v '^  ' "$work/agent.log" | tail -n 20 >&2 || true
    exit "$rc"
fi
log "screenshots in $shots"
