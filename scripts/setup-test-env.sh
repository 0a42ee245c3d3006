#!/usr/bin/env bash
# Install and start everything the test suite uses: PostgreSQL, redis-server (the tests start their
# own on free ports), Docker with the offline-built grading image, bubblewrap, git, docker-compose.
# Idempotent; any part that cannot be made to work fails this script, so CI fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/apt-install.sh redis-server postgresql git bubblewrap debootstrap docker.io docker-compose chromium fonts-dejavu-core \
  ca-certificates procps iproute2

# PostgreSQL: reachable on 127.0.0.1:5432 as postgres without a password, with a database "test".
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL does not start" >&2; exit 1; }
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  # A fresh Debian cluster asks for passwords on TCP: trust loopback, for this test machine only.
  hba=$(runuser -u postgres -- psql -Atc 'show hba_file')
  sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  runuser -u postgres -- psql -qc 'select pg_reload_conf()' >/dev/null
fi
psql -h 127.0.0.1 -U postgres -d postgres -Atc "select 1 from pg_database where datname='test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -qc 'create database test'

command -v redis-server >/dev/null || { echo "redis-server is missing" >&2; exit 1; }

scripts/setup-sandbox.sh
echo "test services ready"
