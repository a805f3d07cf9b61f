#!/usr/bin/env bash
# End-to-end test of deploy/docker-compose.yml with podman + podman-compose,
# for machines without Docker or access to Docker Hub:
#   1. debian:bookworm-slim from debootstrap (build-base.sh) and test-only
#      stand-ins for the official images (build-standins.sh);
#   2. the webnode and balancer images from deploy/docker/*.Dockerfile, and
#      the example app's (deploy/examples/app; rebuilt when its files change);
#   3. the stack up with 3 web nodes, then 5, then 2, all under steady load;
#      at each step the balancer's /status and Prometheus' targets must show
#      exactly that many members; not one request may fail;
#   4. docs/your-app.md's compose row, literally: the stack again, fresh, with
#      deploy/examples/my-app.yml (the example echo app as service `app`),
#      WEBNODE_ORIGIN=http://app:3000 and an admin token; through the
#      balancer's published ports deploy/examples/check-my-app.py checks that
#      GET / reaches the app with the client's Host, Accept-Encoding and an
#      X-Forwarded-For, the next GET is a HIT, a 1 MiB POST arrives whole, and
#      purge is 404 on the public port, 401 without the token or with a wrong
#      one, and with it (admin port) makes the next GET a MISS (in step 3,
#      nodes without a token answered it 403);
#   5. tear down (unless --keep).
#
#   sudo deploy/podman/e2e.sh [--keep] [--skip-build] [--jobs N] [--ensemble]
#
# Needs root, podman, podman-compose, debootstrap, runc (apt-get install).
# Host ports are picked free; nothing uses 8000/9000/9090/3000.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
project=webtier-e2e
keep=0 skip_build=0 jobs=2 ensemble=0
while (($#)); do
  case $1 in
    --keep) keep=1 ;;
    --skip-build) skip_build=1 ;;
    --jobs) jobs=$2; shift ;;
    --ensemble) ensemble=1 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
  shift
done

