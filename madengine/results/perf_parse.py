"""Reading what a model run reports: its ``performance:`` line, error markers in its log, its multiple_results CSV.

The contract comes from MAD and madengine v2: a model's ``run.sh`` prints ``performance: <value> <metric>`` (e.g.
``MAD:scripts/huggingface_bert/run.sh``), or writes a CSV named by the models.json ``multiple_results`` field with
columns ``model,performance,metric``; madengine v2 also fails a run whose log shows an error marker
(``execution/container_runner_helpers.py``: literal substrings, scanned line by line, benign lines excluded).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from madengine.errors import ConfigError

# A number as scripts print it (123, -1.5, .5, 1e5, 2E-4), then an optional rate suffix ("/s") and comma, then the
# metric; or the end of the line (no metric). The number must end at whitespace, "/", "," or end of line, so
# "123abc" or "1,234 x" do not yield a truncated value.
_PERF_RE = re.compile(
    r"performance:[ \t]*"
    r"(?P<value>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"(?:[ \t]*/[ \t]*[A-Za-z]+)?"
    r"(?:[ \t]*,)?"
    r"(?:[ \t]+(?P<metric>[^\s,]+)|[ \t]*$)"
)

_TRACEBACK = "Traceback (most recent call last)"

#: Error markers (literal, case-sensitive substrings; a ``re:`` prefix makes one a regular expression). Based on
#: madengine v2's ``DEFAULT_LOG_ERROR_PATTERNS`` minus its over-broad ``FAILED``, ``Exception:`` and ``SystemExit``
#: (test summaries and retry messages print them; real crashes also print a traceback), plus crashes v2 misses:
#: segfaults, ROCm GPU faults and bash's report of a SIGKILLed child (the OOM killer's victim).
DEFAULT_ERROR_PATTERNS: tuple[str, ...] = (
    _TRACEBACK,
    "RuntimeError:",
    "AssertionError:",
    "ValueError:",
    "ImportError:",
    "ModuleNotFoundError:",
    "OutOfMemoryError",
    "HIP out of memory",
    "CUDA out of memory",
    "failed (exitcode:",
    "ChildFailedError",  # torchrun: a child process failed (madengine v2 fails the row, whatever was printed)
    "Segmentation fault",
    "core dumped",
    "Memory access fault by GPU",
    "HSA_STATUS_ERROR",
    r"re:line \d+:\s+\d+ Killed\b",
)

#: Lines containing any of these literal substrings are never error markers: lines that merely *mention* the
#: patterns (a shell ``grep -q 'RuntimeError:'`` check, madengine v2's own "Found error pattern" message, a printed
#: context holding the pattern lists) rather than report an error.
DEFAULT_BENIGN_PATTERNS: tuple[str, ...] = (
    "grep -",
    "Found error pattern",
    "log_error_patterns",
    "log_error_benign_patterns",
)

#: Longest error-marker line returned (characters, "..." included).
MAX_MARKER_CHARS = 200

REQUIRED_RESULT_COLUMNS = ("model", "performance", "metric")


def parse_performance(log_text: str) -> tuple[str, str] | None:
    """The ``(value, metric)`` of the first ``performance: <value> <metric>`` line of a run log, or None.

    Accepted forms (madengine v2's ``PERFORMANCE_LOG_PATTERN`` plus v1's optional metric): ``performance: 123.4
    samples_per_second``; signs, ``.5`` and exponents (``1.5e+03``, ``2E-4``); a rate suffix and/or comma after the
    value (``performance: 14164/s, samples_per_second``, ``performance: 42, tokens_per_sec``); any text before
    ``performance:`` on the line (``[rank0] performance: 3 ms``). A value with no metric gives metric ``""``.

    Which line wins: the **first** matching line, as madengine v2 (``deployment/base.py``) does, so a script
    validated against madengine reports the same value here. Lines whose value is not a number (``performance:
    N/A``) are ignored, and so are values glued to other text (``123abc``, ``1,234``).

    Returns:
        ``(value, metric)``: ``value`` is the number's text exactly as printed, without what follows it (e.g.
        ``"14164"``, ``"+1.5e+03"``); the unit is whatever the metric says. None when no line matches.
    """
    for line in log_text.splitlines():
        match = _PERF_RE.search(line)
        if match:
            return match["value"], match["metric"] or ""
    return None


def _line_matches(line: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("re:"):
            if re.search(pattern[3:], line):
                return True
        elif pattern in line:
            return True
    return False


def _check_patterns(patterns: Iterable[str], key: str) -> tuple[str, ...]:
    checked = tuple(patterns)
    for pattern in checked:
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{key}: {pattern!r} is not a non-empty string; give a list of strings")
        if pattern.startswith("re:"):
            try:
                re.compile(pattern[3:])
            except re.error as e:
                raise ConfigError(f"{key}: {pattern!r} is not a valid regular expression ({e})") from None
    return checked


def find_error_marker(
    log_text: str,
    patterns: Iterable[str] = DEFAULT_ERROR_PATTERNS,
    benign: Iterable[str] = DEFAULT_BENIGN_PATTERNS,
) -> str | None:
    """The first log line that shows the run failed (traceback, OOM, crash), or None.

    Lines are scanned in log order; a line is an error marker when it contains one of ``patterns`` and none of
    ``benign``. Patterns are literal, case-sensitive substrings as in madengine v2 (so the context keys
    ``log_error_patterns`` / ``log_error_benign_patterns`` keep their v2 meaning); one starting with ``re:`` is a
    Python regular expression searched in the line. Passing ``patterns`` or ``benign`` *replaces* the default
    list; :func:`error_patterns_from_context` builds both from a context the way madengine v2 does.

    Returns:
        The offending line, stripped and cut to :data:`MAX_MARKER_CHARS` characters (ending in ``...`` when cut).
        For a Python traceback that is the exception line ending it (``RuntimeError: NCCL error``), which says
        more than ``Traceback (most recent call last):``; the latter when the traceback is cut off.

    Raises:
        ConfigError: a pattern is empty, not a string, or an invalid ``re:`` expression.
    """
    error_patterns = _check_patterns(patterns, "log_error_patterns")
    benign_patterns = _check_patterns(benign, "log_error_benign_patterns")
    lines = log_text.splitlines()
    for index, line in enumerate(lines):
        if _line_matches(line, error_patterns) and not _line_matches(line, benign_patterns):
            text = _exception_line(lines, index) or line.strip()
            return text if len(text) <= MAX_MARKER_CHARS else text[: MAX_MARKER_CHARS - 3] + "..."
    return None


def _exception_line(lines: list[str], index: int) -> str | None:
    """For a ``Traceback (most recent call last)`` line, the exception line that ends that traceback, if any.

    The frames are indented after any per-line prefix (``[rank0]: ``); the first non-blank, non-indented line
    with the same prefix is the exception (``RuntimeError: ...``). Looks at most 500 lines ahead.
    """
    start = lines[index].find(_TRACEBACK)
    if start < 0:
        return None
    prefix = lines[index][:start]
    for line in lines[index + 1: index + 501]:
        rest = line[len(prefix):] if line.startswith(prefix) else ""
        if rest.strip() and rest[0] not in " \t":
            return line.strip()
    return None


def error_patterns_from_context(context: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ``(patterns, benign)`` arguments of :func:`find_error_marker` for a run context, as madengine v2.

    ``log_error_pattern_scan: false`` disables the scan (``patterns`` is empty); a non-empty
    ``log_error_patterns`` list replaces :data:`DEFAULT_ERROR_PATTERNS`; ``log_error_benign_patterns`` is added
    to :data:`DEFAULT_BENIGN_PATTERNS`.

    Raises:
        ConfigError: a key holds something other than a list of non-empty strings (or a bool for the switch).
    """
    scan = context.get("log_error_pattern_scan", True)
    if not isinstance(scan, bool):
        raise ConfigError(f"log_error_pattern_scan: expected true or false, got {scan!r}")
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("log_error_patterns", "log_error_benign_patterns"):
        value = context.get(key)
        if value is not None and not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of strings, got {type(value).__name__}")
        lists[key] = _check_patterns(value or (), key)
    patterns = lists["log_error_patterns"] or DEFAULT_ERROR_PATTERNS
    return (patterns if scan else ()), DEFAULT_BENIGN_PATTERNS + lists["log_error_benign_patterns"]


