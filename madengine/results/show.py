"""What the results store holds, as text: its runs (``results.runs``) and one row's provenance with the command that
replays it (``results.show``)."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from madengine.errors import ConfigError
from madengine.report.text import aligned
from madengine.results.store import Store

#: What ``results.show`` prints of a row, in order (perf.csv's provenance columns and the store's own).
PROVENANCE = ("model", "status", "reason", "performance", "metric", "metric_direction", "repeat_index", "node_rank",
              "docker_image", "docker_sha", "docker_file", "base_docker", "build_fingerprint", "git_commit",
              "gpu_architecture", "machine_name", "deployment_type", "launcher", "n_gpus", "nnodes", "args")


def _when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def render_runs(store: Store, limit: int, *, as_json: bool = False) -> str:
    """The newest ``limit`` runs (oldest of them first) with their number of result rows."""
    import sqlalchemy as sa

    runs, r = store.runs, store.results
    count = sa.select(sa.func.count()).where(r.c.run_id == runs.c.run_id).scalar_subquery()
    rows = store.query(sa.select(runs, count.label("rows")).order_by(runs.c.started_at.desc()).limit(limit))[::-1]
    if as_json:
        return json.dumps(rows, indent=2)
    headers = ("run", "started (UTC)", "ended", "status", "target", "label", "hub commit", "rows")
    table = [[row["run_id"], _when(row["started_at"]), _when(row["ended_at"])[11:], row["status"], row["target"],
              row["label"], row["hub_git_commit"][:12] + ("+dirty" if row["hub_git_commit"].endswith("+dirty") else ""),
              str(row["rows"])] for row in rows]
    return aligned(headers, table, [False] * 7 + [True]) + f"\n\n{len(rows)} run(s) in {store.url_shown}"


def render_row(store: Store, row_id: Any, *, as_json: bool = False) -> str:
    """One stored result: its provenance, its run, and how to replay it (the run's command line and the saved step
    script of the model, when it is still next to the run's perf.csv).

    Raises:
        ConfigError: ``row_id`` is not a number or no such row (exit 4).
    """
    import sqlalchemy as sa

    try:
        wanted = int(row_id)
        if not 0 < wanted < 2**63:  # a row id is a positive 64-bit integer in every database
            raise ValueError(row_id)
    except (TypeError, ValueError):
        raise ConfigError(f"results.show {row_id!r}: give a result row id (a number; see results.runs)") from None
    found = store.query(sa.select(store.results, store.runs).join(store.runs,
                                                                  store.runs.c.run_id == store.results.c.run_id)
                        .where(store.results.c.id == wanted))
    if not found:
        raise ConfigError(f"results.show {wanted}: no such row in {store.url_shown}")
    row = found[0]
    scripts = _step_scripts(row)
    if as_json:
        return json.dumps({**row, "replay": {"command": row["command"], "step_scripts": scripts}}, indent=2)
    lines = [f"row {wanted} of run {row['run_id']} ({row['source']}, target {row['target'] or '-'}"
             + (f", label {row['label']}" if row["label"] else "") + ")"]
    width = max(len(name) for name in PROVENANCE)
    lines += [f"  {name.ljust(width)}  {row[name]}" for name in PROVENANCE if row.get(name) not in ("", None)]
    lines += [f"  {'run started'.ljust(width)}  {_when(row['started_at'])} UTC on {row['host'] or '?'}",
              f"  {'madengine'.ljust(width)}  {row['madengine_version']}",
              f"  {'context hash'.ljust(width)}  {row['context_hash']}",
              "", "replay:"]
    if row["source"] == "ingest":
        lines.append(f"  imported from {row['output']} (no command recorded)")
    else:
        directory = Path(row["output"]).parent if row["output"] else Path(".")
        lines.append(f"  cd {shlex.quote(str(directory))} && {row['command']}")
        lines += [f"  or the model alone: MAD_WORKSPACE=$PWD bash {shlex.quote(s)} (in a copy of its workspace)"
                  for s in scripts]
    return "\n".join(lines)


def _step_scripts(row: dict[str, Any]) -> list[str]:
    """The step scripts the run saved (``madengine-runs/<run id>/**/steps.sh`` next to its perf.csv) for the row's
    model."""
    if not row["output"]:
        return []
    base = Path(row["output"]).parent / "madengine-runs" / row["run_id"]
    scripts = sorted(base.glob("*/steps.sh"))
    name = str(row["model"]).replace("/", "_")
    while name:  # a multiple_results row is named <model>_<result>: try the model's name without the suffixes
        found = [str(p) for p in scripts if p.parent.name.startswith(name + "_")]
        if found:
            return found
        name = name.rpartition("_")[0]
    return []
