"""``inv report.check``: the regression gate, results against a references YAML file.

The references file (``--references F``)::

    defaults:                 # optional: tolerances for entries that do not give their own
      lower: 0.05             # the value may fall 5 % below expected (a fraction; null = unbounded)
      upper: null             # ... and rise without limit
    models:
      pyt_huggingface_bert:   # one reference for every GPU architecture and deployment
        expected: 1250.0      # in the unit of `metric`
        metric: samples_per_second   # optional (`unit` is accepted too); when set, rows must report it
        lower: 0.10
      pyt_resnet50:           # or a list: one entry per gpu_architecture and/or deployment_type
        - {gpu_architecture: gfx942, expected: 2400, lower: 0.05, upper: 0.20}
        - {gpu_architecture: gfx90a, deployment_type: slurm, expected: 1500}

Tolerances default to ``defaults``, else ``lower: 0.05`` and ``upper: null``. The allowed range is
``[expected * (1 - lower), expected * (1 + upper)]`` (``expected`` itself may be any sign; ``abs(expected)`` scales
the tolerance). For a latency, give ``lower: null`` and an ``upper`` bound.

Each result row is checked against the most specific reference of its model whose ``gpu_architecture`` and
``deployment_type`` (when given) match. Rows are grouped by model, docker_file, gpu_architecture and
deployment_type, and only the LAST row of each group (the newest run; inputs in the order given, rows in file order)
is checked. Outcomes: ``ok``; ``out of bounds`` (outside the range); ``failed`` (the row is not SUCCESS, has no
number, or reports another metric); ``missing`` (no row matches a reference). Models without a reference are not
checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from madengine.errors import ConfigError, RunError
from madengine.report.load import ReportRow, Source
from madengine.report.text import aligned

#: Tolerances used when neither the entry nor ``defaults`` gives one.
DEFAULT_LOWER = 0.05
DEFAULT_UPPER: float | None = None

class Reference(BaseModel):
    """One expected value: ``expected`` in the unit ``metric`` (``None``: any metric), tolerances ``lower``/``upper``
    as fractions of ``abs(expected)`` (``None``: unbounded), and the optional ``gpu_architecture``/
    ``deployment_type`` it applies to (``None``: any)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    expected: float
    metric: str | None = Field(default=None, alias="unit")
    lower: float | None = None
    upper: float | None = None
    gpu_architecture: str | None = None
    deployment_type: str | None = None
    model: str = ""

    @field_validator("lower", "upper")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        if value is not None and value < 0:
            raise ValueError("a tolerance is a fraction >= 0 (0.05 = 5 %), or null for unbounded")
        return value

    def specificity(self) -> int:
        """How many filters the reference sets (the most specific matching reference wins)."""
        return (self.gpu_architecture is not None) * 2 + (self.deployment_type is not None)

    def matches(self, row: ReportRow) -> bool:
        """Whether the row's model, GPU architecture and deployment type fit this reference."""
        return (row.model == self.model
                and (self.gpu_architecture is None or row.gpu_architecture == self.gpu_architecture)
                and (self.deployment_type is None or row.deployment_type == self.deployment_type))

    def bounds(self) -> tuple[float | None, float | None]:
        """The allowed ``(low, high)`` values; ``None`` for an unbounded side."""
        scale = abs(self.expected)
        low = None if self.lower is None else self.expected - scale * self.lower
        high = None if self.upper is None else self.expected + scale * self.upper
        return low, high

    def describe(self) -> str:
        """``model (gfx942, slurm)`` style name."""
        filters = [f for f in (self.gpu_architecture, self.deployment_type) if f]
        return f"{self.model} ({', '.join(filters)})" if filters else self.model


class _Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lower: float | None = DEFAULT_LOWER
    upper: float | None = DEFAULT_UPPER


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: _Defaults = Field(default_factory=_Defaults)
    models: dict[str, Reference | list[Reference]]


