"""The example site plugin, installed for real (pip, into a private target directory on PYTHONPATH, so the
shared venv stays as it was): its tasks appear as ``site.acme.*`` in both ``madengine`` and ``inv``, work, and its
toy deployment target is routable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
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
    assert unknown.returncode == 4 and "available: acme-batch, acme-dryrun, " in unknown.stderr


def test_second_target_runs_for_real_with_job_control(plugin_path: Path, hub: Path) -> None:
    """acme-batch (examples/site-plugin/madengine_acme/batch.py) keeps madengine's target contract: its generated
    run task takes every run option, runs the model for real, and jobs.status/logs/cancel reattach to its jobs."""
    built = run(["-m", "madengine", "build", "--tags", "dummy", "--tags", "dummy_timeout", "--additional-context",
                 CPU], hub, plugin_path)
    assert built.returncode == 0, built.stderr
    manifest = json.loads((hub / "build_manifest.json").read_text())
    for name in ("dummy", "dummy_timeout"):
        one = dict(manifest)
        key = next(k for k, b in manifest["built_images"].items() if b["model"] == name)
        one["built_images"] = {key: manifest["built_images"][key]}
        one["built_models"] = {key: manifest["built_models"][key]}
        (hub / f"{name}.json").write_text(json.dumps(one))
    res = run(["-m", "madengine", "site.acme.batch-run", "--manifest-file", "dummy.json", "--additional-context",
               CPU, "--no-sys-env-details"], hub, plugin_path)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = (hub / "perf.csv").read_text().splitlines()
    assert len(rows) == 2 and ",acme-batch," in rows[1] and ",SUCCESS," in rows[1], rows
    refused = run(["-m", "madengine", "site.acme.batch-run", "--manifest-file", "dummy.json", "--keep-alive"], hub,
                  plugin_path)
    assert refused.returncode == 4 and "--keep-alive: the acme-batch target cannot honour" in refused.stderr

    started = run(["-m", "madengine", "site.acme.batch-run", "--manifest-file", "dummy_timeout.json", "--timeout",
                   "0", "--no-wait", "--additional-context", CPU], hub, plugin_path)
    assert started.returncode == 0, started.stderr
    job = next(line for line in started.stdout.splitlines() if line.startswith("acme-"))
    status = run(["-m", "madengine", "jobs.status", job], hub, plugin_path)
    assert status.returncode == 0 and f"job {job}: R" in status.stdout, status.stdout + status.stderr
    deadline = time.monotonic() + 60
    while "running dummy_timeout" not in (log := run(["-m", "madengine", "jobs.logs", job], hub, plugin_path)).stdout:
        assert time.monotonic() < deadline, log.stdout + log.stderr
        time.sleep(1)
    cancelled = run(["-m", "madengine", "jobs.cancel", job], hub, plugin_path)
    assert cancelled.returncode == 0 and f"job {job}:" in cancelled.stdout, cancelled.stderr
    final = run(["-m", "madengine", "jobs.status", job], hub, plugin_path)
    assert final.returncode == 3 and "1 row(s) appended" in final.stdout, final.stdout + final.stderr
    assert len((hub / "perf.csv").read_text().splitlines()) == 3  # the cancelled job's FAILURE row
    again = run(["-m", "madengine", "jobs.status", job], hub, plugin_path)
    assert "appended" not in again.stdout and len((hub / "perf.csv").read_text().splitlines()) == 3  # once
    ps = ["docker", "ps", "-a", "--filter", "label=org.madengine.output-dir", "--format",
          '{{.Label "org.madengine.output-dir"}}']

    def ours() -> list[str]:
        listed = subprocess.run(ps, capture_output=True, text=True, check=True).stdout.split()
        return [d for d in listed if d.startswith(str(hub))]

    deadline = time.monotonic() + 30
    while ours() and time.monotonic() < deadline:
        time.sleep(1)
    assert not ours(), "the cancelled job's container was left behind"


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
