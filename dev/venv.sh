#!/usr/bin/env bash
# Create (or update) the project virtualenv .venv with madengine installed in editable mode plus the dev tools.
# Usage: bash dev/venv.sh            (idempotent; re-installs only when pyproject.toml changed)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "venv: Python 3.10+ is needed (found $("$PY" --version 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
log=.venv/pip.log
pip_install() {  # quiet unless it fails: build-backend warnings would bury the useful output
  .venv/bin/python -m pip install -q --disable-pip-version-check "$@" >>"$log" 2>&1 \
    || { tail -30 "$log" >&2; echo "venv: pip install $* failed (full log: $log)" >&2; exit 1; }
}
stamp=.venv/.madengine-installed
key=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$key" ] || ! .venv/bin/python -c 'import madengine' 2>/dev/null; then
  echo "venv: installing madengine[dev] into .venv"
  pip_install -U pip
  pip_install -e '.[dev]'
  echo "$key" > "$stamp"
fi
# torch for the launcher tests' real torchrun runs (tests/launchers): `pip install torch==2.13.0` takes the CPU wheel
# from the machine's wheel mirror (/opt/wheels). Not a madengine dependency; MADENGINE_WITH_TORCH=0 skips it.
if [ "${MADENGINE_WITH_TORCH:-1}" != 0 ] && ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  echo "venv: installing torch==2.13.0 (CPU) into .venv for the launcher tests (MADENGINE_WITH_TORCH=0 skips)"
  pip_install torch==2.13.0
fi
