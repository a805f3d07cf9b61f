#!/usr/bin/env python3
"""Brings the tier up on loopback (deploy/local/webtier, free ports, a temp run
directory), drives traffic through the balancer and checks, against the live
Prometheus, that
  - Prometheus discovers the web nodes from ZooKeeper (serverset_sd_configs)
    and follows `webtier scale` up and down;
  - every rule in monitoring/prometheus/rules evaluates without error;
  - every panel query of every dashboard in monitoring/grafana/dashboards
    returns data (template variables resolved as Grafana would).
Exits 77 (ctest SKIP) when build/bin/webnode is missing, and after the
webnode-only part when build/bin/balancer is missing.

  tests/monitoring/live_dashboards_test.py [--bin-dir DIR] [--keep]
"""
import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WEBTIER = os.path.join(REPO, "deploy", "local", "webtier")
DASHBOARDS = os.path.join(REPO, "monitoring", "grafana", "dashboards")
SKIP = 77


def log(msg):
    print(f"[live-dashboards] {msg}", flush=True)


def _ephemeral_range():
    try:
        lo, hi = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


_taken = set()


def free_port():
    """A free loopback port below the ephemeral range, so that no outgoing
    connection grabs it between now and the bind (the script starts nodes
    on consecutive ports: leave room for 8 above it)."""
    lo, _ = _ephemeral_range()
    for _ in range(200):
        port = random.randint(20000, max(20001, lo - 20))
        if any(abs(port - t) < 10 for t in _taken):
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _taken.add(port)
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Prometheus:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path, **params):
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        status, _, body = http_get(url, timeout=10)
        doc = json.loads(body)
        if doc.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {doc.get('errorType')}: {doc.get('error')}")
        return doc["data"]

    def query(self, expr):
        return self.api("query", query=expr, time=f"{time.time():.3f}")

    def discovered(self):
        return sum(1 for t in self.api("targets", state="active")["activeTargets"]
                   if t["labels"].get("job") == "webnode")


