"""perf.csv's ``relative_change`` column: the change of a new row's performance against the previous run.

The previous run is the LAST earlier row with the same ``model``, ``docker_file``, ``gpu_architecture`` and
``deployment_type`` (the same benchmark on the same kind of machine) that is SUCCESS with a numeric, non-zero
performance in the same ``metric``. The value is the signed percentage ``(new - previous) / previous * 100`` with
two decimals, e.g. ``"+3.25%"``, ``"-12.00%"``, ``"+0.00%"``; ``""`` when there is no previous run or the new row
has no number. madengine v2 leaves the column empty; readers treat it as text.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from madengine.results.record import number

#: The columns that make two rows the same benchmark for ``relative_change``.
MATCH_COLUMNS = ("model", "docker_file", "gpu_architecture", "deployment_type")


def _get(row: Mapping[str, Any] | Any, name: str) -> str:
    value = row.get(name, "") if isinstance(row, Mapping) else getattr(row, name, "")
    return "" if value is None else str(value).strip()


def _key(row: Mapping[str, Any] | Any) -> str:
    """The benchmark a row measures: its :data:`MATCH_COLUMNS` and ``metric``, as one string."""
    return "\x1f".join(_get(row, name) for name in (*MATCH_COLUMNS, "metric"))


def _remember(last: dict[str, float], row: Mapping[str, Any] | Any) -> None:
    """Record ``row`` in ``last`` (benchmark → latest usable performance) when it can be compared against."""
    if _get(row, "status") == "SUCCESS":
        value = number(_get(row, "performance"))
        if value is not None and value != 0:
            last[_key(row)] = value


def _change(last: Mapping[str, float], row: Mapping[str, Any] | Any) -> str:
    new = number(_get(row, "performance"))
    previous = last.get(_key(row)) if new is not None else None
    if new is None or previous is None:
        return ""
    change = (new - previous) / abs(previous) * 100
    return f"{change:+.2f}%" if math.isfinite(change) else ""  # 1e308 after 1e-308 overflows: no number


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
    last: dict[str, float] = {}
    for old in previous_rows:
        _remember(last, old)
    return _change(last, row)


class _Index:
    """benchmark → latest usable performance of a perf.csv, kept in ``.madengine/relative-index/<name>.json`` next
    to it so that an append reads only the rows added since the last one (not the whole file). The index records
    the file's inode, the size it covers and a digest of the bytes just before that size; any mismatch (the file
    was replaced, cut or edited) rebuilds it from the whole file."""

    VERSION = 1

    def __init__(self, target: Path) -> None:
        self.path = target.resolve().parent / ".madengine" / "relative-index" / f"{target.name}.json"
        self.last: dict[str, float] = {}

    @staticmethod
    def _digest(fd: int, end: int) -> str:
        import hashlib

        return hashlib.sha256(os.pread(fd, min(end, 4096), max(0, end - 4096))).hexdigest()

    def load(self, fd: int, size: int) -> None:
        """Bring :attr:`last` up to date with the file (open as ``fd``, ``size`` bytes long)."""
        import json

        start = 0
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            if (saved.get("version") == self.VERSION and saved.get("inode") == os.fstat(fd).st_ino
                    and 0 < saved["covered"] <= size and saved["digest"] == self._digest(fd, saved["covered"])):
                self.last, start = {str(k): float(v) for k, v in saved["last"].items()}, int(saved["covered"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        for row in _rows_from(fd, start, size):
            _remember(self.last, row)

    def save(self, fd: int, size: int) -> None:
        """Write the index as covering the first ``size`` bytes (best effort: it is a cache)."""
        import json
        import tempfile

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".index-", suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as fh:
                json.dump({"version": self.VERSION, "inode": os.fstat(fd).st_ino, "covered": size,
                           "digest": self._digest(fd, size), "last": self.last}, fh)
            os.replace(tmp, self.path)
        except OSError:
            pass


def _rows_from(fd: int, start: int, end: int) -> Iterator[dict[str, str]]:
    """The data rows in bytes ``start``..``end`` of a perf.csv with madengine's header (``start`` 0 or a row
    boundary), streamed."""
    import csv
    import io

    from madengine.results.perf_csv import PERF_CSV_HEADER

    if end <= start:
        return
    raw = os.fdopen(os.dup(fd), "rb")
    with raw:
        raw.seek(start)
        text = io.TextIOWrapper(io.BufferedReader(_Limited(raw, end - start)), encoding="utf-8", errors="replace",
                                newline="")
        reader = csv.reader(text)
        header: list[str] | None = None if start == 0 else list(PERF_CSV_HEADER)
        try:
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue
                if header is None:
                    header = [cell.strip().lstrip("\ufeff") for cell in cells]
                    continue
                yield dict(zip(header, cells, strict=False))
        except csv.Error:
            return


class _Limited(io.RawIOBase):
    """At most ``left`` bytes of ``raw`` (a reader must not see an append that happens meanwhile)."""

    def __init__(self, raw: Any, left: int) -> None:
        self.raw, self.left = raw, left

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self.left)]
        count = self.raw.readinto(view)
        self.left -= count or 0
        return count or 0


def append_with_relative_change(path: str | Path, rows: Sequence[Any]) -> None:
    """Fill each new row's ``relative_change`` against the runs already in the perf.csv at ``path`` (never against
    the other rows of this call: the nodes of one multi-node job are one run), then append them with
    :func:`madengine.results.perf_csv.append_rows` (one locked write). The previous runs come from an index
    (:class:`_Index`) under the same lock: an append costs time and memory in the rows added since the last one,
    not in the size of the file.

    A finished result is never lost: when the file cannot take the rows (made unreadable or foreign since the run
    started, not writable, disk full), they are written to a new ``<name>.unsaved-<UTC time>.csv`` next to it and
    the error says where.

    Raises:
        PerfCsvError: the file cannot be appended to (foreign header, malformed, not writable).
    """
    from madengine.errors import PerfCsvError
    from madengine.results.perf_csv import append_rows

    target = Path(path)

    def fill(fd: int, size: int) -> None:
        index = _Index(target)
        index.load(fd, size)
        for row in rows:
            row.relative_change = _change(index.last, row)
        index.save(fd, size)

    try:
        append_rows(target, rows, before_write=fill)
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
