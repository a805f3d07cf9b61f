#!/usr/bin/env python3
"""An example app to put behind the tier (docs/your-app.md): every request is
answered with what the app received, as JSON, so you can see what the tier
passes on: method, path, Host, Accept-Encoding, X-Forwarded-For, body length.
GET and HEAD answers say `Cache-Control: max-age=60` (the tier caches them for
a minute); other methods say `no-store`. Standard library only.

  python3 app.py [PORT]     (default 3000, all addresses)
"""
import http.server
import json
import signal
import sys


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the nodes reuse connections

    def log_message(self, *args):
        pass

    def echo(self, cache_control, with_body=True):
        length = int(self.headers.get("Content-Length") or 0)
        received = len(self.rfile.read(length)) if length else 0
        data = json.dumps({
            "app": "example",
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host", ""),
            "accept_encoding": self.headers.get("Accept-Encoding", ""),
            "x_forwarded_for": self.headers.get("X-Forwarded-For", ""),
            "body_length": received,
        }).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", cache_control)
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def do_GET(self):
        self.echo("max-age=60")

    def do_HEAD(self):
        self.echo("max-age=60", with_body=False)

    def do_POST(self):
        self.echo("no-store")

    do_PUT = do_PATCH = do_DELETE = do_POST


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    # PID 1 in a container: without a handler SIGTERM would be ignored.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    http.server.ThreadingHTTPServer(("", port), Echo).serve_forever()


if __name__ == "__main__":
    main()
