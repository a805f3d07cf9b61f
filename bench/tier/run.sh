#!/usr/bin/env bash
# Whole-tier cache hits, side by side: three caching tiers in front of the
# same origin, the same loads, alternating order per round, in one run.
#
#   bench/tier/run.sh [build-dir]      (default: build)
#   ROUNDS=5 DURATION=10s CONNS=32 HOT=100 COLD=20000 EDGE_BYTES=268435456 bench/tier/run.sh
#   ROUNDS=1 DURATION=2s HOT=20 COLD=200 bench/tier/run.sh        # a quick check
#
# The stacks (every server process pinned to cpu 0, wrk -t1 to cpu 1):
#   webtier          the balancer (--threads 1, booted from a state file, no
#                    ZooKeeper, no active checks) in front of 2 webnodes
#                    (--threads WEBNODE_THREADS, --origin the origin) sharing
#                    one redis-server. With EDGE_BYTES > 0 (the default,
#                    256 MiB) the balancer gets --edge-cache-bytes EDGE_BYTES
#                    and follows the tier's invalidation channel on that Redis
#                    (--edge-redis), when its --help offers the flag; EDGE_BYTES=0, or a
#                    balancer without it, runs it without (a note says so).
#   haproxy+nginx    HAProxy 2.6 (nbthread 1, http mode, keep-alive to the
#                    servers, round robin) in front of 2 nginx (1 worker each,
#                    proxy_cache on a zone in the work directory, no
#                    proxy_cache_valid: the origin's headers decide,
#                    proxy_cache_lock on, keep-alive to the origin).
#   haproxy+varnish  the same HAProxy configuration in front of 2 Varnish 7.1
#                    (-s malloc,256m, the default VCL, -b the origin,
#                    thread_pools=1 thread_pool_min=10, no management CLI).
# HAProxy does the header work the balancer does on every request
# (X-Forwarded-For/-Proto, an X-Request-Id to the server and back), as in
# bench/balancer/run.sh; SAME_HEADERS=0 runs it bare.
#
# The origin, the same for all three: one nginx (1 worker, cpu 0) serving
# files of FILE_BYTES (default 1024) from the work directory: /hot/0..HOT-1
# and /cold/0..COLD-1, all with Cache-Control: public, max-age=3600.
#
# Before the loads every cache in every stack is walked once with every hot
# and cold URL (each webnode, nginx and Varnish directly, with the Host the
# front will forward, since all three key on it or may), then each front
# twice (the balancer's edge cache keeps a URL from its second request on).
# The walks through each front must then reach the origin not once (its
# stub_status counts), or the script stops: that stack does not cache.
#
# The loads, each measured for the three stacks in an order that rotates per
# round (ROUNDS, default 5), DURATION (default 10s) each, wrk -t1 -c CONNS
# (default 32) on cpu 1, after a WARMUP (default 1) second wrk of the same load:
#   hot    wrk cycling over the HOT URLs: every request a hit.
#   mixed  70% hot hits, 20% cold hits (uniform over the COLD URLs), 10%
#          misses (/cold/N?miss=<run>-<thread>-<counter>, a new key each
#          time, the origin serves the file), from one random generator
#          seeded per wrk thread and run.
#   miss   (only with LOADS=miss) every request a miss: what one costs.
# Every run prints req/s, p99 (wrk --latency), the CPU time per request of the
# stack's server processes (user + system of every process and thread of the
# front, the cache servers and Redis, from /proc/PID/stat before and after),
# with SYSCALLS=1 (the default when perf can count raw_syscalls:sys_enter)
# the stack's syscalls per request, and the share of the requests that
# reached the origin (0% for hot, about 10% for mixed) with the origin's own
# CPU per request, kept apart from the stack's. Then webtier's ratios to the
# two references in that round; the summary gives each stack's medians and
# those ratios, paired per round: median (range). On this 2-core layout the
# servers saturate cpu 0, so CPU per request moves with 1/req/s; syscalls per
# request do not.
#
# Env: ROUNDS (5), DURATION (10s), CONNS (32), HOT (100), COLD (20000),
#      EDGE_BYTES (268435456; 0 = no edge cache flag), WEBNODE_THREADS (1),
#      FILE_BYTES (1024), WARMUP (1 s; 0 = none), SAME_HEADERS (1),
#      SYSCALLS (1), VARNISH_INSTALL (1: apt-get install varnish when
#      varnishd is missing and we are root), LOADS ("hot mixed"; "miss" too).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
BALANCER=$BUILD/bin/balancer
WEBNODE=$BUILD/bin/webnode
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
SECS=${DURATION%s}
CONNS=${CONNS:-32}
HOT=${HOT:-100}
COLD=${COLD:-20000}
EDGE_BYTES=${EDGE_BYTES:-268435456}
WEBNODE_THREADS=${WEBNODE_THREADS:-1}
FILE_BYTES=${FILE_BYTES:-1024}
WARMUP=${WARMUP:-1}
SAME_HEADERS=${SAME_HEADERS:-1}
SYSCALLS=${SYSCALLS:-1}
VARNISH_INSTALL=${VARNISH_INSTALL:-1}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

