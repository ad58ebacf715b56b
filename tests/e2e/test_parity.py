"""One run, every target: the same model with a local data source, a pre-script, a post-script, a site tool from
``--tools-config`` and a credential leaves the same evidence under ``run.local`` (Docker and native),
``run.slurm --nodes 2`` (Docker and native) and ``run.k8s``, on the real engine, Slurm cluster and Kubernetes API
server: pre/post markers around the model in its log, ``<model>_env.csv``, ``data_size``, the tool's output
collected, the secret masked everywhere (and never in any file madengine wrote)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import copy_example_hub, madengine, read_perf
from tests.k8s.conftest import KUBECONFIG, SOCKET, k8s_api, k8s_ns  # noqa: F401 - fixtures used below
from tests.slurm.conftest import slurm_cluster  # noqa: F401 - fixture used below

SECRET = "pw-Parity-7f3a9c"
DATA = {"a.bin": 1000, "sub/b.bin": 234}  # file → bytes: data_size must be 1234

RUN_SH = """#!/bin/bash
echo "PARITY-MODEL in $(basename "$PWD") tool=${PARITY_TOOL:-off} files=$(find "$MAD_DATAHOME/" -type f | wc -l)"
echo "token=$PARITY_CRED_PASSWORD"
echo "written by the model at the top of its workspace" > ../parity_extra.txt
echo "performance: 42 items_per_second"
"""
TOOL_SH = """#!/bin/bash
# a site tool: wraps the model command and leaves an output file in the model dir
echo "tool saw PARITY_TOOL=$PARITY_TOOL" > parity_tool.txt
"$@"
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture(scope="module")
def parity_hub(tmp_path_factory: pytest.TempPathFactory, docker_client) -> Path:
    """A copy of the example hub with the ``parity`` model (data, credential, scripts) built once."""
    root = tmp_path_factory.mktemp("parity")
    data = root / "parity-data"
    for rel, size in DATA.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(b"x" * size)
    hub = root / "hub"
    copy_example_hub(hub)
    _write(hub / "scripts/parity/run.sh", RUN_SH)
    _write(hub / "scripts/hooks/pre.sh", 'echo "PARITY-PRE $1"')
    _write(hub / "scripts/hooks/post.sh", 'echo "PARITY-POST $1"')
    _write(hub / "scripts/common/site/parity_tool.sh", TOOL_SH)
    (hub / "site-tools.yaml").write_text(json.dumps({"parity_tool": {
        "cmd": "bash ../scripts/common/site/parity_tool.sh", "env_vars": {"PARITY_TOOL": "on"},
        "outputs": ["parity_tool.txt"]}}))
    (hub / "credential.json").write_text(json.dumps({"PARITY_CRED": {"username": "bench", "password": SECRET}}))
    datasets = json.loads((hub / "data.json").read_text()) if (hub / "data.json").is_file() else {}
    datasets["parity_data"] = {"local": {"path": str(data)}}
    (hub / "data.json").write_text(json.dumps(datasets))
    models = json.loads((hub / "models.json").read_text())
    models.append({"name": "parity", "url": "", "dockerfile": "docker/dummy", "scripts": "scripts/parity",
                   "n_gpus": "1", "owner": "", "training_precision": "", "tags": ["parity"], "args": "",
                   "data": "parity_data", "cred": "PARITY_CRED", "timeout": 300})
    (hub / "models.json").write_text(json.dumps(models, indent=2))
    res = madengine("build", "--tags", "parity", "--additional-context", '{"gpu_vendor": "NONE"}', cwd=hub)
    assert res.rc == 0, res.text
    return hub


def _context(target: str, runtime: str, namespace: str = "") -> dict:
    ctx: dict = {"gpu_vendor": "NONE", "tools": [{"name": "parity_tool"}],
                 "pre_scripts": [{"path": "scripts/hooks/pre.sh", "args": "one"}],
                 "post_scripts": [{"path": "scripts/hooks/post.sh", "args": "two"}]}
    if runtime == "native":
        ctx["runtime"] = "native"
    if target == "k8s":
        ctx["k8s"] = {"namespace": namespace, "kubeconfig": str(KUBECONFIG),
                      "load_images": f"containerd:{SOCKET}", "image_pull_policy": "Never"}
    return ctx


