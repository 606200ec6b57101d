#!/usr/bin/env bash
# Fleet-wide log search benchmark (docs/benchmarks.md, issue 18): N agents on the test bed, each
# watching its own unit whose journal holds LINES lines, one collector polling them, and a search
# over all of them for a pattern one line in 10,000 has and one that one line in 100 has
# (journalctl --grep on each agent): the time to the first app's answer and to `done`, through
# the collector's GET /v1/logs/search.
# Release builds. Usage: scripts/bench-search.sh [hosts (10)] [lines (100000)] [runs (5)]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
hosts=${1:-10}
lines=${2:-100000}
runs=${3:-5}
log() { printf '[bench-search] %s\n' "$*" >&2; }

eval "$(testbed/testbed.sh env)"
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    cargo build --locked --release -p fleetdeck-agent -p fleetdeck-collector
fi
source scripts/lib/desktop.sh # free_port

work=$(mktemp -d /tmp/fleetdeck-bench-search.XXXXXX)
pids=()
units=()
# journald's rate limit counts every user unit as user@0.service (10,000 lines per 30 s): for the
# million lines written at once here, the test bed's journald runs without it, then gets it back.
dropin=/etc/systemd/journald.conf.d/fleetdeck-bench-search.conf
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for u in "${units[@]}"; do systemctl --user stop "$u" 2>/dev/null || true; done
    if [[ -f $dropin ]]; then rm -f "$dropin"; testbed/testbed.sh restart journald >/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$(dirname "$dropin")"
printf '[Journal]\nRateLimitIntervalSec=0\n' >"$dropin"
testbed/testbed.sh restart journald >/dev/null

tag="needle-$$-$RANDOM"
log "$hosts units writing $lines lines each into journald"
for i in $(seq 1 "$hosts"); do
    unit="fleetdeck-bench-search-$$-$i.service"
    units+=("$unit")
    systemd-run --user --quiet --unit="$unit" -p LogRateLimitIntervalSec=0 busybox sh -c \
        "seq 1 $lines | awk '{ if (\$1 % 10000 == 0) print \"line \" \$1 \" $tag ${tag/needle/often}\"; else if (\$1 % 100 == 0) print \"line \" \$1 \" ${tag/needle/often}\"; else print \"line \" \$1 \" of host $i, nothing to see\" }'; exec sleep 100000"
done
for unit in "${units[@]}"; do
    for _ in $(seq 1 1200); do
        [[ $(journalctl --user-unit="$unit" -n 1 -o cat 2>/dev/null) == "line $lines "* ]] && break
        sleep 0.1
    done
    [[ $(journalctl --user-unit="$unit" -n 1 -o cat) == "line $lines "* ]] || { log "$unit: not all lines in the journal"; exit 1; }
done

od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/agent.token"
chmod 600 "$work/agent.token"
cport=$(free_port)
printf 'listen = ["127.0.0.1:%s"]\ndatabase = "collector.db"\npoll_interval = "5s"\n' "$cport" >"$work/collector.toml"
for i in $(seq 1 "$hosts"); do
    port=$(free_port)
    printf 'listen = ["127.0.0.1:%s"]\ntoken_file = "%s"\nsystemd = "user"\nsample_interval = "10s"\n\n[[apps]]\nname = "app"\nsystemd_unit = "%s"\n' \
        "$port" "$work/agent.token" "${units[$((i - 1))]}" >"$work/agent-$i.toml"
    "$target/release/fleetdeck-agent" --config "$work/agent-$i.toml" >"$work/agent-$i.log" 2>&1 & pids+=($!)
    printf '\n[[agents]]\nname = "host-%02d"\nurl = "http://127.0.0.1:%s"\ntoken_file = "agent.token"\n' "$i" "$port" >>"$work/collector.toml"
done
chmod 600 "$work/collector.toml"
key=$("$target/release/fleetdeck-collector" --config "$work/collector.toml" keys create --name bench --role viewer | tail -n 1)
"$target/release/fleetdeck-collector" --config "$work/collector.toml" >"$work/collector.log" 2>&1 & pids+=($!)

# journalctl opens every journal file: a journal grown by earlier runs reads slower (vacuum it with
# `journalctl --rotate && journalctl --vacuum-files=1` on the test bed's own journald).
echo "fleet-wide log search: $hosts hosts x $lines journald lines, $(nproc) cores, $(date -u +%F)," \
    "journal $(journalctl --disk-usage 2>/dev/null | grep -o '[0-9.]*[KMGT]' | head -n 1)"
BENCH_URL=http://127.0.0.1:$cport BENCH_KEY=$key BENCH_TAG=$tag BENCH_HOSTS=$hosts BENCH_LINES=$lines BENCH_RUNS=$runs \
python3 - <<'PY'
import json, os, statistics, time, urllib.parse, urllib.request

url, key, tag = os.environ["BENCH_URL"], os.environ["BENCH_KEY"], os.environ["BENCH_TAG"]
hosts, lines, runs = int(os.environ["BENCH_HOSTS"]), int(os.environ["BENCH_LINES"]), int(os.environ["BENCH_RUNS"])

def get(path):
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {key}"})
    return urllib.request.urlopen(req, timeout=120)

deadline = time.time() + 60
while True:
    try:
        fleet = json.load(get("/v1/fleet"))
        if len(fleet["hosts"]) == hosts and all(h["status"] == "up" and h["apps"] for h in fleet["hosts"]):
            break
    except OSError:
        pass
    if time.time() > deadline:
        raise SystemExit("the fleet did not come up")
    time.sleep(0.2)

def search(query):
    t0 = time.monotonic()
    first = None
    found, failed = 0, []
    with get("/v1/logs/search?" + urllib.parse.urlencode(query)) as r:
        for line in r:
            ev = json.loads(line)
            if ev["event"] == "result":
                first = first or time.monotonic() - t0
                found += len(ev["entries"])
            elif ev["event"] == "failed":
                failed.append(ev["message"])
            elif ev["event"] == "done":
                return first, time.monotonic() - t0, found, failed
    raise SystemExit("the search ended without done")

since = int(time.time() * 1000) - 3_600_000
cases = [
    ("a pattern 1 line in 10,000 has (journalctl --grep over every line)", {"grep": tag, "since": since, "limit": 100}, hosts * (lines // 10_000)),
    ("a pattern 1 line in 100 has (the newest 100 matches of each app)", {"grep": tag.replace("needle", "often"), "since": since, "limit": 100}, hosts * min(100, lines // 100)),
    ("every line, the newest 100 of each app", {"since": since, "limit": 100}, hosts * 100),
]
for what, query, want in cases:
    search(query)  # warm-up
    results = [search(query) for _ in range(runs)]
    for first, done, found, failed in results:
        assert not failed, failed
        assert found == want, f"{found} lines found, {want} expected"
    firsts = [r[0] * 1000 for r in results]
    dones = [r[1] * 1000 for r in results]
    print(f"{what}: first results median {statistics.median(firsts):.0f} ms (max {max(firsts):.0f}), "
          f"complete median {statistics.median(dones):.0f} ms (max {max(dones):.0f}), {want} lines, {runs} runs")
PY
