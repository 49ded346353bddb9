#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (Python packages, Debian's Chromium for
# the browser tests), fetches MNIST once, runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -r requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1 && [ ! -x "${MNISTLAB_CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: no Chromium found and no apt-get to install it; the browser tests will skip (or fail in CI)" >&2
  fi
fi
python3 -m mnistlab data
python3 -m pytest "$@"
