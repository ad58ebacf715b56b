"""The example site plugin, installed for real (pip, into a private target directory on PYTHONPATH, so the
shared venv stays as it was): its tasks appear as ``site.acme.*`` in both ``madengine`` and ``inv``, work, and its
toy deployment target is routable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
REPO = PLUGIN.parents[1]
CPU = json.dumps({"gpu_vendor": "NONE"})


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("plugin")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(PLUGIN)], check=True)
    return target


def run(args: list[str], cwd: Path, plugin: Path | None, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, **env)
    if plugin is not None:
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin), full.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    dest = tmp_path / "hub"
    shutil.copytree(REPO / "examples" / "hub", dest, ignore=shutil.ignore_patterns("perf.csv", "*.log", ".madengine",
                                                                                   "build_manifest.json"))
    return dest


def test_tasks_appear_in_madengine_and_inv(plugin_path: Path, tmp_path: Path) -> None:
    mad = run(["-m", "madengine", "--list"], tmp_path, plugin_path)
    assert mad.returncode == 0, mad.stderr
    inv = run(["-m", "invoke", "--search-root", str(REPO), "--list"], tmp_path, plugin_path)
    assert inv.returncode == 0, inv.stderr
    for listing in (mad.stdout, inv.stdout):
        assert "site.acme.cluster-check" in listing and "site.acme.nightly-sweep" in listing
    bare = run(["-m", "madengine", "--list"], tmp_path, None)
    assert "site.acme" not in bare.stdout  # only an installed plugin adds them


def test_cluster_check(plugin_path: Path, hub: Path) -> None:
    ok = run(["-m", "madengine", "site.acme.cluster-check", "--hub", str(hub)], hub, plugin_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok    docker engine" in ok.stdout and "ok    model hub" in ok.stdout
    bad = run(["-m", "madengine", "site.acme.cluster-check", "--hub", str(hub), "--expect-gpus", "8"], hub,
              plugin_path)
    assert bad.returncode == 1
    assert "FAIL  gpus" in bad.stdout and "cluster check failed: gpus" in bad.stderr


def test_toy_deployment_target(plugin_path: Path, hub: Path) -> None:
    built = run(["-m", "madengine", "build", "--tags", "dummy", "--additional-context", CPU], hub, plugin_path)
    assert built.returncode == 0, built.stderr
    res = run(["-m", "madengine", "run", "--manifest-file", "build_manifest.json", "--additional-context",
               '{"deploy": "acme-dryrun"}'], hub, plugin_path)
    assert res.returncode == 0, res.stderr
    rows = (hub / "perf.csv").read_text().splitlines()
    assert len(rows) == 2 and "acme-dryrun" in rows[1] and "SKIPPED" in rows[1]
    unknown = run(["-m", "madengine", "run", "--manifest-file", "build_manifest.json", "--additional-context",
                   '{"deploy": "mars"}'], hub, plugin_path)
    assert unknown.returncode == 4 and "available: acme-dryrun, " in unknown.stderr


def test_nightly_sweep_compares_configs(plugin_path: Path, hub: Path) -> None:
    configs = hub / "sweep-configs"
    configs.mkdir()
    (configs / "a_base.json").write_text(json.dumps({"gpu_vendor": "NONE"}))
    (configs / "b_variant.json").write_text(json.dumps({"gpu_vendor": "NONE", "docker_env_vars": {"EXAMPLE_X": "1"}}))
    res = run(["-m", "madengine", "site.acme.nightly-sweep", "--configs", str(configs / "*.json"), "--tags",
               "dummy3", "--hub", str(hub), "--out-dir", str(hub / "sweep")], hub, plugin_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "a_base" in res.stdout and "b_variant" in res.stdout and "dummy3/model_bs8" in res.stdout
    assert (hub / "sweep" / "b_variant" / "perf.csv").is_file()


@pytest.mark.parametrize("body", ["raise RuntimeError('boom')\n", "raise SystemExit('boom')\n"])
def test_broken_site_file_is_one_warning(hub: Path, body: str) -> None:
    (hub / "broken.py").write_text(body)
    res = run(["-m", "madengine", "--list"], hub, None, MADENGINE_SITE_TASKS=str(hub / "broken.py"))
    assert res.returncode == 0
    warnings = [line for line in res.stderr.splitlines() if line.startswith("madengine: warning:")]
    assert len(warnings) == 1 and "broken.py" in warnings[0] and "boom" in warnings[0]
    assert "Traceback" not in res.stderr and "run.local" in res.stdout


def test_inventory_site_tasks_and_config_listed_files(hub: Path) -> None:
    site = hub / "inventories" / "lab"
    site.mkdir(parents=True)
    (site / "tasks.py").write_text("from invoke import task\n\n@task\ndef hello(c):\n    print('hello from lab')\n")
    (hub / "ops_tasks.py").write_text("from invoke import task\n\n@task\ndef ping(c):\n    print('pong')\n")
    (hub / "invoke.yaml").write_text("madengine:\n  site_tasks: [ops_tasks.py]\n")
    res = run(["-m", "madengine", "site.lab.hello", "site.ops-tasks.ping"], hub, None)
    assert res.returncode == 0, res.stderr
    assert "hello from lab" in res.stdout and "pong" in res.stdout
