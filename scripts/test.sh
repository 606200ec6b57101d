#!/usr/bin/env bash
# Runs every Fleetdeck check: formatting, clippy, unit and integration tests on the real test bed
# (systemd user manager, journald, podman's Docker API, network namespaces), the wasm build of the
# wire types, the static musl builds of the agent (x86_64 and arm64) with size and linkage
# checked, the daemons' packages, the desktop: clippy, its unit tests, the end-to-end test of the
# real app under Xvfb against a real collector and agent; and the reliability suite.
# Installs what it needs (scripts/setup.sh, testbed/testbed.sh up). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

step() { printf '\n==> %s\n' "$*"; }

step "setup"
scripts/setup.sh

step "test bed"
started_bed=0
bed_status=$(testbed/testbed.sh status)
[[ $bed_status == *"systemd-user: running"* ]] || started_bed=1
testbed/testbed.sh up
if ((started_bed)) && [[ ${KEEP_TESTBED:-0} != 1 ]]; then
    trap 'testbed/testbed.sh net down >/dev/null 2>&1 || true; testbed/testbed.sh down' EXIT
fi
eval "$(testbed/testbed.sh env)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

step "fuzz: every parser target for 20 s (cargo fuzz on nightly; the long run is in docs/reliability.md)"
scripts/fuzz.sh 20

step "wire types build for wasm32"
cargo build --locked -p fleetdeck-proto --target wasm32-unknown-unknown

step "desktop: clippy (Tauri app natively, Yew views for wasm32)"
cargo clippy --locked -p fleetdeck -p fleetdeck-desktop --all-targets -- -D warnings
cargo clippy --locked -p fleetdeck-ui --target wasm32-unknown-unknown -- -D warnings
# The Windows build's own code (cfg(target_os = "windows") paths), as clippy sees it there.
cargo clippy --locked -p fleetdeck-desktop -p fleetdeck-desktop-core --target x86_64-pc-windows-gnu -- -D warnings

step "the daemons' dependency trees hold no Tauri or WebKit"
if cargo tree --locked -e normal -p fleetdeck-agent -p fleetdeck-collector | grep -Ei 'tauri|webkit|wry|gtk'; then
    echo "Tauri/WebKit crept into a daemon's dependencies"; exit 1
fi

step "static agent binary (musl)"
cargo build --locked --profile agent-release --target x86_64-unknown-linux-musl -p fleetdeck-agent
bin=${CARGO_TARGET_DIR:-$root/target}/x86_64-unknown-linux-musl/agent-release/fleetdeck-agent
size=$(stat -c %s "$bin")
echo "size: $size bytes"
((size <= 10 * 1024 * 1024)) || { echo "agent binary is $size bytes, over the 10 MiB target"; exit 1; }
if ldd "$bin" 2>&1 | grep -qv -e 'not a dynamic executable' -e 'statically linked'; then
    ldd "$bin"; echo "agent binary is not static"; exit 1
fi
ldd "$bin" 2>&1 || true

step "static agent binary for arm64 (musl, cross-built with Debian's aarch64 gcc)"
cargo build --locked --profile agent-release --target aarch64-unknown-linux-musl -p fleetdeck-agent
arm=${CARGO_TARGET_DIR:-$root/target}/aarch64-unknown-linux-musl/agent-release/fleetdeck-agent
size=$(stat -c %s "$arm")
echo "size: $size bytes"
((size <= 10 * 1024 * 1024)) || { echo "arm64 agent binary is $size bytes, over the 10 MiB target"; exit 1; }
file "$arm" | tee /dev/stderr | grep -q 'ARM aarch64, .*statically linked' ||
    { echo "the arm64 agent is not a static aarch64 executable"; exit 1; }
# It runs: under qemu's user-mode emulator, as on an arm64 VM, it serves its API and reads this
# host's /proc into a snapshot.
qemu-aarch64-static "$arm" --version
arm_work=$(mktemp -d)
(
    cd "$arm_work"
    trap 'kill "$arm_pid" 2>/dev/null; wait "$arm_pid" 2>/dev/null; rm -rf "$arm_work"' EXIT
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >agent.token)
    arm_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    printf 'listen = ["127.0.0.1:%s"]\ntoken_file = "agent.token"\nsystemd = "user"\n' "$arm_port" >agent.toml
    qemu-aarch64-static "$arm" --config agent.toml >agent.log 2>&1 & arm_pid=$!
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$arm_port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fsS -H "Authorization: Bearer $(cat agent.token)" "http://127.0.0.1:$arm_port/v1/snapshot" |
        jq -e '.host.memory.total_bytes > 0' >/dev/null ||
        { cat agent.log; echo "the arm64 agent does not serve a snapshot of this host"; exit 1; }
    echo "the arm64 agent serves a snapshot of this host under qemu"
)

