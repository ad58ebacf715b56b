"""The report tasks through the real console script (``python -m madengine report ...``)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from madengine.report.summary import write_summary
from tests.conftest import madengine
from tests.report.conftest import row


def test_report_default_reads_perf_csv_of_cwd(sample: Path) -> None:
    cli = madengine("report", cwd=sample.parent)
    assert cli.rc == 0, cli.text
    assert cli.out.splitlines()[0].startswith("model ") and "Failures (1):" in cli.out


def test_report_formats_and_output(sample: Path, tmp_path: Path) -> None:
    summary = write_summary(tmp_path / "run.json", [row("resnet", "FAILURE", reason="timed out after 60 s")])
    cli = madengine("report", "--csv", str(sample), "--summary", str(summary), "--format", "json", cwd=tmp_path)
    assert cli.rc == 0, cli.text
    assert json.loads(cli.out)["failures"][0]["reason"] == "timed out after 60 s"
    cli = madengine("report", "--csv", str(sample), "--format", "markdown", "--output", "out/r.md", cwd=tmp_path)
    assert cli.rc == 0 and "wrote markdown report out/r.md" in cli.out
    assert (tmp_path / "out" / "r.md").read_text().startswith("# madengine report")
    assert madengine("report", "--csv", str(sample), "--format", "junit", cwd=tmp_path).out.startswith("<?xml")


def test_report_html_and_junit_tasks(sample: Path, tmp_path: Path) -> None:
    cli = madengine("report.html", "--csv", str(sample), cwd=tmp_path)
    assert cli.rc == 0 and (tmp_path / "report.html").read_text().count('<rect class="bar"') == 1
    cli = madengine("report.junit", "--csv", str(sample), "--output", "j.xml", cwd=tmp_path)
    assert cli.rc == 0 and ET.parse(tmp_path / "j.xml").getroot().get("tests") == "3"


def test_compare_task(write_perf, tmp_path: Path) -> None:
    a = write_perf("a.csv", [row("bert", performance="1000"), row("gpt", performance="10")])
    b = write_perf("b.csv", [row("bert", performance="800"), row("gpt", performance="10.1")])
    cli = madengine("report.compare", "--csv", str(a), "--csv", str(b), "--label", "base", "--label", "pr",
                    "--threshold", "0.1", cwd=tmp_path)
    assert cli.rc == 0, cli.text
    lines = cli.out.splitlines()
    assert lines[0].split() == ["model", "metric", "base", "pr", "Δ", "pr", "Δ%", "pr", "flag"]
    assert lines[2].split() == ["bert", "samples_per_second", "1000", "800", "-200", "-20.00%", "REGRESSION"]
    assert lines[3].split() == ["gpt", "samples_per_second", "10", "10.1", "+0.1", "+1.00%"]
    assert "\033[" not in cli.out  # not a terminal: no colour
    data = json.loads(madengine("report.compare", "--csv", str(a), "--csv", str(b), "--by", "config",
                                "--format", "json", cwd=tmp_path).out)
    assert data["by"] == "config" and data["entries"][0]["flag"] == "regression"


def test_check_task_exit_codes(write_perf, tmp_path: Path) -> None:
    perf = write_perf("perf.csv", [row("bert", performance="900"), row("gpt", performance="10")])
    (tmp_path / "ok.yaml").write_text("models:\n  gpt: {expected: 10}\n")
    (tmp_path / "bad.yaml").write_text("models:\n  bert: {expected: 1000}\n  t5: {expected: 1}\n")
    ok = madengine("report.check", "--references", "ok.yaml", "--csv", str(perf), cwd=tmp_path)
    assert ok.rc == 0 and "1 check(s): 1 ok, 0 not ok" in ok.out
    bad = madengine("report.check", "--references", "bad.yaml", cwd=tmp_path)
    assert bad.rc == 3, bad.text
    assert "OUT OF BOUNDS" in bad.out and "MISSING" in bad.out
    [message] = bad.err.strip().splitlines()
    assert message.startswith("madengine: error: report.check: 2 of 2 check(s) failed: bert: out of bounds: 900")
    assert madengine("report.check", "--references", "bad.yaml", "--allow-missing", cwd=tmp_path).rc == 3


@pytest.mark.parametrize("args, rc, message", [
    (["report", "--csv", "bad.csv"], 4, "bad.csv:3: 2 fields, but the header has 4"),
    (["report", "--csv", "missing.csv"], 4, "missing.csv: no such file; give --csv"),
    (["report", "--csv", "bad.json"], 4, "bad.json:1:2: not valid JSON"),
    (["report", "--csv", "good.csv", "--format", "pdf"], 4, "--format 'pdf': use one of table, json, html"),
    (["report", "--csv", "good.csv", "--label", "a", "--label", "b"], 4, "--label given 2 time(s) for 1 input"),
    (["report.compare", "--csv", "good.csv"], 4, "needs two or more inputs"),
    (["report.compare", "--csv", "good.csv", "--csv", "good.csv", "--threshold", "5%"], 4, "--threshold '5%'"),
    (["report.check", "--csv", "good.csv"], 4, "report.check needs --references F"),
    (["report.check", "--references", "refs.yaml", "--csv", "good.csv"], 4, "refs.yaml:2:1: not valid YAML"),
    (["report.html", "--csv", "good.csv", "--output", "good.csv/x.html"], 1, "cannot write the HTML report"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], rc: int, message: str) -> None:
    (tmp_path / "good.csv").write_text("model,performance,metric,status\nm,1,x,SUCCESS\n")
    (tmp_path / "bad.csv").write_text("model,performance,metric,status\nm,1,x,SUCCESS\nm,1\n")
    (tmp_path / "bad.json").write_text("{,}")
    (tmp_path / "refs.yaml").write_text("models: [\n")
    cli = madengine(*args, cwd=tmp_path)
    assert cli.rc == rc, cli.text
    [line] = cli.err.strip().splitlines()
    assert line.startswith("madengine: error: ") and message in line, line
    assert "Traceback" not in cli.text
