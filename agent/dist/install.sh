#!/bin/sh
# Installs fleetdeck-agent on this VM: the binary, /etc/fleetdeck/agent.toml (kept if present),
# a freshly generated 0600 token (kept if present) and the hardened systemd unit, then starts it.
#
#   sudo ./install.sh [PATH-TO-fleetdeck-agent]     (default: ./fleetdeck-agent beside this script)
#
# FLEETDECK_ROOT=/some/dir installs under that directory instead of / and does not touch systemd
# (used by the tests, and to prepare an image).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/fleetdeck-agent}
root=${FLEETDECK_ROOT:-}

die() { echo "install.sh: $*" >&2; exit 1; }

[ -f "$bin" ] || die "no agent binary at $bin; pass its path: install.sh /path/to/fleetdeck-agent"
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo $0), or set FLEETDECK_ROOT to install under a directory"
fi

# Run as root from a directory someone else can change, this script's files or the binary could
# be swapped while it runs (the way a predictable /tmp path is attacked): refuse, and say how to
# copy them into a private directory instead.
if [ "$(id -u)" = 0 ]; then
    for p in "$here" "$here/install.sh" "$here/agent.toml.example" "$here/fleetdeck-agent.service" \
        "$(dirname "$bin")" "$bin"; do
        [ -e "$p" ] || continue
        owner=$(stat -c %u "$p")
        if [ "$owner" != 0 ] && [ "$owner" != "${SUDO_UID:-0}" ]; then
            die "$p belongs to uid $owner, neither root nor you: copy the files into a private directory (dir=\$(mktemp -d)) and run install.sh from there"
        fi
        if [ -n "$(find "$p" -maxdepth 0 -perm /022)" ]; then
            die "$p is writable by group or others: copy the files into a private directory (dir=\$(mktemp -d)) and run install.sh from there"
        fi
    done
fi

etc=$root/etc/fleetdeck
install -d -m 0755 "$root/usr/local/bin" "$etc" "$root/etc/systemd/system"
install -m 0755 "$bin" "$root/usr/local/bin/fleetdeck-agent.new"
mv -f "$root/usr/local/bin/fleetdeck-agent.new" "$root/usr/local/bin/fleetdeck-agent"

if [ -e "$etc/agent.toml" ]; then
    echo "keeping existing $etc/agent.toml"
else
    install -m 0644 "$here/agent.toml.example" "$etc/agent.toml"
    echo "wrote $etc/agent.toml: add your [[apps]] there"
fi

if [ -s "$etc/agent.token" ]; then
    chmod 600 "$etc/agent.token"
    echo "keeping existing token $etc/agent.token"
else
    # 32 random bytes as hex: 64 characters, created unreadable by anyone but root.
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$etc/agent.token.new")
    mv -f "$etc/agent.token.new" "$etc/agent.token"
    echo "generated a new token in $etc/agent.token (give it to the collector)"
fi

install -m 0644 "$here/fleetdeck-agent.service" "$root/etc/systemd/system/fleetdeck-agent.service"

if [ -z "$root" ]; then
    systemctl daemon-reload
    systemctl enable --now fleetdeck-agent.service
    systemctl restart fleetdeck-agent.service
    echo "fleetdeck-agent is running: systemctl status fleetdeck-agent"
fi
