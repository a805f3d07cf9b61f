#!/usr/bin/env bash
# Renders both Kubernetes overlays offline and validates every object against
# the Kubernetes 1.30 API types (k8s_schema/validate.mjs, kubernetes-types
# 1.30.0 checked by the TypeScript compiler). Also feeds the validator a broken
# object, which it must reject.
#   k8s_schema.sh render           # kubectl kustomize both overlays
#   k8s_schema.sh validate WORKDIR # npm ci into WORKDIR, then validate
# Exit 77 (ctest SKIP) without kubectl, node or a reachable npm registry.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
skip() { echo "SKIP: $*"; exit 77; }
command -v kubectl >/dev/null || skip "kubectl is not installed (docs/kubernetes.md)"
command -v python3 >/dev/null || skip "python3 is not installed"

# overlay -> JSON array of the rendered objects on stdout.
render_json() {
  kubectl kustomize "$REPO/deploy/kubernetes/overlays/$1" |
    python3 -c 'import json, sys, yaml; json.dump([o for o in yaml.safe_load_all(sys.stdin) if o], sys.stdout)'
}

case ${1:-} in
  render)
    for o in dev ha; do
      n=$(render_json "$o" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
      echo "overlays/$o: $n objects"
      ((n > 20)) || { echo "overlays/$o renders only $n objects"; exit 1; }
    done
    ;;
  validate)
    work=${2:?usage: $0 validate WORKDIR}
    command -v node >/dev/null || skip "node is not installed"
    command -v npm >/dev/null || skip "npm is not installed"
    mkdir -p "$work"
    cp "$HERE/k8s_schema/package.json" "$HERE/k8s_schema/package-lock.json" "$HERE/k8s_schema/validate.mjs" "$work/"
    # npm ci once per lock file; a later run reuses node_modules.
    stamp="$work/node_modules/.lock-$(sha256sum <"$work/package-lock.json" | cut -c1-16)"
    if [[ ! -e $stamp ]]; then
      if ! (cd "$work" && timeout 180 npm ci --no-audit --no-fund --loglevel=error); then
        timeout 20 npm ping >/dev/null 2>&1 || skip "the npm registry is unreachable (npm ci failed)"
        echo "npm ci failed"; exit 1
      fi
      touch "$stamp"
    fi
    for o in dev ha; do
      render_json "$o" >"$work/$o.json"
      node "$work/validate.mjs" "$work/$o.json" "overlays/$o"
    done
    # The validator must fail on a wrong object: an unknown field and a string port.
    python3 - "$work/ha.json" "$work/broken.json" <<'PY'
import json, sys
objs = json.load(open(sys.argv[1]))
d = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "webnode")
c = d["spec"]["template"]["spec"]["containers"][0]
c["readinessProbe"]["httpGet"]["paht"] = "/ready"
c["ports"][0]["containerPort"] = "8080"
json.dump([d], open(sys.argv[2], "w"))
PY
    if out=$(node "$work/validate.mjs" "$work/broken.json" broken); then
      echo "$out"; echo "the validator accepted a broken Deployment"; exit 1
    fi
    for want in "'\"paht\"' does not exist" "not assignable to type 'number'"; do
      grep -qF "$want" <<<"$out" || { echo "$out"; echo "the validator missed: $want"; exit 1; }
    done
    echo "broken Deployment rejected: $(grep -c INVALID <<<"$out") errors"
    ;;
  *)
    echo "usage: $0 render|validate WORKDIR" >&2
    exit 2
    ;;
esac
