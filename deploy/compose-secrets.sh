#!/usr/bin/env bash
# Makes the secrets the compose files mount (run once before the first
# `compose up`; the files are kept, so later runs change nothing):
#
#   deploy/compose-secrets.sh [DIR]      (default deploy/secrets, or $WEBTIER_SECRETS_DIR)
#
#   redis-password           Redis' requirepass, for the webnodes (--redis-password-file)
#   edge-redis-password      the balancer's Redis user webtier-edge, which may only
#                            follow the invalidation channel (--edge-redis-password-file)
#   sentinel-password        the Sentinels' requirepass (--redis-sentinel-password-file)
#   grafana-admin-password   Grafana's admin password (GF_SECURITY_ADMIN_PASSWORD__FILE)
#   redis-auth.conf          requirepass + masterauth + the user webtier-edge, a config
#                            file redis-server reads
#   sentinel-auth.conf       requirepass, sentinel-pass and auth-pass, appended to a
#                            Sentinel's config when it is first written
#   redis-exporter.json      the Redis exporter's password file (URI -> password)
#
# Each password is 24 random bytes in hex. DIR is 0700 (only its owner can
# reach the files); the files are 0644 because each container reads them as
# its own user (redis, the exporter's, uid 10001, Grafana's), and a container
# sees only the files mounted into it. Passwords are never printed.
# To rotate: delete DIR (or one file) and run again, then recreate the stack
# (`down -v` for the Sentinels, whose config holds the passwords): docs/deploy.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-${WEBTIER_SECRETS_DIR:-$here/secrets}}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

# password NAME: DIR/NAME, made when missing or empty.
password() {
  local f=$dir/$1
  if [[ ! -s $f ]]; then
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$f.tmp"
    mv "$f.tmp" "$f"
    echo "made $f"
  fi
}
password redis-password
password edge-redis-password
password sentinel-password
password grafana-admin-password

redis=$(<"$dir/redis-password")
edge=$(<"$dir/edge-redis-password")
sentinel=$(<"$dir/sentinel-password")
# Derived files: rewritten every run from the passwords above.
# The balancers' user: SUBSCRIBE to webtier:purge and PING, no key, no other
# channel, no other command (balancer/README.md "Edge cache").
printf 'requirepass %s\nmasterauth %s\nuser webtier-edge on >%s resetchannels &webtier:purge resetkeys -@all +subscribe +ping\n' \
  "$redis" "$redis" "$edge" >"$dir/redis-auth.conf"
printf 'requirepass %s\nsentinel sentinel-pass %s\nsentinel auth-pass webtier %s\n' \
  "$sentinel" "$sentinel" "$redis" >"$dir/sentinel-auth.conf"
printf '{"redis://redis:6379": "%s"}\n' "$redis" >"$dir/redis-exporter.json"
chmod 644 "$dir"/*
echo "secrets in $dir (passwords not shown)"
