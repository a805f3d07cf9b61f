#!/usr/bin/env bash
# Benchmark: the webtier balancer vs HAProxy 2.6 vs nginx as reverse proxies,
# same loopback backends (one nginx serving a small static response on 3
# ports), same proxy thread count, same wrk load. One run each; prints req/s,
# p99 and the balancer/HAProxy ratios.
#
#   bench/balancer/run.sh [build-dir]      (default: build)
#   THREADS=2 CONNECTIONS=64 DURATION=10s WRK_THREADS=2 bench/balancer/run.sh
#   ROUNDS=7 bench/balancer/run.sh                   # interleaved rounds, paired ratios
#   LAYOUT=shared bench/balancer/run.sh              # where the processes run: see LAYOUT below
#   PACE_MS=1 bench/balancer/run.sh                  # latency at a fixed offered load
#   WIRE=1 bench/balancer/run.sh                     # also the time spent inside each proxy (tcpdump)
#   TLS=0 bench/balancer/run.sh                      # skip the TLS rounds (see below)
#   H2=0 bench/balancer/run.sh                       # skip the HTTP/2 rounds (see below)
#   MEMBERS=50 CHECKS=1 ZONES=1 bench/balancer/run.sh # 50 members, active checks, locality
#   EDGE=0 bench/balancer/run.sh                     # skip the edge-rule rounds (see below)
#   SYSCALLS=0 bench/balancer/run.sh                 # skip counting syscalls (see below)
#   SYSCALL_DETAIL=1 bench/balancer/run.sh           # also syscalls per request by kind
#   ACCESS_LOG=0 bench/balancer/run.sh               # skip the access-log rounds (see below)
#   SYSCALL_GATE=1 bench/balancer/run.sh             # exit 1 when the balancer makes more
#                                                    # syscalls per plain request than HAProxy
#
# MEMBERS (default 3) backends behind every proxy. CHECKS=1 (the default)
# gives the balancer its default active checks (GET /health every second per
# member) and HAProxy `check inter 1s` on every server; CHECKS=0 turns both
# off. ZONES=1 puts the members in two zones alternately and starts the
# balancer with --zone in the first (locality on; HAProxy has no equivalent
# and balances over all). Comparing CHECKS=0 with CHECKS=1 ZONES=1 rounds
# (their balancer/HAProxy ratios) gives what checks and locality cost.
#
# TLS (TLS=1, the default): the balancer (--tls-listen) and HAProxy (bind ...
# ssl) terminate TLS with the same self-signed ECDSA P-256 certificate (made
# by `openssl req` for the run), TLS 1.2/1.3 with the same cipher lists and
# ALPN http/1.1, the same thread count, and X-Forwarded-Proto https to the
# member. Two targets, paired per round like the plain ones:
#   tls-keepalive  wrk over https, keep-alive: throughput of TLS records
#   tls-handshake  wrk over https with "Connection: close": a new TCP
#                  connection and TLS handshake per request, i.e. new
#                  handshakes per second (wrk keeps each connection's session,
#                  so after the first these are TLS 1.3 resumptions; for full
#                  handshakes use `openssl s_time -new -www /` beside it)
#
# HTTP/2 (H2=1, the default when h2load is installed): h2load (Debian's
# nghttp2-client) against the balancer and HAProxy, the same thread count,
# -c H2_CLIENTS connections with -m H2_STREAMS streams each (default 32 x 10),
# for DURATION, members still HTTP/1.1. Two targets, paired per round:
#   h2c        cleartext with prior knowledge (the balancer's --listen with
#              --h2c on; HAProxy `bind ... proto h2`)
#   h2-tls     over TLS, ALPN h2 (the same certificate as the TLS targets;
#              both proxies offer h2,http/1.1)
# Each prints req/s, the mean time per request (h2load gives no p99), CPU
# time and syscalls per request; the summary adds the balancer's CPU per
# HTTP/2 request against its own per HTTP/1.1 keep-alive request.
#
# EDGE=1 (the default) adds two plain targets per round that show what the
# edge's safety rules cost:
#   close  wrk with "Connection: close": a new client connection per request.
#          With --upstream-reuse safe (the default) each one's first request
#          gets a member connection no other client used, so every request
#          here pays a member connect, as with HAProxy's `http-reuse safe`
#          (HAPROXY_REUSE, its default and this script's); a second balancer
#          with --upstream-reuse always reuses idle ones. Keep-alive clients
#          pay it once per connection.
#   worst  the most expensive request the balancer accepts at its defaults:
#          ~15 KiB of head, 100 field lines (--max-header-fields), 1,300
#          Connection tokens; its CPU per request beside the plain target's
#          (the "worst/plain" line) shows the per-request cost stays linear.
#
# Every target prints, beside req/s and p99, each proxy's CPU time per request
# (user + system, all its threads and processes) and, with SYSCALLS=1 (the
# default when `perf` can count the raw_syscalls tracepoint), its system calls
# per request, counted by `perf stat` attached to the proxy for the measured
# seconds. Both travel between machines better than req/s: a design that
# makes one more syscall per request loses more where syscalls cost more.
# The summary gives balancer/HAProxy ratios of each, paired per round.
# SYSCALL_GATE=1 turns the plain keep-alive comparison into a check: the
# script exits 1 when the balancer's median syscalls per request exceed
# HAProxy's (the budget docs/architecture.md writes down).
#
# The balancer runs without ZooKeeper: it boots from a state file listing the
# backends (the same path it takes when ZooKeeper is down at start-up).
# HAProxy and nginx are configured to do the header work the balancer does on
# every request (X-Forwarded-For/-Proto to the member, an X-Request-Id to the
# member and back to the client); SAME_HEADERS=0 runs them bare instead.
# Numbers on a shared or small machine are noisy.
#
# LAYOUT says which cores each process gets (the same for all three proxies):
#   client            (the default on 2 or more cores) wrk on the first core,
#                     the proxy and the backend on the others: the load
#                     generator plays the client machines and does not compete
#                     with what it measures.
#   proxy             the proxy on the last THREADS cores, wrk and the backend
#                     on the others: the proxy alone on its cores.  (PIN=1 is
#                     the old name of this layout.)
#   shared            everything on every core (the default on 1 core): the
#                     p99 then includes wrk waiting for a core beside the proxy.
# THREADS defaults to the number of cores the proxy gets in the layout.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
BALANCER=$BUILD/bin/balancer
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
WRK_THREADS=${WRK_THREADS:-2}
BODY_BYTES=${BODY_BYTES:-128}
SAME_HEADERS=${SAME_HEADERS:-1}
PACE_MS=${PACE_MS:-0}
WIRE=${WIRE:-0}
TLS=${TLS:-1}
H2=${H2:-1}
H2_CLIENTS=${H2_CLIENTS:-32}
H2_STREAMS=${H2_STREAMS:-10}
MEMBERS=${MEMBERS:-3}
CHECKS=${CHECKS:-1}
ZONES=${ZONES:-0}
EDGE=${EDGE:-1}
# ACCESS_LOG=1 (the default) runs a second balancer with --access-log (JSON,
# every request, to a file in the work directory) beside the first each
# round, plain keep-alive: the paired ratio is what the log costs.
ACCESS_LOG=${ACCESS_LOG:-1}
SYSCALLS=${SYSCALLS:-1}
SYSCALL_DETAIL=${SYSCALL_DETAIL:-0}
SYSCALL_GATE=${SYSCALL_GATE:-0}
# HAProxy's connection reuse: its own default, `safe`, matches the balancer's
# --upstream-reuse safe (HAPROXY_REUSE=always for the old comparison).
HAPROXY_REUSE=${HAPROXY_REUSE:-safe}
if [[ $WIRE == 1 ]]; then
  command -v tcpdump >/dev/null || { echo "run.sh: WIRE=1 needs tcpdump (scripts/install-deps.sh)" >&2; exit 1; }
  (( ${DURATION%s} >= 5 )) || { echo "run.sh: WIRE=1 needs DURATION of 5s or more" >&2; exit 1; }
