#!/usr/bin/env bash
# Tests the daemons' Debian packages (scripts/package.sh): installed with dpkg into a scratch
# root (maintainer scripts run, with DPKG_ROOT), installed again over themselves with an edited
# conffile (kept, with the token and the database), then each installed binary started under the
# unit its package ships, run by the test bed's systemd, and asked over HTTP; finally purged.
#
#   scripts/test-packages.sh AGENT.deb COLLECTOR.deb     (the test bed up, its env loaded)
set -euo pipefail
agent_deb=$(realpath "$1")
collector_deb=$(realpath "$2")
fail() { echo "test-packages: $*" >&2; exit 1; }

# Outside /tmp: the units' PrivateTmp= would hide it from them.
r=$(mktemp -d /var/lib/fleetdeck-pkgtest.XXXXXX)
units=()
cleanup() {
    for u in "${units[@]}"; do
        systemctl --user stop "$u" >/dev/null 2>&1 || true
        systemctl --user disable "$u" >/dev/null 2>&1 || true
    done
    rm -rf "$r"
}
trap cleanup EXIT
chmod 0755 "$r"
mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/var/lib/dpkg/triggers"
touch "$r/var/lib/dpkg/status"

dpkg_in_root() {
    # The scratch root has no libc6 or adduser package: their files are the host's.
    dpkg --root="$r" --force-script-chrootless --force-not-root --force-depends \
        --force-confold --log="$r/dpkg.log" "$@"
}

echo "== install into $r"
said=$(dpkg_in_root -i "$agent_deb" "$collector_deb" 2>&1) || { echo "$said"; fail "dpkg -i failed"; }
# What dpkg said, but the admin key (a secret, even a scratch one).
sed '/admin API key/{n;s/.*/  (the key, not shown here)/}' <<<"$said"
token=$r/etc/fleetdeck/agent.token
[[ $(stat -c %a "$token") == 600 ]] || fail "the agent token is not 0600"
[[ $(tr -d '\n' < "$token" | wc -c) == 64 ]] || fail "the agent token is not 64 characters"
grep -q "$(cat "$token")" <<<"$said" && fail "the token was printed"
[[ $(stat -c %a "$r/var/lib/fleetdeck") == 700 ]] || fail "the state directory is not 0700"
[[ $(stat -c %a "$r/etc/fleetdeck/collector.toml") == 600 ]] || fail "collector.toml is not 0600"
[[ -s $r/var/lib/fleetdeck/collector.db ]] || fail "no database"
grep -q "admin API key (shown only now" <<<"$said" || fail "no admin key on the first install"
key=$(grep -A1 "admin API key" <<<"$said" | tail -n 1)
"$r/usr/bin/fleetdeck-agent" --version
"$r/usr/bin/fleetdeck-collector" --version
[[ $(dpkg-query --admindir="$r/var/lib/dpkg" -W -f='${Status}' fleetdeck-agent) == "install ok installed" ]] ||
    fail "fleetdeck-agent is not installed in the scratch root"

echo "== install again over an edited config: kept, with the token and the database"
echo "# edited by the operator" >> "$r/etc/fleetdeck/agent.toml"
before=$(cat "$token")
said=$(dpkg_in_root -i "$agent_deb" "$collector_deb" 2>&1) || { echo "$said"; fail "the second dpkg -i failed"; }
grep -q "edited by the operator" "$r/etc/fleetdeck/agent.toml" || fail "the edited conffile was replaced"
[[ $(cat "$token") == "$before" ]] || fail "the token changed on reinstall"
grep -q "admin API key" <<<"$said" && fail "a second admin key was made"

echo "== each binary under the unit its package ships (the test bed's systemd)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Only what a user manager cannot do is changed: the binary's place and config, the session bus
# bound in, no User=/StateDirectory= (a user manager cannot switch users), and the two /proc
# remounts this sandbox refuses.
under_unit() {
    local name=$1 exec=$2 writable=${3:-} unit
    unit=$(basename "$r")-$name.service
    sed -e "s|^ExecStart=.*|Environment=DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS\nBindPaths=$XDG_RUNTIME_DIR\n${writable:+ReadWritePaths=$writable\n}ExecStart=$exec|" \
        -e '/^User=/d' -e '/^Group=/d' -e '/^StateDirectory/d' -e '/^ProtectHome=/d' \
        -e '/^ProtectKernelTunables=/d' -e '/^ProtectKernelLogs=/d' \
        "$r/lib/systemd/system/$name.service" > "$r/$unit"
    systemctl --user link "$r/$unit" >/dev/null
    # Kept here, not printed: a command substitution would run this in a subshell, and the
    # cleanup would never hear of the unit.
    units+=("$unit")
    systemctl --user start "$unit"
}
wait_http() {
    local url=$1 auth=$2
    for _ in $(seq 1 100); do
        if curl -fsS -H "Authorization: Bearer $auth" "$url" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    return 1
}
agent_port=$(port)
sed -i -e "s|^listen = .*|listen = [\"127.0.0.1:$agent_port\"]|" -e 's|^systemd = .*|systemd = "user"|' \
    -e "s|^token_file = .*|token_file = \"$token\"|" "$r/etc/fleetdeck/agent.toml"
under_unit fleetdeck-agent "$r/usr/bin/fleetdeck-agent --config $r/etc/fleetdeck/agent.toml"
unit=${units[-1]}
wait_http "http://127.0.0.1:$agent_port/v1/info" "$(cat "$token")" ||
    { journalctl --user -u "$unit" --no-pager | tail -20; fail "the packaged agent does not answer under its unit"; }
[[ $(systemctl --user is-active "$unit") == active ]] || fail "$unit is not active"
echo "the packaged agent answers under $unit"

collector_port=$(port)
sed -i "s|^listen = .*|listen = [\"127.0.0.1:$collector_port\"]|" "$r/etc/fleetdeck/collector.toml"
# The agent joins the running collector the way the README says.
# Its StateDirectory= (left out) is where the database lives: writable as systemd would make it.
under_unit fleetdeck-collector "$r/usr/bin/fleetdeck-collector --config $r/etc/fleetdeck/collector.toml" \
    "$r/var/lib/fleetdeck"
unit=${units[-1]}
wait_http "http://127.0.0.1:$collector_port/v1/fleet" "$key" ||
    { journalctl --user -u "$unit" --no-pager | tail -20; fail "the packaged collector does not answer under its unit"; }
"$r/usr/bin/fleetdeck-collector" --config "$r/etc/fleetdeck/collector.toml" \
    agents add packaged "http://127.0.0.1:$agent_port" < "$token"
for _ in $(seq 1 100); do
    status=$(curl -fsS -H "Authorization: Bearer $key" "http://127.0.0.1:$collector_port/v1/hosts/packaged" | jq -r .status || true)
    [[ $status == up ]] && break
    sleep 0.1
done
[[ $status == up ]] || fail "the packaged collector does not see the packaged agent up"
echo "the packaged collector polls the packaged agent"
for u in "${units[@]}"; do systemctl --user stop "$u"; done
if pgrep -f "$r/usr/bin/" >/dev/null; then
    fail "a packaged daemon outlived its unit's stop: $(pgrep -af "$r/usr/bin/")"
fi

echo "== purge"
dpkg_in_root --purge fleetdeck-agent fleetdeck-collector >/dev/null
[[ ! -e $r/usr/bin/fleetdeck-agent && ! -e $token && ! -e $r/var/lib/fleetdeck ]] ||
    fail "a purge left files behind"
echo "packages: ok"
