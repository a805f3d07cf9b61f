#!/usr/bin/env bash
# Offline checks of the deploy and monitoring files (no servers started):
#   static_checks.sh prometheus_config|alert_rules|alert_rule_tests|dashboards|
#                    systemd_units|compose_file
# Exit 77 (ctest SKIP) when the tool a check needs is not installed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PROM=$REPO/monitoring/prometheus
skip() { echo "SKIP: $*"; exit 77; }
need() { command -v "$1" >/dev/null || skip "$1 is not installed (scripts/install-deps.sh)"; }

case ${1:-} in
  prometheus_config)
    need promtool
    promtool check config --syntax-only "$PROM/prometheus.yml" "$PROM/prometheus-zk-ensemble.yml"
    ;;
  alert_rules)
    need promtool
    promtool check rules "$PROM"/rules/*.yml
    ;;
  alert_rule_tests)
    need promtool
    promtool test rules "$PROM"/tests/*.yml
    ;;
  dashboards)
    python3 - "$REPO" <<'PY'
import glob, json, os, re, sys
repo = sys.argv[1]
errors = []
prov = open(f"{repo}/monitoring/grafana/provisioning/datasources/prometheus.yml").read()
ds_uids = set(re.findall(r"^\s+uid:\s*(\S+)", prov, re.M))
uids = set()
boards = sorted(glob.glob(f"{repo}/monitoring/grafana/dashboards/*.json"))
if not boards:
    errors.append("no dashboards")
for path in boards:
    name = os.path.basename(path)
    b = json.load(open(path))
    if b.get("uid") in uids: errors.append(f"{name}: duplicate uid {b.get('uid')}")
    uids.add(b.get("uid"))
    variables = {v["name"] for v in b.get("templating", {}).get("list", [])}
    # Panels name their data source through a `datasource` variable, so the
    # provisioned uid may be anything; without one they must name a provisioned uid.
    ds_vars = {"${%s}" % v["name"] for v in b.get("templating", {}).get("list", []) if v.get("type") == "datasource"}
    if not ds_vars: errors.append(f"{name}: no datasource variable: panels would depend on the provisioned uid")
    ids, count = set(), 0
    for p in b["panels"]:
        if p["id"] in ids: errors.append(f"{name}: duplicate panel id {p['id']}")
        ids.add(p["id"])
        g = p["gridPos"]
        if g["x"] + g["w"] > 24: errors.append(f"{name}: panel {p['title']} wider than the grid")
        if p["type"] == "row": continue
        if p.get("datasource", {}).get("uid") not in ds_uids | ds_vars:
            errors.append(f"{name}: {p['title']}: datasource neither a variable nor a provisioned uid ({ds_uids})")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") not in ds_uids | ds_vars:
                errors.append(f"{name}: {p['title']}: a query's datasource is neither a variable nor a provisioned uid")
        if not p.get("targets"): errors.append(f"{name}: {p['title']}: no queries")
        for t in p.get("targets", []):
            count += 1
            expr = t.get("expr", "")
            if not expr.strip(): errors.append(f"{name}: {p['title']}: empty query")
            if expr.count("(") != expr.count(")"): errors.append(f"{name}: {p['title']}: unbalanced parentheses")
            for v in re.findall(r"\$\{?(\w+)", expr):
                if not v.startswith("__") and v not in variables:
                    errors.append(f"{name}: {p['title']}: undefined variable ${v}")
    print(f"{name}: {len(ids)} panels, {count} queries")
for e in errors: print("ERROR", e)
sys.exit(1 if errors else 0)
PY
    ;;
  systemd_units)
    need systemd-analyze
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/etc"
    # Verify the units as written, except that the programs and env files
    # need not be installed here: point them at stand-ins.
    touch "$tmp/etc/webnode.env" "$tmp/etc/balancer.env"
    for f in "$REPO"/deploy/systemd/*.service; do
      sed -e "s|^ExecStart=/usr/local/bin/[a-z]*|ExecStart=/bin/true|" \
          -e "s|/etc/webtier/|$tmp/etc/|g" "$f" >"$tmp/$(basename "$f")"
    done
    cp "$tmp/webnode@.service" "$tmp/webnode@8081.service"
    units=()
    for f in "$tmp"/*.service; do [[ $f == *@.service ]] || units+=("$f"); done
    out=$(systemd-analyze verify "${units[@]}" 2>&1) || { echo "$out"; exit 1; }
    # verify only warns about unknown or bad settings: treat any output as failure.
    rest=$(grep -v -e 'Failed to .*cgroup' -e 'Unit is bound to inactive unit' <<<"$out" || true)
    if [[ -n $rest ]]; then echo "$out"; exit 1; fi
    printf 'verified: %s\n' "${units[@]##*/}"
    ;;
  compose_file)
    python3 -c 'import yaml' 2>/dev/null || skip "python3-yaml is not installed"
    python3 - "$REPO" <<'PY'
import os, sys, yaml
repo = sys.argv[1]
deploy = f"{repo}/deploy"
errors = []
c = yaml.safe_load(open(f"{deploy}/docker-compose.yml"))
s = c["services"]
want = {"zk-credential", "zookeeper", "redis", "webnode", "balancer", "prometheus", "grafana", "redis-exporter"}
if set(s) != want: errors.append(f"services {sorted(s)} != {sorted(want)}")
w = s["webnode"]
for key in ("container_name", "ports", "hostname"):
    if key in w: errors.append(f"webnode must not set {key} (it is scaled)")