fi
if [[ $SYSCALLS == 1 ]] && ! perf stat -e raw_syscalls:sys_enter -o /dev/null true 2>/dev/null; then
  echo "run.sh: perf cannot count raw_syscalls:sys_enter here (install linux-perf, run as root); SYSCALLS=0" >&2
  SYSCALLS=0
fi
if [[ $H2 == 1 ]] && ! command -v h2load >/dev/null; then
  echo "run.sh: h2load missing (apt-get install nghttp2-client); H2=0" >&2
  H2=0
fi
[[ $SYSCALL_GATE == 1 && $SYSCALLS != 1 ]] && { echo "run.sh: SYSCALL_GATE=1 needs SYSCALLS=1" >&2; exit 1; }
NCPU=$(nproc)
if [[ -z ${LAYOUT:-} ]]; then
  if [[ ${PIN:-0} == 1 ]]; then LAYOUT=proxy; elif (( NCPU > 1 )); then LAYOUT=client; else LAYOUT=shared; fi
fi
case $LAYOUT in
  client|proxy) THREADS=${THREADS:-$(( NCPU > 1 ? NCPU - 1 : 1 ))} ;;
  shared) THREADS=${THREADS:-$NCPU} ;;
  *) echo "run.sh: LAYOUT must be client, proxy or shared (got '$LAYOUT')" >&2; exit 1 ;;
esac

for p in "$BALANCER" /usr/sbin/haproxy /usr/sbin/nginx /usr/bin/wrk $([[ $TLS == 1 ]] && echo /usr/bin/openssl); do
  [[ -x $p ]] || { echo "run.sh: $p missing (build the balancer; scripts/install-deps.sh for the rest)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/balancer-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The script itself moves to the cores of the backend, so the backend nginx
# inherits them; the proxies and wrk are started on theirs through taskset
# (which execs the command, so $! stays its pid).
LOAD_CPUS="" PROXY_CPUS="" WRK_CPUS="" ON_PROXY=() ON_WRK=()
if [[ $LAYOUT != shared ]]; then
  (( NCPU > 1 )) || { echo "run.sh: LAYOUT=$LAYOUT needs 2 or more cores; use LAYOUT=shared" >&2; exit 1; }
  if [[ $LAYOUT == proxy ]]; then
    (( NCPU > THREADS )) || { echo "run.sh: LAYOUT=proxy needs more cores than THREADS ($NCPU <= $THREADS)" >&2; exit 1; }
    LOAD_CPUS="0-$((NCPU - THREADS - 1))"
    PROXY_CPUS="$((NCPU - THREADS))-$((NCPU - 1))"
    WRK_CPUS=$LOAD_CPUS
    taskset -pc "$LOAD_CPUS" $$ >/dev/null
  else
    WRK_CPUS=0
    PROXY_CPUS="1-$((NCPU - 1))"
    taskset -pc "$PROXY_CPUS" $$ >/dev/null  # the backend shares the proxy's cores
  fi
  ON_PROXY=(taskset -c "$PROXY_CPUS")
  ON_WRK=(taskset -c "$WRK_CPUS")
fi

# A loopback port nobody listens on (and that this script has not handed out yet).
USED_PORTS=" "
alloc_port() {  # VAR
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768+)
    [[ $USED_PORTS == *" $p "* ]] && continue
    ss -Htan "sport = :$p" | grep -q . && continue
    USED_PORTS+="$p "
    printf -v "$1" '%s' "$p"
    return
  done
}

