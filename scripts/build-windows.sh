#!/usr/bin/env bash
# The desktop app for Windows, cross-built on this Debian machine with mingw-w64 (target
# x86_64-pc-windows-gnu; no Windows SDK, nothing downloaded): a zip of fleetdeck.exe (the UI
# bundled in) and WebView2Loader.dll, which the gnu build loads at start. Windows 10/11 ship the
# WebView2 runtime. Usage: scripts/build-windows.sh [out dir (default dist/)]
# (`tauri build` is not used: its Windows bundlers download NSIS/WiX from GitHub.)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
out=${1:-$root/dist}
export PATH=$HOME/.cargo/bin:$PATH
log() { printf '[build-windows] %s\n' "$*" >&2; }

scripts/setup.sh
version=$(awk -F'"' '/^"version"|"version":/ {print $4; exit}' tauri.conf.json)
log "building the UI and fleetdeck $version for x86_64-pc-windows-gnu"
(cd ui && trunk build --release)
cargo build --locked --release --target x86_64-pc-windows-gnu -p fleetdeck-desktop \
    --bin fleetdeck-desktop --features custom-protocol
bin=$target/x86_64-pc-windows-gnu/release
# webview2-com-sys puts the x64 loader beside the executable.
loader=$bin/WebView2Loader.dll
[[ -f $loader ]] || { log "WebView2Loader.dll was not found in $bin"; exit 1; }

# What Windows will load: a GUI executable, and no DLL that Windows does not ship but the loader.
file -b "$bin/fleetdeck-desktop.exe" | grep -q 'PE32+ executable (GUI) x86-64' || {
    log "not a 64-bit Windows GUI executable: $(file -b "$bin/fleetdeck-desktop.exe")"; exit 1; }
dlls=$(x86_64-w64-mingw32-objdump -p "$bin/fleetdeck-desktop.exe" | awk '/DLL Name:/ {print $3}' | sort -u)
extra=$(grep -viE '^(kernel32|user32|gdi32|advapi32|shell32|ole32|oleaut32|comctl32|comdlg32|uxtheme|dwmapi|ws2_32|bcrypt|bcryptprimitives|crypt32|ntdll|userenv|secur32|shlwapi|version|winmm|imm32|iphlpapi|setupapi|cfgmgr32|propsys|dbghelp|msvcrt|api-ms-win-.*|webview2loader|gdiplus|powrprof|uiautomationcore|d3d11|dxgi|windows.ui|combase|rpcrt4|netapi32|wtsapi32|credui|psapi|msimg32|usp10|dcomp|d2d1|dwrite)\.dll$' <<<"$dlls" || true)
[[ -z $extra ]] || { log "the executable needs DLLs a Windows machine lacks: $extra"; exit 1; }

mkdir -p "$out"
zip=$out/fleetdeck-$version-windows-x64.zip
python3 - "$zip" "$bin/fleetdeck-desktop.exe" "$loader" <<'PY'
import sys, zipfile
zip_path, exe, loader = sys.argv[1:]
with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(exe, "fleetdeck/fleetdeck.exe")
    z.write(loader, "fleetdeck/WebView2Loader.dll")
PY
log "wrote $zip ($(du -h "$zip" | cut -f1)): fleetdeck/fleetdeck.exe, fleetdeck/WebView2Loader.dll"
echo "$zip"
