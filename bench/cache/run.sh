#!/usr/bin/env bash
# The webnode's shared response cache under wrk, in one run:
#   1. cache-hit throughput and p99 on a small response vs a bare Pistache
#      hello-world (same threads, same load, alternating rounds; target >= 0.85)
#   2. hit vs miss speed-up on /api/primes/2000000 (every miss a new key)
#   3. p99 of hits while 8 slow misses (/api/sleep/1000, new keys) are in flight
#   bench/cache/run.sh [THREADS] [SECONDS] [ROUNDS]
# Env: BUILD_DIR (default build), WEBNODE_BIN (default $BUILD_DIR/bin/webnode),
#      CONNS (64), WRK_THREADS (1).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
THREADS=${1:-2}
SECS=${2:-8}
ROUNDS=${3:-3}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
WEBNODE_BIN=${WEBNODE_BIN:-$BIN/webnode}

[[ -x $WEBNODE_BIN && -x $BIN/bench_bare_pistache ]] || {
  echo "build first: cmake -S . -B build && cmake --build build --target webnode bench_bare_pistache" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is not installed (scripts/install-deps.sh)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

redis_port=$(free_port); bare_port=$(free_port); node_port=$(free_port); admin_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
"$BIN/bench_bare_pistache" "$bare_port" "$THREADS" & pids+=($!)
# No ZooKeeper here: registration retries in the background, off the hot path.
WEBTIER_LOG_LEVEL=error "$WEBNODE_BIN" --listen "127.0.0.1:$node_port" --admin-listen "127.0.0.1:$admin_port" --threads "$THREADS" \
  --redis "127.0.0.1:$redis_port" --zk 127.0.0.1:1 --id bench & pids+=($!)
wait_http "http://127.0.0.1:$bare_port/"; wait_http "http://127.0.0.1:$node_port/health"

node="http://127.0.0.1:$node_port"
admin="http://127.0.0.1:$admin_port"  # /metrics
KA=(-H "Connection: keep-alive")
hit_url="$node/api/primes/1000"
[[ $(curl -fsS -o /dev/null -D - "$hit_url" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}') == MISS ]] || true
[[ $(curl -fsS -o /dev/null -D - "$hit_url" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}') == HIT ]] || {
  echo "expected X-Cache: HIT on $hit_url; is the cache wired into $WEBNODE_BIN?" >&2; exit 1; }
echo "hit response: $(curl -fsS "$hit_url" | wc -c) bytes; bare: $(curl -fsS "http://127.0.0.1:$bare_port/" | wc -c) bytes"
run_wrk "http://127.0.0.1:$bare_port/" 1 8 2 "${KA[@]}" >/dev/null  # warm-up
run_wrk "$hit_url" 1 8 2 "${KA[@]}" >/dev/null

echo
echo "== 1. cache hits vs bare Pistache (threads=$THREADS conns=$CONNS ${SECS}s x $ROUNDS rounds, interleaved)"
echo "   (webnode-root = the webnode's own GET /, no cache involved: the core's share of the cost)"
printf "%-6s %-14s %12s %10s\n" round server req/s p99_ms
declare -A rps p99s
for r in $(seq 1 "$ROUNDS"); do
  for s in bare-pistache webnode-root webnode-hit; do
    case $s in
      bare-pistache) url="http://127.0.0.1:$bare_port/" ;;
      webnode-root) url="$node/" ;;
      webnode-hit) url="$hit_url" ;;
    esac
    read -r x p < <(run_wrk "$url" "$WRK_THREADS" "$CONNS" "$SECS" "${KA[@]}")
    printf "%-6s %-14s %12s %10s\n" "$r" "$s" "$x" "$p"
    rps[$s]+="$x "; p99s[$s]+="$p "
  done
done
best() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | tail -1; }
bare_best=$(best "${rps[bare-pistache]}"); hit_best=$(best "${rps[webnode-hit]}"); root_best=$(best "${rps[webnode-root]}")
bare_med=$(median "${rps[bare-pistache]}"); hit_med=$(median "${rps[webnode-hit]}"); root_med=$(median "${rps[webnode-root]}")
bare_p99=$(median "${p99s[bare-pistache]}"); hit_p99=$(median "${p99s[webnode-hit]}"); root_p99=$(median "${p99s[webnode-root]}")
echo "req/s best (median): bare $bare_best ($bare_med), webnode / $root_best ($root_med), hits $hit_best ($hit_med)"
echo "p99 ms median:       bare $bare_p99, webnode / $root_p99, hits $hit_p99"
echo "throughput ratio hit/bare = $(ratio "$hit_best" "$bare_best") best, $(ratio "$hit_med" "$bare_med") median  (target >= 0.85)"
echo "throughput ratio hit/webnode-root = $(ratio "$hit_best" "$root_best") best, $(ratio "$hit_med" "$root_med") median  (the cache's own cost)"
echo "p99 ratio hit/bare (medians) = $(ratio "$hit_p99" "$bare_p99")"
echo
echo "== 2. hit vs miss on /api/primes/2000000 (4 connections, ${SECS}s each)"
cat >"$tmp/miss.lua" <<'LUA'
-- Every request a new cache key: ?m=<counter>, unique per wrk thread.
local counter = 0
local prefix = tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/primes/2000000?m=" .. prefix .. "-" .. counter)
end
LUA
curl -fsS -o /dev/null "$node/api/primes/2000000"
read -r mrps mp99 < <(run_wrk "$node/api/primes/2000000" 1 4 "$SECS" "${KA[@]}" -s "$tmp/miss.lua")
read -r h2rps h2p99 < <(run_wrk "$node/api/primes/2000000" 1 4 "$SECS" "${KA[@]}")
echo "miss: $mrps req/s, p99 $mp99 ms"
echo "hit:  $h2rps req/s, p99 $h2p99 ms"
echo "speed-up hit/miss (throughput) = $(ratio "$h2rps" "$mrps")x, p99 miss/hit = $(ratio "$mp99" "$h2p99")x"

echo
echo "== 3. hit p99 while 8 slow misses are in flight (/api/sleep/1000, new key each)"
cat >"$tmp/slow.lua" <<'LUA'
-- Every request a new key, so every one is a slow miss (a 1 s origin fetch).
local counter = 0
local prefix = tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/sleep/1000?slow=" .. prefix .. "-" .. counter)
end
LUA
before=$(curl -fsS "$admin/metrics" | awk '/^webnode_origin_requests_total/ {print $2}')
# A second wrk keeps exactly 8 slow misses in flight for the whole measurement.
wrk -t1 -c8 -d"$((SECS + 2))s" --timeout 5s -H "Connection: keep-alive" -s "$tmp/slow.lua" "$node/" >"$tmp/slow.out" 2>&1 &
slow_pid=$!
sleep 1
read -r srps sp99 < <(run_wrk "$hit_url" "$WRK_THREADS" "$CONNS" "$SECS" "${KA[@]}")
wait "$slow_pid" || true
after=$(curl -fsS "$admin/metrics" | awk '/^webnode_origin_requests_total/ {print $2}')
echo "hits with 8 slow misses: $srps req/s, p99 $sp99 ms (without, median of part 1: $hit_med req/s, p99 $hit_p99 ms)"
echo "p99 ratio with/without slow misses = $(ratio "$sp99" "$hit_p99")"
echo "slow misses completed meanwhile: $(awk -v a="$after" -v b="$before" 'BEGIN{print a-b}') ($(awk '/requests in/ {print $1}' "$tmp/slow.out") by the slow wrk)"
