#!/usr/bin/env bash
# API fuzzing of fleetdeck-agent and fleetdeck-collector against their own OpenAPI documents, with
# schemathesis (PyPI, pinned below, installed into the tools venv of scripts/setup.sh).
#
# In a temporary directory it starts, on the test bed, a real agent watching a transient systemd
# unit (with a .env file, actions allowed) and a podman container (actions allowed), and a real
# collector polling it; then runs `st run` against each daemon's /v1/openapi.json with the checks
# not_a_server_error, response_schema_conformance, status_code_conformance,
# content_type_conformance and ignored_auth, bounded in examples and time (both daemons together
# take well under 4 minutes). Streams (SSE) are fuzzed too, each response read for at most a
# couple of seconds; they are also checked explicitly, as is auth on every route (no key, a wrong
# key, and for the collector a viewer key on the operator and admin routes).
#
# Exits non-zero on any failure, after printing schemathesis's report. Cleans up what it started
# (by PID; the unit and the container by name). Run as root on Debian 12:
#   scripts/api-fuzz.sh
# Environment: FUZZ_MAX_EXAMPLES (default 100 per operation), FUZZ_SEED (default: random; the seed
# is printed so a failure can be replayed), FUZZ_KEEP=1 (keep the temporary directory with the
# logs and reports even on success), FLEETDECK_TOOLS (default ~/.cache/fleetdeck-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

ST_VERSION=4.32.5
max_examples=${FUZZ_MAX_EXAMPLES:-100}
seed=${FUZZ_SEED:-$RANDOM$RANDOM}

log() { printf '[api-fuzz] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; failures=$((failures + 1)); }
failures=0

# --- tools -------------------------------------------------------------------------------------
tools=${FLEETDECK_TOOLS:-$HOME/.cache/fleetdeck-tools}
st=$tools/venv/bin/st
if [[ ! -x $tools/venv/bin/python ]]; then
    log "creating the tools venv $tools/venv"
    mkdir -p "$tools"
    python3 -m venv "$tools/venv"
fi
if [[ $("$st" --version 2>/dev/null || true) != "st, version $ST_VERSION" ]]; then
    log "installing schemathesis $ST_VERSION into $tools/venv"
    "$tools/venv/bin/pip" install -q "schemathesis==$ST_VERSION"
fi
command -v jq >/dev/null || { log "jq is missing: run scripts/setup.sh"; exit 1; }

# --- build and test bed ------------------------------------------------------------------------
cargo build --locked -p fleetdeck-agent -p fleetdeck-collector
bin=${CARGO_TARGET_DIR:-$root/target}/debug
testbed/testbed.sh up
eval "$(testbed/testbed.sh env)"

work=$(mktemp -d /tmp/fleetdeck-api-fuzz.XXXXXX)
# No curl of this script may hang CI: each gets 10 s unless it says otherwise (the stream checks).
export CURL_HOME=$work
echo 'max-time = 10' >"$work/.curlrc"
unit=fleetdeck-fuzz-$$-web.service
container=fleetdeck-fuzz-$$-cache
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    systemctl --user stop "$unit" 2>/dev/null || true
    systemctl --user reset-failed "$unit" 2>/dev/null || true
    podman rm -f -t 0 "$container" >/dev/null 2>&1 || true
    # With FLEETDECK_TEST_LOGS set (scripts/test.sh), the daemons' logs and the token, keys and
    # .env value of this run go there for scripts/check-secrets.sh.
    if [[ -n ${FLEETDECK_TEST_LOGS:-} ]]; then
        mkdir -p "$FLEETDECK_TEST_LOGS"
        for f in agent collector; do
            [[ -f $work/$f.log ]] && cp "$work/$f.log" "$FLEETDECK_TEST_LOGS/api-fuzz-$f-$$.log"
        done
        (umask 077 && printf '%s\n' "${agent_token:-}" "${admin_key:-}" "${viewer_key:-}" "${metrics_token:-}" \
            fuzz-secret-value >>"$FLEETDECK_TEST_LOGS/secrets.txt")
    fi
    if ((rc != 0)) || [[ ${FUZZ_KEEP:-0} == 1 ]]; then
        log "kept $work: daemon logs (agent.log, collector.log), schemathesis reports (st-*/)"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT

# Waits until the command succeeds, polling every 0.1 s, for at most $1 seconds.
wait_until() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { log "timed out after ${limit}s waiting for $what"; return 1; }
        sleep 0.1
    done
}