[[ $SECS =~ ^[0-9]+$ && $SECS -gt 0 ]] || { echo "run.sh: DURATION must be whole seconds, e.g. 10s (got '$DURATION')" >&2; exit 1; }
for v in ROUNDS CONNS HOT COLD EDGE_BYTES WEBNODE_THREADS FILE_BYTES WARMUP; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v must be a whole number (got '${!v}')" >&2; exit 1; }
done
(( HOT > 0 && COLD > 0 && ROUNDS > 0 )) || { echo "run.sh: HOT, COLD and ROUNDS must be at least 1" >&2; exit 1; }
for p in "$BALANCER" "$WEBNODE"; do
  [[ -x $p ]] || { echo "run.sh: $p missing (build it: cmake --build build --target balancer webnode)" >&2; exit 1; }
done
if ! command -v varnishd >/dev/null; then
  if [[ $VARNISH_INSTALL == 1 && $(id -u) -eq 0 ]]; then
    echo "run.sh: varnishd missing; apt-get install -y varnish" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y varnish >/dev/null
  fi
  command -v varnishd >/dev/null || { echo "run.sh: varnishd missing (apt-get install varnish)" >&2; exit 1; }
fi
for p in /usr/sbin/haproxy /usr/sbin/nginx /usr/bin/wrk /usr/bin/curl /usr/bin/taskset redis-server; do
  command -v "$p" >/dev/null || { echo "run.sh: $p missing (scripts/install-deps.sh)" >&2; exit 1; }
done
(( $(nproc) >= 2 )) || { echo "run.sh: needs 2 cores (servers on cpu 0, wrk on cpu 1)" >&2; exit 1; }
if [[ $SYSCALLS == 1 ]] && ! perf stat -e raw_syscalls:sys_enter -o /dev/null true 2>/dev/null; then
  echo "run.sh: perf cannot count raw_syscalls:sys_enter here; SYSCALLS=0" >&2
  SYSCALLS=0
fi

# The edge cache: only where the balancer has the flag.
EDGE_ARGS=() EDGE_NOTE=""
if (( EDGE_BYTES > 0 )); then
  # Read whole first: grep -q would stop reading early, and under pipefail
  # the balancer's SIGPIPE would then count as "no such flag".
  BALANCER_HELP=$("$BALANCER" --help 2>&1 || true)
  if grep -q -- '--edge-cache-bytes' <<<"$BALANCER_HELP"; then
    EDGE_ARGS=(--edge-cache-bytes "$EDGE_BYTES")
    EDGE_NOTE="edge cache $EDGE_BYTES bytes"
  else
    echo "note: $BALANCER has no --edge-cache-bytes (its --help does not offer it): the balancer runs without an edge cache" >&2
    EDGE_NOTE="no edge cache (the balancer has no --edge-cache-bytes)"
  fi
else
  EDGE_NOTE="no edge cache (EDGE_BYTES=0)"
fi

