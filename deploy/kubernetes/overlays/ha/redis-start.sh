#!/bin/sh
# Starts one Redis of the ha overlay: as a replica of the primary that the
# Sentinels name, else (first start of the set) redis-0 is the primary and the
# others replicate it. A restarted former primary thus comes back as a replica
# and never takes writes from the webnodes again.
# Passwords: files in $SECRETS_DIR (default /etc/webtier/secrets, the Secret
# webtier-redis): redis-password becomes requirepass and masterauth (any
# server may be a replica after a failover) in $REDIS_AUTH_CONF (default
# /data/auth.conf, mode 0600), which redis-server reads; sentinel-password
# asks the Sentinels (REDISCLI_AUTH, not argv); edge-redis-password in
# $EDGE_SECRETS_DIR (default /etc/webtier/edge, optional) is the password of
# the balancers' user webtier-edge, which may only SUBSCRIBE to the
# invalidation channel and PING.
set -u
umask 077
secrets=${SECRETS_DIR:-/etc/webtier/secrets}
edge_secrets=${EDGE_SECRETS_DIR:-/etc/webtier/edge}
auth_conf=${REDIS_AUTH_CONF:-/data/auth.conf}
self="$(hostname).$HEADLESS"
sentinel_password=$(cat "$secrets/sentinel-password")
master=""
for s in $(echo "$SENTINELS" | tr ',' ' '); do
  master=$(REDISCLI_AUTH="$sentinel_password" timeout 3 redis-cli --no-auth-warning -h "${s%:*}" -p "${s##*:}" \
    --raw SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1)
  # An error reply (NOAUTH, ...) or anything but a host name is no answer.
  case $master in *[!a-zA-Z0-9.-]* | "") master="" ;; *) break ;; esac
done
if [ -z "$master" ]; then master="$BOOTSTRAP_PRIMARY.$HEADLESS"; fi
redis_password=$(cat "$secrets/redis-password")
printf 'requirepass %s\nmasterauth %s\n' "$redis_password" "$redis_password" >"$auth_conf"
if [ -s "$edge_secrets/edge-redis-password" ]; then
  printf 'user webtier-edge on >%s resetchannels &webtier:purge resetkeys -@all +subscribe +ping\n' \
    "$(cat "$edge_secrets/edge-redis-password")" >>"$auth_conf"
fi
set -- redis-server "$auth_conf" --port 6379 --save "" --appendonly no --protected-mode yes \
  --maxmemory 256mb --maxmemory-policy allkeys-lru --replica-announce-ip "$self"
case $master in
  "$self" | "$(hostname)"*) echo "redis-start: primary" ;;
  *) echo "redis-start: replica of $master"; set -- "$@" --replicaof "$master" 6379 ;;
esac
exec "$@"
