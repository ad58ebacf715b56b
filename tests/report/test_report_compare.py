"""madengine.report.compare: matching keys, changes, threshold flags, metric direction."""

from __future__ import annotations

import json

import pytest

from madengine.errors import ConfigError
from madengine.report.compare import (
    compare,
    lower_is_better,
    render_compare_json,
    render_compare_markdown,
    render_compare_table,
)
from madengine.report.load import load_sources
from tests.report.conftest import row


@pytest.mark.parametrize("metric, lower", [
    ("samples_per_second", False), ("tokens/s", False), ("throughput_ms", False), ("images_per_sec", False),
    ("latency_ms", True), ("time_per_token", True), ("ttft_ms", True), ("step_time", True), ("ms", True),
    ("seconds", True), ("tflops", False), ("", False), ("accuracy", False),
])
def test_metric_direction(metric: str, lower: bool) -> None:
    assert lower_is_better(metric) is lower


def test_compare_two_runs(write_perf) -> None:
    a = write_perf("a.csv", [row("bert", performance="1000"), row("gpt", performance="10", metric="latency_ms"),
                             row("resnet", performance="500"), row("t5", performance="10"),
                             row("old", performance="1"), row("skip", "SKIPPED")])
    b = write_perf("b.csv", [row("bert", performance="900"), row("gpt", performance="9", metric="latency_ms"),
                             row("resnet", "FAILURE"), row("t5", performance="10.2"), row("new", performance="1"),
                             row("skip", "SKIPPED")])
    result = compare(load_sources([a, b], ["A", "B"]), threshold=0.05)
    flags = {e.key[0]: e.flag for e in result.entries}
    assert flags == {"bert": "regression", "gpt": "improvement", "resnet": "failed", "t5": "", "old": "missing",
                     "new": "missing", "skip": "skipped"}
    bert = next(e for e in result.entries if e.key == ("bert",))
    assert bert.changes == [(-100.0, -0.1)]
    text = render_compare_table(result)
    assert "REGRESSION" in text and "-10.00%" in text and "1 regression(s), 1 improvement(s)" in text
    assert "\033[" not in text
    assert "\033[1;31m" in render_compare_table(result, color=True)
    data = json.loads(render_compare_json(result))
    entry = next(e for e in data["entries"] if e["model"] == "bert")
    assert entry["values"] == {"A": 1000.0, "B": 900.0}
    assert entry["changes"]["B"] == {"absolute": -100.0, "relative": -0.1}
    assert "**REGRESSION**" in render_compare_markdown(result)


def test_extreme_values_give_strict_json_and_still_flag(write_perf) -> None:
    """1e308 against -1e308 (or against 1e-308) overflows a float: the JSON has null there, never the non-JSON
    ``Infinity``, and the entry is still flagged by the direction of the change."""
    a = write_perf("a.csv", [row("big", performance="-1e308"), row("tiny", performance="1e-308")])
    b = write_perf("b.csv", [row("big", performance="1e308"), row("tiny", performance="1e308")])
    result = compare(load_sources([a, b], ["A", "B"]), threshold=0.05)
    assert {e.key[0]: e.flag for e in result.entries} == {"big": "improvement", "tiny": "improvement"}
    text = render_compare_json(result)
    assert "Infinity" not in text and "NaN" not in text
    changes = {e["model"]: e["changes"]["B"] for e in json.loads(text)["entries"]}
    assert changes["big"] == {"absolute": None, "relative": None} and changes["tiny"]["relative"] is None


def test_threshold_and_latest_success_row(write_perf) -> None:
    a = write_perf("a.csv", [row("m", performance="50"), row("m", performance="100"), row("m", "FAILURE")])
    b = write_perf("b.csv", [row("m", performance="108")])
    sources = load_sources([a, b])
    assert compare(sources, threshold=0.1).entries[0].flag == ""
    entry = compare(sources, threshold=0.05).entries[0]
    assert entry.flag == "improvement" and entry.cells[0].value == 100.0 and entry.cells[0].rows == 3


def test_by_launcher_and_config(write_perf) -> None:
    a = write_perf("a.csv", [row("m", performance="100", launcher="torchrun", n_gpus="8"),
                             row("m", performance="50", launcher="deepspeed", n_gpus="8"),
                             row("m", performance="10", launcher="torchrun", n_gpus="1")])
    b = write_perf("b.csv", [row("m", performance="100", launcher="torchrun", n_gpus="8"),
                             row("m", performance="60", launcher="deepspeed", n_gpus="8"),
                             row("m", performance="10", launcher="torchrun", n_gpus="1")])
    sources = load_sources([a, b])
    by_model = compare(sources, by="model")
    assert len(by_model.entries) == 1
    by_launcher = compare(sources, by="launcher")
    assert {e.key: e.flag for e in by_launcher.entries} == {("m", "deepspeed"): "improvement",
                                                            ("m", "torchrun"): ""}
    by_config = compare(sources, by="config")
    assert len(by_config.entries) == 3 and by_config.key_columns[2] == "n_gpus"
    three = compare(load_sources([a, b, b]), by="launcher")
    assert len(three.entries[0].changes) == 2


def test_bad_arguments(write_perf) -> None:
    a = write_perf("a.csv", [row("m")])
    with pytest.raises(ConfigError, match="two or more inputs"):
        compare(load_sources([a]))
    with pytest.raises(ConfigError, match="--by 'gpu'"):
        compare(load_sources([a, a]), by="gpu")
    with pytest.raises(ConfigError, match="--threshold"):
        compare(load_sources([a, a]), threshold=-1)