@dataclass(frozen=True)
class MultiResult:
    """One row of a model's ``multiple_results`` CSV.

    It becomes the perf.csv row ``<model name>_<model>`` (:meth:`row_name`, madengine v1/v2). ``performance`` is
    the number's text, or ``""`` with ``status`` FAILURE when the cell is blank or not a finite number
    (``reason`` says which). ``extra`` keeps the other columns in file order (perf.csv has no place for them).
    ``line`` is the 1-based line of the row in the file.
    """

    model: str
    performance: str
    metric: str
    status: Literal["SUCCESS", "FAILURE"]
    reason: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    line: int = 0

    def row_name(self, model_name: str) -> str:
        """The perf.csv ``model`` value of this result: ``f"{model_name}_{self.model}"``."""
        return f"{model_name}_{self.model}"


def _result_from_cells(cells: dict[str, str], line: int) -> MultiResult:
    performance, reason = cells["performance"], ""
    if not performance:
        reason = "performance is blank"
    else:
        try:
            finite = math.isfinite(float(performance))
        except ValueError:
            finite = False
        if not finite:
            performance, reason = "", f"performance {performance!r} is not a finite number"
    extra = {k: v for k, v in cells.items() if k not in REQUIRED_RESULT_COLUMNS}
    return MultiResult(model=cells["model"], performance=performance, metric=cells["metric"],
                       status="FAILURE" if reason else "SUCCESS", reason=reason, extra=extra, line=line)


