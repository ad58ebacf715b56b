"""Read perf.csv files and run summaries into one row model, :class:`ReportRow`, grouped by :class:`Source`.

Inputs, detected by content (not by name):

- perf.csv written by madengine (29 columns, :data:`madengine.results.perf_csv.PERF_CSV_HEADER`), by AMD's
  madengine v2 (the same) or madengine v1 (25 columns, ``", "`` separators; no ``nnodes``, ``gpus_per_node``,
  ``deployment_type``, ``launcher``): read by :func:`madengine.results.perf_csv.read_rows`. Extra columns are kept in
  :attr:`ReportRow.columns`; missing optional columns read as ``""``; blank or non-numeric performance reads as
  ``None``; statuses other than SUCCESS/FAILURE/SKIPPED are kept as written.
- run summary JSON (:mod:`madengine.report.summary`, a file whose first non-blank character is ``{``): its
  ``models`` become rows, with their ``reason`` and ``log``.

Each input is one :class:`Source` (a "run" in the reports), labelled by ``--label`` or its file name. A summary given
only for reasons (:func:`attach_reasons`) adds its reasons to the perf.csv rows of the same model and config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from madengine.errors import ConfigError
from madengine.report.summary import RunSummary, SummaryEntry
from madengine.results.perf_csv import read_rows
from madengine.results.record import RECORD_FIELDS, ResultRecord

#: The statuses madengine writes; others are kept as written and shown as they are.
KNOWN_STATUSES = ("SUCCESS", "FAILURE", "SKIPPED")


@dataclass(slots=True)
class ReportRow(ResultRecord):
    """One result: a perf.csv data row or a run summary entry, as the result record
    (:class:`~madengine.results.record.ResultRecord`: numbers as numbers, text fields ``""`` when the input has no
    such column — madengine v1 files have no ``nnodes``, ``launcher``, ...; ``reason`` and ``log`` come from a run
    summary, perf.csv has none) plus where it was read.

    ``performance_text`` is the performance as written; ``source`` the label of the input, ``path`` its file,
    ``line`` the 1-based line of the row in a perf.csv (the 1-based entry number in a summary: ``from_summary``);
    ``columns`` a perf.csv row's every column as written, extra columns included (empty for summary entries).
    """

    performance_text: str = ""
    source: str = ""
    path: str = ""
    line: int = 0
    from_summary: bool = False
    columns: dict[str, str] = field(default_factory=dict)

    def config(self) -> tuple[str, ...]:
        """The run configuration: ``(docker_file, n_gpus, nnodes, launcher, deployment_type, gpu_architecture)``."""
        return (self.docker_file, self.n_gpus, self.nnodes, self.launcher, self.deployment_type,
                self.gpu_architecture)


@dataclass
class Source:
    """One input file: its label, path, kind (``perf.csv v1``, ``perf.csv``, ``run summary``) and rows in order."""

    label: str
    path: Path
    kind: str
    rows: list[ReportRow]


def load_sources(paths: Sequence[str | Path], labels: Sequence[str] = (),
                 summaries: Sequence[str | Path] = ()) -> list[Source]:
    """Read every input in ``paths`` (perf.csv or run summary JSON) into a :class:`Source`, in the order given.

    Args:
        paths: the inputs; at least one.
        labels: one label per path (``--label``), or none: each source is labelled by its file name (by its path
            when two inputs share a name).
        summaries: run summaries whose reasons are attached to the perf.csv rows (:func:`attach_reasons`).

    Raises:
        ConfigError: (exit code 4) no input, a label count that differs from the input count, a missing file, a
            malformed summary (file, field and problem).
        PerfCsvError: (exit code 4) a malformed perf.csv (``file:line: problem``).
    """
    if not paths:
        raise ConfigError("no input: give --csv perf.csv (repeatable; a run summary JSON works too)")
    if labels and len(labels) != len(paths):
        raise ConfigError(f"--label given {len(labels)} time(s) for {len(paths)} input(s); "
                          "give one --label per --csv, in the same order, or none")
    names = [Path(p).name for p in paths]
    if not labels:
        labels = [name if names.count(name) == 1 else str(p) for name, p in zip(names, paths, strict=True)]
    sources = [load_file(Path(p), label) for p, label in zip(paths, labels, strict=True)]
    for summary_path in summaries:
        attach_reasons(sources, read_summary(Path(summary_path)))
    return sources


def load_file(path: Path, label: str | None = None) -> Source:
    """One input file as a :class:`Source` (label defaults to the file name). Raises as :func:`load_sources`."""
    label = label or path.name
    if not path.is_file():
        what = "not a file" if path.exists() else "no such file"
        raise ConfigError(f"{path}: {what}; give --csv an existing perf.csv or run summary JSON")
    if _looks_like_json(path):
        summary = read_summary(path)
        rows = [_summary_row(entry, label, path, i) for i, entry in enumerate(summary.models, start=1)]
        return Source(label, path, "run summary", rows)
    records = read_rows(path)
    kind = "perf.csv v1" if records and "nnodes" not in records[0] else "perf.csv"
    lines = _data_lines(path, len(records))
    rows = [_csv_row(record, label, path, line) for record, line in zip(records, lines, strict=True)]
    return Source(label, path, kind, rows)


def read_summary(path: Path) -> RunSummary:
    """A run summary JSON file (:class:`madengine.report.summary.RunSummary`).

    Raises:
        ConfigError: (exit code 4) missing or unreadable file, invalid JSON (``file:line:column``), or a field of the
            wrong type (``file: models[3].status: ...``).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such run summary; check the --summary/--csv path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the run summary ({e})") from None
    try:
        return RunSummary.model_validate_json(text)
    except ValidationError as e:
        error = e.errors()[0]
        where = ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in error["loc"]).replace(".[", "[")
        if error["type"] == "json_invalid":
            line, col = _json_position(text)
            raise ConfigError(f"{path}:{line}:{col}: not valid JSON ({error['msg']}); "
                              "pass a run summary written by --summary-output, or a perf.csv") from None
        raise ConfigError(f"{path}: {where or 'top level'}: {error['msg']}; "
                          "pass a run summary written by --summary-output") from None


