#!/usr/bin/env bash
# The Windows build, run: the zip scripts/build-windows.sh makes, unpacked and started under Wine
# (Debian's wine64) against a real collector (`--demo`) on this machine. It proves what the
# Windows executable does on the Windows API, as far as Wine implements it:
#   - it starts and reads its command line (`--version`);
#   - `--add-collector` checks the key with the collector over the network and keeps it in
#     Credential Manager (keyring's windows-native store: advapi32's Cred* calls), the rest in
#     %APPDATA%\fleetdeck\settings.json, its log in %LOCALAPPDATA%\fleetdeck; a refused key stores
#     nothing; the key is written in clear nowhere in the Windows profile;
#   - a second process (`--check-collectors`) reads the key back from Credential Manager, and
#     says so when it is gone or the collector is down;
#   - without the WebView2 Runtime (Wine has none) the window's failure is shown, logged with
#     what to install, and the exit code is 1.
# Not proven here, because they need Windows itself: the window (WebView2), notifications, the
# tray, autostart. Wine 8.0 lacks bcryptprimitives.dll, whose ProcessPrng Rust's standard library
# calls since 1.78 and every Windows 10/11 has: a one-function stand-in (RtlGenRandom) built with
# mingw-w64 goes beside the unpacked exe; the zip itself is tested as shipped.
# Needs scripts/setup.sh run (wine64, xdotool, mingw-w64). Usage: scripts/test-windows.sh ZIP
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
zip=$(realpath "${1:?usage: scripts/test-windows.sh ZIP (made by scripts/build-windows.sh)}")
target=${CARGO_TARGET_DIR:-$root/target}
export PATH=$HOME/.cargo/bin:$PATH
log() { printf '[test-windows] %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
source scripts/lib/desktop.sh

wine=/usr/lib/wine/wine64
[[ -x $wine ]] || fail "$wine is missing: run scripts/setup.sh (it installs wine64)"
cargo build --locked -q -p fleetdeck-collector
collector=$target/debug/fleetdeck-collector

work=$(mktemp -d /tmp/fleetdeck-wine.XXXXXX)
shots=$target/windows-shots
rm -rf "$shots"; mkdir -p "$shots"
pids=()
export WINEPREFIX=$work/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    /usr/lib/wine/wineserver -k 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# wait_for DESCRIPTION SECONDS COMMAND...: COMMAND succeeds before the deadline.
wait_for() {
    local what=$1 deadline=$((SECONDS + $2)); shift 2
    until "$@"; do ((SECONDS < deadline)) || fail "$what: not within the deadline"; sleep 0.2; done
}

log "a demo collector"
cport=$(free_port)
(cd "$work" && exec "$collector" --demo --hosts 3 --history-days 0 --port "$cport") \
    >"$work/collector.log" 2>&1 & pids+=($!)
collector_pid=$!
wait_for "the demo collector's key" 60 grep -q 'operator key:' "$work/collector.log"
key=$(sed -n 's/^ *operator key: *//p' "$work/collector.log")
url=http://127.0.0.1:$cport

log "a fresh Windows profile (Wine $("$wine" --version))"
DISPLAY= "$wine" wineboot --init >/dev/null 2>&1
/usr/lib/wine/wineserver -w
mkdir "$work/app"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$work/app"
exe=$work/app/fleetdeck/fleetdeck.exe
if [[ ! -e $WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll ]]; then
    cat >"$work/prng.c" <<'C'
#include <windows.h>
#include <ntsecapi.h>
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
C
    printf 'LIBRARY bcryptprimitives.dll\nEXPORTS\nProcessPrng\n' >"$work/prng.def"
    x86_64-w64-mingw32-gcc -O2 -shared -o "$work/app/fleetdeck/bcryptprimitives.dll" \
        "$work/prng.c" "$work/prng.def" -ladvapi32
fi
# The Windows user's profile (C:\users\NAME: Wine names it after the Unix user).
profile=$WINEPREFIX/drive_c/users/$(id -un)
[[ -d $profile ]] || fail "no Windows profile at $profile"
settings=$profile/AppData/Roaming/fleetdeck/settings.json
logs=$profile/AppData/Local/fleetdeck

# app ARG...: runs the exe headless (stdin from $stdin), its output in $out, its code in $rc.
stdin=/dev/null
app() {
    rc=0
    out=$(DISPLAY= "$wine" "$exe" "$@" <"$stdin" 2>&1) || rc=$?
}
expect() { # exit code, text the output must hold, what is being checked
    [[ $rc == "$1" ]] || fail "$3: exit code $rc, not $1; it said: $out"
    grep -qF -- "$2" <<<"$out" || fail "$3: the output lacks \"$2\"; it said: $out"
    log "ok: $3"
}
printf '%s\n' "$key" >"$work/key"
printf 'fdk_%s\n' "$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')" >"$work/wrong-key"

app --version
expect 0 "fleetdeck 0.1.0" "the exe starts and reads its command line"

stdin=$work/wrong-key
app --add-collector demo --url "$url" --key-stdin --add-only
expect 2 "refused the API key" "a refused key is reported"
stdin=/dev/null
app --check-collectors
expect 1 "no collector is saved" "a refused key stores nothing"

stdin=$work/key
app --add-collector demo --url "$url" --key-stdin --add-only
expect 0 "" "the collector is added with its key"
[[ -f $settings ]] || fail "no settings file at %APPDATA%\\fleetdeck\\settings.json"
grep -qF "\"url\": \"$url\"" "$settings" || fail "the settings file lacks the collector: $(cat "$settings")"
/usr/lib/wine/wineserver -w # the registry (Credential Manager's store) is written to disk
if grep -rqF -- "$key" "$WINEPREFIX"; then fail "the API key is written in clear in the Windows profile"; fi
log "ok: the settings are in %APPDATA%, the key in clear nowhere in the profile"

stdin=/dev/null
app --check-collectors
expect 0 "demo: $url: the key in the OS keyring is accepted; 3 hosts (3 up)" \
    "another process reads the key from Credential Manager and the collector accepts it"

# The key taken out of Credential Manager behind the app's back (Wine keeps its credentials in
# the registry, under this key; a Windows user would remove it in Credential Manager).
DISPLAY= "$wine" reg delete 'HKCU\Software\Wine\Credential Manager\Generic: demo.dev.fleetdeck.desktop' /f \
    >/dev/null 2>&1 || fail "the credential was not where keyring's windows-native store keeps it"
app --check-collectors
expect 1 "No API key for \"demo\" in the OS keyring" "a key gone from Credential Manager is told"

stdin=$work/key
app --add-collector demo --url "$url" --key-stdin --add-only
expect 0 "" "the collector is added again"
kill "$collector_pid"; wait "$collector_pid" 2>/dev/null || true
stdin=/dev/null
app --check-collectors
expect 1 "Could not reach the collector at $url" "a collector that is down is told"

log "the window, without the WebView2 Runtime"
# Wine's session (wineserver, explorer) so far had no display: let it end, to start one with.
/usr/lib/wine/wineserver -w
virtual_display $((300 + RANDOM % 100))
"$wine" "$exe" >"$work/window.out" 2>&1 & window_pid=$!
pids+=($window_pid)
dialog() { xdotool search --name '^Error$' 2>/dev/null | head -n 1; }
deadline=$((SECONDS + 90))
until [[ -n $(dialog) ]]; do
    ((SECONDS < deadline)) || {
        xwininfo -root -tree >&2; cat "$work/window.out" >&2
        fail "the missing runtime's dialog did not show within 90 s"
    }
    sleep 0.2
done
import -window root "$shots/webview2-missing.png"
xdotool windowfocus --sync "$(dialog)" key Return
wait_for "the exe's exit after its dialog" 60 bash -c "! kill -0 $window_pid 2>/dev/null"
rc=0; wait "$window_pid" || rc=$?
out=$(cat "$work/window.out")
expect 1 "WebView2 Runtime" "the window's failure says what to install"
day_log=$(ls "$logs"/fleetdeck.*.log 2>/dev/null | head -n 1)
[[ -n $day_log ]] || fail "no log file in %LOCALAPPDATA%\\fleetdeck"
grep -q 'collector added' "$day_log" || fail "the log file lacks the collector's addition"
grep -q 'the window could not open.*WebView2' "$day_log" || fail "the log file lacks why the window failed: $(cat "$day_log")"
log "ok: the log file in %LOCALAPPDATA%\\fleetdeck says why the window failed"

# For scripts/check-secrets.sh: the app's log and the key it must not hold.
if [[ -n ${FLEETDECK_TEST_LOGS:-} ]]; then
    mkdir -p "$FLEETDECK_TEST_LOGS"
    cp "$day_log" "$FLEETDECK_TEST_LOGS/windows-app-$$.log"
    (umask 077 && echo "$key" >>"$FLEETDECK_TEST_LOGS/secrets.txt")
fi
log "passed (screenshot: $shots/webview2-missing.png)"
