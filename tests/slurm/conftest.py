"""Fixtures for the Slurm tests: the real local cluster (``bash dev/slurm.sh up``), the real sshd login node
(``bash dev/sshd.sh up``), and a private hub with a probe model that prints the distributed contract.

Under CI (``CI=true``) a missing cluster or sshd FAILS the tests (a green run must have exercised them); elsewhere
those tests are skipped with the command that starts them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_example_hub, madengine

PROBE = """#!/bin/bash
# Prints the distributed contract madengine passes in, and one performance line that tells the nodes apart.
echo "probe: NODE_RANK=${NODE_RANK:-unset} RANK=${RANK:-unset} MASTER_ADDR=${MASTER_ADDR:-unset} \\
NNODES=${NNODES:-unset} WORLD_SIZE=${WORLD_SIZE:-unset} MASTER_PORT=${MASTER_PORT:-unset}"
echo "probe: DEPLOYMENT=${MAD_DEPLOYMENT_TYPE:-unset}"
printf 'probe: EVIL=[%s]\\n' "${EVIL:-unset}"
printf 'probe: SITE=[%s]\\n' "${SITE_VAR:-unset}"
echo "performance: $(( ${NODE_RANK:-0} + 1 )) rank_plus_one"
"""


def _missing(what: str, fix: str) -> None:
    message = f"{what} is not available; start it with `{fix}`"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The local 2-node cluster answers with both nodes usable."""
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        _missing(f"Slurm ({e})", "bash dev/slurm.sh up")
        return
    nodes = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    if out.returncode != 0 or not {"n1", "n2"} <= set(nodes):
        _missing(f"the local Slurm cluster (sinfo: {out.stdout.strip() or out.stderr.strip()})",
                 "bash dev/slurm.sh up")


@pytest.fixture(scope="session")
def login_node() -> None:
    """The private sshd on 127.0.0.1:2222 accepts the test client key."""
    res = subprocess.run(["bash", str(REPO / "dev" / "sshd.sh"), "status"], capture_output=True, text=True)
    if res.returncode != 0:
        _missing("the sshd login node on 127.0.0.1:2222", "bash dev/sshd.sh up")


#: Manifest file per model in the :func:`slurm_hub` (each built with `madengine build --manifest-output`).
MANIFESTS = {"slurm_probe": "probe.json", "dummy": "dummy.json", "dummy_fail": "fail.json",
             "dummy_timeout": "timeout.json"}


@pytest.fixture(scope="session")
def built_hub(tmp_path_factory, slurm_cluster, docker_client) -> Path:
    """Once per session: the example hub plus ``slurm_probe`` (prints NODE_RANK, MASTER_ADDR, ...), with one
    build manifest per model (:data:`MANIFESTS`)."""
    hub = tmp_path_factory.mktemp("slurm") / "hub"
    copy_example_hub(hub)
    probe_dir = hub / "scripts" / "slurm_probe"
    probe_dir.mkdir(parents=True)
    (probe_dir / "run.sh").write_text(PROBE)
    models = json.loads((hub / "models.json").read_text())
    models.append({"name": "slurm_probe", "url": "", "dockerfile": "docker/dummy", "scripts":
                   "scripts/slurm_probe/run.sh", "n_gpus": "-1", "owner": "", "training_precision": "",
                   "tags": ["slurm_probe"], "args": ""})
    (hub / "models.json").write_text(json.dumps(models, indent=2))
    for model, manifest in MANIFESTS.items():
        res = madengine("build", "--tags", model, "--manifest-output", manifest, "--additional-context",
                        '{"gpu_vendor": "NONE"}', cwd=hub)
        assert res.rc == 0, res.text
    return hub


@pytest.fixture
def slurm_hub(built_hub: Path, hub: Path) -> Path:
    """The test's private hub (the shared ``hub`` fixture, so ``no_leftovers`` watches it) with
    :func:`built_hub`'s probe model and manifests laid over it."""
    shutil.copytree(built_hub, hub, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("perf.csv", "*.run.live.log", ".madengine"))
    for manifest in MANIFESTS.values():
        data = json.loads((hub / manifest).read_text())
        data["hub"] = str(hub)
        (hub / manifest).write_text(json.dumps(data))
    return hub


def latest_job_dir(hub: Path, model: str) -> Path:
    """The newest ``.madengine/slurm/<run>/<model>`` of the hub."""
    runs = sorted((hub / ".madengine" / "slurm").iterdir(), key=lambda p: p.stat().st_mtime)
    return runs[-1] / model


def fake_scheduler(tmp_path: Path, flag: Path) -> dict[str, str]:
    """Environment whose PATH has ``sacct`` and ``squeue`` wrappers that fail while ``flag`` exists (an outage of
    the controller), and call the real commands otherwise."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    for name in ("sacct", "squeue"):
        real = shutil.which(name)
        assert real, f"{name} not found"
        script = bindir / name
        script.write_text(f"#!/bin/bash\nif [ -e {flag} ]; then echo '{name}: error: Socket timed out on send/recv "
                          f"operation' >&2; exit 1; fi\nexec {real} \"$@\"\n")
        script.chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}
