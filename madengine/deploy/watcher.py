"""Waiting for a batch target's jobs: the polling schedule and the watcher, the same for every target.

* :func:`intervals` is the polling schedule: it starts at ``first`` seconds, grows by ``factor`` per tick up to
  ``cap``, each value with ±``jitter`` (fraction) random spread so many watchers do not poll in step.
* :class:`Watcher` asks about every unfinished job with ONE poll per tick (the target's ``poll(job_ids)``, which
  must answer for all of them in one scheduler query and report a failed query as ``unknown``, never raise for it),
  remembers finished jobs (never asked about again), hands each job to ``on_done`` as soon as it finishes, and
  gives up when jobs stay ``unknown`` longer than ``unknown_timeout``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

from madengine.deploy.jobs import JobStatus
from madengine.errors import MadEngineError, SchedulerError

Poll = Callable[[list[str]], dict[str, JobStatus]]


def intervals(first: float = 1.0, cap: float = 15.0, factor: float = 1.5, jitter: float = 0.1,
              rng: random.Random | None = None) -> Iterator[float]:
    """The polling schedule in seconds: ``first``, ``first*factor``, ... capped at ``cap``, each ×(1±``jitter``)."""
    rng = rng or random.Random()
    base = first
    while True:
        yield max(0.05, min(base, cap) * (1 + rng.uniform(-jitter, jitter)))
        base = min(base * factor, cap)


class Watcher:
    """Watches a set of jobs with one poll per tick.

    Args:
        poll: the target's status query for a list of job ids (see the module docstring).
        job_ids: the jobs to watch.
        first, cap: the schedule of :func:`intervals` (seconds).
        unknown_timeout: seconds a job may stay ``unknown`` before :meth:`wait` gives up.
        reattach: the command that reattaches to a job later (``{job}`` is replaced), for messages.
        error: the error raised when jobs stay unknown (a :class:`SchedulerError` subclass).
        clock, sleep, rng: injectable for tests (monotonic seconds, a sleep, the jitter's random source).
    """

    def __init__(self, poll: Poll, job_ids: list[str], *, first: float = 1.0, cap: float = 15.0,
                 unknown_timeout: float = 600.0, reattach: str = "inv jobs.status {job}",
                 error: type[MadEngineError] = SchedulerError, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        self.poll = poll
        self.job_ids = list(job_ids)
        self.first, self.cap = first, cap
        self.unknown_timeout = unknown_timeout
        self.reattach, self.error = reattach, error
        self.clock, self.sleep = clock, sleep
        self.rng = rng
        self.states: dict[str, JobStatus] = {j: JobStatus(j, "unknown", reason="not queried yet")
                                             for j in self.job_ids}
        self._unknown_since: dict[str, float] = {}
        self.ticks = 0

    @property
    def done(self) -> bool:
        """True when every job is terminal."""
        return all(s.terminal for s in self.states.values())

    def tick(self) -> dict[str, JobStatus]:
        """Poll every unfinished job once (one query) and update :attr:`states`; returns them. A job the poll does
        not report is ``unknown``."""
        self.ticks += 1
        now = self.clock()
        open_ids = [j for j, s in self.states.items() if not s.terminal]
        if not open_ids:
            return self.states
        found = self.poll(open_ids)
        for j in open_ids:
            status = found.get(j) or JobStatus(j, "unknown", self.states[j].state, "not reported by the scheduler")
            if status.status == "unknown":
                self._unknown_since.setdefault(j, now)
            else:
                self._unknown_since.pop(j, None)
            self.states[j] = status
        return self.states

    def wait(self, on_tick: Callable[[dict[str, JobStatus]], None] | None = None,
             on_done: Callable[[str, JobStatus], None] | None = None) -> dict[str, JobStatus]:
        """Tick until every job is terminal, sleeping per :func:`intervals`; ``on_tick`` sees each tick's states,
        ``on_done`` each job once, on the tick it finished.

        Raises:
            SchedulerError (or ``error``): some job stayed ``unknown`` longer than ``unknown_timeout`` (names them
                and how to reattach).
            KeyboardInterrupt: as raised by the sleep (the caller cancels the jobs).
        """
        schedule = intervals(self.first, self.cap, rng=self.rng)
        reported: set[str] = set()
        while True:
            self.tick()
            if on_tick:
                on_tick(self.states)
            for j, status in self.states.items():
                if status.terminal and j not in reported:
                    reported.add(j)
                    if on_done:
                        on_done(j, status)
            if self.done:
                return self.states
            now = self.clock()
            stale = [j for j, since in self._unknown_since.items()
                     if not self.states[j].terminal and now - since > self.unknown_timeout]
            if stale:
                reasons = "; ".join(self.states[j].describe() for j in stale[:3])
                raise self.error(f"status of job(s) {','.join(stale)} unknown for over {self.unknown_timeout:.0f} s "
                                 f"({reasons}); the jobs were left alone: check them later with "
                                 f"`{self.reattach.format(job=stale[0])}`")
            self.sleep(next(schedule))


def counts(states: dict[str, JobStatus]) -> dict[str, int]:
    """How many jobs are pending, running, done (terminal) and unknown."""
    result = {"pending": 0, "running": 0, "done": 0, "unknown": 0}
    for s in states.values():
        key = "done" if s.terminal else s.status
        result[key] = result.get(key, 0) + 1
    return result
