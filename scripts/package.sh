#!/usr/bin/env bash
# Builds the daemons' Debian packages into OUT (default dist/): fleetdeck-agent (the static musl
# binary, the hardened unit, agent.toml as a conffile, a postinst that makes the token once and
# writes the .env drop-in, install.sh in /usr/lib/fleetdeck-agent for token rotation) and
# fleetdeck-collector (binary, unit, the first collector.toml as a
# conffile, a postinst that makes the `fleetdeck` user and state directory). Each is checked:
# its contents, and lintian with no error. The desktop's package is scripts/package-deb.sh.
#
#   scripts/package.sh [OUT]
#   FLEETDECK_AGENT_BIN=... FLEETDECK_COLLECTOR_BIN=... scripts/package.sh   (prebuilt binaries)
#
# Prints each package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-$root/dist}
target=${CARGO_TARGET_DIR:-$root/target}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)

agent_bin=${FLEETDECK_AGENT_BIN:-}
collector_bin=${FLEETDECK_COLLECTOR_BIN:-}
if [[ -z $agent_bin ]]; then
    cargo build --locked --profile agent-release --target x86_64-unknown-linux-musl -p fleetdeck-agent >&2
    agent_bin=$target/x86_64-unknown-linux-musl/agent-release/fleetdeck-agent
fi
if [[ -z $collector_bin ]]; then
    cargo build --locked --release -p fleetdeck-collector >&2
    collector_bin=$target/release/fleetdeck-collector
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# One package: NAME DESCRIPTION BINARY DIST-DIR CONFIG-SOURCE CONFIG-NAME [DEPENDS]
package() {
    local name=$1 summary=$2 bin=$3 dist=$4 config=$5 config_name=$6 depends=${7:-}
    local p=$work/$name
    install -d "$p/DEBIAN" "$p/usr/bin" "$p/lib/systemd/system" "$p/etc/fleetdeck" \
        "$p/usr/share/doc/$name"
    install -m 0755 "$bin" "$p/usr/bin/$name"
    strip --strip-unneeded "$p/usr/bin/$name" 2>/dev/null || true
    # The unit as shipped, with the binary where the package puts it.
    sed "s|/usr/local/bin/$name|/usr/bin/$name|g" "$dist/$name.service" \
        > "$p/lib/systemd/system/$name.service"
    chmod 0644 "$p/lib/systemd/system/$name.service"
    install -m 0644 "$config" "$p/etc/fleetdeck/$config_name"
    install -m 0644 "$dist"/*.example "$p/usr/share/doc/$name/"
    if [[ $name == fleetdeck-agent ]]; then
        # Its token rotation (--rotate-token, --finish-rotation) works on a packaged agent too.
        install -D -m 0755 "$dist/install.sh" "$p/usr/lib/$name/install.sh"
    fi
    cat > "$p/usr/share/doc/$name/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fleetdeck
Source: https://github.com/fleetdeck/fleetdeck

Files: *
Copyright: 2026 the Fleetdeck developers
License: MIT OR Apache-2.0
 See /usr/share/common-licenses/Apache-2.0; the MIT license is the project's LICENSE file.
EOF
    printf '%s (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- Fleetdeck <fleetdeck@example.org>  %s\n' \
        "$name" "$version" "$version" "$(date -R -u -d @"${SOURCE_DATE_EPOCH:-0}")" \
        | gzip -9n > "$p/usr/share/doc/$name/changelog.gz"
    install -m 0755 "$dist/deb/postinst" "$dist/deb/prerm" "$dist/deb/postrm" "$p/DEBIAN/"
    echo "/etc/fleetdeck/$config_name" > "$p/DEBIAN/conffiles"
    local size
    size=$(du -sk --exclude=DEBIAN "$p" | cut -f1)
    {
        echo "Package: $name"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: Fleetdeck <fleetdeck@example.org>"
        echo "Installed-Size: $size"
        [[ -n $depends ]] && echo "Depends: $depends"
        echo "Recommends: systemd"
        echo "Section: admin"
        echo "Priority: optional"
        echo "Homepage: https://github.com/fleetdeck/fleetdeck"
        echo "Description: $summary"
        echo " Part of Fleetdeck, which runs a fleet of Linux VMs from a desktop"
        echo " app without SSH. The example configuration is in /usr/share/doc."
    } > "$p/DEBIAN/control"
    local deb=$out/${name}_${version}_${arch}.deb
    dpkg-deb --root-owner-group -Zxz --build "$p" "$deb" >/dev/null
    local contents
    contents=$(dpkg-deb -c "$deb")
    for f in "usr/bin/$name" "lib/systemd/system/$name.service" "etc/fleetdeck/$config_name"; do
        grep -Eq " \./$f\$" <<<"$contents" || { echo "$deb has no $f" >&2; exit 1; }
    done
    # Errors fail the build; warnings and notes are printed for a person to read.
    lintian --fail-on error --suppress-tags statically-linked-binary,no-manual-page \
        "$deb" >&2 || { echo "lintian found errors in $deb" >&2; exit 1; }
    echo "$deb"
}

package fleetdeck-agent "reports a VM's apps and host to a Fleetdeck collector" \
    "$agent_bin" agent/dist agent/dist/agent.toml.example agent.toml
# The libraries a dynamically linked binary needs, as Debian dependencies (the newest glibc
# symbol version it uses is the least libc6 it runs on).
shlib_depends() {
    local bin=$1 deps=() glibc
    glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
    while read -r lib; do
        case $lib in
        libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | ld-linux*) ;;
        libgcc_s.so.1) deps+=("libgcc-s1") ;;
        *) echo "$bin needs $lib: add its package to scripts/package.sh" >&2; exit 1 ;;
        esac
    done < <(objdump -p "$bin" | awk '/NEEDED/ {print $2}')
    deps=("libc6 (>= ${glibc:-2.36})" "${deps[@]}")
    local IFS=,
    echo "${deps[*]}" | sed 's/,/, /g'
}

package fleetdeck-collector "polls Fleetdeck agents, keeps history and alerts" \
    "$collector_bin" collector/dist collector/dist/collector.toml.first collector.toml \
    "adduser, $(shlib_depends "$collector_bin")"
