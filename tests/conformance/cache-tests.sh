#!/usr/bin/env bash
# The public HTTP caching conformance suite (http-tests/cache-tests, the suite behind
# cache-tests.fyi) against one webnode with its shipped defaults, in front of the suite's
# own origin server (--origin), with a real redis-server (no ZooKeeper: the node runs
# without one, registration retries in the background). Prints the scored table beside
# the nginx and Varnish reference results that come with the kit, and fails when passes
# drop below PASS_FLOOR or required failures rise above REQUIRED_FAIL_CEILING.
# The kit is not part of this repository: WEBTIER_CONFORMANCE_DIR names its folder (the
# one holding its cache-tests.sh). Without it, or without node/npm/redis-server, the test
# is skipped (exit 77, ctest SKIP_RETURN_CODE).
#   tests/conformance/cache-tests.sh [WEBNODE_BIN] [BALANCER_BIN]      # ctest -L conformance
# With BALANCER_BIN the suite goes through a balancer with its edge cache on
# (--edge-cache-bytes, following the node's Redis for invalidations) in front
# of the node, as a client of the tier would: it must pass at least as much.
# --edge-cache-min-uses 1 there: every storable answer goes into the edge
# cache at once, so the suite's second requests test the edge's own rules
# (by default a URL's answer is kept from its second request on).
# Env: PASS_FLOOR, REQUIRED_FAIL_CEILING, KEEP_RESULTS=file (copy of the raw results).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
kit=${WEBTIER_CONFORMANCE_DIR:-}
webnode=${1:-$repo/build/bin/webnode}
balancer=${2:-}
# Raised as the cache improves (docs/cache.md, "Conformance"): the measured figures, not targets.
PASS_FLOOR=${PASS_FLOOR:-310}
REQUIRED_FAIL_CEILING=${REQUIRED_FAIL_CEILING:-1}

skip() { echo "SKIP: $*"; exit 77; }
[[ -n $kit ]] || skip "WEBTIER_CONFORMANCE_DIR is not set (the conformance kit's folder)"
[[ -x $kit/cache-tests.sh ]] || skip "no conformance kit at $kit (WEBTIER_CONFORMANCE_DIR)"
for tool in node npm redis-server python3 curl; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done
[[ -x $webnode ]] || { echo "no webnode binary at $webnode (cmake --build build --target webnode)" >&2; exit 1; }
[[ -z $balancer || -x $balancer ]] || { echo "no balancer binary at $balancer" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # wait_http URL: any HTTP answer within 20 s
  local deadline=$((SECONDS + 20))
  until curl -sS -o /dev/null "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "timeout waiting for $1" >&2; return 1; }
    sleep 0.2
  done
}

# The suite's npm dependencies (cached between runs); no registry, no suite.
"$kit/cache-tests.sh" setup || skip "the suite's npm dependencies could not be installed (npm registry unreachable?)"
redis_port=$(free_port); origin_port=$(free_port); node_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
"$kit/cache-tests.sh" serve "$origin_port" >"$tmp/origin.log" 2>&1 &
pids+=($!)
WEBTIER_LOG_LEVEL=warn "$webnode" --listen "127.0.0.1:$node_port" --admin-listen 127.0.0.1:0 --zk 127.0.0.1:1 --id conformance \
  --redis "127.0.0.1:$redis_port" --origin "http://127.0.0.1:$origin_port" >"$tmp/webnode.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$origin_port/"
wait_http "http://127.0.0.1:$node_port/health"
target="http://127.0.0.1:$node_port" name=webnode
if [[ -n $balancer ]]; then
  # The balancer boots from a state file naming the node (no ZooKeeper).
  proxy_port=$(free_port); proxy_admin=$(free_port)
  printf '{"version":1,"members":[{"znode":"member_0000000001","member":{"serviceEndpoint":{"host":"127.0.0.1","port":%d},"status":"ALIVE","id":"conformance","weight":100}}]}\n' \
    "$node_port" >"$tmp/state.json"
  WEBTIER_LOG_LEVEL=warn "$balancer" --listen "127.0.0.1:$proxy_port" --admin-listen "127.0.0.1:$proxy_admin" \
    --zk 127.0.0.1:1 --state-file "$tmp/state.json" --health-path "" \
    --edge-cache-bytes 67108864 --edge-cache-min-uses 1 --edge-redis "127.0.0.1:$redis_port" >"$tmp/balancer.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$proxy_admin/health"
  target="http://127.0.0.1:$proxy_port" name="balancer+edge"
fi

"$kit/cache-tests.sh" run "$target" >"$tmp/webnode.json"
if [[ -n $balancer ]]; then
  # How much of the suite the edge cache answered itself.
  curl -fsS "http://127.0.0.1:$proxy_admin/metrics" | grep '^balancer_edge_cache_requests_total' || true
fi
[[ -z ${KEEP_RESULTS:-} ]] || cp "$tmp/webnode.json" "$KEEP_RESULTS"
table=$("$kit/cache-tests.sh" score "$name=$tmp/webnode.json" \
  nginx="$kit/reference/nginx-1.22.1.json" varnish="$kit/reference/varnish-7.1.1.json")
echo "cache-tests, columns pass/required fail/optional fail/other:"
echo "$table"
# The total row: | **total** | **P/F/O/X** | nginx | varnish |
read -r pass fail _ < <(awk -F'|' '/\*\*total\*\*/ {gsub(/[* ]/, "", $3); split($3, c, "/"); print c[1], c[2]}' <<<"$table")
echo "$name: $pass passes (floor $PASS_FLOOR), $fail required failures (ceiling $REQUIRED_FAIL_CEILING)"
if ((pass < PASS_FLOOR || fail > REQUIRED_FAIL_CEILING)); then
  echo "FAIL: below the floor or above the ceiling; webnode log tail:" >&2
  tail -n 20 "$tmp/webnode.log" >&2
  [[ -z $balancer ]] || tail -n 20 "$tmp/balancer.log" >&2
  exit 1
fi
