#!/usr/bin/env bash
# Builds the test-only stand-ins for the official images deploy/docker-compose.yml
# uses (see standins/README.md), from Debian packages on the local
# debian:bookworm-slim (build-base.sh). Skips images that exist unless --force.
#   deploy/podman/build-standins.sh [--force] [NAME...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
force=0
[[ ${1:-} == --force ]] && { force=1; shift; }
declare -A TAGS=(
  [zookeeper]=docker.io/library/zookeeper:3.8
  [redis]=docker.io/library/redis:7.0
  [prometheus]=docker.io/prom/prometheus:v2.42.0
  [redis-exporter]=docker.io/oliver006/redis_exporter:v1.45.0
  [grafana]=docker.io/grafana/grafana:10.4.2
)
names=("$@")
((${#names[@]})) || names=(zookeeper redis prometheus redis-exporter grafana)
"$here/build-base.sh"
for n in "${names[@]}"; do
  tag=${TAGS[$n]:?unknown stand-in $n}
  if ((!force)) && podman image exists "$tag"; then echo "stand-in $tag present"; continue; fi
  echo "building stand-in $tag"
  podman build --pull=never --format docker -t "$tag" \
    --label webtier.test-standin=true "$here/standins/$n"
done
