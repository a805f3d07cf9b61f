"""Test-only Grafana stand-in: reads /etc/grafana/provisioning like Grafana
does, fails at start if a datasource or dashboard file is broken, and answers
GET /api/health, /api/search and /api/dashboards/uid/<uid> on :3000."""
import glob
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

PROV = os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning")


def load():
    datasources, dashboards = [], {}
    for f in sorted(glob.glob(f"{PROV}/datasources/*.y*ml")):
        datasources += yaml.safe_load(open(f)).get("datasources", [])
    for f in sorted(glob.glob(f"{PROV}/dashboards/*.y*ml")):
        for provider in yaml.safe_load(open(f)).get("providers", []):
            path = provider["options"]["path"]
            for d in sorted(glob.glob(f"{path}/**/*.json", recursive=True)):
                board = json.load(open(d))
                dashboards[board["uid"]] = board
    if not datasources or not dashboards:
        sys.exit(f"grafana-stub: no datasources ({len(datasources)}) or dashboards ({len(dashboards)}) under {PROV}")
    return datasources, dashboards


DATASOURCES, DASHBOARDS = load()
print(f"grafana-stub: {len(DATASOURCES)} datasource(s), dashboards {sorted(DASHBOARDS)}", flush=True)


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/api/health":
            return self.reply(200, {"database": "ok", "version": "stand-in"})
        if self.path.startswith("/api/search"):
            return self.reply(200, [{"uid": u, "title": d.get("title"), "type": "dash-db"} for u, d in DASHBOARDS.items()])
        if self.path == "/api/datasources":
            return self.reply(200, DATASOURCES)
        if self.path.startswith("/api/dashboards/uid/"):
            uid = self.path.rsplit("/", 1)[1]
            if uid in DASHBOARDS:
                return self.reply(200, {"dashboard": DASHBOARDS[uid]})
        return self.reply(404, {"message": "not found"})

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", 3000), Handler).serve_forever()
