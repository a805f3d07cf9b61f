#!/usr/bin/env python3
"""Follows docs/your-app.md with a small app of its own, on the local run:
  - `WEBNODE_ORIGIN=... deploy/local/webtier up` puts the app behind the tier,
    `/` included;
  - a 1 MiB upload goes through the balancer and the node to the app;
  - an answer the app marks cacheable is a HIT; a purge through the
    balancer's admin port (with the run's admin token) makes the next request
    fetch the app's new content; the public port refuses /admin/ (404);
  - `scale` later, without WEBNODE_ORIGIN in the environment, starts a node
    that serves the same app (the setting is remembered).
Exits 77 (ctest SKIP) when the programs or the servers it needs are missing.

  tests/deploy/your_app_test.py [--bin-dir DIR]
"""
import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "monitoring"))
from live_dashboards_test import free_port, wait_for  # noqa: E402  (one copy of the port and wait helpers)

WEBTIER = os.path.join(REPO, "deploy", "local", "webtier")
SKIP = 77


def log(msg):
    print(f"[your-app] {msg}", flush=True)


class App(http.server.ThreadingHTTPServer):
    """The user's app: a root page, a cacheable page whose content the test
    changes, an upload route that reports what it received."""

    def __init__(self):
        self.hello = "hello v1"
        super().__init__(("127.0.0.1", 0), AppHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class AppHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, cache_control):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", cache_control)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/":
            self.answer(200, "my app root", "no-store")
        elif self.path == "/hello":
            self.answer(200, self.server.hello, "max-age=300")
        elif self.path == "/headers":
            seen = {name: self.headers.get(name, "") for name in ("Host", "Accept-Encoding", "X-Forwarded-For")}
            self.answer(200, json.dumps(seen), "no-store")
        else:
            self.answer(404, "no such page", "no-store")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer(200, json.dumps({"size": len(body)}), "no-store")


def request(method, url, body=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"))
    args = ap.parse_args()
    bin_dir = os.path.abspath(args.bin_dir)
    for program in ("webnode", "balancer"):
        if not os.access(os.path.join(bin_dir, program), os.X_OK):
            log(f"SKIP: {bin_dir}/{program} is not built")
            return SKIP
    for tool in ("prometheus", "redis-server", "java", "curl"):
        if not shutil.which(tool):
            log(f"SKIP: {tool} is not installed (scripts/install-deps.sh)")
            return SKIP

    app = App()
    run_dir = tempfile.mkdtemp(prefix="webtier-your-app-")
    ports = {k: free_port() for k in ("ZK", "REDIS", "BALANCER", "ADMIN", "PROMETHEUS", "REDIS_EXPORTER")}
    env = dict(os.environ, WEBTIER_RUN_DIR=run_dir, WEBTIER_BIN_DIR=bin_dir, WEBTIER_SKIP_INSTALL="1",
               WEBTIER_SKIP_BUILD="1", WEBTIER_NO_DEMO="1", WEBTIER_NODES="2",
               WEBTIER_WEBNODE_PORT=str(free_port()), WEBTIER_ZK_PATH="/webtier-your-app/nodes",
               **{f"WEBTIER_{k}_PORT": str(v) for k, v in ports.items()})

    def webtier(*argv, extra_env=None, check=True):
        log("$ deploy/local/webtier " + " ".join(argv))
        r = subprocess.run([WEBTIER, *argv], env=dict(env, **(extra_env or {})), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        print(r.stdout, end="", flush=True)
        if check and r.returncode:
            raise AssertionError(f"webtier {' '.join(argv)} exited {r.returncode}")

    public = f"http://127.0.0.1:{ports['BALANCER']}"
    admin = f"http://127.0.0.1:{ports['ADMIN']}"
    ok = False
    try:
        webtier("up", extra_env={"WEBNODE_ORIGIN": app.url})
        wait_for("the balancer to route to 2 nodes", lambda: len(json.loads(
            request("GET", admin + "/status")[2])["members"]) == 2, 30)

        status, _, body = request("GET", public + "/")
        assert (status, body) == (200, "my app root"), f"GET / through the tier: {status} {body!r}"
        log("GET / reaches the app")

        status, _, body = request("GET", public + "/headers", headers={"Host": "shop.example",
                                                                      "Accept-Encoding": "gzip"})
        seen = json.loads(body) if status == 200 else {}
        assert seen.get("Host") == "shop.example" and seen.get("Accept-Encoding") == "gzip" and \
            seen.get("X-Forwarded-For"), f"what the app received: {status} {body!r}"
        log("the app sees the client's Host and Accept-Encoding, and X-Forwarded-For")

        upload = os.urandom(1 << 20)
        status, _, body = request("POST", public + "/upload", upload, {"Content-Type": "application/octet-stream"})
        assert status == 200 and json.loads(body)["size"] == len(upload), f"1 MiB upload: {status} {body[:200]!r}"
        log("a 1 MiB upload reached the app whole")

        # Warm both nodes: every later request is a HIT on whichever node answers.
        for _ in range(4):
            request("GET", public + "/hello")
        app.hello = "hello v2"
        status, headers, body = request("GET", public + "/hello")
        assert (status, body) == (200, "hello v1") and headers.get("X-Cache") == "HIT", \
            f"cached /hello: {status} {body!r} {headers.get('X-Cache')}"

        token = open(os.path.join(run_dir, "admin-token")).read().strip()
        auth = {"Authorization": f"Bearer {token}"}
        status, _, body = request("POST", public + "/admin/purge?path=/hello", b"", auth)
        assert status == 404, f"purge through the public port: {status} {body!r}"
        status, _, body = request("POST", admin + "/admin/purge?path=/hello", b"", auth)
        assert status == 200, f"purge through the admin port: {status} {body!r}"
        # The other node drops its 1 s hot copy when it hears the purge
        # announcement (milliseconds; at most the hot window, docs/cache.md).
        wait_for("/hello to show the app's new content on both nodes", lambda: all(
            request("GET", public + "/hello")[2] == "hello v2" for _ in range(4)), 3)
        log("HIT, then purged through the admin port on every node (the public port answered 404)")

        webtier("scale", "3")  # WEBNODE_ORIGIN is not in this environment: the run dir remembers it
        port = open(os.path.join(run_dir, "ports", "webnode-3")).read().strip()
        status, _, body = request("GET", f"http://127.0.0.1:{port}/")
        assert (status, body) == (200, "my app root"), f"webnode-3 after scale: {status} {body!r}"
        log("scale started webnode-3 serving the same app")

        # The upgrade path (docs/operating.md): roll every node under load.
        stop, counts = threading.Event(), {"ok": 0, "failed": 0}

        def traffic():
            while not stop.is_set():
                try:
                    ok_answer = request("GET", public + "/", timeout=5)[0] == 200
                except OSError:
                    ok_answer = False
                counts["ok" if ok_answer else "failed"] += 1

        client = threading.Thread(target=traffic)
        client.start()
        try:
            webtier("roll")
        finally:
            stop.set()
            client.join()
        assert counts["failed"] == 0 and counts["ok"] > 0, f"requests during roll: {counts}"
        log(f"roll restarted every node under load: {counts['ok']} requests, none failed")
        ok = True
        log("PASSED")
        return 0
    finally:
        if not ok:
            webtier("logs", check=False)
        webtier("down", "--purge", check=False)
        shutil.rmtree(run_dir, ignore_errors=True)
        app.shutdown()


if __name__ == "__main__":
    import signal
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signo, frame: sys.exit(128 + signo))
    sys.exit(main())
