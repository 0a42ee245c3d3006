#!/usr/bin/env bash
# Build the grading root filesystem offline (no registry needed) and import it as the Docker image,
# so bubblewrap and Docker run the very same interpreter. Idempotent: a valid build is kept, and the
# recipe's later steps are applied to an already-built root filesystem too.
#   ROOTFS=/var/lib/microcred/rootfs/python-bookworm IMAGE=microcred-python:bookworm
set -euo pipefail
ROOTFS=${ROOTFS:-/var/lib/microcred/rootfs/python-bookworm}
IMAGE=${IMAGE:-microcred-python:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
STAMP="$ROOTFS/.microcred-built"
# Bump when the recipe changes: the Docker image carries it as a label and is re-imported when the
# label differs. 2: /autograder and /grade link into the work dir (Gradescope, PrairieLearn paths).
# 3: poppler-utils, whose pdftoppm renders a portfolio's PDF pages to images inside the box.
RECIPE=3
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

if [ ! -f "$STAMP" ]; then
  echo "building the grading root filesystem in $ROOTFS (about a minute)..."
  tmp="$ROOTFS.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$ROOTFS")"
  debootstrap --variant=minbase --include=python3,python3-pytest bookworm "$tmp" "$MIRROR" >/dev/null
  rm -rf "$tmp/var/cache/apt/archives"/*.deb "$tmp/var/lib/apt/lists"/*
  chroot "$tmp" python3 -c "import pytest" # the image must be able to run the harness
  touch "$tmp/.microcred-built"
  rm -rf "$ROOTFS"
  mv "$tmp" "$ROOTFS"
fi

# The recipe's steps that hold for any build, old or new.
[ -d "$ROOTFS/box" ] || mkdir -p "$ROOTFS/box" # the work dir's mount point
[ -x "$ROOTFS/usr/bin/perl" ] || { echo "$ROOTFS has no /usr/bin/perl, which runs the box's init" >&2; exit 1; }
# Autograders written for Gradescope expect /autograder/{source,submission,results}, PrairieLearn's
# /grade/{tests,student,results,data}; the box's only writable place is /box, so both link there.
for layout in autograder grade; do
  link="$ROOTFS/$layout"
  if [ -L "$link" ]; then
    [ "$(readlink "$link")" = "/box/$layout" ] || ln -sfn "/box/$layout" "$link"
  elif [ -e "$link" ]; then
    rmdir "$link" 2>/dev/null || { echo "$link exists and is not an empty folder: move it away" >&2; exit 1; }
    ln -s "/box/$layout" "$link"
  else
    ln -s "/box/$layout" "$link"
  fi
done
# Poppler parses learners' PDFs, so it comes with the release's security updates (debootstrap knows
# only the release itself); the lists and packages are dropped again once it is in.
if [ ! -x "$ROOTFS/usr/bin/pdftoppm" ]; then
  echo "adding poppler-utils to $ROOTFS..."
  echo "deb $SECURITY_MIRROR bookworm-security main" >"$ROOTFS/etc/apt/sources.list.d/security.list"
  cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
  chroot "$ROOTFS" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive chroot "$ROOTFS" apt-get install -y -qq --no-install-recommends poppler-utils >/dev/null
  rm -rf "$ROOTFS/var/cache/apt/archives"/*.deb "$ROOTFS/var/lib/apt/lists"/* "$ROOTFS"/var/cache/apt/*.bin
  chroot "$ROOTFS" pdftoppm -v >/dev/null 2>&1 || { echo "pdftoppm does not run in $ROOTFS" >&2; exit 1; }
fi
echo "$RECIPE" >"$ROOTFS/.microcred-recipe"

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  labels=$(docker image inspect -f '{{ json .Config.Labels }}' "$IMAGE" 2>/dev/null || true)
  case "$labels" in
    *"\"microcred.recipe\":\"$RECIPE\""*) ;;
    *)
      old=$(docker image inspect -f '{{ .Id }}' "$IMAGE" 2>/dev/null || true)
      echo "importing $ROOTFS as $IMAGE (recipe $RECIPE)..."
      tar -C "$ROOTFS" -c . | docker import -c 'USER 65534:65534' -c 'WORKDIR /box' \
        -c "LABEL microcred.recipe=$RECIPE" - "$IMAGE" >/dev/null
      # The tag has moved to the new import; the old one goes unless a container still uses it.
      if [ -n "$old" ]; then docker image rm "$old" >/dev/null 2>&1 || true; fi
      ;;
  esac
fi
echo "grading image ready: $ROOTFS${IMAGE:+, $IMAGE} (recipe $RECIPE)"
