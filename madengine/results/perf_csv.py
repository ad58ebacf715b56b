"""perf.csv, the results table every run appends to, in madengine v2's format (``reporting/update_perf_csv.py``).

The file is shared: several madengine processes may append to it at once, and tools built for madengine (``report
to-html``, the database upload, spreadsheets) read it, so the format is madengine v2's exactly: the 29 columns of
:data:`PERF_CSV_HEADER`, comma-separated, ``\\n`` line ends, RFC 4180 quoting. Appends never rewrite existing bytes.

Appends are locked and crash-safe (:mod:`madengine.results._append`): concurrent writers never interleave, a
writer killed midway leaves all of its rows or none (completed by the next reader or writer), and existing bytes
are never rewritten.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, field_validator

from madengine.errors import PerfCsvError
from madengine.results._append import journal_path, journaled_append, open_locked, recover

#: madengine v2's perf.csv columns, in file order.
PERF_CSV_HEADER: tuple[str, ...] = (
    "model", "n_gpus", "nnodes", "gpus_per_node", "training_precision", "pipeline", "args", "tags", "docker_file",
    "base_docker", "docker_sha", "docker_image", "git_commit", "machine_name", "deployment_type", "launcher",
    "gpu_architecture", "performance", "metric", "relative_change", "status", "build_duration", "test_duration",
    "dataname", "data_provider_type", "data_size", "data_download_duration", "build_number",
    "additional_docker_run_options",
)
#: Columns :func:`read_rows` requires, present in madengine v1 and v2 files alike.
READ_REQUIRED_COLUMNS = ("model", "performance", "metric", "status")

_HEADER_LINE = (",".join(PERF_CSV_HEADER) + "\n").encode()

Status = Literal["SUCCESS", "FAILURE", "SKIPPED"]
_STATUSES = get_args(Status)


class PerfRow(BaseModel):
    """One perf.csv row: every column of :data:`PERF_CSV_HEADER` as a string (default ``""``), plus ``reason``.

    ``status`` is required; ``node_rank`` names the node of a multi-node job the row came from (like ``reason``, it
    is reported in the run summary, never written to perf.csv). ``samples`` are the performance values of the
    measured repeats of a ``--repeat N`` run, in run order (``performance`` is then their median); empty for a
    single run. Numbers given for any column are written with
    ``str()`` (durations are seconds,
    ``performance`` is in the unit named by ``metric``); ``None`` becomes ``""``; a ``tags`` list is joined with
    ``","`` as madengine does. ``reason`` says why a row is FAILURE/SKIPPED; perf.csv has no column for it (adding
    one would break madengine's readers), so it is never written: callers report it (console, JSON summary).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    model: str = ""
    n_gpus: str = ""
    nnodes: str = ""
    gpus_per_node: str = ""
    training_precision: str = ""
    pipeline: str = ""
    args: str = ""
    tags: str = ""
    docker_file: str = ""
    base_docker: str = ""
    docker_sha: str = ""
    docker_image: str = ""
    git_commit: str = ""
    machine_name: str = ""
    deployment_type: str = ""
    launcher: str = ""
    gpu_architecture: str = ""
    performance: str = ""
    metric: str = ""
    relative_change: str = ""
    status: Status
    build_duration: str = ""
    test_duration: str = ""
    dataname: str = ""
    data_provider_type: str = ""
    data_size: str = ""
    data_download_duration: str = ""
    build_number: str = ""
    additional_docker_run_options: str = ""
    reason: str = ""
    node_rank: str = ""
    samples: list[float] = []

    @field_validator("*", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return _as_text(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _flatten_tags(cls, value: Any) -> Any:
        return _flatten_tags(value)

    def to_csv_dict(self) -> dict[str, str]:
        """The row as ``{column: value}`` in :data:`PERF_CSV_HEADER` order, without ``reason`` and ``node_rank``."""
        return {name: getattr(self, name) for name in PERF_CSV_HEADER}


def format_rows(rows: Iterable[PerfRow]) -> bytes:
    """The CSV bytes of ``rows`` (UTF-8, ``\\n`` line ends, minimal quoting), without header.

    Values are checked again (cheaply), since ``model_copy(update=...)`` skips validation.

    Raises:
        PerfCsvError: a row has a value that is not text, a number or a tags list, or a bad ``status``.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        cells = [vars(row).get(name) for name in PERF_CSV_HEADER]  # pydantic keeps field values in __dict__
        if not all(type(cell) is str for cell in cells):
            cells = [_cell(row, name) for name in PERF_CSV_HEADER]
        if row.status not in _STATUSES:
            raise PerfCsvError(f"perf row {row.model!r}: status {row.status!r} is not one of {', '.join(_STATUSES)}")
        writer.writerow(cells)
    return buffer.getvalue().encode("utf-8")


def _as_text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _flatten_tags(value: Any) -> Any:
    return ",".join(str(tag) for tag in value) if isinstance(value, (list, tuple)) else value


def _cell(row: PerfRow, name: str) -> str:
    value = _as_text(_flatten_tags(getattr(row, name)) if name == "tags" else getattr(row, name))
    if not isinstance(value, str):
        raise PerfCsvError(f"perf row {row.model!r}: column {name!r} holds {type(value).__name__}, not text")
    return value


def append_rows(path: str | Path, rows: Iterable[PerfRow],
                before_write: Callable[[int, int], None] | None = None) -> None:
    """Append ``rows`` to the perf.csv at ``path`` atomically; with no rows, create or check the file only.

    Creates the parent directories and, for a missing or empty file, writes :data:`PERF_CSV_HEADER` first. All
    rows of one call go out in a single ``os.write`` under an exclusive ``fcntl.flock`` on the file itself, so
    concurrent writers never interleave, and through a journal (:mod:`madengine.results._append`), so a killed
    writer leaves all of its rows or none. Existing bytes are never changed; a file not ending in a newline gets
    one before the new rows. If the write itself fails (disk full), the bytes this call added are cut off again.
    ``before_write(fd, size)`` is called under the lock, with the file's descriptor and size, before the rows are
    formatted (it may still change them: :func:`madengine.report.relative.append_with_relative_change`).

    Raises:
        PerfCsvError: the existing header is not :data:`PERF_CSV_HEADER` (e.g. a madengine v1 file; the file is
            left untouched), a row is invalid, or the file or its directory cannot be opened or written.
    """
    path = Path(path)
    rows = list(rows)
    with open_locked(path, write=True) as fd:
        recover(fd, path)
        size = os.fstat(fd).st_size
        if size:
            _check_header(fd, path)
        if before_write is not None:  # under the lock: sees every earlier append, no later one
            before_write(fd, size)
        payload = format_rows(rows)
        if size == 0:
            journaled_append(fd, path, 0, _HEADER_LINE + payload)
            return
        if payload:
            newline = b"" if os.pread(fd, 1, size - 1) == b"\n" else b"\n"
            journaled_append(fd, path, size, newline + payload)


def check_appendable(path: str | Path) -> None:
    """Check, before anything runs, that rows can be appended to the perf.csv at ``path``; creates nothing.

    An existing file must have :data:`PERF_CSV_HEADER` and a complete last row (an interrupted writer of another
    tool can leave one cut short, which would make the run's own rows unreadable); a pending journal is completed
    first. A missing file needs a writable directory (the nearest existing one).

    Raises:
        PerfCsvError: names the file (and line) and the fix.
    """
    path = Path(path)
    if not path.exists():
        parent = next(p for p in (path.parent, *path.parent.parents) if p.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise PerfCsvError(f"{path}: cannot be created ({parent} is not a writable directory); give --output a "
                               "writable path")
        return
    with open_locked(path, write=True) as fd:
        recover(fd, path)
        size = os.fstat(fd).st_size
        if size:
            _check_header(fd, path)
            _check_last_row(fd, path, size)


def _check_last_row(fd: int, path: Path, size: int) -> None:
    """Raise PerfCsvError when the last row has fewer fields than the header (a row cut short)."""
    quotes = sum(os.pread(fd, 1 << 24, offset).count(b'"') for offset in range(0, size, 1 << 24))
    if quotes % 2:  # the file ends inside a quoted field: whatever is appended would be swallowed by it
        raise PerfCsvError(f"{path}: the last row is cut short inside a quoted field (an interrupted writer?); "
                           f"nothing was run. Remove that row (`sed -i '$d' {path}`) or write to another file with "
                           "--output")
    raw = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
    tail = raw.rstrip(b"\r\n")
    last = tail.rsplit(b"\n", 1)[-1]
    if not last.strip() or last.count(b'"') % 2:  # blank, or a quoted field spans lines (balanced: read_rows checks)
        return
    try:
        cells = next(csv.reader([last.decode("utf-8", errors="replace")]))
    except (csv.Error, StopIteration):
        return
    if len(cells) >= len(PERF_CSV_HEADER):
        return
    start = size - (len(raw) - len(tail)) - len(last)  # offset of the last row
    line = 1 + sum(os.pread(fd, min(1 << 24, start - o), o).count(b"\n") for o in range(0, start, 1 << 24))
    raise PerfCsvError(
        f"{path}:{line}: the last row is cut short ({len(cells)} of {len(PERF_CSV_HEADER)} fields; an interrupted "
        f"writer?); nothing was run. Remove that line (`sed -i '$d' {path}`) or write to another file with --output")


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The data rows of a perf.csv as ``{column: value}`` dicts keyed by the file's own header.

    Reads files written here or by madengine v2 (29 columns) and madengine v1 (24-25 columns written with ``", "``
    separators: fields are stripped). A pending journal (an append killed midway) is completed first if the file
    is writable. Blank lines are skipped; an empty file gives ``[]``. The read happens under a shared lock, so an
    append in progress is seen whole or not at all.

    Raises:
        PerfCsvError: the file is missing or unreadable, or malformed (the message gives ``file:line`` and the
            problem: bad quoting, wrong field count, missing ``model/performance/metric/status`` column).
    """
    path = Path(path)
    if path.is_file() and journal_path(path).exists():
        try:
            with open_locked(path, write=True) as fd:
                recover(fd, path)
        except PerfCsvError:
            pass  # read-only file: read what is there
    with open_locked(path, write=False) as fd:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    data = b"".join(chunks)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PerfCsvError(f"{path}:{line}: not UTF-8 text ({e.reason})") from None
    first_line = re.match(r"\s*([^\n]*)", text)
    v1 = first_line is not None and ", " in first_line.group(1)
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=v1, strict=True)
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    end = 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if v1:
                cells = [cell.strip() for cell in cells]
            if header is None:
                header = _check_read_header([cell.strip() for cell in cells], path, start)
                continue
            if len(cells) > len(header) and not any(cell.strip() for cell in cells[len(header):]):
                cells = cells[: len(header)]
            if len(cells) != len(header):
                raise PerfCsvError(f"{path}:{start}: {len(cells)} fields, but the header has {len(header)}")
            rows.append(dict(zip(header, cells, strict=True)))
    except csv.Error as e:
        raise PerfCsvError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
    return rows


def _check_read_header(names: list[str], path: Path, line: int) -> list[str]:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PerfCsvError(f"{path}:{line}: column {duplicates[0]!r} appears more than once in the header")
    missing = [column for column in READ_REQUIRED_COLUMNS if column not in names]
    if missing:
        raise PerfCsvError(f"{path}:{line}: not a perf.csv header: missing column(s) {', '.join(missing)}")
    return names


def _check_header(fd: int, path: Path) -> None:
    """Raise PerfCsvError unless the file's first line is :data:`PERF_CSV_HEADER` (spaces around names allowed)."""
    first = os.pread(fd, 1 << 16, 0).split(b"\n", 1)[0]
    try:
        names: list[str] | None = [n.strip() for n in next(csv.reader([first.decode("utf-8-sig").rstrip("\r")]))]
    except (UnicodeDecodeError, csv.Error, StopIteration):
        names = None
    if names == list(PERF_CSV_HEADER):
        return
    raise PerfCsvError(
        f"{path}: its header is not madengine's {len(PERF_CSV_HEADER)}-column perf.csv header ({_mismatch(names)}); "
        "the file was left untouched. Write to another file with --output (e.g. --output perf_new.csv), "
        "or move this one away.")


def _mismatch(names: list[str] | None) -> str:
    if not names or not any(names):
        return "the first line is blank or not UTF-8 CSV text"
    v1 = " (a madengine v1 perf.csv)" if names[0] == "model" and len(names) in (24, 25) and "nnodes" not in names else ""
    parts = [f"{len(names)} columns{v1}"]
    missing = [column for column in PERF_CSV_HEADER if column not in names]
    unexpected = [name for name in names if name not in PERF_CSV_HEADER]
    for label, items in (("missing", missing), ("unexpected", unexpected)):
        if items:
            parts.append(f"{label}: {', '.join(items[:4])}{', ...' if len(items) > 4 else ''}")
    if not missing and not unexpected and len(names) == len(PERF_CSV_HEADER):
        index = next(i for i, (a, b) in enumerate(zip(names, PERF_CSV_HEADER, strict=True)) if a != b)
        parts.append(f"column {index + 1} is {names[index]!r}, expected {PERF_CSV_HEADER[index]!r}")
    return "; ".join(parts)
