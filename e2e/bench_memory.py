"""Desktop memory over time: the app opened on one app's page with its log following (the last
view saved in the settings), against a demo collector whose apps all log every few ms, while the
50-host fleet keeps updating. Samples PSS and RSS of the app and all its WebKit processes every
BENCH_INTERVAL_SECS for BENCH_MINUTES, then prints the figures at 1, 5, 10 minutes and the end.
Run by scripts/bench-desktop.sh memory (which starts the display, the session, the collector)."""

import json
import os
import subprocess
import sys
import time
import urllib.request

from bench_startup import foreign_webkit, mem_kib, tree

APP = os.environ["BENCH_APP"]
MINUTES = float(os.environ.get("BENCH_MINUTES", "10"))
INTERVAL = float(os.environ.get("BENCH_INTERVAL_SECS", "30"))
URL = os.environ["BENCH_COLLECTOR_URL"]
KEY = os.environ["BENCH_KEY"]
SETTINGS = os.path.join(os.environ["FLEETDECK_CONFIG_DIR"], "settings.json")


def first_app():
    """The first app of the first host, as the collector lists them."""
    req = urllib.request.Request(f"{URL}/v1/fleet", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        fleet = json.load(r)
    host = fleet["hosts"][0]
    return host["name"], host["apps"][0]["status"]["name"]


def open_on(host, app):
    """Saves the app's page as the last view, so the app opens there with its log following."""
    with open(SETTINGS) as f:
        settings = json.load(f)
    collector = settings["collectors"][0]["name"]
    settings["last_view"] = {"view": "app", "collector": collector, "host": host, "app": app}
    with open(SETTINGS, "w") as f:
        json.dump(settings, f)


def sample(pid):
    pids = tree(pid)
    kinds = {}
    for p in pids:
        try:
            with open(f"/proc/{p}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        kinds[name] = kinds.get(name, 0) + mem_kib(p, "Pss") / 1024
    pss = sum(kinds.values())
    rss = sum(mem_kib(p, "Rss") for p in pids) / 1024
    return pss, rss, kinds


def main():
    host, app = first_app()
    open_on(host, app)
    print(f"following {app} on {host} for {MINUTES:g} min, a sample every {INTERVAL:g} s")
    # DIAG_ENV="NAME=value ...": start the app with those variables set (to try a knob)
    extra = dict(kv.split("=", 1) for kv in os.environ.get("DIAG_ENV", "").split() if "=" in kv)
    proc = subprocess.Popen([APP], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, **extra))
    t0 = time.monotonic()
    rows = []
    try:
        while (elapsed := time.monotonic() - t0) < MINUTES * 60 + 1:
            time.sleep(INTERVAL)
            if proc.poll() is not None:
                raise SystemExit(f"the app exited with {proc.returncode} after {elapsed:.0f} s")
            elapsed = time.monotonic() - t0
            pss, rss, kinds = sample(proc.pid)
            parts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(kinds.items()))
            others = foreign_webkit(set(tree(proc.pid)))
            if others:  # such a sample understates the app alone: left out of the figures
                parts += f"; {others} other WebKit processes ran, sample not counted"
            else:
                rows.append((elapsed, pss, rss))
            print(f"{elapsed / 60:6.1f} min: PSS {pss:6.1f} MiB, RSS {rss:6.1f} MiB ({parts})", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if not rows:
        raise SystemExit("every sample was taken with other WebKit processes about: none counted")
    at = lambda m: min(rows, key=lambda r: abs(r[0] - m * 60))
    for m in (1, 5, 10, 30, 60, 120, 240, 480):
        if rows[-1][0] >= m * 60 - INTERVAL:
            r = at(m)
            print(f"at {m} min: PSS {r[1]:.0f} MiB, RSS {r[2]:.0f} MiB")
    settled = [r[1] for r in rows if r[0] >= 60] or [rows[-1][1]]
    print(f"mean PSS from 1 min on: {sum(settled) / len(settled):.0f} MiB")
    print(f"end ({rows[-1][0] / 60:.1f} min): PSS {rows[-1][1]:.0f} MiB; max PSS {max(r[1] for r in rows):.0f} MiB")
    if rows[-1][0] >= 20 * 60:  # a soak: the end against the 10-minute figure (target: within 10 %)
        ten = at(10)[1]
        print(f"end against 10 min: {100 * (rows[-1][1] - ten) / ten:+.1f} %; "
              f"max against 10 min: {100 * (max(r[1] for r in rows) - ten) / ten:+.1f} %")
        soak_table(rows)


def soak_table(rows):
    """PSS by window (10 minutes, or an hour past two hours) as a Markdown table, and the last half
    hour's mean against the 10-minute figure (the mean of minutes 5-15), for docs/benchmarks.md."""
    minutes = rows[-1][0] / 60
    width = 10 if minutes <= 120 else 60
    print(f"| minutes | mean PSS (MiB) | max PSS (MiB) | samples |\n| --- | --- | --- | --- |")
    for lo in range(0, int(minutes) + 1, width):
        window = [r[1] for r in rows if lo * 60 <= r[0] < (lo + width) * 60]
        if window:
            print(f"| {lo}–{lo + width} | {sum(window) / len(window):.0f} | {max(window):.0f} | {len(window)} |")
    ten = [r[1] for r in rows if 5 * 60 <= r[0] <= 15 * 60]
    last = [r[1] for r in rows if r[0] >= rows[-1][0] - 30 * 60]
    if ten and last:
        ten_mean, last_mean = sum(ten) / len(ten), sum(last) / len(last)
        print(f"10-minute figure (mean of minutes 5-15): {ten_mean:.0f} MiB; last half hour's mean "
              f"{last_mean:.0f} MiB ({100 * (last_mean - ten_mean) / ten_mean:+.1f} %)")


if __name__ == "__main__":
    sys.exit(main())