# In memory when the machine has a tmpfs at /dev/shm: nginx's proxy_cache
# writes a file per miss, and on a virtual disk whose writes slow down under
# load that measured the disk, not nginx (its CPU per request tripled in a
# run on such a disk). The webtier stack and Varnish keep their caches in
# memory; nginx's cache on tmpfs is how it is run for a hot set too.
tmp_root=/tmp
[[ -d /dev/shm && -w /dev/shm ]] && tmp_root=/dev/shm
WORK=$(mktemp -d "$tmp_root/tier-bench.XXXXXX")
chmod 755 "$WORK"  # nginx's workers (www-data) read the origin's files and write their caches under it
PIDS=()
PERF_PID=""
cleanup() {
  local pid alive
  [[ -z $PERF_PID ]] || kill -INT "$PERF_PID" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Servers on cpu 0: the script moves there, so everything it starts inherits
# it, and every server is started through `taskset -c 0` besides (taskset
# execs, so $! stays the server's pid). wrk and perf run on cpu 1.
SRV=(taskset -c 0)
CLI=(taskset -c 1)
taskset -pc 0 $$ >/dev/null

# N distinct free loopback ports, held together while they are picked.
ports() {
  "$PY" -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
wait_port() {  # port [seconds]
  local deadline=$((SECONDS + ${2:-30}))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "timeout waiting for port $1" >&2; return 1; }
    sleep 0.1
  done
}
# shellcheck disable=SC2034  # P_N*, P_NA*, P_NGX*, P_VAR* are read through ${!name}
read -r P_ORIGIN P_ORIGIN_STATUS P_REDIS P_N1 P_N2 P_NA1 P_NA2 P_BAL P_BAL_ADMIN \
  P_NGX1 P_NGX2 P_VAR1 P_VAR2 P_HAP_NGX P_HAP_VAR < <(ports 15)

# ---- the origin
mkdir -p "$WORK/origin/www/hot" "$WORK/origin/www/cold"
"$PY" - "$WORK/origin/www" "$HOT" "$COLD" "$FILE_BYTES" <<'PY'
import os, sys
root, hot, cold, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for kind, n in (("hot", hot), ("cold", cold)):
    for i in range(n):
        head = f"{kind} {i}\n".encode()
        with open(os.path.join(root, kind, str(i)), "wb") as f:
            f.write(head + b"x" * max(0, size - len(head)))
PY
{ for ((i = 0; i < HOT; i++)); do echo "/hot/$i"; done
  for ((i = 0; i < COLD; i++)); do echo "/cold/$i"; done; } >"$WORK/paths"

nginx_common() {  # dir: the lines every nginx here shares
  cat <<EOF
worker_processes 1;
daemon off;
error_log $1/error.log;
pid $1/nginx.pid;
events { worker_connections 4096; }
EOF
}
nginx_http_common() {  # dir
  cat <<EOF
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path $1/body; proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fcgi; uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
  keepalive_requests 1000000;
EOF
}
{
  nginx_common "$WORK/origin"
  echo "http {"
  nginx_http_common "$WORK/origin"
  cat <<EOF
  sendfile on;
  open_file_cache max=512 inactive=600s;
  server {
    listen 127.0.0.1:$P_ORIGIN;
    root $WORK/origin/www;
    location / { add_header Cache-Control "public, max-age=3600"; }
  }
  server { listen 127.0.0.1:$P_ORIGIN_STATUS; location / { stub_status; } }
}
EOF
} >"$WORK/origin/nginx.conf"
"${SRV[@]}" /usr/sbin/nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" &
PIDS+=($!)
ORIGIN_PID=$!
wait_http "http://127.0.0.1:$P_ORIGIN/hot/0" || { tail -n 20 "$WORK/origin/error.log"; exit 1; }
# Requests the origin has had so far, each look at the count included: the
# difference between two looks, less one, is what reached it in between.
origin_requests() {
  curl -fsS "http://127.0.0.1:$P_ORIGIN_STATUS/" | awk 'NR == 3 { print $3 }'
}

# ---- webtier: redis, 2 webnodes, the balancer
"${SRV[@]}" redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
REDIS_PID=$!
wait_port "$P_REDIS" || { tail -n 20 "$WORK/redis.log"; exit 1; }
NODE_PIDS=()
for i in 1 2; do
  lp=P_N$i ap=P_NA$i
  # No ZooKeeper: registration retries in the background, off the hot path.
  WEBTIER_LOG_LEVEL=error "${SRV[@]}" "$WEBNODE" --listen "127.0.0.1:${!lp}" --admin-listen "127.0.0.1:${!ap}" \
    --threads "$WEBNODE_THREADS" --redis "127.0.0.1:$P_REDIS" --zk 127.0.0.1:1 --id "node$i" \
    --origin "http://127.0.0.1:$P_ORIGIN" 2>"$WORK/webnode$i.log" &
  PIDS+=($!)
  NODE_PIDS+=($!)
done
for i in 1 2; do
  lp=P_N$i
  wait_http "http://127.0.0.1:${!lp}/hot/0" || { tail -n 20 "$WORK/webnode$i.log"; exit 1; }
