"""A proxy in front of a real collector (`fleetdeck-collector --demo`) that adds what issue 14
brings before the collector serves it: open problems in `/v1/fleet`, endpoint checks (one failing,
one HTTPS whose certificate expires in 5 days) on the first host's first app, disk I/O and root
inodes in host metrics, per-app metrics (`/v1/hosts/{host}/apps/{app}/metrics`), and events with a
crash context, a check result and a threshold hit. Everything else passes through unchanged (the
shapes come from the real collector). For screenshots of the desktop (e2e/shots_problems.py):
run `python3 e2e/problems_proxy.py UPSTREAM_URL` and point the desktop at the URL it prints."""

import json
import math
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DAY = 86_400_000
SYNTHETIC_ID = 10_000_000


def now_ms():
    return int(time.time() * 1000)


def checks(now):
    return [
        {"name": "health", "kind": "http", "target": "http://127.0.0.1:8080/healthz", "ok": False,
         "consecutive_failures": 3, "status_code": 500, "latency_ms": 812.4,
         "error": "status 500 Internal Server Error, expected 2xx or 3xx", "cert_not_after_unix_ms": None,
         "checked_unix_ms": now - 4_000},
        {"name": "tls", "kind": "https", "target": "https://shop.example.internal/", "ok": True,
         "consecutive_failures": 0, "status_code": 200, "latency_ms": 38.2, "error": None,
         "cert_not_after_unix_ms": now + 5 * DAY + 3_600_000, "checked_unix_ms": now - 9_000},
        {"name": "db-port", "kind": "tcp", "target": "127.0.0.1:5432", "ok": True,
         "consecutive_failures": 0, "status_code": None, "latency_ms": 0.4, "error": None,
         "cert_not_after_unix_ms": now + 80 * DAY, "checked_unix_ms": now - 2_000},
    ]