# ---- backends: one nginx, MEMBERS ports, a static body
BPORTS=()
for ((i = 1; i <= MEMBERS; i++)); do alloc_port bp; BPORTS+=("$bp"); done
BODY=$(head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x')
mkdir -p "$WORK/backend"
cat >"$WORK/backend/nginx.conf" <<EOF
worker_processes 1;
daemon off;
error_log $WORK/backend/error.log;
pid $WORK/backend/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/backend/body; proxy_temp_path $WORK/backend/proxy;
  fastcgi_temp_path $WORK/backend/fcgi; uwsgi_temp_path $WORK/backend/uwsgi; scgi_temp_path $WORK/backend/scgi;
  keepalive_requests 1000000;
$(i=0; for p in "${BPORTS[@]}"; do i=$((i + 1))
  echo "  server { listen 127.0.0.1:$p; location / { add_header X-Served-By b$i; return 200 \"$BODY\"; } }"; done)
}
EOF
/usr/sbin/nginx -p "$WORK/backend" -c "$WORK/backend/nginx.conf" &
PIDS+=($!)
for p in "${BPORTS[@]}"; do wait_http "http://127.0.0.1:$p/" || exit 1; done

# ---- the three proxies
alloc_port P_BAL; alloc_port A_BAL; alloc_port P_HAP; alloc_port P_NGX; alloc_port P_HAP_H2C

# The state file the balancer boots from (the same format it writes).
{
  printf '{"version":1,"members":['
  i=0
  for port in "${BPORTS[@]}"; do
    i=$((i + 1))
    [[ $i -gt 1 ]] && printf ','
    printf '{"znode":"member_%010d","member":{"serviceEndpoint":{"host":"127.0.0.1","port":%d},' "$i" "$port"
    printf '"additionalEndpoints":{"http":{"host":"127.0.0.1","port":%d}},"status":"ALIVE","id":"b%d","weight":100,' "$port" "$i"
    printf '"zone":"z%d"}}' $(( ZONES == 1 ? i % 2 : 0 ))
  done
  printf ']}\n'
} >"$WORK/state.json"
cp "$WORK/state.json" "$WORK/state2.json"
# TLS: one certificate for both TLS proxies (HAProxy wants cert and key in one file).
BAL_TLS=() HAP_TLS_BIND=""
if [[ $TLS == 1 ]]; then
  alloc_port T_BAL; alloc_port T_HAP
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -days 1 \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
  cat "$WORK/tls.crt" "$WORK/tls.key" >"$WORK/tls.pem"
  BAL_TLS=(--tls-listen "127.0.0.1:$T_BAL" --tls-cert "$WORK/tls.crt" --tls-key "$WORK/tls.key")
  # Mozilla "intermediate", as the balancer has it built in.
  HAP_TLS_BIND="  bind 127.0.0.1:$T_HAP ssl crt $WORK/tls.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2"
fi
BAL_HEALTH=()
[[ $CHECKS == 1 ]] || BAL_HEALTH+=(--health-path "")
[[ $ZONES == 1 ]] && BAL_HEALTH+=(--zone z1)
WEBTIER_LOG_LEVEL=warn "${ON_PROXY[@]}" "$BALANCER" --listen "127.0.0.1:$P_BAL" --admin-listen "127.0.0.1:$A_BAL" \
  --zk 127.0.0.1:1 --state-file "$WORK/state.json" --threads "$THREADS" "${BAL_TLS[@]}" "${BAL_HEALTH[@]}" \
  2>"$WORK/balancer.log" &
PIDS+=($!)
declare -A PROXY_PID
PROXY_PID[balancer]=$!
if [[ $ACCESS_LOG == 1 ]]; then
  alloc_port P_BAL3; alloc_port A_BAL3
  cp "$WORK/state.json" "$WORK/state3.json"
  WEBTIER_LOG_LEVEL=warn "${ON_PROXY[@]}" "$BALANCER" --listen "127.0.0.1:$P_BAL3" --admin-listen "127.0.0.1:$A_BAL3" \
    --zk 127.0.0.1:1 --state-file "$WORK/state3.json" --threads "$THREADS" "${BAL_HEALTH[@]}" \
    --access-log "$WORK/access.log" 2>"$WORK/balancer3.log" &
  PIDS+=($!)
  PROXY_PID[balancer+log]=$!
fi
if [[ $EDGE == 1 ]]; then
  alloc_port P_BAL2; alloc_port A_BAL2
  WEBTIER_LOG_LEVEL=warn "${ON_PROXY[@]}" "$BALANCER" --listen "127.0.0.1:$P_BAL2" --admin-listen "127.0.0.1:$A_BAL2" \
    --zk 127.0.0.1:1 --state-file "$WORK/state2.json" --threads "$THREADS" "${BAL_HEALTH[@]}" \
    --upstream-reuse always 2>"$WORK/balancer2.log" &
  PIDS+=($!)
  PROXY_PID[balancer-always]=$!
  # The worst request the balancer accepts at its defaults (16 KiB head, 100 fields).
  {
    echo 'local t = {}'
    echo 'for i = 0, 1299 do t[#t + 1] = "t" .. i end'
    echo 'wrk.headers["Connection"] = table.concat(t, ",")'
    echo 'for i = 1, 97 do wrk.headers["b" .. i] = "x" end'
  } >"$WORK/worst.lua"
fi

cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread $THREADS
  maxconn 4096
  ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305
  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse $HAPROXY_REUSE
