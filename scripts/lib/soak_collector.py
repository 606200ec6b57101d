#!/usr/bin/env python3
"""The collector soak's measurement and analysis (Python stdlib only), run by scripts/soak-collector.sh.

  sample   every 10 s until --seconds have passed: the collector's RSS and PSS, its CPU time, the
           simulator's RSS and the load average, appended to <out>/memory.csv. Ends early (exit 1)
           if the collector or the simulator exits.
  analyze  reads <out>/memory.csv and the simulator's poll log (one line per poll request:
           host index, snapshot|samples, start in unix µs, handling µs, HTTP status), writes
           <out>/summary.json and <out>/summary.txt, prints the text, and exits 1 if the memory
           bound or any poll interval was missed.

Definitions (also written into the summary):
  poll           a GET .../v1/snapshot answered 200 (the collector then reads .../v1/samples).
  poll latency   from the snapshot request's arrival to the end of the host's following samples
                 request, as the simulator saw them (so: both round trips and the collector's work
                 between them; not the database write that follows).
  gap            time between the starts of two consecutive polls of one virtual host.
  missed         a gap > interval + jitter + slack (jitter: the collector's per-agent delay window,
                 min(interval/10, 3 s); slack: queueing and latency allowance, default 5 s); also a
                 first poll later than jitter + slack after the first cycle began, or a last poll
                 older than interval + jitter + slack at the end, or a failed (non-200) snapshot.
  expected polls cycles that began at least jitter + slack before the end of the run (the collector
                 ticks every interval from its first cycle).
  memory growth  RSS at the end minus RSS after warm-up (min(180 s, max(60 s, run/4))); slope is a
                 least-squares fit over the samples after warm-up, per 10 minutes.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time

PAGE_TICKS = os.sysconf("SC_CLK_TCK")


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def file_kib(path):
    try:
        return os.stat(path).st_size // 1024
    except (OSError, TypeError):
        return 0


def pg_database_kib(url):
    """The size of the PostgreSQL database at `url` (psql; its password from PGPASSFILE)."""
    try:
        out = subprocess.run(["psql", url, "-Atc", "SELECT pg_database_size(current_database())"],
                             capture_output=True, text=True, timeout=30, check=True)
        return int(out.stdout.strip()) // 1024
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


def postgres_cpu_seconds():
    """CPU of every process named postgres (the test bed's server and its sessions)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            total += cpu_seconds(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return total


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / PAGE_TICKS


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def scrape(url, token_file):
    """GET /metrics as Prometheus would: (seconds, bytes, series lines)."""
    import urllib.request
    with open(token_file) as t:
        token = t.read().strip()
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    began = time.monotonic()
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read()
    took = time.monotonic() - began
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return took, len(body), series


def sample(args):
    path = os.path.join(args.out, "memory.csv")
    start = time.monotonic()
    scrapes = None
    if args.metrics_url:
        scrapes = csv.writer(open(os.path.join(args.out, "scrapes.csv"), "w", newline=""))
        scrapes.writerow(["t_s", "seconds", "bytes", "series"])
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["t_s", "unix_s", "collector_rss_kib", "collector_pss_kib",
                      "collector_cpu_s", "sim_rss_kib", "sim_cpu_s", "load1",
                      # where the collector's memory is: anonymous (heap, SQLite's page caches)
                      # or file pages; its threads (glibc gives threads arenas); the database
                      "collector_rss_anon_kib", "collector_rss_file_kib", "collector_threads",
                      "db_kib", "wal_kib",
                      # with --pg-url: the server's CPU (every postgres process)
                      "pg_cpu_s"])
        n = 0
        while True:
            for name, pid in (("collector", args.collector_pid), ("simulator", args.sim_pid)):
                if not alive(pid):
                    print(f"soak: the {name} (pid {pid}) exited during the run; see {args.out}",
                          file=sys.stderr)
                    return 1
            with open("/proc/loadavg") as la:
                load1 = float(la.read().split()[0])
            t = time.monotonic() - start
            out.writerow([round(t, 1), round(time.time(), 3),
                          status_kib(args.collector_pid, "VmRSS:"), pss_kib(args.collector_pid),
                          round(cpu_seconds(args.collector_pid), 2),
                          status_kib(args.sim_pid, "VmRSS:"), round(cpu_seconds(args.sim_pid), 2),
                          load1,
                          status_kib(args.collector_pid, "RssAnon:"),
                          status_kib(args.collector_pid, "RssFile:"),
                          status_kib(args.collector_pid, "Threads:"),
                          pg_database_kib(args.pg_url) if args.pg_url else file_kib(args.db),
                          0 if args.pg_url else file_kib(args.db + "-wal"),
                          round(postgres_cpu_seconds(), 2) if args.pg_url else 0])
            f.flush()
            if scrapes is not None and n % args.scrape_every == 0:
                try:
                    scrapes.writerow([round(t, 1), *scrape(args.metrics_url, args.metrics_token)])
                except OSError as e:
                    print(f"soak: GET /metrics failed: {e}", file=sys.stderr)
                    return 1
            n += 1
            # The next sample is due at a fixed period from the start: this paces the sampling,
            # nothing waits for it.
            due = n * args.period
            if due > args.seconds:
                return 0
            time.sleep(max(0.0, start + due - time.monotonic()))


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = round((len(sorted_values) - 1) * p)
    return sorted_values[min(i, len(sorted_values) - 1)]


