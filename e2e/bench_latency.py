"""Desktop latency benchmarks on the end-to-end harness (scripts/e2e-desktop.sh --release
e2e/bench_latency.py), against DESIGN's targets:
- log line written -> visible in the desktop (p99 < 250 ms): a unit echoes each line written to
  its FIFO; the time it is written is compared with the time a MutationObserver in the page saw
  it added to the log view (same machine, same clock: the page's performance.timeOrigin + now()).
- crash -> collector event -> desktop notification (p99 < 1 s): a unit is killed; the time of the
  kill is compared with the timestamp dbus-monitor gives the app's Notify call.
- check failure -> desktop notification (p99 < 1 s after the check ran): the web app's TCP check
  (every 2 s, to a port the harness leaves closed) is made to pass by listening on its port, then
  to fail by closing it; the time the agent ran the failing check (`checked_unix_ms` of the
  check-failed event, as the collector stored it) is compared with the Notify call's timestamp.
BENCH_ONLY=logs|crash|check runs one of them."""

import json
import os
import pathlib
import random
import re
import socket
import statistics
import subprocess
import time

from desktop import (add_collector, TauriOptions, app_status, collector_get, el, invoke, step, visible, wait_for,
                     HOST, APP_NAME, UNIT, COLLECTOR, KEY, NOTIFY_LOG)
from selenium import webdriver
from selenium.webdriver.common.by import By

FIFO = pathlib.Path(os.environ["E2E_ECHO_FIFO"])
LOG_SAMPLES = int(os.environ.get("BENCH_LOG_SAMPLES", "100"))
CRASH_SAMPLES = int(os.environ.get("BENCH_CRASH_SAMPLES", "20"))
CHECK_SAMPLES = int(os.environ.get("BENCH_CHECK_SAMPLES", "20"))
CHECK_PORT = int(os.environ.get("E2E_CLOSED_PORT", "0"))
ONLY = os.environ.get("BENCH_ONLY", "")


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(p / 100 * len(v)) - 1))]


def summary(name, ms):
    return (f"{name}: n={len(ms)} p50 {statistics.median(ms):.0f} ms, p99 {pct(ms, 99):.0f} ms, "
            f"max {max(ms):.0f} ms")


def log_latency(driver):
    el(driver, "#nav-fleet").click()
    wait_for("the echo app", lambda: visible(driver, f'.app-row[data-host="{HOST}"][data-app="echo"]')).click()
    wait_for("the app view", lambda: visible(driver, "#app-view"))
    el(driver, "#tab-logs").click()
    wait_for("the log view", lambda: visible(driver, "#log-lines"))
    driver.execute_script(
        "window.__seen = {};"
        "new MutationObserver(() => {"
        "  const t = performance.timeOrigin + performance.now();"
        "  for (const e of document.querySelectorAll('#log-lines .log-line')) {"
        "    const m = e.textContent.match(/lat-(\\d+)/);"
        "    if (m && !(m[1] in window.__seen)) window.__seen[m[1]] = t;"
        "  }"
        "}).observe(document.getElementById('log-lines'), {childList: true, subtree: true});")
    # warm the path (the follow is open, journald has the unit's stream)
    with FIFO.open("w") as f:
        f.write("lat-0\n")
    wait_for("the warm-up line", lambda: driver.execute_script("return window.__seen['0']"))
    out = []
    for i in range(1, LOG_SAMPLES + 1):
        t0 = time.time() * 1000
        with FIFO.open("w") as f:
            f.write(f"lat-{i}\n")
        seen = wait_for(f"line {i} in the view", lambda: driver.execute_script(f"return window.__seen['{i}']"), interval=0.02)
        out.append(seen - t0)
        time.sleep(random.uniform(0.05, 0.25))  # spacing between samples, not a synchronisation
    return out


def notify_times():
    """(dbus timestamp, text) of each crash notification in the monitor log."""
    calls = NOTIFY_LOG.read_text(errors="replace").split("method call time=")[1:]
    return [(float(c.split()[0]), c) for c in calls if "member=Notify" in c and "crashed" in c]


def crash_latency(driver):
    systemd_env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=os.environ["E2E_SYSTEMD_BUS"])
    out = []
    for i in range(CRASH_SAMPLES):
        if app_status()["state"] != "running":
            res = invoke(driver, "action", {"collector": "bench", "host": HOST, "app": APP_NAME, "action": "start"})
            assert "ok" in res and res["ok"]["result"] == "done", res
            wait_for("the app running", lambda: app_status()["state"] == "running")
        before = len(notify_times())
        t0 = time.time()
        subprocess.run(["systemctl", "--user", "kill", "-s", "KILL", UNIT], check=True, timeout=10, env=systemd_env)
        wait_for("the crash notification", lambda: len(notify_times()) > before, interval=0.02)
        out.append((notify_times()[before][0] - t0) * 1000)
    return out


def notifies(*words):
    """dbus timestamps of the Notify calls whose text holds every one of `words`."""
    calls = NOTIFY_LOG.read_text(errors="replace").split("method call time=")[1:]
    return [float(c.split()[0]) for c in calls if "member=Notify" in c and all(w in c for w in words)]


def newest_check_event(kind, after_id):
    page = collector_get(f"/v1/events?host={HOST}&kind={kind}&limit=20")
    found = [e for e in page["events"] if e["id"] > after_id and (e.get("check") or {}).get("name") == "port"]
    return max(found, key=lambda e: e["id"]) if found else None


def check_latency():
    assert CHECK_PORT, "E2E_CLOSED_PORT is not set (E2E_CHECKS=0?)"
    failing = ("Check port", "failing on")
    passing = ("Check port", "passing again")
    out = []
    last_id = 0
    for i in range(CHECK_SAMPLES):
        listener = socket.create_server(("127.0.0.1", CHECK_PORT), reuse_port=False)
        try:
            before = len(notifies(*passing))
            wait_for("the check passing again", lambda: len(notifies(*passing)) > before, timeout=20, interval=0.05)
        finally:
            listener.close()
        before = len(notifies(*failing))
        wait_for("the check failing", lambda: len(notifies(*failing)) > before, timeout=20, interval=0.02)
        notified = notifies(*failing)[before]
        event = wait_for("its check-failed event", lambda: newest_check_event("check-failed", last_id), timeout=10)
        last_id = event["id"]
        out.append(notified * 1000 - event["check"]["checked_unix_ms"])
    return out


def main():
    driver = webdriver.Remote(command_executor="http://127.0.0.1:4444", options=TauriOptions())
    driver.set_script_timeout(30)
    try:
        wait_for("the app", lambda: visible(driver, "#add-name"))
        add_collector(driver, "bench", COLLECTOR, KEY)
        wait_for("the collector added", lambda: driver.find_elements(By.CSS_SELECTOR, '.collector-row[data-name="bench"]'))
        if ONLY in ("", "logs"):
            logs = log_latency(driver)
            step(summary("log line written -> visible in the desktop (target p99 < 250 ms)", logs))
        if ONLY in ("", "crash"):
            crashes = crash_latency(driver)
            step(summary("crash -> desktop notification (target p99 < 1 s)", crashes))
        if ONLY in ("", "check"):
            checks = check_latency()
            step(summary("check failed -> desktop notification (target p99 < 1 s after the check ran)", checks))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
