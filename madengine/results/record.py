"""The result record: one result as readers see it, declared once for the run summary and the reports.

:class:`~madengine.results.perf_csv.PerfRow` is a perf.csv row as written (every column text, madengine v2's column
order, plus ``reason``/``node_rank`` which perf.csv never holds). :class:`ResultRecord` is the subset of those fields
that reports and run summaries carry, typed: ``performance`` (in the unit ``metric`` names) and the durations
(seconds) are numbers (``None``: blank, not a number, NaN or infinite), ``samples`` a list of numbers (the
measured runs' values of a ``--repeat N`` run; empty for a single run and for every perf.csv row, which has no such
column), the rest text. The run summary's entries
(:class:`madengine.report.summary.SummaryEntry`) are this record; a report row
(:class:`madengine.report.load.ReportRow`) is this record plus where it was read. Every field except ``log`` is a
PerfRow field of the same name (the tests check it), so the conversions below are derived from the declaration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

#: Fields that are numbers in a record and text in perf.csv.
NUMERIC_FIELDS = frozenset({"performance", "build_duration", "test_duration"})


def number(text: Any) -> float | None:
    """``text`` as a finite float, or ``None`` when blank, not a number (``1_000`` and ``1,5`` are not), NaN or
    infinite."""
    if isinstance(text, str) and "_" in text:  # Python's float() reads digit separators; a perf line does not
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def samples(value: Any) -> list[float]:
    """The finite numbers of a list or tuple ``value`` as floats, in order (``[]`` for anything else)."""
    if not isinstance(value, (list, tuple)):
        return []
    found = (number(item) for item in value if not isinstance(item, bool))
    return [item for item in found if item is not None]


@dataclass(slots=True)
class ResultRecord:
    """One result (see the module docstring). ``status`` is normally SUCCESS, FAILURE or SKIPPED; other values are
    kept as written. ``reason`` says why a row did not succeed; ``log`` is the path of the run log (``""``: none).
    ``samples`` are the performance values of the measured runs of a ``--repeat N`` run, in run order
    (``performance`` is their median; empty for a single run). A plain dataclass (reports build hundreds of
    thousands); pydantic validates it where it is read from JSON (the run summary's ``models``), ignoring unknown
    keys."""

    model: str
    status: str
    reason: str = ""
    performance: float | None = None
    metric: str = ""
    n_gpus: str = ""
    nnodes: str = ""
    gpus_per_node: str = ""
    launcher: str = ""
    deployment_type: str = ""
    gpu_architecture: str = ""
    docker_file: str = ""
    docker_image: str = ""
    machine_name: str = ""
    node_rank: str = ""
    build_duration: float | None = None
    test_duration: float | None = None
    relative_change: str = ""
    samples: list[float] = field(default_factory=list)
    log: str = ""

    @classmethod
    def from_cells(cls: type[R], cells: Mapping[str, Any], /, **extra: Any) -> R:
        """A record from perf.csv cells or a :class:`PerfRow`'s fields (``cells``: name → text; absent names read
        as ``""``), plus ``extra`` fields (already typed, a subclass's included). Numbers are parsed with
        :func:`number`; ``samples`` are the finite numbers of a list (``[]`` for anything else: perf.csv cells have
        none); ``status`` is stripped."""
        values = dict(extra)
        for name in RECORD_FIELDS:
            if name not in values:
                cell = cells.get(name)
                if name == "samples":
                    values[name] = samples(cell)
                else:
                    values[name] = number(cell) if name in NUMERIC_FIELDS else str(cell or "")
        values["status"] = values["status"].strip()
        return cls(**values)


R = TypeVar("R", bound=ResultRecord)
#: The record's field names, in declaration order (a subclass's own fields come after them).
RECORD_FIELDS = tuple(f.name for f in fields(ResultRecord))
