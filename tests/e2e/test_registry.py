"""--registry pushes to a real local registry (Debian's docker-registry on 127.0.0.1:5000, started by
``bash dev/engine.sh registry``), and a run from that manifest pulls the image back."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CPU, madengine, read_perf

REGISTRY = "localhost:5000"


@pytest.fixture(scope="module")
def registry() -> str:
    try:
        urllib.request.urlopen("http://127.0.0.1:5000/v2/", timeout=5).read()
    except OSError as e:
        pytest.fail(f"no registry on 127.0.0.1:5000 ({e}); start one with `bash dev/engine.sh registry`")
    return REGISTRY


def test_push_then_run_pulls(hub: Path, docker_client, registry: str, no_leftovers) -> None:
    res = madengine("build", "--tags", "dummy", "--registry", registry, "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.text
    record = json.loads((hub / "build_manifest.json").read_text())["built_images"]["ci-dummy_dummy.ubuntu"]
    assert record["registry_image"] == f"{registry}/ci-dummy_dummy.ubuntu:latest"
    tags = json.loads(urllib.request.urlopen("http://127.0.0.1:5000/v2/ci-dummy_dummy.ubuntu/tags/list").read())
    assert "latest" in tags["tags"]
    docker_client.images.remove(record["registry_image"], force=True)
    docker_client.images.remove("ci-dummy_dummy.ubuntu", force=True)
    res = madengine("run.local", "--manifest-file", "build_manifest.json", cwd=hub)
    assert res.rc == 0, res.text
    assert "pulling" in res.err
    [row] = read_perf(hub / "perf.csv")
    assert row["status"] == "SUCCESS"
    assert row["docker_image"] == record["registry_image"]
