#!/bin/sh
# Starts one Sentinel of the ha overlay. It monitors the primary that the
# other Sentinels name (after a failover that is no longer redis-0), else
# redis-0. Sentinel rewrites its configuration file, so it lives on an
# emptyDir, written fresh at every start (SENTINEL_CONF, default
# /etc/sentinel/sentinel.conf).
set -u
conf=${SENTINEL_CONF:-/etc/sentinel/sentinel.conf}
self="$(hostname).$HEADLESS"
master=""
for s in $(echo "$SENTINELS" | tr ',' ' '); do
  case $s in "$self":*) continue ;; esac
  master=$(timeout 3 redis-cli -h "${s%:*}" -p "${s##*:}" --raw SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1)
  [ -n "$master" ] && break
done
if [ -z "$master" ]; then master="$BOOTSTRAP_PRIMARY"; fi
cat >"$conf" <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $self
sentinel monitor $MASTER_NAME $master 6379 $QUORUM
sentinel down-after-milliseconds $MASTER_NAME 5000
sentinel failover-timeout $MASTER_NAME 30000
sentinel parallel-syncs $MASTER_NAME 1
CONF
echo "sentinel-start: monitoring $MASTER_NAME at $master"
exec redis-server "$conf" --sentinel
