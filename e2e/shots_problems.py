"""Screenshots of what issue 14 adds to the desktop, on a demo collector enriched by
e2e/problems_proxy.py (problems, checks, app metrics, crash context): the fleet view with its
problems, an app page with checks and charts, a host page with disk I/O, and an event's crash
context. Run on the E2E harness after a build: `E2E_NO_BUILD=1 scripts/e2e-desktop.sh
e2e/shots_problems.py` (it starts its own demo collector and proxy; set E2E_SHOTS to keep them).
SHOTS_DEMO_BIN picks another collector binary for the demo; SHOTS_PROXY=0 shows the demo as it
is (a collector that fills in problems, checks and crash context itself): fleet and events only."""

import os
import re
import subprocess
import time

from selenium import webdriver
from selenium.webdriver.common.by import By

import desktop
from desktop import add_collector, el, shot, step, text_of, visible, wait_for
from problems_proxy import Proxy


def run(driver):
    driver.set_script_timeout(30)
    collector_bin = os.environ.get("SHOTS_DEMO_BIN") or os.environ["E2E_COLLECTOR_CMD"].split()[0]
    port = int(subprocess.run(["python3", "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"],
                              capture_output=True, text=True, check=True).stdout)
    demo = subprocess.Popen([collector_bin, "--demo", "--port", str(port), "--history-days", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        key = None
        deadline = time.monotonic() + 30
        while key is None and time.monotonic() < deadline:
            line = demo.stdout.readline()
            m = re.search(r"(fdk_[0-9a-f]+)", line or "")
            key = m and m.group(1)
        assert key, "the demo collector printed no key"
        url = f"http://127.0.0.1:{port}"
        if os.environ.get("SHOTS_PROXY") != "0":
            url = Proxy(url).url
        step(f"demo collector on {port}, desktop reads {url}")
        wait_for("the settings form", lambda: visible(driver, "#add-name"))
        add_collector(driver, "demo", url, key)
        wait_for("the collector row", lambda: driver.find_elements(By.CSS_SELECTOR, '.collector-row[data-name="demo"]'))

        if os.environ.get("SHOTS_PROXY") == "0":
            return as_it_is(driver)
        step("the fleet view with its problems")
        el(driver, "#nav-fleet").click()
        wait_for("the problems", lambda: len(driver.find_elements(By.CSS_SELECTOR, ".problem-row")) == 5)
        wait_for("a degraded badge", lambda: visible(driver, ".app-row .app-degraded"))
        assert text_of(driver, "#count-problems") == "5"
        tray = desktop.invoke(driver, "tray_state")["ok"]
        step(f"tray: {tray['health']}: {tray['tooltip']}")
        assert tray["health"] == "down", tray
        time.sleep(1)  # let the charts' fonts settle for the picture (not a synchronisation)
        shot(driver, "i14-fleet-problems")

        step("the app page with checks and charts")
        el(driver, ".app-row .app-degraded").click()
        wait_for("the checks", lambda: len(driver.find_elements(By.CSS_SELECTOR, ".check-row")) == 3)
        wait_for("the app charts", lambda: len(driver.find_elements(By.CSS_SELECTOR, "#app-charts .chart")) >= 3)
        assert text_of(driver, '.check-row[data-check="tls"] .cert-days') in ("5 days left", "4 days left")
        shot(driver, "i14-app-checks")
        wait_for("the last crash", lambda: visible(driver, "#last-crash pre.crash-lines"))
        driver.execute_script("document.querySelector('#last-crash').scrollIntoView()")
        shot(driver, "i14-app-last-crash")
        driver.execute_script("document.querySelector('#app-charts').scrollIntoView()")
        shot(driver, "i14-app-charts")

        step("the host page with disk I/O and inodes")
        el(driver, "#app-view .crumbs button:nth-of-type(2)").click()
        wait_for("the disk I/O chart", lambda: visible(driver, '.chart[data-metric="disk-io"]'))
        driver.execute_script("document.querySelector('.chart[data-metric=\"disk-io\"]').scrollIntoView()")
        shot(driver, "i14-host-disk-io")

        step("an event with its crash context")
        el(driver, "#nav-events").click()
        row = wait_for("the crash event", lambda: [r for r in driver.find_elements(By.CSS_SELECTOR, ".event-row")
                                                  if r.get_attribute("data-id") == "10000002"])[0]
        row.find_element(By.CSS_SELECTOR, ".event-more").click()
        wait_for("the crash lines", lambda: visible(driver, "pre.crash-lines"))
        driver.execute_script("arguments[0].scrollIntoView()", row)
        shot(driver, "i14-event-crash")
        for r in driver.find_elements(By.CSS_SELECTOR, ".event-row"):
            if r.get_attribute("data-id") in ("10000004", "10000003"):
                r.find_element(By.CSS_SELECTOR, ".event-more").click()
        driver.execute_script("window.scrollTo(0, 0)")
        shot(driver, "i14-event-check-threshold")
        step("PASS")
    finally:
        demo.terminate()
        demo.wait(10)


def as_it_is(driver):
    """The demo's own problems and events, without the proxy's additions."""
    el(driver, "#nav-fleet").click()
    wait_for("the problems", lambda: driver.find_elements(By.CSS_SELECTOR, ".problem-row"), timeout=60)
    time.sleep(1)  # let the fonts settle for the picture (not a synchronisation)
    shot(driver, "demo-fleet-problems")
    el(driver, "#nav-events").click()
    rows = wait_for("an event with details", lambda: [
        r for r in driver.find_elements(By.CSS_SELECTOR, ".event-row") if r.find_elements(By.CSS_SELECTOR, ".event-more")])
    rows[0].find_element(By.CSS_SELECTOR, ".event-more").click()
    driver.execute_script("arguments[0].scrollIntoView()", rows[0])
    shot(driver, "demo-event-detail")
    step("PASS")


def main():
    driver = webdriver.Remote(command_executor="http://127.0.0.1:4444", options=desktop.TauriOptions())
    try:
        run(driver)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
