#!/bin/sh
# Installs fleetdeck-agent on this VM: the binary, /etc/fleetdeck/agent.toml (kept if present),
# a freshly generated 0600 token (kept if present) and the hardened systemd unit, then starts it.
#
#   sudo ./install.sh [PATH-TO-fleetdeck-agent]     (default: ./fleetdeck-agent beside this script)
#   sudo ./install.sh --rotate-token                a second token, accepted beside the current one
#   sudo ./install.sh --finish-rotation             the second token becomes the only one
#   sudo ./install.sh --uninstall [--purge]         stops and removes the agent; --purge also
#                                                   removes /etc/fleetdeck (config and tokens)
#                                                   and /var/lib/fleetdeck-agent (saved samples)
#
# Every install and reinstall writes the unit drop-in that lets the agent write the .env files
# agent.toml names (ReadWritePaths=, fleetdeck-agent.service.d/env-files.conf).
#
# FLEETDECK_ROOT=/some/dir installs under that directory instead of / and does not touch systemd
# (used by the tests, and to prepare an image).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=${FLEETDECK_ROOT:-}
etc=$root/etc/fleetdeck
units=$root/etc/systemd/system
dropin_dir=$units/fleetdeck-agent.service.d

die() { echo "install.sh: $*" >&2; exit 1; }

need_root() {
    if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
        die "run as root (sudo $0 $*), or set FLEETDECK_ROOT to work under a directory"
    fi
}

# Tells the running agent to re-read agent.toml and its tokens (nothing to do under a root).
reload_agent() {
    if [ -z "$root" ]; then
        systemctl reload fleetdeck-agent.service
    fi
}

# 32 random bytes as hex: 64 characters, in a file created unreadable by anyone but root.
new_token() {
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$1.new")
    mv -f "$1.new" "$1"
}

case "${1:-}" in
--rotate-token)
    need_root "$1"
    [ -s "$etc/agent.token" ] || die "no $etc/agent.token: install the agent first"
    if [ -s "$etc/agent.token.next" ]; then
        echo "keeping the rotation under way: $etc/agent.token.next"
    else
        new_token "$etc/agent.token.next"
    fi
    if ! grep -q '^next_token_file' "$etc/agent.toml"; then
        # A top-level key must come before the first table: the file's first line.
        { echo 'next_token_file = "agent.token.next"'; cat "$etc/agent.toml"; } \
            > "$etc/agent.toml.new"
        chmod --reference="$etc/agent.toml" "$etc/agent.toml.new"
        mv -f "$etc/agent.toml.new" "$etc/agent.toml"
    fi
    reload_agent
    echo "the agent accepts the current token and $etc/agent.token.next:"
    echo "give the collector the new one (fleetdeck-collector agents token NAME < agent.token.next),"
    echo "then run: install.sh --finish-rotation"
    exit 0
    ;;
--finish-rotation)
    need_root "$1"
    [ -s "$etc/agent.token.next" ] || die "no rotation under way ($etc/agent.token.next is missing): start one with install.sh --rotate-token"
    mv -f "$etc/agent.token.next" "$etc/agent.token"
    grep -v '^next_token_file' "$etc/agent.toml" > "$etc/agent.toml.new" || true
    chmod --reference="$etc/agent.toml" "$etc/agent.toml.new"
    mv -f "$etc/agent.toml.new" "$etc/agent.toml"
    reload_agent
    echo "rotation finished: only the new token in $etc/agent.token is accepted"
    exit 0
    ;;
--uninstall)
    need_root "$1"
    if [ -z "$root" ]; then
        systemctl disable --now fleetdeck-agent.service 2>/dev/null || true
    fi
    rm -f "$root/usr/local/bin/fleetdeck-agent" "$units/fleetdeck-agent.service"
    rm -rf "$dropin_dir"
    if [ "${2:-}" = "--purge" ]; then
        rm -rf "$etc" "$root/var/lib/fleetdeck-agent"
        echo "removed the agent, its unit, $etc (config and tokens) and $root/var/lib/fleetdeck-agent (saved samples)"
    else
        echo "removed the agent and its unit; kept $etc (config and tokens) and $root/var/lib/fleetdeck-agent (saved samples): --uninstall --purge removes them"
    fi
    if [ -z "$root" ]; then
        systemctl daemon-reload
    fi
    exit 0
    ;;
esac

bin=${1:-$here/fleetdeck-agent}

[ -f "$bin" ] || die "no agent binary at $bin; pass its path: install.sh /path/to/fleetdeck-agent"
need_root

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

install -d -m 0755 "$root/usr/local/bin" "$etc" "$units"
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
    new_token "$etc/agent.token"
    echo "generated a new token in $etc/agent.token (give it to the collector)"
fi

install -m 0644 "$here/fleetdeck-agent.service" "$units/fleetdeck-agent.service"

# The hardened unit writes nowhere but the .env directories agent.toml names: a drop-in lists
# them, written anew from agent.toml at every install (run install.sh again after adding apps).
dropin=$("$root/usr/local/bin/fleetdeck-agent" env-drop-in --config "$etc/agent.toml") ||
    die "agent.toml does not load (see above): fix it and run install.sh again"
if [ -n "$dropin" ]; then
    install -d -m 0755 "$dropin_dir"
    printf '%s\n' "$dropin" > "$dropin_dir/env-files.conf.new"
    chmod 0644 "$dropin_dir/env-files.conf.new"
    mv -f "$dropin_dir/env-files.conf.new" "$dropin_dir/env-files.conf"
    echo "wrote $dropin_dir/env-files.conf: the agent may write the .env files of agent.toml"
else
    rm -f "$dropin_dir/env-files.conf"
fi

if [ -z "$root" ]; then
    systemctl daemon-reload
    systemctl enable --now fleetdeck-agent.service
    systemctl restart fleetdeck-agent.service
    echo "fleetdeck-agent is running: systemctl status fleetdeck-agent"
fi
