#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: starts what the tests need (Docker engine, base images, local
# registry), installs madengine into .venv, runs lint and type checks, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/engine.sh up
bash dev/engine.sh registry
bash dev/venv.sh
echo "test: ruff"; .venv/bin/ruff check madengine tests benchmarks tasks.py noxfile.py
echo "test: mypy"; .venv/bin/mypy --no-error-summary
echo "test: pytest"
exec .venv/bin/python -m pytest "$@"
