#!/bin/sh
# Installs fleetdeck-collector on its VM: the binary, a system user `fleetdeck`, the state
# directory /var/lib/fleetdeck (0700, the database), /etc/fleetdeck/collector.toml (kept if
# present; a first one that starts with no agents, owned by fleetdeck, mode 0600),
# /etc/fleetdeck/agents/ for the agents' token files, /etc/fleetdeck/agents.d/ for the tables
# `fleetdeck-collector agents add` writes, and the hardened systemd unit, then starts
# it. On the first install only, an admin API key is printed once: keep it for the desktop.
#
#   sudo ./install.sh [PATH-TO-fleetdeck-collector]   (default: ./fleetdeck-collector beside this script)
#   sudo ./install.sh --uninstall [--purge]            stops and removes the collector and its unit;
#                                                      --purge also removes its config, database
#                                                      and the agents' tokens (the user stays)
#
# FLEETDECK_ROOT=/some/dir installs under that directory instead of /, as the calling user, and
# does not touch systemd or the user database (used by the tests, and to prepare an image).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/fleetdeck-collector}
root=${FLEETDECK_ROOT:-}

die() { echo "install.sh: $*" >&2; exit 1; }

if [ "${1:-}" = --uninstall ]; then
    if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
        die "run as root (sudo $0 --uninstall), or set FLEETDECK_ROOT"
    fi
    etc=$root/etc/fleetdeck
    state=$root/var/lib/fleetdeck
    if [ -z "$root" ]; then
        systemctl disable --now fleetdeck-collector.service 2>/dev/null || true
    fi
    rm -f "$root/usr/local/bin/fleetdeck-collector" "$root/etc/systemd/system/fleetdeck-collector.service"
    if [ "${2:-}" = "--purge" ]; then
        rm -rf "$state" "$etc/agents" "$etc/agents.d"
        rm -f "$etc/collector.toml" "$etc/collector.toml.example"
        # The agent may live on the same VM and keep its files here.
        rmdir "$etc" 2>/dev/null || true
        echo "removed the collector, its unit, its config, $state (database) and the agents' tokens"
    else
        echo "removed the collector and its unit; kept $etc/collector.toml, $state (database) and the agents' tokens: --uninstall --purge removes them"
    fi
    if [ -z "$root" ]; then
        systemctl daemon-reload
    fi
    exit 0
fi

[ -f "$bin" ] || die "no collector binary at $bin; pass its path: install.sh /path/to/fleetdeck-collector"
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo $0), or set FLEETDECK_ROOT to install under a directory"
fi

# Run as root from a directory someone else can change, this script's files or the binary could
# be swapped while it runs: refuse, and say how to copy them into a private directory instead.
if [ "$(id -u)" = 0 ]; then
    for p in "$here" "$here/install.sh" "$here/collector.toml.example" "$here/collector.toml.first" \
        "$here/fleetdeck-collector.service" "$(dirname "$bin")" "$bin"; do
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

# Who the collector runs as: `fleetdeck` on a real install, the caller under FLEETDECK_ROOT.
if [ -z "$root" ]; then
    if ! getent passwd fleetdeck >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/fleetdeck --no-create-home \
            --shell /usr/sbin/nologin --comment "Fleetdeck collector" fleetdeck
        echo "created the system user fleetdeck"
    fi
    owner=fleetdeck:fleetdeck
    as_collector() { runuser -u fleetdeck -- "$@"; }
else
    owner=$(id -u):$(id -g)
    as_collector() { "$@"; }
fi

etc=$root/etc/fleetdeck
state=$root/var/lib/fleetdeck
install -d -m 0755 "$root/usr/local/bin" "$etc" "$root/etc/systemd/system"
install -d -m 0700 -o "${owner%:*}" -g "${owner#*:}" "$state" "$etc/agents" "$etc/agents.d"
install -m 0755 "$bin" "$root/usr/local/bin/fleetdeck-collector.new"
mv -f "$root/usr/local/bin/fleetdeck-collector.new" "$root/usr/local/bin/fleetdeck-collector"
install -m 0644 "$here/collector.toml.example" "$etc/collector.toml.example"

config=$etc/collector.toml
first=no
if [ -e "$config" ]; then
    echo "keeping existing $config"
else
    first=yes
    (umask 077 && cp "$here/collector.toml.first" "$config.new")
    if [ -n "$root" ]; then
        # Under a root directory, the database lives there too.
        sed -i "s|^database = \"/var/lib/fleetdeck/collector.db\"|database = \"$state/collector.db\"|" "$config.new"
    fi
    chown "$owner" "$config.new"
    mv -f "$config.new" "$config"
    echo "wrote $config: add your [[agents]] there"
fi

install -m 0644 "$here/fleetdeck-collector.service" "$root/etc/systemd/system/fleetdeck-collector.service"

"$root/usr/local/bin/fleetdeck-collector" --config "$config" check-config >/dev/null ||
    die "$config does not check out (see above); fix it, then run install.sh again"

if [ "$first" = yes ]; then
    # The first admin key, shown only now (stored hashed). Made as the collector's user, so the
    # database it creates is the collector's own.
    key=$(as_collector "$root/usr/local/bin/fleetdeck-collector" --config "$config" \
        keys create --name admin --role admin | tail -n 1)
    echo "admin API key (shown only now; add the collector to the desktop with it):"
    echo "$key"
fi

if [ -z "$root" ]; then
    systemctl daemon-reload
    systemctl enable --now fleetdeck-collector.service
    systemctl restart fleetdeck-collector.service
    echo "fleetdeck-collector is running: systemctl status fleetdeck-collector"
fi
