"""Desktop start-up benchmark: cold start to first paint of the fleet, and resident memory of the
app with its WebKit processes, against a demo collector. Run by scripts/bench-desktop.sh (which
starts the display, the D-Bus session, the keyring and the collector); prints one line per run and
a summary."""

import os
import statistics
import subprocess
import sys
import time

APP = os.environ["BENCH_APP"]
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
SETTLE = float(os.environ.get("BENCH_SETTLE_SECS", "5"))


def tree(pid):
    """The pid and all its descendants (WebKitWebProcess, WebKitNetworkProcess, ...)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def foreign_webkit(ours):
    """WebKit processes on this machine outside `ours`. They map the same libraries, and PSS shares
    a page among all its mappers: with others about, the app's PSS reads lower than alone."""
    n = 0
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) not in ours:
            try:
                with open(f"/proc/{p}/comm") as f:
                    n += f.read().startswith(("WebKit", "MiniBrowser"))
            except OSError:
                pass
    return n


def mem_kib(pid, field):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def one_run():
    env = dict(os.environ, FLEETDECK_BENCH_STARTUP="1")
    t0 = time.monotonic()
    proc = subprocess.Popen([APP], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        deadline = t0 + 60
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("first-paint") or not line:
                break
        if not line.startswith("first-paint"):
            raise SystemExit("the app exited or did not paint within 60 s")
        wall_ms = (time.monotonic() - t0) * 1000
        fields = dict(kv.split("=") for kv in line.split()[1:])
        time.sleep(SETTLE)  # memory once the fleet is shown and live updates run
        pids = tree(proc.pid)
        rss = sum(mem_kib(p, "Rss") for p in pids) / 1024
        pss = sum(mem_kib(p, "Pss") for p in pids) / 1024
        return wall_ms, float(fields["ms"]), int(fields["hosts"]), rss, pss, len(pids)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    one_run()  # warm the page cache: "cold" here means a new process, not an empty disk cache
    results = [one_run() for _ in range(RUNS)]
    for wall, inner, hosts, rss, pss, n in results:
        print(f"run: first paint {wall:.0f} ms (in-app {inner:.0f} ms), {hosts} hosts, "
              f"RSS {rss:.0f} MiB, PSS {pss:.0f} MiB over {n} processes")
    walls = [r[0] for r in results]
    rss = [r[3] for r in results]
    pss = [r[4] for r in results]
    print(f"first paint: median {statistics.median(walls):.0f} ms, max {max(walls):.0f} ms")
    print(f"memory: RSS median {statistics.median(rss):.0f} MiB, PSS median {statistics.median(pss):.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