def load_references(path: str | Path) -> list[Reference]:
    """The references of a YAML file (schema in the module docstring), with tolerances resolved.

    Raises:
        ConfigError: (exit code 4) the file is missing, not YAML (``file:line:column``), or an entry is invalid
            (``file: models.bert.expected: ...``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--references {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--references {path}: cannot read it ({e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).split("\n")[0]
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict) or "models" not in data:
        raise ConfigError(f"{path}: a references file is a mapping with a 'models:' section "
                          "(models: {<model>: {expected: <number>, lower: 0.05}})")
    try:
        parsed = _File.model_validate(data)
    except ValidationError as e:
        error = max(e.errors(), key=lambda err: len(err["loc"]))  # the deepest error of a union names the field
        loc = ".".join(str(p) for p in error["loc"] if p not in ("Reference", "list[Reference]"))
        raise ConfigError(f"{path}: {loc}: {error['msg']}; see the references format in README 'Reporting'") \
            from None
    references = []
    for model, entries in parsed.models.items():
        for ref in entries if isinstance(entries, list) else [entries]:
            ref.model = model
            given = ref.model_fields_set
            if "lower" not in given:
                ref.lower = parsed.defaults.lower
            if "upper" not in given:
                ref.upper = parsed.defaults.upper
            references.append(ref)
    return references


@dataclass
class Outcome:
    """One check: the reference, the row checked (``None``: missing), the outcome (``ok``, ``out of bounds``,
    ``failed``, ``missing``) and a one-line detail."""

    reference: Reference
    row: ReportRow | None
    outcome: str
    detail: str

    @property
    def passed(self) -> bool:
        """Only ``ok`` passes."""
        return self.outcome == "ok"


def check(sources: Sequence[Source], references: Sequence[Reference]) -> list[Outcome]:
    """Check the newest row of each model/config against its reference (see the module docstring).

    Returns:
        One :class:`Outcome` per checked row group, then one per reference no row matched (``missing``).
    """
    by_model: dict[str, list[Reference]] = {}
    for ref in references:
        by_model.setdefault(ref.model, []).append(ref)
    for refs in by_model.values():
        refs.sort(key=lambda r: -r.specificity())
    latest: dict[tuple[int, str, str, str], tuple[Reference, ReportRow]] = {}
    for source in sources:
        for row in source.rows:
            match = next((r for r in by_model.get(row.model, ()) if r.matches(row)), None)
            if match is not None:
                latest[(id(match), row.docker_file, row.gpu_architecture, row.deployment_type)] = (match, row)
    outcomes = [_judge(ref, row) for ref, row in latest.values()]
    used = {id(ref) for ref, _ in latest.values()}
    outcomes += [Outcome(ref, None, "missing", "no result row for this reference")
                 for ref in references if id(ref) not in used]
    return outcomes


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _judge(ref: Reference, row: ReportRow) -> Outcome:
    if row.status != "SUCCESS":
        return Outcome(ref, row, "failed", f"status {row.status or '(blank)'}" + (f": {row.reason}" if row.reason
                                                                                   else ""))
    if row.performance is None:
        return Outcome(ref, row, "failed", f"no performance number ({row.performance_text!r})")
    if ref.metric and row.metric != ref.metric:
        return Outcome(ref, row, "failed", f"metric {row.metric!r}, the reference expects {ref.metric!r}")
    low, high = ref.bounds()
    value = row.performance
    change = (value - ref.expected) / abs(ref.expected) * 100 if ref.expected else 0.0
    unit = f" {row.metric}" if row.metric else ""
    if low is not None and value < low:
        return Outcome(ref, row, "out of bounds", f"{_fmt(value)}{unit} < {_fmt(low)} (expected {_fmt(ref.expected)}, "
                                                  f"{change:+.1f}%, lower tolerance {ref.lower:g})")
    if high is not None and value > high:
        return Outcome(ref, row, "out of bounds", f"{_fmt(value)}{unit} > {_fmt(high)} (expected {_fmt(ref.expected)}, "
                                                  f"{change:+.1f}%, upper tolerance {ref.upper:g})")
    return Outcome(ref, row, "ok", f"{_fmt(value)}{unit} ({change:+.1f}% of expected {_fmt(ref.expected)})")


def render_check(outcomes: Sequence[Outcome]) -> str:
    """The outcomes as a table (reference, config, expected, range, actual, outcome, detail) plus a counts line."""
    headers = ["reference", "docker_file", "gpu arch", "deployment", "expected", "range", "actual", "outcome",
               "detail"]
    rows = []
    for o in outcomes:
        low, high = o.reference.bounds()
        row = o.row
        rows.append([o.reference.describe(), row.docker_file if row else "", row.gpu_architecture if row else "",
                     row.deployment_type if row else "", _fmt(o.reference.expected), f"[{_fmt(low)}, {_fmt(high)}]",
                     row.performance_text if row else "", o.outcome.upper() if not o.passed else o.outcome,
                     o.detail])
    bad = sum(1 for o in outcomes if not o.passed)
    return "\n".join([aligned(headers, rows, [False, False, False, False, True, False, True]), "",
                      f"{len(outcomes)} check(s): {len(outcomes) - bad} ok, {bad} not ok"])


def raise_for_outcomes(outcomes: Sequence[Outcome], *, allow_missing: bool = False) -> None:
    """Raise :class:`RunError` (exit code 3) listing each outcome that is not ``ok`` (``missing`` is accepted
    with ``allow_missing``)."""
    bad = [o for o in outcomes if not o.passed and not (allow_missing and o.outcome == "missing")]
    if not bad:
        return
    detail = "; ".join(f"{o.reference.describe()}: {o.outcome}: {o.detail}" for o in bad[:10])
    more = f" (+{len(bad) - 10} more above)" if len(bad) > 10 else ""
    raise RunError(f"report.check: {len(bad)} of {len(outcomes)} check(s) failed: {detail}{more}")
