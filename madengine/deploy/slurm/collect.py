"""Bringing a finished job's results home: each node's perf rows are merged into the run's perf.csv.

A job directory holds ``results/<node>/perf.csv`` (one per node, written by that node's ``madengine run.local``) and
the node's ``*.run.live.log`` files beside it. :func:`collect` reads every node's rows, stamps them with
``deployment_type=slurm``, ``nnodes`` and ``gpus_per_node``, adds one FAILURE row for each node that wrote none (a
job killed by its time limit, cancelled, or failed before the model ran: the reason names the Slurm state), and
the shared loop (:mod:`madengine.deploy.contract`) appends them to perf.csv once. perf.csv has no place for a row's
reason or the ``samples`` of a ``--repeat N`` run (its measured runs' values): both come from the node's run summary
(``results/<node>/run-summary.json``, same rows in the same order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from madengine.deploy.jobs import JobRecord, JobStatus, job_rows
from madengine.results.perf_csv import PERF_CSV_HEADER, PerfRow, read_rows


def node_results(local_dir: Path) -> dict[str, list[dict[str, str]]]:
    """``{node name: rows}`` from ``local_dir/results/<node>/perf.csv`` (nodes without a perf.csv are absent).

    Raises:
        PerfCsvError: a node's perf.csv is malformed (names the file and line).
    """
    found: dict[str, list[dict[str, str]]] = {}
    results = local_dir / "results"
    if not results.is_dir():
        return found
    for node_dir in sorted(p for p in results.iterdir() if p.is_dir()):
        perf = node_dir / "perf.csv"
        if perf.is_file():
            found[node_dir.name] = read_rows(perf)
    return found


def _summary_fields(summary: Path, count: int) -> list[tuple[str, list[float]]]:
    """The reason and samples of each of a node's rows from its run summary (same order as its perf.csv); blanks
    when unreadable or when it does not list ``count`` rows."""
    import json

    from madengine.results.record import samples

    try:
        entries = json.loads(summary.read_text(encoding="utf-8")).get("models") or []
    except (OSError, ValueError, AttributeError):
        entries = []
    found = [(str(e.get("reason") or ""), samples(e.get("samples"))) for e in entries if isinstance(e, dict)]
    return found if len(found) == count else [("", [])] * count


def rows_for_job(record: JobRecord, status: JobStatus) -> list[PerfRow]:
    """The perf rows of one finished job (see the module docstring and :func:`madengine.deploy.jobs.MULTI_NODE_RULE`);
    never empty for a finished job."""
    local_dir = Path(record.local_dir)
    stamp: dict[str, Any] = {"deployment_type": "slurm", "nnodes": str(record.nnodes),
                             "gpus_per_node": str(record.gpus_per_node)}
    rows: list[PerfRow] = []
    per_node = node_results(local_dir)
    for node, node_rows in per_node.items():
        node_dir = local_dir / "results" / node
        from_summary = _summary_fields(node_dir / "run-summary.json", len(node_rows))
        rank_file = node_dir / "node_rank"
        for raw, (reason, samples) in zip(node_rows, from_summary, strict=True):
            values: dict[str, Any] = {k: raw.get(k, "") for k in PERF_CSV_HEADER}
            values["samples"] = samples
            values.update(stamp)
            if values["status"] not in ("SUCCESS", "FAILURE", "SKIPPED"):
                values["status"] = "FAILURE"
            values["machine_name"] = node
            values["node_rank"] = rank_file.read_text().strip() if rank_file.is_file() else ""
            row = PerfRow(**values)
            if row.status == "FAILURE":
                row.reason = f"node {node}: {reason or 'see ' + str(node_dir)}"
            rows.append(row)
    rows = job_rows(rows)
    missing = max(0, record.nnodes - len(per_node))
    if missing or not rows:
        reason = (f"slurm {status.describe()}: {missing or record.nnodes} node(s) wrote no perf row; "
                  f"see {local_dir}/slurm-{record.job_id}.out")
        template = PerfRow(model=record.model, status="FAILURE", reason=reason, docker_image=record.docker_image,
                           docker_file=record.docker_file, **stamp)
        rows.extend(template.model_copy() for _ in range(missing or record.nnodes))
    return rows
