#!/bin/sh
# Writes /conf/zoo.cfg from the official image's variables, then runs ZooKeeper.
set -e
cat >/conf/zoo.cfg <<CFG
dataDir=/data
dataLogDir=/datalog
tickTime=${ZOO_TICK_TIME:-2000}
initLimit=${ZOO_INIT_LIMIT:-5}
syncLimit=${ZOO_SYNC_LIMIT:-2}
maxClientCnxns=${ZOO_MAX_CLIENT_CNXNS:-60}
standaloneEnabled=${ZOO_STANDALONE_ENABLED:-true}
admin.enableServer=${ZOO_ADMINSERVER_ENABLED:-false}
4lw.commands.whitelist=${ZOO_4LW_COMMANDS_WHITELIST:-srvr,ruok}
clientPort=2181
CFG
if [ -n "$ZOO_SERVERS" ]; then
  for s in $ZOO_SERVERS; do echo "$s" >>/conf/zoo.cfg; done
fi
echo "${ZOO_MY_ID:-1}" >/data/myid
exec java "-Xmx${ZOO_HEAP_MB:-256}m" -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
  org.apache.zookeeper.server.quorum.QuorumPeerMain /conf/zoo.cfg
