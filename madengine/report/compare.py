"""``inv report.compare``: runs side by side, with the absolute and relative change of each model's metric.

The first input is the baseline; every other input is compared with it. Rows are matched by a key chosen with
``--by``: ``model`` (model and metric), ``launcher`` (model, launcher, metric) or ``config`` (model, docker_file,
n_gpus, nnodes, launcher, deployment_type, gpu_architecture, metric). In each input the value of a key is the
performance of its LAST SUCCESS row (a perf.csv accumulates runs; the last is the newest); a key without SUCCESS
rows shows the status of its last row instead.

A change beyond ``threshold`` (a fraction: 0.05 = 5 %) is a *regression* when it goes the wrong way for the metric
and an *improvement* otherwise. The direction of a metric is the rule of
:func:`madengine.results.stats.infer_direction` (times, latencies and memory are lower-is-better unless they name a
rate; unknown names count as higher-is-better). With a results store, ``report.compare --baseline/--candidate``
judges samples instead (:mod:`madengine.report.verdicts`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from madengine.errors import ConfigError
from madengine.report.load import ReportRow, Source
from madengine.report.text import aligned, pipe_table

By = Literal["model", "launcher", "config"]

#: The key columns of each ``--by`` mode (``metric`` is always added).
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "model": ("model",),
    "launcher": ("model", "launcher"),
    "config": ("model", "docker_file", "n_gpus", "nnodes", "launcher", "deployment_type", "gpu_architecture"),
}

def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better: :func:`madengine.results.stats.infer_direction` says
    "lower" (unknown metrics count as higher-is-better, as most benchmark metrics are rates)."""
    from madengine.results.stats import infer_direction

    return infer_direction(metric) == "lower"


@dataclass
class Cell:
    """One key in one input: the value (``None``: no SUCCESS row), the status of the row used, how many rows."""

    value: float | None = None
    text: str = ""
    status: str = ""
    rows: int = 0


@dataclass
class Entry:
    """One compared key: its key values, metric, one :class:`Cell` per input, the change of each input after the
    first against the first (``(absolute, relative)``, ``None`` when either value is missing), and a flag:
    ``regression``, ``failed`` (rows, but none SUCCESS with a number, in the baseline or another input),
    ``missing`` (no row in some input), ``improvement``, ``skipped`` (no value because SKIPPED) or ``""``, in that
    order of precedence."""

    key: tuple[str, ...]
    metric: str
    cells: list[Cell]
    changes: list[tuple[float | None, float | None]] = field(default_factory=list)
    flag: str = ""


@dataclass
class Comparison:
    """The result of :func:`compare`: the labels of the inputs, the key columns, the threshold and the entries."""

    labels: list[str]
    by: str
    key_columns: tuple[str, ...]
    threshold: float
    entries: list[Entry]

    def count(self, flag: str) -> int:
        """How many entries carry ``flag``."""
        return sum(1 for e in self.entries if e.flag == flag)


def compare(sources: Sequence[Source], *, by: str = "model", threshold: float = 0.05) -> Comparison:
    """Compare every input with the first (see the module docstring).

    Raises:
        ConfigError: (exit code 4) fewer than two inputs, an unknown ``by``, a negative threshold.
    """
    if len(sources) < 2:
        raise ConfigError("report.compare needs two or more inputs: --csv a.csv --csv b.csv")
    if by not in KEY_COLUMNS:
        raise ConfigError(f"--by {by!r}: use one of {', '.join(KEY_COLUMNS)}")
    if threshold < 0:
        raise ConfigError(f"--threshold {threshold}: give a fraction >= 0, e.g. 0.05 for 5 %")
    columns = KEY_COLUMNS[by]
    table: dict[tuple[tuple[str, ...], str], list[Cell]] = {}
    for index, source in enumerate(sources):
        for row in source.rows:
            cells = table.setdefault((_key(row, columns), row.metric), [Cell() for _ in sources])
            _take(cells[index], row)
    entries = [_entry(key, metric, cells, threshold) for (key, metric), cells in table.items()]
    # Rows without a metric (failed runs print none) merge into the key's metric when it has exactly one.
    entries = _merge_blank_metrics(entries, threshold)
    entries.sort(key=lambda e: (e.key, e.metric))
    return Comparison([s.label for s in sources], by, columns, threshold, entries)


