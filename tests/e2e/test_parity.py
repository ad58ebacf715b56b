"""One run, every target: the same model with a local data source, a pre-script, a post-script, a site tool from
``--tools-config`` and a credential leaves the same evidence under ``run.local`` (Docker and native),
``run.slurm --nodes 2`` (Docker and native) and ``run.k8s``, on the real engine, Slurm cluster and Kubernetes API
server: pre/post markers around the model in its log, ``<model>_env.csv``, ``data_size``, the tool's output
collected, the secret masked everywhere (and never in any file madengine wrote)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import add_model, copy_example_hub, madengine, read_perf
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
    git = ["git", "-C", str(hub), "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "hub"]):  # rows name the hub's commit
        subprocess.run(git + command, check=True, capture_output=True)
    res = madengine("build", "--tags", "parity", "--additional-context", '{"gpu_vendor": "NONE"}', cwd=hub)
    assert res.rc == 0, res.text
    return hub


def _base_context(task: str, runtime: str, namespace: str = "") -> dict:
    """A CPU context for ``task`` (run.local, run.slurm, run.k8s) and ``runtime`` (docker, native)."""
    ctx: dict = {"gpu_vendor": "NONE"}
    if runtime == "native":
        ctx["runtime"] = "native"
    if task == "run.k8s":
        ctx["k8s"] = {"namespace": namespace, "kubeconfig": str(KUBECONFIG),
                      "load_images": f"containerd:{SOCKET}", "image_pull_policy": "Never"}
    return ctx


def _context(task: str, runtime: str, namespace: str = "") -> dict:
    return {**_base_context(task, runtime, namespace), "tools": [{"name": "parity_tool"}],
            "pre_scripts": [{"path": "scripts/hooks/pre.sh", "args": "one"}],
            "post_scripts": [{"path": "scripts/hooks/post.sh", "args": "two"}]}


def _private_copy(built: Path, tmp_path: Path) -> tuple[Path, dict]:
    """A copy of a built hub for one test, its manifest (returned) naming the copy as the hub."""
    hub = tmp_path / "hub"
    shutil.copytree(built, hub)
    manifest = json.loads((hub / "build_manifest.json").read_text())
    manifest["hub"] = str(hub)
    (hub / "build_manifest.json").write_text(json.dumps(manifest))
    return hub, manifest


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
    hub, manifest = _private_copy(parity_hub, tmp_path)
    ctx = _context(task, runtime, target_env)
    res = madengine(task, "--manifest-file", "build_manifest.json", "--hub", str(hub), "--tools-config",
                    "site-tools.yaml", "--additional-context", json.dumps(ctx), *extra, cwd=hub, timeout=600)
    assert res.rc == 0, res.text
    nodes = 2 if "--nodes" in extra else 1

    rows = read_perf(hub / "perf.csv")
    assert rows and {r["status"] for r in rows} == {"SUCCESS"}, rows
    commit = subprocess.run(["git", "-C", str(hub), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    image_id = manifest["built_images"]["ci-parity_dummy.ubuntu"]["image_id"]
    for row in rows:
        assert (row["model"], row["performance"], row["metric"]) == ("parity", "42", "items_per_second")
        assert (row["dataname"], row["data_provider_type"], row["data_size"]) == ("parity_data", "local", "1234")
        # provenance: the hub's commit and the ID of the image the model ran in (a native run has no image)
        assert row["git_commit"] == commit
        assert row["docker_sha"] == ("" if runtime == "native" else image_id)
    # the run is in the results store next to perf.csv, one result row per perf.csv row
    with sqlite3.connect(hub / "madengine-results.db") as db:
        stored = db.execute("SELECT r.git_commit, r.docker_sha, u.target FROM results r JOIN runs u "
                            "ON u.run_id = r.run_id").fetchall()
    assert stored == [(commit, row["docker_sha"], task.split(".")[1]) for row in rows]

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


REPEAT_RUN_SH = """#!/bin/bash
# a different value on every run: the square of the run's number (warmups included), counted in the model dir
n=$(( $(cat repeat-count 2>/dev/null || echo 0) + 1 )); echo "$n" > repeat-count
echo "REPEAT-RUN $n"
echo "performance: $(( n * n )) items_per_second"
"""


@pytest.fixture(scope="module")
def repeat_hub(tmp_path_factory: pytest.TempPathFactory, docker_client) -> Path:
    """A copy of the example hub with the ``repeats`` model (its run.sh prints 1, 4, 9, 16, ... run after run)
    built once."""
    hub = copy_example_hub(tmp_path_factory.mktemp("repeats") / "hub")
    _write(hub / "scripts/repeats/run.sh", REPEAT_RUN_SH)
    add_model(hub, "repeats", scripts="scripts/repeats", tags=["repeats"], n_gpus="1", timeout=300)
    res = madengine("build", "--tags", "repeats", "--additional-context", '{"gpu_vendor": "NONE"}', cwd=hub)
    assert res.rc == 0, res.text
    return hub


@pytest.mark.parametrize("target_env", sorted(CASES), indirect=True, ids=sorted(CASES))
def test_repeat_and_warmup_same_result_on_every_target(target_env: str, repeat_hub: Path, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    """``--repeat 3 --warmup 1`` is defined once, in the step script: on every target the warmup run (value 1) is
    in the log but not counted, perf.csv gets the median of the 3 measured runs (4, 9, 16: 9, not their mean) and
    the run summary their samples in run order."""
    case = request.node.callspec.id
    task, runtime, extra = CASES[case]
    hub, _ = _private_copy(repeat_hub, tmp_path)
    ctx = _base_context(task, runtime, target_env)
    res = madengine(task, "--manifest-file", "build_manifest.json", "--hub", str(hub), "--additional-context",
                    json.dumps(ctx), "--repeat", "3", "--warmup", "1", "--summary-output", "summary.json", *extra,
                    cwd=hub, timeout=600)
    assert res.rc == 0, res.text
    nodes = 2 if "--nodes" in extra else 1

    rows = read_perf(hub / "perf.csv")
    assert len(rows) == nodes, rows
    for row in rows:
        assert (row["model"], row["status"], row["performance"], row["metric"]) == \
            ("repeats", "SUCCESS", "9", "items_per_second")
        assert float(row["test_duration"]) > 0
    entries = json.loads((hub / "summary.json").read_text())["models"]
    assert [(e["model"], e["performance"], e["samples"]) for e in entries] == [("repeats", 9.0, [4.0, 9.0, 16.0])] * nodes
    assert all((e["min"], e["max"]) == (4.0, 16.0) and 4.0 <= e["ci_low"] <= 9.0 <= e["ci_high"] <= 16.0
               for e in entries)
    with sqlite3.connect(hub / "madengine-results.db") as db:  # the store keeps every sample of every node
        stored = db.execute("SELECT repeat_index, value FROM results ORDER BY id").fetchall()
    assert stored == [(0, 4.0), (1, 9.0), (2, 16.0)] * nodes

    logs = [p for p in hub.rglob("repeats_dummy.ubuntu.run.live.log") if not p.is_symlink()]
    assert len(logs) == nodes, logs
    for log in logs:
        text = log.read_text()
        order = [text.index(m) for m in ("+ [warmup 1]", "REPEAT-RUN 1", "performance: 1 items_per_second",
                                         "+ [model]", "performance: 4 ", "+ [model 2]", "performance: 9 ",
                                         "+ [model 3]", "performance: 16 ")]
        assert order == sorted(order), text
        assert "REPEAT-RUN 5" not in text


INCOMPLETE_RUN_SH = """#!/bin/bash
echo "performance: 5 items_per_second"
"""


@pytest.mark.parametrize("target_env", sorted(CASES), indirect=True, ids=sorted(CASES))
def test_validity_contract_on_every_target(target_env: str, repeat_hub: Path, tmp_path: Path,
                                           request: pytest.FixtureRequest) -> None:
    """A model declaring ``expected_results: 2`` that prints one result is FAILURE with the reason on every target
    (the contract is applied where every runtime's rows are read), exit code 3."""
    case = request.node.callspec.id
    task, runtime, extra = CASES[case]
    hub, manifest = _private_copy(repeat_hub, tmp_path)
    _write(hub / "scripts/repeats/run.sh", INCOMPLETE_RUN_SH)
    for model in manifest["built_models"].values():  # the manifest's record of the model is what a run reads
        model["expected_results"] = 2
    (hub / "build_manifest.json").write_text(json.dumps(manifest))
    ctx = _base_context(task, runtime, target_env)
    res = madengine(task, "--manifest-file", "build_manifest.json", "--hub", str(hub), "--additional-context",
                    json.dumps(ctx), "--summary-output", "summary.json", *extra, cwd=hub, timeout=600)
    assert res.rc == 3, res.text
    rows = read_perf(hub / "perf.csv")
    assert rows and {(r["status"], r["performance"]) for r in rows} == {("FAILURE", "5")}, rows
    reasons = {e["reason"] for e in json.loads((hub / "summary.json").read_text())["models"]}
    assert all("1 of the model's expected_results 2 were printed" in r for r in reasons), reasons