class Proxy:
    def __init__(self, upstream, bind="127.0.0.1", port=0):
        self.upstream = upstream.rstrip("/")
        self.target = None  # (host, app) that gets the checks: the first app of the first host
        self.names = ["demo-x"] * 3
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy.handle(self, "GET")

            def do_POST(self):
                proxy.handle(self, "POST")

            def do_PUT(self):
                proxy.handle(self, "PUT")

        self.server = ThreadingHTTPServer((bind, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{bind}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    # -- plumbing --------------------------------------------------------------------------------

    def forward(self, h, method, body=None):
        req = urllib.request.Request(self.upstream + h.path, data=body, method=method)
        for name in ("Authorization", "Content-Type", "Last-Event-ID", "Accept", "If-Match"):
            if h.headers.get(name):
                req.add_header(name, h.headers[name])
        try:
            return urllib.request.urlopen(req, timeout=30)
        except urllib.error.HTTPError as e:
            return e

    def send(self, h, status, body, ctype="application/json"):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def handle(self, h, method):
        path = urllib.parse.urlparse(h.path).path
        body = None
        if method != "GET":
            body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 6 and parts[:2] == ["v1", "hosts"] and parts[3] == "apps" \
                and parts[5] == "metrics":
            return self.send(h, 200, json.dumps(self.app_metrics(h, parts[2], parts[4])).encode())
        up = self.forward(h, method, body)
        if path == "/v1/events/stream":
            return self.stream(h, up)
        data = up.read()
        status = up.status if hasattr(up, "status") else up.code
        if status == 200 and method == "GET":
            try:
                value = json.loads(data)
            except ValueError:
                value = None
            if value is not None:
                if path == "/v1/fleet":
                    value = self.fleet(value)
                elif len(parts) == 3 and parts[:2] == ["v1", "hosts"]:
                    value = self.host(value)
                elif len(parts) == 4 and parts[:2] == ["v1", "hosts"] and parts[3] == "metrics":
                    value = self.host_metrics(value)
                elif path == "/v1/events":
                    value = self.events(h, value)
                data = json.dumps(value).encode()
        self.send(h, status, data, up.headers.get("Content-Type", "application/json"))

    def stream(self, h, up):
        h.send_response(up.status if hasattr(up, "status") else up.code)
        h.send_header("Content-Type", up.headers.get("Content-Type", "text/event-stream"))
        h.send_header("Cache-Control", "no-cache")
        h.end_headers()
        try:
            while True:
                chunk = up.read1(65536) if hasattr(up, "read1") else up.read(1)
                if not chunk:
                    return
                h.wfile.write(chunk)
                h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return

    # -- enrichment ------------------------------------------------------------------------------

    def enrich_app(self, host, app, now):
        if self.target == (host, app["status"]["name"]):
            app["status"]["checks"] = checks(now)
            app["status"]["degraded"] = True

    def fleet(self, fleet):
        now = now_ms()
        hosts = fleet.get("hosts", [])
        if hosts and hosts[0]["apps"] and self.target is None:
            self.target = (hosts[0]["name"], hosts[0]["apps"][0]["status"]["name"])
        for h in hosts:
            for a in h["apps"]:
                self.enrich_app(h["name"], a, now)
        names = [h["name"] for h in hosts] + ["demo-x"] * 3
        self.names = names
        target_host, target_app = self.target or (names[0], None)
        fleet["problems"] = [
            {"kind": "threshold", "rule": "disk-full", "severity": "critical", "host": names[1],
             "app": None, "subject": "/var", "message": "/var is 97.4 % full (critical at 97 %) for 6m",
             "since_unix_ms": now - 6 * 60_000},
            {"kind": "check", "rule": None, "severity": "warning", "host": target_host, "app": target_app,
             "subject": "health", "message": "health: status 500 Internal Server Error, expected 2xx or 3xx (3 in a row)",
             "since_unix_ms": now - 3 * 60_000},
            {"kind": "check", "rule": None, "severity": "warning", "host": target_host, "app": target_app,
             "subject": "tls", "message": f"tls: the certificate expires on {time.strftime('%Y-%m-%d', time.gmtime((now + 5 * DAY) / 1000))} (in 5 days)",
             "since_unix_ms": now - 50 * 60_000},
            {"kind": "threshold", "rule": "disk-predicted-full", "severity": "warning", "host": names[2],
             "app": None, "subject": "/", "message": "/ predicted full in 17.5 h (linear fit over 6 h)",
             "since_unix_ms": now - 20 * 60_000},
            {"kind": "source", "rule": None, "severity": "warning", "host": names[2], "app": None,
             "subject": "docker", "message": "Docker engine not answering: connection refused (/run/docker.sock)",
             "since_unix_ms": now - 2 * 60_000},
        ]
        s = fleet["summary"]
        s["problems_critical"] = 1
        s["problems_warning"] = 4
        return fleet

    def host(self, host):
        now = now_ms()
        for a in host.get("apps", []):
            self.enrich_app(host["name"], a, now)
        return host

    def host_metrics(self, metrics):
        if len(metrics.get("points", [])) < 30:
            # A demo just started has few samples: draw an hour of made-up ones.
            end, n = now_ms(), 120
            metrics["points"] = [{
                "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((end - (n - i) * 30_000) / 1000)),
                "ts_unix_ms": end - (n - i) * 30_000, "samples": 1,
                "cpu_percent": 30 + 20 * math.sin(i / 10.0) ** 2, "cpu_percent_max": None,
                "memory_used_bytes": int(3.5e9 + 2e8 * math.sin(i / 15.0)), "memory_total_bytes": 8 * 2**30,
                "swap_used_bytes": 0, "load1": 1.2, "disk_used_bytes": int(40e9 + i * 5e7),
                "disk_total_bytes": 64 * 2**30, "net_rx_bytes_per_sec": 4e5 + 2e5 * math.sin(i / 6.0) ** 2,
                "net_tx_bytes_per_sec": 1.5e5 + 1e5 * math.cos(i / 5.0) ** 2,
            } for i in range(n)]
        for i, p in enumerate(metrics.get("points", [])):
            p["disk_read_bytes_per_sec"] = 2.5e6 + 2e6 * math.sin(i / 9.0) ** 2
            p["disk_write_bytes_per_sec"] = 1.2e6 + 9e5 * math.cos(i / 7.0) ** 2
            p["root_inodes_used_percent"] = 41.0 + i * 0.01
        return metrics

    def app_metrics(self, h, host, app):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(h.path).query)
        end = now_ms()
        span = 3_600_000
        if "from" in q and "to" in q:
            try:
                from datetime import datetime
                t0 = datetime.fromisoformat(q["from"][0].replace("Z", "+00:00")).timestamp() * 1000
                t1 = datetime.fromisoformat(q["to"][0].replace("Z", "+00:00")).timestamp() * 1000
                end, span = int(t1), max(int(t1 - t0), 60_000)
            except ValueError:
                pass
        n = 120
        step = span // n
        limit = 512 * 1024 * 1024
        points = []
        for i in range(n + 1):
            ts = end - span + i * step
            mem = int(limit * (0.55 + 0.3 * (i / n) + 0.05 * math.sin(i / 5.0)))
            points.append({
                "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts / 1000)), "ts_unix_ms": ts,
                "samples": 1, "cpu_percent": 22 + 18 * math.sin(i / 8.0) ** 2 + (30 if 70 < i < 78 else 0),
                "cpu_percent_max": None, "memory_bytes": mem, "memory_bytes_max": mem,
                "memory_limit_bytes": limit, "net_rx_bytes_per_sec": None, "net_tx_bytes_per_sec": None,
                "checks": [] if (host, app) != self.target else [
                    {"name": "health", "latency_ms": 35 + 10 * math.sin(i / 4.0) + (700 if i > 100 else 0),
                     "ok_ratio": 0.0 if i > 100 else 1.0},
                    {"name": "tls", "latency_ms": 40 + 6 * math.cos(i / 6.0), "ok_ratio": 1.0},
                ],
            })
        return {"host": host, "app": app, "from": points[0]["ts"], "to": points[-1]["ts"],
                "step_ms": step, "resolution": "raw", "points": points}

    def events(self, h, page):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(h.path).query)
        if "before" in q or not self.target:
            return page
        host, app = self.target
        now = now_ms()
        base = {"source": "agent-stream", "host": host, "app": app, "from": None, "to": None,
                "exit": None, "context": None, "check": None, "threshold": None}
        crash_lines = [f"2026-12-04T04:0{i // 6}:{10 + i:02d}Z INFO handled request GET /cart/{1000 + i} in {12 + i} ms"
                       for i in range(17)] + [
            "2026-12-04T04:02:31Z WARN connection pool exhausted (32/32), waiting",
            "2026-12-04T04:02:33Z ERROR query failed: SQLSTATE 57P01 terminating connection due to administrator command",
            "thread 'main' panicked at src/db.rs:88:14: cannot reconnect to postgres://db:5432/shop: Connection refused",
        ]
        synthetic = [
            dict(base, id=SYNTHETIC_ID + 4, at_unix_ms=now - 60_000, severity="critical", kind="threshold-fired",
                 host=self.names[1], app=None, message="disk-full: /var is 97.4 % full (critical at 97 %)",
                 threshold={"rule": "disk-full", "metric": "disk.used_percent", "subject": "/var",
                            "value": 97.4, "threshold": 97.0, "direction": "above", "for_secs": 300}),
            dict(base, id=SYNTHETIC_ID + 3, at_unix_ms=now - 180_000, severity="warning", kind="check-failed",
                 message="health failed: status 500 Internal Server Error, expected 2xx or 3xx",
                 check=checks(now)[0]),
            dict(base, id=SYNTHETIC_ID + 2, at_unix_ms=now - 300_000, severity="critical", kind="transition",
                 **{"from": "running", "to": "failed"}, exit={"code": 101},
                 message=f"{app} failed (exit code 101)",
                 context={"exit": {"code": 101}, "oom_killed": False, "memory_bytes": 498_073_600,
                          "memory_limit_bytes": 536_870_912, "last_lines": crash_lines, "lines_error": None}),
            dict(base, id=SYNTHETIC_ID + 1, at_unix_ms=now - 900_000, severity="warning", kind="restarted",
                 **{"from": "running", "to": "running"}, exit={"signal": 9},
                 message=f"{app} was restarted after it was killed by the OOM killer",
                 context={"exit": {"signal": 9}, "oom_killed": True, "memory_bytes": 33_030_144,
                          "memory_limit_bytes": 33_554_432, "last_lines": ["allocating 4 MiB more (31 MiB held)"],
                          "lines_error": None}),
        ]
        page["events"] = synthetic + page.get("events", [])
        return page


if __name__ == "__main__":
    p = Proxy(sys.argv[1], port=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(p.url, flush=True)
    threading.Event().wait()
