#!/usr/bin/env bash
# Proves no secret reached a log: every secret the test suite used (agent tokens, API keys, .env
# values, webhook URLs; recorded one per line in DIR/secrets.txt by testkit::secret) is searched,
# as a fixed string, in every log the suite's daemons wrote to DIR (every other file there).
# A hit names the log file, the line and the secret's line number in secrets.txt, never the
# secret. It fails too when nothing was recorded (no secrets or no logs): a check that saw
# nothing proves nothing.
#   scripts/check-secrets.sh [DIR]     DIR defaults to $FLEETDECK_TEST_LOGS, else
#                                      $CARGO_TARGET_DIR/test-logs, else target/test-logs
#   scripts/check-secrets.sh --self-test   plants a canary in a temporary directory and proves
#                                      it is found (and not printed), and that a clean or empty
#                                      directory passes or fails as it should
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export LC_ALL=C

MIN_LEN=6

check() {
    local dir=$1
    local secrets_file=$dir/secrets.txt
    if [[ ! -d $dir ]]; then
        echo "check-secrets: no log directory $dir: run the tests first (they write there)" >&2
        return 1
    fi
    if [[ ! -s $secrets_file ]]; then
        echo "check-secrets: $secrets_file is missing or empty: the tests recorded no secret" \
            "(testkit::secret), so this check would prove nothing" >&2
        return 1
    fi
    local logs=()
    while IFS= read -r -d '' f; do
        logs+=("$f")
    done < <(find "$dir" -type f ! -name secrets.txt -print0 | sort -z)
    if ((${#logs[@]} == 0)); then
        echo "check-secrets: no log file in $dir: the tests' daemons logged nothing there" >&2
        return 1
    fi
    local n=0 checked=0 found=0 secret hits
    local -A seen=() # test binaries record the same secret each: check it once
    while IFS= read -r secret || [[ -n $secret ]]; do
        n=$((n + 1))
        ((${#secret} >= MIN_LEN)) || continue
        [[ -z ${seen[$secret]+x} ]] || continue
        seen[$secret]=1
        checked=$((checked + 1))
        # Only file:line leave grep's pipe: the matching line holds the secret.
        hits=$(grep -HnF -e "$secret" -- "${logs[@]}" | cut -d: -f1,2 || true)
        if [[ -n $hits ]]; then
            found=$((found + 1))
            while IFS= read -r hit; do
                echo "check-secrets: secret #$n of $secrets_file (${#secret} chars) is in $hit" >&2
            done <<<"$hits"
        fi
    done <"$secrets_file"
    local lines
    lines=$(cat -- "${logs[@]}" | wc -l)
    if ((checked == 0)); then
        echo "check-secrets: every recorded secret is shorter than $MIN_LEN characters: nothing to check" >&2
        return 1
    fi
    if ((found > 0)); then
        echo "check-secrets: FAILED: $found of $checked secrets appear in the logs of $dir" >&2
        return 1
    fi
    echo "check-secrets: $checked secrets, ${#logs[@]} log files ($lines lines) in $dir: no secret in any log"
}

self_test() {
    local tmp canary out
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    canary="fdcanary-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

    mkdir "$tmp/dirty"
    printf 'short\n%s\nanother-recorded-secret\n' "$canary" >"$tmp/dirty/secrets.txt"
    printf 'starting\nlistening addr=127.0.0.1:1\nuser said %s here\n' "$canary" >"$tmp/dirty/agent-1.log"
    printf 'nothing to see\n' >"$tmp/dirty/collector-1.log"
    if out=$(check "$tmp/dirty" 2>&1); then
        echo "self-test FAILED: a planted canary was not detected: $out" >&2
        return 1
    fi
    [[ $out == *"$tmp/dirty/agent-1.log:3"* ]] || {
        echo "self-test FAILED: the hit does not name the file and line: $out" >&2
        return 1
    }
    [[ $out == *"secret #2 of"* ]] || {
        echo "self-test FAILED: the hit does not name the secret's line: $out" >&2
        return 1
    }
    [[ $out != *"$canary"* && $out != *"fdcanary"* ]] || {
        echo "self-test FAILED: the report printed the secret" >&2
        return 1
    }
    [[ $out != *"collector-1.log"* ]] || {
        echo "self-test FAILED: a clean log was reported: $out" >&2
        return 1
    }

    mkdir "$tmp/clean"
    printf '%s\n' "$canary" >"$tmp/clean/secrets.txt"
    printf 'nothing to see\n' >"$tmp/clean/agent-1.log"
    out=$(check "$tmp/clean" 2>&1) || {
        echo "self-test FAILED: a clean directory failed: $out" >&2
        return 1
    }

    mkdir "$tmp/nologs" "$tmp/nosecrets"
    printf '%s\n' "$canary" >"$tmp/nologs/secrets.txt"
    printf 'nothing to see\n' >"$tmp/nosecrets/agent-1.log"
    for d in nologs nosecrets; do
        if out=$(check "$tmp/$d" 2>&1); then
            echo "self-test FAILED: a directory with $d passed: $out" >&2
            return 1
        fi
    done
    echo "check-secrets: self-test passed (canary found at its file and line and not printed;" \
        "clean passes; no logs or no secrets fail)"
}

case ${1:-} in
    --self-test) self_test ;;
    -h | --help) sed -n '2,13p' "$0" ;;
    *) check "${1:-${FLEETDECK_TEST_LOGS:-${CARGO_TARGET_DIR:-$root/target}/test-logs}}" ;;
esac
