#!/usr/bin/env python3
"""Checks the example app (deploy/examples/my-app.yml) behind a running tier,
through the balancer, the way docs/your-app.md describes it:
  - GET / reaches the app, which saw the client's Host and Accept-Encoding and
    an X-Forwarded-For; the next GET / is a cache HIT;
  - a 1 MiB POST gets through and the app received all of it;
  - /admin/purge is refused on the public port (404), refused by the nodes
    without the admin token or with a wrong one (401), and with it purges
    through the balancer's admin port: the next GET is a MISS.
One line per check; exits 1 at the first failure. deploy/podman/e2e.sh runs
it; it works the same against a Docker stack:

  deploy/examples/check-my-app.py http://127.0.0.1:8000 http://127.0.0.1:9000 TOKEN
"""
import gzip
import json
import sys
import time
import urllib.error
import urllib.request

HOT_WINDOW_S = 1.0  # a node's hot copy may answer this long after a purge (docs/cache.md)


def log(msg):
    print(f"[my-app] {msg}", flush=True)


def fail(msg):
    log(f"FAIL: {msg}")
    sys.exit(1)


def request(method, url, body=None, headers=None):
    """(status, headers, body bytes); an HTTP error status is an answer, not an exception."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            status, head, data = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, head, data = e.code, e.headers, e.read()
    if head.get("Content-Encoding") == "gzip":
        data = gzip.decompress(data)
    return status, head, data


def echo(status, head, data, what):
    """The app's JSON echo, or a failure naming what was asked."""
    try:
        seen = json.loads(data)
    except ValueError:
        seen = {}
    if status != 200 or seen.get("app") != "example":
        fail(f"{what}: {status} {data[:200]!r} (not the app's echo)")
    return seen


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    public, admin, token = sys.argv[1:]
    client = {"Host": "shop.example", "Accept-Encoding": "gzip"}

    status, head, data = request("GET", public + "/", headers=client)
    seen = echo(status, head, data, "GET /")
    log(f"GET / reaches the app: {status}, X-Cache {head.get('X-Cache')}, served by {head.get('X-Served-By')}")
    if seen["host"] != "shop.example" or seen["accept_encoding"] != "gzip" or not seen["x_forwarded_for"]:
        fail(f"the app saw {seen}")
    log(f"the app saw Host {seen['host']}, Accept-Encoding {seen['accept_encoding']}, "
        f"X-Forwarded-For {seen['x_forwarded_for']}")

    status, head, again = request("GET", public + "/", headers=client)
    if head.get("X-Cache") != "HIT" or again != data:
        fail(f"second GET /: {status}, X-Cache {head.get('X-Cache')}, same body: {again == data}")
    log(f"second GET / is a cache HIT (served by {head.get('X-Served-By')})")

    upload = bytes(1 << 20)
    status, head, data = request("POST", public + "/upload", upload, {"Content-Type": "application/octet-stream"})
    seen = echo(status, head, data, "1 MiB POST /upload")
    if seen["method"] != "POST" or seen["body_length"] != len(upload):
        fail(f"1 MiB POST: the app saw {seen}")
    log(f"1 MiB POST /upload: {status}, the app received {seen['body_length']} bytes")

    purge = "/admin/purge?path=/"
    auth = {"Authorization": f"Bearer {token}"}
    status, _, data = request("POST", public + purge, b"", auth)
    if status != 404:
        fail(f"POST {purge} on the public port: {status} {data[:200]!r}, want 404")
    log(f"POST {purge} on the public port (with the token): {status}")
    for what, headers in (("without the token", {}), ("with a wrong token", {"Authorization": "Bearer wrong"})):
        status, _, data = request("POST", admin + purge, b"", headers)
        if status != 401:
            fail(f"POST {purge} on the admin port {what}: {status} {data[:200]!r}, want 401")
        log(f"POST {purge} on the admin port {what}: {status} from the node")
    status, _, data = request("POST", admin + purge, b"", auth)
    if not 200 <= status < 300:
        fail(f"POST {purge} on the admin port with the token: {status} {data[:200]!r}")
    purged = time.monotonic()
    log(f"POST {purge} on the admin port with the token: {status}")

    # The entry in Redis is gone; another node's hot copy may still answer
    # HIT within its window, never after it.
    hot_hits = 0
    while True:
        status, head, data = request("GET", public + "/", headers=client)
        echo(status, head, data, "GET / after the purge")
        if head.get("X-Cache") == "MISS":
            break
        if head.get("X-Cache") != "HIT" or time.monotonic() - purged > HOT_WINDOW_S + 0.5:
            fail(f"GET / after the purge: X-Cache {head.get('X-Cache')}, want MISS")
        hot_hits += 1
        time.sleep(0.1)
    log(f"GET / after the purge is a MISS (after {hot_hits} hot-copy HITs)")
    log("PASSED")


if __name__ == "__main__":
    main()