frontend fe
  bind 127.0.0.1:$P_HAP
  bind 127.0.0.1:$P_HAP_H2C proto h2
$HAP_TLS_BIND
$(if [[ $SAME_HEADERS == 1 ]]; then cat <<EOH
  option forwardfor
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http unless { ssl_fc }
  unique-id-format %[rand,hex]%[rand,hex]
  unique-id-header X-Request-Id
  http-response set-header X-Request-Id %[unique-id]
EOH
fi)
  default_backend be
backend be
  balance roundrobin
$(i=0; for p in "${BPORTS[@]}"; do i=$((i + 1))
  echo "  server b$i 127.0.0.1:$p$([[ $CHECKS == 1 ]] && echo ' check inter 1s')"; done)
$([[ $CHECKS == 1 ]] && echo '  option httpchk GET /health')
EOF
"${ON_PROXY[@]}" /usr/sbin/haproxy -f "$WORK/haproxy.cfg" -db 2>"$WORK/haproxy.log" &
PIDS+=($!)
PROXY_PID[haproxy]=$!  # -db: one process, its threads included in its CPU time

mkdir -p "$WORK/proxy"
cat >"$WORK/proxy/nginx.conf" <<EOF
worker_processes $THREADS;
daemon off;
error_log $WORK/proxy/error.log;
pid $WORK/proxy/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/proxy/body; proxy_temp_path $WORK/proxy/proxy;
  fastcgi_temp_path $WORK/proxy/fcgi; uwsgi_temp_path $WORK/proxy/uwsgi; scgi_temp_path $WORK/proxy/scgi;
  keepalive_requests 1000000;
  upstream be { $(for p in "${BPORTS[@]}"; do printf 'server 127.0.0.1:%s; ' "$p"; done)keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$P_NGX;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
$(if [[ $SAME_HEADERS == 1 ]]; then cat <<EOH
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Request-Id \$request_id; add_header X-Request-Id \$request_id;
EOH
fi)
    } }
}
EOF
"${ON_PROXY[@]}" /usr/sbin/nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" &
PIDS+=($!)
PROXY_PID[nginx]=$!  # the master: its workers are counted through it (proxy_pids)

wait_http "http://127.0.0.1:$P_BAL/" || { cat "$WORK/balancer.log"; exit 1; }
if [[ $EDGE == 1 ]]; then wait_http "http://127.0.0.1:$P_BAL2/" || { cat "$WORK/balancer2.log"; exit 1; }; fi
if [[ $ACCESS_LOG == 1 ]]; then wait_http "http://127.0.0.1:$P_BAL3/" || { cat "$WORK/balancer3.log"; exit 1; }; fi
wait_http "http://127.0.0.1:$P_HAP/" || { cat "$WORK/haproxy.log"; exit 1; }
wait_http "http://127.0.0.1:$P_NGX/" || { cat "$WORK/proxy/error.log"; exit 1; }
if [[ $TLS == 1 ]]; then
  for p in $T_BAL $T_HAP; do
    for _ in $(seq 100); do curl -kfsS -o /dev/null "https://127.0.0.1:$p/" 2>/dev/null && break; sleep 0.1; done
    curl -kfsS -o /dev/null "https://127.0.0.1:$p/" || { cat "$WORK/balancer.log" "$WORK/haproxy.log"; exit 1; }
  done
fi

# ---- load
# PACE_MS>0: every connection waits that long after each answer before its next
# request (wrk's delay()), so the offered load is about CONNECTIONS/PACE_MS per
# ms whatever the proxy; latency is then compared at (nearly) the same rate
# instead of at each proxy's own saturation point.
WRK_ARGS=()
if [[ $PACE_MS != 0 ]]; then
  printf 'function delay() return %s end\n' "$PACE_MS" >"$WORK/pace.lua"
  WRK_ARGS=(-s "$WORK/pace.lua")
fi
# ROUNDS>1 interleaves the proxies, swapping which of the balancer and HAProxy
# goes first in every other round, and reports medians: of each proxy's
# figures, and of the balancer/HAProxy ratios taken within each round (paired,
# so slow drifts of the machine cancel), with their range.
ROUNDS=${ROUNDS:-1}
declare -A RPS P99 LAST_RPS LAST_P99
RPS_RATIOS="" P99_RATIOS="" CPU_RATIOS="" SYS_RATIOS="" LOG_RATIOS="" LOG_CPU_RATIOS=""
# WIRE=1 also captures 1.5 s of the client side of each proxy with tcpdump
# (on wrk's cores) and prints, per request, the time from the request's first
# byte reaching the proxy to the response's first byte leaving it. Together
# with wrk's own figure this splits the latency into the proxy's part and the
# load generator's (waiting for a core to send or to read). tcpdump costs
# some CPU during the capture, the same for each proxy.
declare -A WIRE_P99 LAST_WIRE
WIRE_RATIOS=""
wire_inside() {  # port capture -> "p50 p99" in ms
  tcpdump -q -n -tt -r "$2" 2>/dev/null | awk -v port="$1" '
    $7 > 0 {
      n = split($3, a, "."); sp = a[n]; sub(/:$/, "", $5); n = split($5, b, "."); dp = b[n]
      if (dp == port && !(sp in req)) req[sp] = $1
      else if (sp == port && (dp in req)) { printf "%.6f\n", ($1 - req[dp]) * 1000; delete req[dp] }
    }' | sort -g | awk '{v[NR] = $1} END { if (NR) printf "%.2f %.2f\n", v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1]; else print "n/a n/a" }'
}
# A proxy's processes: the one started and its children (nginx's workers).
proxy_pids() { [[ -n ${1:-} ]] && { echo "$1"; pgrep -P "$1" || true; }; }
# CPU time (user + system, clock ticks) a proxy's processes have used so far; 0 when unknown.
cpu_ticks() {
  local pid total=0 t
  for pid in $(proxy_pids "${1:-}"); do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}
