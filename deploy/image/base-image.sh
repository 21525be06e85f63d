#!/usr/bin/env bash
# Makes the Dockerfile's runtime base, `debian:bookworm-slim`, in podman's local image store
# without any container registry: debootstrap (minbase) from the Debian mirror apt already
# uses, imported under the upstream name, so `FROM debian:bookworm-slim` resolves locally here
# and pulls the real image anywhere else. Does nothing when the image is already there.
set -euo pipefail

image="docker.io/library/debian:bookworm-slim"
if podman image exists "$image"; then
  exit 0
fi
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
# What the upstream slim image leaves out: apt lists and caches, docs, man pages.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$image" >/dev/null
echo "imported $image"
