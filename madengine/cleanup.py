"""Leftovers of killed runs: containers whose madengine process is gone (:func:`madengine.docker_engine.leftovers`)
and batch jobs (Slurm, Kubernetes, a plugin's) submitted by a run that was killed while it waited for them (recorded
next to perf.csv with their owner, not ``--no-wait``, never collected). Every run reports them when it starts;
``madengine clean`` removes the containers and cancels the jobs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madengine import console

if TYPE_CHECKING:  # pragma: no cover
    from madengine.deploy.jobs import JobRecord


@dataclass
class Leftover:
    """One leftover container: its name, the run id and model it ran, the perf.csv directory it wrote to, and
    whether it was kept on purpose (``--keep-alive``)."""

    name: str
    run_id: str
    model: str
    output_dir: str
    kept: bool

    def describe(self) -> str:
        """``name (model M, run R, output DIR)``."""
        return f"{self.name} (model {self.model or '?'}, run {self.run_id or '?'}, output {self.output_dir or '?'})"


def find(client: Any, *, include_kept: bool = False) -> list[tuple[Any, Leftover]]:
    """The leftover containers on the engine of ``client`` (see :func:`madengine.docker_engine.leftovers`)."""
    from madengine import docker_engine, owner

    found = []
    for container in docker_engine.leftovers(client, include_kept=include_kept):
        labels = container.labels or {}
        found.append((container, Leftover(container.name, labels.get(docker_engine.RUN_LABEL, ""),
                                          labels.get("org.madengine.model", ""),
                                          labels.get("org.madengine.output-dir", ""),
                                          owner.KEEP_ALIVE_LABEL in labels)))
    return found


def report(client: Any) -> None:
    """Warn about leftover containers (one line; the fix is ``madengine clean``). Never raises: a run goes on."""
    try:
        found = find(client)
    except Exception:  # noqa: BLE001 - a failed listing must not stop a run
        return
    if found:
        names = ", ".join(item.name for _, item in found[:5]) + (", ..." if len(found) > 5 else "")
        console.warn(f"{len(found)} container(s) left running by madengine runs that were killed ({names}); "
                     "remove them with `madengine clean` (or `inv clean`)")


def orphan_jobs(output: str | Path) -> list[JobRecord]:
    """The jobs recorded next to the perf.csv ``output`` that a killed run left: not collected, not ``--no-wait``,
    not known to have ended, and their owner process gone from this host."""
    from madengine.deploy import jobs
    from madengine.owner import alive

    path = jobs.state_path(output)
    if not path.is_file():
        return []
    return [r for r in jobs.load(path).values() if not r.collected and not r.detached and r.owner
            and r.status not in jobs.TERMINAL and alive(r.owner) is False]


def report_jobs(output: str | Path) -> None:
    """Warn about :func:`orphan_jobs` (one line; the fix is ``madengine clean``). Never raises."""
    try:
        found = orphan_jobs(output)
    except Exception:  # noqa: BLE001 - a broken record must not stop a run
        return
    if found:
        ids = ", ".join(f"{r.target} {r.job_id}" for r in found[:5]) + (", ..." if len(found) > 5 else "")
        console.warn(f"{len(found)} job(s) submitted by madengine runs that were killed are still recorded as "
                     f"running ({ids}); cancel them with `madengine clean`, or collect them with "
                     "`madengine jobs.status JOB`")


def cancel_jobs(output: str | Path, *, dry_run: bool = False) -> tuple[list[JobRecord], list[tuple[JobRecord, str]]]:
    """Cancel :func:`orphan_jobs` (``dry_run``: only list them). Returns (cancelled or found, (job, error) pairs
    for those the scheduler refused)."""
    from madengine.deploy import contract
    from madengine.errors import MadEngineError

    done, failed = [], []
    for record in orphan_jobs(output):
        if dry_run:
            done.append(record)
            continue
        try:
            contract.cancel(record.job_id, output)
            done.append(record)
        except MadEngineError as e:
            failed.append((record, e.message))
    return done, failed


def clean(*, dry_run: bool = False, include_kept: bool = False) -> tuple[list[Leftover], list[Leftover]]:
    """Remove the leftover containers and their workspaces (``dry_run``: only list them).

    Returns:
        (removed or, with ``dry_run``, found; those the engine refused to remove).

    Raises:
        EngineError: the engine is unreachable.
    """
    from madengine import docker_engine

    client = docker_engine.connect()
    done, failed = [], []
    for container, item in find(client, include_kept=include_kept):
        if dry_run or docker_engine.remove_container(container):
            done.append(item)
            workspace = Path(item.output_dir) / ".madengine" / "work" / item.name if item.output_dir else None
            if not dry_run and workspace is not None and workspace.is_dir():
                shutil.rmtree(workspace, ignore_errors=True)  # the killed run's workspace goes with it
        else:
            failed.append(item)
    return done, failed
