"""The model step's output (``model.out``, never held in memory whole): scanned line by line for the performance and error markers, and
turned into perf rows; and the masked run log (``<model>_<dockerfile>.run.live.log``)."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from madengine.errors import MadEngineError
from madengine.results.perf_csv import PerfRow
from madengine.results.perf_parse import (
    error_patterns_from_context,
    find_error_marker,
    parse_multiple_results,
    parse_performance,
)
from madengine.workflow.credentials import Masker
from madengine.workflow.plan import RunRequest

#: The reason of a row whose model ran fine but printed no performance line.
NO_PERFORMANCE = "no 'performance: <value> <metric>' line"


def _lines(path: Path) -> Iterator[str]:
    """The file's lines, decoded leniently (invalid UTF-8 replaced); none when it does not exist."""
    if not path.is_file():
        return
    with open(path, "rb") as f:
        for raw in f:
            yield raw.decode("utf-8", errors="replace")


def scan_output(source: str | Path, ctx: Mapping[str, Any],
                masker: Masker | None = None) -> tuple[tuple[str, str] | None, str | None, str | None]:
    """The first finite ``performance:`` value/metric, the first error-marker line of a model's output and, when no
    finite value was found, the first value that was rejected for not being a finite number (``nan``, ``inf``,
    ``1e999``; ``None`` when there was none).

    ``source`` is the whole text, or a file (the step script's ``model.out``) scanned line by line.
    """
    patterns, benign = error_patterns_from_context(ctx)
    perf: tuple[str, str] | None = None
    rejected: str | None = None
    marker: str | None = None
    in_traceback = False  # a Python traceback is reported by its final, unindented exception line
    lines = source.splitlines() if isinstance(source, str) else _lines(source)
    for line in lines:
        if perf is None:
            found = parse_performance(line)
            if found is not None and _finite(found[0]):
                perf = found
            elif rejected is None and "performance:" in line:
                word = found[0] if found is not None else _NON_FINITE.search(line)
                rejected = word if isinstance(word, str) or word is None else word[1]
        if in_traceback and line.strip() and not line[:1].isspace():
            marker, in_traceback = line.strip()[:200], False
        elif marker is None and patterns:
            marker = find_error_marker(line, patterns, benign)
            in_traceback = bool(marker and marker.startswith("Traceback (most recent call last)"))
        if perf is not None and not in_traceback and (marker is not None or not patterns):
            break
    if marker and masker:
        marker = masker.text(marker)
    return perf, marker, None if perf else rejected


_NON_FINITE = re.compile(r"performance:[ \t]*([+-]?(?:nan|inf(?:inity)?))\b", re.IGNORECASE)


def _finite(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def rows_from_output(req: RunRequest, row: PerfRow, output: str | Path, model_dir: Path,
                      workspace: Path, results_csv: Path | None = None) -> list[PerfRow]:
    """The perf rows of one run of the model step from its ``output``: one row (the first finite ``performance:``
    line), or one per line of the model's ``multiple_results`` CSV, found in ``model_dir``, else at the top of
    ``workspace`` (``results_csv``: that file instead, e.g. a measured run's copy of a repeated run). An error
    marker in the output fails every row."""
    parsed, marker, rejected = scan_output(output, req.ctx, req.masker)
    multiple = req.model.multiple_results
    if multiple:
        csv_path = results_csv or next((p for p in (model_dir / multiple, workspace / multiple) if p.is_file()),
                                       model_dir / multiple)
        try:
            results = parse_multiple_results(csv_path)
        except MadEngineError as e:
            return [row.model_copy(update={"status": "FAILURE", "reason": f"multiple_results: {e.message}"})]
        rows = []
        for result in results:
            ok = result.status == "SUCCESS" and marker is None
            reason = "" if ok else (f"log shows: {marker}" if marker else f"multiple_results: {result.reason}")
            rows.append(row.model_copy(update={
                "model": result.row_name(row.model), "performance": result.performance, "metric": result.metric,
                "status": "SUCCESS" if ok else "FAILURE", "reason": reason}))
        return rows
    if parsed and marker is None:
        return [row.model_copy(update={"performance": parsed[0], "metric": parsed[1], "status": "SUCCESS"})]
    reason = NO_PERFORMANCE if rejected is None else f"the 'performance:' line gives {rejected!r}, not a finite number"
    update: dict[str, Any] = {"status": "FAILURE", "reason": f"log shows: {marker}" if marker else reason}
    if parsed:
        update.update(performance=parsed[0], metric=parsed[1])
    return [row.model_copy(update=update)]


class _Log:
    """The run log: masked, line-buffered writes to the file and (with live output) to the terminal.

    Writing never raises (the output of a running model must keep flowing, and cleanup must go on): the first
    failure (a full disk) is kept in :attr:`error` and the file is not written any more; :meth:`failure` turns it
    into the one-line error to raise once the container or process is cleaned up.
    """

    def __init__(self, path: Path, masker: Masker, live: bool) -> None:
        self.path = path
        self.file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.masker, self.live = masker, live
        self.error: OSError | None = None

    def _out(self, data: bytes) -> None:
        if self.error is None:
            try:
                self.file.write(data)
                self.file.flush()
            except OSError as e:
                self.error = e
        if self.live:
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
            except OSError:
                self.live = False  # the terminal went away: the log file still gets everything

    def write(self, chunk: bytes) -> None:
        """Mask and write one chunk of output."""
        data = self.masker.feed(chunk)
        if data:
            self._out(data)

    def close(self) -> None:
        """Write what the masker held back and close the file (never raises)."""
        rest = self.masker.flush()
        if rest:
            self._out(rest)
        try:
            self.file.close()
        except OSError as e:
            self.error = self.error or e

    def failure(self) -> MadEngineError | None:
        """The error to report when the log could not be written (names the file and the fix), else None."""
        if self.error is None:
            return None
        return disk_error(self.path, self.error, "the run log")


def disk_error(path: Path, error: OSError, what: str) -> MadEngineError:
    """One-line error for a failed write of ``what`` at ``path``: a full disk names the directory to free."""
    import errno

    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return MadEngineError(f"no space left for {what} {path}: the file system holding {path.parent} is full (or "
                              "over quota); free space there or pass --output on another disk")
    return MadEngineError(f"cannot write {what} {path}: {error.strerror or error}")