def parse_multiple_results(path: str | Path) -> list[MultiResult]:
    """Read a model's ``multiple_results`` CSV (format of madengine v1/v2 ``update_perf_csv``).

    The header must name ``model``, ``performance`` and ``metric`` (in any order; spaces around names are
    ignored, a UTF-8 BOM too); other columns are kept in :attr:`MultiResult.extra`. Cells are stripped. Blank
    lines (and rows of empty cells) are skipped; a row shorter than the header is padded with blank cells.

    Raises:
        ConfigError: the file is missing or unreadable, has no header, lacks a required column (the message
            names it and the file), repeats a column, has a row longer than the header or with a blank ``model``,
            or is not valid CSV/UTF-8 (the message gives the line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"multiple_results file {str(path)!r} was not found: the model's script must write it "
                          "(columns model,performance,metric)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"multiple_results file {str(path)!r} cannot be read: {e}") from None
    reader = csv.reader(io.StringIO(text), strict=True)
    header: list[str] | None = None
    results: list[MultiResult] = []
    try:
        for cells in reader:
            line = reader.line_num
            cells = [c.strip() for c in cells]
            if not any(cells):
                continue
            if header is None:
                header = _check_result_header(cells, path)
                continue
            if len(cells) > len(header):
                raise ConfigError(f"{path}:{line}: {len(cells)} cells but the header names {len(header)} columns")
            row = dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True))
            if not row["model"]:
                raise ConfigError(f"{path}:{line}: the 'model' cell is blank; every result row needs a name")
            results.append(_result_from_cells(row, line))
    except csv.Error as e:
        raise ConfigError(f"{path}:{reader.line_num}: not valid CSV ({e})") from None
    if header is None:
        raise ConfigError(f"multiple_results file {str(path)!r} is empty: expected a header 'model,performance,metric'")
    return results


def _check_result_header(names: list[str], path: Path) -> list[str]:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{path}: column {duplicates[0]!r} appears more than once in the header")
    for column in REQUIRED_RESULT_COLUMNS:
        if column not in names:
            hint = " (found 'models', the MAD README's spelling: rename it to 'model')" if (
                column == "model" and "models" in names) else ""
            raise ConfigError(f"{path}: required column {column!r} is missing from the header {','.join(names)!r}"
                              f"{hint}; the header needs model,performance,metric")
    return names
