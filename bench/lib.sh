# shellcheck shell=bash
# Shared helpers for the wrk benchmarks (sourced by bench/*/run.sh).
# Numbers are only comparable within one run: each script measures its
# reference (bare Pistache, HAProxy, nginx) in the same run, same load.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$BENCH_ROOT/build}
# shellcheck disable=SC2034  # used by the bench/*/run.sh that source this file
BIN=$BUILD_DIR/bin

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() {  # wait_http URL [seconds]
  local url=$1 deadline=$((SECONDS + ${2:-20}))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "timeout waiting for $url" >&2; return 1; }
    sleep 0.1
  done
}

# run_wrk_total URL THREADS CONNS SECONDS [extra wrk args] -> prints
# "req_per_s p99_ms requests": the last, the requests wrk completed in all
# (its run may last longer than SECONDS on a loaded machine: per-request
# figures divide by this, not by req/s x SECONDS).
# (WRK="taskset -c 0 wrk" runs it through a prefix)
run_wrk_total() {
  local url=$1 t=$2 c=$3 d=$4; shift 4
  local out
  out=$(${WRK:-wrk} -t"$t" -c"$c" -d"${d}s" --latency "$@" "$url")
  local rps p99 total
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
  total=$(awk '/ requests in / {print $1}' <<<"$out")
  local errs
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
  [[ -n "$errs" ]] && echo "wrk: $errs" >&2
  echo "$rps $p99 $total"
}

# run_wrk URL THREADS CONNS SECONDS [extra wrk args] -> prints "req_per_s p99_ms"
run_wrk() {
  local r
  r=$(run_wrk_total "$@")
  echo "${r% *}"
}

# median N... -> the median of the numbers given (words, in any order)
median() { tr ' ' '\n' <<<"$*" | grep . | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
