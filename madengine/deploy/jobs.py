"""Jobs of every batch target, in one model: their statuses and the local record that lets a later command (or
another shell) reattach to them.

Statuses (:data:`STATUSES`): ``pending``, ``running``, ``completed``, ``failed``, ``cancelled``, ``timeout`` (the
terminal ones are :data:`TERMINAL`), and ``unknown``: the status query failed or the scheduler did not report the
job; it is never treated as finished. Each target maps its scheduler's own states onto these
(:data:`madengine.deploy.slurm.monitor.STATE_TABLE`, :mod:`madengine.deploy.k8s.poll`, a plugin's).

Record file: ``.madengine/jobs.json`` next to perf.csv (:func:`state_path`). Format (madengine's own)::

    {"version": 1, "jobs": {"<job id>": {"job_id": "12", "target": "slurm", "model": "dummy",
      "job_dir": "/shared/.../dummy", "local_dir": "/home/u/.madengine/slurm/<run>/dummy", "output": "/home/u/perf.csv",
      "cluster": "site/name" or null, "inventory": "/path/inventories/site.yaml" or null, "nnodes": 2,
      "gpus_per_node": 0, "submitted": "2026-11-29T13:00:00+00:00", "status": "pending", "collected": false,
      "docker_image": "ci-dummy_dummy.ubuntu", "docker_file": "docker/dummy.ubuntu.Dockerfile", "details": {}}}}

``job_dir`` is where the job runs (on the cluster); ``local_dir`` is where results are gathered here (the same
directory for a local cluster); ``details`` holds what a target needs to reattach (e.g. a Kubernetes namespace);
``owner`` the madengine process that submitted it (:mod:`madengine.owner`) and ``detached`` whether it was left
running on purpose (``--no-wait``): a job neither detached nor collected whose owner is gone was orphaned by a
killed run (``madengine clean`` cancels it).
Updates are read-modify-write under an exclusive ``flock`` on a side lock file, and the file is replaced atomically
(temporary file + ``os.replace``), so concurrent shells never lose or tear entries; :func:`collect_once` makes sure
a job's rows are merged into perf.csv exactly once, whichever command gets there first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from madengine.errors import ConfigError

FILE_NAME = "jobs.json"
#: Which rows a multi-node job gives, the same on every target (Slurm nodes, Kubernetes pods, a plugin's jobs).
MULTI_NODE_RULE = (
    "Every node runs the same step script, and every node's rows land in perf.csv with machine_name = the node "
    "(Slurm node, Kubernetes pod) and node_rank in the run summary: one row per result it printed (performance "
    "line or multiple_results CSV). The job's result is taken from the ranks that printed it: a node that ran "
    "cleanly but printed no performance line for a model that another rank did report gives no row (e.g. torchrun "
    "workers when rank 0 prints). A node that failed, timed out, showed an error marker, or printed nothing for a "
    "model no rank reported gives a FAILURE row naming the reason; a node that never ran (cancelled, time limit, "
    "never scheduled) gives a FAILURE row naming the scheduler's state."
)


def job_rows(rows: list[Any]) -> list[Any]:
    """Apply :data:`MULTI_NODE_RULE` to the rows of all nodes of one job (PerfRow objects, rank by rank): drop the
    clean "no performance line" rows of models that another rank reported."""
    from madengine.workflow.output import NO_PERFORMANCE

    reported = {r.model for r in rows if r.status == "SUCCESS"}
    return [r for r in rows if not (r.status == "FAILURE" and r.reason.endswith(NO_PERFORMANCE)
                                    and r.model in reported)]
STATUSES = ("pending", "running", "completed", "failed", "cancelled", "timeout", "unknown")
TERMINAL = frozenset({"completed", "failed", "cancelled", "timeout"})


@dataclass
class JobStatus:
    """A job as madengine sees it: ``status`` (one of :data:`STATUSES`), the scheduler's own ``state`` it came
    from, ``reason`` (the scheduler's reason, else the target's), ``exit_code`` (e.g. Slurm's ``code:signal``)."""

    job_id: str
    status: str
    state: str = ""
    reason: str = ""
    exit_code: str = ""

    @property
    def terminal(self) -> bool:
        """True when the job has ended (completed, failed, cancelled, timeout)."""
        return self.status in TERMINAL

    def describe(self) -> str:
        """``job 12: FAILED (exit 3:0, a step exited ...)``-style one-liner."""
        detail = ", ".join(x for x in (f"exit {self.exit_code}" if self.exit_code and self.terminal else "",
                                       self.reason) if x)
        state = self.state or self.status.upper()
        return f"job {self.job_id}: {state}" + (f" ({detail})" if detail else "")


class JobRecord(BaseModel):
    """One submitted job (see the module docstring for the fields)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    job_id: str
    model: str
    output: str
    target: str = "slurm"
    job_dir: str = ""
    local_dir: str = ""
    cluster: str | None = None
    inventory: str | None = None
    nnodes: int = 1
    gpus_per_node: int = 0
    submitted: str = ""
    status: str = "pending"
    collected: bool = False
    docker_image: str = ""
    docker_file: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    owner: str = ""
    detached: bool = False
    run_id: str = ""  # the run in the results store the job's rows belong to
    results_db: str = ""  # that store's URL ("": none)
    git_commit: str = ""  # the hub commit stamped on the job's rows


def state_path(output: str | Path) -> Path:
    """The record file that belongs to the perf.csv ``output``: ``<its dir>/.madengine/jobs.json``."""
    return Path(output).resolve().parent / ".madengine" / FILE_NAME


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": 1, "jobs": {}}
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable job state ({e}); move it away to start afresh") from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        raise ConfigError(f"{path}: not a madengine job state file; move it away to start afresh")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(path: Path, records: list[JobRecord]) -> None:
    """Add or replace ``records`` (by job id) in the state file at ``path``, atomically."""
    with _locked(path):
        data = _read(path)
        for record in records:
            data["jobs"][record.job_id] = record.model_dump(mode="json")
        _write(path, data)


def update(path: Path, job_id: str, **fields: Any) -> None:
    """Set ``fields`` on the recorded job ``job_id`` (no-op when it is not recorded)."""
    with _locked(path):
        data = _read(path)
        if job_id in data["jobs"]:
            data["jobs"][job_id].update(fields)
            _write(path, data)


def load(path: Path) -> dict[str, JobRecord]:
    """Every recorded job, by id (empty when there is no state file)."""
    with _locked(path):
        data = _read(path)
    return {k: JobRecord.model_validate(v) for k, v in data["jobs"].items()}


def get(path: Path, job_id: str) -> JobRecord:
    """The recorded job ``job_id``.

    Raises:
        ConfigError: no such job in ``path`` (names the file, and the --output to pass when it is elsewhere).
    """
    jobs = load(path)
    if str(job_id) not in jobs:
        known = ", ".join(sorted(jobs, key=lambda j: int(j) if j.isdigit() else 0)[-5:]) or "none"
        raise ConfigError(f"job {job_id}: not recorded in {path} (recorded: {known}); pass the --output perf.csv "
                          "of the run that submitted it")
    return jobs[str(job_id)]


def collect_once(path: Path, job_id: str, collect: Callable[[], list[Any]], status: str) -> list[Any] | None:
    """Run ``collect()`` (which merges the job's rows into perf.csv and returns them) unless the job was collected
    already, then mark it collected with ``status`` — all under the record file's lock, so two commands (a waiting
    ``run`` and a ``status`` in another shell) never merge the same rows twice. Returns the rows, or ``None`` when
    another command had collected them."""
    with _locked(path):
        data = _read(path)
        entry = data["jobs"].get(job_id)
        if entry is not None and entry.get("collected"):
            return None
        rows = collect()
        if entry is not None:
            entry.update(collected=True, status=status)
            _write(path, data)
        return rows
