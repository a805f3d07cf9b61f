#!/usr/bin/env bash
# The balancer's memory under a scan of distinct keys with its edge cache on:
# RSS before, while and after KEYS distinct URLs, each asked for twice in a
# row, against --edge-cache-bytes. The member is an nginx answering every
# path with the same FILE_BYTES-byte file, fresh for MAX_AGE seconds: once
# the memory is full, expired objects make room for new ones (the cache
# churns through the whole scan, allocating and freeing) and the rest are
# refused admission. Only the balancer is measured.
#   bench/tier/edge_memory.sh [build-dir]
# Env: EDGE_BYTES (67108864), KEYS (1000000), FILE_BYTES (1024), MAX_AGE (5).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
BALANCER=$BUILD/bin/balancer
EDGE_BYTES=${EDGE_BYTES:-67108864}
KEYS=${KEYS:-1000000}
FILE_BYTES=${FILE_BYTES:-1024}
MAX_AGE=${MAX_AGE:-5}
[[ -x $BALANCER ]] || { echo "build first: cmake --build build --target balancer" >&2; exit 1; }
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  echo "needs wrk and nginx (scripts/install-deps.sh)" >&2
  exit 1
fi

WORK=$(mktemp -d /tmp/edge-memory.XXXXXX)
chmod 755 "$WORK"  # nginx workers run as nobody
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

P_ORIGIN=$(free_port); P_BAL=$(free_port); A_BAL=$(free_port)
mkdir -p "$WORK/origin"
head -c "$FILE_BYTES" /dev/zero | tr '\0' 'x' >"$WORK/origin/object"
cat >"$WORK/origin/nginx.conf" <<EOF
worker_processes 1;
daemon off;
error_log $WORK/origin/error.log;
pid $WORK/origin/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/origin/body; proxy_temp_path $WORK/origin/proxy;
  fastcgi_temp_path $WORK/origin/fcgi; uwsgi_temp_path $WORK/origin/uwsgi; scgi_temp_path $WORK/origin/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$P_ORIGIN;
    root $WORK/origin;
    location / { try_files /object =404; default_type text/plain; add_header Cache-Control "public, max-age=$MAX_AGE"; }
  }
}
EOF
taskset -c 0 nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" &
PIDS+=($!)
printf '{"version":1,"members":[{"znode":"member_0000000001","member":{"serviceEndpoint":{"host":"127.0.0.1","port":%d},"status":"ALIVE","id":"origin","weight":100}}]}\n' \
  "$P_ORIGIN" >"$WORK/state.json"
WEBTIER_LOG_LEVEL=warn taskset -c 0 "$BALANCER" --listen "127.0.0.1:$P_BAL" --admin-listen "127.0.0.1:$A_BAL" \
  --zk 127.0.0.1:1 --state-file "$WORK/state.json" --threads 1 --health-path "" \
  --edge-cache-bytes "$EDGE_BYTES" 2>"$WORK/balancer.log" &
BAL_PID=$!
PIDS+=("$BAL_PID")
wait_http "http://127.0.0.1:$A_BAL/health"
wait_http "http://127.0.0.1:$P_BAL/warm"

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$BAL_PID/status"; }
edge() { curl -fsS "http://127.0.0.1:$A_BAL/status" | /usr/bin/python3 -c \
  'import json,sys; e=json.load(sys.stdin)["edge_cache"]; print(e["objects"], e["bytes"], e["evictions"], e["rejected"])'; }

cat >"$WORK/scan.lua" <<EOF
-- Each thread walks its own range of keys; every key twice in a row.
local n = 0
local keys = $KEYS
function init(args) end
request = function()
  local k = math.floor(n / 2)
  n = n + 1
  if k >= keys then k = k % keys end
  return wrk.format("GET", "/scan/" .. k .. "?v=" .. k)
end
EOF

rss0=$(kib VmRSS)
echo "balancer: --edge-cache-bytes $EDGE_BYTES ($((EDGE_BYTES / 1048576)) MiB), $KEYS distinct keys of $FILE_BYTES bytes fresh for ${MAX_AGE}s, each asked twice"
echo "RSS before: $((rss0 / 1024)) MiB"
# One wrk connection so the key order is exactly 0,0,1,1,...; it runs until 2*KEYS requests are done.
taskset -c 1 wrk -t1 -c1 -d600s -s "$WORK/scan.lua" "http://127.0.0.1:$P_BAL" >"$WORK/wrk.log" 2>&1 &
WRK=$!
PIDS+=("$WRK")
answers() { curl -fsS "http://127.0.0.1:$A_BAL/status" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["answers"])'; }
while sleep 5; do
  read -r objects bytes evictions rejected < <(edge)
  done_requests=$(answers)
  rss=$(kib VmRSS)
  echo "  ... $done_requests requests, RSS $((rss / 1024)) MiB, edge objects $objects, charged $((bytes / 1048576)) MiB, evictions $evictions, refused $rejected"
  (( done_requests >= 2 * KEYS )) && break
done
kill -INT "$WRK" 2>/dev/null || true
read -r objects bytes evictions rejected < <(edge)
rss1=$(kib VmRSS); hwm=$(kib VmHWM)
echo "after the scan: RSS $((rss1 / 1024)) MiB, peak $((hwm / 1024)) MiB; edge objects $objects, charged $((bytes / 1048576)) MiB of $((EDGE_BYTES / 1048576)), evictions $evictions, admissions refused $rejected"
awk -v r0="$rss0" -v r1="$hwm" -v cap="$EDGE_BYTES" -v b="$bytes" -v o="$objects" 'BEGIN {
  growth = (r1 - r0) * 1024
  printf "peak RSS growth %.1f MiB = %.2f x --edge-cache-bytes; beyond the charged bytes: %.1f MiB (%.0f bytes per object)\n",
         growth / 1048576, growth / cap, (growth - b) / 1048576, (o > 0 ? (growth - b) / o : 0) }'