# The address a daemon logged (`listening addr=...`) in $1.
listening_addr() { sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$1" | head -n 1; }

# --- the apps ----------------------------------------------------------------------------------
# systemd expands ${NAME} in command lines: the scripts use $NAME only. Both apps end at once on
# SIGTERM, so fuzzed stop/restart actions stay quick.
systemd-run --user --quiet --unit="$unit" \
    busybox sh -c 'trap "exit 0" TERM; i=0; while true; do i=$((i+1)); echo "fuzz web line $i"; sleep 0.5; done'
podman run -d --quiet --name "$container" --stop-timeout 1 "$TESTBED_IMAGE" \
    sh -c 'trap "exit 0" TERM; while true; do echo cache tick; sleep 1; done' >/dev/null

(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/agent.token")
agent_token=$(<"$work/agent.token")
printf '# fuzzed app\nPORT=8080\nSECRET=fuzz-secret-value\n' >"$work/web.env"
chmod 600 "$work/web.env"
cat >"$work/agent.toml" <<TOML
listen = ["127.0.0.1:0"]
token_file = "agent.token"
systemd = "user"
sample_interval = "1s"

[[apps]]
name = "web"
systemd_unit = "$unit"
env_file = "$work/web.env"
allow_actions = true

[[apps]]
name = "cache"
docker_container = "$container"
allow_actions = true
TOML

RUST_LOG=info "$bin/fleetdeck-agent" --config "$work/agent.toml" >"$work/agent.log" 2>&1 &
pids+=($!)
wait_until 20 "the agent to listen" grep -q 'listening' "$work/agent.log"
agent=http://$(listening_addr "$work/agent.log")
wait_until 20 "the agent's /healthz" curl -sf "$agent/healthz"

cat >"$work/collector.toml" <<TOML
listen = ["127.0.0.1:0"]
database = "collector.db"
poll_interval = "1s"
poll_timeout = "700ms"

[metrics]
token_file = "metrics.token"

[[agents]]
name = "fuzz-host"
url = "$agent"
token_file = "agent.token"
TOML
# /metrics is on, so its scrape-token check is fuzzed like every other route's key check.
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/metrics.token")
metrics_token=$(<"$work/metrics.token")
key_of() { "$bin/fleetdeck-collector" --config "$work/collector.toml" keys create --name "$1" --role "$2" | tail -n 1; }
admin_key=$(key_of fuzz-admin admin)
viewer_key=$(key_of fuzz-viewer viewer)
RUST_LOG=info "$bin/fleetdeck-collector" --config "$work/collector.toml" >"$work/collector.log" 2>&1 &
pids+=($!)
wait_until 20 "the collector to listen" grep -q 'listening' "$work/collector.log"
collector=http://$(listening_addr "$work/collector.log")
host_polled() {
    curl -sf -H "Authorization: Bearer $admin_key" "$collector/v1/hosts/fuzz-host" |
        jq -e '[.apps[].status.name] | index("web") and index("cache")'
}
wait_until 20 "the collector to poll the agent" host_polled
log "agent $agent, collector $collector, seed $seed"

# --- explicit checks: auth on every route, and the streams --------------------------------------
# Every operation of the document at $1 (read with key $2) is sent without a key and with a wrong
# one: each must answer 401 with `WWW-Authenticate: Bearer` (only /healthz is open).
check_auth() {
    local base=$1 key=$2 doc method path url code
    doc=$(curl -sf -H "Authorization: Bearer $key" "$base/v1/openapi.json")
    while read -r method path; do
        url=$base$(sed 's/{app}/web/g; s/{host}/fuzz-host/g; s/{action}/restart/g; s/{[^}]*}/x/g' <<<"$path")
        if [[ $path == /healthz ]]; then
            code=$(curl -s -o /dev/null -w '%{http_code}' -X "$method" "$url")
            [[ $code == 200 ]] || fail "$method $url without a key: $code, want 200 (liveness is open)"
            continue
        fi
        for auth in "" "Authorization: Bearer wrong-$RANDOM" "Authorization: Basic Zm9vOmJhcg=="; do
            code=$(curl -s -o "$work/body" -D "$work/headers" -w '%{http_code}' -X "$method" \
                ${auth:+-H "$auth"} --max-time 5 "$url")
            [[ $code == 401 ]] || fail "$method $url with ${auth:-no key}: $code, want 401"
            grep -qi '^www-authenticate: Bearer' "$work/headers" ||
                fail "$method $url with ${auth:-no key}: no WWW-Authenticate: Bearer"
            jq -e '.error.code == "unauthorized"' "$work/body" >/dev/null ||
                fail "$method $url with ${auth:-no key}: body is not the unauthorized error"
        done
    done < <(jq -r "$operations"' | "\(.method | ascii_upcase) \(.path)"' <<<"$doc")
    # And the document says so: every operation but /healthz names the bearer scheme.
    while read -r method path; do
        fail "$base: $method $path declares no security requirement"
    done < <(jq -r "$operations"' | select(.op.security == null and .path != "/healthz")
        | "\(.method | ascii_upcase) \(.path)"' <<<"$doc")
}
# Each operation of an OpenAPI document as {path, method, op}.
operations='.paths | to_entries[] | .key as $path | .value | to_entries[]
    | select(.key | test("^(get|put|post|delete|patch)$")) | {path: $path, method: .key, op: .value}'

check_auth "$agent" "$agent_token"
check_auth "$collector" "$admin_key"
# /metrics opens for the scrape token only: an admin key is refused, and the token opens nothing else.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $admin_key" "$collector/metrics")
[[ $code == 401 ]] || fail "GET /metrics with the admin key: $code, want 401"
code=$(curl -s -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $metrics_token" "$collector/metrics")
[[ $code == 200 ]] && grep -q '^fleetdeck_app_up{app="web",host="fuzz-host"} ' "$work/body" ||
    fail "GET /metrics with the scrape token: $code, want 200 and fleetdeck_app_up for web"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $metrics_token" "$collector/v1/fleet")
[[ $code == 401 ]] || fail "GET /v1/fleet with the scrape token: $code, want 401"

# A viewer reads the fleet but never .env values, actions, keys or the audit log.
viewer_code() {
    curl -s -o /dev/null -w '%{http_code}' -X "$1" -H "Authorization: Bearer $viewer_key" \
        -H 'Content-Type: application/json' ${3:+--data "$3"} "$collector$2"
}
[[ $(viewer_code GET /v1/fleet) == 200 ]] || fail "viewer: GET /v1/fleet is not 200"
for route in "GET /v1/hosts/fuzz-host/apps/web/env" "PUT /v1/hosts/fuzz-host/apps/web/env" \
    "POST /v1/hosts/fuzz-host/apps/web/actions/restart" "GET /v1/keys" "GET /v1/audit" \
    "DELETE /v1/keys/fuzz-admin"; do
    code=$(viewer_code $route '{"set":{}}')
    [[ $code == 403 ]] || fail "viewer: $route answered $code, want 403"
done
key_body='{"name":"x","role":"admin"}'
[[ $(viewer_code POST /v1/keys "$key_body") == 403 ]] || fail "viewer: POST /v1/keys is not 403"

# Each stream answers 200 text/event-stream at once and keeps the connection open (curl's time
# limit ends it: exit 28); the log streams carry the unit's lines (one every 0.5 s).
check_stream() {
    local url=$1 key=$2 want=$3 rc=0
    curl -sN --max-time 4 -D "$work/headers" -H "Authorization: Bearer $key" "$url" >"$work/stream" || rc=$?
    ((rc == 28)) || fail "stream $url ended by itself (curl exit $rc), want it held open"
    grep -qi '^content-type: text/event-stream' "$work/headers" || fail "stream $url: not text/event-stream"
    if [[ -n $want ]] && ! grep -q "$want" "$work/stream"; then
        fail "stream $url: no \"$want\" within 4 s; it sent:"
        head -c 2000 "$work/stream" >&2
    fi
}
check_stream "$agent/v1/events" "$agent_token" ""
check_stream "$agent/v1/apps/web/logs/stream" "$agent_token" "fuzz web line"
check_stream "$collector/v1/events/stream" "$admin_key" ""
check_stream "$collector/v1/hosts/fuzz-host/apps/web/logs/stream" "$admin_key" "fuzz web line"

# --- schemathesis ------------------------------------------------------------------------------
# One config per daemon, written just before its run: the token; the apps and host that exist and
# the .env file's current etag (half of the generated values of those parameters are these, the
# rest generated), so that actions, log reads and .env writes get past the 404 and the 412.
st_config() { # file, bearer env var, extra TOML
    local etag
    etag=$(curl -sf -H "Authorization: Bearer $agent_token" "$agent/v1/apps/web/env" | jq -r .etag)
    cat >"$1" <<TOML
# Generated by scripts/api-fuzz.sh.
seed = $seed
request-timeout = 10
max-stream-events = 5
# One worker: with two, hypothesis (describing its filters with ast.parse) hits CPython 3.11's
# "AST constructor recursion depth mismatch" SystemError: ast.parse is not thread-safe there.
workers = 1

# Nothing kept between runs (the seed replays a run): no example database, no cache in the clone.
[generation]
max-examples = $max_examples
database = "none"

[cache]
enabled = false

[auth.openapi.bearer]
bearer = "\${$2}"

[checks]
enabled = false
not_a_server_error.enabled = true
response_schema_conformance.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
ignored_auth.enabled = true

[dictionaries.apps]
values = ["web", "cache"]

[dictionaries.etags]
values = ["$etag"]

[parameters."path.app"]
dictionary = "apps"
probability = 0.5

[parameters."header.If-Match"]
dictionary = "etags"
probability = 0.5

# Streams never end by themselves: each is read for 2 s (or 5 events), and fewer are generated.
[[operations]]
include-path-regex = "/stream\$|^/v1/events\$"
request-timeout = 2
generation.max-examples = 5
$3
TOML
}

run_st() { # name, base URL, key, config
    local name=$1 base=$2 key=$3 config=$4 rc=0 report
    log "schemathesis against the $name ($base/v1/openapi.json)"
    # The document itself needs the key: fetch it, and point schemathesis at the daemon.
    curl -sf -H "Authorization: Bearer $key" "$base/v1/openapi.json" >"$work/$name.openapi.json"
    # A hard bound besides the examples' count, so that nothing can hang CI; run in $work, where
    # hypothesis keeps its .hypothesis directory.
    (cd "$work" && timeout 150 "$st" --config-file "$config" --no-color run "$work/$name.openapi.json" \
        --url "$base" --report junit,json --report-dir "$work/st-$name") ||
        rc=$?
    ((rc == 0)) || fail "schemathesis found failures in the $name (exit $rc)"
    # The figures of docs/reliability.md, from the run's JSON report.
    report=("$work/st-$name"/json-*.json)
    if [[ -f ${report[0]} ]]; then
        jq -r --arg name "$name" '"[api-fuzz] \($name): schemathesis \(.schemathesis_version), seed \(.seed), "
            + "\(.operations.tested)/\(.operations.total) operations, \(.test_cases.generated) test cases, "
            + "\(.failures | length) failures, \(.errors | length) errors, \(.running_time | floor) s"' "${report[0]}" >&2
    fi
}

export FUZZ_AGENT_TOKEN=$agent_token FUZZ_ADMIN_KEY=$admin_key
st_config "$work/st-agent.toml" FUZZ_AGENT_TOKEN ""
run_st agent "$agent" "$agent_token" "$work/st-agent.toml"

st_config "$work/st-collector.toml" FUZZ_ADMIN_KEY '
[dictionaries.hosts]
values = ["fuzz-host"]

[parameters."path.host"]
dictionary = "hosts"
probability = 0.5

# Names read from GET /v1/keys include the key this run uses: deleting it would turn the rest of
# the run into 401s, so DELETE /v1/keys/{name} gets generated names only.
[[operations]]
include-path = "/v1/keys/{name}"
include-method = "DELETE"
phases.coverage.extra-data-sources.responses = false
phases.fuzzing.extra-data-sources.responses = false
'
run_st collector "$collector" "$admin_key" "$work/st-collector.toml"
# Had the fuzzer deleted its own key, the run above would have tested little past the 401.
curl -sf -H "Authorization: Bearer $admin_key" "$collector/v1/keys" |
    jq -e 'any(.[]; .name == "fuzz-admin")' >/dev/null ||
    fail "the collector no longer accepts the admin key the fuzzer used"

if ((failures)); then
    log "$failures failure(s)"
    exit 1
fi
log "passed: no 5xx, every response in its schema, auth enforced on every route"
