"""perf.csv's ``relative_change`` column: the change of a new row's performance against the previous run.

The previous run is the LAST earlier row with the same ``model``, ``docker_file``, ``gpu_architecture`` and
``deployment_type`` (the same benchmark on the same kind of machine) that is SUCCESS with a numeric, non-zero
performance in the same ``metric``. The value is the signed percentage ``(new - previous) / previous * 100`` with
two decimals, e.g. ``"+3.25%"``, ``"-12.00%"``, ``"+0.00%"``; ``""`` when there is no previous run or the new row
has no number. madengine v2 leaves the column empty; readers treat it as text.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from madengine.results.record import number

#: The columns that make two rows the same benchmark for ``relative_change``.
MATCH_COLUMNS = ("model", "docker_file", "gpu_architecture", "deployment_type")


def _get(row: Mapping[str, Any] | Any, name: str) -> str:
    value = row.get(name, "") if isinstance(row, Mapping) else getattr(row, name, "")
    return "" if value is None else str(value).strip()


def relative_change(previous_rows: Iterable[Mapping[str, Any] | Any], row: Mapping[str, Any] | Any) -> str:
    """The ``relative_change`` text of ``row`` against the previous run in ``previous_rows``.

    Args:
        previous_rows: the perf.csv's existing rows, oldest first: dicts as returned by
            :func:`madengine.results.perf_csv.read_rows` (madengine v1 and v2 files alike; a missing column reads as
            ``""``) or :class:`~madengine.results.perf_csv.PerfRow` objects.
        row: the new row (a dict or a ``PerfRow``).

    Returns:
        ``"+3.25%"``-style text (see the module docstring), or ``""`` when there is nothing to compare with.
        Never raises for odd values: blank or non-numeric performance just gives ``""``.
    """
    new = number(_get(row, "performance"))
    if new is None:
        return ""
    key = tuple(_get(row, name) for name in MATCH_COLUMNS)
    metric = _get(row, "metric")
    previous: float | None = None
    for old in previous_rows:
        if _get(old, "status") != "SUCCESS" or _get(old, "metric") != metric:
            continue
        if tuple(_get(old, name) for name in MATCH_COLUMNS) != key:
            continue
        value = number(_get(old, "performance"))
        if value is not None and value != 0:
            previous = value
    if previous is None:
        return ""
    change = (new - previous) / abs(previous) * 100
    return f"{change:+.2f}%" if math.isfinite(change) else ""  # 1e308 after 1e-308 overflows: no number


def append_with_relative_change(path: str | Path, rows: Sequence[Any]) -> None:
    """Fill each new row's ``relative_change`` against the runs already in the perf.csv at ``path`` (never against
    the other rows of this call: the nodes of one multi-node job are one run), then append them with
    :func:`madengine.results.perf_csv.append_rows` (one locked write).

    A finished result is never lost: when the file cannot take the rows (made unreadable or foreign since the run
    started, not writable, disk full), they are written to a new ``<name>.unsaved-<UTC time>.csv`` next to it and
    the error says where.

    Raises:
        PerfCsvError: the file cannot be appended to (foreign header, malformed, not writable).
    """
    from madengine.errors import PerfCsvError
    from madengine.results.perf_csv import append_rows, read_rows

    target = Path(path)
    try:
        previous: list[Any] = read_rows(target) if target.is_file() else []
        for row in rows:
            row.relative_change = relative_change(previous, row)
        append_rows(target, rows)
    except PerfCsvError as e:
        if not rows:
            raise
        raise PerfCsvError(f"{e.message}; {_save_elsewhere(target, rows)}") from None


def _save_elsewhere(target: Path, rows: Sequence[Any]) -> str:
    """Write ``rows`` to a new perf.csv next to ``target`` (else in the working directory); say where."""
    from datetime import datetime, timezone

    from madengine.errors import PerfCsvError
    from madengine.results.perf_csv import append_rows

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    for directory in (target.parent, Path.cwd()):
        spare = directory / f"{target.stem}.unsaved-{stamp}.csv"
        try:
            append_rows(spare, rows)
            return f"this run's {len(rows)} row(s) were saved to {spare} instead"
        except PerfCsvError:
            continue
    return f"this run's {len(rows)} row(s) could not be saved anywhere (see the console lines above)"
