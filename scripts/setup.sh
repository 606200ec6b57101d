#!/usr/bin/env bash
# Installs what building and testing Fleetdeck needs on a Debian 12 machine with a Rust toolchain
# (rustup): the musl and wasm32 targets, and the Debian packages of the test bed. Idempotent.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

command -v cargo >/dev/null && command -v rustup >/dev/null || {
    log "cargo/rustup not found: install Rust with rustup (https://rustup.rs) and re-run"
    exit 1
}

targets=$(rustup target list --installed)
for t in x86_64-unknown-linux-musl wasm32-unknown-unknown; do
    grep -qx "$t" <<<"$targets" || { log "adding Rust target $t"; rustup target add "$t"; }
done

# Debian packages: the test bed's own list is installed by testbed.sh up; these are the extras,
# with the GTK/WebKit libraries the desktop app (Tauri 2) builds against.
want=(curl jq file pkg-config libssl-dev libwebkit2gtk-4.1-dev libayatana-appindicator3-dev
      librsvg2-dev libsoup-3.0-dev libgtk-3-dev libxdo-dev)
[[ ${1:-} == --bench ]] && want+=(prometheus-node-exporter)
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    [[ $(id -u) == 0 ]] || { log "run as root to install packages"; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    }
fi
