"""The run summary JSON: one file per run with every row's status, reason, performance, samples, durations and log
path.

perf.csv has no column for why a row failed (adding one would break madengine v2's readers), so a run writes this
file next to it (``--summary-output F``); ``inv report`` reads it alongside perf.csv files. The schema is
:class:`RunSummary` (``"schema": "madengine-run-summary/1"``); fields may be added in later versions, and readers
ignore fields they do not know. An entry's ``samples`` are the values of the measured runs of a ``--repeat N`` run
in run order (its ``performance`` is their median; ``[]`` for a single run), with ``min``, ``max`` and the 95 %
bootstrap confidence interval of the median (``ci_low``, ``ci_high``) when there are two or more. Example::

    {"schema": "madengine-run-summary/1", "created": "2025-01-31T12:00:00+00:00",
     "output": "perf.csv", "manifest": "build_manifest.json", "deployment": {"target": "local"},
     "logs": ["dummy_ci-dummy_dummy.ubuntu.amd.run.live.log"],
     "counts": {"total": 1, "SUCCESS": 0, "FAILURE": 1, "SKIPPED": 0},
     "models": [{"model": "dummy", "status": "FAILURE", "reason": "timed out after 60 s", "performance": null,
                 "metric": "", "n_gpus": "1", "nnodes": "1", "gpus_per_node": "1", "launcher": "",
                 "deployment_type": "local", "gpu_architecture": "gfx942", "docker_file": "docker/dummy.Dockerfile",
                 "docker_image": "ci-dummy_dummy", "machine_name": "node1", "build_duration": 12.5,
                 "test_duration": 60.1, "samples": [], "log": "dummy_ci-dummy_dummy.ubuntu.amd.run.live.log"}]}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from madengine.results.perf_csv import PerfRow
from madengine.results.record import ResultRecord
from madengine.safe_write import write_text_atomic

#: The ``schema`` value of the files :func:`write_summary` writes.
SUMMARY_SCHEMA = "madengine-run-summary/1"

@dataclass(slots=True)
class SummaryEntry(ResultRecord):
    """One entry of ``models``: the result record (:mod:`madengine.results.record`, the one declaration of a
    result's fields that reports read too) plus, for a ``--repeat N`` row with at least 2 samples, their ``min``,
    ``max`` and the 95 % percentile-bootstrap confidence interval of their median (``ci_low``, ``ci_high``;
    :func:`madengine.results.stats.summarize`), in the metric's unit; ``None`` otherwise."""

    min: float | None = None
    max: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @classmethod
    def of_row(cls, row: PerfRow, log: str = "") -> SummaryEntry:
        """The entry of one perf row (statistics computed from its ``samples``)."""
        entry = cls.from_cells(dict(row), log=log)
        if len(entry.samples) >= 2:
            from madengine.results.stats import summarize

            stats = summarize(entry.samples)
            entry.min, entry.max, entry.ci_low, entry.ci_high = stats.min, stats.max, stats.ci_low, stats.ci_high
        return entry


class RunSummary(BaseModel):
    """The run summary file (see the module docstring for an example).

    ``output`` is the perf.csv the rows were appended to, ``manifest`` the build manifest used (``None``: none),
    ``deployment`` the target and its settings as a JSON object, ``logs`` every log file of the run, ``counts`` the
    number of rows per status plus ``total``. Paths are written as given (relative paths are relative to the
    directory the run started in).
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    schema_: str = Field(default=SUMMARY_SCHEMA, alias="schema")
    created: str = ""
    output: str = ""
    manifest: str | None = None
    deployment: dict[str, Any] = Field(default_factory=dict)
    logs: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    models: list[SummaryEntry] = Field(default_factory=list)


def build_summary(rows: Iterable[PerfRow], *, manifest_path: str | Path | None = None,
                  deployment: Mapping[str, Any] | str | None = None,
                  logs: Mapping[str, str | Path] | Iterable[str | Path] = (),
                  output: str | Path = "perf.csv") -> RunSummary:
    """The :class:`RunSummary` of ``rows`` (same arguments as :func:`write_summary`), without writing it."""
    log_by_model: dict[str, str] = {}
    if isinstance(logs, Mapping):
        log_by_model = {str(model): str(path) for model, path in logs.items()}
        log_paths = list(dict.fromkeys(log_by_model.values()))
    else:
        log_paths = [str(path) for path in logs]
    if deployment is None:
        deployment_obj: dict[str, Any] = {}
    elif isinstance(deployment, str):
        deployment_obj = {"target": deployment}
    else:
        deployment_obj = json.loads(json.dumps(dict(deployment), default=str))  # JSON-safe copy
    entries = []
    counts: dict[str, int] = {"total": 0, "SUCCESS": 0, "FAILURE": 0, "SKIPPED": 0}
    for row in rows:
        counts["total"] += 1
        counts[row.status] = counts.get(row.status, 0) + 1
        entries.append(SummaryEntry.of_row(row, log=log_by_model.get(row.model, "")))
    return RunSummary(created=datetime.now(timezone.utc).isoformat(timespec="seconds"), output=str(output),
                      manifest=str(manifest_path) if manifest_path else None, deployment=deployment_obj,
                      logs=log_paths, counts=counts, models=entries)


def write_summary(path: str | Path, rows: Iterable[PerfRow], *, manifest_path: str | Path | None = None,
                  deployment: Mapping[str, Any] | str | None = None,
                  logs: Mapping[str, str | Path] | Iterable[str | Path] = (),
                  output: str | Path = "perf.csv") -> Path:
    """Write the run summary JSON of ``rows`` (the :class:`PerfRow` objects of one run) to ``path``; return it.

    Args:
        path: the JSON file to write (replaced atomically; parent directories are created).
        rows: the run's rows, with ``reason`` set on FAILURE/SKIPPED rows.
        manifest_path: the build manifest the run used, or ``None``.
        deployment: the deployment target and its settings (``{"target": "slurm", "partition": ...}``), or just the
            target name (stored as ``{"target": name}``); values that are not JSON become strings.
        logs: the run's log files: a ``{model name: path}`` mapping (each entry gets its ``log``) or a list of paths.
        output: the perf.csv the rows were appended to.

    Raises:
        MadEngineError: (exit code 1) the file cannot be written; the message names it and the OS error.
    """
    summary = build_summary(rows, manifest_path=manifest_path, deployment=deployment, logs=logs, output=output)
    text = summary.model_dump_json(by_alias=True, indent=2) + "\n"
    write_text_atomic(Path(path), text, what="run summary", flag="--summary-output", inputs=(output,))
    return Path(path)
