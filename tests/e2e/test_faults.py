"""Faults a fleet meets every week (issue "nothing lost, nothing leaked, nothing orphaned"), reproduced for real:
a perf.csv cut short by another writer, a perf.csv broken while the model runs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import CPU, madengine, read_perf


def test_cut_short_perf_csv_is_refused_before_running(hub: Path, docker_client, no_leftovers) -> None:
    """A last row cut short (an interrupted writer) is found before any model runs: exit 4, one line naming the
    file, line and fix; the file is left byte for byte; no row and no container."""
    assert madengine("run.local", "--tags", "dummy", "--additional-context", CPU, cwd=hub).rc == 0
    perf = hub / "perf.csv"
    perf.write_bytes(perf.read_bytes()[:-40])
    before = perf.read_bytes()
    res = madengine("run.local", "--tags", "dummy", "--additional-context", CPU, cwd=hub)
    assert res.rc == 4, res.err
    assert "perf.csv:2: the last row is cut short" in res.err and "sed -i '$d'" in res.err
    assert "running dummy" not in res.err and len(res.err.strip().splitlines()[-1]) < 300
    assert perf.read_bytes() == before


def test_perf_csv_missing_directory_is_not_created_by_a_refused_run(hub: Path) -> None:
    """A run refused for bad input (exit 4) writes nothing: no header-only perf.csv, no directories."""
    res = madengine("run.local", "--tags", "dummy", "--additional-context", '{"gpu_vendor": "AMD"}',
                    "--output", "new/perf.csv", cwd=hub)
    assert res.rc == 4, res.err
    assert not (hub / "new").exists()


def test_result_survives_a_perf_csv_broken_during_the_run(hub: Path, docker_client, no_leftovers) -> None:
    """Another tool replaces perf.csv with a foreign file while the model runs: the finished row is written to a
    new perf.csv next to it and the error says where; the foreign file is left alone."""
    perf = hub / "perf.csv"
    proc = subprocess.Popen([sys.executable, "-m", "madengine", "run.local", "--tags", "dummy_timeout",
                             "--timeout", "4", "--additional-context", CPU], cwd=hub,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not docker_client.containers.list(filters={"label": "org.madengine.model=dummy_timeout"}):
            assert time.monotonic() < deadline and proc.poll() is None, "the model's container never started"
            time.sleep(0.2)
        perf.write_text("when,what\n2026-01-01,someone else's file\n")
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, err
    assert perf.read_text() == "when,what\n2026-01-01,someone else's file\n"
    spare = list(hub.glob("perf.unsaved-*.csv"))
    assert len(spare) == 1 and f"saved to {spare[0].name} instead" in err and "Traceback" not in err
    rows = read_perf(spare[0])
    assert [(r["model"], r["status"]) for r in rows] == [("dummy_timeout", "FAILURE")]
