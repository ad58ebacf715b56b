"""Verdicts and history from the results store (real SQLite): selections, the noise floor learned from history,
and the four kinds of verdict."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from madengine.errors import ConfigError
from madengine.report import verdicts
from madengine.results.perf_csv import PerfRow
from madengine.results.store import RunInfo, open_store


def _run(store, run_id: str, start: float, label: str, values: dict[str, list[float]], commit: str = "c1",
         context: str = "") -> None:
    store.begin_run(RunInfo(run_id, started_at=start, label=label, hub_git_commit=commit, target="local",
                            context_hash=context, status="done"))
    store.add_rows(run_id, [PerfRow(model=model, status="SUCCESS", metric=metric, gpu_architecture="gfx942",
                                    performance=str(sorted(samples)[len(samples) // 2]), samples=samples)
                            for (model, metric), samples in
                            ((k.split(":", 1), v) for k, v in values.items())])


def _jitter(rng: random.Random, centre: float, n: int = 5, spread: float = 0.01) -> list[float]:
    return [centre * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


@pytest.fixture
def store(tmp_path: Path):
    rng = random.Random(7)
    s = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    for i in range(6):  # history: both benchmarks steady within ±1 %
        _run(s, f"h{i}", 1000.0 + i, "nightly", {"steady:samples_per_second": _jitter(rng, 100),
                                                  "slowed:samples_per_second": _jitter(rng, 200),
                                                  "lat:latency_ms": _jitter(rng, 10),
                                                  "few:latency_ms": _jitter(rng, 10)})
    _run(s, "cand", 2000.0, "pr-42", {"steady:samples_per_second": _jitter(rng, 100),
                                       "slowed:samples_per_second": _jitter(rng, 150),  # 25 % slower
                                       "lat:latency_ms": _jitter(rng, 8),  # 20 % faster: lower is better
                                       "few:latency_ms": _jitter(rng, 5, n=2)}, commit="c2")
    yield s
    s.close()


def test_regression_noise_and_insufficient_data(store) -> None:
    judged = {j.model: j for j in verdicts.compare_store(store, "label:nightly,latest", "label:pr-42")}
    assert judged["slowed"].verdict.kind == "regression"
    assert judged["slowed"].verdict.change == pytest.approx(-0.25, abs=0.02)
    assert judged["steady"].verdict.kind == "noise"
    assert judged["lat"].verdict.kind == "improvement"
    assert judged["few"].verdict.kind == "insufficient data"  # 5 vs 2 samples cannot reach p < 0.05
    text = verdicts.render_verdicts(list(judged.values()))
    assert text.endswith("4 benchmark(s): 1 regression, 1 improvement, 1 noise, 1 insufficient data")
    data = json.loads(verdicts.render_verdicts(list(judged.values()), "json"))
    assert {d["model"]: d["verdict"] for d in data}["slowed"] == "regression"


def test_the_noise_floor_of_a_noisy_history_turns_a_small_change_into_noise(tmp_path: Path) -> None:
    rng = random.Random(3)
    s = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    for i in range(8):  # a benchmark whose run-to-run level wanders by ±10 %
        _run(s, f"h{i}", 1000.0 + i, "nightly", {"wobbly:tokens/s": _jitter(rng, 100 * (1 + 0.1 * (-1) ** i))})
    _run(s, "cand", 2000.0, "pr", {"wobbly:tokens/s": _jitter(rng, 92)})  # -8 %: within its noise
    judged = verdicts.compare_store(s, "run:h7", "label:pr")
    assert judged[0].verdict.kind == "noise"
    assert judged[0].verdict.threshold > 0.08
    s.close()


def test_selection_terms(store) -> None:
    store.begin_run(RunInfo("broken", started_at=3000.0, label="pr-42", status="interrupted"))
    assert verdicts.select_runs(store, "label:nightly") == [f"h{i}" for i in range(6)]
    assert verdicts.select_runs(store, "run:broken") == ["broken"]  # by its id, never as the latest
    assert verdicts.select_runs(store, "latest") == ["cand"]
    assert verdicts.select_runs(store, "latest~1") == ["h5"]
    assert verdicts.select_runs(store, "commit:c2") == ["cand"]
    assert verdicts.select_runs(store, "since:1970-01-01T00:30,until:1970-01-01T00:40") == ["cand"]
    with pytest.raises(ConfigError, match="unknown term 'bogus'"):
        verdicts.select_runs(store, "bogus")
    with pytest.raises(ConfigError, match="picks no run"):
        verdicts.select_runs(store, "label:nope")


def test_history_of_one_benchmark(store) -> None:
    key, points = verdicts.history(store, "slowed")
    assert key == ("slowed", "samples_per_second", "gfx942")
    assert [p.run_id for p in points] == [*(f"h{i}" for i in range(6)), "cand"]
    assert points[0].verdict is None and points[-1].verdict.kind == "regression"
    assert points[-1].noise is not None and points[-1].noise < 0.05
    text = verdicts.render_history(key, points)
    assert "regression" in text and "±" in text
    with pytest.raises(ConfigError, match="no SUCCESS result of model 'nope'"):
        verdicts.history(store, "nope")


def test_a_failed_or_missing_candidate_is_a_verdict_not_insufficient_data(tmp_path: Path) -> None:
    rng = random.Random(5)
    s = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    _run(s, "base", 1000.0, "nightly", {"crashes:tokens/s": _jitter(rng, 100), "gone:tokens/s": _jitter(rng, 50)})
    s.begin_run(RunInfo("cand", started_at=2000.0, label="pr"))
    s.add_rows("cand", [PerfRow(model="crashes", status="FAILURE", reason="exit 139 (segfault)"),
                        PerfRow(model="new_broken", status="FAILURE", reason="timeout after 60 s")])
    judged = {j.model: j.verdict for j in verdicts.compare_store(s, "run:base", "run:cand")}
    assert judged["crashes"].kind == "failed" and "segfault" in judged["crashes"].reason
    assert judged["gone"].kind == "missing"
    assert judged["new_broken"].kind == "failed" and "timeout" in judged["new_broken"].reason
    text = verdicts.render_verdicts(list(verdicts.compare_store(s, "run:base", "run:cand")))
    assert text.endswith("3 benchmark(s): 0 regression, 0 improvement, 0 noise, 0 insufficient data, 2 failed, "
                         "1 missing")
    s.close()


def test_history_comes_from_the_same_configuration_and_an_unstable_one_gives_no_verdict(tmp_path: Path) -> None:
    rng = random.Random(11)
    s = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    for i in range(6):  # another configuration (context) whose level swings wildly: must not widen our noise floor
        _run(s, f"other{i}", 1000.0 + i, "x", {"m:tokens/s": _jitter(rng, 100 * (1 + 0.6 * (-1) ** i))},
             context="ctx-b")
    for i in range(6):
        _run(s, f"h{i}", 1100.0 + i, "nightly", {"m:tokens/s": _jitter(rng, 100)}, context="ctx-a")
    _run(s, "cand", 2000.0, "pr", {"m:tokens/s": _jitter(rng, 80)}, context="ctx-a")
    judged = verdicts.compare_store(s, "run:h5", "run:cand")
    assert judged[0].verdict.kind == "regression" and judged[0].verdict.threshold < 0.1
    _run(s, "cand-b", 2001.0, "pr", {"m:tokens/s": _jitter(rng, 80)}, context="ctx-b")
    unstable = verdicts.compare_store(s, "run:h5", "run:cand-b")[0].verdict
    assert unstable.kind == "insufficient data" and "history unstable" in unstable.reason
    points = {p.run_id: p for p in verdicts.history(s, "m")[1]}  # report.history learns by the same rule
    assert points["cand"].noise is not None and points["cand"].noise < 0.1
    assert points["cand"].verdict.kind == "regression"
    assert points["cand-b"].verdict.kind == "insufficient data"


def test_a_declared_direction_applies_to_the_model_and_its_multiple_results_rows_only(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    s.begin_run(RunInfo("r", started_at=1.0))
    rows = [PerfRow(model=m, status="SUCCESS", metric="score", performance="1") for m in ("bert", "bert_p99",
                                                                                          "bertlarge")]
    s.add_rows("r", rows, directions={"bert": "lower"})
    stored = {row["model"]: row["metric_direction"] for row in s.query(
        sa.select(s.results.c.model, s.results.c.metric_direction))}
    assert stored == {"bert": "lower", "bert_p99": "lower", "bertlarge": "higher"}  # inferred from "score"
    s.close()


def test_the_baseline_never_holds_the_candidates_runs(store) -> None:
    judged = {j.model: j.verdict for j in verdicts.compare_store(store, "since:1970-01-01", "label:pr-42")}
    assert judged["slowed"].n_baseline == 30 and judged["slowed"].kind == "regression"  # 6 runs x 5, not 7 x 5
    with pytest.raises(ConfigError, match="picks only runs that --candidate"):
        verdicts.compare_store(store, "run:cand", "run:cand")
