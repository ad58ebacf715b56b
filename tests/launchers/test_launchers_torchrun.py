"""A real multi-process run: the example model ``dummy_torchrun`` (a tiny DDP loop, gloo on CPU) through the torchrun
launcher with the native runtime, on this host (``run.local``, 2 ranks) and across the two virtual Slurm nodes
(``run.slurm``, 2 nodes × 2 ranks). Checks the ranks and world size each process saw and one perf row per node.

Needs torch in madengine's environment (``bash dev/venv.sh`` installs the CPU wheel) and,
for the second test, the local Slurm cluster (``bash dev/slurm.sh up``). Missing either FAILS under ``CI=true``
and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import madengine, read_perf
from tests.slurm.conftest import latest_job_dir, slurm_cluster  # noqa: F401 - fixture

RANK_LINE = re.compile(r"dummy_torchrun: rank (\d+) of world (\d+) \(local_rank (\d+), node_rank (\d+)\)")


@pytest.fixture(scope="session")
def torch_installed() -> None:
    probe = subprocess.run([sys.executable, "-c", "import torch.distributed as d; assert d.is_gloo_available()"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        message = ("torch (CPU, with gloo) is not installed in madengine's environment; install it with "
                   "`bash dev/venv.sh` (pip install torch==2.13.0)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ranks(log: str) -> set[tuple[int, ...]]:
    """(rank, world size, local rank, node rank) of every process that reported."""
    return {tuple(int(x) for x in m.groups()) for m in RANK_LINE.finditer(log)}


def test_torchrun_two_ranks_locally(hub: Path, docker_client, torch_installed) -> None:
    port = _free_port()
    ctx = {"gpu_vendor": "NONE", "runtime": "native", "launcher": "torchrun",
           "torchrun": {"nproc_per_node": 2, "master_port": port}}
    res = madengine("run.local", "--tags", "dummy_torchrun", "--additional-context", json.dumps(ctx), cwd=hub)
    assert res.rc == 0, res.text
    rows = [r for r in read_perf(hub / "perf.csv") if r["model"] == "dummy_torchrun"]
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["status"], row["metric"], row["launcher"], row["nnodes"]) == ("SUCCESS", "samples_per_second",
                                                                               "torchrun", "1")
    assert float(row["performance"]) > 0
    log = (hub / "dummy_torchrun_dummy.ubuntu.run.live.log").read_text()
    assert f"torchrun --nnodes 1 --nproc_per_node 2 --node_rank 0 --master_addr localhost --master_port {port}" in log
    assert _ranks(log) == {(0, 2, 0, 0), (1, 2, 1, 0)}
    assert "all_reduce ok" in log


@pytest.mark.slurm
def test_torchrun_across_two_slurm_nodes(hub: Path, docker_client, torch_installed, slurm_cluster) -> None:  # noqa: F811
    port = _free_port()
    ctx = {"gpu_vendor": "NONE", "runtime": "native", "launcher": "torchrun",
           "torchrun": {"nnodes": 2, "nproc_per_node": 2, "master_port": port},
           "slurm": {"poll_interval": 0.5, "poll_max": 2}}
    res = madengine("run.slurm", "--tags", "dummy_torchrun", "--nodes", "2", "--time", "00:05:00",
                    "--additional-context", json.dumps(ctx), cwd=hub, timeout=500)
    assert res.rc == 0, res.text
    rows = [r for r in read_perf(hub / "perf.csv") if r["model"] == "dummy_torchrun"]
    assert len(rows) == 2, rows  # one per node
    assert {(r["status"], r["deployment_type"], r["nnodes"], r["launcher"]) for r in rows} == {
        ("SUCCESS", "slurm", "2", "torchrun")}
    job_dir = latest_job_dir(hub, "dummy_torchrun")
    logs = {p.parent.name: p.read_text() for p in job_dir.glob("results/*/dummy_torchrun_dummy.ubuntu.run.live.log")}
    assert set(logs) == {"n1", "n2"}
    for node_rank, node in enumerate(("n1", "n2")):
        assert (f"torchrun --nnodes 2 --nproc_per_node 2 --node_rank {node_rank} --master_addr n1 "
                f"--master_port {port}") in logs[node]
        assert f"NNODES=2 NODE_RANK={node_rank} MASTER_ADDR=n1 WORLD_SIZE=4" in logs[node]
        assert "all_reduce ok" in logs[node]
    assert _ranks(logs["n1"]) == {(0, 4, 0, 0), (1, 4, 1, 0)}
    assert _ranks(logs["n2"]) == {(2, 4, 0, 1), (3, 4, 1, 1)}
