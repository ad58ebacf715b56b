"""Crash-safe, locked appends to a shared file (used for perf.csv; see :mod:`madengine.results.perf_csv`).

Why more than one ``write``: Linux ends a buffered ``write(2)`` early at a page/folio boundary when SIGKILL arrives
(``generic_perform_write`` checks ``fatal_signal_pending``), so even a single ``os.write`` can leave half a row
behind a killed writer. Each append therefore saves its bytes first in a journal, ``<file>.pending`` (header line
``madengine-perf-journal 1 <offset> <length> <sha256>``, then the bytes), writes them to the file in one
``os.write``, and deletes the journal. Whoever takes the lock next and finds a journal completes the append if the
file holds a prefix of it (roll forward: no written byte is removed), and drops it otherwise. Scope: process death;
power loss is not covered (no fsync).

Locking: ``fcntl.flock`` on the file itself, exclusive for writers, shared for readers. It needs no extra
dependency or lock file, the kernel releases it when the holder dies (no stale locks), and it is what the
``filelock`` library would do on a separate file anyway.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from madengine.errors import PerfCsvError

_JOURNAL_MAGIC = b"madengine-perf-journal 1"


@contextmanager
def open_locked(path: Path, *, write: bool) -> Iterator[int]:
    """Open ``path`` and hold ``flock`` on it: exclusive (creating it and its directories) to write, shared to read.

    Yields the file descriptor (``O_APPEND`` when writing); the lock is released and the descriptor closed on exit.
    If the file was deleted or replaced while we waited for the lock, the new file is opened instead.

    Raises:
        PerfCsvError: the file is missing (reading), is not a regular file, or cannot be opened or created.
    """
    for _ in range(10):
        try:
            if write:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            else:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise PerfCsvError(f"{path}: no such perf.csv") from None
        except OSError as e:
            raise PerfCsvError(f"{path}: cannot open perf.csv ({e.strerror or e})") from None
        try:
            held = os.fstat(fd)
            if not stat.S_ISREG(held.st_mode):
                raise PerfCsvError(f"{path}: not a regular file; give --output a file path")
            fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue  # deleted while we waited: open the new one
            if (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev):
                yield fd
                return
        finally:
            os.close(fd)
    raise PerfCsvError(f"{path}: the file keeps being replaced while waiting for its lock")


def journal_path(path: Path) -> Path:
    """Where the journal of appends to ``path`` lives: ``<path>.pending``, next to it."""
    return path.with_name(path.name + ".pending")


def _write_all(fd: int, data: bytes) -> None:
    """One ``os.write`` of everything; loops only if the kernel writes less (signal, near-full disk)."""
    written = os.write(fd, data)
    while written < len(data):
        written += os.write(fd, memoryview(data)[written:])


def journaled_append(fd: int, path: Path, offset: int, data: bytes) -> None:
    """Append ``data`` to ``path`` (open as ``fd``, ``offset`` its current size) via the journal, in one write.

    The caller holds the exclusive lock from :func:`open_locked`. If the journal cannot be created (e.g. the
    directory is read-only but the file writable), the append goes ahead without it (one ``os.write``, the
    pre-journal guarantee). If writing the file fails (disk full), the bytes added are cut off again, leaving the
    file exactly as it was.

    Raises:
        PerfCsvError: the file could not be written (it is left as it was).
    """
    journal = journal_path(path)
    head = b"%s %d %d %s\n" % (_JOURNAL_MAGIC, offset, len(data), hashlib.sha256(data).hexdigest().encode())
    try:
        jfd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(jfd, head + data)
        finally:
            os.close(jfd)
    except OSError:
        _unlink(journal)
    try:
        _write_all(fd, data)
    except OSError as e:
        try:
            os.ftruncate(fd, offset)
        finally:
            _unlink(journal)
        raise PerfCsvError(f"{path}: appending failed ({e.strerror or e}); the file was left as it was") from None
    _unlink(journal)


def _unlink(path: Path) -> None:
    with suppress(OSError):  # a journal left behind is checked against the file before any use
        path.unlink(missing_ok=True)


def recover(fd: int, path: Path) -> None:
    """Complete an append whose writer died, if ``<path>.pending`` exists; drop a journal that does not fit.

    The caller holds the exclusive lock. The journal is used only if it is whole (length and SHA-256 match) and
    the file holds exactly a prefix of its bytes at its offset; the missing rest is appended.

    Raises:
        PerfCsvError: the missing bytes could not be written (the journal is kept for the next try).
    """
    journal = journal_path(path)
    try:
        blob = journal.read_bytes()
    except OSError:
        return
    head, _, data = blob.partition(b"\n")
    fields = head.split(b" ")
    if len(fields) == 5 and b" ".join(fields[:2]) == _JOURNAL_MAGIC and fields[2].isdigit() and fields[3].isdigit():
        offset, length = int(fields[2]), int(fields[3])
        if len(data) == length and hashlib.sha256(data).hexdigest().encode() == fields[4]:
            done = os.fstat(fd).st_size - offset
            if 0 <= done < length and os.pread(fd, done, offset) == data[:done]:
                try:
                    _write_all(fd, data[done:])
                except OSError as e:
                    raise PerfCsvError(f"{path}: cannot complete an interrupted append ({e.strerror or e})") from None
    _unlink(journal)
