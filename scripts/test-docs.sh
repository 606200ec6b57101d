#!/usr/bin/env bash
# Runs the deployment docs: every `sh` block of docs/deploy.md and then docs/operations.md, in
# order, as one shell script (set -euo pipefail), and checks every `json` block parses; then what
# the docs promise is checked from outside (the apps' environment, ownerships, what a purge left).
#
#   scripts/test-docs.sh          (the test bed up and its env loaded, as root; scripts/test.sh)
#
# The machines of the docs are network namespaces on a bridge (fdd-web1 100.101.1.11, fdd-ops
# 100.101.1.10, fdd-laptop 100.101.1.2; each with a `tailscale0`, its own /etc/hosts and its own
# ufw rules); the docs' commands run on the laptop. The packages are installed for real with apt
# into this machine's root (the script refuses if Fleetdeck is installed here already) and their
# maintainer scripts run. Standing in for what cannot run here, and nothing else:
#   ssh HOST CMD   runs CMD in HOST's namespace          scp FILE HOST:   copies FILE for HOST
#   sudo           runs as root (we are)                 tailscale ip     the namespace's address
#   systemctl, journalctl on fleetdeck-agent/-collector: the package's own unit file (and its
#                  drop-ins) run by the test bed's systemd user manager in the host's network
#                  namespace (root's user manager can run User=fleetdeck), minus
#                  StateDirectory= (made by hand as systemd makes it), ProtectHome= and two /proc
#                  remounts (a user manager cannot do them); the agent's "system" bus is the bed's
#                  bus, which holds its systemd; journalctl -u reads the bed's user units
#   scripts/release.sh runs with --debug (a debug desktop package: the release build of the
#                  desktop would double CI's time; the daemons' packages are the release ones)
# The app `shop` that deploy.md adds is a compose project this script runs in /srv/shop with
# docker-compose against the test bed's Docker API.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fail() { echo "test-docs: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || fail "run as root: the docs install packages"
[[ -n ${XDG_RUNTIME_DIR:-} && -n ${DOCKER_HOST:-} ]] || fail "load the test bed's env first: eval \"\$(testbed/testbed.sh env)\""
for p in fleetdeck-agent fleetdeck-collector fleetdeck; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        fail "$p is installed on this machine: the docs' run would change it; remove it first"
    fi
done
[[ ! -e /etc/fleetdeck && ! -e /var/lib/fleetdeck && ! -e /var/lib/fleetdeck-agent && ! -e /srv/shop ]] ||
    fail "/etc/fleetdeck, /var/lib/fleetdeck(-agent) or /srv/shop exists here: the docs' run would change it"

work=$(mktemp -d /var/lib/fleetdeck-docs.XXXXXX)   # not /tmp: the units' PrivateTmp= hides it
chmod 0755 "$work"
export FDD_WORK=$work FDD_BUS=$DBUS_SESSION_BUS_ADDRESS
hosts=(web1 ops laptop)
declare -A ip=([web1]=100.101.1.11 [ops]=100.101.1.10 [laptop]=100.101.1.2)
log_dir=${FLEETDECK_TEST_LOGS:-$work/logs}
mkdir -p "$log_dir"
secrets=$log_dir/secrets.txt