CASES = {
    "local-docker": ("run.local", "docker", []),
    "local-native": ("run.local", "native", []),
    "slurm-docker": ("run.slurm", "docker", ["--nodes", "2"]),
    "slurm-native": ("run.slurm", "native", ["--nodes", "2"]),
    "k8s": ("run.k8s", "docker", []),
}


@pytest.fixture
def target_env(request: pytest.FixtureRequest) -> str:
    """Start the service a case needs: Slurm or Kubernetes (their fixtures skip, or fail under CI)."""
    case = request.param
    if case.startswith("slurm"):
        request.getfixturevalue("slurm_cluster")
    if case == "k8s":
        return str(request.getfixturevalue("k8s_ns"))
    return ""


@pytest.mark.parametrize("target_env", sorted(CASES), indirect=True, ids=sorted(CASES))
def test_one_model_same_evidence_on_every_target(target_env: str, parity_hub: Path, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    case = request.node.callspec.id
    task, runtime, extra = CASES[case]
    hub = tmp_path / "hub"
    shutil.copytree(parity_hub, hub)
    manifest = json.loads((hub / "build_manifest.json").read_text())
    manifest["hub"] = str(hub)
    (hub / "build_manifest.json").write_text(json.dumps(manifest))
    ctx = _context(task.split(".")[1], runtime, target_env)
    res = madengine(task, "--manifest-file", "build_manifest.json", "--hub", str(hub), "--tools-config",
                    "site-tools.yaml", "--additional-context", json.dumps(ctx), *extra, cwd=hub, timeout=600)
    assert res.rc == 0, res.text
    nodes = 2 if "--nodes" in extra else 1

    rows = read_perf(hub / "perf.csv")
    assert rows and {r["status"] for r in rows} == {"SUCCESS"}, rows
    for row in rows:
        assert (row["model"], row["performance"], row["metric"]) == ("parity", "42", "items_per_second")
        assert (row["dataname"], row["data_provider_type"], row["data_size"]) == ("parity_data", "local", "1234")

    # one run log per node (madengine-runs/<run id>/; the name next to each perf.csv links to it)
    logs = [p for p in hub.rglob("parity_dummy.ubuntu.run.live.log") if not p.is_symlink()]
    assert len(logs) == nodes, logs
    for log in logs:
        text = log.read_text()
        order = [text.index(m) for m in ("PARITY-PRE one", "PARITY-MODEL in run_directory tool=on files=2",
                                         "performance: 42", "PARITY-POST two")]
        assert order == sorted(order), text
        assert "token=******" in text
    env_csvs = [p for p in hub.rglob("parity_env.csv") if ".madengine/work" not in str(p)]
    assert len(env_csvs) == nodes and all(p.stat().st_size > 0 for p in env_csvs)
    tool_outputs = list(hub.rglob("madengine-runs/*/parity_dummy.ubuntu/parity_tool.txt"))
    assert len(tool_outputs) == nodes and all("PARITY_TOOL=on" in p.read_text() for p in tool_outputs)
    assert len(list(hub.rglob("madengine-runs/*/parity_dummy.ubuntu/steps.sh"))) == nodes
    # a file the model wrote at the top of its workspace (madengine v2's working directory) lands next to perf.csv
    extras = [p for p in hub.rglob("parity_extra.txt") if ".madengine/work" not in str(p)]
    assert len(extras) == nodes and all("written by the model" in p.read_text() for p in extras)

    leaked = [p for p in hub.rglob("*") if p.is_file() and p.name != "credential.json"
              and SECRET.encode() in p.read_bytes()]
    assert not leaked, f"the secret was written to {leaked}"
