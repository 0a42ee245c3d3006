#!/usr/bin/env bash
# Make both sandbox backends usable: dockerd running, bubblewrap installed, and the grading root
# filesystem built offline once (debootstrap), imported as the Docker image and used by bubblewrap.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=0; [ "${1:-}" = "--quiet" ] && quiet=1
scripts/apt-install.sh bubblewrap libseccomp2 debootstrap docker.io
scripts/start-dockerd.sh
scripts/build-sandbox-image.sh
[ $quiet -eq 1 ] || echo "sandbox backends ready"