def attach_reasons(sources: Sequence[Source], summary: RunSummary) -> int:
    """Copy the summary's reasons (and log paths) onto the matching rows of ``sources``; return how many matched.

    An entry matches the LAST row of each source with the same model and status (and the same ``docker_file`` when
    both name one) that has no reason yet: a summary describes the latest run appended to a perf.csv.
    """
    matched = 0
    for source in sources:
        for entry in summary.models:
            if not entry.reason and not entry.log:
                continue
            for row in reversed(source.rows):
                if row.model == entry.model and row.status == entry.status and not row.reason and (
                        not row.docker_file or not entry.docker_file or row.docker_file == entry.docker_file):
                    row.reason = entry.reason
                    row.log = row.log or entry.log
                    matched += 1
                    break
    return matched


def _looks_like_json(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{")


def _json_position(text: str) -> tuple[int, int]:
    import json

    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return e.lineno, e.colno
    return 1, 1


def _data_lines(path: Path, count: int) -> list[int]:
    """The 1-based line of each of the first ``count`` non-blank data records (quoted newlines counted)."""
    import csv

    lines: list[int] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        end = 0
        header_seen = False
        for cells in reader:
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if not header_seen:
                header_seen = True
                continue
            lines.append(start)
    if len(lines) != count:  # the file changed between the two reads: number rows in order instead
        lines = list(range(2, count + 2))
    return lines


def _csv_row(record: dict[str, str], label: str, path: Path, line: int) -> ReportRow:
    return ReportRow.from_cells(record, performance_text=record.get("performance") or "", source=label,
                                path=str(path), line=line, columns=record)


def _summary_row(entry: SummaryEntry, label: str, path: Path, index: int) -> ReportRow:
    perf = entry.performance
    record = {name: getattr(entry, name) for name in RECORD_FIELDS}  # the entry's statistics are not report fields
    return ReportRow(**record, performance_text="" if perf is None else f"{perf:.15g}",
                     source=label, path=str(path), line=index, from_summary=True)
