"""``inv report`` (default), ``report.compare``, ``report.html``, ``report.junit``, ``report.check``.

Thin: each task loads the inputs (:mod:`madengine.report.load`), calls one renderer of :mod:`madengine.report`, and
prints or writes the result. Inputs are ``--csv`` files (perf.csv of madengine v1/v2/ours, or run summary JSON;
default: the configured ``output``, perf.csv); ``--summary`` adds a run's reasons to the perf.csv rows.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from madengine.tasks._common import mad_task, say

_ITERABLE = ["csv", "summary", "label"]
_FORMATS = ("table", "json", "html", "junit", "markdown")

_HELP = {
    "csv": "perf.csv or run summary JSON to report on (repeatable; default: the configured output, perf.csv)",
    "summary": "run summary JSON whose failure reasons are added to the matching perf.csv rows (repeatable)",
    "label": "name of each --csv input in the report, in the same order (default: the file name)",
    "format": "table (default), json, html, junit or markdown",
    "output": "write to this file instead of stdout ('-' = stdout)",
    "by": "match rows by model (default), launcher (model+launcher) or config (model+docker_file+GPUs+nodes+...)",
    "threshold": "flag relative changes beyond this fraction (default 0.05 = 5%)",
    "title": "page title of the HTML report",
    "references": "references YAML: expected value and tolerances per model (see README 'Reporting')",
    "allow_missing": "do not fail when a referenced model has no result row",
    "results_db": "the results store to read with --baseline/--candidate (default madengine-results.db next to the "
                  "configured perf.csv)",
    "baseline": "runs in the results store to compare against: run:ID, label:NAME, commit:SHA, since:DATE, "
                "until:DATE, target:NAME, latest, latest~N (comma = and)",
    "candidate": "runs in the results store to judge (same terms as --baseline; default latest)",
    "metric": "the metric, when the model has several",
    "arch": "the GPU architecture, when the model ran on several",
    "limit": "at most this many runs (default 50)",
}


def _sources(c: Any, csv: list[str] | None, summary: list[str] | None, label: list[str] | None) -> list[Any]:
    from madengine import settings
    from madengine.report.load import load_sources

    paths = csv or [settings.resolve(c.config.get("madengine"))["output"]]
    return load_sources(paths, label or [], summary or [])


def _emit(c: Any, text: str, output: str | None, what: str, sources: list[Any], summary: list[str] | None) -> None:
    """Print ``text``, or write it to ``output`` (never over one of the inputs or any perf.csv: exit 4)."""
    from pathlib import Path

    from madengine.safe_write import write_text_atomic

    if not output or output == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    inputs = [source.path for source in sources] + list(summary or []) + _protected(c)
    write_text_atomic(Path(output), text if text.endswith("\n") else text + "\n", what=what, inputs=inputs)
    say(f"wrote {what} {output}")


def _protected(c: Any) -> list[Any]:
    """Files a report never writes over: the hub's inputs and the build manifest (of the configured hub, and of
    the current directory)."""
    from pathlib import Path

    from madengine import settings
    from madengine.safe_write import hub_inputs

    config = settings.resolve(c.config.get("madengine"))
    return [*hub_inputs(config["hub"]), *hub_inputs(Path.cwd()), Path(config["manifest_output"])]


def _color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@mad_task(default=True, iterable=_ITERABLE, help=_HELP)
def report(c, csv=None, summary=None, label=None, format="table", output=None):
    """Report perf.csv results: a table grouped by model (or JSON, HTML, JUnit, Markdown) and the failures."""
    from madengine.errors import ConfigError
    from madengine.report import html, junit, table

    if format not in _FORMATS:
        raise ConfigError(f"--format {format!r}: use one of {', '.join(_FORMATS)}")
    sources = _sources(c, csv, summary, label)
    render = {"table": table.render_table, "json": table.render_json, "markdown": table.render_markdown,
              "html": html.render_html, "junit": junit.render_junit}[format]
    _emit(c, render(sources), output, f"{format} report", sources, summary)


def _fraction(threshold: Any) -> float:
    from madengine.errors import ConfigError

    try:
        value = 0.05 if threshold in (None, "") else float(threshold)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise ConfigError(f"--threshold {threshold!r}: give a fraction below 1, e.g. 0.05 for 5%")
    return value


def _verdicts(c: Any, results_db: str | None, baseline: str | None, candidate: str | None,
              threshold: Any) -> list[Any]:
    from madengine.errors import ConfigError
    from madengine.report.verdicts import compare_store
    from madengine.tasks.results import open_from_task

    if not baseline:
        raise ConfigError("--candidate needs --baseline (the runs to compare against, e.g. label:nightly)")
    store = open_from_task(c, results_db)
    try:
        return compare_store(store, baseline, candidate or "latest", threshold=_fraction(threshold))
    finally:
        store.close()


@mad_task(iterable=_ITERABLE, help={**_HELP, "format": "table (default), json or markdown"})
def compare(c, csv=None, summary=None, label=None, by="model", threshold=None, format="table", output=None,
            results_db=None, baseline=None, candidate=None):
    """Compare runs: perf.csv files side by side (first --csv = baseline), or runs of the results store with
    --baseline/--candidate: a verdict per model and metric (regression, improvement, noise, insufficient data)."""
    from madengine.errors import ConfigError
    from madengine.report import compare as compare_mod

    if format not in ("table", "json", "markdown"):
        raise ConfigError(f"--format {format!r}: report.compare writes table, json or markdown")
    if baseline or candidate:
        from madengine.report.verdicts import render_verdicts

        text = render_verdicts(_verdicts(c, results_db, baseline, candidate, threshold), format)
        _emit(c, text, output, "comparison", [], summary)
        return
    limit = _fraction(threshold)
    sources = _sources(c, csv, summary, label)
    result = compare_mod.compare(sources, by=by, threshold=limit)
    if format == "json":
        text = compare_mod.render_compare_json(result)
    elif format == "markdown":
        text = compare_mod.render_compare_markdown(result)
    else:
        text = compare_mod.render_compare_table(result, color=_color() and output in (None, "-"))
    _emit(c, text, output, "comparison", sources, summary)


@mad_task(iterable=[*_ITERABLE, "history"], help={**_HELP, "history": "also plot this model's history from the "
                                                   "results store (noise band, verdicts; repeatable)"})
def html(c, csv=None, summary=None, label=None, output="report.html", title="madengine report", history=None,
         results_db=None):
    """Write one self-contained HTML report (table, failures, comparison, SVG charts); no network needed."""
    from madengine.report.html import render_html

    sources = _sources(c, csv, summary, label)
    charts = []
    if history:
        from madengine.report import verdicts
        from madengine.tasks.results import open_from_task

        store = open_from_task(c, results_db)
        try:
            charts = [verdicts.history_svg(*verdicts.history(store, model)) for model in history]
        finally:
            store.close()
    _emit(c, render_html(sources, title=title, histories=charts), output, "HTML report", sources, summary)


@mad_task(iterable=_ITERABLE, help=_HELP)
def junit(c, csv=None, summary=None, label=None, output="junit.xml"):
    """Write JUnit XML: one testcase per row (SUCCESS passes, FAILURE fails with its reason, SKIPPED skips)."""
    from madengine.report.junit import render_junit

    sources = _sources(c, csv, summary, label)
    _emit(c, render_junit(sources), output, "JUnit XML", sources, summary)


@mad_task(iterable=_ITERABLE, help=_HELP)
def check(c, references=None, csv=None, summary=None, label=None, allow_missing=False, results_db=None,
          baseline=None, candidate=None, threshold=None):
    """Check the newest results against a references YAML, or runs of the results store against a baseline
    (--baseline/--candidate); exit 3 listing every metric out of bounds, regressed, failed or missing."""
    from madengine.errors import ConfigError, RunError
    from madengine.report import check as check_mod

    if baseline or candidate:
        from madengine.report.verdicts import render_verdicts

        judged = _verdicts(c, results_db, baseline, candidate, threshold)
        say(render_verdicts(judged))
        failing = {"regression", "failed"} | (set() if allow_missing else {"missing"})
        bad = [j for j in judged if j.verdict.kind in failing]
        if bad:
            raise RunError(f"{len(bad)} benchmark(s) regressed, failed or missing: " + "; ".join(
                f"{j.model} {j.metric}: {j.verdict.kind}: {j.verdict.reason}".replace("  ", " ") for j in bad[:5]))
        return
    if not references:
        raise ConfigError("report.check needs --references F (a YAML file; see README 'Reporting')")
    refs = check_mod.load_references(references)
    outcomes = check_mod.check(_sources(c, csv, summary, label), refs)
    say(check_mod.render_check(outcomes))
    check_mod.raise_for_outcomes(outcomes, allow_missing=allow_missing)


@mad_task(help={**_HELP, "format": "table (default), json or markdown", "model": "the model's name"})
def history(c, model, metric=None, arch=None, results_db=None, threshold=None, limit=50, format="table",
            output=None):
    """A model's results over its runs in the results store: median, samples, noise band, verdict vs the run
    before."""
    from madengine.errors import ConfigError
    from madengine.report import verdicts
    from madengine.tasks.results import open_from_task

    if format not in ("table", "json", "markdown"):
        raise ConfigError(f"--format {format!r}: report.history writes table, json or markdown")
    if int(limit) < 1:
        raise ConfigError(f"--limit {limit}: give the number of runs to show, at least 1")
    store = open_from_task(c, results_db)
    try:
        key, points = verdicts.history(store, model, metric=metric or "", gpu_architecture=arch or "",
                                       threshold=_fraction(threshold), limit=int(limit))
    finally:
        store.close()
    _emit(c, verdicts.render_history(key, points, format), output, "history", [], None)
