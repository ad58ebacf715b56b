"""Plain-text tables: aligned columns (the look of tabulate's ``simple`` format) and Markdown pipe tables.

tabulate needs about 12 s for 100,000 rows; these two functions do the same layout in a fraction of a second, which
is what keeps ``inv report`` usable on large perf.csv files. Small tables elsewhere still use tabulate.
"""

from __future__ import annotations

from collections.abc import Sequence


def aligned(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] = ()) -> str:
    """``rows`` under ``headers`` in columns two spaces apart, with a dashed rule under the header.

    Args:
        right: per column, ``True`` to right-align (numbers); missing entries mean left-aligned.

    Returns:
        The table without a trailing newline; trailing spaces are stripped from every line.
    """
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    flags = [i < len(right) and right[i] for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) if r else cell.ljust(w)
                         for cell, w, r in zip(cells, widths, flags, strict=True)).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def pipe_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] = ()) -> str:
    """A GitHub-flavoured Markdown table; ``|`` in cells is escaped and newlines become spaces."""
    flags = [i < len(right) and right[i] for i in range(len(headers))]

    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or " "

    out = ["| " + " | ".join(cell(h) for h in headers) + " |",
           "|" + "|".join("---:" if r else ":---" for r in flags) + "|"]
    out.extend("| " + " | ".join(cell(c) for c in row) + " |" for row in rows)
    return "\n".join(out)
