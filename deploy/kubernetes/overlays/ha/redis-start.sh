#!/bin/sh
# Starts one Redis of the ha overlay: as a replica of the primary that the
# Sentinels name, else (first start of the set) redis-0 is the primary and the
# others replicate it. A restarted former primary thus comes back as a replica
# and never takes writes from the webnodes again.
set -u
self="$(hostname).$HEADLESS"
master=""
for s in $(echo "$SENTINELS" | tr ',' ' '); do
  master=$(timeout 3 redis-cli -h "${s%:*}" -p "${s##*:}" --raw SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1)
  [ -n "$master" ] && break
done
if [ -z "$master" ]; then master="$BOOTSTRAP_PRIMARY.$HEADLESS"; fi
set -- redis-server --port 6379 --save "" --appendonly no --protected-mode no \
  --maxmemory 256mb --maxmemory-policy allkeys-lru --replica-announce-ip "$self"
case $master in
  "$self" | "$(hostname)"*) echo "redis-start: primary" ;;
  *) echo "redis-start: replica of $master"; set -- "$@" --replicaof "$master" 6379 ;;
esac
exec "$@"
