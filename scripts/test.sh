#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, fetches MNIST once, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -r requirements-dev.txt
python3 -m mnistlab data
python3 -m pytest "$@"