# The syscalls counted: all, and by kind with SYSCALL_DETAIL=1.
SYSCALL_KINDS=(read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_ctl accept4 connect
  close shutdown setsockopt getsockopt getsockname getpeername ioctl futex timerfd_settime)
PERF_EVENTS=(-e raw_syscalls:sys_enter)
if [[ $SYSCALL_DETAIL == 1 ]]; then
  for k in "${SYSCALL_KINDS[@]}"; do PERF_EVENTS+=(-e "syscalls:sys_enter_$k"); done
fi
TICK=$(getconf CLK_TCK)
declare -A LAST_CPU CPU LAST_SYS SYS
run() {  # name port [scheme [extra wrk args...]]
  local name=$1 port=$2 scheme=${3:-http}
  shift $(( $# > 2 ? 3 : 2 ))
  local rps p99 wire="" url="$scheme://127.0.0.1:$port/" pid cpu0 cpu="n/a" perf_pid="" sys="n/a" detail=""
  pid=${PROXY_PID[${name%% *}]:-}
  "${ON_WRK[@]}" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d1s "$@" "$url" >/dev/null 2>&1 || true  # warm-up
  if [[ $SYSCALLS == 1 && -n $pid ]]; then
    # On wrk's cores: the counting itself costs the proxy only the tracepoint.
    "${ON_WRK[@]}" perf stat -x, "${PERF_EVENTS[@]}" -p "$(proxy_pids "$pid" | paste -sd,)" -o "$WORK/perf.out" &
    perf_pid=$!
  fi
  cpu0=$(cpu_ticks "$pid")
  WRK="${ON_WRK[*]} wrk" run_wrk_total "$url" "$WRK_THREADS" "$CONNECTIONS" "${DURATION%s}" "${WRK_ARGS[@]}" "$@" >"$WORK/wrk.out" &
  local wrk_pid=$!
  if [[ $WIRE == 1 ]]; then
    sleep 2
    "${ON_WRK[@]}" timeout 1.5 tcpdump -i lo -q -n -s 96 -w "$WORK/capture" "tcp port $port" 2>/dev/null || true
  fi
  wait "$wrk_pid" || true  # a failed wrk leaves the figures empty, as before
  local total
  read -r rps p99 total <"$WORK/wrk.out"
  # Per request: over the requests wrk completed (its run outlasts DURATION
  # on a loaded machine, which req/s x DURATION would count as extra
  # syscalls and CPU per request).
  [[ -n $total && $total -gt 0 ]] || total=$(awk -v r="${rps:-0}" -v d="${DURATION%s}" 'BEGIN { printf "%d", r * d }')
  if [[ -n $perf_pid ]]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    if [[ -n $rps ]]; then
      sys=$(awk -F, -v n="$total" '$3 == "raw_syscalls:sys_enter" && n > 0 { printf "%.2f", $1 / n }' "$WORK/perf.out")
      [[ -n $sys ]] || sys="n/a"
      LAST_SYS[$name]=$sys
      SYS[$name]+="$sys "
      if [[ $SYSCALL_DETAIL == 1 ]]; then
        detail=$(awk -F, -v n="$total" '$3 ~ /^syscalls:sys_enter_/ && $1 + 0 > 0 && n > 0 {
          k = $3; sub(/^syscalls:sys_enter_/, "", k); printf "%s%s %.2f", sep, k, $1 / n; sep = ", " }' "$WORK/perf.out")
      fi
    fi
  fi
  # The proxy's CPU time per request: unlike req/s, hardly moved by what
  # else runs on the machine (the balancer's figure includes its ZooKeeper
  # retry thread, a few ticks).
  if [[ -n $pid && -n $rps ]]; then
    cpu=$(awk -v a="$cpu0" -v b="$(cpu_ticks "$pid")" -v t="$TICK" -v n="$total" \
      'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / t / n; else print "n/a" }')
    LAST_CPU[$name]=$cpu
    CPU[$name]+="$cpu "
  fi
  if [[ $WIRE == 1 ]]; then
    local in50 in99
    read -r in50 in99 < <(wire_inside "$port" "$WORK/capture")
    rm -f "$WORK/capture"
    wire=$(printf "   inside the proxy: p50 %5s ms  p99 %5s ms" "$in50" "$in99")
    WIRE_P99[$name]+="$in99 "
    LAST_WIRE[$name]=$in99
  fi
  printf "  %-22s %12s req/s  p99 %8s ms  cpu %6s us/req  %5s syscalls/req%s\n" "$name" "$rps" "$p99" "$cpu" "$sys" "$wire"
  [[ -n $detail ]] && printf "  %-22s   %s\n" "" "$detail"
  RPS[$name]+="$rps "
  P99[$name]+="$p99 "
  LAST_RPS[$name]=$rps
  LAST_P99[$name]=$p99
}

# The TLS targets of one round: balancer and HAProxy, in `order`.
declare -A TLS_RATIOS TLS_CPU_RATIOS TLS_SYS_RATIOS EDGE_RATIOS
tls_round() {  # first-proxy
  local target args order=(balancer haproxy)
  [[ $1 == haproxy ]] && order=(haproxy balancer)
  for target in tls-keepalive tls-handshake; do
    args=()
    [[ $target == tls-handshake ]] && args=(-H "Connection: close")
    for p in "${order[@]}"; do
      if [[ $p == balancer ]]; then run "balancer $target" "$T_BAL" https "${args[@]}"
      else run "haproxy $target" "$T_HAP" https "${args[@]}"; fi
    done
    TLS_RATIOS[$target]+="$(ratio "${LAST_RPS[balancer $target]}" "${LAST_RPS[haproxy $target]}") "
    TLS_CPU_RATIOS[$target]+="$(ratio "${LAST_CPU[balancer $target]:-0}" "${LAST_CPU[haproxy $target]:-0}") "
    TLS_SYS_RATIOS[$target]+="$(ratio "${LAST_SYS[balancer $target]:-0}" "${LAST_SYS[haproxy $target]:-0}") "
  done
}

# One HTTP/2 target: h2load instead of wrk, the same CPU and syscall counts.
run_h2() {  # name port scheme
  local name=$1 port=$2 scheme=$3 url="$3://127.0.0.1:$2/" pid cpu0 cpu="n/a" perf_pid="" sys="n/a" rps mean total
  pid=${PROXY_PID[${name%% *}]:-}
  "${ON_WRK[@]}" h2load -t "$WRK_THREADS" -c "$H2_CLIENTS" -m "$H2_STREAMS" -D 1 "$url" >/dev/null 2>&1 || true  # warm-up
  if [[ $SYSCALLS == 1 && -n $pid ]]; then
    "${ON_WRK[@]}" perf stat -x, -e raw_syscalls:sys_enter -p "$(proxy_pids "$pid" | paste -sd,)" -o "$WORK/perf.out" &
    perf_pid=$!
  fi
  cpu0=$(cpu_ticks "$pid")
  "${ON_WRK[@]}" h2load -t "$WRK_THREADS" -c "$H2_CLIENTS" -m "$H2_STREAMS" -D "${DURATION%s}" "$url" >"$WORK/h2load.out" 2>&1 || true
  rps=$(awk '/^finished in/ { sub(",", "", $4); print $4 }' "$WORK/h2load.out")
  total=$(awk '/^requests:/ { print $8 }' "$WORK/h2load.out")
  mean=$(awk '/^time for request:/ { v = $6; if (v ~ /us$/) { sub("us", "", v); v /= 1000 } else if (v ~ /ms$/) sub("ms", "", v); else if (v ~ /s$/) { sub("s", "", v); v *= 1000 }; printf "%.2f", v }' "$WORK/h2load.out")
  if [[ -n $perf_pid ]]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    sys=$(awk -F, -v n="${total:-0}" '$3 == "raw_syscalls:sys_enter" && n > 0 { printf "%.2f", $1 / n }' "$WORK/perf.out")
    [[ -n $sys ]] || sys="n/a"
    LAST_SYS[$name]=$sys
    SYS[$name]+="$sys "
  fi
  if [[ -n $pid && -n ${total:-} && $total -gt 0 ]]; then
    cpu=$(awk -v a="$cpu0" -v b="$(cpu_ticks "$pid")" -v t="$TICK" -v n="$total" 'BEGIN { printf "%.1f", (b - a) * 1e6 / t / n }')
    LAST_CPU[$name]=$cpu
    CPU[$name]+="$cpu "
  fi
  printf "  %-22s %12s req/s  mean %7s ms  cpu %6s us/req  %5s syscalls/req  (%s failed)\n" "$name" "${rps:-n/a}" \
    "${mean:-n/a}" "$cpu" "$sys" "$(awk '/^requests:/ { print $10 }' "$WORK/h2load.out")"
  RPS[$name]+="$rps "
  P99[$name]+="$mean "
  LAST_RPS[$name]=$rps
}

# The HTTP/2 targets of one round: balancer and HAProxy, in `order`.
declare -A H2_RATIOS H2_CPU_RATIOS H2_SYS_RATIOS H2_OWN_CPU
h2_round() {  # first-proxy
  local target order=(balancer haproxy)
  [[ $1 == haproxy ]] && order=(haproxy balancer)
  for target in h2c h2-tls; do
    [[ $target == h2-tls && $TLS != 1 ]] && continue
    for p in "${order[@]}"; do
      if [[ $target == h2c ]]; then
        if [[ $p == balancer ]]; then run_h2 "balancer h2c" "$P_BAL" http; else run_h2 "haproxy h2c" "$P_HAP_H2C" http; fi
      else
        if [[ $p == balancer ]]; then run_h2 "balancer h2-tls" "$T_BAL" https; else run_h2 "haproxy h2-tls" "$T_HAP" https; fi
      fi
    done
    H2_RATIOS[$target]+="$(ratio "${LAST_RPS[balancer $target]}" "${LAST_RPS[haproxy $target]}") "
    H2_CPU_RATIOS[$target]+="$(ratio "${LAST_CPU[balancer $target]:-0}" "${LAST_CPU[haproxy $target]:-0}") "
    H2_SYS_RATIOS[$target]+="$(ratio "${LAST_SYS[balancer $target]:-0}" "${LAST_SYS[haproxy $target]:-0}") "
  done
  H2_OWN_CPU[h2c]+="$(ratio "${LAST_CPU[balancer h2c]:-0}" "${LAST_CPU[balancer]:-0}") "
  [[ $TLS == 1 ]] && H2_OWN_CPU[h2-tls]+="$(ratio "${LAST_CPU[balancer h2-tls]:-0}" "${LAST_CPU[balancer tls-keepalive]:-0}") "
  return 0
}

echo "proxy threads: $THREADS   wrk: -t$WRK_THREADS -c$CONNECTIONS -d$DURATION   body: $BODY_BYTES bytes   cores: $NCPU   rounds: $ROUNDS   same headers: $SAME_HEADERS   pace: ${PACE_MS} ms   members: $MEMBERS   checks: $CHECKS   zones: $ZONES   layout: ${LAYOUT}${PROXY_CPUS:+ (proxies on cpu $PROXY_CPUS, wrk on $WRK_CPUS, backend on ${LOAD_CPUS:-$PROXY_CPUS})}"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  if (( r % 2 )); then
    run balancer "$P_BAL"; run haproxy "$P_HAP"
  else
    run haproxy "$P_HAP"; run balancer "$P_BAL"
  fi
  run nginx "$P_NGX"
  if [[ $ACCESS_LOG == 1 ]]; then
    if (( r % 2 )); then run "balancer+log" "$P_BAL3"; run "balancer again" "$P_BAL"
    else run "balancer again" "$P_BAL"; run "balancer+log" "$P_BAL3"; fi
    LOG_RATIOS+="$(ratio "${LAST_RPS[balancer+log]}" "${LAST_RPS[balancer again]}") "
    LOG_CPU_RATIOS+="$(ratio "${LAST_CPU[balancer+log]:-0}" "${LAST_CPU[balancer again]:-0}") "
  fi
  if [[ $TLS == 1 ]]; then
    if (( r % 2 )); then tls_round balancer; else tls_round haproxy; fi
  fi
  if [[ $H2 == 1 ]]; then
    if (( r % 2 )); then h2_round balancer; else h2_round haproxy; fi
  fi
  if [[ $EDGE == 1 ]]; then
    run "balancer close" "$P_BAL" http -H "Connection: close"
    run "balancer-always close" "$P_BAL2" http -H "Connection: close"
    run "haproxy close" "$P_HAP" http -H "Connection: close"
    run "balancer worst" "$P_BAL" http -s "$WORK/worst.lua"
    run "haproxy worst" "$P_HAP" http -s "$WORK/worst.lua"
    EDGE_RATIOS[close]+="$(ratio "${LAST_RPS[balancer close]}" "${LAST_RPS[haproxy close]}") "
    EDGE_RATIOS[reuse]+="$(ratio "${LAST_RPS[balancer close]}" "${LAST_RPS[balancer-always close]}") "
    EDGE_RATIOS[worst]+="$(ratio "${LAST_RPS[balancer worst]}" "${LAST_RPS[haproxy worst]}") "
    EDGE_RATIOS[worst_cpu]+="$(ratio "${LAST_CPU[balancer worst]:-0}" "${LAST_CPU[balancer]:-0}") "
    EDGE_RATIOS[haproxy_worst_cpu]+="$(ratio "${LAST_CPU[haproxy worst]:-0}" "${LAST_CPU[haproxy]:-0}") "
  fi
  RPS_RATIOS+="$(ratio "${LAST_RPS[balancer]}" "${LAST_RPS[haproxy]}") "
  CPU_RATIOS+="$(ratio "${LAST_CPU[balancer]:-0}" "${LAST_CPU[haproxy]:-0}") "
  SYS_RATIOS+="$(ratio "${LAST_SYS[balancer]:-0}" "${LAST_SYS[haproxy]:-0}") "
  P99_RATIOS+="$(ratio "${LAST_P99[balancer]}" "${LAST_P99[haproxy]}") "
  [[ $WIRE == 1 ]] && WIRE_RATIOS+="$(ratio "${LAST_WIRE[balancer]}" "${LAST_WIRE[haproxy]}") "
done

declare -A MRPS MP99
for n in balancer haproxy nginx; do
  MRPS[$n]=$(median "${RPS[$n]}")
  MP99[$n]=$(median "${P99[$n]}")
done
echo
printf "%-10s %12s %10s %10s %14s   (median of %d)\n" proxy "req/s" "p99(ms)" "us/req" "syscalls/req" "$ROUNDS"
for n in balancer haproxy nginx; do
  printf "%-10s %12s %10s %10s %14s" "$n" "${MRPS[$n]}" "${MP99[$n]}" "$(median "${CPU[$n]:-}")" "$(median "${SYS[$n]:-}")"
  [[ $WIRE == 1 ]] && printf "   p99 inside the proxy %s ms" "$(median "${WIRE_P99[$n]}")"
  echo
done
awk -v b="${MRPS[balancer]}" -v h="${MRPS[haproxy]}" -v n="${MRPS[nginx]}" \
  -v bp="${MP99[balancer]}" -v hp="${MP99[haproxy]}" 'BEGIN {
  printf "\nbalancer/haproxy req/s ratio: %.2f   p99 ratio: %.2f\n", b / h, bp / hp
  printf "balancer/nginx   req/s ratio: %.2f\n", b / n }'
if (( ROUNDS > 1 )); then
  range() { tr ' ' '\n' <<<"$*" | grep . | sort -g | sed -n '1p;$p' | paste -sd-; }
  echo "paired per-round balancer/haproxy: req/s ratio median $(median "$RPS_RATIOS") (range $(range "$RPS_RATIOS")), p99 ratio median $(median "$P99_RATIOS") (range $(range "$P99_RATIOS")), CPU per request ratio median $(median "$CPU_RATIOS") (range $(range "$CPU_RATIOS"))"
  [[ $SYSCALLS == 1 ]] && echo "paired per-round balancer/haproxy syscalls per request ratio median $(median "$SYS_RATIOS") (range $(range "$SYS_RATIOS"))"
  [[ $WIRE == 1 ]] && echo "paired per-round balancer/haproxy p99 inside the proxy: ratio median $(median "$WIRE_RATIOS") (range $(range "$WIRE_RATIOS"))"
fi
if [[ $TLS == 1 ]]; then
  echo
  printf "%-24s %12s %10s   (median of %d)\n" "TLS target" "req/s" "p99(ms)" "$ROUNDS"
  for target in tls-keepalive tls-handshake; do
    for p in balancer haproxy; do
      printf "%-24s %12s %10s\n" "$p $target" "$(median "${RPS[$p $target]}")" "$(median "${P99[$p $target]}")"
    done
    echo "  paired per-round balancer/haproxy $target req/s ratio: median $(median "${TLS_RATIOS[$target]}") (rounds: ${TLS_RATIOS[$target]% })"
    echo "  paired per-round balancer/haproxy $target CPU per request ratio: median $(median "${TLS_CPU_RATIOS[$target]}") (rounds: ${TLS_CPU_RATIOS[$target]% }; below 1: the balancer spends less)"
    [[ $SYSCALLS == 1 ]] && echo "  syscalls per request: balancer $(median "${SYS[balancer $target]}"), haproxy $(median "${SYS[haproxy $target]}") (paired ratio median $(median "${TLS_SYS_RATIOS[$target]}"))"
  done
fi
if [[ $H2 == 1 ]]; then
  echo
  printf "%-24s %12s %10s %10s %14s   (median of %d; h2load -c%s -m%s)\n" "HTTP/2 target" "req/s" "mean(ms)" "us/req" "syscalls/req" "$ROUNDS" "$H2_CLIENTS" "$H2_STREAMS"
  for target in h2c h2-tls; do
    [[ $target == h2-tls && $TLS != 1 ]] && continue
    for p in balancer haproxy; do
      printf "%-24s %12s %10s %10s %14s\n" "$p $target" "$(median "${RPS[$p $target]}")" "$(median "${P99[$p $target]}")" \
        "$(median "${CPU[$p $target]:-}")" "$(median "${SYS[$p $target]:-}")"
    done
    echo "  paired per-round balancer/haproxy $target: req/s ratio median $(median "${H2_RATIOS[$target]}") (rounds: ${H2_RATIOS[$target]% }), CPU per request ratio median $(median "${H2_CPU_RATIOS[$target]}"), syscalls per request ratio median $(median "${H2_SYS_RATIOS[$target]}")"
  done
  echo "  the balancer's CPU per request, HTTP/2 against its own HTTP/1.1 keep-alive: h2c/plain $(median "${H2_OWN_CPU[h2c]}")$([[ $TLS == 1 ]] && echo ", h2-tls/tls-keepalive $(median "${H2_OWN_CPU[h2-tls]}")")"
fi
if [[ $ACCESS_LOG == 1 ]]; then
  echo
  printf "%-24s %12s %10s %10s %14s   (median of %d)\n" "access log" "req/s" "p99(ms)" "us/req" "syscalls/req" "$ROUNDS"
  for n in "balancer again" "balancer+log"; do
    printf "%-24s %12s %10s %10s %14s\n" "$n" "$(median "${RPS[$n]}")" "$(median "${P99[$n]}")" "$(median "${CPU[$n]:-}")" "$(median "${SYS[$n]:-}")"
  done
  echo "  access log on (JSON, every request)/off, paired per round: req/s median $(median "$LOG_RATIOS") (rounds: ${LOG_RATIOS% }), CPU per request median $(median "$LOG_CPU_RATIOS") (rounds: ${LOG_CPU_RATIOS% })"
  echo "  lines written: $(wc -l <"$WORK/access.log")"
fi
if [[ $EDGE == 1 ]]; then
  echo
  printf "%-24s %12s %10s %10s   (median of %d)\n" "edge target" "req/s" "p99(ms)" "us/req" "$ROUNDS"
  for n in "balancer close" "balancer-always close" "haproxy close" "balancer worst" "haproxy worst"; do
    printf "%-24s %12s %10s %10s\n" "$n" "$(median "${RPS[$n]}")" "$(median "${P99[$n]}")" "$(median "${CPU[$n]:-}")"
  done
  echo "  new connections, balancer (reuse safe)/haproxy req/s: median $(median "${EDGE_RATIOS[close]}") (rounds: ${EDGE_RATIOS[close]% })"
  echo "  what the reuse rule costs, balancer safe/always req/s: median $(median "${EDGE_RATIOS[reuse]}") (rounds: ${EDGE_RATIOS[reuse]% })"
  echo "  worst accepted request, balancer/haproxy req/s: median $(median "${EDGE_RATIOS[worst]}") (rounds: ${EDGE_RATIOS[worst]% })"
  echo "  worst/plain CPU per request: balancer $(median "${EDGE_RATIOS[worst_cpu]}"), haproxy $(median "${EDGE_RATIOS[haproxy_worst_cpu]}")"
fi
case $LAYOUT in
  client) echo "(wrk on cpu $WRK_CPUS, proxies and the backend on $PROXY_CPUS; expect 10-30% noise per run)" ;;
  proxy) echo "(proxies on cpu $PROXY_CPUS, wrk and the backend on $LOAD_CPUS; expect 10-30% noise per run)" ;;
  shared) echo "(wrk, proxies and backends share $NCPU cores; on a shared machine expect 10-30% noise per run)" ;;
esac
if [[ $SYSCALL_GATE == 1 ]]; then
  b=$(median "${SYS[balancer]}") h=$(median "${SYS[haproxy]}")
  if awk -v b="$b" -v h="$h" 'BEGIN { exit !(b > h) }'; then
    echo "SYSCALL BUDGET EXCEEDED: the balancer makes $b syscalls per plain keep-alive request, HAProxy $h" >&2
    exit 1
  fi
  echo "syscall budget kept: balancer $b per plain keep-alive request, HAProxy $h"
fi
