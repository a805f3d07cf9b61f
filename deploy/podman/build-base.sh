#!/usr/bin/env bash
# Builds the debian:bookworm-slim base image locally with debootstrap and
# `podman import`, for machines that cannot pull from Docker Hub. Idempotent:
# does nothing if the image exists (pass --force to rebuild). Needs root.
#   deploy/podman/build-base.sh [--force]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
image=docker.io/library/debian:bookworm-slim
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=$here/.cache

if [[ "${1:-}" != "--force" ]] && podman image exists "$image"; then
  echo "build-base: $image already present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "build-base: apt-get install debootstrap" >&2; exit 1; }
mkdir -p "$cache/debs"
rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
echo "build-base: debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase --cache-dir="$cache/debs" bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
  { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
# Make it look like the official slim image: security updates on, no docs or
# apt lists kept, no recommends.
cat >"$rootfs/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main
SRC
cat >"$rootfs/etc/apt/apt.conf.d/90webtier-slim" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/90webtier-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/usr/share/doc/*/changelog* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
# update-alternatives (e.g. the JRE's postinst) needs this one, as in the official image.
mkdir -p "$rootfs/usr/share/man/man1"
tar --numeric-owner -C "$rootfs" -c . |
  podman import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$image"
echo "build-base: imported $image"
podman image ls "$image"
