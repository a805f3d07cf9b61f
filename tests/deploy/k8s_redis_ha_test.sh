#!/usr/bin/env bash
# The Kubernetes ha overlay's Redis start scripts, run for real: redis-start.sh
# and sentinel-start.sh (deploy/kubernetes/overlays/ha) start redis-0, redis-1
# and three Sentinels, each a "pod" in a network namespace of its own on one
# bridge, with the pod's hostname (UTS namespace) and the headless-Service
# names in the namespace's /etc/hosts (/etc/netns/NAME/hosts, which
# `ip netns exec` mounts). Checks: redis-0 primary and redis-1 its replica, the
# Sentinels agree; redis-0 SIGKILLed -> the Sentinels promote redis-1; redis-0
# restarted -> it asks the Sentinels and comes back as a replica of redis-1,
# never as a second primary. With passwords, as the overlay runs them (files
# like the Secret webtier-redis's): clients without one get NOAUTH from Redis
# and from the Sentinels, and neither password is on a command line.
#   k8s_redis_ha_test.sh      (ctest deploy.k8s_redis_ha, label faults; root)
# Exit 77 (ctest SKIP) without root, ip, unshare or redis-server.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SCRIPTS=$(cd "$HERE/../../deploy/kubernetes/overlays/ha" && pwd)
skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces)"
for t in ip unshare redis-server redis-cli; do command -v "$t" >/dev/null || skip "$t is not installed"; done

NET=198.18.121  # this test's LAN (tests/faults/net_host.h: 198.18.0.0/15)
TAG=k8r$$
SWITCH=wtsw$TAG
WORK=$(mktemp -d /tmp/webtier-redis-ha.XXXXXX)
PODS=(redis-0 redis-1 redis-sentinel-0 redis-sentinel-1 redis-sentinel-2)
SERVICE=(redis-headless redis-headless redis-sentinel-headless redis-sentinel-headless redis-sentinel-headless)
SENTINELS=redis-sentinel-0.redis-sentinel-headless:26379,redis-sentinel-1.redis-sentinel-headless:26379,redis-sentinel-2.redis-sentinel-headless:26379
declare -A PID=()
# The Secret webtier-redis as the pods see it (a mounted directory).
mkdir -p "$WORK/secrets"
REDIS_PW=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
SENTINEL_PW=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$REDIS_PW" >"$WORK/secrets/redis-password"
printf '%s\n' "$SENTINEL_PW" >"$WORK/secrets/sentinel-password"
# Its optional key edge-redis-password, mounted apart (/etc/webtier/edge).
mkdir -p "$WORK/edge"
EDGE_PW=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
printf '%s' "$EDGE_PW" >"$WORK/edge/edge-redis-password"

