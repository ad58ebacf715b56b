"""The validity contract (madengine.results.validity): rows that parsed but cannot be a valid result fail."""

from __future__ import annotations

from madengine.hub import Model
from madengine.results.perf_csv import PerfRow
from madengine.results.validity import apply


def _row(model: str = "m", performance: str = "10", metric: str = "x/s", status: str = "SUCCESS") -> PerfRow:
    return PerfRow(model=model, performance=performance, metric=metric, status=status)


def test_zero_fails_unless_the_model_allows_it() -> None:
    out = apply(Model(name="m"), [_row(performance="0"), _row(performance="0.0", metric="y")])
    assert [r.status for r in out] == ["FAILURE", "FAILURE"] and "performance is 0" in out[0].reason
    assert apply(Model(name="m", min_performance=0), [_row(performance="0")])[0].status == "SUCCESS"


def test_min_performance() -> None:
    out = apply(Model(name="m", min_performance=50), [_row(performance="49.5"), _row(performance="50")])
    assert [r.status for r in out] == ["FAILURE", "SUCCESS"]
    assert out[0].reason == "performance 49.5 is below the model's min_performance 50"


def test_fewer_results_than_expected_fail_every_row() -> None:
    rows = [_row("m_a"), _row("m_b")]
    out = apply(Model(name="m", expected_results=3), rows)
    assert {r.status for r in out} == {"FAILURE"} and out[0].reason == "2 of the model's expected_results 3 were printed"
    assert {r.status for r in apply(Model(name="m", expected_results=2), rows)} == {"SUCCESS"}
    assert rows[0].status == "SUCCESS"  # the input rows are not changed


def test_required_metric() -> None:
    out = apply(Model(name="m", required_metric="tokens/s"), [_row(metric="ms")])
    assert out[0].status == "FAILURE" and "required_metric 'tokens/s'" in out[0].reason
    assert apply(Model(name="m", required_metric="ms"), [_row(metric="ms")])[0].status == "SUCCESS"


def test_failed_and_skipped_rows_keep_their_reason() -> None:
    failed = PerfRow(model="m", status="FAILURE", reason="timed out after 5 s", performance="0")
    skipped = PerfRow(model="m", status="SKIPPED", reason="skip_gpu_arch lists gfx90a")
    out = apply(Model(name="m", expected_results=4), [failed, skipped])
    assert [(r.status, r.reason) for r in out] == [("FAILURE", "timed out after 5 s"),
                                                    ("SKIPPED", "skip_gpu_arch lists gfx90a")]