cleanup() {
    local rc=$?
    set +e
    if ((rc)) && [[ -s $work/systemctl.log ]]; then
        echo "test-docs: the docs' systemctl calls, as run:" >&2
        tail -n 30 "$work/systemctl.log" >&2
    fi
    for u in fdd-fleetdeck-agent.service fdd-fleetdeck-collector.service; do
        journalctl "_SYSTEMD_USER_UNIT=$u" --no-pager >"$log_dir/test-docs-$u.log" 2>&1
        systemctl --user disable --now "$u" >/dev/null 2>&1
    done
    for p in fleetdeck-agent fleetdeck-collector fleetdeck; do
        # Whatever state the docs' run left it in (installed, half-configured, config files).
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed'; then
            PATH=$work/bin:$PATH FDD_HOST=any dpkg --purge --force-all "$p" >/dev/null 2>&1
        fi
    done
    (cd /srv/shop 2>/dev/null && docker-compose -p shop down -t 1 >/dev/null 2>&1)
    rm -rf /srv/shop /var/backups/fleetdeck-collector.db /var/lib/fleetdeck-agent
    systemctl --user daemon-reload
    for h in "${hosts[@]}"; do ip netns del "fdd-$h" 2>/dev/null; rm -rf "/etc/netns/fdd-$h"; done
    ip netns del fdd-net 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "== the machines: namespaces on a bridge, each with tailscale0, /etc/hosts and ufw"
ip netns add fdd-net
ip -n fdd-net link add br0 type bridge
ip -n fdd-net link set br0 up
for h in "${hosts[@]}"; do
    ip netns add "fdd-$h"
    ip -n "fdd-$h" link add tailscale0 type veth peer name "v-$h" netns fdd-net
    ip -n fdd-net link set "v-$h" master br0 up
    ip -n "fdd-$h" addr add "${ip[$h]}/24" dev tailscale0
    ip -n "fdd-$h" link set tailscale0 up
    ip -n "fdd-$h" link set lo up
    mkdir -p "/etc/netns/fdd-$h" "$work/hosts/$h"
    {
        echo "127.0.0.1 localhost"
        for o in "${hosts[@]}"; do echo "${ip[$o]} $o"; done
    } >"/etc/netns/fdd-$h/hosts"
    cp -a /etc/ufw "/etc/netns/fdd-$h/ufw"
done

echo "== the stand-ins"
mkdir -p "$work/bin" "$work/unit-bin" "$work/units"
cat >"$work/bin/sudo" <<'EOF'
#!/bin/sh
# sudo: the docs' run is root already; -u USER runs as that user. apt runs maintainer scripts
# with its own PATH (DPkg::Path), which would skip the systemctl stand-in: it gets ours.
export APT_CONFIG=$FDD_WORK/apt.conf
if [ "${1:-}" = -u ]; then u=$2; shift 2; exec runuser -u "$u" -- "$@"; fi
exec "$@"
EOF
cat >"$work/bin/ssh" <<'EOF'
#!/bin/bash
# ssh HOST CMD...: CMD in HOST's namespace, from its home directory, as ssh would run it.
host=$1; shift
[[ -d $FDD_WORK/hosts/$host ]] || { echo "ssh: $host: no such machine in the docs' run" >&2; exit 255; }
# The machine's system bus is the bed's bus, which holds its systemd (as in the units).
declare -A ips=([web1]=100.101.1.11 [ops]=100.101.1.10 [laptop]=100.101.1.2)
exec ip netns exec "fdd-$host" env FDD_HOST="$host" FDD_TAILSCALE_IP="${ips[$host]}" DBUS_SYSTEM_BUS_ADDRESS="$FDD_BUS" \
    DBUS_SESSION_BUS_ADDRESS="$FDD_BUS" bash -c 'cd "$FDD_WORK/hosts/$FDD_HOST" && eval "$1"' _ "$*"
EOF
cat >"$work/bin/scp" <<'EOF'
#!/bin/bash
# scp FILE... HOST:[DIR]: copies into HOST's home directory.
dest=${@: -1}; host=${dest%%:*}; sub=${dest#*:}
[[ $dest == *:* && -d $FDD_WORK/hosts/$host ]] || { echo "scp: $dest: no such machine" >&2; exit 1; }
cp -- "${@:1:$#-1}" "$FDD_WORK/hosts/$host/$sub"
EOF
cat >"$work/unit-bin/tailscale" <<'EOF'
#!/bin/sh
# tailscale ip: this machine's address (a unit's seccomp filter would kill `ip` itself).
[ "$1" = ip ] || { echo "tailscale: only 'ip' here" >&2; exit 1; }
echo "$FDD_TAILSCALE_IP"
EOF
cp "$work/unit-bin/tailscale" "$work/bin/tailscale"
# systemctl/journalctl: the packages' units under the bed's user manager, named fdd-UNIT.
cat >"$work/bin/systemctl" <<EOF
#!/bin/bash
export DBUS_SESSION_BUS_ADDRESS=\$FDD_BUS
unit_host() { case \$1 in fleetdeck-agent) echo web1 ;; fleetdeck-collector) echo ops ;; esac; }
host_ip() { case \$1 in web1) echo ${ip[web1]} ;; ops) echo ${ip[ops]} ;; laptop) echo ${ip[laptop]} ;; esac; }
render() {  # the package's unit and drop-ins, as the bed's user manager can run them
    local name=\$1 host src=/lib/systemd/system/\$1.service out=$work/units/fdd-\$1.service
    host=\$(unit_host "\$name")
    if [[ ! -e \$src ]]; then rm -f "\$out"; return; fi
    local writable="" state=""
    if [[ \$name == fleetdeck-agent ]]; then
        # At the end: the unit's own empty ReadWritePaths= (and its drop-in's) would reset it.
        state="[Service]\nReadWritePaths=/var/lib/fleetdeck-agent\nEnvironment=STATE_DIRECTORY=/var/lib/fleetdeck-agent\n"
        install -d -m 0700 /var/lib/fleetdeck-agent
    fi
    if [[ \$name == fleetdeck-collector ]]; then
        # What StateDirectory= does (a user manager would make it under ~/.local/state).
        writable="ReadWritePaths=/var/lib/fleetdeck\n"
        id fleetdeck >/dev/null 2>&1 && install -d -o fleetdeck -g fleetdeck -m 0700 /var/lib/fleetdeck
    fi
    sed -e "s|^ExecStart=|Environment=DBUS_SESSION_BUS_ADDRESS=\$FDD_BUS\nEnvironment=DBUS_SYSTEM_BUS_ADDRESS=\$FDD_BUS\nEnvironment=DOCKER_HOST=$DOCKER_HOST\nEnvironment=PATH=$work/unit-bin:/usr/local/bin:/usr/bin:/bin\nEnvironment=FDD_TAILSCALE_IP=\$(host_ip "\$host")\nNetworkNamespacePath=/run/netns/fdd-\$host\nBindReadOnlyPaths=/etc/netns/fdd-\$host/hosts:/etc/hosts\nBindPaths=$TESTBED_DIR\n\${writable}ExecStart=|" \\
        -e '/^StateDirectory/d' -e '/^ProtectHome=/d' \\
        -e '/^ProtectKernelTunables=/d' -e '/^ProtectKernelLogs=/d' "\$src" >"\$out"
    cat /etc/systemd/system/\$name.service.d/*.conf >>"\$out" 2>/dev/null || true
    printf "\$state" >>"\$out"
    # /usr/bin/: this stand-in is first on PATH (calling "systemctl" here would call itself)
    /usr/bin/systemctl --user link "\$out" >/dev/null 2>&1 || true
    /usr/bin/systemctl --user daemon-reload
}
args=() verb="" names=()
for a in "\$@"; do
    case \$a in
    fleetdeck-agent | fleetdeck-agent.service | fleetdeck-collector | fleetdeck-collector.service)
        n=\${a%.service}; names+=("\$n"); args+=("fdd-\$n.service")
        h=\$(unit_host "\$n")
        if [[ -n \${FDD_HOST:-} && \$FDD_HOST != any && \$FDD_HOST != "\$h" ]]; then
            echo "systemctl: \$n runs on \$h in the docs, not on \$FDD_HOST" >&2; exit 1
        fi ;;
    -*) args+=("\$a") ;;
    *) [[ -z \$verb ]] && verb=\$a; args+=("\$a") ;;
    esac
done
case \$verb in
daemon-reload) render fleetdeck-agent; render fleetdeck-collector ;;
*) for n in "\${names[@]}"; do render "\$n"; done ;;
esac
# What the docs' systemctl calls became, and what they said (printed if the run fails).
echo "+ systemctl \$* -> systemctl --user \${args[*]}" >>$work/systemctl.log
/usr/bin/systemctl --user "\${args[@]}" 2> >(tee -a $work/systemctl.log >&2)
EOF
cat >"$work/bin/journalctl" <<'EOF'
#!/bin/bash
args=()
for a in "$@"; do
    case $a in
    fleetdeck-agent | fleetdeck-agent.service | fleetdeck-collector | fleetdeck-collector.service)
        [[ ${args[-1]:-} == -u ]] && unset 'args[-1]'
        args+=("_SYSTEMD_USER_UNIT=fdd-${a%.service}.service") ;;
    *) args+=("$a") ;;
    esac
done
# The bed's user manager logs into the system journal: -u UNIT becomes a match on fdd-UNIT (of
# any user: the collector runs as fleetdeck).
exec /usr/bin/journalctl "${args[@]}"
EOF
chmod 0755 "$work"/bin/* "$work"/unit-bin/*
printf 'DPkg::Path "%s";\n' "$work/bin:/usr/sbin:/usr/bin:/sbin:/bin" >"$work/apt.conf"

echo "== the app the docs add: a compose project in /srv/shop"
mkdir -p /srv/shop
cat >/srv/shop/docker-compose.yml <<EOF
version: "3"
services:
  web:
    image: ${TESTBED_IMAGE:?load the test bed env first}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    env_file: .env
EOF
printf 'GREETING=hello\n' >/srv/shop/.env
(cd /srv/shop && docker-compose -p shop up -d >/dev/null 2>&1) || fail "docker-compose up in /srv/shop failed"

echo "== the json blocks parse"
for doc in docs/deploy.md docs/operations.md; do
    awk '/^```json$/ {on=1; n++; next} /^```$/ {on=0} on {print > (dir n ".json")}' \
        dir="$work/$(basename "$doc" .md)-" n=0 "$doc"
done
for f in "$work"/*.json; do jq -e . "$f" >/dev/null || fail "a json block in the docs does not parse: $(cat "$f")"; done

# Every sh block, in order, as one script, each after a line naming it; after some blocks, a
# check from outside of what the block promised.
sock=${DOCKER_HOST#unix://}
checks_after() {
    local block=$1
    if grep -q 'actions/apply' "$block"; then
        # The new value is in the recreated container's environment.
        echo "curl -fsS --unix-socket '$sock' http://d/containers/shop_web_1/json | jq -r '.Config.Env[]' | grep -qx 'GREETING=hello from the docs' || { echo 'test-docs: the applied .env value is not in the container' >&2; exit 1; }"
        echo "printf 'hello from the docs\\n' >>'$secrets'"
    fi
    if grep -q 'install -y --reinstall ./fleetdeck-agent' "$block"; then
        # The upgraded agent (its start the newest in the journal) took back the samples its
        # predecessor saved when it stopped. (No grep -q on journalctl: under pipefail, its early
        # exit fails journalctl with SIGPIPE.)
        echo "took_back() { /usr/bin/journalctl _SYSTEMD_USER_UNIT=fdd-fleetdeck-agent.service --no-pager -o cat 2>/dev/null | grep -E 'fleetdeck-agent started|took back the samples' | tail -n 1 | grep -q 'took back'; }"
        echo "for _ in \$(seq 100); do took_back && break; sleep 0.1; done"
        echo "took_back || { echo 'test-docs: the upgraded agent did not take back its saved samples' >&2; exit 1; }"
    fi
    if grep -q -- '--add-collector' "$block"; then
        # The key is in the laptop's keyring, and nowhere in the desktop's settings.
        echo "[[ \$(secret-tool lookup service dev.fleetdeck.desktop username ops) == \"\$KEY\" ]] || { echo 'test-docs: the key is not in the keyring' >&2; exit 1; }"
        echo "! grep -rqF -- \"\$KEY\" \"\$XDG_CONFIG_HOME\" || { echo 'test-docs: the key is in the desktop settings' >&2; exit 1; }"
    fi
    if grep -q 'keys create' "$block"; then
        echo "printf '%s\\n' \"\$KEY\" \"\$(cat /etc/fleetdeck/agent.token)\" >>'$secrets'"
    fi
    if grep -q -- '--finish-rotation' "$block"; then
        echo "printf '%s\\n' \"\$(cat /etc/fleetdeck/agent.token)\" >>'$secrets'"
        echo "[[ ! -e /etc/fleetdeck/agent.token.next ]] || { echo 'test-docs: the rotation left agent.token.next' >&2; exit 1; }"
    fi
    if grep -q 'metrics.token' "$block"; then
        echo "printf '%s\\n' \"\$TOKEN\" >>'$secrets'"
    fi
    if grep -q ' restore ' "$block"; then
        # Restored as root: the collector's user must own what it opens.
        echo "[[ \$(stat -c %U /var/lib/fleetdeck/collector.db) == fleetdeck ]] || { echo 'test-docs: the restored database is not owned by fleetdeck' >&2; exit 1; }"
    fi
}
script=$work/docs.sh
mkdir -p "$work/blocks"
echo 'set -euo pipefail' >"$script"
for doc in docs/deploy.md docs/operations.md; do
    awk -v out="$work/blocks" -v doc="$(basename "$doc" .md)" '
        /^```sh$/ {on=1; n++; f=sprintf("%s/%s-%02d.sh", out, doc, n); next}
        /^```$/ {on=0}
        on {print > f}' "$doc"
done
for block in "$work"/blocks/deploy-*.sh "$work"/blocks/operations-*.sh; do
    name=$(basename "$block" .sh)
    echo "echo '== docs/${name%-*}.md, sh block ${name##*-}'"
    cat "$block"
    checks_after "$block"
done >>"$script"
sed -i 's|^scripts/release.sh$|scripts/release.sh --debug|' "$script"
n_blocks=$(find "$work/blocks" -name '*.sh' | wc -l)
echo "== running $n_blocks sh blocks of docs/deploy.md and docs/operations.md"

# The laptop's desktop session: a D-Bus session with an unlocked keyring, fresh config.
export XDG_DATA_HOME=$work/laptop/data XDG_CONFIG_HOME=$work/laptop/config
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME"
# The docs print the admin key once: kept for the secrets check, not shown in this log.
hide_keys() {
    local hide=0 line
    while IFS= read -r line; do
        if ((hide)); then
            printf '%s\n' "$line" >>"$secrets"
            echo "  (the key, not shown here)"
            hide=0
            continue
        fi
        [[ $line == *"admin API key"* ]] && hide=1
        printf '%s\n' "$line"
    done
}
ip netns exec fdd-laptop env PATH="$work/bin:$PATH" FDD_HOST=laptop FDD_TAILSCALE_IP=${ip[laptop]} \
    dbus-run-session -- bash -c '
        printf fleetdeck | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        cd "$2" && exec bash "$1"' _ "$script" "$root" 2>&1 | hide_keys
rc=${PIPESTATUS[0]}
((rc == 0)) || fail "a command of the docs failed (exit $rc); the block is named above"
echo "== every block ran; what the docs promise, checked from outside"
[[ ! -e /etc/fleetdeck && ! -e /var/lib/fleetdeck && ! -e /var/lib/fleetdeck-agent ]] ||
    fail "the purge left /etc/fleetdeck, /var/lib/fleetdeck or /var/lib/fleetdeck-agent"
echo "docs: ok ($n_blocks blocks)"
