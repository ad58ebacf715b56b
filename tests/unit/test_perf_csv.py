"""Tests of madengine.results.perf_csv on real files: format, header checks, locking, crash safety, v1 reading."""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from madengine.errors import PerfCsvError
from madengine.results.perf_csv import PERF_CSV_HEADER, PerfRow, append_rows, format_rows, read_rows

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

HEADER_TEXT = (
    "model,n_gpus,nnodes,gpus_per_node,training_precision,pipeline,args,tags,docker_file,base_docker,docker_sha,"
    "docker_image,git_commit,machine_name,deployment_type,launcher,gpu_architecture,performance,metric,"
    "relative_change,status,build_duration,test_duration,dataname,data_provider_type,data_size,"
    "data_download_duration,build_number,additional_docker_run_options"
)
V1_HEADER = (
    "model, n_gpus, training_precision, pipeline, args, tags, docker_file, base_docker, docker_sha, docker_image, "
    "git_commit, machine_name, gpu_architecture, performance, metric, relative_change, status, build_duration, "
    "test_duration, dataname, data_provider_type, data_size, data_download_duration, build_number, "
    "additional_docker_run_options"
)


def row(model: str, **fields: object) -> PerfRow:
    return PerfRow(model=model, status=fields.pop("status", "SUCCESS"), **fields)  # type: ignore[arg-type]


def journal(path: Path) -> Path:
    return path.with_name(path.name + ".pending")


def header_lines(path: Path) -> int:
    return path.read_text().splitlines().count(HEADER_TEXT)


# --- row type -------------------------------------------------------------------------------------------------------


def test_header_is_madengine_v2() -> None:
    assert ",".join(PERF_CSV_HEADER) == HEADER_TEXT
    assert len(PERF_CSV_HEADER) == 29
    assert list(PerfRow.model_fields) == [*PERF_CSV_HEADER, "reason", "node_rank", "samples"]  # none is written


