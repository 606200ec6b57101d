"""A hostile collector for the desktop's end-to-end test: it answers the few routes the desktop
needs to add and watch a collector (`/v1/fleet`, `/v1/events`, `/v1/events/stream`), takes any
key, and sends the crash events the test asks for, with whatever names the test chooses (markup in
an app name, a flood of crashes). Names a real collector would refuse are the point: the desktop
must not trust what a collector or an agent says."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "stub-host"

EMPTY_FLEET = {
    "summary": {
        "health": "ok", "hosts": 0, "hosts_up": 0, "hosts_down": 0, "apps": 0,
        "apps_running": 0, "apps_down": 0, "apps_degraded": 0, "apps_stopped": 0,
    },
    "hosts": [],
}


class HostileCollector:
    def __init__(self, bind="127.0.0.1"):
        self.events = []  # FleetEvent dicts, ids 1, 2, ...
        self.changed = threading.Condition()
        self.stopping = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send_json(self, value):
                body = json.dumps(value).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.split("?")[0]
                if path == "/v1/fleet":
                    self.send_json(EMPTY_FLEET)
                elif path == "/v1/events":
                    self.send_json({"events": [], "next_before": None})
                elif path == "/v1/events/stream":
                    stub.stream(self, int(self.headers.get("Last-Event-ID") or 0))
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.server = ThreadingHTTPServer((bind, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{bind}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stream(self, handler, last_id):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        try:
            while True:
                with self.changed:
                    if not self.stopping and len(self.events) <= last_id:
                        # a keep-alive well inside the desktop's silence limit
                        self.changed.wait(10)
                    if self.stopping:
                        return
                    fresh = self.events[last_id:]
                out = b"".join(
                    f"event: fleet\nid: {e['id']}\ndata: {json.dumps(e)}\n\n".encode() for e in fresh
                ) or b": keep-alive\n\n"
                handler.wfile.write(out)
                handler.wfile.flush()
                last_id += len(fresh)
        except (BrokenPipeError, ConnectionResetError):
            return

    def crash(self, app, count=1, distinct=False):
        """Sends `count` crash events (running -> failed, exit code 1) of `app` on HOST; with
        `distinct`, each of another app (`app-0`, `app-1`, ...), so no flap rule holds them."""
        with self.changed:
            for i in range(count):
                self.events.append({
                    "id": len(self.events) + 1, "at_unix_ms": int(time.time() * 1000),
                    "severity": "critical", "source": "agent-stream", "kind": "transition",
                    "host": HOST, "app": f"{app}-{i}" if distinct else app,
                    "from": "running", "to": "failed",
                    "exit": {"code": 1}, "message": "",
                })
            self.changed.notify_all()

    def stop(self):
        with self.changed:
            self.stopping = True
            self.changed.notify_all()
        self.server.shutdown()
        self.server.server_close()
