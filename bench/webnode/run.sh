#!/usr/bin/env bash
# webnode GET / throughput and p99 against a bare Pistache hello-world, same
# thread count, same wrk load, alternating rounds in one run.
#   bench/webnode/run.sh [THREADS] [SECONDS] [ROUNDS]
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
THREADS=${1:-1}
SECS=${2:-8}
ROUNDS=${3:-3}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}

[[ -x $BIN/webnode && -x $BIN/bench_bare_pistache ]] || {
  echo "build first: cmake -S . -B build && cmake --build build --target webnode bench_bare_pistache" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

bare_port=$(free_port); node_port=$(free_port)
"$BIN/bench_bare_pistache" "$bare_port" "$THREADS" & pids+=($!)
# No ZooKeeper here: registration retries in the background, which costs nothing on the hot path.
WEBTIER_LOG_LEVEL=error "$BIN/webnode" --listen "127.0.0.1:$node_port" --threads "$THREADS" --redis "" \
  --zk 127.0.0.1:1 --id bench & pids+=($!)
wait_http "http://127.0.0.1:$bare_port/"; wait_http "http://127.0.0.1:$node_port/"

# Bare Pistache 0.0.5 closes HTTP/1.1 connections without an explicit
# keep-alive header; send it so both servers are measured on persistent connections.
KA=(-H "Connection: keep-alive")
run_wrk "http://127.0.0.1:$bare_port/" 1 8 2 "${KA[@]}" >/dev/null  # warm-up
run_wrk "http://127.0.0.1:$node_port/" 1 8 2 "${KA[@]}" >/dev/null

printf "%-6s %-12s %12s %10s\n" round server req/s p99_ms
bare_best=0; node_best=0; bare_p99=""; node_p99=""
for r in $(seq 1 "$ROUNDS"); do
  read -r brps bp99 < <(run_wrk "http://127.0.0.1:$bare_port/" "$WRK_THREADS" "$CONNS" "$SECS" "${KA[@]}")
  printf "%-6s %-12s %12s %10s\n" "$r" bare-pistache "$brps" "$bp99"
  read -r nrps np99 < <(run_wrk "http://127.0.0.1:$node_port/" "$WRK_THREADS" "$CONNS" "$SECS" "${KA[@]}")
  printf "%-6s %-12s %12s %10s\n" "$r" webnode "$nrps" "$np99"
  if awk -v a="$brps" -v b="$bare_best" 'BEGIN{exit !(a>b)}'; then bare_best=$brps; bare_p99=$bp99; fi
  if awk -v a="$nrps" -v b="$node_best" 'BEGIN{exit !(a>b)}'; then node_best=$nrps; node_p99=$np99; fi
done
echo
echo "threads=$THREADS conns=$CONNS wrk_threads=$WRK_THREADS seconds=$SECS rounds=$ROUNDS (best round of each)"
echo "bare-pistache: $bare_best req/s, p99 ${bare_p99} ms"
echo "webnode:       $node_best req/s, p99 ${node_p99} ms"
echo "throughput ratio webnode/bare = $(ratio "$node_best" "$bare_best")  (target >= 0.9)"
echo "p99 ratio webnode/bare        = $(ratio "$node_p99" "$bare_p99")"
