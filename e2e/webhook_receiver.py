"""A webhook receiver for the desktop end-to-end test: every POST body is appended to LOG as one
line of JSON. Usage: webhook_receiver.py PORT LOG. Runs until killed."""

import http.server
import json
import sys

port, log = int(sys.argv[1]), sys.argv[2]


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            line = json.dumps(json.loads(body))
        except ValueError:
            line = json.dumps({"raw": body.decode(errors="replace")})
        with open(log, "a") as f:
            f.write(line + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
