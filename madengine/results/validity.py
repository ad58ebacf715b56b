"""The validity contract of a model's results: when rows that parsed fine are still not a valid result.

A result is never a silent SUCCESS when it cannot be right. After a model's rows are read from its output (every
runtime: :func:`madengine.workflow.steps.rows`), :func:`apply` turns SUCCESS rows into FAILURE, with the reason,
when:

- a performance value is ``0`` (nothing was measured), unless the model declares a ``min_performance`` of 0 or less;
- the model declares ``min_performance`` (models.json, a number in the metric's unit) and a value is below it;
- the model declares ``expected_results: N`` (models.json) and its run printed fewer than ``N`` results (rows of a
  ``multiple_results`` CSV, or the one ``performance:`` line): every row fails, since the run is incomplete;
- the model declares ``required_metric`` and no successful row is in that metric: every row fails.

A multi-node job whose nodes did not all report is handled where nodes' rows meet
(:data:`madengine.deploy.jobs.MULTI_NODE_RULE`): the missing nodes' rows are FAILURE.
"""

from __future__ import annotations

from collections.abc import Sequence

from madengine.hub import Model
from madengine.results.perf_csv import PerfRow
from madengine.results.record import number


def apply(model: Model, rows: Sequence[PerfRow]) -> list[PerfRow]:
    """``rows`` (one run of ``model``) with the invalid SUCCESS rows made FAILURE (see the module docstring); rows
    that are FAILURE or SKIPPED already keep their reason."""
    out = [row.model_copy() for row in rows]
    minimum = model.min_performance
    for row in out:
        value = number(row.performance)
        if row.status != "SUCCESS" or value is None:
            continue
        if minimum is not None and value < minimum:
            _fail(row, f"performance {row.performance} is below the model's min_performance {minimum:g}")
        elif minimum is None and value == 0:
            _fail(row, "performance is 0 (nothing was measured); declare min_performance: 0 in models.json if 0 "
                       "is a valid result")
    problem = ""
    if model.expected_results and len(out) < model.expected_results:
        problem = f"{len(out)} of the model's expected_results {model.expected_results} were printed"
    elif model.required_metric and not any(r.status == "SUCCESS" and r.metric == model.required_metric
                                           for r in out):
        problem = f"no successful result in the model's required_metric {model.required_metric!r}"
    if problem:
        for row in out:
            if row.status == "SUCCESS":
                _fail(row, problem)
    return out


def _fail(row: PerfRow, reason: str) -> None:
    row.status = "FAILURE"
    row.reason = reason
