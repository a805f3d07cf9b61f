#!/bin/sh
# Init container of the webnode pods: writes the zone of the node the pod runs
# on (its topology.kubernetes.io/zone label) to $ZONE_FILE, for webnode --zone.
# The downward API exposes pod fields only, not node labels, so this asks the
# API server with the pod's service account (ClusterRole webtier-node-reader:
# get nodes). Any failure leaves $DEFAULT_ZONE: the pod still starts.
set -u
sa=/var/run/secrets/kubernetes.io/serviceaccount
zone=""
if [ -n "${NODE_NAME:-}" ] && [ -r "$sa/token" ]; then
  zone=$(curl -fsS --max-time 5 --cacert "$sa/ca.crt" -H "Authorization: Bearer $(cat "$sa/token")" \
      "https://kubernetes.default.svc/api/v1/nodes/$NODE_NAME" 2>/dev/null |
    tr ',{}' '\n' | sed -n 's|^ *"topology.kubernetes.io/zone": *"\([^"]*\)".*|\1|p' | head -n 1)
fi
[ -n "$zone" ] || zone=${DEFAULT_ZONE:-local}
echo "node-zone: node ${NODE_NAME:-?} zone $zone"
printf '%s\n' "$zone" >"$ZONE_FILE"
