#!/bin/sh
# Starts one Sentinel of the ha overlay. It monitors the primary that the
# other Sentinels name (after a failover that is no longer redis-0), else
# redis-0. Sentinel rewrites its configuration file, so it lives on an
# emptyDir, written fresh at every start (SENTINEL_CONF, default
# /etc/sentinel/sentinel.conf, mode 0600: it holds the passwords).
# Passwords: files in $SECRETS_DIR (default /etc/webtier/secrets, the Secret
# webtier-redis): sentinel-password is this Sentinel's requirepass and
# sentinel-pass (the Sentinels authenticate to each other with it),
# redis-password its auth-pass for the Redis servers.
set -u
umask 077
conf=${SENTINEL_CONF:-/etc/sentinel/sentinel.conf}
secrets=${SECRETS_DIR:-/etc/webtier/secrets}
self="$(hostname).$HEADLESS"
sentinel_password=$(cat "$secrets/sentinel-password")
redis_password=$(cat "$secrets/redis-password")
master=""
for s in $(echo "$SENTINELS" | tr ',' ' '); do
  case $s in "$self":*) continue ;; esac
  master=$(REDISCLI_AUTH="$sentinel_password" timeout 3 redis-cli --no-auth-warning -h "${s%:*}" -p "${s##*:}" \
    --raw SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1)
  # An error reply (NOAUTH, ...) or anything but a host name is no answer.
  case $master in *[!a-zA-Z0-9.-]* | "") master="" ;; *) break ;; esac
done
if [ -z "$master" ]; then master="$BOOTSTRAP_PRIMARY"; fi
cat >"$conf" <<CONF
port 26379
protected-mode yes
requirepass $sentinel_password
sentinel sentinel-pass $sentinel_password
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $self
sentinel monitor $MASTER_NAME $master 6379 $QUORUM
sentinel auth-pass $MASTER_NAME $redis_password
sentinel down-after-milliseconds $MASTER_NAME 5000
sentinel failover-timeout $MASTER_NAME 30000
sentinel parallel-syncs $MASTER_NAME 1
CONF
echo "sentinel-start: monitoring $MASTER_NAME at $master"
exec redis-server "$conf" --sentinel
