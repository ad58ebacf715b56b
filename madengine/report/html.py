"""``inv report.html``: ONE self-contained HTML file with the run table, failures, comparison and SVG plots.

The page needs no network: CSS and the small script (table filter and pagination, error capture) are inline, and the
plots are SVG drawn here (:mod:`madengine.report.svg`). It is rendered from the jinja2 templates in
``templates/report/`` (``report.html.j2``, ``report.css``, ``report.js``), shipped as package data
so an installed madengine finds them; pass ``template_dir`` to use a copy of your own.

Large inputs stay usable: up to :data:`MAX_DETAIL_ROWS` rows the table lists every row; beyond, it has one row per
model, input and configuration (runs, successes, last/mean/min/max performance), capped at :data:`MAX_TABLE_ROWS`.
At most :data:`MAX_CHARTS` models get charts and :data:`MAX_FAILURES` failures are listed; the page says when
something was left out.

Charts per model (and metric): a bar chart of the last SUCCESS performance per input and configuration, and, when
the model has several SUCCESS rows (several inputs, or a perf.csv with several runs), a line chart of every SUCCESS
value in order (inputs in the order given, rows in file order; at most the last :data:`MAX_POINTS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from madengine import __version__, templates_dir
from madengine.report import svg
from madengine.report.compare import compare
from madengine.report.load import ReportRow, Source
from madengine.report.table import all_rows, by_model, counts, is_failure, seconds, where

MAX_DETAIL_ROWS = 2000
MAX_TABLE_ROWS = 5000
MAX_CHARTS = 60
MAX_FAILURES = 1000
MAX_POINTS = 200
MAX_BARS = 40

#: The templates shipped with madengine.
TEMPLATE_DIR = templates_dir() / "report"


def _config_label(row: ReportRow, varying: Sequence[int]) -> str:
    """The parts of the row's configuration that differ between the rows of a chart, e.g. ``8 GPUs torchrun``."""
    parts = []
    for i in varying:
        value = row.config()[i]
        if not value:
            continue
        if i in (1, 2):
            unit = ("GPU" if i == 1 else "node") + ("" if value == "1" else "s")
            parts.append(f"{value} {unit}")
        else:
            parts.append(value)
    return " ".join(parts)


def _varying(rows: Sequence[ReportRow]) -> list[int]:
    configs = {row.config() for row in rows}
    return [i for i in range(6) if len({c[i] for c in configs}) > 1]


def _charts(sources: Sequence[Source], rows: Sequence[ReportRow]) -> tuple[list[dict[str, Any]], int]:
    source_index = {s.label: i for i, s in enumerate(sources)}
    groups: dict[tuple[str, str], list[ReportRow]] = {}
    for row in rows:
        if row.status == "SUCCESS" and row.performance is not None:
            groups.setdefault((row.model, row.metric), []).append(row)
    keys = sorted(groups)
    charts = []
    for model, metric in keys[:MAX_CHARTS]:
        group = groups[(model, metric)]
        varying = _varying(group)
        latest: dict[tuple[str, tuple[str, ...]], ReportRow] = {}
        for row in group:
            latest[(row.source, row.config())] = row
        bars = []
        for (source, _config), row in list(latest.items())[-MAX_BARS:]:
            config = _config_label(row, varying)
            label = f"{source} · {config}" if config and len(sources) > 1 else (config or source)
            bars.append(svg.Bar(label=label, value=row.performance, series=source_index[source],
                                tooltip=f"{model} {label}: {row.performance_text} {metric} ({where(row)})"))
        title = f"{model} — {metric}" if metric else model
        chart: dict[str, Any] = {"model": model, "metric": metric,
                                 "bars": Markup(svg.bar_chart(bars, title=f"{title}: last value", unit=metric)),
                                 "line": None}
        if len(group) > 1:
            # One line per configuration; its n-th SUCCESS row is at x = n, so runs line up across configurations.
            series: dict[tuple[str, ...], svg.Series] = {}
            rows_of: dict[tuple[str, ...], list[ReportRow]] = {}
            for row in group:
                rows_of.setdefault(row.config(), []).append(row)
            for cfg, config_rows in rows_of.items():
                config_rows = config_rows[-MAX_POINTS:]
                name = _config_label(config_rows[0], varying) or model
                series[cfg] = svg.Series(name, len(series), [
                    (i, row.performance or 0.0, f"{name}: {row.performance_text} {metric} ({row.source}, {where(row)})")
                    for i, row in enumerate(config_rows)])
            longest = max(rows_of.values(), key=len)[-MAX_POINTS:]
            x_count = len(longest)
            if x_count > 1:
                x_labels = [f"{longest[0].source}:{longest[0].line}", f"{longest[-1].source}:{longest[-1].line}"]
                if len({r.source for r in group}) == len(sources) > 1 and x_count == len(sources):
                    x_labels = [sources[0].label, sources[-1].label]
                chart["line"] = Markup(svg.line_chart(list(series.values()), title=f"{title}: over runs",
                                                      x_count=x_count, x_labels=x_labels, unit=metric))
        charts.append(chart)
    return charts, len(keys)


