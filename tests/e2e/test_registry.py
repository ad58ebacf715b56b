"""--registry pushes to a real local registry (Debian's docker-registry on 127.0.0.1:5000, started by
``bash dev/engine.sh registry``), and a run from that manifest pulls the image back."""

from __future__ import annotations

import json
import urllib.request
import uuid
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
    # a model name of its own, so that no other run on this engine uses (or rebuilds) the same image meanwhile
    name = f"pushed_{uuid.uuid4().hex[:8]}"
    models = json.loads((hub / "models.json").read_text())
    models.append({**models[0], "name": name, "tags": ["pushed"]})
    (hub / "models.json").write_text(json.dumps(models))
    image = f"ci-{name}_dummy.ubuntu"
    res = madengine("build", "--tags", name, "--registry", registry, "--additional-context", CPU, cwd=hub)
    assert res.rc == 0, res.text
    record = json.loads((hub / "build_manifest.json").read_text())["built_images"][image]
    assert record["registry_image"] == f"{registry}/{image}:latest"
    tags = json.loads(urllib.request.urlopen(f"http://127.0.0.1:5000/v2/{image}/tags/list").read())
    assert "latest" in tags["tags"]
    docker_client.images.remove(record["registry_image"], force=True)
    docker_client.images.remove(image, force=True)
    res = madengine("run.local", "--manifest-file", "build_manifest.json", cwd=hub)
    assert res.rc == 0, res.text
    assert "pulling" in res.err
    [row] = read_perf(hub / "perf.csv")
    assert row["status"] == "SUCCESS"
    assert row["docker_image"] == record["registry_image"]