step "tests"
# Every daemon a test starts logs into $FLEETDECK_TEST_LOGS, and every token, key and .env value a
# test uses is listed there (secrets.txt), for the check at the end.
export FLEETDECK_TEST_LOGS=${FLEETDECK_TEST_LOGS:-${CARGO_TARGET_DIR:-$root/target}/test-logs}
rm -rf "$FLEETDECK_TEST_LOGS"
scripts/check-secrets.sh --self-test
# --no-fail-fast: one failing test binary must not hide what the others would say.
cargo test --locked --no-fail-fast

step "the collector's tests again, storing in PostgreSQL (the test bed's server)"
[[ -n ${FLEETDECK_TEST_PG_URL:-} ]] || { echo "the test bed exported no PostgreSQL server (FLEETDECK_TEST_PG_URL)"; exit 1; }
FLEETDECK_TEST_STORE=postgres cargo test --locked --no-fail-fast -p fleetdeck-collector

step "daemons: Debian packages (contents, lintian), installed into a scratch root, run under their units"
# The collector as the tests built it (a release build would add minutes); the agent is the
# static release binary checked above.
pkg_out=$(mktemp -d)
mapfile -t debs < <(FLEETDECK_AGENT_BIN=$bin \
    FLEETDECK_COLLECTOR_BIN=${CARGO_TARGET_DIR:-$root/target}/debug/fleetdeck-collector \
    scripts/package.sh "$pkg_out")
scripts/test-packages.sh "${debs[@]}"
rm -rf "$pkg_out"

step "agent dist tests from a copy of the tree under /tmp, built into its own default target/"
# The dist tests run the agent under the shipped hardened unit, whose PrivateTmp= hides /tmp: a
# checkout under /tmp with the default target directory once failed there (203/EXEC). This runs
# them from such a checkout (the tracked and untracked files of this tree, so local edits are
# tested too), cold: about 2.5 minutes on 2 cores, where a cold build and run of every test
# binary would take most of CI's budget (see docs/reliability.md).
tmp_tree=$(mktemp -d /tmp/fleetdeck-tree.XXXXXX)
(
    trap 'rm -rf "$tmp_tree"' EXIT
    git ls-files -z --cached --others --exclude-standard |
        tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$tmp_tree"
    cd "$tmp_tree"
    env -u CARGO_TARGET_DIR cargo test --locked -p fleetdeck-agent --test dist
)

step "desktop: unit tests (Tauri adapters, UI reducer natively)"
cargo test --locked -p fleetdeck -p fleetdeck-desktop -p fleetdeck-ui

step "desktop: end to end (real app under Xvfb, real collector, agent, systemd, keyring, dunst)"
scripts/e2e-desktop.sh

step "API fuzzing: schemathesis against the agent's and the collector's own OpenAPI documents"
scripts/api-fuzz.sh

step "desktop: .deb package (Tauri CLI)"
scripts/package-deb.sh --debug

step "desktop: Windows build (cross-built with mingw-w64) into a zip"
zip=$(scripts/build-windows.sh "${CARGO_TARGET_DIR:-$root/target}/windows-dist" | tail -n 1)
python3 -c 'import sys, zipfile; names = zipfile.ZipFile(sys.argv[1]).namelist(); assert names == ["fleetdeck/fleetdeck.exe", "fleetdeck/WebView2Loader.dll"], names' "$zip"

step "desktop: the Windows build run under Wine (Credential Manager, its paths, a real collector)"
scripts/test-windows.sh "$zip"

step "the docs as written: deploy.md then operations.md on namespace machines, real apt and units"
scripts/test-docs.sh

step "no token, key or .env value in any log of the tests above"
scripts/check-secrets.sh "$FLEETDECK_TEST_LOGS"
