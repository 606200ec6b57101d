#!/usr/bin/env bash
# Coverage-guided fuzzing of Fleetdeck's parsers (fuzz/: cargo fuzz + libFuzzer, nightly Rust):
#   env_parse      arbitrary bytes as a .env file; what parses is written back and reads the same
#   env_roundtrip  structured hostile values written by the agent's edit, then parsed: identical
#   journal_json   journalctl -o json lines        log_cursors  client cursors, Docker timestamps
#   proc_parsers   /proc/stat, meminfo, net/dev, loadavg, uptime, statm, filesystems, mountinfo
#   config         agent.toml and collector.toml text (one-line errors, no secret quoted)
# Builds every target, then runs each for SECONDS_PER_TARGET seconds (default 20: the CI run; the
# long run is `scripts/fuzz.sh 600`) on a temporary copy of fuzz/seeds/<target>/, so the checkout is
# never written. Prints target / executions / exec/s / new units / crashes, keeps each target's log
# and any crash input under ~/.cache/fleetdeck-fuzz-runs/<time>/, and exits 1 naming the artifact
# of a crash. Installs cargo-fuzz (and the nightly toolchain) if missing.
#   usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]  (targets: $(targets | tr '\n' ' '))" >&2; exit 2; }
targets() { sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^fleetdeck-fuzz$'; }

secs=${1:-20}
[[ $secs =~ ^[0-9]+$ ]] && ((secs > 0)) || usage
shift $(($# > 0 ? 1 : 0))
all=$(targets)
if (($# > 0)); then
    for t in "$@"; do grep -qx -- "$t" <<<"$all" || { echo "unknown fuzz target: $t" >&2; usage; }; done
    run=("$@")
else
    mapfile -t run <<<"$all"
fi

target_dir=${FUZZ_TARGET_DIR:-$HOME/.cache/fleetdeck-fuzz-target}
runs=${FUZZ_RUNS_DIR:-$HOME/.cache/fleetdeck-fuzz-runs}
out=$runs/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/fleetdeck-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
CARGO_FUZZ_VERSION=0.13.2
[[ $(cargo fuzz --version 2>/dev/null) == "cargo-fuzz $CARGO_FUZZ_VERSION" ]] ||
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"

# The lock file is committed: refuse to build if it is stale rather than silently re-resolve.
cargo +nightly metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null || {
    echo "fuzz/Cargo.lock is out of date with the crates it fuzzes (a dependency changed): run" >&2
    echo "  cargo update --manifest-path fuzz/Cargo.toml --workspace   and commit fuzz/Cargo.lock" >&2
    exit 1
}
# No sanitizer: every crate of ours forbids unsafe code, so what the targets look for is panics,
# overflows (checked: cargo fuzz builds with debug assertions) and broken properties; without ASan
# the build is lighter and each target runs about twice the executions.
echo "==> building fuzz targets (nightly, target dir $target_dir)"
cargo +nightly fuzz build --fuzz-dir fuzz --sanitizer none --target-dir "$target_dir"
bin_dir=$target_dir/$(rustc +nightly -vV | sed -n "s/^host: //p")/release

failed=()
rows=()
for t in "${run[@]}"; do
    echo "==> $t: ${secs}s"
    mkdir -p "$work/$t" "$out/$t"
    cp -r fuzz/seeds/"$t"/. "$work/$t"/
    rc=0
    "$bin_dir/$t" "$work/$t" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$out/$t/" >"$out/$t.log" 2>&1 || rc=$?
    final_stat() { sed -n "s/^stat::$1: *//p" "$out/$t.log" | tail -1; }
    crashes=$(find "$out/$t" -type f | wc -l)
    rows+=("$(printf '%-14s %12s %10s %8s %8s' "$t" "$(final_stat number_of_executed_units)" \
        "$(final_stat average_exec_per_sec)" "$(final_stat new_units_added)" "$crashes")")
    if ((rc != 0 || crashes > 0)); then
        grep -E -m3 "panicked at|^thread '|SUMMARY|ERROR: libFuzzer" "$out/$t.log" || tail -5 "$out/$t.log"
        for a in "$out/$t"/*; do
            [[ -e $a ]] || continue
            failed+=("$t: $a (reproduce: $bin_dir/$t $a)")
        done
        ((crashes > 0)) || failed+=("$t: exit status $rc, see $out/$t.log")
    fi
done

printf '\n%-14s %12s %10s %8s %8s\n' target executions exec/s new crashes
printf '%s\n' "${rows[@]}"
echo "logs and artifacts: $out"
if ((${#failed[@]} > 0)); then
    echo "FUZZING FOUND CRASHES:"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
