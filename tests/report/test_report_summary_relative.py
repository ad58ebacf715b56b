"""write_summary (the run summary JSON) and relative_change (perf.csv's relative_change column)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from madengine.errors import MadEngineError
from madengine.report.relative import append_with_relative_change, relative_change
from madengine.report.summary import SUMMARY_SCHEMA, write_summary
from madengine.results.perf_csv import append_rows, read_rows
from tests.report.conftest import row


def test_write_summary_contents(tmp_path: Path) -> None:
    rows = [row("bert", performance="1000.5", test_duration="61.5", build_duration="9"),
            row("resnet", "FAILURE", reason="exit code 137 (out of memory)"),
            row("llama", "SKIPPED", reason="skip_gpu_arch lists gfx942"),
            row("odd", "SUCCESS", performance="n/a")]
    path = write_summary(tmp_path / "out" / "summary.json", rows, manifest_path="build_manifest.json",
                         deployment={"target": "slurm", "nodes": 2, "path": Path("/x")},
                         logs={"bert": "bert.run.live.log", "resnet": Path("resnet.run.live.log")},
                         output="perf.csv")
    data = json.loads(path.read_text())
    assert data["schema"] == SUMMARY_SCHEMA and data["created"].endswith("+00:00")
    assert (data["output"], data["manifest"]) == ("perf.csv", "build_manifest.json")
    assert data["deployment"] == {"target": "slurm", "nodes": 2, "path": "/x"}
    assert data["logs"] == ["bert.run.live.log", "resnet.run.live.log"]
    assert data["counts"] == {"total": 4, "SUCCESS": 2, "FAILURE": 1, "SKIPPED": 1}
    bert, resnet, llama, odd = data["models"]
    assert (bert["performance"], bert["test_duration"], bert["build_duration"], bert["log"]) == (
        1000.5, 61.5, 9.0, "bert.run.live.log")
    assert (resnet["status"], resnet["reason"], resnet["performance"]) == ("FAILURE", resnet["reason"], None)
    assert "out of memory" in resnet["reason"] and llama["reason"].startswith("skip_gpu_arch")
    assert odd["performance"] is None and odd["log"] == ""
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_write_summary_deployment_name_and_log_list(tmp_path: Path) -> None:
    path = write_summary(tmp_path / "s.json", [], deployment="local", logs=["a.log", "b.log"])
    data = json.loads(path.read_text())
    assert data["deployment"] == {"target": "local"} and data["logs"] == ["a.log", "b.log"]
    assert data["manifest"] is None and data["models"] == [] and data["counts"]["total"] == 0


def test_write_summary_unwritable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(MadEngineError, match="cannot write the run summary") as e:
        write_summary(blocker / "s.json", [])
    assert e.value.exit_code == 1


def test_relative_change_against_previous_run_in_real_perf_csv(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    append_rows(path, [
        row("bert", performance="100"),
        row("bert", performance="200", gpu_architecture="gfx90a"),     # other GPU: not comparable
        row("bert", performance="400", deployment_type="slurm"),       # other deployment
        row("bert", performance="500", docker_file="docker/other"),    # other image
        row("bert", "FAILURE"),                                         # failed: skipped
        row("bert", performance="80"),                                  # the previous run
        row("bert", performance="90", metric="tokens_per_second"),     # other metric
    ])
    previous = read_rows(path)
    assert relative_change(previous, row("bert", performance="100")) == "+25.00%"
    assert relative_change(previous, row("bert", performance="60")) == "-25.00%"
    assert relative_change(previous, row("bert", performance="80")) == "+0.00%"
    assert relative_change(previous, row("bert", performance="250", gpu_architecture="gfx90a")) == "+25.00%"
    assert relative_change(previous, row("gpt", performance="1")) == ""      # no previous run
    assert relative_change(previous, row("bert", "FAILURE")) == ""           # no number
    assert relative_change([], row("bert")) == ""
    # PerfRow objects work as previous rows too; a zero previous value cannot be a base
    assert relative_change([row("m", performance="0")], row("m", performance="5")) == ""
    assert relative_change([row("m", performance="-4")], row("m", performance="-2")) == "+50.00%"


def test_relative_change_never_writes_infinity() -> None:
    """perf.csv never gets ``+inf%``: a change too large for a float is left blank."""


    old = {"model": "m", "status": "SUCCESS", "metric": "x", "performance": "1e-308"}
    assert relative_change([old], {"model": "m", "metric": "x", "performance": "1e308"}) == ""
    assert relative_change([old], {"model": "m", "metric": "x", "performance": "2e-308"}) == "+100.00%"


def test_relative_change_reads_v1_rows() -> None:
    v1 = {"model": "bert", "docker_file": "docker/bert.Dockerfile", "gpu_architecture": "gfx942",
          "performance": "50", "metric": "samples_per_second", "status": "SUCCESS"}  # no deployment_type column
    assert relative_change([v1], {**v1, "performance": "55"}) == "+10.00%"


def test_appends_read_only_the_rows_added_since_the_last(tmp_path: Path, monkeypatch) -> None:
    """The relative-change index: the first append reads the file once; later appends read only the rows added
    since (another writer's included), and an edited or replaced file is read whole again, with right results."""
    from madengine.report import relative

    path = tmp_path / "perf.csv"
    append_rows(path, [row(f"m{i}", performance=str(i + 1)) for i in range(500)])
    reads: list[tuple[int, int]] = []
    real = relative._rows_from

    def spy(fd, start, end):
        reads.append((start, end))
        return real(fd, start, end)

    monkeypatch.setattr(relative, "_rows_from", spy)
    first = [row("m7", performance="16")]
    append_with_relative_change(path, first)
    assert first[0].relative_change == "+100.00%" and reads[-1][0] == 0
    append_rows(path, [row("m7", performance="32")])  # another writer, no index update
    before = path.stat().st_size
    second = [row("m7", performance="48")]
    append_with_relative_change(path, second)
    assert second[0].relative_change == "+50.00%"
    assert reads[-1] == (reads[0][1], before)  # only the tail: from where the index stopped to the end
    text = path.read_text()  # the other writer's row edited in place: the indexed bytes changed, read whole again
    at = text.rfind("m7,", 0, text.rfind("m7,"))
    path.write_text(f"{text[:at]}mX,{text[at + 3:]}")
    third = [row("m7", performance="96")]
    append_with_relative_change(path, third)
    assert reads[-1][0] == 0 and third[0].relative_change == "+100.00%"  # against 48, the latest m7 row