done
# The state file the balancer boots from (the format it writes; see bench/balancer/run.sh).
{
  printf '{"version":1,"members":['
  i=0
  for port in "$P_N1" "$P_N2"; do
    i=$((i + 1))
    [[ $i -gt 1 ]] && printf ','
    printf '{"znode":"member_%010d","member":{"serviceEndpoint":{"host":"127.0.0.1","port":%d},' "$i" "$port"
    printf '"additionalEndpoints":{"http":{"host":"127.0.0.1","port":%d}},"status":"ALIVE","id":"node%d","weight":100,' "$port" "$i"
    printf '"zone":"z0"}}'
  done
  printf ']}\n'
} >"$WORK/state.json"
# The edge cache follows the tier's invalidation channel, as in a deployment.
(( ${#EDGE_ARGS[@]} == 0 )) || EDGE_ARGS+=(--edge-redis "127.0.0.1:$P_REDIS")
WEBTIER_LOG_LEVEL=warn "${SRV[@]}" "$BALANCER" --listen "127.0.0.1:$P_BAL" --admin-listen "127.0.0.1:$P_BAL_ADMIN" \
  --zk 127.0.0.1:1 --state-file "$WORK/state.json" --threads 1 --health-path "" "${EDGE_ARGS[@]}" \
  2>"$WORK/balancer.log" &
PIDS+=($!)
BAL_PID=$!
wait_http "http://127.0.0.1:$P_BAL/hot/0" || { tail -n 20 "$WORK/balancer.log"; exit 1; }

# ---- 2 nginx with proxy_cache
NGX_PIDS=()
for i in 1 2; do
  d=$WORK/nginx$i p=P_NGX$i
  mkdir -p "$d/cache"
  {
    nginx_common "$d"
    echo "http {"
    nginx_http_common "$d"
    cat <<EOF
  proxy_cache_path $d/cache levels=1:2 keys_zone=tier$i:64m max_size=256m inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$P_ORIGIN; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${!p};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache tier$i;
      proxy_cache_lock on;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
}
EOF
  } >"$d/nginx.conf"
  "${SRV[@]}" /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" &
  PIDS+=($!)
  NGX_PIDS+=($!)
done

# ---- 2 Varnish
VAR_PIDS=()
for i in 1 2; do
  p=P_VAR$i
  "${SRV[@]}" varnishd -F -a "127.0.0.1:${!p}" -b "127.0.0.1:$P_ORIGIN" -s malloc,256m -n "$WORK/v$i" -T none \
    -p thread_pools=1 -p thread_pool_min=10 >"$WORK/varnish$i.log" 2>&1 &
  PIDS+=($!)
  VAR_PIDS+=($!)
done

# ---- 2 HAProxy, one per stack, the same configuration but the servers
haproxy_cfg() {  # port server-port...
  local port=$1 i=0 s
  shift
  cat <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse safe
frontend fe
  bind 127.0.0.1:$port
EOF
  if [[ $SAME_HEADERS == 1 ]]; then
    cat <<'EOF'
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  unique-id-format %[rand,hex]%[rand,hex]
  unique-id-header X-Request-Id
  http-response set-header X-Request-Id %[unique-id]
EOF
  fi
  printf '  default_backend be\nbackend be\n  balance roundrobin\n'
  for s in "$@"; do i=$((i + 1)); echo "  server s$i 127.0.0.1:$s"; done
}
haproxy_cfg "$P_HAP_NGX" "$P_NGX1" "$P_NGX2" >"$WORK/haproxy-nginx.cfg"
haproxy_cfg "$P_HAP_VAR" "$P_VAR1" "$P_VAR2" >"$WORK/haproxy-varnish.cfg"
"${SRV[@]}" /usr/sbin/haproxy -f "$WORK/haproxy-nginx.cfg" -db 2>"$WORK/haproxy-nginx.log" &
PIDS+=($!)
HAP_NGX_PID=$!
"${SRV[@]}" /usr/sbin/haproxy -f "$WORK/haproxy-varnish.cfg" -db 2>"$WORK/haproxy-varnish.log" &
PIDS+=($!)
HAP_VAR_PID=$!

for p in "$P_NGX1" "$P_NGX2"; do wait_port "$p" || { tail -n 20 "$WORK"/nginx?/error.log; exit 1; }; done
for p in "$P_VAR1" "$P_VAR2"; do wait_port "$p" 60 || { tail -n 20 "$WORK"/varnish?.log; exit 1; }; done
wait_port "$P_HAP_NGX" || { tail -n 20 "$WORK/haproxy-nginx.log"; exit 1; }
wait_port "$P_HAP_VAR" || { tail -n 20 "$WORK/haproxy-varnish.log"; exit 1; }

STACKS=(webtier haproxy+nginx haproxy+varnish)
declare -A FRONT ROOTS NODES
FRONT[webtier]=$P_BAL
FRONT[haproxy+nginx]=$P_HAP_NGX
FRONT[haproxy+varnish]=$P_HAP_VAR
ROOTS[webtier]="$BAL_PID ${NODE_PIDS[*]} $REDIS_PID"
ROOTS[haproxy+nginx]="$HAP_NGX_PID ${NGX_PIDS[*]}"
ROOTS[haproxy+varnish]="$HAP_VAR_PID ${VAR_PIDS[*]}"
NODES[webtier]="$P_N1 $P_N2"
NODES[haproxy+nginx]="$P_NGX1 $P_NGX2"
NODES[haproxy+varnish]="$P_VAR1 $P_VAR2"

# ---- warm-up: every cache of every stack gets every URL once
walk() {  # port host paths-file -> "ok bad": answers 200 and others
  awk -v base="http://127.0.0.1:$1" '{ printf "url = \"%s%s\"\noutput = \"/dev/null\"\n", base, $0 }' "$3" >"$WORK/walk.cfg"
  "${CLI[@]}" curl -sS -Z --parallel-max 8 -H "Host: $2" -w '%{http_code}\n' -K "$WORK/walk.cfg" 2>/dev/null |
    awk '$1 == 200 { ok++ } $1 != 200 { bad++; codes[$1]++ }
         END { for (c in codes) printf "status %s: %d\n", c, codes[c] > "/dev/stderr"; printf "%d %d\n", ok, bad }'
}
# Is this answer a hit? The header each stack marks its hits with.
hit_header() {  # port path
  curl -fsS -o /dev/null -D - "http://127.0.0.1:$1$2" | tr -d '\r' |
    awk -F': ' 'tolower($1) ~ /^(x-cache|x-cache-status|cache-status|x-varnish|age)$/ { printf "%s%s: %s", sep, $1, $2; sep = ", " }'
}
is_hit() {  # headers from hit_header
  grep -Eiq 'x-cache(-status)?: [^,]*hit|cache-status: [^,]*hit|x-varnish: [0-9]+ [0-9]+|age: [0-9]+' <<<"$1"
}
echo "warm-up: $HOT hot + $COLD cold URLs of $FILE_BYTES bytes through every cache, then every front (twice)"
for s in "${STACKS[@]}"; do
  host="127.0.0.1:${FRONT[$s]}"
  t0=$SECONDS
  for p in ${NODES[$s]}; do
    read -r ok bad < <(walk "$p" "$host" "$WORK/paths")
    (( bad == 0 )) || { echo "warm-up: $s: $bad of $((ok + bad)) answers through 127.0.0.1:$p were not 200" >&2
      tail -n 5 "$WORK"/*.log "$WORK"/*/error.log >&2 2>/dev/null; exit 1; }
  done
  o0=$(origin_requests)
  # Twice through the front: a cache that keeps a URL from its second
  # request on (the balancer's edge cache, --edge-cache-min-uses 2) is then
  # as warm as one that keeps it at once.
  read -r ok bad < <(walk "${FRONT[$s]}" "$host" "$WORK/paths")
  read -r ok2 bad2 < <(walk "${FRONT[$s]}" "$host" "$WORK/paths")
  ok=$((ok + ok2)) bad=$((bad + bad2))
  o1=$(( $(origin_requests) - 1 ))
  (( bad == 0 )) || { echo "warm-up: $s: $bad of $((ok + bad)) answers through its front were not 200" >&2; exit 1; }
  hdr=$(hit_header "${FRONT[$s]}" /hot/0)
  printf "  %-16s walk through the front: %d answers, %d reached the origin; /hot/0: %s  (%ds)\n" \
    "$s" "$ok" "$((o1 - o0))" "${hdr:-no cache header}" "$((SECONDS - t0))"
  if (( o1 - o0 > 0 )); then
    echo "warm-up: $s does not cache: $((o1 - o0)) of $ok requests through its front went to the origin after every cache had them" >&2
    exit 1
  fi
  # The origin's count decides; the header only tells how the stack marks its hits.
  is_hit "$hdr" || echo "  note: $s marks /hot/0 as no hit by the headers looked for (${hdr:-none}), though the origin saw nothing" >&2
done

# ---- the loads
cat >"$WORK/hot.lua" <<'LUA'
-- Cycles over /hot/0 .. /hot/(TIER_HOT-1).
local threads = 0
function setup(thread) thread:set("thread_id", threads); threads = threads + 1 end
local reqs, n, i = {}, 0, 0
function init(args)
  n = tonumber(os.getenv("TIER_HOT"))
  for k = 0, n - 1 do reqs[k] = wrk.format("GET", "/hot/" .. k) end
  i = ((thread_id or 0) * 7) % n
end
function request()
  local r = reqs[i]
  i = (i + 1) % n
  return r
end
LUA
cat >"$WORK/mixed.lua" <<'LUA'
-- 70% hot hits, 20% cold hits, 10% misses (a new key each time);
-- TIER_HOT, TIER_COLD, TIER_RUN (a number new every run) from the environment.
local threads = 0
function setup(thread) thread:set("thread_id", threads); threads = threads + 1 end
local hot, cold, nh, nc, run, misses = {}, {}, 0, 0, "0", 0
function init(args)
  nh, nc, run = tonumber(os.getenv("TIER_HOT")), tonumber(os.getenv("TIER_COLD")), os.getenv("TIER_RUN")
  local tid = thread_id or 0
  math.randomseed(tonumber(run) * 64 + tid)
  for k = 0, nh - 1 do hot[k] = wrk.format("GET", "/hot/" .. k) end
  for k = 0, nc - 1 do cold[k] = wrk.format("GET", "/cold/" .. k) end
  run = run .. "-" .. tid
end
function request()
  local x = math.random()
  if x < 0.7 then return hot[math.random(0, nh - 1)] end
  if x < 0.9 then return cold[math.random(0, nc - 1)] end
  misses = misses + 1
  return wrk.format("GET", "/cold/" .. math.random(0, nc - 1) .. "?miss=" .. run .. "-" .. misses)
end
LUA
cat >"$WORK/miss.lua" <<'LUA'
-- Every request a miss (a new key each time): the cost of one miss through each stack.
local threads = 0
function setup(thread) thread:set("thread_id", threads); threads = threads + 1 end
local nc, run, misses = 0, "0", 0
function init(args)
  nc, run = tonumber(os.getenv("TIER_COLD")), os.getenv("TIER_RUN") .. "-" .. (thread_id or 0)
end
function request()
  misses = misses + 1
  return wrk.format("GET", "/cold/" .. (misses % nc) .. "?miss=" .. run .. "-" .. misses)
end
LUA

# Every process of a stack: the ones started and their descendants.
tree() {
  local p kids
  for p in "$@"; do
    echo "$p"
    mapfile -t kids < <(pgrep -P "$p" || true)
    (( ${#kids[@]} == 0 )) || tree "${kids[@]}"
  done
}
# CPU ticks used so far by these process trees (utime + stime of every
# process, all its threads; + cutime + cstime for children already reaped).
ticks() {
  local total=0 t pid
  for pid in $(tree "$@"); do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
TICK=$(getconf CLK_TCK)
export TIER_HOT=$HOT TIER_COLD=$COLD
RUN_NO=$$
declare -A RPS P99 CPU SYS OCPU SHARE LAST_RPS LAST_P99 LAST_CPU LAST_SYS RATIO
measure() {  # load stack
  local load=$1 s=$2 url="http://127.0.0.1:${FRONT[$2]}/" args roots c0 c1 o0 o1 r0 r1 rps p99 total cpu ocpu share sys="n/a" p
  read -ra roots <<<"${ROOTS[$s]}"
  RUN_NO=$((RUN_NO + 1))
  export TIER_RUN=$RUN_NO  # the mixed script's seed and miss keys: new every run
  args=(-s "$WORK/$load.lua")
  if (( WARMUP > 0 )); then
    "${CLI[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${args[@]}" "$url" >/dev/null 2>&1 || true
    RUN_NO=$((RUN_NO + 1))
    export TIER_RUN=$RUN_NO
  fi
  if [[ $SYSCALLS == 1 ]]; then
    "${CLI[@]}" perf stat -x, -e raw_syscalls:sys_enter -p "$(tree "${roots[@]}" | paste -sd,)" -o "$WORK/perf.out" &
    PERF_PID=$!
    sleep 0.3  # attached before the load starts
  fi
  r0=$(origin_requests)
  local -a each0=() each1=()
  for p in "${roots[@]}"; do each0+=("$(ticks "$p")"); done
  c0=$(ticks "${roots[@]}"); o0=$(ticks "$ORIGIN_PID")
  read -r rps p99 total < <(WRK="${CLI[*]} wrk" run_wrk_total "$url" 1 "$CONNS" "$SECS" "${args[@]}")
  c1=$(ticks "${roots[@]}"); o1=$(ticks "$ORIGIN_PID")
  for p in "${roots[@]}"; do each1+=("$(ticks "$p")"); done
  r1=$(( $(origin_requests) - 1 ))
  [[ -n ${total:-} && $total -gt 0 ]] || total=$(awk -v r="${rps:-0}" -v d="$SECS" 'BEGIN { printf "%d", r * d }')
  if [[ -n $PERF_PID ]]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
    sys=$(awk -F, -v n="$total" '$3 == "raw_syscalls:sys_enter" && n > 0 { printf "%.2f", $1 / n }' "$WORK/perf.out")
    [[ -n $sys ]] || sys="n/a"
  fi
  cpu=$(awk -v a="$c0" -v b="$c1" -v t="$TICK" -v n="$total" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / t / n; else print "n/a" }')
  ocpu=$(awk -v a="$o0" -v b="$o1" -v t="$TICK" -v n="$total" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / t / n; else print "n/a" }')
  # The share of the requests that reached the origin: 0 for hot, about 10% for mixed.
  share=$(awk -v a="$r0" -v b="$r1" -v n="$total" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 100 / n; else print "n/a" }')
  printf "  %-6s %-16s %10s req/s  p99 %8s ms  cpu %6s us/req  %6s syscalls/req  to origin %5s%% at %5s us/req\n" \
    "$load" "$s" "${rps:-n/a}" "${p99:-n/a}" "$cpu" "$sys" "$share" "$ocpu"
  # Where the stack's CPU went: each server process (and its threads and children) apart.
  local split="" k
  for k in "${!roots[@]}"; do
    split+=" $(cat "/proc/${roots[$k]}/comm" 2>/dev/null || echo "${roots[$k]}")"
    split+=" $(awk -v a="${each0[$k]}" -v b="${each1[$k]}" -v t="$TICK" -v n="$total" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / t / n; else print "n/a" }')"
  done
  printf "  %-6s %-16s cpu by process (us/req):%s\n" "$load" "$s" "$split"
  RPS[$load $s]+="$rps " P99[$load $s]+="$p99 " CPU[$load $s]+="$cpu " SYS[$load $s]+="$sys " OCPU[$load $s]+="$ocpu "
  SHARE[$load $s]+="$share "
  LAST_RPS[$load $s]=$rps LAST_P99[$load $s]=$p99 LAST_CPU[$load $s]=$cpu LAST_SYS[$load $s]=$sys
}

read -ra LOADS <<<"${LOADS:-hot mixed}"
for load in "${LOADS[@]}"; do
  [[ $load == hot || $load == mixed || $load == miss ]] || { echo "run.sh: LOADS takes hot, mixed and miss (got '$load')" >&2; exit 1; }
done
echo
echo "stacks: webtier (balancer --threads 1, $EDGE_NOTE; 2 webnodes --threads $WEBNODE_THREADS; 1 redis) | haproxy+nginx (nbthread 1; 2 nginx proxy_cache, 1 worker each) | haproxy+varnish (nbthread 1; 2 varnishd malloc,256m)"
echo "load: wrk -t1 -c$CONNS -d$DURATION (+${WARMUP}s warm-up) on cpu 1, servers and origin on cpu 0; hot: $HOT URLs; mixed: 70% hot, 20% of $COLD cold, 10% misses; $ROUNDS rounds"
echo "(cpu: the stack's server processes, CPU microseconds per request; to origin: the share of the requests that reached the origin, and the origin nginx's own CPU per request, apart)"
# The servers' core must be quiet before the first round: whatever the
# start-up left running there (nginx's cache loader walking its cache
# directory after the warm-up, Varnish's and Redis' background work) would
# otherwise be charged to the stack measured first, always webtier in round 1.
# Up to 60 s, until cpu 0 is at least 90% idle over a second.
cpu0_busy() {  # percent busy over the next second
  local a b
  a=$(awk '$1 == "cpu0" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
  sleep 1
  b=$(awk '$1 == "cpu0" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; printf "%d", (t > 0 ? (y[1] - x[1]) * 100 / t : 0) }'
}
settle_start=$SECONDS
while busy=$(cpu0_busy) && ((busy >= 10 && SECONDS - settle_start < 60)); do :; done
echo "cpu 0 settled after $((SECONDS - settle_start)) s (busy ${busy}% in the last second)"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  # The order rotates: each stack goes first, second and third in turn.
  order=()
  for k in 0 1 2; do order+=("${STACKS[$(( (k + r - 1) % 3 ))]}"); done
  for load in "${LOADS[@]}"; do
    for s in "${order[@]}"; do measure "$load" "$s"; done
    for ref in haproxy+nginx haproxy+varnish; do
      rr=$(ratio "${LAST_RPS[$load webtier]:-0}" "${LAST_RPS[$load $ref]:-0}")
      pr=$(ratio "${LAST_P99[$load webtier]:-0}" "${LAST_P99[$load $ref]:-0}")
      cr=$(ratio "${LAST_CPU[$load webtier]:-0}" "${LAST_CPU[$load $ref]:-0}")
      sr=n/a
      [[ $SYSCALLS == 1 ]] && sr=$(ratio "${LAST_SYS[$load webtier]:-0}" "${LAST_SYS[$load $ref]:-0}")
      printf "  %-6s webtier / %-16s req/s %5s  p99 %5s  cpu/req %5s  syscalls/req %5s\n" "$load" "$ref" "$rr" "$pr" "$cr" "$sr"
      RATIO[$load rps $ref]+="$rr " RATIO[$load p99 $ref]+="$pr " RATIO[$load cpu $ref]+="$cr " RATIO[$load sys $ref]+="$sr "
    done
  done
done

# ---- summary
med() {  # "values" [printf format]: the median of the numbers among the values
  local m
  m=$(tr ' ' '\n' <<<"$1" | grep -E '^[0-9.]+$' | paste -sd' ' || true)
  if [[ -n $m ]]; then awk -v v="$(median "$m")" -v f="${2:-%.2f}" 'BEGIN { printf f, v }'; else echo n/a; fi
}
range() { tr ' ' '\n' <<<"$*" | grep -E '^[0-9.]+$' | sort -g | sed -n '1p;$p' | paste -sd- || true; }
echo
echo "== summary: median of $ROUNDS round(s); ratios are webtier / reference, paired per round: median (range)"
printf "%-6s %-16s %11s %9s %9s %13s %10s %13s %17s %17s %17s\n" load stack "req/s" "p99(ms)" "us/req" "syscalls/req" "to origin" \
  "origin us/req" "req/s ratio" "p99 ratio" "cpu/req ratio"
for load in "${LOADS[@]}"; do
  for s in "${STACKS[@]}"; do
    rr="" pr="" cr=""
    if [[ $s != webtier ]]; then
      rr="$(med "${RATIO[$load rps $s]}") ($(range "${RATIO[$load rps $s]}"))"
      pr="$(med "${RATIO[$load p99 $s]}") ($(range "${RATIO[$load p99 $s]}"))"
      cr="$(med "${RATIO[$load cpu $s]}") ($(range "${RATIO[$load cpu $s]}"))"
    fi
    printf "%-6s %-16s %11s %9s %9s %13s %10s %13s %17s %17s %17s\n" "$load" "$s" "$(med "${RPS[$load $s]}")" \
      "$(med "${P99[$load $s]}")" "$(med "${CPU[$load $s]}" %.1f)" "$(med "${SYS[$load $s]}")" "$(med "${SHARE[$load $s]}" %.1f)%" \
      "$(med "${OCPU[$load $s]}" %.1f)" \
      "${rr:--}" "${pr:--}" "${cr:--}"
  done
done
if [[ $SYSCALLS == 1 ]]; then
  for load in "${LOADS[@]}"; do
    echo "$load: webtier / haproxy+nginx syscalls per request $(med "${RATIO[$load sys haproxy+nginx]}"), webtier / haproxy+varnish $(med "${RATIO[$load sys haproxy+varnish]}")"
  done
fi
echo "(webtier: $EDGE_NOTE. req/s ratio above 1 and p99 and cpu/req ratios below 1 favour webtier. All on one 2-core machine: servers share cpu 0, wrk has cpu 1; expect 10-30% noise per run)"
