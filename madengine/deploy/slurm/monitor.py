"""Watching Slurm jobs: the state table, the polling schedule and the batched watcher.

* :data:`STATE_TABLE` maps every Slurm job state (``squeue``/``sacct`` names, Slurm 22.05 ``JOB_STATE_STRING``) to a
  madengine job status — ``pending``, ``running``, ``completed``, ``failed``, ``cancelled``, ``timeout`` — with a
  reason. ``unknown`` is madengine's own: the status query failed or Slurm did not report the job; it is never
  treated as finished.
* :func:`intervals` is the polling schedule: it starts at ``first`` seconds, grows by ``factor`` per tick up to
  ``cap``, each value with ±``jitter`` (fraction) random spread so many watchers do not poll in step.
* :class:`Monitor` asks about every unfinished job with ONE query per tick (:meth:`SlurmCli.query`), caches finished
  jobs (never asked about again), cancels jobs pending for a reason that can never resolve, and gives up with
  :class:`~madengine.deploy.slurm.cli.SlurmError` when jobs stay unknown longer than ``unknown_timeout``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from madengine.deploy.slurm.cli import JobInfo, QueryFailed, SlurmCli, SlurmError

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
TERMINAL = frozenset({"completed", "failed", "cancelled", "timeout"})

#: Pending reasons that can never resolve by waiting → seconds to tolerate them. A reason must also be seen on
#: two ticks in a row (:data:`HOPELESS_MIN_SECONDS` apart at least), as Slurm may show one briefly at submission.
HOPELESS_REASONS: dict[str, float] = {
    "PartitionNodeLimit": 0, "PartitionTimeLimit": 0, "PartitionConfig": 0, "BadConstraints": 0,
    "InvalidAccount": 0, "InvalidQOS": 0, "AccountNotAllowed": 0, "QOSNotAllowed": 0,
    "DependencyNeverSatisfied": 0, "QOSMaxNodePerJobLimit": 0, "QOSMaxGRESPerJob": 0, "QOSMaxWallDurationPerJobLimit": 0,
    "ReqNodeNotAvail": 120,
}
HOPELESS_MIN_SECONDS = 2.0


@dataclass
class JobStatus:
    """A job as madengine sees it: ``status`` (see :data:`STATE_TABLE`, or ``unknown``), the Slurm ``state`` it came
    from, ``reason`` (Slurm's reason, else the table's), ``exit_code`` (``code:signal``)."""

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


def map_state(info: JobInfo) -> JobStatus:
    """:class:`JobInfo` (Slurm's view) → :class:`JobStatus` through :data:`STATE_TABLE`."""
    status, default_reason = STATE_TABLE.get(info.state, ("unknown", f"unrecognised Slurm state {info.state!r}"))
    reason = info.reason if info.reason and info.reason not in ("None", "NonZeroExitCode") else default_reason
    if info.state == "FAILED" and info.exit_code:
        reason = f"exit code {info.exit_code.split(':')[0]}"
    return JobStatus(info.job_id, status, info.state, reason, info.exit_code)


def intervals(first: float = 1.0, cap: float = 15.0, factor: float = 1.5, jitter: float = 0.1,
              rng: random.Random | None = None) -> Iterator[float]:
    """The polling schedule in seconds: ``first``, ``first*factor``, ... capped at ``cap``, each ×(1±``jitter``)."""
    rng = rng or random.Random()
    base = first
    while True:
        yield max(0.05, min(base, cap) * (1 + rng.uniform(-jitter, jitter)))
        base = min(base * factor, cap)


class Monitor:
    """Watches a set of jobs with one batched query per tick.

    Args:
        cli: the Slurm CLI (local or remote executor).
        job_ids: the jobs to watch.
        first, cap: the schedule of :func:`intervals` (seconds).
        unknown_timeout: seconds a job may stay ``unknown`` before :meth:`wait` gives up.
        clock, sleep: injectable for tests (monotonic seconds, and a sleep).
    """

    def __init__(self, cli: SlurmCli, job_ids: list[str], *, first: float = 1.0, cap: float = 15.0,
                 unknown_timeout: float = 600.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        self.cli = cli
        self.job_ids = list(job_ids)
        self.first, self.cap = first, cap
        self.unknown_timeout = unknown_timeout
        self.clock, self.sleep = clock, sleep
        self.rng = rng
        self.states: dict[str, JobStatus] = {j: JobStatus(j, "unknown", reason="not queried yet")
                                             for j in self.job_ids}
        self._unknown_since: dict[str, float] = {}
        self._pending_since: dict[str, float] = {}
        self.cancelled_hopeless: list[JobStatus] = []
        self.ticks = 0

    @property
    def done(self) -> bool:
        """True when every job is terminal."""
        return all(s.terminal for s in self.states.values())

    def tick(self) -> dict[str, JobStatus]:
        """Query every unfinished job once (one command) and update :attr:`states`; returns them.

        A failed query leaves the jobs ``unknown`` (reason: the error); jobs Slurm does not report are ``unknown``.
        """
        self.ticks += 1
        now = self.clock()
        open_ids = [j for j, s in self.states.items() if not s.terminal]
        if not open_ids:
            return self.states
        try:
            infos = self.cli.query(open_ids)
        except QueryFailed as e:
            infos = {}
            for j in open_ids:
                self._set_unknown(j, f"status query failed: {e.message}", now)
            return self.states
        for j in open_ids:
            info = infos.get(j)
            if info is None:
                self._set_unknown(j, "not reported by Slurm", now)
                continue
            self._unknown_since.pop(j, None)
            self.states[j] = map_state(info)
        self._cancel_hopeless(now)
        return self.states

    def _set_unknown(self, job_id: str, reason: str, now: float) -> None:
        self._unknown_since.setdefault(job_id, now)
        previous = self.states[job_id]
        self.states[job_id] = JobStatus(job_id, "unknown", previous.state, reason)

    def _cancel_hopeless(self, now: float) -> None:
        hopeless = []
        for j, s in self.states.items():
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
            old = self.states[j]
            self.states[j] = JobStatus(j, "cancelled", "CANCELLED",
                                       f"pending for a reason that cannot resolve ({old.reason}); cancelled by "
                                       "madengine: fix the request (--nodes, --partition, --time, ...)")
            self.cancelled_hopeless.append(self.states[j])

    def wait(self, on_tick: Callable[[dict[str, JobStatus]], None] | None = None) -> dict[str, JobStatus]:
        """Tick until every job is terminal, sleeping per :func:`intervals`; ``on_tick`` sees each tick's states.

        Raises:
            SlurmError: some job stayed ``unknown`` longer than ``unknown_timeout`` (names them and how to reattach).
            KeyboardInterrupt: as raised by the sleep (the caller cancels the jobs).
        """
        schedule = intervals(self.first, self.cap, rng=self.rng)
        while True:
            self.tick()
            if on_tick:
                on_tick(self.states)
            if self.done:
                return self.states
            now = self.clock()
            stale = [j for j, since in self._unknown_since.items()
                     if not self.states[j].terminal and now - since > self.unknown_timeout]
            if stale:
                reasons = "; ".join(self.states[j].describe() for j in stale[:3])
                raise SlurmError(f"status of job(s) {','.join(stale)} unknown for over {self.unknown_timeout:.0f} s "
                                 f"({reasons}); the jobs were left alone: check them later with "
                                 f"`inv slurm.status {stale[0]}`")
            self.sleep(next(schedule))


def counts(states: dict[str, JobStatus]) -> dict[str, int]:
    """How many jobs are pending, running, done (terminal) and unknown."""
    result = {"pending": 0, "running": 0, "done": 0, "unknown": 0}
    for s in states.values():
        key = "done" if s.terminal else s.status
        result[key] = result.get(key, 0) + 1
    return result
