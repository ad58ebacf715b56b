"""Server-side SVG charts for the HTML report: a horizontal bar chart and a line chart, as inline ``<svg>`` text.

No JavaScript and no external resources: the page stays self-contained and renders without network. Every text is
XML-escaped; each bar is a ``<rect class="bar">`` and each point a ``<circle class="point">`` with a ``<title>``
tooltip. Colours come from :data:`PALETTE` (Tableau 10), indexed by series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

#: Series colours, in order (Tableau 10).
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")

WIDTH = 640


def color(index: int) -> str:
    """The colour of series ``index`` (cycling through :data:`PALETTE`)."""
    return PALETTE[index % len(PALETTE)]


def short_number(value: float) -> str:
    """``1234567`` → ``1.23M``, ``12345`` → ``12.3k``, small values with up to 3 significant digits."""
    magnitude = abs(value)
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    value = start
    while value < high + step * 0.5 and len(ticks) < count * 3:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Bar:
    """One bar: its label, value (``None`` draws no bar and writes ``note``), series index (colour), tooltip."""

    label: str
    value: float | None
    series: int = 0
    note: str = ""
    tooltip: str = ""


def bar_chart(bars: Sequence[Bar], *, title: str, unit: str = "") -> str:
    """A horizontal bar chart, one bar per entry from top to bottom, with value labels and a value axis.

    The axis starts at 0 (or at the smallest negative value). Returns ``<svg class="chart bar-chart" ...>`` text.
    """
    label_w, value_w, bar_h, gap, top, axis_h = 210, 70, 18, 6, 26, 22
    plot_w = WIDTH - label_w - value_w - 10
    values = [b.value for b in bars if b.value is not None]
    low = min([0.0, *values])
    high = max([0.0, *values]) or 1.0
    ticks = nice_ticks(low, high)
    lo, hi = ticks[0], ticks[-1]

    def x(value: float) -> float:
        return label_w + (value - lo) / (hi - lo) * plot_w

    height = top + len(bars) * (bar_h + gap) + axis_h
    out = [f'<svg class="chart bar-chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label={quoteattr(title)}>',
           f'<text class="chart-title" x="0" y="16">{escape(_truncate(title, 90))}</text>']
    axis_y = top + len(bars) * (bar_h + gap)
    for tick in ticks:
        tx = x(tick)
        out.append(f'<line class="grid" x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{axis_y}"/>')
        out.append(f'<text class="tick" x="{tx:.1f}" y="{axis_y + 14}" text-anchor="middle">'
                   f'{escape(short_number(tick))}</text>')
    for i, bar in enumerate(bars):
        y = top + i * (bar_h + gap)
        out.append(f'<text class="label" x="{label_w - 6}" y="{y + bar_h - 5}" text-anchor="end">'
                   f'<title>{escape(bar.label)}</title>{escape(_truncate(bar.label, 30))}</text>')
        tip = escape(bar.tooltip or f"{bar.label}: {'' if bar.value is None else f'{bar.value:g}'} {unit}".strip())
        if bar.value is None:
            out.append(f'<text class="note" x="{x(0) + 4:.1f}" y="{y + bar_h - 5}">{escape(bar.note or "no value")}'
                       f'<title>{tip}</title></text>')
            continue
        x0, x1 = sorted((x(0), x(bar.value)))
        out.append(f'<rect class="bar" x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{bar_h}" '
                   f'fill="{color(bar.series)}"><title>{tip}</title></rect>')
        out.append(f'<text class="value" x="{x1 + 4:.1f}" y="{y + bar_h - 5}">{escape(short_number(bar.value))}'
                   "</text>")
    out.append(f'<line class="axis" x1="{x(0):.1f}" y1="{top - 4}" x2="{x(0):.1f}" y2="{axis_y}"/>')
    out.append("</svg>")
    return "".join(out)


@dataclass
class Series:
    """One line: its name, colour index, and points ``(x position, value, tooltip)`` (x positions are indices)."""

    name: str
    index: int
    points: list[tuple[int, float, str]]


def line_chart(series: Sequence[Series], *, title: str, x_count: int, x_labels: Sequence[str] = (),
               unit: str = "") -> str:
    """A line chart of ``series`` over ``x_count`` positions (e.g. successive runs), with a legend.

    ``x_labels`` names the first and last positions on the x axis. Returns ``<svg class="chart line-chart" ...>``.
    """
    left, right, top, bottom, legend_h = 60, 16, 26, 34, 16 * min(len(series), 6)
    plot_h = 160
    height = top + plot_h + bottom + legend_h
    plot_w = WIDTH - left - right
    values = [v for s in series for _, v, _ in s.points]
    ticks = nice_ticks(min(values, default=0.0), max(values, default=1.0))
    lo, hi = ticks[0], ticks[-1]
    span = max(x_count - 1, 1)

    def px(i: int) -> float:
        return left + (i / span if x_count > 1 else 0.5) * plot_w

    def py(v: float) -> float:
        return top + plot_h - (v - lo) / (hi - lo) * plot_h

    out = [f'<svg class="chart line-chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label={quoteattr(title)}>',
           f'<text class="chart-title" x="0" y="16">{escape(_truncate(title, 90))}</text>']
    for tick in ticks:
        ty = py(tick)
        out.append(f'<line class="grid" x1="{left}" y1="{ty:.1f}" x2="{left + plot_w}" y2="{ty:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end">'
                   f'{escape(short_number(tick))}</text>')
    base = top + plot_h
    out.append(f'<line class="axis" x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}"/>')
    if x_labels:
        out.append(f'<text class="tick" x="{left}" y="{base + 16}">{escape(_truncate(x_labels[0], 40))}</text>')
        if len(x_labels) > 1:
            out.append(f'<text class="tick" x="{left + plot_w}" y="{base + 16}" text-anchor="end">'
                       f'{escape(_truncate(x_labels[-1], 40))}</text>')
    if unit:
        out.append(f'<text class="tick" x="{left + plot_w / 2:.1f}" y="{base + 30}" text-anchor="middle">'
                   f'{escape(unit)}</text>')
    for s in series:
        c = color(s.index)
        coords = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v, _ in s.points)
        if len(s.points) > 1:
            out.append(f'<polyline class="line" fill="none" stroke="{c}" stroke-width="2" points="{coords}"/>')
        for i, v, tip in s.points:
            out.append(f'<circle class="point" cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{c}">'
                       f"<title>{escape(tip)}</title></circle>")
    for n, s in enumerate(series[:6]):
        ly = top + plot_h + bottom + n * 16 + 10
        out.append(f'<rect class="legend" x="{left}" y="{ly - 9}" width="10" height="10" fill="{color(s.index)}"/>'
                   f'<text class="label" x="{left + 16}" y="{ly}">{escape(_truncate(s.name, 80))}</text>')
    out.append("</svg>")
    return "".join(out)


#: Point colours of a history chart by verdict (against the run before).
VERDICT_COLORS = {"regression": "#e15759", "improvement": "#59a14f", "noise": "#4e79a7", "insufficient data": "#bab0ac"}


@dataclass
class HistoryPoint:
    """One run in a history chart: x-axis label, median, noise band (``low``..``high``, ``None``: unknown), the
    verdict against the run before (``""``: none) and a tooltip."""

    label: str
    median: float
    low: float | None
    high: float | None
    verdict: str
    tooltip: str


def history_chart(points: Sequence[HistoryPoint], *, title: str, unit: str = "") -> str:
    """A benchmark's trend: the medians as a line, the noise band as a shaded area, each run a point coloured by
    its verdict (:data:`VERDICT_COLORS`; regressions drawn larger). Returns ``<svg class="chart history-chart">``."""
    left, right, top, bottom, plot_h = 60, 16, 26, 50, 180
    plot_w, height = WIDTH - left - right, top + plot_h + bottom
    values = [v for p in points for v in (p.median, p.low, p.high) if v is not None]
    ticks = nice_ticks(min(values, default=0.0), max(values, default=1.0))
    lo, hi = ticks[0], ticks[-1]
    span = max(len(points) - 1, 1)

    def px(i: int) -> float:
        return left + (i / span if len(points) > 1 else 0.5) * plot_w

    def py(v: float) -> float:
        return top + plot_h - (v - lo) / ((hi - lo) or 1.0) * plot_h

    out = [f'<svg class="chart history-chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label={quoteattr(title)}>',
           f'<text class="chart-title" x="0" y="16">{escape(_truncate(title, 90))}</text>']
    for tick in ticks:
        out.append(f'<line class="grid" x1="{left}" y1="{py(tick):.1f}" x2="{left + plot_w}" y2="{py(tick):.1f}"/>'
                   f'<text class="tick" x="{left - 6}" y="{py(tick) + 4:.1f}" text-anchor="end">'
                   f'{escape(short_number(tick))}</text>')
    banded = [(i, p) for i, p in enumerate(points) if p.low is not None and p.high is not None]
    if len(banded) > 1:
        upper = " ".join(f"{px(i):.1f},{py(p.high):.1f}" for i, p in banded)  # type: ignore[arg-type]
        lower = " ".join(f"{px(i):.1f},{py(p.low):.1f}" for i, p in reversed(banded))  # type: ignore[arg-type]
        out.append(f'<polygon class="band" points="{upper} {lower}" fill="#4e79a7" fill-opacity="0.15"/>')
    if len(points) > 1:
        coords = " ".join(f"{px(i):.1f},{py(p.median):.1f}" for i, p in enumerate(points))
        out.append(f'<polyline class="line" fill="none" stroke="#4e79a7" stroke-width="2" points="{coords}"/>')
    for i, p in enumerate(points):
        fill = VERDICT_COLORS.get(p.verdict, "#4e79a7")
        radius = 6 if p.verdict == "regression" else 4
        out.append(f'<circle class="point verdict-{escape(p.verdict.replace(" ", "-") or "none")}" '
                   f'cx="{px(i):.1f}" cy="{py(p.median):.1f}" r="{radius}" fill="{fill}">'
                   f"<title>{escape(p.tooltip)}</title></circle>")
    base = top + plot_h
    out.append(f'<line class="axis" x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}"/>')
    if points:
        out.append(f'<text class="tick" x="{left}" y="{base + 16}">{escape(_truncate(points[0].label, 40))}</text>'
                   f'<text class="tick" x="{left + plot_w}" y="{base + 16}" text-anchor="end">'
                   f'{escape(_truncate(points[-1].label, 40))}</text>')
    legend = " · ".join(f"{k}" for k in VERDICT_COLORS)
    out.append(f'<text class="tick" x="{left + plot_w / 2:.1f}" y="{base + 34}" text-anchor="middle">'
               f'{escape((unit + " · ") if unit else "")}shaded: noise band · points: {escape(legend)}</text>')
    out.append("</svg>")
    return "".join(out)
