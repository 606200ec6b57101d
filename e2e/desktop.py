"""End-to-end test of the Fleetdeck desktop app: the real app (WebKit under Xvfb, driven through
tauri-driver + WebKitWebDriver), a real collector and agent, a real systemd unit, gnome-keyring and
dunst. Run by scripts/e2e-desktop.sh, which starts all of those and passes their coordinates in the
environment. Every wait is for a condition with a deadline; every step asserts what the operator
would see (or what landed on disk, in the keyring, on D-Bus)."""

import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, NoSuchElementException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.common.options import ArgOptions
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import Select

from hostile_collector import HostileCollector

APP = os.environ["E2E_APP"]
COLLECTOR = os.environ["E2E_COLLECTOR_URL"]
KEY = os.environ["E2E_KEY"]
HOST = os.environ["E2E_HOST"]
APP_NAME = os.environ["E2E_APP_NAME"]
UNIT = os.environ["E2E_UNIT"]
ENV_FILE = pathlib.Path(os.environ["E2E_ENV_FILE"])
SAY_FILE = pathlib.Path(os.environ["E2E_SAY_FILE"])
DIE_FILE = pathlib.Path(os.environ["E2E_DIE_FILE"])
# The crash notification names the exit and the last log line: needs the agent's crash context and
# the collector passing it (E2E_CRASH_CONTEXT=0 skips that assertion).
CRASH_CONTEXT = os.environ.get("E2E_CRASH_CONTEXT", "1") != "0"
# The web app has a TCP check to a closed port, so it is degraded (E2E_CHECKS=0: no check).
CHECKS = os.environ.get("E2E_CHECKS", "1") != "0"
NOTIFY_LOG = pathlib.Path(os.environ["E2E_NOTIFY_LOG"])
SHOTS = pathlib.Path(os.environ["E2E_SHOTS"])
CONFIG_DIR = pathlib.Path(os.environ["FLEETDECK_CONFIG_DIR"])
APP_LOG = pathlib.Path(os.environ["E2E_APP_LOG"])
DEAD_URL = os.environ["E2E_DEAD_URL"]
WEBHOOK_LOG = pathlib.Path(os.environ["E2E_WEBHOOK_LOG"])
DUNST_PICK = pathlib.Path(os.environ["E2E_DUNST_PICK"])
STATE_DIR = pathlib.Path(os.environ["XDG_STATE_HOME"])

SHOTS.mkdir(parents=True, exist_ok=True)


def step(msg):
    print(f"[e2e] {msg}", flush=True)


def wait_for(what, check, timeout=30.0, interval=0.2):
    """Polls `check` until it returns something truthy; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (StaleElementReferenceException, NoSuchElementException) as e:
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" ({last_error})" if last_error else ""))


def collector_get(path):
    req = urllib.request.Request(COLLECTOR + path, headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def app_status():
    host = collector_get(f"/v1/hosts/{HOST}")
    return next(a["status"] for a in host["apps"] if a["status"]["name"] == APP_NAME)


class TauriOptions(ArgOptions):
    def to_capabilities(self):
        caps = super().to_capabilities()
        caps["browserName"] = "wry"
        caps["tauri:options"] = {"application": APP}
        return caps


# The WebDriver session open now (check_restart opens another): the one a failure is shown from.
CURRENT = []


def connect():
    """A WebDriver session: tauri-driver starts the app for it (and ends the app with it)."""
    driver = webdriver.Remote(command_executor="http://127.0.0.1:4444", options=TauriOptions())
    CURRENT[:] = [driver]
    return driver


def main():
    connect()
    try:
        run(CURRENT[0])
    except Exception:
        try:
            CURRENT[0].save_screenshot(str(SHOTS / "failure.png"))
            step(f"failure screenshot: {SHOTS / 'failure.png'}")
        except Exception:
            pass
        raise
    finally:
        CURRENT[0].quit()


def el(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css)


def text_of(driver, css):
    els = driver.find_elements(By.CSS_SELECTOR, css)
    return els[0].text.strip() if els else None


def visible(driver, css):
    els = driver.find_elements(By.CSS_SELECTOR, css)
    return els[0] if els and els[0].is_displayed() else None


def shot(driver, name):
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    step(f"screenshot {path}")


def invoke(driver, cmd, args=None):
    """Calls a Tauri command from the page, as the UI does, and returns its result."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.__TAURI__.core.invoke(arguments[0], arguments[1] || {})"
        ".then(v => done({ok: v}), e => done({err: e}));",
        cmd,
        args or {},
    )


def check_csp(driver):
    """The CSP of tauri.conf.json is in force in the real webview: no eval in any form, no script
    added to the page runs (inline or from elsewhere), and the page cannot reach the network itself
    (only the backend talks to collectors)."""
    step("the CSP is in force: no eval, no injected script, no direct network access")
    found = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const out = {violations: []};
        document.addEventListener("securitypolicyviolation",
            e => out.violations.push(e.effectiveDirective || e.violatedDirective));
        try { eval("1"); out.eval = "ran"; } catch (e) { out.eval = e.name; }
        try { new Function("return 1")(); out.function = "ran"; } catch (e) { out.function = e.name; }
        try { setTimeout("window.__fromTimeout = 1", 0); } catch (e) {}
        window.__injected = [];
        const inline = document.createElement("script");
        inline.textContent = "window.__injected.push('inline')";
        document.head.appendChild(inline);
        const img = document.createElement("img");
        img.setAttribute("onerror", "window.__injected.push('handler')");
        img.src = "data:,not-an-image";
        document.body.appendChild(img);
        const remote = document.createElement("script");
        remote.src = arguments[0] + "/x.js";
        document.head.appendChild(remote);
        fetch(arguments[0] + "/healthz").then(() => "fetched", e => e.name).then(fetched => {
            out.fetch = fetched;
            // let the page report what it blocked
            setTimeout(() => {
                img.remove(); inline.remove(); remote.remove();
                out.injected = window.__injected;
                out.timeout = window.__fromTimeout || 0;
                done(out);
            }, 300);
        });
    """, COLLECTOR)
    step(f"CSP: {found}")
    assert found["eval"] == "EvalError", found
    assert found["function"] == "EvalError", found
    assert found["injected"] == [] and found["timeout"] == 0, found
    assert found["fetch"] == "TypeError", found
    assert "script-src" in found["violations"] or "script-src-elem" in found["violations"], found
    assert "connect-src" in found["violations"], found


def check_acl(driver):
    """The window may call the app's commands the UI uses and listen to events, nothing else of
    Tauri: each of these is allowed by `core:default`, and refused here."""
    step("commands outside the capability are refused")
    for cmd, args in (
        ("plugin:app|version", {}),
        ("plugin:window|set_title", {"label": "main", "value": "pwned"}),
        ("plugin:event|emit", {"event": "fleet", "payload": {}}),
        ("plugin:webview|create_webview_window", {"options": {"label": "x", "url": "https://example.com"}}),
        ("plugin:path|resolve_directory", {"directory": 1}),
    ):
        answer = invoke(driver, cmd, args)
        assert "err" in answer and "not allowed" in str(answer["err"]), f"{cmd}: {answer}"
    assert driver.title == "Fleetdeck"
    assert "ok" in invoke(driver, "tray_state"), "a command the UI uses was refused"


def app_pid():
    """The PID of the app under test (WebKitWebDriver started it)."""
    exe = os.path.realpath(APP)
    for p in pathlib.Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if os.readlink(p / "exe") == exe:
                    return int(p.name)
            except OSError:
                pass
    raise AssertionError(f"no process runs {exe}")


def threads_of(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def dbus_strings(call):
    """The string arguments of one dbus-monitor call, in order. A string with a newline spans
    several lines of the monitor's output, up to the one that ends with the closing quote."""
    strings, current = [], None
    for line in call.splitlines():
        if current is None:
            stripped = line.strip()
            if not stripped.startswith('string "'):
                continue
            current = stripped[len('string "'):]
        else:
            current += "\n" + line
        if current.endswith('"'):
            strings.append(current[:-1])
            current = None
    return strings


def notify_calls():
    """The Notify calls dbus-monitor saw, as (summary, body)."""
    calls = []
    for call in NOTIFY_LOG.read_text(errors="replace").split("method call")[1:]:
        if "member=Notify" not in call:
            continue
        strings = dbus_strings(call)
        if len(strings) >= 4:
            calls.append((strings[2], strings[3]))  # app name, icon, summary, body
    return calls


def check_hostile_collector(driver):
    """What a collector (or an agent through it) names cannot put markup in a notification, and a
    flood of crashes costs the app a fixed number of threads."""
    hostile = "<b>x</b>&amp;"
    stub = HostileCollector()
    try:
        step("a collector whose app is named with markup: the notification's body is escaped")
        el(driver, "#nav-settings").click()
        wait_for("the settings form", lambda: visible(driver, "#add-name"))
        add_collector(driver, "hostile", stub.url, "fdk_" + "7" * 48)
        wait_for("the hostile collector's row",
                 lambda: driver.find_elements(By.CSS_SELECTOR, '.collector-row[data-name="hostile"]'))
        wait_for("the hostile collector connected", lambda: any(
            c["name"] == "hostile" and c["status"]["state"] == "connected"
            for c in invoke(driver, "list_collectors")["ok"]))
        pid = app_pid()
        before = threads_of(pid)
        seen = len(notify_calls())
        stub.crash(hostile)
        crash = wait_for("the crash notification", lambda: [
            c for c in notify_calls()[seen:] if c[0].endswith("crashed on stub-host")], timeout=15)[0]
        summary, body = crash
        step(f"notified: summary {summary!r}, body {body!r}")
        assert summary == f"{hostile} crashed on stub-host", summary  # plain text by the spec
        assert "&lt;b&gt;x&lt;/b&gt;&amp;amp; on stub-host is failed" in body, body
        assert "<" not in body and ">" not in body, body
        try:
            subprocess.run(["import", "-window", "root", str(SHOTS / "notification-markup.png")],
                           timeout=20, check=True)
            step(f"screenshot {SHOTS / 'notification-markup.png'}")
        except (OSError, subprocess.SubprocessError) as e:
            step(f"no screen capture of the notification ({e})")

        flood = 200
        # Of as many apps: one app crashing over and over is one notice and one "keeps
        # crashing" (the flap rule), checked below.
        step(f"{flood} crashes of {flood} apps: {flood} notifications, a bounded number of threads")
        seen = len(notify_calls())
        stub.crash(hostile, flood, distinct=True)
        most = 0

        def all_shown():
            nonlocal most
            most = max(most, threads_of(pid))
            return len([c for c in notify_calls()[seen:] if c[0].endswith("crashed on stub-host")]) >= flood
        wait_for(f"{flood} Notify calls", all_shown, timeout=90)
        after = threads_of(pid)
        step(f"app threads: {before} before, at most {most} during {flood} notifications, {after} after")
        assert most <= before + 8, f"threads grew from {before} to {most} with {flood} notifications"

        step("one app crashing 10 times in a row: one notice, then one saying it keeps crashing")
        seen = len(notify_calls())
        stub.crash("looping", 10)
        wait_for("the keeps-crashing notice", lambda: [
            c for c in notify_calls()[seen:] if c[0] == "looping keeps crashing on stub-host"], timeout=30)
        # The stream delivers the ten at once: once the flap notice is shown, the rest were held.
        about = [c for c in notify_calls()[seen:] if "looping" in c[0]]
        assert [c[0] for c in about] == [
            "looping crashed on stub-host", "looping crashed on stub-host",
            "looping keeps crashing on stub-host"], about
    finally:
        stub.stop()


def webhooks_about(app):
    """The webhook bodies the collector sent about `app` so far."""
    lines = WEBHOOK_LOG.read_text(errors="replace").splitlines()
    return [b for b in map(json.loads, lines) if b.get("app") == app]


def check_alerts_and_silences(driver):
    step("the Alerts view lists the crash's alert, resolved since the app runs again")
    invoke(driver, "set_dnd", {"dnd": False})
    el(driver, "#nav-alerts").click()
    wait_for("the alerts view", lambda: visible(driver, "#alerts-view"))
    resolved = wait_for("the crash alert, resolved", lambda: [
        r for r in driver.find_elements(By.CSS_SELECTOR, '.alert-row[data-state="resolved"]')
        if f"{HOST} / {APP_NAME}" in r.text and "failed" in r.text])
    assert resolved, "no resolved crash alert"
    assert webhooks_about(APP_NAME), "the crash alert reached no webhook"
    if CHECKS:
        step("acknowledge the open alert of the failing check")
        row = wait_for("an open check alert", lambda: [
            r for r in driver.find_elements(By.CSS_SELECTOR, '.alert-row[data-state="open"]')
            if "check port" in r.text])[0]
        alert_id = row.get_attribute("data-id")
        row.find_element(By.CSS_SELECTOR, ".alert-ack").click()
        wait_for("the alert acknowledged", lambda: (r := driver.find_elements(
            By.CSS_SELECTOR, f'.alert-row[data-id="{alert_id}"]')) and r[0].get_attribute("data-state") == "acknowledged")
        acked = collector_get(f"/v1/alerts?state=acknowledged")["alerts"]
        assert any(str(a["id"]) == alert_id and a["acknowledged_by"] == "e2e" for a in acked), acked
    shot(driver, "alerts")

    step("a crash notification's \"Silence 1 h\" action silences that app through its collector")
    notifies = NOTIFY_LOG.read_text(errors="replace").count("member=Notify")
    DIE_FILE.write_text(f"e2e-from-the-notification-{time.time_ns()}\n")
    wait_for("the crash notification", lambda: NOTIFY_LOG.read_text(errors="replace").count("member=Notify") > notifies, timeout=20)
    # dunst's context menu lists each shown notification's actions; the dmenu the harness gave it
    # answers the line of this crash's "Silence 1 h".
    DUNST_PICK.write_text(f"#Silence 1 h ({APP_NAME} crashed on {HOST})")
    subprocess.run(["dunstctl", "context"], check=True, timeout=10)
    reason = f"silenced from a notification ({APP_NAME} on {HOST})"
    made = wait_for("the silence made by the notification's action", lambda: [
        s for s in collector_get("/v1/silences") if s["reason"] == reason])
    assert made[0]["hosts"] == HOST and made[0]["apps"] == APP_NAME and made[0]["created_by"] == "e2e", made
    assert 55 * 60 < made[0]["ends_unix_ms"] / 1000 - time.time() <= 3600, made
    removed = invoke(driver, "silence_remove", {"collector": "e2e", "id": made[0]["id"]})
    assert "ok" in removed, removed
    started = invoke(driver, "action", {"collector": "e2e", "host": HOST, "app": APP_NAME, "action": "start"})
    assert "ok" in started, started

    step("silence the app for an hour from its page: its next crash raises no notification and no webhook")
    el(driver, "#nav-fleet").click()
    row = f'.app-row[data-host="{HOST}"][data-app="{APP_NAME}"]'
    wait_for("the app row", lambda: visible(driver, row)).click()
    wait_for("the app view", lambda: visible(driver, "#app-view"))
    wait_for("the app running", lambda: text_of(driver, "#app-state") == "running", timeout=20)
    el(driver, '.app-silence[data-for="1h"]').click()
    wait_for("the silence confirmed", lambda: "silenced" in (text_of(driver, "#action-result") or ""))
    silences = collector_get("/v1/silences")
    assert any(s["apps"] == APP_NAME and s["created_by"] == "e2e" for s in silences), silences
    notifies = NOTIFY_LOG.read_text(errors="replace").count("member=Notify")
    hooks = len(webhooks_about(APP_NAME))
    el(driver, "#nav-events").click()
    wait_for("event rows", lambda: driver.find_elements(By.CSS_SELECTOR, ".event-row"))
    newest = max(int(r.get_attribute("data-id")) for r in driver.find_elements(By.CSS_SELECTOR, ".event-row"))
    DIE_FILE.write_text(f"e2e-silenced-{time.time_ns()}\n")
    # The app has decided about its notification once the failure is in its live event log
    # (the Events view prepends what the app's event stream delivers)...
    wait_for("the failure in the live event log", lambda: [
        r for r in driver.find_elements(By.CSS_SELECTOR, ".event-row")
        if int(r.get_attribute("data-id")) > newest and "failed" in r.text], timeout=20)
    # ...and the collector once its history holds the alert, marked silenced.
    alert = wait_for("the silenced alert in the collector", lambda: [
        a for a in collector_get(f"/v1/alerts?app={APP_NAME}&state=open")["alerts"]
        if a["silenced_by"] is not None and a["aspect"] == "state"])[0]
    assert NOTIFY_LOG.read_text(errors="replace").count("member=Notify") == notifies, "a silenced crash was notified"
    assert len(webhooks_about(APP_NAME)) == hooks, "a silenced crash reached the webhook"
    el(driver, "#nav-alerts").click()
    wait_for("the alert shown silenced", lambda: (r := driver.find_elements(
        By.CSS_SELECTOR, f'.alert-row[data-id="{alert["id"]}"]')) and r[0].get_attribute("data-silenced") == "true"
        and "silenced" in r[0].text)
    shot(driver, "alerts-silenced")
    started = invoke(driver, "action", {"collector": "e2e", "host": HOST, "app": APP_NAME, "action": "start"})
    assert "ok" in started, started


def check_host_silence(driver):
    step("silence the host for a custom time from its page; a bad duration says why; remove it from the Alerts view")
    el(driver, "#nav-fleet").click()
    wait_for("the host link", lambda: visible(driver, f'.host-card[data-host="{HOST}"] .host-link')).click()
    wait_for("the host view", lambda: visible(driver, "#host-view"))
    el(driver, '.host-silence[data-for="custom"]').click()
    duration = wait_for("the custom form", lambda: visible(driver, ".silence-duration"))
    duration.send_keys("soon")
    el(driver, ".silence-go").click()
    wait_for("the refusal naming the duration", lambda: [
        b for b in driver.find_elements(By.CSS_SELECTOR, ".banner.error")
        if '"soon"' in b.text and "not a duration" in b.text])
    el(driver, '.host-silence[data-for="custom"]').click()
    wait_for("the custom form", lambda: visible(driver, ".silence-duration")).send_keys("90m")
    el(driver, ".silence-reason").send_keys("e2e kernel upgrade")
    started = time.time()
    el(driver, ".silence-go").click()
    wait_for("the host silence confirmed", lambda: "silenced for 90m" in (text_of(driver, "#host-silence-result") or ""))
    made = [s for s in collector_get("/v1/silences") if s["reason"] == "e2e kernel upgrade"]
    assert len(made) == 1, made
    silence = made[0]
    assert silence["hosts"] == HOST and silence["apps"] is None and silence["created_by"] == "e2e", silence
    ends_in = silence["ends_unix_ms"] / 1000 - started
    assert 85 * 60 < ends_in < 95 * 60, f"a 90 minute silence ends in {ends_in:.0f} s"
    shot(driver, "host-silenced")
    el(driver, "#nav-alerts").click()
    row = wait_for("the host silence listed", lambda: driver.find_elements(
        By.CSS_SELECTOR, f'.silence-row[data-id="{silence["id"]}"]'))[0]
    assert "e2e kernel upgrade" in row.text and "e2e" in row.text, row.text
    row.find_element(By.CSS_SELECTOR, ".silence-remove").click()
    wait_for("the silence gone from the view", lambda: not driver.find_elements(
        By.CSS_SELECTOR, f'.silence-row[data-id="{silence["id"]}"]'))
    assert all(s["id"] != silence["id"] for s in collector_get("/v1/silences")), "removed, yet still in force"


