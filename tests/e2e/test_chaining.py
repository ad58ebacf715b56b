"""Makefile/CI chaining and the CLI surface ops staff script against: the Makefile example's local path runs,
``--list`` is complete, and shell completion works for the ``madengine`` script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, madengine


def test_makefile_local_path(hub: Path, tmp_path: Path, no_leftovers) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    launcher = bindir / "madengine"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} -m madengine \"$@\"\n")
    launcher.chmod(0o755)
    out = tmp_path / "results"
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    proc = subprocess.run(["make", "-f", str(REPO / "examples" / "Makefile"), "local", f"HUB={hub}",
                           f"OUT={out}", f"CONTEXT={REPO / 'configs' / 'cpu-smoke.json'}"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    junit = (out / "junit.xml").read_text()
    assert "<testsuite" in junit and "dummy2/model2" in junit
    assert len((out / "perf.csv").read_text().splitlines()) == 8


def test_list_is_complete_and_stable(tmp_path: Path) -> None:
    res = madengine("--list", "--list-format", "json", cwd=tmp_path)
    assert res.rc == 0, res.text
    listing = json.loads(res.out)
    names = {t["name"] for t in listing["tasks"]}
    assert {"build", "discover"} <= names
    collections = {c["name"]: {t["name"] for t in c["tasks"]} for c in listing["collections"]}
    assert {"local", "deploy", "slurm", "k8s"} <= collections["run"]
    assert {"status", "logs", "cancel"} <= collections["slurm"] and {"status", "logs", "cancel"} <= collections["k8s"]
    assert {"compare", "html", "junit", "check"} <= collections["report"]
    again = madengine("--list", "--list-format", "json", cwd=tmp_path)
    assert again.out == res.out


def test_shell_completion(tmp_path: Path) -> None:
    script = madengine("--print-completion-script", "bash", cwd=tmp_path)
    assert script.rc == 0 and "complete -F" in script.out and "madengine" in script.out
    tasks = madengine("--complete", "--", "madengine", "run.", cwd=tmp_path)
    assert "run.local" in tasks.out.split()
    flags = madengine("--complete", "--", "madengine", "run.local", "--", cwd=tmp_path)
    assert "--manifest-file" in flags.out.split() and "--additional-context" in flags.out.split()

