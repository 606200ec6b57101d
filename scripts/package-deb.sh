#!/usr/bin/env bash
# Builds the desktop app's .deb with the Tauri CLI (UI bundled by trunk, app built with its UI
# embedded) and checks what it holds. `--debug` packages a debug build (faster; what CI checks).
# Prints the package's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=${FLEETDECK_TOOLS:-$HOME/.cache/fleetdeck-tools}
export PATH=$HOME/.cargo/bin:$tools/npm/node_modules/.bin:$PATH
profile=release; flags=()
if [[ ${1:-} == --debug ]]; then profile=debug; flags=(--debug); fi
scripts/setup.sh
# -p: the workspace's default members are the daemons; the app is the root package
tauri build "${flags[@]}" --bundles deb --ci -- -p fleetdeck
target=${CARGO_TARGET_DIR:-$root/target}
deb=$(ls -t "$target/$profile/bundle/deb/"*.deb | head -n 1)
contents=$(dpkg-deb -c "$deb")
grep -Eq ' (\./)?usr/bin/fleetdeck$' <<<"$contents" || { echo "$deb has no usr/bin/fleetdeck"; exit 1; }
grep -Eq ' (\./)?usr/share/applications/fleetdeck.desktop$' <<<"$contents" || { echo "$deb has no .desktop entry"; exit 1; }
dpkg-deb -f "$deb" Package Version Depends
echo "$deb"
