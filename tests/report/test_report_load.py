"""madengine.report.load on real files: our perf.csv, madengine v1 and v2 files, summaries, and bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from madengine.errors import ConfigError, PerfCsvError
from madengine.report.load import load_sources
from madengine.report.summary import write_summary
from madengine.results.perf_csv import PERF_CSV_HEADER
from tests.report.conftest import V1_HEADER, row


def test_reads_our_perf_csv(sample: Path) -> None:
    [source] = load_sources([sample])
    assert source.kind == "perf.csv" and source.label == "perf.csv"
    bert, resnet, llama = source.rows
    assert (bert.model, bert.status, bert.performance, bert.metric) == ("bert", "SUCCESS", 1000.0,
                                                                       "samples_per_second")
    assert (bert.n_gpus, bert.launcher, bert.build_duration, bert.test_duration) == ("8", "torchrun", 12.5, 60.25)
    assert (bert.line, resnet.line, llama.line) == (2, 3, 4)
    assert resnet.performance is None and resnet.reason == ""  # perf.csv has no reason column


def test_reads_madengine_v1(tmp_path: Path) -> None:
    path = tmp_path / "v1.csv"
    path.write_text(V1_HEADER + "\n"
                    "pyt_bert, 8, fp16, , , pyt, docker/bert, rocm/pytorch, sha, ci-bert, abc, node1, gfx90a, "
                    "1234.5, samples_per_second, , SUCCESS, 10.5, 99, , , , , , \n")
    [source] = load_sources([path])
    [r] = source.rows
    assert source.kind == "perf.csv v1"
    assert (r.model, r.performance, r.gpu_architecture, r.nnodes, r.launcher) == ("pyt_bert", 1234.5, "gfx90a", "",
                                                                                  "")


def test_reads_madengine_v2_with_extra_columns_blank_performance_unknown_status(tmp_path: Path) -> None:
    path = tmp_path / "v2.csv"
    header = [*PERF_CSV_HEADER, "site_note"]
    values = {name: "" for name in header}
    values.update(model="m", performance="", status="TIMEOUT", site_note="rack 4")
    path.write_text(",".join(header) + "\n" + ",".join(values[h] for h in header) + "\n")
    [r] = load_sources([path])[0].rows
    assert (r.status, r.performance, r.performance_text) == ("TIMEOUT", None, "")
    assert r.columns["site_note"] == "rack 4"


@pytest.mark.parametrize("text, problem", [
    ("model,performance,metric,status\nm,1,x\n", ":2: 3 fields, but the header has 4"),
    ("model,performance,metric,status\nm,\"1,x,SUCCESS\n", ": malformed CSV"),
    ("name,value\nm,1\n", ":1: not a perf.csv header: missing column(s) model"),
])
def test_malformed_perf_csv_names_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(PerfCsvError) as e:
        load_sources([path])
    assert str(path) in e.value.message and problem in e.value.message
    assert e.value.exit_code == 4 and "\n" not in e.value.message


def test_missing_file_and_label_count(tmp_path: Path, sample: Path) -> None:
    with pytest.raises(ConfigError, match="no such file; give --csv"):
        load_sources([tmp_path / "nope.csv"])
    with pytest.raises(ConfigError, match="--label given 1 time"):
        load_sources([sample, sample], ["only-one"])
    with pytest.raises(ConfigError, match="no input"):
        load_sources([])


def test_same_file_name_twice_is_labelled_by_path(write_perf, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    a = write_perf("perf.csv", [row("m")])
    b = write_perf("x/perf.csv", [row("m")])
    assert [s.label for s in load_sources([a, b])] == [str(a), str(b)]
    assert [s.label for s in load_sources([a, b], ["old", "new"])] == ["old", "new"]


def test_summary_as_input_and_as_reasons(sample: Path, tmp_path: Path) -> None:
    summary = write_summary(tmp_path / "run.json", [row("resnet", "FAILURE", reason="timed out after 60 s")],
                            logs={"resnet": "resnet.run.live.log"}, output=sample)
    [as_input] = load_sources([summary])
    assert as_input.kind == "run summary"
    assert (as_input.rows[0].reason, as_input.rows[0].log, as_input.rows[0].from_summary) == (
        "timed out after 60 s", "resnet.run.live.log", True)
    [with_reasons] = load_sources([sample], summaries=[summary])
    resnet = next(r for r in with_reasons.rows if r.model == "resnet")
    assert resnet.reason == "timed out after 60 s" and resnet.log == "resnet.run.live.log"


def test_reasons_go_to_the_latest_matching_row(write_perf, tmp_path: Path) -> None:
    path = write_perf("perf.csv", [row("m", "FAILURE"), row("m"), row("m", "FAILURE")])
    summary = write_summary(tmp_path / "s.json", [row("m", "FAILURE", reason="oom")])
    rows = load_sources([path], summaries=[summary])[0].rows
    assert [r.reason for r in rows] == ["", "", "oom"]


@pytest.mark.parametrize("text, problem", [
    ('{"models": [', ":1:13: not valid JSON"),
    ('{"models": [{"model": "m"}]}', ": models[0].status: Field required"),
    ('{"models": [{"model": "m", "status": "SUCCESS", "performance": "fast"}]}', ": models[0].performance:"),
])
def test_malformed_summary(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_sources([path])
    assert f"{path}{problem}" in e.value.message and e.value.exit_code == 4
