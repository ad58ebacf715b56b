"""madengine on podman: its Docker-compatible API (``bash dev/podman.sh up``) is just another engine address
(DOCKER_HOST): build, run, cleanup and the rows are the same as with Docker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CPU, madengine, read_perf

SOCKET = "/run/madengine-podman/podman.sock"


@pytest.fixture(scope="module")
def podman_host() -> str:
    answered = subprocess.run(["curl", "-fsS", "--unix-socket", SOCKET, "http://d/_ping"], capture_output=True)
    if answered.returncode != 0:
        message = f"no podman API on {SOCKET}; start it with `bash dev/podman.sh up`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return f"unix://{SOCKET}"


def test_build_and_run_on_podman(hub: Path, podman_host: str) -> None:
    env = {"DOCKER_HOST": podman_host}
    built = madengine("build", "--tags", "dummy", "--additional-context", CPU, cwd=hub, env=env)
    assert built.rc == 0, built.err
    ran = madengine("run.local", "--manifest-file", "build_manifest.json", cwd=hub, env=env)
    assert ran.rc == 0, ran.err
    row = read_perf(hub / "perf.csv")[-1]
    assert (row["model"], row["status"]) == ("dummy", "SUCCESS")
    assert (hub / "dummy_env.csv").is_file()
    left = subprocess.run(["podman", "ps", "-a", "-q", "--filter", "label=org.madengine.model=dummy",
                           "--filter", f"label=org.madengine.output-dir={hub}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "a container was left on podman"
