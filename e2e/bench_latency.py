"""Desktop latency benchmarks on the end-to-end harness (scripts/e2e-desktop.sh --release
e2e/bench_latency.py), against DESIGN's targets:
- log line written -> visible in the desktop (p99 < 250 ms): a unit echoes each line written to
  its FIFO; the time it is written is compared with the time a MutationObserver in the page saw
  it added to the log view (same machine, same clock: the page's performance.timeOrigin + now()).
- crash -> collector event -> desktop notification (p99 < 1 s): a unit is killed; the time of the
  kill is compared with the timestamp dbus-monitor gives the app's Notify call."""

import json
import os
import pathlib
import random
import re
import statistics
import subprocess
import time

from desktop import (add_collector, TauriOptions, app_status, el, invoke, step, visible, wait_for, HOST, APP_NAME,
                     UNIT, COLLECTOR, KEY, NOTIFY_LOG)
from selenium import webdriver
from selenium.webdriver.common.by import By

FIFO = pathlib.Path(os.environ["E2E_ECHO_FIFO"])
LOG_SAMPLES = int(os.environ.get("BENCH_LOG_SAMPLES", "100"))
CRASH_SAMPLES = int(os.environ.get("BENCH_CRASH_SAMPLES", "20"))


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


def main():
    driver = webdriver.Remote(command_executor="http://127.0.0.1:4444", options=TauriOptions())
    driver.set_script_timeout(30)
    try:
        wait_for("the app", lambda: visible(driver, "#add-name"))
        add_collector(driver, "bench", COLLECTOR, KEY)
        wait_for("the collector added", lambda: driver.find_elements(By.CSS_SELECTOR, '.collector-row[data-name="bench"]'))
        logs = log_latency(driver)
        step(summary("log line written -> visible in the desktop (target p99 < 250 ms)", logs))
        crashes = crash_latency(driver)
        step(summary("crash -> desktop notification (target p99 < 1 s)", crashes))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