def wait_for(what, fn, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


class Traffic(threading.Thread):
    """Steady mixed traffic: greetings, cacheable primes (repeats hit), misses,
    uncacheable time, short sleeps, and a few 404s."""

    def __init__(self, base):
        super().__init__(daemon=True)
        self.base, self.stop, self.sent, self.failed = base, threading.Event(), 0, 0

    def run(self):
        paths = ["/", "/api/primes/1000", "/api/primes/2000", "/api/time", "/api/sleep/5", "/no/such/path"]
        while not self.stop.is_set():
            for p in paths + [f"/api/primes/{random.randint(3000, 90000)}"]:
                try:
                    code, _, _ = http_get(self.base + p)
                    self.sent += 1
                    if code >= 500:
                        self.failed += 1
                except Exception:
                    self.failed += 1
            time.sleep(0.02)


def substitute(expr, variables):
    expr = expr.replace("$__rate_interval", "20s").replace("$__interval", "5s").replace("$__range", "5m")
    for name, value in variables.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return expr


def has_data(result):
    if result["resultType"] != "vector" or not result["result"]:
        return False, "empty result"
    values = [s["value"][1] for s in result["result"]]
    if all(v in ("NaN", "+Inf", "-Inf") for v in values):
        return False, f"only {values}"
    return True, f"{len(values)} series"


def check_dashboards(prom, balancer_present, timeout):
    """Returns (checked, skipped, failures)."""
    skipped, failures, queries = 0, [], []
    for name in sorted(os.listdir(DASHBOARDS)):
        if not name.endswith(".json"):
            continue
        board = json.load(open(os.path.join(DASHBOARDS, name)))
        variables = {}
        for var in board.get("templating", {}).get("list", []):
            if var.get("type") == "datasource":
                continue  # the one Prometheus this test queries
            q = var.get("definition") or var["query"]["query"]
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
            assert m, f"{name}: variable {var['name']}: unsupported query {q}"
            # The series present now: a node scaled down a moment ago still
            # has series in the last minute, but none of its panels has data
            # any more (its series went stale when its target left).
            current = [r["metric"] for r in prom.query(m.group(1))["result"]]
            values = sorted({s[m.group(2)] for s in current if m.group(2) in s})
            if len(values) < 1:
                failures.append(f"{name}: variable ${var['name']} ({q}) has no values")
                continue
            variables[var["name"]] = values[0]
            log(f"{name}: ${var['name']} = {values[0]} (of {values})")
        panels = [p for p in board["panels"] if p.get("type") != "row"]
        for row in board["panels"]:
            panels += row.get("panels", []) if row.get("type") == "row" else []
        for panel in panels:
            for target in panel.get("targets", []):
                expr = substitute(target["expr"], variables)
                if not balancer_present and "balancer_" in expr:
                    skipped += 1
                    continue
                queries.append((f"{name} / {panel['title']} / {target['refId']}", expr))
    # Data may lag a scrape or two behind: retry what is empty until the deadline.
    pending, deadline = queries, time.time() + timeout
    while True:
        still = []
        for label, expr in pending:
            try:
                ok, why = has_data(prom.query(expr))
            except RuntimeError as e:
                ok, why = False, str(e)
            if ok:
                log(f"ok   {label}: {why}")
            else:
                still.append((label, expr, why))
        if not still or time.time() > deadline:
            break
        pending = [(l, e) for l, e, _ in still]
        time.sleep(2)
    for label, expr, why in still:
        log(f"FAIL {label}: {why}\n       {expr}")
        failures.append(f"{label}: {why}: {expr}")
    checked = len(queries)
    return checked, skipped, failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.environ.get("WEBTIER_BIN_DIR", os.path.join(REPO, "build", "bin")))
    ap.add_argument("--keep", action="store_true", help="leave the tier running (prints the run dir)")
    args = ap.parse_args()
    bin_dir = os.path.abspath(args.bin_dir)
    if not os.access(os.path.join(bin_dir, "webnode"), os.X_OK):
        log(f"SKIP: {bin_dir}/webnode is not built")
        return SKIP
    for tool in ("prometheus", "redis-server", "java", "curl"):
        if not shutil.which(tool):
            log(f"SKIP: {tool} is not installed (scripts/install-deps.sh)")
            return SKIP
    balancer_present = os.access(os.path.join(bin_dir, "balancer"), os.X_OK)

    run_dir = tempfile.mkdtemp(prefix="webtier-live-dashboards-")
    ports = {k: free_port() for k in ("ZK", "REDIS", "BALANCER", "ADMIN", "PROMETHEUS", "REDIS_EXPORTER")}
    env = dict(os.environ, WEBTIER_RUN_DIR=run_dir, WEBTIER_BIN_DIR=bin_dir, WEBTIER_SKIP_INSTALL="1",
               WEBTIER_SKIP_BUILD="1", WEBTIER_NO_DEMO="1", WEBTIER_SCRAPE_INTERVAL="1s", WEBTIER_NODES="3",
               WEBTIER_WEBNODE_PORT=str(free_port()), WEBTIER_ZK_PATH="/webtier-test/nodes",
               **{f"WEBTIER_{k}_PORT": str(v) for k, v in ports.items()})

    def webtier(*argv, check=True):
        log("$ deploy/local/webtier " + " ".join(argv))
        r = subprocess.run([WEBTIER, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(r.stdout, end="", flush=True)
        if check and r.returncode:
            raise AssertionError(f"webtier {' '.join(argv)} exited {r.returncode}")
        return r.stdout

    traffic = None
    ok = False
    try:
        webtier("up")
        prom = Prometheus(ports["PROMETHEUS"])
        base = f"http://127.0.0.1:{ports['BALANCER']}" if balancer_present else \
            f"http://127.0.0.1:{open(os.path.join(run_dir, 'ports', 'webnode-1')).read().strip()}"
        traffic = Traffic(base)
        traffic.start()

        wait_for("Prometheus to discover 3 web nodes in ZooKeeper", lambda: prom.discovered() == 3, 30)
        log("Prometheus discovered 3 web nodes through serverset_sd_configs")
        webtier("scale", "4")
        wait_for("4 discovered web nodes", lambda: prom.discovered() == 4, 30)
        webtier("scale", "3")
        wait_for("3 discovered web nodes", lambda: prom.discovered() == 3, 30)
        log("Prometheus followed scale 3 -> 4 -> 3")
        wait_for("every web node target up", lambda: all(
            t["health"] == "up" for t in prom.api("targets", state="active")["activeTargets"]
            if t["labels"]["job"] == "webnode"), 30)

        time.sleep(25)  # a few rate windows of data at 1s scrapes
        checked, skipped, failures = check_dashboards(prom, balancer_present, timeout=20)

        groups = prom.api("rules")["groups"]
        bad_rules = [f"{g['name']}/{r.get('name')}: {r.get('lastError')}" for g in groups for r in g["rules"]
                     if r.get("health") != "ok"]
        nrules = sum(len(g["rules"]) for g in groups)
        if nrules == 0:
            bad_rules.append("no rules loaded")
        for b in bad_rules:
            log(f"FAIL rule {b}")
        log(f"{nrules} rules loaded, {len(bad_rules)} unhealthy")
        log(f"traffic: {traffic.sent} requests, {traffic.failed} failed (5xx or connection errors)")
        failures += bad_rules
        if balancer_present and traffic.failed:
            failures.append(f"{traffic.failed} requests through the balancer failed during scale 3 -> 4 -> 3")
        if failures:
            log(f"FAILED: {len(failures)} of {checked} panel queries/rules")
            return 1
        ok = True
        if skipped:
            log(f"SKIP (partial): {checked} panel queries return data; {skipped} that need the balancer "
                f"were not checked because {bin_dir}/balancer is not built")
            return SKIP
        log(f"PASSED: all {checked} panel queries return data")
        ok = True
        return 0
    finally:
        if traffic:
            traffic.stop.set()
        if not ok:
            webtier("logs", check=False)
        if args.keep:
            log(f"left running: WEBTIER_RUN_DIR={run_dir} deploy/local/webtier status")
        else:
            webtier("down", "--purge", check=False)
            shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    # ctest's timeout and Ctrl-C: still tear the tier down (finally: in main).
    import signal
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signo, frame: sys.exit(128 + signo))
    sys.exit(main())
