"""Pre-campaign cluster checks (the library behind ``site.acme.cluster-check``)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from madengine import api


@dataclass
class Check:
    """One check's outcome: ``ok`` and a one-line detail."""

    name: str
    ok: bool
    detail: str


def run_checks(hub: Path, output: Path, *, min_free_gb: float, expect_gpus: int | None,
               partition: str | None) -> list[Check]:
    """Run every check and return their outcomes (never raises for a failing check)."""
    checks: list[Check] = []
    engine = api.engine_status()
    checks.append(Check("docker engine", engine.ok, engine.detail))
    target = output.resolve().parent
    target.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(target).free / 1e9
    checks.append(Check("disk space", free_gb >= min_free_gb, f"{free_gb:.1f} GB free in {target} "
                                                              f"(need {min_free_gb:g})"))
    gpus = api.detect_gpus()
    if expect_gpus is None:
        checks.append(Check("gpus", True, f"{gpus.count} {gpus.vendor} GPU(s) {gpus.architecture}".strip()))
    else:
        checks.append(Check("gpus", gpus.count == expect_gpus, f"{gpus.count} found, {expect_gpus} expected"))
    try:
        models = api.discover_models(hub, ["all"])
        checks.append(Check("model hub", True, f"{len(models)} models in {hub}"))
    except api.MadEngineError as e:
        checks.append(Check("model hub", False, e.message))
    if partition:
        checks.append(_partition(partition))
    return checks


def _partition(partition: str) -> Check:
    if not shutil.which("sinfo"):
        return Check(f"slurm partition {partition}", False, "sinfo not found on this host")
    proc = subprocess.run(["sinfo", "-h", "-p", partition, "-o", "%a %D %t"], capture_output=True, text=True,
                          timeout=30, check=False)
    lines = proc.stdout.split()
    ok = proc.returncode == 0 and bool(lines) and lines[0] == "up"
    return Check(f"slurm partition {partition}", ok, proc.stdout.strip() or proc.stderr.strip() or "no such partition")
