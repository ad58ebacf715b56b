"""Ctrl-C/SIGTERM/SIGHUP remove the container; SIGKILL leaves it to `madengine clean`; concurrent runs appending to
one perf.csv lose no row."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CPU, madengine, own_containers, read_perf


def _wait_for_container(client, hub: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = own_containers(client, hub, "dummy_timeout")
        if running:
            return running[0].name
        time.sleep(0.2)
    raise AssertionError("the model's container never started")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_removes_container_and_keeps_perf_csv(hub: Path, docker_client, no_leftovers, sig) -> None:
    assert madengine("run.local", "--tags", "dummy", "--additional-context", CPU, cwd=hub).rc == 0
    before = (hub / "perf.csv").read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "madengine", "run.local", "--tags", "dummy_timeout",
                             "--timeout", "120", "--additional-context", CPU], cwd=hub,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        name = _wait_for_container(docker_client, hub)
        time.sleep(0.5)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not docker_client.containers.list(all=True, filters={"name": name})
    assert (hub / "perf.csv").read_bytes() == before
    with sqlite3.connect(hub / "madengine-results.db") as db:  # the store says how each run ended
        ended = db.execute("SELECT status FROM runs ORDER BY started_at").fetchall()
    assert ended == [("done",), ("interrupted",)]


def test_sigkill_leftover_is_reported_and_cleaned(hub: Path, docker_client, no_leftovers) -> None:
    """SIGKILL gives madengine no chance to clean up: the container keeps running, labelled with its dead owner.
    The next run warns about it, `clean --dry-run` lists it, `clean` removes it; a --keep-alive container (kept on
    purpose) is neither reported nor removed without --keep-alive."""
    kept = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, "--keep-alive", cwd=hub)
    assert kept.rc == 0, kept.err
    kept_name = own_containers(docker_client, hub, "dummy")[0].name
    proc = subprocess.Popen([sys.executable, "-m", "madengine", "run.local", "--tags", "dummy_timeout",
                             "--timeout", "120", "--additional-context", CPU], cwd=hub,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = _wait_for_container(docker_client, hub)
    proc.kill()
    proc.wait(timeout=30)
    assert docker_client.containers.get(name).status == "running"
    again = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, cwd=hub)
    # the report is host-wide: another user's killed runs may be listed too
    assert again.rc == 0 and "container(s) left running by madengine runs that were killed" in again.err, again.err
    assert name in again.err and "madengine clean" in again.err
    listed = madengine("clean", "--dry-run", cwd=hub)
    assert listed.rc == 0 and f"would remove {name} (model dummy_timeout" in listed.out, listed.out + listed.err
    assert docker_client.containers.get(name).status == "running"
    removed = madengine("clean", cwd=hub)
    assert removed.rc == 0 and f"removed {name}" in removed.out and kept_name not in removed.out
    assert not docker_client.containers.list(all=True, filters={"name": name})
    assert not (hub / ".madengine" / "work" / name).exists()  # the killed run's workspace went with it
    assert name not in madengine("clean", cwd=hub).out
    gone = madengine("clean", "--keep-alive", cwd=hub)
    assert gone.rc == 0 and f"removed {kept_name}" in gone.out, gone.out + gone.err


def test_concurrent_runs_append_to_one_perf_csv(hub: Path, no_leftovers) -> None:
    """Three runs at once into one directory: no row lost, one header, and no run's log overwritten."""
    assert madengine("build", "--tags", "examples", "--additional-context", CPU, cwd=hub).rc == 0
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-m", "madengine", "run.local", "--manifest-file",
                               "build_manifest.json", "--output", "shared/perf.csv"], cwd=hub, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    rows = read_perf(hub / "shared" / "perf.csv")
    assert len(rows) == 3 * 7
    assert (hub / "shared" / "perf.csv").read_text().count("model,n_gpus") == 1
    # every run keeps its own logs (madengine-runs/<run id>/); the v2 name points to the latest run's
    logs = sorted((hub / "shared" / "madengine-runs").glob("*/dummy_dummy.ubuntu.run.live.log"))
    assert len(logs) == 3 and all("performance:" in log.read_text() for log in logs)
    latest = hub / "shared" / "dummy_dummy.ubuntu.run.live.log"
    assert latest.is_symlink() and latest.resolve() in {log.resolve() for log in logs}
