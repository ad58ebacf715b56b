#!/usr/bin/env bash
# One command for a fresh machine: start a Docker engine and make the local base image (as root), install madengine
# into .venv, then build and run the example hub's models and print the perf.csv rows.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/engine.sh up
MADENGINE_WITH_TORCH=0 bash dev/venv.sh   # torch is only for the launcher tests
cd examples/hub
rc=0
../../.venv/bin/madengine run.local --tags examples --additional-context-file ../../configs/cpu-smoke.json || rc=$?
echo
echo "perf.csv ($(pwd)/perf.csv):"
../../.venv/bin/madengine report --csv perf.csv
exit $rc
