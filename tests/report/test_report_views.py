"""The table, JSON, Markdown, JUnit and HTML views of madengine.report on real perf.csv files."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from madengine.report.html import MAX_DETAIL_ROWS, render_html
from madengine.report.junit import render_junit
from madengine.report.load import load_sources
from madengine.report.table import render_json, render_markdown, render_table
from madengine.report.text import aligned, pipe_table
from madengine.results.perf_csv import PERF_CSV_HEADER, append_rows
from tests.report.conftest import row


def raw_line(**values: str) -> str:
    """A perf.csv line written by hand (for statuses PerfRow refuses)."""
    return ",".join(values.get(name, "") for name in PERF_CSV_HEADER) + "\n"


def test_table_grouped_by_model_with_failures(sample: Path, write_perf) -> None:
    other = write_perf("b.csv", [row("bert", performance="900", n_gpus="8", launcher="torchrun")])
    text = render_table(load_sources([sample, other], ["mon", "tue"]))
    lines = text.splitlines()
    assert lines[0].split() == ["model", "run", "performance", "metric", "status", "GPUs", "nodes", "launcher",
                                "build", "s", "test", "s"]
    assert lines[2].split()[:3] == ["bert", "mon", "1000"] and lines[3].split()[:2] == ["tue", "900"]
    assert "4 row(s), 3 model(s): 2 SUCCESS, 1 FAILURE, 1 SKIPPED" in text
    assert re.search(r"Failures \(1\):\n  resnet \[docker/resnet.Dockerfile\] FAILURE at .*perf.csv:3: no reason", text)


def test_unknown_status_counts_and_is_listed(write_perf) -> None:
    path = write_perf("p.csv", [row("m")])
    with open(path, "a") as fh:
        fh.write(raw_line(model="x", status="TIMEOUT"))
    text = render_table(load_sources([path]))
    assert "1 SUCCESS, 0 FAILURE, 0 SKIPPED, 1 TIMEOUT" in text and "x [" not in text and "x TIMEOUT at" in text


def test_json_and_markdown(sample: Path) -> None:
    data = json.loads(render_json(load_sources([sample])))
    assert data["counts"] == {"total": 3, "SUCCESS": 1, "FAILURE": 1, "SKIPPED": 1}
    assert [r["model"] for r in data["rows"]] == ["bert", "llama", "resnet"]
    assert data["rows"][0]["performance"] == 1000.0 and data["rows"][0]["test_duration"] == 60.25
    assert [f["model"] for f in data["failures"]] == ["resnet"]
    assert data["sources"][0]["kind"] == "perf.csv"
    md = render_markdown(load_sources([sample]))
    assert "| bert | 1000 | samples_per_second | SUCCESS | 8 |" in md and "**Failures (1):**" in md


def test_text_helpers() -> None:
    assert aligned(["a", "num"], [["xx", "1"], ["y", "100"]], [False, True]).splitlines() == [
        "a   num", "--  ---", "xx    1", "y   100"]
    assert pipe_table(["a|b"], [["c|d"], [""]]).splitlines() == ["| a\\|b |", "|:---|", "| c\\|d |", "|   |"]


def test_junit_is_valid_xml_with_outcomes(sample: Path, write_perf) -> None:
    weird = write_perf("w.csv", [row("ctl\x01<&>\"", "FAILURE"), row("m")])
    with open(weird, "a") as fh:
        fh.write(raw_line(model="odd", status="TIMEOUT"))
    root = ET.fromstring(render_junit(load_sources([sample, weird])))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped"), root.get("errors")) == ("6", "2", "1", "1")
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "perf.csv" and suite.get("tests") == "3"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    bert = cases["bert [docker/bert.Dockerfile]"]
    assert bert.get("time") == "60.250" and bert.find("failure") is None
    props = {p.get("name"): p.get("value") for p in bert.iter("property")}
    assert props["performance"] == "1000" and props["metric"] == "samples_per_second" and props["n_gpus"] == "8"
    assert props["file"].endswith("perf.csv:2")
    failure = cases["resnet [docker/resnet.Dockerfile]"].find("failure")
    assert failure is not None and "no reason recorded" in (failure.get("message") or "")
    assert cases["llama [docker/llama.Dockerfile]"].find("skipped") is not None
    assert cases["odd"].find("error") is not None
    assert any(name and name.startswith("ctl\ufffd<&>\"") for name in cases)


def test_html_is_self_contained_with_charts(sample: Path, write_perf) -> None:
    later = write_perf("later.csv", [row("bert", performance="1100", n_gpus="8", launcher="torchrun")])
    page = render_html(load_sources([sample, later], ["run 1", "run 2"]), title="nightly <gfx942>")
    assert page.startswith("<!DOCTYPE html>") and "<title>nightly &lt;gfx942&gt;</title>" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no external resources"
    assert "<link" not in page and "@import" not in page
    assert page.count('<rect class="bar"') == 2          # bert in both runs
    assert page.count('<circle class="point"') == 2      # bert over runs
    assert 'id="comparison"' in page and "+10.00%" in page
    assert page.count('<tr class="row ') == 4 and 'data-aggregated="false"' in page
    assert "no reason recorded" in page


def test_html_aggregates_large_inputs(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    append_rows(path, [row(f"m{i % 30}", performance=str(100 + i % 7)) for i in range(MAX_DETAIL_ROWS + 500)])
    page = render_html(load_sources([path]))
    assert 'data-aggregated="true"' in page and page.count('<tr class="row ') == 30
    assert "2,500 rows are summarised" in page
    assert page.count('<rect class="bar"') == 30 and page.count("<polyline") == 30