cleanup() {
  for i in "${!PID[@]}"; do kill -KILL "${PID[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for i in "${!PODS[@]}"; do
    ip netns del "wt${TAG}p$i" 2>/dev/null || true
    rm -rf "/etc/netns/wt${TAG}p$i"
  done
  ip netns del "$SWITCH" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$SWITCH"
ip -n "$SWITCH" link add br0 type bridge
ip -n "$SWITCH" link set br0 up
echo "127.0.0.1 localhost" >"$WORK/hosts"
for i in "${!PODS[@]}"; do echo "$NET.$((i + 2)) ${PODS[$i]}.${SERVICE[$i]}" >>"$WORK/hosts"; done
for i in "${!PODS[@]}"; do
  ns=wt${TAG}p$i
  ip netns add "$ns"
  mkdir -p "/etc/netns/$ns"
  cp "$WORK/hosts" "/etc/netns/$ns/hosts"
  ip -n "$SWITCH" link add "p$i" type veth peer name eth0 netns "$ns"
  ip -n "$SWITCH" link set "p$i" master br0 up
  ip -n "$ns" addr add "$NET.$((i + 2))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done

# Starts pod i with the overlay's script and the environment its manifest sets.
start() {
  local i=$1 env script
  if ((i < 2)); then
    env="HEADLESS=redis-headless BOOTSTRAP_PRIMARY=redis-0 REDIS_AUTH_CONF=$WORK/auth-$i.conf"
    script=redis-start.sh
  else
    env="HEADLESS=redis-sentinel-headless BOOTSTRAP_PRIMARY=redis-0.redis-headless QUORUM=2 SENTINEL_CONF=$WORK/sentinel-$i.conf"
    script=sentinel-start.sh
  fi
  # ip netns exec, unshare, sh and the script all exec: $! is the server.
  ip netns exec "wt${TAG}p$i" unshare --uts sh -c \
    "hostname ${PODS[$i]} && cd $WORK && exec env $env SECRETS_DIR=$WORK/secrets EDGE_SECRETS_DIR=$WORK/edge MASTER_NAME=webtier SENTINELS=$SENTINELS sh $SCRIPTS/$script" \
    >>"$WORK/${PODS[$i]}.log" 2>&1 &
  PID[$i]=$!
}

# cli POD PORT ARGS...: redis-cli in the pod, with the password of what listens on PORT.
cli() {
  local pw=$REDIS_PW
  [[ $2 == 26379 ]] && pw=$SENTINEL_PW
  REDISCLI_AUTH=$pw ip netns exec "wt${TAG}p$1" redis-cli --no-auth-warning -h 127.0.0.1 -p "$2" "${@:3}" 2>/dev/null || true
}
noauth() { [[ $(ip netns exec "wt${TAG}p$1" redis-cli -h 127.0.0.1 -p "$2" "${@:3}" 2>&1) == *NOAUTH* ]]; }
# as_edge POD ARGS...: redis-cli in the pod as the balancers' user webtier-edge.
as_edge() {
  ip netns exec "wt${TAG}p$1" redis-cli --no-auth-warning --user webtier-edge --pass "$EDGE_PW" -h 127.0.0.1 -p 6379 \
    "${@:2}" 2>&1 || true
}
master_of() { cli "$1" 26379 SENTINEL get-master-addr-by-name webtier | head -n 1; }
# wait_for SECONDS DESCRIPTION COMMAND...: polls every 0.2 s.
wait_for() {
  local until=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    if ((SECONDS >= until)); then
      echo "FAIL: $what"
      for p in "${PODS[@]}"; do echo "--- $p"; tail -n 15 "$WORK/$p.log"; done
      exit 1
    fi
    sleep 0.2
  done
  echo "ok: $what"
}
role_is() { [[ $(cli "$1" 6379 ROLE | head -n 1) == "$2" ]]; }
replica_of() { role_is "$1" slave && [[ $(cli "$1" 6379 ROLE | sed -n 2p) == "$2" ]] && [[ $(cli "$1" 6379 INFO replication) == *master_link_status:up* ]]; }
all_sentinels_see() {  # MASTER [REPLICAS]: every Sentinel names MASTER, knows 2 peers (and REPLICAS replicas)
  local i info
  for i in 2 3 4; do
    [[ $(master_of "$i") == "$1" ]] || return 1
    info="$(cli "$i" 26379 SENTINEL master webtier | paste -sd' ') "
    [[ $info == *"num-other-sentinels 2 "* ]] || return 1
    [[ -z ${2:-} || $info == *"num-slaves $2 "* ]] || return 1
  done
}

for i in "${!PODS[@]}"; do start "$i"; done
wait_for 20 "redis-0 is the primary" role_is 0 master
wait_for 20 "redis-1 replicates redis-0" replica_of 1 redis-0.redis-headless
wait_for 30 "the 3 Sentinels agree on redis-0 and know the replica and each other" \
  all_sentinels_see redis-0.redis-headless 1
cli 0 6379 SET webtier:probe before-failover >/dev/null
# Replication is asynchronous: the probe is known to be on the replica only
# once it acknowledged it (else a SIGKILL right after can lose it legitimately).
[[ $(cli 0 6379 WAIT 1 5000) -ge 1 ]] || { echo "FAIL: redis-1 did not acknowledge the probe within 5 s"; exit 1; }
noauth 0 6379 SET webtier:x y || { echo "FAIL: redis-0 takes a write without the password"; exit 1; }
noauth 2 26379 SENTINEL get-master-addr-by-name webtier || { echo "FAIL: a Sentinel answers without the password"; exit 1; }
for pid in "${PID[@]}"; do
  if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -e "$REDIS_PW" -e "$SENTINEL_PW" -e "$EDGE_PW"; then
    echo "FAIL: a password on the command line of $(tr '\0' ' ' <"/proc/$pid/cmdline")"; exit 1
  fi
done
echo "ok: no client without the password; no password in argv"
for pod in 0 1; do
  [[ $(as_edge "$pod" PING) == PONG ]] || { echo "FAIL: ${PODS[$pod]} has no user webtier-edge"; exit 1; }
  [[ $(as_edge "$pod" GET webtier:probe) == *NOPERM* ]] || { echo "FAIL: webtier-edge reads a key on ${PODS[$pod]}"; exit 1; }
  [[ $(as_edge "$pod" PUBLISH webtier:purge x) == *NOPERM* ]] || { echo "FAIL: webtier-edge publishes on ${PODS[$pod]}"; exit 1; }
done
echo "ok: the balancers' user webtier-edge on both servers, and it reads no key"

t0=$SECONDS
kill -KILL "${PID[0]}"
wait "${PID[0]}" 2>/dev/null || true
unset 'PID[0]'
wait_for 40 "the Sentinels promote redis-1 after redis-0 is SIGKILLed" role_is 1 master
wait_for 10 "every Sentinel names redis-1" all_sentinels_see redis-1.redis-headless
echo "failover took $((SECONDS - t0)) s (down-after 5 s)"
[[ $(cli 1 6379 GET webtier:probe) == before-failover ]] || { echo "FAIL: the replica lost the data"; exit 1; }

start 0
wait_for 20 "redis-0 restarts as a replica of redis-1, not as a second primary" replica_of 0 redis-1.redis-headless
grep -q "redis-start: replica of redis-1.redis-headless" "$WORK/redis-0.log" ||
  { echo "FAIL: redis-0 did not take the primary from the Sentinels"; cat "$WORK/redis-0.log"; exit 1; }
echo "ha Redis scripts: every check passed"
