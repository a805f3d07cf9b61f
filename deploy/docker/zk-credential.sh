#!/bin/sh
# Makes the ZooKeeper digest credential the web nodes and the balancer share
# (docs/operating.md "ZooKeeper access control"), once: a random password in
# $1 (default /etc/webtier/zk/auth), owned by the programs' uid, mode 0400.
# An existing file is kept: the znodes' ACLs name the credential they were
# created with, so a new one would lock the nodes out of their own path.
set -eu
f=${1:-/etc/webtier/zk/auth}
uid=${WEBTIER_UID:-10001}
if [ ! -s "$f" ]; then
  umask 077
  password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf 'webtier:%s\n' "$password" >"$f.tmp"
  mv "$f.tmp" "$f"
  echo "zk-credential: made $f"
fi
chown "$uid:$uid" "$f"
chmod 0400 "$f"
