#!/bin/sh
# Starts webnode advertising this container's own IP address (what the
# balancer and Prometheus can reach), unless WEBNODE_ADVERTISE is set.
set -e
if [ -z "${WEBNODE_ADVERTISE:-}" ]; then
  ip=$(hostname -i 2>/dev/null | tr ' ' '\n' | grep -v -e '^127\.' -e '^::1$' -e ':' | head -n 1 || true)
  if [ -n "$ip" ]; then
    export WEBNODE_ADVERTISE="$ip:${WEBNODE_LISTEN##*:}"
  fi
fi
exec /usr/local/bin/webnode "$@"
