#!/usr/bin/env bash
# Puts a release into dist/: the agent's and the collector's .deb (scripts/package.sh), the
# desktop's .deb (scripts/package-deb.sh), the static agent for x86_64 and arm64 as tarballs
# with its unit, example config and install.sh, and SHA256SUMS over all of them.
#
#   scripts/release.sh            (release builds; --debug packages a debug desktop, faster)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/dist
target=${CARGO_TARGET_DIR:-$root/target}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
rm -rf "$out"
mkdir -p "$out"

scripts/package.sh "$out"
desktop=$(scripts/package-deb.sh "$@" | tail -n 1)
cp "$desktop" "$out/"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# The static agent for x86_64 (package.sh built it) and arm64 (cross-built with Debian's
# gcc-aarch64-linux-gnu; .cargo/config.toml names it), each with its install.sh.
cargo build --locked --profile agent-release --target aarch64-unknown-linux-musl -p fleetdeck-agent >&2
for arch in x86_64 aarch64; do
    name=fleetdeck-agent-$version-$arch-linux-musl
    mkdir -p "$stage/$name"
    cp "$target/$arch-unknown-linux-musl/agent-release/fleetdeck-agent" agent/dist/install.sh \
        agent/dist/agent.toml.example agent/dist/fleetdeck-agent.service "$stage/$name/"
    tar --owner=0 --group=0 --sort=name -C "$stage" -czf "$out/$name.tar.gz" "$name"
done

(cd "$out" && sha256sum -- *.deb *.tar.gz > SHA256SUMS)
cat "$out/SHA256SUMS"