def test_row_to_csv_dict() -> None:
    given: dict = {"tags": ["dummies", "dummy_group_1"], "n_gpus": 8, "build_duration": 12.5, "git_commit": None}
    r = PerfRow(model="dummy", status="FAILURE", reason="timed out after 60 s", **given)
    d = r.to_csv_dict()
    assert list(d) == list(PERF_CSV_HEADER)
    assert d["tags"] == "dummies,dummy_group_1"
    assert (d["n_gpus"], d["build_duration"], d["git_commit"], d["status"]) == ("8", "12.5", "", "FAILURE")
    assert "reason" not in d and all(isinstance(v, str) for v in d.values())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": "m"},  # status is required
        {"model": "m", "status": "PASSED"},
        {"model": "m", "status": "SUCCESS", "no_such_column": "x"},
        {"model": "m", "status": "SUCCESS", "args": {"a": 1}},
    ],
)
def test_row_rejects(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        PerfRow(**kwargs)


def test_format_rows_checks_unvalidated_copies() -> None:
    ok = row("m").model_copy(update={"tags": ["a", "b"], "n_gpus": 8, "git_commit": None})
    assert format_rows([ok]) == format_rows([row("m", tags="a,b", n_gpus="8")])
    with pytest.raises(PerfCsvError, match="status 'MAYBE'"):
        format_rows([row("m").model_copy(update={"status": "MAYBE"})])
    with pytest.raises(PerfCsvError, match="column 'args' holds dict"):
        format_rows([row("m").model_copy(update={"args": {"a": 1}})])


# --- append_rows ----------------------------------------------------------------------------------------------------


def test_append_creates_dirs_and_header_once(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "perf.csv"
    append_rows(path, [row("m1", performance="1.5", metric="ms")])
    append_rows(path, [row("m2", status="FAILURE", reason="boom"), row("m3", status="SKIPPED")])
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER_TEXT and header_lines(path) == 1
    assert [r["model"] for r in read_rows(path)] == ["m1", "m2", "m3"]
    assert [r["status"] for r in read_rows(path)] == ["SUCCESS", "FAILURE", "SKIPPED"]
    assert "boom" not in path.read_text()  # the reason is never written
    assert not journal(path).exists()


def test_append_no_rows_creates_or_checks_only(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    append_rows(path, [])
    assert path.read_text() == HEADER_TEXT + "\n"
    append_rows(path, [row("m")])
    before = path.read_bytes()
    append_rows(path, [])
    assert path.read_bytes() == before


def test_append_empty_file_gets_header(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    path.touch()
    append_rows(path, [row("m")])
    assert path.read_text().splitlines()[0] == HEADER_TEXT


@pytest.mark.parametrize(
    "value",
    ['a,b', 'say "hi"', "line1\nline2", "cr\r\nlf", " padded ", "ünïcødé ✓", "", "=1+1", "trailing,"],
)
def test_append_round_trips_awkward_values(tmp_path: Path, value: str) -> None:
    path = tmp_path / "perf.csv"
    append_rows(path, [row("m", args=value, additional_docker_run_options=value), row("after")])
    first, second = read_rows(path)
    assert first["args"] == value and first["additional_docker_run_options"] == value
    assert second["model"] == "after"
    parsed = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8", errors="strict"), newline="")))
    assert all(len(cells) == 29 for cells in parsed)


def test_append_never_changes_existing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    append_rows(path, [row(f"m{i}", performance=str(i)) for i in range(5)])
    before = path.read_bytes()
    append_rows(path, [row("new")])
    after = path.read_bytes()
    assert after.startswith(before) and after.count(b"\n") == before.count(b"\n") + 1


def test_append_adds_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    append_rows(path, [row("edited")])
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # someone's editor dropped the final newline
    before = path.read_bytes()
    append_rows(path, [row("next")])
    assert path.read_bytes().startswith(before + b"\n")
    assert [r["model"] for r in read_rows(path)] == ["edited", "next"]


def test_append_to_header_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    path.write_text(HEADER_TEXT)
    append_rows(path, [row("m")])
    assert [r["model"] for r in read_rows(path)] == ["m"]


def test_append_accepts_spaced_v2_header(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    path.write_text(", ".join(PERF_CSV_HEADER) + "\n")
    append_rows(path, [row("m", performance="3")])
    assert [(r["model"], r["performance"]) for r in read_rows(path)] == [("m", "3")]


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (V1_HEADER + "\ndummy, 1, , , , dummies, d.Dockerfile, rocm/pytorch, , ci-dummy, , h, gfx942, 3, s, , "
         "SUCCESS, 1, 2, , , , , , \n", "25 columns (a madengine v1 perf.csv)"),
        ("model,performance,metric,status\nm,1,x,SUCCESS\n", "4 columns; missing: n_gpus"),
        (HEADER_TEXT + ",extra_column\n", "unexpected: extra_column"),
        (HEADER_TEXT.replace("nnodes,gpus_per_node", "gpus_per_node,nnodes") + "\n",
         "column 3 is 'gpus_per_node', expected 'nnodes'"),
        ("\n" + HEADER_TEXT + "\n", "blank"),
        ("just some text", "1 columns"),
        (b"\xff\xfe\x00binary".decode("latin-1"), "not UTF-8"),
    ],
)
def test_header_mismatch_refused_and_file_untouched(tmp_path: Path, content: str, detail: str) -> None:
    path = tmp_path / "old_perf.csv"
    path.write_bytes(content.encode("latin-1") if "binary" in content else content.encode())
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    with pytest.raises(PerfCsvError) as info:
        append_rows(path, [row("m")])
    message = info.value.message
    assert str(path) in message and detail in message and "--output" in message
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert not journal(path).exists()


def test_unwritable_location_is_perf_csv_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PerfCsvError, match="cannot open"):
        append_rows(blocker / "perf.csv", [row("m")])
    with pytest.raises(PerfCsvError, match="cannot open"):
        append_rows(tmp_path, [row("m")])
    with pytest.raises(PerfCsvError, match="not a regular file"):
        read_rows(tmp_path)


# --- read_rows ------------------------------------------------------------------------------------------------------


def test_read_v1_file(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    path.write_text(
        V1_HEADER + "\n"
        "dummy, 1, , , , dummies, docker/dummy.ubuntu.amd.Dockerfile, rocm/pytorch, sha256:ab, ci-dummy_dummy.ubuntu.amd, "
        "abc123, host1, gfx942, 11235, samples_per_second, , SUCCESS, 10.5, 20.1, , , , , 7, \n"
        'dummy2/model2, 8, fp16, , "--batch-size 32, --x 1", "pyt,bert", docker/d.Dockerfile, , , ci-x, , host1, '
        "gfx942, , , , FAILURE, 1, 2, , , , , 7, --shm-size 8G\n"
    )
    rows = read_rows(path)
    assert list(rows[0]) == [name.strip() for name in V1_HEADER.split(",")]
    assert (rows[0]["model"], rows[0]["performance"], rows[0]["metric"], rows[0]["status"]) == (
        "dummy", "11235", "samples_per_second", "SUCCESS")
    assert rows[0]["additional_docker_run_options"] == ""
    assert rows[1]["args"] == "--batch-size 32, --x 1" and rows[1]["tags"] == "pyt,bert"
    assert rows[1]["additional_docker_run_options"] == "--shm-size 8G"


def test_read_v1_without_last_column(tmp_path: Path) -> None:
    header = V1_HEADER.rsplit(", ", 1)[0]  # madengine da0d524: 24 columns
    path = tmp_path / "perf.csv"
    path.write_text(header + "\n" + ", ".join(["m"] + [""] * 15 + ["SUCCESS"] + [""] * 7) + "\n")
    (only,) = read_rows(path)
    assert len(only) == 24 and only["status"] == "SUCCESS"


def test_read_v2_file_written_by_madengine(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    values = ["dummy", "1", "1", "1", "", "", "", "dummies", "docker/dummy.ubuntu.amd.Dockerfile", "rocm/pytorch", "",
              "ci-dummy_dummy.ubuntu.amd", "", "host", "local", "docker", "gfx942", "42.0", "samples_per_second", "",
              "SUCCESS", "1.0", "2.0", "", "", "", "", "", ""]
    path.write_text(HEADER_TEXT + "\n" + ",".join(values) + "\n")
    assert read_rows(path) == [dict(zip(PERF_CSV_HEADER, values, strict=True))]
    append_rows(path, [row("ours")])  # and we append to it
    assert [r["model"] for r in read_rows(path)] == ["dummy", "ours"]


def test_read_empty_and_blank_files(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    path.touch()
    assert read_rows(path) == []
    path.write_text(HEADER_TEXT + "\n\n\n")
    assert read_rows(path) == []


@pytest.mark.parametrize(
    ("content", "location", "problem"),
    [
        (HEADER_TEXT + "\n" + "a,b,c\n", ":2:", "3 fields, but the header has 29"),
        (HEADER_TEXT + "\n" + ",".join(["x"] * 29) + "\n" + ",".join(["x"] * 30) + "\n", ":3:", "30 fields"),
        (HEADER_TEXT + "\n" + '"unterminated,' + ",".join(["x"] * 28) + "\n", ":2:", "malformed CSV"),
        (HEADER_TEXT + "\n" + '"a"b' + ",x" * 28 + "\n", ":2:", "malformed CSV"),
        ("model,performance,metric\nm,1,x\n", ":1:", "missing column(s) status"),
        ("model,status,model,performance,metric\n", ":1:", "'model' appears more than once"),
    ],
)
def test_read_malformed_gives_file_line_problem(tmp_path: Path, content: str, location: str, problem: str) -> None:
    path = tmp_path / "perf.csv"
    path.write_text(content)
    with pytest.raises(PerfCsvError) as info:
        read_rows(path)
    assert f"{path}{location}" in info.value.message and problem in info.value.message


def test_read_not_utf8_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    path.write_bytes(HEADER_TEXT.encode() + b"\n\xff\xfe,x\n")
    with pytest.raises(PerfCsvError, match=r"perf.csv:2: not UTF-8"):
        read_rows(path)
    with pytest.raises(PerfCsvError, match="no such perf.csv"):
        read_rows(tmp_path / "missing.csv")


# --- concurrency and crash safety -----------------------------------------------------------------------------------

WRITERS, APPENDS, BATCH = 6, 25, 4


def _writer(path: str, writer: int, start: Event) -> None:
    start.wait()
    for i in range(APPENDS):
        append_rows(path, [row(f"w{writer}_a{i}_r{j}", args="x," * 50, performance=str(i)) for j in range(BATCH)])


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "perf.csv"
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(path), w, start)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    models = [r["model"] for r in read_rows(path)]
    expected = {f"w{w}_a{i}_r{j}" for w in range(WRITERS) for i in range(APPENDS) for j in range(BATCH)}
    assert len(models) == len(expected) and set(models) == expected
    assert header_lines(path) == 1
    for w in range(WRITERS):  # one call's rows stay together and in order
        mine = [m for m in models if m.startswith(f"w{w}_")]
        assert mine == [f"w{w}_a{i}_r{j}" for i in range(APPENDS) for j in range(BATCH)]
        for i in range(APPENDS):
            first = models.index(f"w{w}_a{i}_r0")
            assert models[first:first + BATCH] == [f"w{w}_a{i}_r{j}" for j in range(BATCH)]


KILLED_ROWS = 30_000
_CHILD = f"""
import sys
from madengine.results.perf_csv import PerfRow, append_rows
rows = [PerfRow(model=f"k{{i}}", status="SUCCESS", performance=str(i), args="--a 1," * 100) for i in range({KILLED_ROWS})]
print("ready", flush=True)
append_rows(sys.argv[1], rows)
print("done", flush=True)
"""


def _kill_when(path: Path, trigger: str) -> bool:
    """Run a child appending KILLED_ROWS rows and SIGKILL it at ``trigger``; return whether the file was torn."""
    size = path.stat().st_size
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    deadline = time.monotonic() + 30
    while trigger != "ready" and child.poll() is None and time.monotonic() < deadline:
        if trigger == "journal" and journal(path).exists():
            break
        if trigger == "write" and path.stat().st_size > size:
            break
        time.sleep(0.0002)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    child.stdout.close()
    return not path.read_bytes().endswith(b"\n")


@pytest.mark.parametrize("trigger", ["ready", "journal", "write", "write"])
def test_sigkilled_writer_leaves_all_or_none(tmp_path: Path, trigger: str) -> None:
    path = tmp_path / "perf.csv"
    append_rows(path, [row(f"before{i}") for i in range(3)])
    before = path.read_bytes()
    torn = _kill_when(path, trigger)  # on Linux a big write stops at a folio boundary on SIGKILL: usually torn
    assert path.read_bytes().startswith(before)  # existing rows are never touched
    models = [r["model"] for r in read_rows(path)]  # completes an interrupted append first
    assert models[:3] == ["before0", "before1", "before2"]
    assert models[3:] in ([], [f"k{i}" for i in range(KILLED_ROWS)])
    if torn:
        assert len(models) == 3 + KILLED_ROWS and path.read_bytes().endswith(b"\n")
    append_rows(path, [row("after")])
    models = [r["model"] for r in read_rows(path)]
    assert models[-1] == "after" and len(models) in (4, 4 + KILLED_ROWS)
    assert header_lines(path) == 1 and path.read_bytes().endswith(b"\n") and not journal(path).exists()


def _journal_for(offset: int, data: bytes) -> bytes:
    digest = hashlib.sha256(data).hexdigest().encode()
    return b"madengine-perf-journal 1 %d %d %s\n" % (offset, len(data), digest) + data


@pytest.mark.parametrize("written", [0, 1, 100, -1])
def test_interrupted_append_is_completed(tmp_path: Path, written: int) -> None:
    """A writer killed after saving its journal and ``written`` bytes of rows (-1: all): rows come back whole."""
    path = tmp_path / "perf.csv"
    append_rows(path, [row("before")])
    data = format_rows([row(f"lost{i}", args="y" * 50) for i in range(5)])
    size = path.stat().st_size
    journal(path).write_bytes(_journal_for(size, data))
    with path.open("ab") as f:
        f.write(data if written < 0 else data[:written])
    assert [r["model"] for r in read_rows(path)] == ["before"] + [f"lost{i}" for i in range(5)]
    assert not journal(path).exists()


@pytest.mark.parametrize("case", ["torn journal", "stale journal", "garbage"])
def test_unusable_journal_is_dropped(tmp_path: Path, case: str) -> None:
    path = tmp_path / "perf.csv"
    append_rows(path, [row("before")])
    data = format_rows([row("ghost")])
    size = path.stat().st_size
    blob = {
        "torn journal": _journal_for(size, data)[:-5],  # writer died while saving the journal: file untouched
        "stale journal": _journal_for(size - 10, data),  # the file no longer holds what the journal says
        "garbage": b"not a journal\n",
    }[case]
    journal(path).write_bytes(blob)
    before = path.read_bytes()
    append_rows(path, [row("after")])
    assert path.read_bytes().startswith(before)
    assert [r["model"] for r in read_rows(path)] == ["before", "after"]
    assert not journal(path).exists()


def test_one_row_schema_for_perf_csv_summary_and_reports() -> None:
    """The result record is declared once: its fields (except the run log's path) are PerfRow fields, the run
    summary's entries are that record and a report row extends it, and both convert from a PerfRow by name."""
    from dataclasses import asdict, fields

    from madengine.report.load import ReportRow
    from madengine.report.summary import SummaryEntry, build_summary
    from madengine.results.record import NUMERIC_FIELDS, RECORD_FIELDS, ResultRecord

    assert set(RECORD_FIELDS) - {"log"} <= set(PerfRow.model_fields)
    assert set(RECORD_FIELDS) >= NUMERIC_FIELDS
    assert issubclass(SummaryEntry, ResultRecord) and issubclass(ReportRow, ResultRecord)
    assert tuple(f.name for f in fields(ReportRow))[:len(RECORD_FIELDS)] == RECORD_FIELDS
    row = PerfRow(model="m", status="FAILURE", performance="12.5", metric="s", build_duration="bad", node_rank="1",
                  reason="exit 3", relative_change="+1.00%")
    entry = build_summary([row], logs={"m": "m.log"}).models[0]
    assert (entry.performance, entry.build_duration, entry.node_rank, entry.reason, entry.log) == \
        (12.5, None, "1", "exit 3", "m.log")
    record = {name: value for name, value in asdict(entry).items() if name in RECORD_FIELDS}
    assert ReportRow.from_cells(dict(row), source="x") == ReportRow(**{**record, "log": ""}, source="x")
    assert entry.min is None  # no samples: no statistics
    repeated = build_summary([row.model_copy(update={"samples": [10.0, 12.5, 11.0, 30.0]})]).models[0]
    assert (repeated.min, repeated.max) == (10.0, 30.0) and repeated.ci_low <= 11.75 <= repeated.ci_high
