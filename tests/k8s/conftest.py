"""Fixtures for the real-cluster tests: the local Kubernetes cluster of ``bash dev/k8s.sh up``, a namespace of this
session, and the example hub's images built by the real Docker engine and imported into the cluster's containerd.

Without a cluster these tests SKIP with the command to start one, except under CI (``CI=true``), where they FAIL:
a green CI run must mean the Kubernetes paths were exercised.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from madengine.deploy.k8s import client, images
from tests.conftest import CPU, copy_example_hub, madengine

STATE = Path(os.environ.get("MADENGINE_K8S_DIR", "/var/lib/madengine/k8s"))
KUBECONFIG = STATE / "kubeconfig"
SOCKET = STATE / "ctd" / "containerd.sock"
#: Models of the example hub the cluster tests run.
MODELS = ("dummy", "dummy_fail", "dummy_multi", "dummy_timeout")


@pytest.fixture(scope="session")
def k8s_api() -> Iterator[client.Api]:
    """A client of the local cluster; skips (fails under CI) when it is not up."""
    try:
        api = client.connect(str(KUBECONFIG))
        client.server_version(api)
    except Exception as e:  # noqa: BLE001 - any failure means no cluster
        message = f"no local Kubernetes cluster ({e}); start it with `bash dev/k8s.sh up`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    yield api
    api.close()


@pytest.fixture(scope="session")
def k8s_ns(k8s_api: client.Api) -> Iterator[str]:
    """A namespace for this test session (deleted at the end, without waiting)."""
    m = client.models()
    name = f"madengine-test-{uuid.uuid4().hex[:6]}"
    client.call("create namespace", k8s_api.core.create_namespace, m.V1Namespace(metadata=m.V1ObjectMeta(name=name)))
    for _ in range(100):  # the service account controller makes "default", which pods need
        if client.call("read sa", k8s_api.core.read_namespaced_service_account, "default", name, ok_statuses=(404,)):
            break
        time.sleep(0.1)
    yield name
    client.call("delete namespace", k8s_api.core.delete_namespace, name, ok_statuses=(404,))


@pytest.fixture(scope="session")
def k8s_hub(tmp_path_factory: pytest.TempPathFactory, docker_client: Any, k8s_api: client.Api) -> Path:
    """A copy of the example hub with :data:`MODELS` built (``build_manifest.json``) and their images imported
    into the cluster's containerd (as ``k8s.load_images`` does)."""

    hub = tmp_path_factory.mktemp("k8s") / "hub"
    copy_example_hub(hub)
    tags = [a for m in MODELS for a in ("--tags", m)]
    cli = madengine("build", *tags, "--additional-context", CPU, cwd=hub, timeout=900)
    assert cli.rc == 0, cli.text
    manifest = json.loads((hub / "build_manifest.json").read_text())
    for image in manifest["built_images"]:
        images.load_into_containerd(image, f"containerd:{SOCKET}")
    return hub


def manifest_for(hub: Path, dest: Path, model: str, image: str | None = None) -> Path:
    """A copy of the hub's manifest holding only ``model`` (its image renamed to ``image`` when given)."""
    full = json.loads((hub / "build_manifest.json").read_text())
    key = next(k for k, b in full["built_images"].items() if b["model"] == model)
    build, entry = dict(full["built_images"][key]), full["built_models"][key]
    if image:
        build["docker_image"] = image
        key = image
    full["built_images"], full["built_models"] = {key: build}, {key: entry}
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"manifest-{model}.json"
    path.write_text(json.dumps(full))
    return path


def ours(api: client.Api, namespace: str) -> dict[str, list[str]]:
    """madengine's Jobs, Pods, ConfigMaps and Services in ``namespace`` (by the app label)."""
    sel = "app.kubernetes.io/name=madengine"
    return {
        "jobs": [j.metadata.name for j in api.batch.list_namespaced_job(namespace, label_selector=sel).items],
        "pods": [p.metadata.name for p in api.core.list_namespaced_pod(namespace, label_selector=sel).items],
        "configmaps": [c.metadata.name for c in
                       api.core.list_namespaced_config_map(namespace, label_selector=sel).items],
        "services": [s.metadata.name for s in api.core.list_namespaced_service(namespace, label_selector=sel).items],
    }


def wait_gone(api: client.Api, namespace: str, timeout: float = 60) -> dict[str, list[str]]:
    """Wait until nothing of madengine's is left in ``namespace`` (background deletion); returns what is left."""
    deadline = time.monotonic() + timeout
    left = ours(api, namespace)
    while any(left.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
        left = ours(api, namespace)
    return left
