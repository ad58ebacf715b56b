"""Verdicts from the results store: ``report.compare``/``report.check`` with ``--baseline``/``--candidate`` and
``report.history``.

A *selection* picks runs from the store (:func:`select_runs`): comma-separated terms that must all hold,
``run:ID`` (prefix), ``label:NAME``, ``commit:SHA`` (prefix of the hub commit), ``context:HASH`` (prefix),
``target:NAME``, ``since:YYYY-MM-DD[THH:MM]``, ``until:...`` (UTC), ``latest`` (the newest run that passes the other
terms and ended: not running, interrupted or failed) or ``latest~N`` (the one N such runs before it). A *benchmark* is a model, its metric and the GPU architecture.

For each benchmark both sides' samples (every repeat of every selected run, SUCCESS rows with a number) are
compared with :func:`madengine.results.stats.compare_many` (two-sided Mann-Whitney U plus a minimum effect; see
:mod:`madengine.results.stats`): the minimum effect is ``--threshold`` (default 5 %) or the benchmark's noise floor
learned from its history, whichever is larger. History = the samples of up to :data:`HISTORY_RUNS` runs of the
same configuration (context hash) as the candidate that started before the candidate's first run (the baseline's
included, the candidate's excluded). A noise floor above :data:`NOISE_CAP` means the history is too unstable to
judge by: the verdict is "insufficient data" saying so. The direction of a metric is the one stored with its rows
(decided when they were written).

Two verdicts come from the candidate's rows rather than from statistics: **failed** (the candidate has FAILURE rows
and no number for a benchmark of the baseline, or FAILURE rows of a model the baseline lacks) and **missing** (the
baseline has a benchmark the candidate has no row of at all). ``report.check`` fails on both, as on a regression
(``--allow-missing`` accepts missing ones).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from madengine.errors import ConfigError
from madengine.report.text import aligned, pipe_table
from madengine.results.stats import KINDS
from madengine.results.store import Store

#: How many earlier runs a benchmark's noise floor is learned from.
HISTORY_RUNS = 20
#: A learned noise floor above this (a fraction: 0.5 = ±50%) is "history unstable": no verdict is drawn from it.
NOISE_CAP = 0.5
#: Every verdict kind, in report order: the statistical ones, then those drawn from the candidate's rows.
VERDICT_KINDS: tuple[str, ...] = (*KINDS, "failed", "missing")
Key = tuple[str, str, str]  # model, metric, gpu_architecture


@dataclass
class Judged:
    """One benchmark's verdict: the key, both sides' medians and sample counts, the stats verdict."""

    model: str
    metric: str
    gpu_architecture: str
    direction: str
    baseline: float | None
    candidate: float | None
    verdict: Any  # madengine.results.stats.Verdict


def _time(text: str, term: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"selection term {term!r}: give a date as YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def select_runs(store: Store, selection: str) -> list[str]:
    """The run ids (oldest first) that ``selection`` picks (see the module docstring).

    Raises:
        ConfigError: an unknown term or a selection that picks no run (exit 4, names it).
    """
    import sqlalchemy as sa

    runs = store.runs
    query = sa.select(runs.c.run_id).order_by(runs.c.started_at)
    latest: int | None = None
    prefixes = {"run": runs.c.run_id, "commit": runs.c.hub_git_commit, "context": runs.c.context_hash}
    for term in (t.strip() for t in selection.split(",") if t.strip()):
        kind, _, value = term.partition(":")
        if kind in prefixes and value:
            query = query.where(prefixes[kind].startswith(value, autoescape=True))
        elif kind in ("label", "target") and value:
            query = query.where((runs.c.label if kind == "label" else runs.c.target) == value)
        elif kind == "since" and value:
            query = query.where(runs.c.started_at >= _time(value, term))
        elif kind == "until" and value:
            query = query.where(runs.c.started_at < _time(value, term))
        elif term == "latest" or (term.startswith("latest~") and term[7:].isdigit()):
            latest = int(term[7:] or 0) if "~" in term else 0
        else:
            raise ConfigError(f"selection {selection!r}: unknown term {term!r}; use run:ID, label:NAME, commit:SHA, "
                              "context:HASH, target:NAME, since:DATE, until:DATE, latest or latest~N")
    if latest is not None:  # an interrupted or unfinished run is picked by its id, never as "the latest"
        query = query.where(runs.c.status == "done")
    found = [r["run_id"] for r in store.query(query)]
    if latest is not None:
        found = [found[-1 - latest]] if latest < len(found) else []
    if not found:
        raise ConfigError(f"selection {selection!r} picks no run in the results store {store.url_shown}; list runs "
                          "with `madengine results.runs`")
    return found


PerRun = dict[Key, dict[str, list[float]]]  # benchmark -> run id -> samples


def _per_run(store: Store, run_ids: Sequence[str]) -> tuple[PerRun, dict[Key, dict[str, str]]]:
    """The samples of the SUCCESS rows with a number in ``run_ids``, per benchmark and run (each run's rows are read
    once, whichever side or history needs them), and the direction stored with them per benchmark and run."""
    import sqlalchemy as sa

    r = store.results
    found: PerRun = {}
    directions: dict[Key, dict[str, str]] = {}
    for chunk in range(0, len(run_ids), 500):
        query = (sa.select(r.c.run_id, r.c.model, r.c.metric, r.c.gpu_architecture, r.c.value, r.c.metric_direction)
                 .where(r.c.run_id.in_(run_ids[chunk:chunk + 500]), r.c.status == "SUCCESS", r.c.value.is_not(None))
                 .order_by(r.c.id))
        for run_id, model, metric, arch, value, direction in store.stream_rows(query):
            key = (model, metric, arch)
            runs = found.get(key)
            if runs is None:
                runs = found[key] = {}
            samples = runs.get(run_id)
            if samples is None:
                samples = runs[run_id] = []
                if direction:
                    directions.setdefault(key, {})[run_id] = direction
            samples.append(value)
    return found, directions


def _side(found: PerRun, directions: dict[Key, dict[str, str]], run_ids: Sequence[str]) -> dict[Key, tuple[list[float], str]]:
    """Benchmark -> (the samples of ``run_ids``, in run order, and the direction stored with the first of them)."""
    side: dict[Key, tuple[list[float], str]] = {}
    for key, runs in found.items():
        present = [run for run in run_ids if run in runs]
        if present:
            stored = directions.get(key, {})
            direction = next((stored[run] for run in present if run in stored), "")
            side[key] = ([x for run in present for x in runs[run]], direction)
    return side


def _failures(store: Store, run_ids: Sequence[str]) -> dict[str, str]:
    """Model → the first reason (or status) of its rows in ``run_ids`` that are not a SUCCESS with a number."""
    import sqlalchemy as sa

    r = store.results
    found: dict[str, str] = {}
    for chunk in range(0, len(run_ids), 500):
        query = (sa.select(r.c.model, r.c.status, r.c.reason)
                 .where(r.c.run_id.in_(run_ids[chunk:chunk + 500]),
                        sa.or_(r.c.status != "SUCCESS", r.c.value.is_(None)))
                 .order_by(r.c.id))
        for row in store.stream(query):
            found.setdefault(row["model"], row["reason"] or row["status"] or "no number")
    return found


def _earlier_runs(store: Store, before: float, exclude: set[str], contexts: set[str]) -> list[str]:
    """The last :data:`HISTORY_RUNS` runs (oldest first) that started before ``before``, not in ``exclude``, whose
    context hash is one of ``contexts``: the history a noise floor is learned from."""
    import sqlalchemy as sa

    runs = store.runs
    earlier = [row["run_id"] for row in store.query(
        sa.select(runs.c.run_id).where(runs.c.started_at < before, runs.c.context_hash.in_(sorted(contexts)))
        .order_by(runs.c.started_at.desc()).limit(HISTORY_RUNS + len(exclude)))]
    return [run for run in earlier if run not in exclude][:HISTORY_RUNS][::-1]


def compare_store(store: Store, baseline: str, candidate: str, *, threshold: float = 0.05,
                  alpha: float = 0.05) -> list[Judged]:
    """Judge every benchmark of the candidate selection against the baseline selection (module docstring).

    Raises:
        ConfigError: a selection that picks nothing or is malformed; StoreError: the database failed.
    """
    import sqlalchemy as sa

    from madengine.results import stats

    cand_runs = select_runs(store, candidate)
    base_runs = [run for run in select_runs(store, baseline) if run not in set(cand_runs)]  # never both sides
    if not base_runs:
        raise ConfigError(f"--baseline {baseline!r} picks only runs that --candidate {candidate!r} picks too; "
                          "choose a baseline without them")
    runs = store.runs
    cand_info = store.query(sa.select(runs.c.started_at, runs.c.context_hash).where(runs.c.run_id.in_(cand_runs)))
    first = min((row["started_at"] for row in cand_info), default=math.inf)
    earlier = _earlier_runs(store, first, set(cand_runs), {row["context_hash"] for row in cand_info})
    found, directions = _per_run(store, list(dict.fromkeys([*base_runs, *cand_runs, *earlier])))
    base, cand = _side(found, directions, base_runs), _side(found, directions, cand_runs)
    failed = _failures(store, cand_runs)
    keys = sorted(set(base) | set(cand))
    pairs, fixed = [], {}
    for key in keys:
        b, c = base.get(key, ([], "")), cand.get(key, ([], ""))
        history = [found[key][run] for run in earlier if run in found.get(key, {})]
        noise = stats.noise_floor(history) if history else None
        limit = max(threshold, noise or 0.0)
        if not c[0] and key[0] in failed:
            fixed[key] = stats.Verdict("failed", math.nan, None, limit, len(b[0]), 0,
                                       f"the candidate's run failed: {failed[key[0]]}")
        elif not c[0]:
            fixed[key] = stats.Verdict("missing", math.nan, None, limit, len(b[0]), 0,
                                       "the candidate has no row of this benchmark")
        elif (unstable := _unstable(noise, limit, len(b[0]), len(c[0]))) is not None:
            fixed[key] = unstable
        pairs.append((b[0], c[0], c[1] or b[1], None if key in fixed else noise))
    judged = iter(stats.compare_many([p for key, p in zip(keys, pairs, strict=True) if key not in fixed],
                                     min_effect=threshold, alpha=alpha))
    out = [Judged(key[0], key[1], key[2], pair[2], _median(pair[0]), _median(pair[1]),
                  fixed[key] if key in fixed else next(judged)) for key, pair in zip(keys, pairs, strict=True)]
    seen = {key[0] for key in keys}
    out += [Judged(model, "", "", "", None, None, stats.Verdict("failed", math.nan, None, threshold, 0, 0,
                                                               f"the candidate's run failed: {reason}"))
            for model, reason in sorted(failed.items()) if model not in seen]
    return out


def _unstable(noise: float | None, threshold: float, n_baseline: int, n_candidate: int) -> Any:
    """The "insufficient data: history unstable" verdict when the learned ``noise`` is above :data:`NOISE_CAP`,
    else ``None``."""
    if noise is None or noise <= NOISE_CAP:
        return None
    from madengine.results import stats

    return stats.Verdict("insufficient data", math.nan, None, threshold, n_baseline, n_candidate,
                         f"history unstable: earlier runs vary by ±{noise:.0%} (over {NOISE_CAP:.0%}); compare "
                         "against a stable baseline")


def _median(values: Sequence[float]) -> float | None:
    import statistics

    return statistics.median(values) if values else None


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _pct(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value * 100:+.2f}%"


HEADERS = ("model", "metric", "arch", "baseline", "n", "candidate", "n", "change", "threshold", "p", "verdict")


def _cells(j: Judged) -> list[str]:
    v = j.verdict
    return [j.model, j.metric, j.gpu_architecture, _num(j.baseline), str(v.n_baseline), _num(j.candidate),
            str(v.n_candidate), _pct(v.change), f"{v.threshold * 100:.1f}%",
            "" if v.p_value is None else f"{v.p_value:.3g}", v.kind]


def render_verdicts(judged: Sequence[Judged], fmt: str = "table") -> str:
    """The verdicts as an aligned table (with a count per kind), Markdown, or JSON (a list of objects)."""
    if fmt == "json":
        return json.dumps([{"model": j.model, "metric": j.metric, "gpu_architecture": j.gpu_architecture,
                            "direction": j.direction, "baseline_median": j.baseline, "candidate_median": j.candidate,
                            "n_baseline": j.verdict.n_baseline, "n_candidate": j.verdict.n_candidate,
                            "change": j.verdict.change if math.isfinite(j.verdict.change) else None,
                            "threshold": j.verdict.threshold, "p_value": j.verdict.p_value,
                            "verdict": j.verdict.kind, "reason": j.verdict.reason} for j in judged], indent=2)
    rows = [_cells(j) for j in judged]
    right = [False, False, False, True, True, True, True, True, True, True, False]
    if fmt == "markdown":
        return pipe_table(HEADERS, rows, right)
    counts: dict[str, int] = defaultdict(int)
    for j in judged:
        counts[j.verdict.kind] += 1
    footer = ", ".join(f"{counts[k]} {k}" for k in VERDICT_KINDS if counts[k] or k in KINDS)
    return aligned(HEADERS, rows, right) + f"\n\n{len(judged)} benchmark(s): {footer}"


@dataclass
class Point:
    """One run of a benchmark in its history: when, which run (and label, context hash), the median and samples, the
    noise floor (relative) and reference level (median of the medians) of the runs before it with the same context
    (as :func:`compare_store` learns it), and the verdict against the run before it. The noise band is ``reference × (1 ± noise)``, never below 0 for a positive reference."""

    started_at: float
    run_id: str
    label: str
    median: float
    samples: list[float]
    noise: float | None
    verdict: Any
    reference: float | None = None
    context_hash: str = ""

    @property
    def band(self) -> tuple[float, float] | None:
        """The noise band (low, high), or ``None`` before there is history."""
        if self.noise is None or self.reference is None:
            return None
        low = self.reference * (1 - self.noise)
        return (max(low, 0.0) if self.reference >= 0 else low), self.reference * (1 + self.noise)


def history(store: Store, model: str, *, metric: str = "", gpu_architecture: str = "", threshold: float = 0.05,
            limit: int = 50) -> tuple[Key, list[Point]]:
    """The last ``limit`` runs of one benchmark, oldest first, each judged against the run before it with the noise
    floor of the earlier runs of its context (the rule of :func:`compare_store`).

    Raises:
        ConfigError: the model has no stored SUCCESS row (or several metrics/architectures and none was chosen).
    """
    import sqlalchemy as sa

    from madengine.results import stats

    r, runs = store.results, store.runs
    query = (sa.select(r.c.run_id, r.c.metric, r.c.gpu_architecture, r.c.value, r.c.metric_direction,
                       runs.c.started_at, runs.c.label, runs.c.context_hash)
             .join(runs, runs.c.run_id == r.c.run_id)
             .where(r.c.model == model, r.c.status == "SUCCESS", r.c.value.is_not(None)))
    if metric:
        query = query.where(r.c.metric == metric)
    if gpu_architecture:
        query = query.where(r.c.gpu_architecture == gpu_architecture)
    rows = store.query(query.order_by(runs.c.started_at, r.c.id))
    keys = sorted({(model, row["metric"], row["gpu_architecture"]) for row in rows})
    if not keys:
        raise ConfigError(f"report.history: no SUCCESS result of model {model!r} in {store.url_shown}"
                          + (" with that --metric/--arch" if metric or gpu_architecture else ""))
    if len(keys) > 1:
        choices = "; ".join(f"{k[1]} on {k[2] or '-'}" for k in keys)
        raise ConfigError(f"report.history {model}: several benchmarks ({choices}); choose one with --metric and "
                          "--arch")
    direction = next((row["metric_direction"] for row in rows if row["metric_direction"]), "")
    per_run: dict[str, Point] = {}
    for row in rows:
        point = per_run.setdefault(row["run_id"], Point(row["started_at"], row["run_id"], row["label"], 0.0, [],
                                                        None, None, context_hash=row["context_hash"]))
        point.samples.append(row["value"])
    points = list(per_run.values())[-(limit + HISTORY_RUNS):]
    for i, point in enumerate(points):
        point.median = _median(point.samples) or 0.0
        earlier = [p.samples for p in points[:i] if p.context_hash == point.context_hash][-HISTORY_RUNS:]
        point.noise = stats.noise_floor(earlier) if earlier else None
        point.reference = _median([_median(s) or 0.0 for s in earlier]) if earlier else None
        if i:
            before = points[i - 1].samples
            point.verdict = _unstable(point.noise, max(threshold, point.noise or 0.0), len(before),
                                      len(point.samples)) or stats.compare(before, point.samples, direction,
                                                                           noise=point.noise, min_effect=threshold)
    return keys[0], points[-limit:]


def history_svg(key: Key, points: Sequence[Point]) -> Any:
    """The history as an SVG chart (:func:`madengine.report.svg.history_chart`), marked safe for the HTML report."""
    from markupsafe import Markup

    from madengine.report import svg

    chart_points = []
    for p in points:
        when = datetime.fromtimestamp(p.started_at, timezone.utc).strftime("%Y-%m-%d %H:%M")
        kind = p.verdict.kind if p.verdict else ""
        low, high = p.band or (None, None)
        tip = f"{when} run {p.run_id}{' (' + p.label + ')' if p.label else ''}: median {_num(p.median)} of " \
              f"{len(p.samples)}" + (f"; {kind} {_pct(p.verdict.change)}" if kind else "")
        chart_points.append(svg.HistoryPoint(when, p.median, low, high, kind, tip))
    title = f"{key[0]} · {key[2] or 'any GPU'}"
    return Markup(svg.history_chart(chart_points, title=title, unit=key[1]))


def render_history(key: Key, points: Sequence[Point], fmt: str = "table") -> str:
    """A benchmark's history: one line per run with its median, sample count, noise band and verdict."""
    if fmt == "json":
        return json.dumps({"model": key[0], "metric": key[1], "gpu_architecture": key[2], "runs": [
            {"started_at": datetime.fromtimestamp(p.started_at, timezone.utc).isoformat(timespec="seconds"),
             "run_id": p.run_id, "label": p.label, "median": p.median, "samples": p.samples, "noise": p.noise,
             "verdict": p.verdict.kind if p.verdict else None} for p in points]}, indent=2)
    headers = ("started (UTC)", "run", "label", "median", "n", "noise band", "vs previous", "change")
    rows = [[datetime.fromtimestamp(p.started_at, timezone.utc).strftime("%Y-%m-%d %H:%M"), p.run_id, p.label,
             _num(p.median), str(len(p.samples)),
             "" if p.band is None else f"{_num(p.band[0])}..{_num(p.band[1])} (±{(p.noise or 0) * 100:.1f}%)",
             p.verdict.kind if p.verdict else "", _pct(p.verdict.change) if p.verdict else ""] for p in points]
    title = f"{key[0]} · {key[1]} · {key[2] or 'any GPU'}"
    table = pipe_table(headers, rows) if fmt == "markdown" else aligned(headers, rows, [False] * 3 + [True] * 3)
    return f"{title}\n\n{table}"