def _key(row: ReportRow, columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(getattr(row, name) for name in columns)


def _take(cell: Cell, row: ReportRow) -> None:
    cell.rows += 1
    if row.status == "SUCCESS" and row.performance is not None:
        cell.value, cell.text, cell.status = row.performance, row.performance_text, row.status
    elif cell.value is None:
        cell.status = row.status or "(blank)"


def _entry(key: tuple[str, ...], metric: str, cells: list[Cell], threshold: float) -> Entry:
    entry = Entry(key, metric, cells)
    base = cells[0].value
    lower = lower_is_better(metric)
    flags = set()
    for cell in cells[1:]:
        if base is None or cell.value is None:
            entry.changes.append((None, None))
            if not cells[0].rows or not cell.rows:
                flags.add("missing")
            elif any(c.value is None and c.status != "SKIPPED" for c in (cells[0], cell)):
                flags.add("failed")
            else:
                flags.add("skipped")
            continue
        delta = cell.value - base
        rel = delta / abs(base) if base else None
        if rel is not None and abs(rel) > threshold:
            flags.add("regression" if (delta < 0) != lower else "improvement")
        entry.changes.append((_finite(delta), _finite(rel)))  # 1e308 against -1e308 overflows: no number, but flagged
    entry.flag = next((f for f in ("regression", "failed", "missing", "improvement", "skipped") if f in flags), "")
    return entry


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _merge_blank_metrics(entries: list[Entry], threshold: float) -> list[Entry]:
    named: dict[tuple[str, ...], list[Entry]] = {}
    for e in entries:
        if e.metric:
            named.setdefault(e.key, []).append(e)
    out = []
    for e in entries:
        targets = named.get(e.key, [])
        if e.metric or len(targets) != 1:
            out.append(e)
            continue
        target = targets[0]
        for i, cell in enumerate(e.cells):
            t = target.cells[i]
            if t.rows == 0:
                target.cells[i] = cell
            else:
                t.rows += cell.rows
        rebuilt = _entry(target.key, target.metric, target.cells, threshold)
        target.changes, target.flag = rebuilt.changes, rebuilt.flag
    return out


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    text = f"{value:+.6g}" if signed else f"{value:.6g}"
    return text


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.2f}%"


def _cell_text(cell: Cell) -> str:
    if cell.rows == 0:
        return "-"
    return cell.text if cell.value is not None else cell.status


def _cells(result: Comparison) -> tuple[list[str], list[list[str]], list[bool]]:
    headers = [*result.key_columns, "metric", result.labels[0]]
    right = [False] * len(result.key_columns) + [False, True]
    for label in result.labels[1:]:
        headers += [label, f"Δ {label}", f"Δ% {label}"]
        right += [True, True, True]
    headers.append("flag")
    right.append(False)
    rows = []
    for e in result.entries:
        line = [*e.key, e.metric, _cell_text(e.cells[0])]
        for cell, (delta, rel) in zip(e.cells[1:], e.changes, strict=True):
            line += [_cell_text(cell), _number(delta, signed=True), _percent(rel)]
        line.append(e.flag.upper() if e.flag in ("regression", "failed") else e.flag)
        rows.append(line)
    return headers, rows, right


def _footer(result: Comparison) -> str:
    return (f"{len(result.entries)} {'/'.join(result.key_columns)}+metric key(s) compared with "
            f"{result.labels[0]!r} (baseline); beyond ±{result.threshold * 100:g}%: "
            f"{result.count('regression')} regression(s), {result.count('improvement')} improvement(s); "
            f"{result.count('failed')} failed and {result.count('missing')} missing in some input")


_COLORS = {"regression": "\033[1;31m", "failed": "\033[31m", "improvement": "\033[32m", "missing": "\033[33m"}


def render_compare_table(result: Comparison, *, color: bool = False) -> str:
    """The side-by-side table and a footer counting regressions; with ``color``, regressions are red, improvements
    green and missing keys yellow (ANSI). The flag column names them either way."""
    headers, rows, right = _cells(result)
    lines = aligned(headers, rows, right).split("\n")
    if color:
        for i, e in enumerate(result.entries, start=2):
            if e.flag in _COLORS:
                lines[i] = f"{_COLORS[e.flag]}{lines[i]}\033[0m"
    return "\n".join([*lines, "", _footer(result)])


def render_compare_markdown(result: Comparison) -> str:
    """The comparison as a Markdown pipe table (flags in bold) and the footer."""
    headers, rows, right = _cells(result)
    for row in rows:
        if row[-1]:
            row[-1] = f"**{row[-1]}**"
    return "\n".join(["# madengine comparison", "", pipe_table(headers, rows, right), "", _footer(result)])


def comparison_dict(result: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready data: ``{"labels", "by", "key_columns", "threshold", "entries": [{<key
    columns>, "metric", "values": {label: number|null}, "statuses": {label: status}, "changes": {label: {"absolute",
    "relative"}}, "flag"}]}`` (relative is a fraction)."""
    entries = []
    for e in result.entries:
        item: dict[str, Any] = dict(zip(result.key_columns, e.key, strict=True))
        item["metric"] = e.metric
        item["values"] = {label: c.value for label, c in zip(result.labels, e.cells, strict=True)}
        item["statuses"] = {label: (c.status if c.rows else None) for label, c in zip(result.labels, e.cells,
                                                                                    strict=True)}
        item["changes"] = {label: {"absolute": d, "relative": r}
                           for label, (d, r) in zip(result.labels[1:], e.changes, strict=True)}
        item["flag"] = e.flag
        entries.append(item)
    return {"labels": result.labels, "by": result.by, "key_columns": list(result.key_columns),
            "threshold": result.threshold, "entries": entries}


def render_compare_json(result: Comparison) -> str:
    """:func:`comparison_dict` as indented JSON text."""
    return json.dumps(comparison_dict(result), indent=1, allow_nan=False)