def _detail_table(rows: Sequence[ReportRow], with_run: bool) -> dict[str, Any]:
    headers = ["model", *(["run"] if with_run else []), "performance", "metric", "status", "GPUs", "nodes",
               "launcher", "gpu arch", "build s", "test s", "file:line"]
    numeric = {"performance", "GPUs", "nodes", "build s", "test s"}
    body = []  # file:line shows the file name only; the page header gives each input's full path
    for row in by_model(rows):
        body.append({"status": row.status, "cells": [
            row.model, *([row.source] if with_run else []), row.performance_text, row.metric, row.status, row.n_gpus,
            row.nnodes, row.launcher, row.gpu_architecture, seconds(row.build_duration),
            seconds(row.test_duration), where(row).replace(row.path, Path(row.path).name, 1)]})
    return {"headers": headers, "numeric": [h in numeric for h in headers], "rows": body, "aggregated": False,
            "note": ""}


def _aggregate_table(rows: Sequence[ReportRow]) -> dict[str, Any]:
    groups: dict[tuple[str, str, tuple[str, ...], str], list[ReportRow]] = {}
    for row in rows:
        groups.setdefault((row.model, row.source, row.config(), row.metric), []).append(row)
    headers = ["model", "run", "metric", "rows", "SUCCESS", "last", "mean", "min", "max", "last status", "GPUs",
               "nodes", "launcher", "gpu arch"]
    numeric = {"rows", "SUCCESS", "last", "mean", "min", "max", "GPUs", "nodes"}
    body = []
    for (model, source, _config, metric) in sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3])):
        group = groups[(model, source, _config, metric)]
        values = [r.performance for r in group if r.status == "SUCCESS" and r.performance is not None]
        last = group[-1]

        def num(v: float | None) -> str:
            return "" if v is None else f"{v:.6g}"

        body.append({"status": last.status, "cells": [
            model, source, metric, str(len(group)), str(len(values)), num(values[-1] if values else None),
            num(sum(values) / len(values) if values else None), num(min(values) if values else None),
            num(max(values) if values else None), last.status, last.n_gpus, last.nnodes, last.launcher,
            last.gpu_architecture]})
    note = (f"{len(rows):,} rows are summarised: one line per model, run, configuration and metric "
            f"({len(body):,} lines).")
    if len(body) > MAX_TABLE_ROWS:
        note += f" The first {MAX_TABLE_ROWS:,} are shown; use `inv report --format json` for all."
        body = body[:MAX_TABLE_ROWS]
    return {"headers": headers, "numeric": [h in numeric for h in headers], "rows": body, "aggregated": True,
            "note": note}


def _comparison(sources: Sequence[Source]) -> dict[str, Any] | None:
    if len(sources) < 2:
        return None
    result = compare(sources, by="config", threshold=0.05)
    per_model: dict[str, list[set[str]]] = {}
    for e in result.entries:
        for i, value in enumerate(e.key):
            per_model.setdefault(e.key[0], [set() for _ in e.key])[i].add(value)
    # model, plus the configuration columns that differ between the entries of some model
    shown = [0] + [i for i in range(1, len(result.key_columns)) if any(len(v[i]) > 1 for v in per_model.values())]
    headers = [*(result.key_columns[i] for i in shown), "metric", *[s.label for s in sources],
               *[f"Δ% {s.label}" for s in sources[1:]], "flag"]
    rows = []
    for e in result.entries[:MAX_TABLE_ROWS]:
        values = [("" if c.rows == 0 else c.text if c.value is not None else c.status) for c in e.cells]
        changes = ["" if rel is None else f"{rel * 100:+.2f}%" for _, rel in e.changes]
        rows.append({"flag": e.flag, "cells": [*(e.key[i] for i in shown), e.metric, *values, *changes, e.flag]})
    return {"headers": headers, "rows": rows, "threshold": result.threshold,
            "regressions": result.count("regression"), "improvements": result.count("improvement")}


def render_html(sources: Sequence[Source], *, title: str = "madengine report",
                template_dir: str | Path | None = None, histories: Sequence[str] = ()) -> str:
    """The report page as HTML text (see the module docstring for what it contains and its limits).
    ``histories`` are SVG history charts from the results store
    (:func:`madengine.report.verdicts.history_svg`), shown in their own section.

    Raises:
        jinja2.TemplateNotFound: ``template_dir`` lacks ``report.html.j2`` (a packaging error with the default).
    """
    rows = all_rows(sources)
    failures = [row for row in rows if is_failure(row)]
    charts, chart_models = _charts(sources, rows)
    with_run = len(sources) > 1
    table = _detail_table(rows, with_run) if len(rows) <= MAX_DETAIL_ROWS else _aggregate_table(rows)
    legend = [{"label": s.label, "color": svg.color(i)} for i, s in enumerate(sources)]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir or TEMPLATE_DIR)),
                             autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    template = env.get_template("report.html.j2")
    return template.render(
        title=title, version=__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        sources=[{"label": s.label, "path": str(s.path), "kind": s.kind, "rows": len(s.rows)} for s in sources],
        counts=counts(rows), models=len({row.model for row in rows}), table=table, legend=legend,
        failures=[{"model": r.model, "status": r.status or "(blank)", "source": r.source, "where": where(r),
                   "docker_file": r.docker_file, "reason": r.reason, "log": r.log} for r in failures[:MAX_FAILURES]],
        failures_total=len(failures), charts=charts, chart_models=chart_models, max_charts=MAX_CHARTS,
        comparison=_comparison(sources), histories=list(histories))
