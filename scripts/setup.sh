#!/usr/bin/env bash
# Installs what building and testing Fleetdeck needs on a Debian 12 machine with a Rust toolchain
# (rustup): the musl (x86_64, arm64), wasm32 and Windows (gnu) targets, and the Debian packages of
# the test bed. Idempotent.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

command -v cargo >/dev/null && command -v rustup >/dev/null || {
    log "cargo/rustup not found: install Rust with rustup (https://rustup.rs) and re-run"
    exit 1
}

targets=$(rustup target list --installed)
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl wasm32-unknown-unknown x86_64-pc-windows-gnu; do
    grep -qx "$t" <<<"$targets" || { log "adding Rust target $t"; rustup target add "$t"; }
done

# Debian packages: the test bed's own list is installed by testbed.sh up; these are the extras,
# with the GTK/WebKit libraries the desktop app (Tauri 2) builds against.
want=(curl jq file docker-compose pkg-config libssl-dev libwebkit2gtk-4.1-dev libayatana-appindicator3-dev
      librsvg2-dev libsoup-3.0-dev libgtk-3-dev libxdo-dev
      # the desktop's end-to-end test: a virtual display, WebDriver, a keyring, a notification daemon
      xvfb xauth imagemagick webkit2gtk-driver gnome-keyring libsecret-tools dunst dbus-x11 dbus-bin
      x11-utils fonts-dejavu-core
      # cargo fuzz builds libFuzzer (C++)
      g++
      # the static agent's rustls (ring) compiles C for musl
      musl-tools
      # the arm64 static agent: cross compiler, its C headers (ring compiles C; apt installs them
      # only as a recommendation, which --no-install-recommends skips), and qemu to run it once
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
      # the desktop's Windows build (scripts/build-windows.sh): mingw-w64's gcc and binutils
      # (dlltool, objdump)
      gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64
      # ...and run under Wine (scripts/test-windows.sh), its dialogs answered with xdotool
      wine64 xdotool
      # docs/deploy.md's firewall, run by scripts/test-docs.sh
      ufw
      # the daemons' Debian packages are checked with lintian (scripts/package.sh)
      lintian)
[[ ${1:-} == --bench ]] && want+=(prometheus-node-exporter)
command -v npm >/dev/null || want+=(nodejs npm)
command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || want+=(python3-venv)
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

# The dotenv parsers the .env tests read written files back with: python-dotenv 1.2 (PyPI) and
# Node's dotenv 18 (npm), in a tools directory outside the clone.
tools=${FLEETDECK_TOOLS:-$HOME/.cache/fleetdeck-tools}
mkdir -p "$tools"
if [[ ! -x $tools/venv/bin/python ]] || ! "$tools/venv/bin/python" -c 'import dotenv' 2>/dev/null; then
    log "installing python-dotenv into $tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q 'python-dotenv==1.2.*'
fi
if [[ ! -f $tools/node/node_modules/dotenv/package.json ]]; then
    log "installing Node dotenv into $tools/node"
    mkdir -p "$tools/node"
    (cd "$tools/node" && npm install --silent --no-audit --no-fund 'dotenv@18' >/dev/null)
fi

# The desktop's build and test tools, from crates.io, npm and PyPI (never downloaded by the build):
# trunk (bundles the Yew UI; 0.21 is the last that builds on Rust 1.95), wasm-bindgen-cli (the
# exact version of the wasm-bindgen crate in Cargo.lock), tauri-driver (WebDriver for Tauri 2),
# the Tauri CLI (packaging) and Selenium (the end-to-end test's WebDriver client).
installed=$(cargo install --list)
cargo_tool() { # binary, crate, version, extra flags
    if ! grep -q "^$2 v$3:" <<<"$installed" || [[ ! -x $HOME/.cargo/bin/$1 ]]; then
        log "installing $2 $3"
        cargo install -q "$2" --version "=$3" ${4:-}
    fi
}
wbg=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' "$(dirname "$0")/../Cargo.lock")
cargo_tool wasm-bindgen wasm-bindgen-cli "$wbg"
cargo_tool tauri-driver tauri-driver 2.1.0 --locked
cargo_tool trunk trunk 0.21.14 --locked
if [[ ! -x $tools/npm/node_modules/.bin/tauri ]]; then
    log "installing the Tauri CLI into $tools/npm"
    mkdir -p "$tools/npm"
    (cd "$tools/npm" && npm install --silent --no-audit --no-fund '@tauri-apps/cli@2' >/dev/null)
fi
# A real SMTP server for the email alert tests (collector/tests/smtp_receiver.py).
if ! "$tools/venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    log "installing aiosmtpd into $tools/venv"
    "$tools/venv/bin/pip" install -q 'aiosmtpd==1.4.*'
fi
if ! "$tools/venv/bin/python" -c 'import selenium' 2>/dev/null; then
    log "installing selenium into $tools/venv"
    "$tools/venv/bin/pip" install -q 'selenium==4.*'
fi
