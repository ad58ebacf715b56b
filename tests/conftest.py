"""Shared fixtures: the real Docker engine, a private copy of the example hub, and the CLI runner.

The Docker tests need a real engine (``bash dev/engine.sh up`` starts one as root). When none is reachable they FAIL
with that instruction rather than skip: a green run must mean the engine paths were exercised.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import _postgres

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_HUB = REPO / "examples" / "hub"
CPU = json.dumps({"gpu_vendor": "NONE"})


@dataclass
class Cli:
    """Result of one ``madengine`` invocation."""

    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def madengine(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> Cli:
    """Run the real console script (``python -m madengine``) in ``cwd`` and capture its streams."""
    full_env = dict(os.environ)
    full_env.pop("MADENGINE_DEBUG", None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "madengine", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    return Cli(proc.returncode, proc.stdout, proc.stderr)


def own_containers(client: Any, hub: Path, model: str) -> list[Any]:
    """The running containers of ``model`` whose run writes into ``hub`` (this test's): another user of the same
    engine may run the same model meanwhile."""
    return client.containers.list(filters={"label": [f"org.madengine.model={model}",
                                                     f"org.madengine.output-dir={hub.resolve()}"]})


def add_model(hub: Path, name: str, **fields: Any) -> str:
    """Append to the hub's models.json a copy of its first model (``dummy``) named ``name`` with ``fields``
    overridden; returns ``name``."""
    models = json.loads((hub / "models.json").read_text())
    models.append({**models[0], "name": name, **fields})
    (hub / "models.json").write_text(json.dumps(models))
    return name


def write_script(hub: Path, rel: str, body: str) -> None:
    """Write a bash script (``body`` after the shebang) at ``hub/rel``."""
    path = hub / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/bash\n" + body + "\n")


@pytest.fixture(scope="session")
def docker_client():
    """A docker-py client for the real engine; fails (not skips) when none is reachable."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure means no engine
        pytest.fail(f"no Docker engine reachable ({e}); start one with `bash dev/engine.sh up`")
    try:
        client.images.get("madengine-base:bookworm")
    except Exception:  # noqa: BLE001
        pytest.fail("base image madengine-base:bookworm missing; run `bash dev/engine.sh up`")
    return client


def copy_example_hub(dest: Path) -> Path:
    """Copy the example hub's own files (those git tracks; what ``dev/quickstart.sh`` leaves there, such as
    perf.csv, logs, ``*_env.csv`` and ``madengine-runs/``, stays behind) to ``dest``. Tests never use it in place."""
    try:
        listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--", "examples/hub"], capture_output=True,
                                check=True, timeout=30).stdout.decode().split("\0")
    except (OSError, subprocess.SubprocessError):
        listed = []
    files = [REPO / f for f in listed if f]
    if not files:  # not a git checkout: everything but what runs leave behind
        shutil.copytree(EXAMPLE_HUB, dest, ignore=shutil.ignore_patterns(
            "perf.csv", "*.log", "build_manifest.json*", ".madengine", "*_env.csv", "madengine-runs"))
        return dest
    for source in files:
        target = dest / source.relative_to(EXAMPLE_HUB)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    """A private copy of the example hub (runs write perf.csv, logs and manifests into it)."""
    return copy_example_hub(tmp_path / "hub")


@pytest.fixture
def no_leftovers(docker_client, hub: Path) -> Iterator[None]:
    """Fail the test if it leaves a madengine container behind (one whose output dir is in this test's hub; other
    users of the same engine are not counted)."""
    def ours() -> set[str]:
        # the low-level list (no per-container inspect, which races with removals by other users of the engine)
        found = docker_client.api.containers(all=True, filters={"label": "org.madengine.run-id"})
        return {c["Names"][0].lstrip("/") for c in found
                if (c.get("Labels") or {}).get("org.madengine.output-dir", "").startswith(str(hub))}

    import docker.errors

    before = ours()
    yield
    left = ours() - before
    if left:  # a removal may still be finishing in the engine: look again before judging
        time.sleep(1)
        left = ours() - before
    for name in left:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(name).remove(force=True)
    assert not left, f"containers left behind: {sorted(left)}"


@pytest.fixture(scope="session")
def pg_url() -> str:
    """SQLAlchemy URL of the ``madengine`` database of the private PostgreSQL (``bash dev/postgres.sh up``); skips
    when it does not answer, except under CI (``CI=true``), where it fails."""
    problem = _postgres.check()
    if problem:
        message = f"PostgreSQL on 127.0.0.1:{_postgres.PORT} is not available ({problem}); start it with " \
                  "`bash dev/postgres.sh up`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return _postgres.url()


@pytest.fixture
def pg_db_url(pg_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database owned by ``madengine``, for this test only (dropped after)."""
    name = _postgres.create_database(request.node.name)
    try:
        yield _postgres.url(name)
    finally:
        _postgres.drop_database(name)


def check_golden(path: Path, text: str) -> None:
    """``text`` must equal the golden file ``path``; ``MADENGINE_UPDATE_GOLDEN=1`` rewrites it (review the diff)."""
    if os.environ.get("MADENGINE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} missing; run with MADENGINE_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8")


def read_perf(path: Path) -> list[dict[str, str]]:
    """perf.csv rows as dicts (our own reader is under test elsewhere; use the csv module here)."""
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))
