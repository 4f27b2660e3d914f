#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), then lint, types and the whole test suite
# (unit, integration against a real vLLM CPU server, and browser tests in headless Chromium).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-browser
export HF_HUB_OFFLINE=1
if [ $# -eq 0 ]; then
  echo "==> ruff";  .venv/bin/ruff check src tests app scripts bench
  echo "==> mypy";  .venv/bin/mypy
fi
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
