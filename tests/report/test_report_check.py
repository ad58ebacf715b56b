"""madengine.report.check: the references YAML and the regression gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from madengine.errors import ConfigError, RunError
from madengine.report.check import check, load_references, raise_for_outcomes, render_check
from madengine.report.load import load_sources
from tests.report.conftest import row

REFERENCES = """\
defaults: {lower: 0.1}
models:
  bert: {expected: 1000, metric: samples_per_second}
  gpt: {expected: 10, unit: latency_ms, lower: null, upper: 0.2}
  resnet:
    - {expected: 500, gpu_architecture: gfx942, lower: 0.05, upper: 0.05}
    - {expected: 300}
  llama: {expected: 1}
  t5: {expected: 5}
"""


def refs(tmp_path: Path, text: str = REFERENCES) -> list:
    path = tmp_path / "references.yaml"
    path.write_text(text)
    return load_references(path)


def test_load_references_defaults_and_aliases(tmp_path: Path) -> None:
    loaded = {(r.model, r.gpu_architecture): r for r in refs(tmp_path)}
    assert (loaded[("bert", None)].lower, loaded[("bert", None)].upper) == (0.1, None)
    assert (loaded[("gpt", None)].metric, loaded[("gpt", None)].lower) == ("latency_ms", None)
    assert loaded[("resnet", "gfx942")].bounds() == (475.0, 525.0)
    assert loaded[("resnet", None)].bounds() == (270.0, None)
    plain = refs(tmp_path, "models:\n  m: {expected: 100}\n")[0]
    assert plain.bounds() == (95.0, None)  # built-in defaults: lower 0.05, upper unbounded


def test_gate(tmp_path: Path, write_perf) -> None:
    old = write_perf("old.csv", [row("bert", performance="500"), row("gpt", performance="99", metric="latency_ms")])
    new = write_perf("new.csv", [
        row("bert", performance="950"),                                   # within -10 %
        row("gpt", performance="12.5", metric="latency_ms"),              # > +20 %: out of bounds
        row("resnet", performance="530"),                                 # gfx942 reference: > +5 %
        row("resnet", performance="200", gpu_architecture="gfx90a"),      # generic reference: < -10 %
        row("llama", "FAILURE"),                                          # failed
        row("unreferenced", performance="1"),
    ])
    outcomes = check(load_sources([old, new]), refs(tmp_path))
    got = {(o.reference.describe(), o.row.gpu_architecture if o.row else None): o.outcome for o in outcomes}
    assert got == {("bert", "gfx942"): "ok", ("gpt", "gfx942"): "out of bounds",
                   ("resnet (gfx942)", "gfx942"): "out of bounds", ("resnet", "gfx90a"): "out of bounds",
                   ("llama", "gfx942"): "failed", ("t5", None): "missing"}
    text = render_check(outcomes)
    assert "12.5 latency_ms > 12 (expected 10, +25.0%, upper tolerance 0.2)" in text
    assert "6 check(s): 1 ok, 5 not ok" in text
    with pytest.raises(RunError) as e:
        raise_for_outcomes(outcomes)
    assert e.value.exit_code == 3 and "5 of 6 check(s) failed" in e.value.message
    assert "gpt: out of bounds" in e.value.message and "t5: missing" in e.value.message
    with pytest.raises(RunError, match="4 of 6"):
        raise_for_outcomes(outcomes, allow_missing=True)


def test_metric_mismatch_and_pass(tmp_path: Path, write_perf) -> None:
    path = write_perf("p.csv", [row("bert", performance="1000", metric="tokens_per_second")])
    [outcome] = check(load_sources([path]), refs(tmp_path, "models:\n  bert: {expected: 1000, metric: x}\n"))
    assert outcome.outcome == "failed" and "metric 'tokens_per_second'" in outcome.detail
    ok = check(load_sources([path]), refs(tmp_path, "models:\n  bert: {expected: 1000}\n"))
    raise_for_outcomes(ok)


@pytest.mark.parametrize("text, problem", [
    ("models: {bert: {expected: 1}\n", ":2:1: not valid YAML"),
    ("- 1\n", ": a references file is a mapping with a 'models:' section"),
    ("models: {bert: {expected: fast}}\n", ": models.bert.expected: Input should be a valid number"),
    ("models: {bert: [{expected: 1, lowr: 0.1}]}\n", ": models.bert.0.lowr: Extra inputs are not permitted"),
    ("models: {bert: {expected: 1, lower: -0.1}}\n", ": models.bert.lower: Value error, a tolerance is a fraction"),
    ("defaults: {lower: 1}\nmodel: {}\n", ": a references file is a mapping with a 'models:' section"),
])
def test_bad_references(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "references.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_references(path)
    assert f"{path}{problem}" in e.value.message and e.value.exit_code == 4


def test_missing_references_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_references(tmp_path / "nope.yaml")
