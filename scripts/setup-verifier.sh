#!/usr/bin/env bash
# Install the independent credential verifier the tests run (tests/verifier): Node.js 20 or later, then
# its npm packages exactly as package-lock.json pins them. Once installed it runs with no network.
# The demo does not need it, so only `make verifier` (and through it `make pytest`/`make test`) runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || scripts/apt-install.sh nodejs npm
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  # jose 6 and the Digital Bazaar libraries rely on the Web Crypto global that Node.js 20 has.
  echo "Node.js $(node --version) is too old for tests/verifier: it needs 20 or later" \
    "(Debian 13's nodejs, or NodeSource's nodejs 20 package on Debian 12)" >&2
  exit 1
fi
command -v npm >/dev/null || scripts/apt-install.sh npm
cd tests/verifier
npm ci --no-audit --no-fund --loglevel=error