if "8000" not in str(s["balancer"].get("ports")): errors.append("balancer must publish 8000")
# ZooKeeper access control: both programs read the credential zk-credential makes.
for name, prefix in (("webnode", "WEBNODE"), ("balancer", "BALANCER")):
    f = s[name]["environment"].get(f"{prefix}_ZK_AUTH_FILE", "")
    if not f or not any(v.startswith("zk-auth:") and v.endswith(":ro") and f.startswith(v.split(":")[1]) for v in s[name].get("volumes", [])):
        errors.append(f"{name}: {prefix}_ZK_AUTH_FILE must name a file of the read-only zk-auth volume")
for name, svc in s.items():
    if svc.get("restart") not in ("always", "unless-stopped", "on-failure"): errors.append(f"{name}: no restart policy")
    for v in svc.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith("."):
            if not os.path.exists(os.path.join(deploy, src)): errors.append(f"{name}: {src} does not exist")
    b = svc.get("build")
    if b and not os.path.exists(os.path.join(deploy, b["context"], b["dockerfile"])):
        errors.append(f"{name}: {b['dockerfile']} not found")
e = yaml.safe_load(open(f"{deploy}/docker-compose.zk-ensemble.yml"))
for z in ("zookeeper", "zookeeper-2", "zookeeper-3"):
    if "ZOO_SERVERS" not in e["services"][z]["environment"]: errors.append(f"ensemble: {z} has no ZOO_SERVERS")
for v in e["services"]["prometheus"]["volumes"]:
    if not os.path.exists(os.path.join(deploy, v.split(":")[0])): errors.append(f"ensemble: {v} missing")
h = yaml.safe_load(open(f"{deploy}/docker-compose.hosts.yml"))["services"]
hw = h["webnode"]
if hw.get("network_mode") != "host": errors.append("hosts: webnode must use the host's network")
if not hw["environment"].get("WEBNODE_LISTEN", "").endswith(":0"): errors.append("hosts: webnode must listen on port 0")
if "WEBTIER_HOST_IP" not in hw["environment"].get("WEBNODE_ADVERTISE", ""): errors.append("hosts: webnode must advertise WEBTIER_HOST_IP")
for name, svc in h.items():
    if name not in s: errors.append(f"hosts: {name} is no service of docker-compose.yml")
    for k, v in svc.get("environment", {}).items():
        if k.endswith("_ZK") and "WEBTIER_ZK" not in v: errors.append(f"hosts: {name} {k} must come from WEBTIER_ZK")
# Redis failover override: a replica of redis, 3 Sentinels monitoring it, web nodes asking them.
ha = yaml.safe_load(open(f"{deploy}/docker-compose.redis-ha.yml"))
hs = ha["services"]
sentinels = [f"sentinel-{i}" for i in (1, 2, 3)]
for name in ["redis-replica"] + sentinels:
    if name not in hs: errors.append(f"redis-ha: no service {name}"); continue
    if hs[name].get("restart") not in ("always", "unless-stopped", "on-failure"): errors.append(f"redis-ha: {name}: no restart policy")
    if not hs[name].get("image", "").startswith("redis:"): errors.append(f"redis-ha: {name}: not a redis image")
if "--replicaof" not in hs.get("redis-replica", {}).get("command", []): errors.append("redis-ha: redis-replica has no --replicaof")
for name in sentinels:
    svc = hs.get(name, {})
    cmd = " ".join(svc.get("command", []))
    if "sentinel monitor webtier redis 6379 2" not in cmd: errors.append(f"redis-ha: {name} does not monitor redis as webtier (quorum 2)")
    vols = [v.split(":")[0] for v in svc.get("volumes", [])]
    if not vols or vols[0] not in (ha.get("volumes") or {}): errors.append(f"redis-ha: {name}: Sentinel's config needs a declared volume")
env = hs.get("webnode", {}).get("environment", {})
listed = [x.split(":")[0] for x in str(env.get("WEBNODE_REDIS_SENTINEL", "")).split(",")]
if sorted(listed) != sentinels: errors.append(f"redis-ha: WEBNODE_REDIS_SENTINEL lists {listed}")
for name in hs:
    if name not in s and "image" not in hs[name]: errors.append(f"redis-ha: {name} is neither in the main file nor has an image")
# Your-app example (docs/your-app.md): an app service the web nodes wait for;
# paths resolve from deploy/, the first file's directory.
ma = yaml.safe_load(open(f"{deploy}/examples/my-app.yml"))["services"]
app = ma.get("app", {})
if app.get("restart") not in ("always", "unless-stopped", "on-failure"): errors.append("my-app: app has no restart policy")
if not os.path.exists(os.path.join(deploy, app.get("build", {}).get("context", "?"), "Dockerfile")):
    errors.append("my-app: the app's build context has no Dockerfile")
if "app" not in ma.get("webnode", {}).get("depends_on", []): errors.append("my-app: webnode does not depend on app")
for name in ma:
    if name != "app" and name not in s: errors.append(f"my-app: {name} is no service of docker-compose.yml")
for e_ in errors: print("ERROR", e_)
print(f"docker-compose.yml: {len(s)} services; ensemble, hosts, redis-ha and my-app overrides ok" if not errors else "")
sys.exit(1 if errors else 0)
PY
    ;;
  *)
    echo "usage: $0 prometheus_config|alert_rules|alert_rule_tests|dashboards|systemd_units|compose_file" >&2
    exit 2
    ;;
esac
