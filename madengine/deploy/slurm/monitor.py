"""Watching Slurm jobs: the state table and the batched status query, on the shared watcher
(:mod:`madengine.deploy.watcher`).

* :data:`STATE_TABLE` maps every Slurm job state (``squeue``/``sacct`` names, Slurm 22.05 ``JOB_STATE_STRING``) to a
  madengine job status (:data:`madengine.deploy.jobs.STATUSES`) with a reason.
* :class:`SlurmPoll` asks about a list of jobs with ONE query (:meth:`SlurmCli.query`); a failed query makes them
  ``unknown`` (never finished); it cancels jobs pending for a reason that can never resolve.
* :class:`Monitor` is the shared :class:`~madengine.deploy.watcher.Watcher` with that poll, giving up with
  :class:`~madengine.deploy.slurm.cli.SlurmError` when jobs stay unknown longer than ``unknown_timeout``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from madengine.deploy.jobs import TERMINAL, JobStatus
from madengine.deploy.slurm.cli import JobInfo, QueryFailed, SlurmCli, SlurmError
from madengine.deploy.watcher import Watcher, counts, intervals

__all__ = ["STATE_TABLE", "TERMINAL", "JobStatus", "Monitor", "SlurmPoll", "counts", "intervals", "map_state"]

#: Slurm state → (madengine status, reason).
STATE_TABLE: dict[str, tuple[str, str]] = {
    "PENDING": ("pending", "waiting in the queue"),
    "CONFIGURING": ("pending", "nodes are being configured"),
    "REQUEUED": ("pending", "requeued"),
    "REQUEUE_HOLD": ("pending", "requeued and held"),
    "REQUEUE_FED": ("pending", "requeued by the federation"),
    "RESV_DEL_HOLD": ("pending", "held: its reservation was deleted"),
    "RUNNING": ("running", ""),
    "COMPLETING": ("running", "finishing"),
    "SUSPENDED": ("running", "suspended"),
    "STOPPED": ("running", "stopped (SIGSTOP)"),
    "SIGNALING": ("running", "being signalled"),
    "STAGE_OUT": ("running", "staging out"),
    "RESIZING": ("running", "resizing"),
    "COMPLETED": ("completed", ""),
    "FAILED": ("failed", "a step exited with a non-zero code"),
    "CANCELLED": ("cancelled", "cancelled (scancel, Ctrl-C or an administrator)"),
    "TIMEOUT": ("timeout", "reached its time limit"),
    "OUT_OF_MEMORY": ("failed", "out of memory"),
    "NODE_FAIL": ("failed", "a node failed"),
    "PREEMPTED": ("failed", "preempted"),
    "BOOT_FAIL": ("failed", "a node failed to boot"),
    "DEADLINE": ("failed", "missed its deadline"),
    "SPECIAL_EXIT": ("failed", "special exit"),
    "REVOKED": ("cancelled", "revoked by the federation"),
}

#: Pending reasons that can never resolve by waiting → seconds to tolerate them. A reason must also be seen on
#: two ticks in a row (:data:`HOPELESS_MIN_SECONDS` apart at least), as Slurm may show one briefly at submission.
HOPELESS_REASONS: dict[str, float] = {
    "PartitionNodeLimit": 0, "PartitionTimeLimit": 0, "PartitionConfig": 0, "BadConstraints": 0,
    "InvalidAccount": 0, "InvalidQOS": 0, "AccountNotAllowed": 0, "QOSNotAllowed": 0,
    "DependencyNeverSatisfied": 0, "QOSMaxNodePerJobLimit": 0, "QOSMaxGRESPerJob": 0, "QOSMaxWallDurationPerJobLimit": 0,
    "ReqNodeNotAvail": 120,
}
HOPELESS_MIN_SECONDS = 2.0


def map_state(info: JobInfo) -> JobStatus:
    """:class:`JobInfo` (Slurm's view) → :class:`JobStatus` through :data:`STATE_TABLE`."""
    status, default_reason = STATE_TABLE.get(info.state, ("unknown", f"unrecognised Slurm state {info.state!r}"))
    reason = info.reason if info.reason and info.reason not in ("None", "NonZeroExitCode") else default_reason
    if info.state == "FAILED" and info.exit_code:
        reason = f"exit code {info.exit_code.split(':')[0]}"
    return JobStatus(info.job_id, status, info.state, reason, info.exit_code)


class SlurmPoll:
    """The Slurm target's ``poll``: one ``sacct``/``squeue`` for all the given jobs (see the module docstring).
    ``cancelled_hopeless`` lists the jobs it cancelled; ``clock`` is injectable for tests."""

    def __init__(self, cli: SlurmCli, clock: Callable[[], float] = time.monotonic) -> None:
        self.cli, self.clock = cli, clock
        self._pending_since: dict[str, float] = {}
        self.cancelled_hopeless: list[JobStatus] = []
        self._last: dict[str, JobStatus] = {}

    def __call__(self, job_ids: list[str]) -> dict[str, JobStatus]:
        """Statuses of ``job_ids`` (``unknown`` for each when the query failed; absent when Slurm did not report
        one)."""
        try:
            infos = self.cli.query(job_ids)
        except QueryFailed as e:
            return {j: JobStatus(j, "unknown", self._state(j), f"status query failed: {e.message}") for j in job_ids}
        found = {j: map_state(info) for j, info in infos.items() if j in job_ids}
        self._cancel_hopeless(found, self.clock())
        self._last.update(found)
        return found

    def _state(self, job_id: str) -> str:
        last = self._last.get(job_id)
        return last.state if last else ""

    def _cancel_hopeless(self, states: dict[str, JobStatus], now: float) -> None:
        hopeless = []
        for j, s in states.items():
            if s.status != "pending":
                self._pending_since.pop(j, None)
                continue
            key = s.reason.split(",")[0].strip()
            if key not in HOPELESS_REASONS:
                self._pending_since.pop(j, None)
                continue
            since = self._pending_since.setdefault(j, now)
            if now - since >= max(HOPELESS_REASONS[key], HOPELESS_MIN_SECONDS):
                hopeless.append(j)
        if not hopeless:
            return
        self.cli.cancel(hopeless)
        for j in hopeless:
            old = states[j]
            states[j] = JobStatus(j, "cancelled", "CANCELLED",
                                  f"pending for a reason that cannot resolve ({old.reason}); cancelled by "
                                  "madengine: fix the request (--nodes, --partition, --time, ...)")
            self.cancelled_hopeless.append(states[j])


class Monitor(Watcher):
    """The shared watcher over :class:`SlurmPoll` (one batched query per tick); jobs unknown for longer than
    ``unknown_timeout`` raise :class:`SlurmError` naming ``inv slurm.status JOB``.

    Args:
        cli: the Slurm CLI (local or remote executor).
        job_ids: the jobs to watch.
        first, cap: the polling schedule (seconds).
        unknown_timeout: seconds a job may stay ``unknown``.
        clock, sleep, rng: injectable for tests.
    """

    def __init__(self, cli: SlurmCli, job_ids: list[str], *, first: float = 1.0, cap: float = 15.0,
                 unknown_timeout: float = 600.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        self.slurm = SlurmPoll(cli, clock)
        super().__init__(self.slurm, job_ids, first=first, cap=cap, unknown_timeout=unknown_timeout,
                         reattach="inv slurm.status {job}", error=SlurmError, clock=clock, sleep=sleep, rng=rng)

    @property
    def cancelled_hopeless(self) -> list[JobStatus]:
        """Jobs cancelled for a pending reason that cannot resolve."""
        return self.slurm.cancelled_hopeless
