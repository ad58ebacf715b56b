#!/usr/bin/env bash
# Install Debian's chromium, used headless by the HTML report's browser test (tests/report/test_browser.py).
# Idempotent: returns at once when `chromium` is on PATH. apt's lock is shared with other jobs on this machine, so
# every apt call waits for it (DPkg::Lock::Timeout) instead of failing. Needs root (or sudo) the first time.
# Usage: bash dev/chromium.sh
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "chromium: installing Debian's chromium (for the HTML report test)"
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q chromium
command -v chromium >/dev/null 2>&1 || { echo "chromium: install finished but chromium is not on PATH" >&2; exit 1; }
