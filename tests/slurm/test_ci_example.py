"""examples/ci/gitlab-ci.yml, run as GitLab would run it: each stage's script lines, in order, in one shell per job
(stopping at the first failing line), sharing the working directory (the artifacts), against the real local Slurm
cluster and registry."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, copy_example_hub, read_perf

pytestmark = pytest.mark.slurm


def _run_job(script: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    body = "set -e\n" + "\n".join(script) + "\n"
    return subprocess.run(["bash", "-c", body], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_gitlab_ci_example_runs_end_to_end(tmp_path: Path, slurm_cluster) -> None:
    try:
        urllib.request.urlopen("http://127.0.0.1:5000/v2/", timeout=5).read()
    except OSError as e:
        pytest.fail(f"no registry on 127.0.0.1:5000 ({e}); start one with `bash dev/engine.sh registry`")
    pipeline = yaml.safe_load((REPO / "examples" / "ci" / "gitlab-ci.yml").read_text())
    work = tmp_path / "checkout"
    (work / "configs").mkdir(parents=True)
    shutil.copy(REPO / "configs" / "cpu-smoke.json", work / "configs")
    (work / "references.yaml").write_text("models:\n  dummy: {expected: 1, lower: 0.99}\n")
    hub = copy_example_hub(tmp_path / "hub")
    env = {**os.environ, **pipeline["variables"], "HUB": str(hub), "TAGS": "dummy",
           "CI_REGISTRY_IMAGE": "localhost:5000/madengine-ci",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for stage in pipeline["stages"]:
        job = pipeline[stage]
        res = _run_job(job["script"], work, env)
        assert res.returncode == 0, f"{stage}: {res.stdout}{res.stderr}"
        if stage == "submit":
            ids = (work / "jobs.txt").read_text().split()
            assert ids and all(i.isdigit() for i in ids), ids
    rows = read_perf(work / "perf.csv")
    assert [(r["model"], r["status"], r["deployment_type"]) for r in rows] == [("dummy", "SUCCESS", "slurm")] * 2
    assert "<testsuite" in (work / "junit.xml").read_text()
    assert all((work / f"job-{i}.log").read_text() for i in ids)
