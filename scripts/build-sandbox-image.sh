#!/usr/bin/env bash
# Build the grading root filesystem offline (no registry needed) and import it as the Docker image,
# so bubblewrap and Docker run the very same interpreter. Idempotent: a valid build is kept.
#   ROOTFS=/var/lib/microcred/rootfs/python-bookworm IMAGE=microcred-python:bookworm
set -euo pipefail
ROOTFS=${ROOTFS:-/var/lib/microcred/rootfs/python-bookworm}
IMAGE=${IMAGE:-microcred-python:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
STAMP="$ROOTFS/.microcred-built"

if [ ! -f "$STAMP" ]; then
  echo "building the grading root filesystem in $ROOTFS (about a minute)..."
  tmp="$ROOTFS.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$ROOTFS")"
  debootstrap --variant=minbase --include=python3,python3-pytest bookworm "$tmp" "$MIRROR" >/dev/null
  mkdir -p "$tmp/box"                       # the work dir's mount point
  rm -rf "$tmp/var/cache/apt/archives"/*.deb "$tmp/var/lib/apt/lists"/*
  chroot "$tmp" python3 -c "import pytest" # the image must be able to run the harness
  touch "$tmp/.microcred-built"
  rm -rf "$ROOTFS"
  mv "$tmp" "$ROOTFS"
fi
[ -d "$ROOTFS/box" ] || mkdir -p "$ROOTFS/box"

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "importing $ROOTFS as $IMAGE..."
    tar -C "$ROOTFS" -c . | docker import -c 'USER 65534:65534' -c 'WORKDIR /box' - "$IMAGE" >/dev/null
  fi
fi
echo "grading image ready: $ROOTFS${IMAGE:+, $IMAGE}"