log() { printf '[e2e %s] %s\n' "$(date -u +%T)" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

for tool in podman podman-compose debootstrap runc curl python3; do
  command -v "$tool" >/dev/null || fail "$tool missing: apt-get install podman podman-compose debootstrap runc curl python3"
done
[[ $(id -u) == 0 ]] || fail "run as root (debootstrap, podman networks)"
mkdir -p "$here/.cache"
exec 8>"$here/.cache/e2e.lock"
flock -n 8 || { log "another e2e.sh run is active; waiting for it"; flock 8; }
# Containers (conmon) must not inherit the lock.
podman() { command podman "$@" 8>&-; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export WEBTIER_HTTP_PORT=${WEBTIER_HTTP_PORT:-$(free_port)}
export WEBTIER_ADMIN_PORT=${WEBTIER_ADMIN_PORT:-$(free_port)}
export WEBTIER_PROMETHEUS_PORT=${WEBTIER_PROMETHEUS_PORT:-$(free_port)}
export WEBTIER_GRAFANA_PORT=${WEBTIER_GRAFANA_PORT:-$(free_port)}
files=(-f "$repo/deploy/docker-compose.yml")
((ensemble)) && files+=(-f "$repo/deploy/docker-compose.zk-ensemble.yml")
compose() { podman-compose -p "$project" "${files[@]}" "$@" 8>&-; }

# ---------------------------------------------------------------- images
"$here/build-standins.sh" 8>&-

build_images() {
  # A clean build context: only what the Dockerfiles copy (no build trees).
  local ctx=$here/.cache/context
  rm -rf "$ctx"
  mkdir -p "$ctx/scripts" "$ctx/deploy"
  cp -a "$repo/CMakeLists.txt" "$repo/common" "$repo/monitoring" "$repo/cache" "$repo/webnode" "$repo/balancer" "$ctx/"
  cp -a "$repo/scripts/install-deps.sh" "$ctx/scripts/"
  cp -a "$repo/deploy/docker" "$ctx/deploy/"
  local prog
  for prog in webnode balancer; do
    log "building webtier/$prog (JOBS=$jobs; log $here/.cache/build-$prog.log)"
    if ! podman build --pull=never --format docker --build-arg JOBS="$jobs" \
      -f "$ctx/deploy/docker/$prog.Dockerfile" -t "webtier/$prog:latest" "$ctx" >"$here/.cache/build-$prog.log" 2>&1; then
      tail -n 30 "$here/.cache/build-$prog.log"
      fail "image webtier/$prog did not build"
    fi
  done
  podman image ls --filter reference='webtier/*' --format '{{.Repository}}:{{.Tag}} {{.Size}}'
}
if ((skip_build)) && podman image exists webtier/webnode:latest && podman image exists webtier/balancer:latest; then
  log "using existing webtier images (--skip-build)"
else
  build_images
fi

# The example app (deploy/examples/app): small and quick, so built here, and
# again only when its files change (a label holds their hash).
app_dir=$repo/deploy/examples/app
app_image=webtier/example-app:latest
app_hash=$(cd "$app_dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [[ $(podman image inspect --format '{{index .Labels "webtier.source"}}' "$app_image" 2>/dev/null) == "$app_hash" ]]; then
  log "image $app_image present"
else
  log "building $app_image (log $here/.cache/build-example-app.log)"
  podman build --pull=never --format docker --label webtier.source="$app_hash" -t "$app_image" "$app_dir" \
    >"$here/.cache/build-example-app.log" 2>&1 || { tail -n 30 "$here/.cache/build-example-app.log"; fail "image $app_image did not build"; }
fi

# ---------------------------------------------------------------- stack
remove_project_containers() {
  local ids=()
  mapfile -t ids < <(podman ps -aq --filter "label=io.podman.compose.project=$project")
  ((${#ids[@]} == 0)) || podman rm -f -t 5 "${ids[@]}" >>"$here/.cache/podman.log" 2>&1 || true
}
# Containers (the app's too), volumes (ZooKeeper's, so no member outlives
# its stack) and the network.
# (podman rm first: it stops them all at once; compose down, one by one.)
teardown_stack() {
  remove_project_containers
  WEBNODE_REPLICAS=5 compose down -v >/dev/null 2>&1 || true
  podman network rm -f "${project}_default" >/dev/null 2>&1 || true
}
cleanup() {
  local rc=$?
  [[ -n ${load_pid:-} ]] && kill "$load_pid" 2>/dev/null
  if ((keep)); then
    log "left running (project $project): balancer http://127.0.0.1:$WEBTIER_HTTP_PORT  prometheus http://127.0.0.1:$WEBTIER_PROMETHEUS_PORT"
  else
    log "tearing down"
    teardown_stack
  fi
  exit "$rc"
}
trap cleanup EXIT

# podman-compose 1.0 ignores --scale; it honours deploy.replicas, which the
# compose file takes from WEBNODE_REPLICAS. Scaling down = SIGTERM the
# highest-numbered containers and remove them, as `docker compose --scale` does.
scale() {
  local n=$1 have
  have=$(podman ps -q --filter "label=io.podman.compose.project=$project" --filter label=com.docker.compose.service=webnode | wc -l)
  if ((n > have)); then
    WEBNODE_REPLICAS=$n compose up -d --no-build webnode >"$here/.cache/compose-up-$n.log" 2>&1 || true
  else
    local i names=()
    for ((i = have; i > n; i--)); do names+=("${project}_webnode_$i"); done
    # (podman without systemd logs errors about healthcheck timers: noise)
    podman stop -t 15 "${names[@]}" >>"$here/.cache/podman.log" 2>&1
    podman rm "${names[@]}" >>"$here/.cache/podman.log" 2>&1
  fi
}

balancer_members() {
  curl -fsS -m 2 "http://127.0.0.1:$WEBTIER_ADMIN_PORT/status" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); m=d.get("members", []); print(sum(1 for x in m if str(x.get("state","healthy")).lower() in ("healthy","active","up")))' 2>/dev/null || echo -1
}
prometheus_members() {
  curl -fsS -m 2 "http://127.0.0.1:$WEBTIER_PROMETHEUS_PORT/api/v1/targets?state=active" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(1 for t in d["data"]["activeTargets"] if t["labels"]["job"]=="webnode" and t["health"]=="up"))' 2>/dev/null || echo -1
}
expect_members() {
  local n=$1 deadline=$((SECONDS + ${2:-90})) b p
  while :; do
    b=$(balancer_members) p=$(prometheus_members)
    [[ $b == "$n" && $p == "$n" ]] && { log "members: balancer $b, prometheus $p (want $n) ok"; return 0; }
    ((SECONDS < deadline)) || fail "members: balancer $b, prometheus $p, want $n"
    sleep 1
  done
}

if [[ -n $(podman ps -aq --filter "label=io.podman.compose.project=$project") ]]; then
  log "removing containers left by an earlier run"
  remove_project_containers
fi
# The passwords the compose files mount (deploy/secrets, kept between runs).
"$repo/deploy/compose-secrets.sh" >/dev/null || fail "deploy/compose-secrets.sh"
# compose up -d with N web nodes, then wait until all N serve.
stack_up() {
  local n=$1 out=$here/.cache/compose-up.log
  log "compose up ($n web nodes; http :$WEBTIER_HTTP_PORT admin :$WEBTIER_ADMIN_PORT prometheus :$WEBTIER_PROMETHEUS_PORT grafana :$WEBTIER_GRAFANA_PORT)"
  WEBNODE_REPLICAS=$n compose up -d --no-build >"$out" 2>&1 || { tail -n 30 "$out"; fail "compose up"; }
  podman ps --filter "label=io.podman.compose.project=$project" --format '{{.Names}}\t{{.Status}}'
  expect_members "$n" 180
}
stack_up 3
if ((ensemble)); then
  # The ensemble must have formed: one leader, two followers.
  modes=""
  for zk in zookeeper zookeeper-2 zookeeper-3; do
    modes+=$(podman exec "${project}_${zk}_1" bash -c \
      'exec 3<>/dev/tcp/127.0.0.1/2181; printf srvr >&3; cat <&3' 2>/dev/null | sed -n 's/^Mode: //p')" "
  done
  log "ZooKeeper modes: $modes"
  [[ $(grep -o leader <<<"$modes" | wc -l) == 1 && $(grep -o follower <<<"$modes" | wc -l) == 2 ]] ||
    fail "ensemble not formed (modes: $modes)"
fi

# ---------------------------------------------------------------- load
# Four closed-loop clients through the balancer; a failure is a 5xx answer
# or a transport error (404 is an answer: a web node without the demo app). Counts land in load.json on exit.
load_out=$here/.cache/load.json
rm -f "$load_out"
python3 - "$WEBTIER_HTTP_PORT" "$load_out" <<'PY' &
import json, signal, sys, threading, urllib.error, urllib.request
port, out = sys.argv[1], sys.argv[2]
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
stats = {"sent": 0, "failed": 0, "by_code": {}, "served_by": {}, "errors": []}
lock = threading.Lock()
def client(k):
    i = 0
    while not stop.is_set():
        i += 1
        path = ["/", f"/api/primes/{1000 + i % 50}", "/api/time"][i % 3]
        code, who, err = 0, "", ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                r.read(); code, who = r.status, r.headers.get("X-Served-By", "")
        except urllib.error.HTTPError as e:
            code, err = e.code, e.read()[:200].decode("utf-8", "replace")
        except Exception as e:
            err = repr(e)
        with lock:
            stats["sent"] += 1
            stats["by_code"][code] = stats["by_code"].get(code, 0) + 1
            if who: stats["served_by"][who] = stats["served_by"].get(who, 0) + 1
            if not (200 <= code < 300 or code == 404):
                stats["failed"] += 1
                if len(stats["errors"]) < 20: stats["errors"].append(f"{path}: {code} {err}")
threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
json.dump(stats, open(out, "w"), indent=1)
PY
load_pid=$!
sleep 5

log "scale 3 -> 5 under load"
scale 5
expect_members 5 120
sleep 5
log "scale 5 -> 2 under load (SIGTERM: deregister, drain)"
scale 2
expect_members 2 60
sleep 5

kill -TERM "$load_pid"
wait "$load_pid" || true
load_pid=""
python3 - "$load_out" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"[e2e] load: {s['sent']} requests, {s['failed']} failed, codes {s['by_code']}")
print(f"[e2e] served by {len(s['served_by'])} distinct web nodes: {s['served_by']}")
for e in s["errors"]: print("[e2e]   " + e)
sys.exit(1 if s["failed"] or s["sent"] == 0 else 0)
PY

# ---------------------------------------------------------------- monitoring
log "checking Prometheus targets and the Grafana provisioning"
curl -fsS "http://127.0.0.1:$WEBTIER_PROMETHEUS_PORT/api/v1/targets?state=active" | python3 -c '
import json, sys
t = json.load(sys.stdin)["data"]["activeTargets"]
jobs = {}
for x in t: jobs.setdefault(x["labels"]["job"], []).append(x["health"])
print("[e2e] prometheus targets:", {j: h for j, h in sorted(jobs.items())})
bad = [j for j in ("balancer", "redis", "webnode", "prometheus") if not jobs.get(j) or any(h != "up" for h in jobs[j])]
sys.exit(f"[e2e] targets not all up: {bad}" if bad else 0)'
curl -fsS "http://127.0.0.1:$WEBTIER_PROMETHEUS_PORT/api/v1/rules" | python3 -c '
import json, sys
g = json.load(sys.stdin)["data"]["groups"]
bad = [r["name"] for x in g for r in x["rules"] if r["health"] != "ok"]
n = sum(len(x["rules"]) for x in g)
print(f"[e2e] {n} rules loaded, unhealthy: {bad}")
sys.exit(1 if bad or not g else 0)'
curl -fsS "http://127.0.0.1:$WEBTIER_GRAFANA_PORT/api/search" | python3 -c '
import json, sys
uids = sorted(d["uid"] for d in json.load(sys.stdin))
print("[e2e] grafana (stand-in) dashboards:", uids)
sys.exit(0 if {"webtier-overview", "webtier-node"} <= set(uids) else 1)'
# Nodes without an admin token refuse the admin routes (docs/your-app.md).
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$WEBTIER_ADMIN_PORT/admin/purge?path=/")
log "POST /admin/purge on the admin port, no token configured on the nodes: $code"
[[ $code == 403 ]] || fail "want 403"

# ---------------------------------------------------------------- your app
# docs/your-app.md, compose row: a fresh stack (podman-compose 1.0.3 does not
# recreate running containers whose settings changed) with the override file,
# the origin and an admin token from the shell.
log "your app: the stack again with deploy/examples/my-app.yml and WEBNODE_ORIGIN=http://app:3000"
app_phase=$SECONDS
teardown_stack
files+=(-f "$repo/deploy/examples/my-app.yml")
WEBNODE_ORIGIN=http://app:3000 WEBNODE_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export WEBNODE_ORIGIN WEBNODE_ADMIN_TOKEN
stack_up 2
"$repo/deploy/examples/check-my-app.py" "http://127.0.0.1:$WEBTIER_HTTP_PORT" "http://127.0.0.1:$WEBTIER_ADMIN_PORT" \
  "$WEBNODE_ADMIN_TOKEN" || fail "your app behind the stack (deploy/examples/check-my-app.py)"
log "your-app phase took $((SECONDS - app_phase)) s"
log "PASSED"
