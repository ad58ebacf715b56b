"""Files tasks write (reports, run summaries, manifests) never replace results: a write over one of the command's
inputs, or over an existing perf.csv, is refused (exit 4) before anything is written; writes are atomic."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from madengine.errors import ConfigError, MadEngineError
from madengine.results.perf_csv import READ_REQUIRED_COLUMNS

#: Header columns that make a CSV file a perf.csv (madengine v1, v2 and ours all have them).
PERF_CSV_COLUMNS = frozenset(READ_REQUIRED_COLUMNS)


def is_perf_csv(path: Path) -> bool:
    """True when ``path`` is a file whose first line is a perf.csv header (any madengine version)."""
    try:
        with open(path, "rb") as fh:
            first = fh.read(1 << 16).split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    try:
        names = {name.strip() for name in next(csv.reader([first.rstrip("\r")]), [])}
    except csv.Error:  # not text at all (a NUL or a stray carriage return): not a perf.csv
        return False
    return names >= PERF_CSV_COLUMNS


def check_target(path: str | Path, *, flag: str, inputs: Iterable[str | Path] = ()) -> Path:
    """Check that a task may write ``path``: it is not one of ``inputs`` (the files the command reads, compared as
    files, so ``./perf.csv`` and an absolute path are the same), not an existing perf.csv and not an SQLite
    database (the results store).

    Raises:
        ConfigError: names the flag, the file and the fix.
    """
    target = Path(path)
    for source in inputs:
        if _same_file(target, Path(source)):
            raise ConfigError(f"{flag} {target}: that is an input of this command ({source}); nothing was written. "
                              "Give another file name")
    if target.is_file() and is_perf_csv(target):
        raise ConfigError(f"{flag} {target}: that file is a perf.csv (results); nothing was written. Give another "
                          "file name")
    if target.is_file() and is_sqlite(target):
        raise ConfigError(f"{flag} {target}: that file is a database (e.g. the results store); nothing was "
                          "written. Give another file name")
    return target


def is_sqlite(path: Path) -> bool:
    """Whether ``path`` starts with the SQLite database header (``SQLite format 3``)."""
    try:
        with path.open("rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def hub_inputs(hub: str | Path) -> list[Path]:
    """The hub files every command reads (models.json, data.json, credential.json): never an output."""
    return [Path(hub) / name for name in ("models.json", "data.json", "credential.json")]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def write_text_atomic(path: Path, text: str, *, what: str, flag: str = "--output",
                      inputs: Iterable[str | Path] = ()) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same directory and ``os.replace``, after
    :func:`check_target`.

    Raises:
        ConfigError: (exit code 4) ``path`` is an input or a perf.csv.
        MadEngineError: (exit code 1) the directory cannot be created or the file cannot be written.
    """
    check_target(path, flag=flag, inputs=inputs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, _new_file_mode(path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise MadEngineError(f"cannot write the {what} {path}: {e.strerror or e}; choose another {flag}") from None


def _new_file_mode(path: Path) -> int:
    """The mode for ``path``: the existing file's, else 0o666 less the process umask (as ``open()`` would)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask
