#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: starts what the tests need (Docker engine, base images, local
# registry, podman), installs madengine into .venv, runs lint and type checks, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/engine.sh up
bash dev/engine.sh registry
bash dev/podman.sh up   # podman's Docker-compatible API, for the podman tests (base image copied from the engine)
bash dev/k8s.sh up      # the local Kubernetes cluster (builds its binaries once, cached in /var/cache/madengine)
bash dev/slurm.sh up    # the local Slurm cluster: slurmctld + virtual nodes n1, n2 (fake GPUs), munge
bash dev/sshd.sh up     # a private sshd on 127.0.0.1:2222: the login node of `run.slurm --cluster local/loopback`
bash dev/postgres.sh up # a private PostgreSQL on 127.0.0.1:55432, database/role madengine (the pg_url fixtures)
bash dev/venv.sh
bash dev/chromium.sh
echo "test: ruff"; .venv/bin/ruff check madengine tests benchmarks tasks.py noxfile.py
echo "test: mypy"; .venv/bin/mypy --no-error-summary
echo "test: pytest"
exec .venv/bin/python -m pytest "$@"
