"""Terminal output: progress and warnings go to stderr (rich), results (tables, JSON) to stdout, so that
``inv discover --json | jq`` and friends stay clean. ``NO_COLOR`` and non-TTY streams disable styling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from rich.console import Console


@lru_cache(maxsize=1)
def err() -> Console:
    """The stderr console for progress lines."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


@lru_cache(maxsize=1)
def out() -> Console:
    """The stdout console for results."""
    return Console(highlight=False, soft_wrap=True)


def progress(message: str) -> None:
    """One progress line on stderr, prefixed ``madengine:``; markup in ``message`` is not interpreted."""
    err().print(f"[bold cyan]madengine:[/] {escape(message)}")


def warn(message: str) -> None:
    """One warning line on stderr."""
    err().print(f"[bold yellow]madengine: warning:[/] {escape(message)}")


def escape(text: str) -> str:
    """Escape rich markup in user-controlled text (model names, paths)."""
    from rich.markup import escape as _escape

    return _escape(text)


def rows(found: Iterable[Any], mask: Callable[[str], str] = str) -> None:
    """One progress line per perf row: ``model [machine]: STATUS performance metric (reason)`` (the reason for rows
    that did not succeed, passed through ``mask``)."""
    for row in found:
        note = f" ({mask(row.reason)})" if row.reason and row.status != "SUCCESS" else ""
        where = f" [{row.machine_name}]" if getattr(row, "deployment_type", "local") != "local" and row.machine_name \
            else ""
        spread = ""
        if getattr(row, "samples", None) and len(row.samples) > 1:
            spread = f" (median of {len(row.samples)}: {min(row.samples):g}..{max(row.samples):g})"
        progress(f"{row.model}{where}: {row.status} {row.performance} {row.metric}{spread}{note}".rstrip())