def slope_per_10min(points):
    if len(points) < 2:
        return 0.0
    mt = statistics.fmean(t for t, _ in points)
    mv = statistics.fmean(v for _, v in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    if den == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in points) / den * 600.0


def analyze(args):
    with open(os.path.join(args.out, "memory.csv")) as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    if len(rows) < 2:
        print("soak: fewer than two memory samples: the run ended too early", file=sys.stderr)
        return 1
    run_secs = rows[-1]["t_s"]
    t_end = rows[-1]["unix_s"]
    warm_secs = min(180.0, max(60.0, run_secs / 4))
    after = [r for r in rows if r["t_s"] >= warm_secs] or rows[-1:]
    warm = after[0]
    rss_warm, rss_end = warm["collector_rss_kib"], rows[-1]["collector_rss_kib"]
    rss_max = max(r["collector_rss_kib"] for r in rows)
    growth_kib = rss_end - rss_warm
    slope = slope_per_10min([(r["t_s"], r["collector_rss_kib"]) for r in after])
    pss_slope = slope_per_10min([(r["t_s"], r["collector_pss_kib"]) for r in after])
    cpu_used = rows[-1]["collector_cpu_s"] - rows[0]["collector_cpu_s"]
    sim_cpu = rows[-1]["sim_cpu_s"] - rows[0]["sim_cpu_s"]
    pg_cpu = rows[-1].get("pg_cpu_s", 0) - rows[0].get("pg_cpu_s", 0)
    wall = rows[-1]["t_s"] - rows[0]["t_s"]
    loads = [r["load1"] for r in rows]

    # The poll log: per host, the snapshot polls and the samples requests, in time order.
    snapshots, samples_req = {}, {}
    failed = 0
    with open(args.poll_log) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 5:
                continue
            host, kind, start_us, took_us, status = (int(parts[0]), parts[1], int(parts[2]),
                                                     int(parts[3]), int(parts[4]))
            start = start_us / 1e6
            if start > t_end:
                continue
            if kind == "snapshot":
                if status == 200:
                    snapshots.setdefault(host, []).append((start, took_us / 1e6))
                else:
                    failed += 1
            else:
                samples_req.setdefault(host, []).append((start, (start_us + took_us) / 1e6))
    interval, jitter, slack = args.interval, args.jitter, args.slack
    threshold = interval + jitter + slack
    all_starts = [s for polls in snapshots.values() for s, _ in polls]
    if not all_starts:
        print("soak: no poll reached the simulator", file=sys.stderr)
        first_cycle = t_end
    else:
        first_cycle = min(all_starts)
    cycles_due = max(0, int((t_end - first_cycle - jitter - slack) // interval) + 1)

    latencies, handling, gaps = [], [], []
    missed = []  # (host, kind, seconds)
    seen_counts = []
    for host in range(args.agents):
        polls = sorted(snapshots.get(host, []))
        reqs = sorted(samples_req.get(host, []))
        seen = sum(1 for s, _ in polls if s <= t_end)
        seen_counts.append(seen)
        if not polls:
            missed.append((host, "never polled", t_end - first_cycle))
            continue
        if polls[0][0] - first_cycle > jitter + slack:
            missed.append((host, "first poll late", polls[0][0] - first_cycle))
        j = 0
        for i, (start, took) in enumerate(polls):
            handling.append(took)
            nxt = polls[i + 1][0] if i + 1 < len(polls) else float("inf")
            while j < len(reqs) and reqs[j][0] < start:
                j += 1
            if j < len(reqs) and reqs[j][0] < nxt:
                latencies.append(reqs[j][1] - start)
            else:
                latencies.append(took)
            if i + 1 < len(polls):
                gap = nxt - start
                gaps.append(gap)
                if gap > threshold:
                    missed.append((host, "gap", gap))
        if t_end - polls[-1][0] > threshold:
            missed.append((host, "no poll at the end", t_end - polls[-1][0]))
        if seen < cycles_due:
            missed.append((host, f"{seen} polls of {cycles_due} due", 0.0))
    latencies.sort()
    handling.sort()
    gaps.sort()
    bound_kib = args.max_growth_mib * 1024
    memory_ok = growth_kib <= bound_kib
    polls_ok = not missed and failed == 0
    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    summary = {
        "run": {
            "agents": args.agents,
            "seconds": round(run_secs),
            "poll_interval_s": interval,
            "jitter_s": jitter,
            "slack_s": slack,
            "missed_threshold_s": threshold,
            "warm_up_s": warm_secs,
            "collector_cpu_percent": round(100 * cpu_used / wall, 1) if wall else None,
            "postgres_cpu_percent": round(100 * pg_cpu / wall, 1) if wall and pg_cpu else None,
            "db_end_kib": int(rows[-1].get("db_kib", 0)),
            "simulator_cpu_percent": round(100 * sim_cpu / wall, 1) if wall else None,
            "load1_mean": round(statistics.fmean(loads), 2),
            "load1_max": max(loads),
            "cores": os.cpu_count(),
        },
        "memory": {
            "rss_after_warm_up_kib": int(rss_warm),
            "rss_end_kib": int(rss_end),
            "rss_max_kib": int(rss_max),
            "growth_kib": int(growth_kib),
            "slope_kib_per_10min": round(slope, 1),
            "pss_after_warm_up_kib": int(warm["collector_pss_kib"]),
            "pss_end_kib": int(rows[-1]["collector_pss_kib"]),
            "pss_slope_kib_per_10min": round(pss_slope, 1),
            "bound_kib": int(bound_kib),
            "ok": memory_ok,
        },
        "polls": {
            "cycles_due": cycles_due,
            "polls_seen": sum(seen_counts),
            "polls_due": cycles_due * args.agents,
            "per_agent_seen_min": min(seen_counts) if seen_counts else 0,
            "per_agent_seen_max": max(seen_counts) if seen_counts else 0,
            "failed_snapshots": failed,
            "latency_ms": {"p50": ms(percentile(latencies, 0.5)),
                           "p99": ms(percentile(latencies, 0.99)),
                           "max": ms(latencies[-1] if latencies else None)},
            "snapshot_handling_ms": {"p50": ms(percentile(handling, 0.5)),
                                     "p99": ms(percentile(handling, 0.99)),
                                     "max": ms(handling[-1] if handling else None)},
            "gap_s": {"min": round(gaps[0], 3) if gaps else None,
                      "p50": round(percentile(gaps, 0.5), 3) if gaps else None,
                      "p99": round(percentile(gaps, 0.99), 3) if gaps else None,
                      "max": round(gaps[-1], 3) if gaps else None},
            "missed": len(missed),
            "missed_examples": [{"host": h, "what": w, "seconds": round(s, 3)}
                                for h, w, s in missed[:20]],
            "ok": polls_ok,
        },
        "ok": memory_ok and polls_ok,
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    r, m, p = summary["run"], summary["memory"], summary["polls"]
    mib = lambda k: f"{k / 1024:.1f} MiB"  # noqa: E731
    lines = [
        f"collector soak: {r['agents']} simulated agents, {r['seconds']} s, poll_interval "
        f"{interval:g} s (jitter {jitter:g} s, slack {slack:g} s: missed = gap > {threshold:g} s)",
        f"CPU: collector {r['collector_cpu_percent']} %, simulator {r['simulator_cpu_percent']} % "
        f"of one core; load1 mean {r['load1_mean']}, max {r['load1_max']} on {r['cores']} cores "
        "(shared with other work)"
        + (f"; PostgreSQL server {r['postgres_cpu_percent']} %" if r["postgres_cpu_percent"] else ""),
        f"database at the end: {mib(r['db_end_kib'])}",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| RSS after warm-up ({warm_secs:g} s) | {mib(m['rss_after_warm_up_kib'])} |",
        f"| RSS at the end | {mib(m['rss_end_kib'])} |",
        f"| RSS max | {mib(m['rss_max_kib'])} |",
        f"| RSS growth (bound {mib(m['bound_kib'])}) | {m['growth_kib']} KiB "
        f"({'met' if memory_ok else 'MISSED'}) |",
        f"| RSS slope after warm-up | {m['slope_kib_per_10min']} KiB / 10 min |",
        f"| PSS after warm-up / end | {mib(m['pss_after_warm_up_kib'])} / {mib(m['pss_end_kib'])} |",
        f"| poll latency p50 / p99 / max | {p['latency_ms']['p50']} / {p['latency_ms']['p99']} / "
        f"{p['latency_ms']['max']} ms |",
        f"| snapshot handling (simulator) p50 / p99 / max | {p['snapshot_handling_ms']['p50']} / "
        f"{p['snapshot_handling_ms']['p99']} / {p['snapshot_handling_ms']['max']} ms |",
        f"| gap between polls min / p50 / p99 / max | {p['gap_s']['min']} / {p['gap_s']['p50']} / "
        f"{p['gap_s']['p99']} / {p['gap_s']['max']} s |",
        f"| polls seen / due ({p['cycles_due']} cycles x {r['agents']}) | {p['polls_seen']} / "
        f"{p['polls_due']} (per agent {p['per_agent_seen_min']}-{p['per_agent_seen_max']}) |",
        f"| failed snapshots | {p['failed_snapshots']} |",
        f"| missed intervals | {p['missed']} ({'none' if polls_ok else 'MISSED'}) |",
        "",
        f"result: {'PASS' if summary['ok'] else 'FAIL'}",
    ]
    for ex in p["missed_examples"][:5]:
        lines.insert(-2, f"  missed: host {ex['host']}: {ex['what']} ({ex['seconds']} s)")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write(text)
    print(text, end="")
    return 0 if summary["ok"] else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample", help="sample memory every --period s for --seconds")
    s.add_argument("--collector-pid", type=int, required=True)
    s.add_argument("--sim-pid", type=int, required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--period", type=float, default=10.0)
    s.add_argument("--out", required=True)
    s.add_argument("--metrics-url", help="scrape this /metrics as Prometheus would")
    s.add_argument("--metrics-token", help="the scrape token's file")
    s.add_argument("--scrape-every", type=int, default=3, help="in samples (default 3: 30 s)")
    s.add_argument("--db", help="the collector's database (its size and its WAL's are sampled)")
    s.add_argument("--pg-url", help="the collector's PostgreSQL database instead of --db (its size "
                   "and the server's CPU are sampled)")
    a = sub.add_parser("analyze", help="write the summary; exit 1 on a missed bound")
    a.add_argument("--poll-log", required=True)
    a.add_argument("--agents", type=int, required=True)
    a.add_argument("--interval", type=float, required=True)
    a.add_argument("--jitter", type=float, required=True)
    a.add_argument("--slack", type=float, default=5.0)
    a.add_argument("--max-growth-mib", type=float, default=16.0)
    a.add_argument("--out", required=True)
    args = parser.parse_args()
    return sample(args) if args.command == "sample" else analyze(args)


if __name__ == "__main__":
    sys.exit(main())
