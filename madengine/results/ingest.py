"""``results.ingest``: existing perf.csv files into the results store, idempotently, so a team imports its history.

Reads this project's perf.csv, madengine v2's (the same 29 columns) and madengine v1's (24-25 columns written with
``", "`` separators), streamed (constant memory). Each file (and ``--label``) becomes one run ``csv-<16 hex digits
of its absolute path and label>`` (``source`` ``ingest``, started at the file's modification time); each row one
result row whose key is a SHA-256 of the file's absolute path, the row's cells and its occurrence among identical
rows of the file. Ingesting the same file again, or a file that has grown since, adds only the rows not stored yet
(under a new ``--label`` they go to that label's run; rows stored before keep theirs), and rows a recorded run
stored already (the perf.csv it wrote) are skipped. Two files are two sources: a deterministic benchmark that
printed the same row on two nights is two results. ``across_files=True`` (``--across-files``) leaves the path out
of the key instead, for copies of one cumulative perf.csv (madengine v2 appends to one file): a row any file
ingested that way holds is not added again. Columns that are not perf.csv's (e.g. a v1 file's own extras) go to
``extra`` as JSON.

A file is ingested in one transaction: a malformed line stores nothing of the file (the error names the line), and
a file that adds no row creates no run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import operator
import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from madengine.errors import PerfCsvError
from madengine.results.perf_csv import PERF_CSV_HEADER, READ_REQUIRED_COLUMNS
from madengine.results.record import number
from madengine.results.store import RunInfo, Store, csv_digest_of

_PERF_CSV_NAMES = frozenset(PERF_CSV_HEADER)


@dataclass
class Ingested:
    """What one ingest did: the file, its run id, rows read and rows newly stored, and the SUCCESS rows whose
    performance is not a finite number (stored as they are, but no verdict can use them) with the first such value."""

    path: Path
    run_id: str
    read: int
    inserted: int
    unnumbered: int = 0
    unnumbered_example: str = ""


def iter_csv(path: str | Path) -> Iterator[dict[str, str]]:
    """The data rows of a perf.csv (any generation) as ``{column: value}``, streamed under a shared lock.

    Raises:
        PerfCsvError: missing/unreadable file, not UTF-8, malformed CSV or a header without
            ``model/performance/metric/status`` (``file:line`` and the problem).
    """
    from madengine.results._append import open_locked

    path = Path(path)
    with open_locked(path, write=False) as fd, os.fdopen(os.dup(fd), "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        header: list[str] | None = None
        v1 = False
        reader = csv.reader(text, strict=True)
        try:
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue
                if header is None:
                    v1 = len(cells) > 1 and all(c.startswith(" ") for c in cells[1:] if c)
                    header = [c.strip() for c in cells]
                    missing = [c for c in READ_REQUIRED_COLUMNS if c not in header]
                    if missing:
                        raise PerfCsvError(f"{path}:{reader.line_num}: not a perf.csv header: missing column(s) "
                                           f"{', '.join(missing)}")
                    continue
                if v1:
                    cells = [c.strip() for c in cells]
                if len(cells) > len(header) and not any(c.strip() for c in cells[len(header):]):
                    cells = cells[: len(header)]
                if len(cells) != len(header):
                    raise PerfCsvError(f"{path}:{reader.line_num}: {len(cells)} fields, but the header has "
                                       f"{len(header)}")
                yield dict(zip(header, cells, strict=True))
            if header is None:
                raise PerfCsvError(f"{path}: empty, no perf.csv header (model, performance, metric, status)")
        except csv.Error as e:
            raise PerfCsvError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
        except UnicodeDecodeError as e:
            raise PerfCsvError(f"{path}:{_first_undecodable_line(path)}: not UTF-8 text ({e.reason})") from None


def _first_undecodable_line(path: Path) -> int:
    """The number of the first line of ``path`` that is not UTF-8 (the decoder reads ahead, so its position
    does not tell)."""
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def ingest_csv(store: Store, path: str | Path, *, label: str = "", across_files: bool = False) -> Ingested:
    """Load the perf.csv at ``path`` into ``store`` (see the module docstring); returns what was read and added.

    Raises:
        PerfCsvError: the file cannot be read (nothing of it is stored);
        StoreError: the database refused or did not answer (nothing of it is stored).
    """
    from madengine.results.stats import infer_direction

    path = Path(path).resolve()
    if not path.is_file():
        raise PerfCsvError(f"--csv {path}: no such file")
    run_id = "csv-" + hashlib.sha256(f"{path}\x1f{label}".encode(errors="surrogatepass")).hexdigest()[:16]
    command = f"results.ingest --csv {shlex.quote(str(path))}" + (f" --label {shlex.quote(label)}" if label else "")
    run = RunInfo(run_id=run_id, started_at=path.stat().st_mtime, ended_at=path.stat().st_mtime, command=command,
                  target="ingest", label=label, output=str(path), source="ingest", status="done")
    now = time.time()
    directions: dict[str, str] = {}
    source = "csv" if across_files else f"csv\x1f{path}"
    odd: list[Any] = [0, ""]  # SUCCESS rows without a finite number, and the first such value

    def records() -> Iterator[dict[str, Any]]:
        seen: dict[str, int] = {}
        extra_names: list[str] | None = None
        blank: dict[str, str] = {}
        cells_of = operator.itemgetter(*PERF_CSV_HEADER)
        for cells in iter_csv(path):
            if extra_names is None:  # one header per file: its columns that are not perf.csv's, once
                extra_names = [name for name in cells if name not in _PERF_CSV_NAMES]
                blank = {name: "" for name in PERF_CSV_HEADER if name not in cells}  # a v1 file's missing ones
            ordered = cells_of({**blank, **cells} if blank else cells)
            values = dict(zip(PERF_CSV_HEADER, ordered, strict=True))
            identity = "\x1f".join(ordered)
            occurrence = seen[identity] = seen.get(identity, -1) + 1
            metric = values["metric"]
            if metric not in directions:
                directions[metric] = infer_direction(metric)
            extra = {name: cells[name] for name in extra_names}
            value = number(values["performance"])
            if value is None and values["status"] == "SUCCESS":
                odd[0] += 1
                odd[1] = odd[1] or values["performance"]
            yield {**values, "run_id": run_id, "recorded_at": now, "value": value,
                   "repeat_index": 0, "node_rank": cells.get("node_rank", ""), "reason": cells.get("reason", ""),
                   "metric_direction": directions[metric], "build_fingerprint": "",
                   "extra": json.dumps(extra, sort_keys=True) if extra else "",
                   "csv_key": "", "row_key": csv_digest_of(f"{source}\x1f{identity}\x1f{occurrence}"),
                   "_csv_key": csv_digest_of(identity)}  # matched against recorded runs only, not stored

    import sqlalchemy as sa

    with store.transaction() as conn:
        new_run = store.begin_run(run, conn)
        read, inserted = store.add_result_records(_not_recorded(store, records()), conn)
        if new_run and not inserted:  # nothing new: no empty run is left behind
            conn.execute(sa.delete(store.runs).where(store.runs.c.run_id == run_id))
    return Ingested(path, run_id, read, inserted, odd[0], odd[1])


def _not_recorded(store: Store, records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``records`` without the rows a recorded run already stored (same ``csv_key``: as many occurrences as runs
    stored), checked one batch at a time. Skipped rows are still counted as read."""
    import sqlalchemy as sa

    r = store.results
    recorded: dict[str, int] = {}
    batch: list[dict[str, Any]] = []
    if not store.query(sa.select(r.c.id).where(r.c.csv_key != "").limit(1)):  # no recorded run's row to skip
        for record in records:
            del record["_csv_key"]
            yield record
        return

    def flush() -> Iterator[dict[str, Any]]:
        keys = list({record["_csv_key"] for record in batch} - set(recorded))
        for start in range(0, len(keys), 1000):
            query = (sa.select(r.c.csv_key, sa.func.count().label("n"))
                     .where(r.c.csv_key.in_(keys[start:start + 1000]), ~r.c.run_id.startswith("csv-"))
                     .group_by(r.c.csv_key))
            recorded.update({row["csv_key"]: row["n"] for row in store.query(query)})
        for record in batch:
            csv_key = record.pop("_csv_key")
            left = recorded.get(csv_key, 0)
            if left:
                recorded[csv_key] = left - 1
                record["skip"] = True
            yield record

    for record in records:
        batch.append(record)
        if len(batch) >= 5000:
            yield from flush()
            batch = []
    yield from flush()