def join_agent():
    """`fleetdeck-collector agents add joined URL` (its token on stdin); answers the command line
    of the collector, for more subcommands."""
    cmd = os.environ["E2E_COLLECTOR_CMD"].split()
    with open(os.environ["E2E_JOIN_TOKEN"], "rb") as token:
        out = subprocess.run(cmd + ["agents", "add", "joined", os.environ["E2E_JOIN_URL"]],
                             stdin=token, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return cmd


def check_agents_add(driver):
    # `fleetdeck-collector agents add` joins a second agent to the running collector: the open
    # app shows the new host without a restart of anything, with its agent's version; `agents rm`
    # takes it away again.
    step("agents add: a new host appears in the open app, no restart")
    cmd = join_agent()
    card = '.host-card[data-host="joined"]'
    wait_for("the joined host's card", lambda: visible(driver, card), timeout=30)
    el(driver, f"{card} .host-link").click()
    wait_for("the joined host's page", lambda: visible(driver, "#host-view"))
    version = wait_for("the agent's version on the host page", lambda: text_of(driver, "#host-agent-version"))
    shot(driver, "host-joined")
    assert version.startswith(f'agent {collector_get("/v1/hosts/joined")["agent_version"]}, wire v'), version
    out = subprocess.run(cmd + ["agents", "rm", "joined"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    el(driver, "#nav-fleet").click()
    wait_for("the joined host gone from the fleet", lambda: not driver.find_elements(By.CSS_SELECTOR, card))


def lan_address():
    """An IPv4 address of this machine outside loopback and the tailnet (a LAN's)."""
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True)
    for link in json.loads(out.stdout):
        for a in link.get("addr_info", []):
            ip = a.get("local", "")
            first, second = (int(x) for x in ip.split(".")[:2])
            if first != 127 and not (first == 100 and 64 <= second < 128):
                return ip
    raise AssertionError("no IPv4 address outside loopback and the tailnet to test plain HTTP with")


def check_plain_http_warning(driver):
    """A collector reached by plain HTTP on a LAN address is shown with a warning beside it, once;
    one on loopback is not."""
    stub = HostileCollector(bind=lan_address())
    try:
        step(f"a collector at {stub.url}: plain HTTP outside loopback and the tailnet is warned")
        el(driver, "#nav-settings").click()
        wait_for("the settings form", lambda: visible(driver, "#add-name"))
        add_collector(driver, "lan", stub.url, "fdk_" + "5" * 48)
        row = '.collector-row[data-name="lan"]'
        note = wait_for("the warning beside the LAN collector", lambda: [
            e.text for e in driver.find_elements(By.CSS_SELECTOR, f"{row} .transport-warning")])
        assert len(note) == 1 and "plain HTTP" in note[0] and "tailnet" in note[0], note
        warned = driver.find_elements(By.CSS_SELECTOR, ".transport-warning")
        assert len(warned) == 1, f"{len(warned)} warnings: the loopback collectors must have none"
        shot(driver, "settings-plain-http")
    finally:
        stub.stop()


def search_api(query):
    """The collector's log search, as JSON events (one per line)."""
    req = urllib.request.Request(f"{COLLECTOR}/v1/logs/search?{query}", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]


def check_fleet_search(driver):
    """The Logs view searches two hosts at once with a regular expression and a time range, finds
    the line written on each, and a line opens its app's log around it."""
    step("fleet log search: a line written on each of two hosts, found by one regex")
    cmd = join_agent()
    wait_for("the joined host's echo app", lambda: any(
        a["status"]["name"] == "echo" for a in collector_get("/v1/hosts/joined")["apps"]), timeout=30)
    tag = f"e2e-search-{time.time_ns()}"
    before_ms = int(time.time() * 1000)
    SAY_FILE.write_text(f"{tag}-alpha on the first host\n")
    with open(os.environ["E2E_ECHO_FIFO"], "w") as fifo:
        fifo.write(f"{tag}-beta on the second host\n")
    if visible(driver, "#collector-select"):
        Select(el(driver, "#collector-select")).select_by_value("e2e")
    el(driver, "#nav-logs").click()
    field = wait_for("the search form", lambda: visible(driver, "#search-query"))
    field.clear()
    field.send_keys(f"{tag}-(alpha|beta)")
    Select(el(driver, "#search-range")).select_by_value("15")

    def found():
        rows = driver.find_elements(By.CSS_SELECTOR, "#search-results .log-line")
        return {(r.get_attribute("data-host"), r.get_attribute("data-app")) for r in rows}
    # (The first host's agent watches the echo unit too: beta is found there as well.)
    want = {(HOST, APP_NAME), (HOST, "echo"), ("joined", "echo")}
    deadline = time.time() + 30
    while True:  # journald may take a moment to have both lines: search again until it does
        wait_for("the search button", lambda: el(driver, "#search-run").is_enabled())
        el(driver, "#search-run").click()
        try:
            wait_for("both hosts' lines", lambda: found() == want, timeout=5)
            break
        except AssertionError:
            if time.time() > deadline:
                raise
    wait_for("the search done", lambda: el(driver, "#search-run").is_enabled())
    chips = driver.find_elements(By.CSS_SELECTOR, "#search-progress .target")
    failed = [c.get_attribute("title") for c in chips if "failed" in c.get_attribute("class")]
    assert chips and not failed, failed
    rows = driver.find_elements(By.CSS_SELECTOR, "#search-results .log-line")
    assert len(rows) == 3, [r.text for r in rows]
    assert sum("alpha" in r.text for r in rows) == 1 and sum("beta" in r.text for r in rows) == 2
    shot(driver, "logs-search")

    step("the time range: a search that ends before the lines were written finds neither")
    events = search_api(urllib.parse.urlencode({"grep": f"{tag}-(alpha|beta)", "until": before_ms,
                                                "since": before_ms - 900_000}))
    assert events[0]["event"] == "started" and events[-1]["event"] == "done", events
    lines = [e for ev in events if ev["event"] == "result" for e in ev["entries"]]
    assert lines == [], lines
    events = search_api(urllib.parse.urlencode({"grep": f"{tag}-(alpha|beta)", "since": before_ms}))
    hits = sorted((ev["host"], ev["app"]) for ev in events if ev["event"] == "result" and ev["entries"])
    assert hits == sorted(want), hits

    step("a result opens its app's log around that line")
    alpha = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#search-results .log-line")
                 if r.get_attribute("data-host") == HOST)
    alpha.click()
    wait_for("the app view", lambda: (v := visible(driver, "#app-view")) and v.get_attribute("data-app") == APP_NAME)
    anchor = wait_for("the line in its context", lambda: visible(driver, "#log-anchor"))
    assert f"{tag}-alpha" in anchor.text, anchor.text
    context = text_of(driver, "#log-context")
    assert "tick" in context, "no lines around the result"
    shot(driver, "logs-search-context")
    el(driver, "#log-context-close").click()
    wait_for("the context closed", lambda: not visible(driver, "#log-context"))
    out = subprocess.run(cmd + ["agents", "rm", "joined"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def http_status(key, path):
    req = urllib.request.Request(f"{COLLECTOR}{path}", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def keep_secret(secret):
    """Lists a secret for scripts/check-secrets.sh (no test log may hold it)."""
    logs = os.environ.get("FLEETDECK_TEST_LOGS")
    if logs:
        os.makedirs(logs, exist_ok=True)
        with open(os.path.join(logs, "secrets.txt"), "a") as f:
            f.write(secret + "\n")


def check_admin(driver):
    """With an admin key: a key created in the app is shown once and works; revoked, the collector
    refuses it at once; the audit log, filtered by target, shows both."""
    step("admin: create a viewer key, shown once, and use it")
    cmd = os.environ["E2E_COLLECTOR_CMD"].split()
    out = subprocess.run(cmd + ["keys", "create", "--name", "e2e-admin", "--role", "admin"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    admin_key = out.stdout.strip().splitlines()[-1]
    keep_secret(admin_key)
    ADMIN_KEY.append(admin_key)
    el(driver, "#nav-settings").click()
    wait_for("the settings form", lambda: visible(driver, "#add-name"))
    add_collector(driver, "admin", COLLECTOR, admin_key)
    wait_for("the admin collector", lambda: visible(driver, '.collector-row[data-name="admin"]'))
    Select(wait_for("the collector picker", lambda: visible(driver, "#collector-select"))).select_by_value("admin")
    el(driver, "#nav-admin").click()
    wait_for("the keys", lambda: visible(driver, '#keys .key-row[data-name="e2e-admin"]'))
    el(driver, "#key-name").send_keys("e2e-temp")
    Select(el(driver, "#key-role")).select_by_value("viewer")
    el(driver, "#key-create").click()
    value = wait_for("the new key, shown once", lambda: visible(driver, "#key-created-value")
                     and el(driver, "#key-created-value").get_attribute("value"))
    keep_secret(value)
    assert value.startswith("fdk_"), "not a key"
    assert http_status(value, "/v1/fleet") == 200, "the new key does not work"
    assert http_status(value, "/v1/keys") == 403, "a viewer key listed the keys"
    wait_for("the new key listed", lambda: visible(driver, '.key-row[data-name="e2e-temp"]'))
    el(driver, "#key-created-done").click()
    wait_for("the key no longer shown", lambda: not visible(driver, "#key-created"))
    assert value not in driver.page_source, "the key stays in the page"
    shot(driver, "admin")

    step("revoke it: refused at once")
    el(driver, '.key-row[data-name="e2e-temp"] .key-revoke').click()
    wait_for("the confirmation", lambda: visible(driver, "#confirm-yes")).click()
    wait_for("the key gone from the list", lambda: not driver.find_elements(By.CSS_SELECTOR, '.key-row[data-name="e2e-temp"]'))
    assert http_status(value, "/v1/fleet") == 401, "a revoked key was still let in"

    step("the audit log, filtered by target, shows the key's creation and revocation")
    field = el(driver, "#audit-target")
    field.send_keys("e2e-temp")
    field.send_keys(Keys.TAB)  # the field's change
    el(driver, "#audit-apply").click()
    def rows():
        return [(r.get_attribute("data-action"), r.get_attribute("data-key"))
                for r in driver.find_elements(By.CSS_SELECTOR, "#audit .audit-row")]
    wait_for("both entries and nothing else", lambda: rows() == [("key.delete", "e2e-admin"), ("key.create", "e2e-admin")])
    shot(driver, "admin-audit")
    # The admin collector goes again (the palette's entries are then e2e's alone).
    el(driver, "#nav-settings").click()
    wait_for("the admin collector", lambda: visible(driver, '.collector-row[data-name="admin"] .collector-remove')).click()
    wait_for("the confirmation", lambda: visible(driver, "#confirm-yes")).click()
    wait_for("the admin collector removed", lambda: not driver.find_elements(By.CSS_SELECTOR, '.collector-row[data-name="admin"]'))
    if visible(driver, "#collector-select"):
        Select(el(driver, "#collector-select")).select_by_value("e2e")


ADMIN_KEY = []  # the admin key check_admin made, for the audit checks after it


def check_env_restore(driver):
    """The .env's backups: compared with values masked, restored through the If-Match write (the
    file on disk is the backup again), and the restore audited."""
    step(".env backups: compare (values masked) and restore the one before the edit")
    backup = ENV_FILE.with_name(f".{ENV_FILE.name}.fleetdeck-backup.1")
    before_edit = backup.read_text()
    assert "GREETING=hello" in before_edit, before_edit
    current = ENV_FILE.read_text()
    assert "bonjour-e2e" in current, current
    el(driver, "#nav-fleet").click()
    row = f'.app-row[data-host="{HOST}"][data-app="{APP_NAME}"]'
    wait_for("the app row", lambda: visible(driver, row)).click()
    wait_for("the app view", lambda: visible(driver, "#app-view"))
    el(driver, "#tab-env").click()
    backup_row = '.backup-row[data-n="1"]'
    wait_for("the backups", lambda: visible(driver, backup_row))
    el(driver, f"{backup_row} .backup-compare").click()
    diff = wait_for("the comparison", lambda: visible(driver, "#backup-diff") and text_of(driver, "#backup-diff"))
    assert "GREETING" in diff and "hello" not in diff and "bonjour" not in diff, diff
    assert "API_TOKEN" not in diff, f"an unchanged key is listed: {diff}"
    shot(driver, "app-env-backups")
    el(driver, f"{backup_row} .backup-restore").click()
    wait_for("the confirmation", lambda: visible(driver, "#confirm-yes")).click()
    wait_for("the restored message", lambda: "Restored backup 1" in (text_of(driver, "#env-message") or ""))
    assert ENV_FILE.read_text() == before_edit, "the file on disk is not the backup"
    assert backup.read_text() == current, "the replaced file is not kept as backup 1"
    audit = [e for e in json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{COLLECTOR}/v1/audit?action=env.write&target={HOST}/{APP_NAME}",
        headers={"Authorization": f"Bearer {ADMIN_KEY[0]}"}), timeout=10).read())["entries"]]
    assert audit and "restoring backup 1" in audit[0]["action"] and audit[0]["result"].startswith("ok"), audit[:2]
    assert audit[0]["key_name"] == "e2e", audit[0]


def check_habits(driver):
    """The command palette opens an app, the shortcuts' help lists the keys, the theme and start at
    login are kept, the last view is saved for the next start, and the app logs to its file."""
    step("Ctrl+K opens the palette; typing the app and host and Enter opens that app")
    el(driver, "#nav-fleet").click()
    wait_for("the fleet view", lambda: visible(driver, "#fleet-view"))
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("k").key_up(Keys.CONTROL).perform()
    field = wait_for("the palette", lambda: visible(driver, "#palette-input"))
    field.send_keys(f"{APP_NAME} {HOST}")
    first = wait_for("a palette entry", lambda: text_of(driver, ".palette-item.chosen .palette-label"))
    assert first == f"{APP_NAME} on {HOST}", first
    shot(driver, "palette")
    field.send_keys(Keys.ENTER)
    wait_for("the app opened from the palette", lambda: (v := visible(driver, "#app-view"))
             and v.get_attribute("data-app") == APP_NAME and v.get_attribute("data-host") == HOST)
    assert not visible(driver, "#palette"), "the palette stayed open"

    step("the app's page is saved as the view to open at the next start")
    def saved_view():
        return json.loads((CONFIG_DIR / "settings.json").read_text()).get("last_view")
    wait_for("the last view in settings.json", lambda: saved_view() == {
        "view": "app", "collector": "e2e", "host": HOST, "app": APP_NAME})

    step("? shows the keyboard shortcuts; Escape closes them")
    el(driver, "#app-view h1").click()  # focus the page, not a field
    ActionChains(driver).send_keys("?").perform()
    help_text = wait_for("the shortcuts help", lambda: visible(driver, "#shortcuts-help") and text_of(driver, "#shortcuts-help"))
    assert "Ctrl+K" in help_text, help_text
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    wait_for("the help closed", lambda: not visible(driver, "#shortcuts-help"))
    step("g then e goes to the Events view")
    ActionChains(driver).send_keys("g").send_keys("e").perform()
    wait_for("the events view", lambda: visible(driver, "#events-view"))

    step("the theme: Light is applied at once and kept; back to the system's")
    el(driver, "#nav-settings").click()
    theme = lambda: driver.execute_script("return document.documentElement.dataset.theme")
    Select(wait_for("the theme select", lambda: visible(driver, "#theme-select"))).select_by_value("light")
    wait_for("the light theme", lambda: theme() == "light")
    wait_for("the theme saved", lambda: json.loads((CONFIG_DIR / "settings.json").read_text()).get("theme") == "light")
    shot(driver, "settings-light")
    Select(el(driver, "#theme-select")).select_by_value("system")
    system = driver.execute_script(
        "return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'")
    wait_for("the system's theme", lambda: theme() == system)

    step("start at login: an autostart entry running this app appears, and goes when turned off")
    entry = pathlib.Path.home() / ".config" / "autostart" / "fleetdeck.desktop"
    existed = entry.exists()
    if existed:
        step(f"(skipped: {entry} existed before the test)")
    else:
        try:
            el(driver, "#autostart-toggle").click()
            wait_for("the autostart entry", entry.exists)
            assert f"Exec={APP}" in entry.read_text().replace('"', ""), entry.read_text()
            wait_for("the switch on", lambda: invoke(driver, "settings")["ok"]["autostart"] is True)
            el(driver, "#autostart-toggle").click()
            wait_for("the autostart entry removed", lambda: not entry.exists())
        finally:
            if entry.exists():
                entry.unlink()

    step("the app's own log is in its file under the XDG state directory, with no key in it")
    logs = sorted(STATE_DIR.glob("fleetdeck/fleetdeck*.log"))
    assert logs, f"no log file in {STATE_DIR / 'fleetdeck'}"
    text = "".join(p.read_text(errors="replace") for p in logs)
    assert "collector added" in text, text[-2000:]
    assert KEY not in text, "the key reached the app's log file"


def check_restart(driver):
    """Moved and resized on an app's page, then ended without a clean exit (the WebDriver session
    ends the app): the next start opens at the same place and size, on the same page. Returns the
    new session."""
    step("open the app's page; move and resize the window; its state is written within seconds")
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("k").key_up(Keys.CONTROL).perform()
    field = wait_for("the palette", lambda: visible(driver, "#palette-input"))
    field.send_keys(f"{APP_NAME} {HOST}")
    wait_for("a palette entry", lambda: text_of(driver, ".palette-item.chosen .palette-label"))
    field.send_keys(Keys.ENTER)
    wait_for("the app's page", lambda: (v := visible(driver, "#app-view")) and v.get_attribute("data-app") == APP_NAME)
    wait_for("the app's page saved as the last view", lambda: json.loads(
        (CONFIG_DIR / "settings.json").read_text()).get("last_view", {}).get("view") == "app")
    before = driver.get_window_rect()
    driver.set_window_rect(x=before["x"] + 37, y=before["y"] + 23, width=913, height=655)
    moved = wait_for("the window moved and resized", lambda: (r := driver.get_window_rect())
                     and r["width"] == 913 and r["height"] == 655 and r["x"] != before["x"] and r)
    state_file = pathlib.Path(os.environ["XDG_CONFIG_HOME"]) / "dev.fleetdeck.desktop" / ".window-state.json"
    def saved():
        try:
            return json.loads(state_file.read_text()).get("main", {})
        except (OSError, ValueError):
            return {}
    wait_for(f"the size and position in {state_file}", lambda: (m := saved())
             and (m.get("width"), m.get("height"), m.get("x"), m.get("y"))
             == (913, 655, moved["x"], moved["y"]), timeout=10)

    step("the app ends without a clean exit and starts again: same place, size and page")
    old_pid = app_pid()
    driver.quit()
    def ended():
        try:  # gone, or a zombie its parent has yet to reap
            return pathlib.Path(f"/proc/{old_pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True
    wait_for("the app ended with its session", ended)
    driver = connect()
    view = wait_for("the app's page at start", lambda: visible(driver, "#app-view"))
    assert (view.get_attribute("data-app"), view.get_attribute("data-host")) == (APP_NAME, HOST)
    after = driver.get_window_rect()
    assert after == moved, f"the window opened at {after}, was left at {moved}"
    shot(driver, "restarted")
    return driver


def add_collector(driver, name, url, key):
    for css, value in (("#add-name", name), ("#add-url", url), ("#add-key", key)):
        field = el(driver, css)
        field.clear()
        field.send_keys(value)
    el(driver, "#add-submit").click()


def run(driver):
    driver.set_script_timeout(30)

    step("a fresh app opens on Settings with no collector")
    wait_for("the settings form", lambda: visible(driver, "#add-name"))
    shot(driver, "settings-empty")

    check_csp(driver)
    check_acl(driver)

    step("a refused key shows a clear message and stores nothing")
    add_collector(driver, "e2e", COLLECTOR, "fdk_" + "0" * 48)
    msg = wait_for("the add error", lambda: visible(driver, "#add-error") and text_of(driver, "#add-error"))
    assert "refused" in msg.lower() and "key" in msg.lower(), msg
    assert not driver.find_elements(By.CSS_SELECTOR, ".collector-row"), "a refused collector was listed"

    step("an unreachable collector shows a clear message")
    add_collector(driver, "e2e", DEAD_URL, KEY)
    msg = wait_for("the unreachable error", lambda: (t := text_of(driver, "#add-error")) and "reach" in t.lower() and t)
    assert DEAD_URL.split("//")[1] in msg, msg

    step("a wrong URL shows a clear message")
    add_collector(driver, "e2e", "not a url", KEY)
    wait_for("the URL error", lambda: (t := text_of(driver, "#add-error")) and "not a url" in t.lower())

    step("add the collector: the key lands in the keyring and nowhere else")
    add_collector(driver, "e2e", COLLECTOR, KEY)
    wait_for("the collector row", lambda: driver.find_elements(By.CSS_SELECTOR, '.collector-row[data-name="e2e"]'))
    stored = subprocess.run(
        ["secret-tool", "lookup", "service", "dev.fleetdeck.desktop", "username", "e2e"],
        capture_output=True, text=True, timeout=10,
    ).stdout.strip()
    assert stored == KEY, "the key is not in the OS keyring under service dev.fleetdeck.desktop"
    for f in CONFIG_DIR.rglob("*"):
        if f.is_file():
            assert KEY not in f.read_text(errors="replace"), f"the key is in {f}"
    assert KEY not in driver.page_source, "the key reached the webview's page"
    shot(driver, "settings")

    step("see the fleet")
    el(driver, "#nav-fleet").click()
    row = f'.app-row[data-host="{HOST}"][data-app="{APP_NAME}"]'
    wait_for("the app running in the fleet view", lambda: text_of(driver, f"{row} .app-state") == "running")
    wait_for("the connection pill", lambda: "connected" in (text_of(driver, "#conn-status") or "").lower())
    if CHECKS:
        step("its failing TCP check makes it degraded: an amber badge, never green")
        wait_for("the degraded badge", lambda: text_of(driver, f"{row} .app-degraded") == "degraded", timeout=30)
        classes = el(driver, row).get_attribute("class").split()
        assert "ok" not in classes and "warn" in classes, classes
    shot(driver, "fleet")

    check_agents_add(driver)

    step("open the host: its charts")
    el(driver, f'.host-card[data-host="{HOST}"] .host-link').click()
    wait_for("the host view", lambda: visible(driver, "#host-view"))
    wait_for("four charts", lambda: len(driver.find_elements(By.CSS_SELECTOR, ".chart")) >= 4)
    el(driver, "#range-24h").click()
    wait_for("the charts after a range change", lambda: len(driver.find_elements(By.CSS_SELECTOR, ".chart")) >= 4)
    shot(driver, "host")

    step("open the app from the fleet")
    el(driver, "#nav-fleet").click()
    wait_for("the app row", lambda: visible(driver, row)).click()
    wait_for("the app view", lambda: visible(driver, "#app-view"))
    assert text_of(driver, "#app-state") == "running"

    step("a freshly written log line arrives")
    el(driver, "#tab-logs").click()
    marker = f"e2e-marker-{time.time_ns()}"
    SAY_FILE.write_text(marker + "\n")
    # textContent, not .text: lines scrolled out of the log pane are there but not "visible"
    wait_for("the fresh log line in the view", lambda: marker in driver.execute_script(
        "return Array.from(document.querySelectorAll('#log-lines .log-line')).map(e => e.textContent).join('\\n')"))
    shot(driver, "app-logs")

    step("change a .env value with \"Apply after save\": it is in the file on disk, and the unit restarted")
    el(driver, "#tab-env").click()
    env_row = '.env-row[data-key="GREETING"]'
    wait_for("the .env table", lambda: visible(driver, env_row))
    masked = text_of(driver, f"{env_row} .env-value")
    assert masked and "hello" not in masked, f"the value is not masked: {masked!r}"
    shot(driver, "app-env")
    el(driver, f"{env_row} .env-edit").click()
    field = wait_for("the value input", lambda: visible(driver, f"{env_row} .env-input"))
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys("bonjour-e2e")
    el(driver, "#env-review").click()
    diff = wait_for("the diff preview", lambda: visible(driver, "#env-diff"))
    assert "GREETING" in diff.text, diff.text
    shot(driver, "app-env-diff")
    pid_before_apply = app_status()["systemd"]["main_pid"]
    apply_box = el(driver, "#env-restart")
    if not apply_box.is_selected():
        apply_box.click()
    el(driver, "#env-save").click()
    saved = wait_for("the saved message", lambda: (m := text_of(driver, "#env-message") or "") and "saved" in m.lower() and m)
    content = ENV_FILE.read_text()
    assert "GREETING=bonjour-e2e" in content, content
    assert "PORT=8080" in content, "another line was lost: " + content
    # The agent said how it applied the file, and the unit did restart (a new main PID).
    assert "Applied: restarted" in saved and "EnvironmentFile=" in saved, saved
    wait_for("a new main PID after the apply",
             lambda: app_status()["systemd"]["main_pid"] not in (None, pid_before_apply))
    shot(driver, "app-env-applied")

    step("a stale save is refused with a clear conflict message, and the file is untouched")
    el(driver, f"{env_row} .env-edit").click()
    field = wait_for("the value input", lambda: visible(driver, f"{env_row} .env-input"))
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys("stale-write")
    ENV_FILE.write_text(content + "CHANGED_ELSEWHERE=1\n")
    el(driver, "#env-review").click()
    wait_for("the diff preview", lambda: visible(driver, "#env-diff"))
    el(driver, "#env-save").click()
    wait_for("the conflict message", lambda: "changed" in (text_of(driver, "#env-message") or "").lower())
    assert "stale-write" not in ENV_FILE.read_text()
    shot(driver, "app-env-conflict")

    step("restart the app and see its status change")
    before = app_status()
    pid_before = before["systemd"]["main_pid"]
    el(driver, "#action-restart").click()
    wait_for("the confirmation", lambda: visible(driver, "#confirm-dialog"))
    el(driver, "#confirm-yes").click()
    wait_for("the action result", lambda: text_of(driver, "#action-result"))
    after = wait_for("a new main PID", lambda: (s := app_status())["systemd"]["main_pid"] not in (None, pid_before) and s)
    assert after["state"] == "running"
    wait_for("the app running again in the view", lambda: text_of(driver, "#app-state") == "running")

    step("the unit crashes (exit 3) after a distinctive last line: a native notification (Notify on "
         "D-Bus) that says why, the view and the tray turn red")
    notify_before = NOTIFY_LOG.read_text(errors="replace").count('member=Notify')
    seen_calls = len(notify_calls())
    tray = invoke(driver, "tray_state")["ok"]
    assert tray["health"] in ("ok", "degraded"), tray
    last_line = f"e2e-last-words-{time.time_ns()}: cannot open /srv/data.db"
    DIE_FILE.write_text(last_line + "\n")
    wait_for("the app failed in the view", lambda: text_of(driver, "#app-state") == "failed", timeout=20)

    def notified():
        log = NOTIFY_LOG.read_text(errors="replace")
        calls = log.split("method call")[1:]
        return [c for c in calls if "member=Notify" in c and APP_NAME in c and HOST in c and "crash" in c.lower()]
    calls = wait_for("a Notify call naming the host and app", notified, timeout=15)
    assert len(calls) == 1, f"{len(calls)} crash notifications for one crash"
    crash = [c for c in notify_calls()[seen_calls:] if c[0] == f"{APP_NAME} crashed on {HOST}"]
    assert len(crash) == 1, notify_calls()[seen_calls:]
    step(f"notified: {crash[0]!r}")
    if CRASH_CONTEXT:
        assert "exit code 3" in crash[0][1], crash[0]
        assert f"Last log line: {last_line}" in crash[0][1], crash[0]
    else:
        step("E2E_CRASH_CONTEXT=0: the exit and the last line in the body are not checked")
    assert NOTIFY_LOG.read_text(errors="replace").count('member=Notify') > notify_before
    tray = wait_for("the tray turning red", lambda: (t := invoke(driver, "tray_state")["ok"])["health"] == "down" and t)
    assert any(d["target"]["app"] == APP_NAME for d in tray["down"]), tray
    shot(driver, "app-failed")
    el(driver, "#nav-fleet").click()
    wait_for("the down count", lambda: (text_of(driver, "#count-down") or "0") != "0")
    shot(driver, "fleet-down")

    step("the event log lists the crash")
    el(driver, "#nav-events").click()
    wait_for("event rows", lambda: driver.find_elements(By.CSS_SELECTOR, ".event-row"))
    if CRASH_CONTEXT:
        step("its details show the crash context with the last line")
        crash_row = wait_for("the crash row with its last line", lambda: [
            r for r in driver.find_elements(By.CSS_SELECTOR, ".event-row") if last_line in r.text])[0]
        crash_row.find_element(By.CSS_SELECTOR, ".event-more").click()
        detail = wait_for("the crash context", lambda: visible(
            driver, f'.event-detail[data-id="{crash_row.get_attribute("data-id")}"] pre.crash-lines'))
        assert last_line in detail.text, detail.text
    shot(driver, "events")

    step("clicking the notification opens that app")
    subprocess.run(["dunstctl", "action", "0"], check=True, timeout=10)
    wait_for("the app view opened by the notification", lambda: (v := visible(driver, "#app-view"))
             and v.get_attribute("data-app") == APP_NAME and v.get_attribute("data-host") == HOST)

    step("do not disturb: a recovery while on raises no notification")
    el(driver, "#nav-settings").click()
    wait_for("the do-not-disturb switch", lambda: visible(driver, "#dnd-toggle")).click()
    wait_for("do not disturb on", lambda: invoke(driver, "settings")["ok"]["dnd"] is True)
    notifies = NOTIFY_LOG.read_text(errors="replace").count("member=Notify")
    el(driver, "#nav-events").click()
    wait_for("event rows", lambda: driver.find_elements(By.CSS_SELECTOR, ".event-row"))
    newest = max(int(r.get_attribute("data-id")) for r in driver.find_elements(By.CSS_SELECTOR, ".event-row"))
    started = invoke(driver, "action", {"collector": "e2e", "host": HOST, "app": APP_NAME, "action": "start"})
    assert "ok" in started, started

    def recovery_shown():
        # the Events view prepends what the app's event stream delivers: once the recovery is
        # there, the app has decided about its notification
        rows = driver.find_elements(By.CSS_SELECTOR, ".event-row")
        return any(int(r.get_attribute("data-id")) > newest and "running" in r.text for r in rows)
    wait_for("the recovery in the live event log", recovery_shown)
    assert NOTIFY_LOG.read_text(errors="replace").count("member=Notify") == notifies, "notified while do not disturb was on"

    check_alerts_and_silences(driver)
    check_host_silence(driver)

    # (These need the collector, which the next step stops for good.)
    check_fleet_search(driver)
    check_admin(driver)
    check_env_restore(driver)
    check_habits(driver)
    driver = check_restart(driver)

    step("the collector stops: the tray turns grey, one notification; it returns: one more")
    before = NOTIFY_LOG.read_text(errors="replace").count("member=Notify")
    invoke(driver, "set_dnd", {"dnd": False})
    collector_pid = int(os.environ["E2E_COLLECTOR_PID"])
    os.kill(collector_pid, 15)
    wait_for("the tray turning grey", lambda: invoke(driver, "tray_state")["ok"]["health"] == "disconnected", timeout=30)
    wait_for("the failing status in the window", lambda: "failing" in (text_of(driver, "#conn-status") or "").lower())

    def told(what):
        log = NOTIFY_LOG.read_text(errors="replace")
        return [c for c in log.split("method call")[1:] if "member=Notify" in c and what in c]
    wait_for("the unreachable notification", lambda: told("Lost contact"), timeout=30)
    shot(driver, "collector-down")
    restarted = subprocess.Popen(os.environ["E2E_COLLECTOR_CMD"].split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("the reachable-again notification", lambda: told("Back in contact"), timeout=30)
        wait_for("the tray back from grey", lambda: invoke(driver, "tray_state")["ok"]["health"] != "disconnected")
        assert len(told("Lost contact")) == 1, "told twice about one outage"
    finally:
        restarted.terminate()
        restarted.wait(10)

    check_hostile_collector(driver)
    check_plain_http_warning(driver)

    step("no key in the app's log")
    assert KEY not in APP_LOG.read_text(errors="replace"), "the key reached the app's log"
    step("PASS")


if __name__ == "__main__":
    main()
