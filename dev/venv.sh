#!/usr/bin/env bash
# Create (or update) the project virtualenv .venv with madengine installed in editable mode plus the dev tools.
# Usage: bash dev/venv.sh            (idempotent; re-installs only when pyproject.toml changed)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "venv: Python 3.10+ is needed (found $("$PY" --version 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.madengine-installed
key=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$key" ] || ! .venv/bin/python -c 'import madengine' 2>/dev/null; then
  echo "venv: installing madengine[dev] into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$key" > "$stamp"
fi
