#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine with Python 3.11, then run it.
# The browser tests drive Debian's Chromium: Playwright's own browser download cannot work offline.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests"
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo "sudo")
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

PYTHON=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt

.venv/bin/ruff check .
# Two workers, a test file each: most of the suite waits on process start-ups and on one-thread
# Python, so two files at once take little more than the longer one. PYTEST_WORKERS=0 runs serially.
# --no-loadscope-reorder: the files go out slowest first (SLOWEST_FILES in tests/conftest.py), not
# in xdist's default order of the most tests first, which handed out long files last.
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
