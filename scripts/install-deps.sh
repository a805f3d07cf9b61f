#!/usr/bin/env bash
# Installs everything webtier needs on Debian 12 (build, runtime, test and
# benchmark packages, ZooKeeper and Redis servers, a JRE). Idempotent: only
# missing packages are installed. Used by the README, CI and the Dockerfiles.
#   scripts/install-deps.sh            # everything
#   scripts/install-deps.sh --runtime  # only what the built programs need to run
#   scripts/install-deps.sh --build    # runtime + compilers and -dev packages (no tests; Dockerfiles)
#   scripts/install-deps.sh --podman   # everything, plus podman and what the container e2e test needs
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config git ca-certificates
  libpistache-dev libzookeeper-mt-dev libhiredis-dev prometheus-cpp-dev
  nlohmann-json3-dev libboost1.81-dev libcli11-dev libcurl4-openssl-dev libssl-dev libnghttp2-dev
  libgoogle-perftools-dev zlib1g-dev liburing-dev)
RUNTIME_PKGS=(libpistache0 libzookeeper-mt2 libhiredis0.14 libprometheus-cpp-core1.0
  libcurl4 libssl3 libnghttp2-14 zlib1g libtcmalloc-minimal4 liburing2 ca-certificates curl procps)
TEST_PKGS=(libgtest-dev libgmock-dev zookeeper default-jre-headless redis-server redis-tools redis-sentinel
  prometheus prometheus-redis-exporter curl procps iproute2 iptables psmisc wrk haproxy nginx-light tcpdump linux-perf clang
  libclang-rt-14-dev python3 python3-yaml python3-h2 python3-hpack python3-hyperframe nghttp2-client systemd
  shellcheck jq openssl chromium)
# Containers without a Docker engine: podman under gVisor-like sandboxes needs runc and cgroupfs.
PODMAN_PKGS=(podman podman-compose debootstrap runc slirp4netns uidmap fuse-overlayfs aardvark-dns netavark
  netcat-openbsd)

want=("${RUNTIME_PKGS[@]}")
case "${1:-}" in
  --runtime) ;;
  --build) want+=("${BUILD_PKGS[@]}") ;;
  --podman) want+=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${PODMAN_PKGS[@]}") ;;
  *) want+=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
esac

# The Kubernetes tests (tests/deploy) need kubectl with kustomize v5 and Node.js
# with npm. Debian 12's kubernetes-client (1.20) is too old for the manifests,
# so kubectl comes from an apt source that offers a current one (Google's or
# Kubernetes' own), where configured; without it those tests report SKIPPED.
if [[ ${1:-} == "" || ${1:-} == --podman ]]; then
  if ! command -v kubectl >/dev/null && apt-cache policy kubectl 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    want+=(kubectl)
  fi
  command -v node >/dev/null || want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Debian's packages start their services on install where an init system runs;
# webtier starts its own instances, so keep the distro ones from starting.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
