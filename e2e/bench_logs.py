"""Log view benchmark: how many lines a second reach the desktop's log view and are rendered,
without dropping one, and whether the window stays smooth. Runs on the end-to-end harness
(scripts/e2e-desktop.sh --release e2e/bench_logs.py): a real unit writes numbered lines at a set
rate through journald, the agent, the collector, the app's Rust side and its Tauri channel into
the Yew view. For each rate: lines the unit wrote vs lines the view holds (none dropped or
doubled), the time the view needs to show the last line once writing stops, and the longest gap
between animation frames while it ran (a frozen view shows as a long gap)."""

import os
import re
import pathlib
import time

from desktop import add_collector, TauriOptions, el, invoke, step, visible, wait_for, text_of, HOST, COLLECTOR, KEY
from selenium import webdriver
from selenium.webdriver.common.by import By

RATE_FILE = pathlib.Path(os.environ["E2E_BURST_RATE"])
SEQ_FILE = pathlib.Path(os.environ["E2E_BURST_SEQ"])
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
# lines per 10 ms tick of the writer; the achieved rate is measured
TICKS = [int(x) for x in os.environ.get("BENCH_LINES_PER_TICK", "1,3,6,12").split(",")]


def seq():
    text = SEQ_FILE.read_text().strip()
    return int(text) if text else 0


def buffer_count(driver):
    """Lines the view holds, from its status: "N lines" or "newest 500 of N matching lines"."""
    m = re.fullmatch(r"(?:newest \d+ of )?(\d+)(?: matching)? lines", text_of(driver, ".log-status") or "")
    return int(m.group(1)) if m else None


def newest_seq(driver):
    return driver.execute_script(
        "const l = document.querySelectorAll('#log-lines .log-line');"
        "if (!l.length) return 0;"
        "const m = l[l.length - 1].textContent.match(/burst (\\d+)/);"
        "return m ? parseInt(m[1]) : 0;")


def open_burst(driver):
    el(driver, "#nav-fleet").click()
    row = f'.app-row[data-host="{HOST}"][data-app="burst"]'
    wait_for("the burst app", lambda: visible(driver, row)).click()
    wait_for("the app view", lambda: visible(driver, "#app-view"))
    el(driver, "#tab-logs").click()
    wait_for("the log view loaded", lambda: buffer_count(driver) is not None)


def main():
    driver = webdriver.Remote(command_executor="http://127.0.0.1:4444", options=TauriOptions())
    driver.set_script_timeout(30)
    try:
        wait_for("the app", lambda: visible(driver, "#add-name"))
        add_collector(driver, "bench", COLLECTOR, KEY)
        wait_for("the collector added", lambda: driver.find_elements(By.CSS_SELECTOR, '.collector-row[data-name="bench"]'))
        results = []
        for per_tick in TICKS:
            RATE_FILE.write_text("0\n")
            wait_for("the writer idle", lambda: (a := seq()) == (time.sleep(0.1) or seq()))
            open_burst(driver)
            start_seq = seq()
            wait_for("the view caught up", lambda: newest_seq(driver) == start_seq or start_seq == 0)
            count0 = buffer_count(driver)
            driver.execute_script(
                "window.__gaps = []; let last = performance.now();"
                "window.__frame = (t) => { window.__gaps.push(t - last); last = t;"
                " if (window.__frame) requestAnimationFrame(window.__frame); };"
                "requestAnimationFrame(window.__frame);")
            t0 = time.monotonic()
            RATE_FILE.write_text(f"{per_tick}\n")
            time.sleep(SECONDS)  # the measured interval itself, not a synchronisation
            RATE_FILE.write_text("0\n")
            written_end = wait_for("the writer stopping", lambda: (a := seq()) == (time.sleep(0.05) or seq()) and a)
            t_stop = time.monotonic()
            wait_for("the last line in the view", lambda: newest_seq(driver) == written_end, timeout=60)
            catch_up_ms = (time.monotonic() - t_stop) * 1000
            gaps = driver.execute_script("const g = window.__gaps; window.__frame = null; return g;")
            written = written_end - start_seq
            held = buffer_count(driver) - count0
            rate = written / (t_stop - t0)
            gaps = sorted(gaps[1:]) or [0]
            p99 = gaps[int(len(gaps) * 0.99) - 1] if len(gaps) > 1 else gaps[0]
            results.append((rate, written, held, catch_up_ms, p99, gaps[-1]))
            step(f"{rate:.0f} lines/s: wrote {written}, view holds {held} new, "
                 f"last line shown {catch_up_ms:.0f} ms after writing stopped, "
                 f"frame gap p99 {p99:.0f} ms, max {gaps[-1]:.0f} ms")
            assert held == written, f"the view dropped or doubled lines: {held} held, {written} written"
        best = max(r[0] for r in results)
        step(f"RESULT: up to {best:.0f} lines/s rendered without dropping a line")
    finally:
        RATE_FILE.write_text("0\n")
        driver.quit()


if __name__ == "__main__":
    main()
