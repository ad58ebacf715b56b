"""``inv report``'s table, JSON and Markdown views of the loaded rows, grouped by model.

Rows are sorted by model (stable: within a model, inputs in the order given, rows in file order); the model name is
printed on the first row of its group. Below the table: counts per status, then every row that is neither SUCCESS
nor SKIPPED with its reason (from a run summary; perf.csv has no reason column), then skipped rows with reasons.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from madengine.report.load import KNOWN_STATUSES, ReportRow, Source
from madengine.report.text import aligned, pipe_table

#: At most this many failures are listed in the terminal and Markdown views (JSON lists all).
MAX_LISTED_FAILURES = 200

_NO_REASON = "no reason recorded (perf.csv has none; pass the run's --summary file)"

#: The fields of a row in the JSON view, in order (``columns`` is left out: it repeats the perf.csv row).
ROW_FIELDS = tuple(f.name for f in fields(ReportRow) if f.name not in ("from_summary", "columns"))


def all_rows(sources: Sequence[Source]) -> list[ReportRow]:
    """Every row of ``sources`` in input order."""
    return [row for source in sources for row in source.rows]


def by_model(rows: Sequence[ReportRow]) -> list[ReportRow]:
    """``rows`` sorted by model name, keeping the input order within a model."""
    return sorted(rows, key=lambda r: r.model)


def is_failure(row: ReportRow) -> bool:
    """``True`` for rows that are neither SUCCESS nor SKIPPED (FAILURE and unknown statuses)."""
    return row.status not in ("SUCCESS", "SKIPPED")


def counts(rows: Sequence[ReportRow]) -> dict[str, int]:
    """``{"total": n, "SUCCESS": n, "FAILURE": n, "SKIPPED": n, <other status>: n}``."""
    seen = Counter(row.status or "(blank)" for row in rows)
    result = {"total": len(rows), **{status: seen.pop(status, 0) for status in KNOWN_STATUSES}}
    result.update(sorted(seen.items()))
    return result


def seconds(value: float | None) -> str:
    """A duration for display: ``12.3``; ``""`` when unknown."""
    return "" if value is None else f"{value:.1f}"


def where(row: ReportRow) -> str:
    """``file:line`` of a perf.csv row, ``file#N`` (the N-th model entry) of a run summary's."""
    return f"{row.path}#{row.line}" if row.from_summary else f"{row.path}:{row.line}"


def _cells(rows: Sequence[ReportRow], with_run: bool) -> tuple[list[str], list[list[str]], list[bool]]:
    headers = ["model", *(["run"] if with_run else []), "performance", "metric", "status", "GPUs", "nodes",
               "launcher", "build s", "test s"]
    right = [False, *([False] if with_run else []), True, False, False, True, True, False, True, True]
    out: list[list[str]] = []
    previous = None
    for row in by_model(rows):
        name = row.model if row.model != previous else ""
        previous = row.model
        out.append([name, *([row.source] if with_run else []), row.performance_text, row.metric, row.status or "(blank)",
                    row.n_gpus, row.nnodes, row.launcher, seconds(row.build_duration), seconds(row.test_duration)])
    return headers, out, right


def _summary_line(sources: Sequence[Source], rows: Sequence[ReportRow]) -> str:
    c = counts(rows)
    statuses = ", ".join(f"{n} {status}" for status, n in c.items() if status != "total" and (n or status in
                                                                                             KNOWN_STATUSES))
    models = len({row.model for row in rows})
    return (f"{c['total']} row(s), {models} model(s): {statuses}; from "
            + ", ".join(f"{s.label} ({s.kind}, {len(s.rows)} rows)" if s.label != s.path.name else
                        f"{s.path} ({s.kind}, {len(s.rows)} rows)" for s in sources))


def _failure_lines(rows: Sequence[ReportRow]) -> list[str]:
    failed = [row for row in rows if is_failure(row)]
    skipped = [row for row in rows if row.status == "SKIPPED" and row.reason]
    lines: list[str] = []
    for title, items in (("Failures", failed), ("Skipped", skipped)):
        if not items:
            continue
        lines.append(f"{title} ({len(items)}):")
        for row in items[:MAX_LISTED_FAILURES]:
            config = f" [{row.docker_file}]" if row.docker_file else ""
            lines.append(f"  {row.model}{config} {row.status or '(blank)'} at {where(row)}: {row.reason or _NO_REASON}")
        if len(items) > MAX_LISTED_FAILURES:
            lines.append(f"  ... and {len(items) - MAX_LISTED_FAILURES} more (--format json lists every one)")
    return lines


def render_table(sources: Sequence[Source]) -> str:
    """The terminal report: the grouped table, a counts line, then failures with reasons. No trailing newline."""
    rows = all_rows(sources)
    headers, cells, right = _cells(rows, with_run=len(sources) > 1)
    parts = [aligned(headers, cells, right), "", _summary_line(sources, rows)]
    failures = _failure_lines(rows)
    if failures:
        parts += ["", *failures]
    return "\n".join(parts)


def render_markdown(sources: Sequence[Source]) -> str:
    """The report as Markdown: a heading, the table as a pipe table, counts, and failures as a list."""
    rows = all_rows(sources)
    headers, cells, right = _cells(rows, with_run=len(sources) > 1)
    parts = ["# madengine report", "", pipe_table(headers, cells, right), "", _summary_line(sources, rows)]
    for line in _failure_lines(rows):
        parts += [f"- {line.strip()}"] if line.startswith("  ") else ["", f"**{line}**", ""]
    return "\n".join(parts)


def row_dict(row: ReportRow) -> dict[str, Any]:
    """A row as a JSON-ready dict with the keys of :data:`ROW_FIELDS`."""
    return {name: getattr(row, name) for name in ROW_FIELDS}


def render_json(sources: Sequence[Source]) -> str:
    """The report as JSON: ``{"sources": [{label, path, kind, rows}], "counts": {...}, "rows": [...],
    "failures": [...]}``; rows (:func:`row_dict`) sorted by model as in the table; failures are the rows neither
    SUCCESS nor SKIPPED. Performance and durations are numbers or ``null``."""
    rows = by_model(all_rows(sources))
    # One row per line: readable, and json's C encoder only runs without indent (indent=1 is 5x slower).
    lines = [json.dumps(row_dict(row), ensure_ascii=False) for row in rows]
    failures = [line for line, row in zip(lines, rows, strict=True) if is_failure(row)]
    sources_json = [json.dumps({"label": s.label, "path": str(s.path), "kind": s.kind, "rows": len(s.rows)},
                               ensure_ascii=False) for s in sources]

    def array(items: list[str]) -> str:
        return "[\n  " + ",\n  ".join(items) + "\n ]" if items else "[]"

    return (f'{{\n "sources": {array(sources_json)},\n "counts": {json.dumps(counts(rows))},\n'
            f' "rows": {array(lines)},\n "failures": {array(failures)}\n}}')
