"""The Kubernetes target's ``poll``: the status of many Jobs with one list of Jobs and one list of their pods (two
API calls per tick, whatever the number of Jobs), mapped onto madengine's job statuses
(:data:`madengine.deploy.jobs.STATUSES`).

=======================================  =====================================================================
seen                                     status (reason)
=======================================  =====================================================================
Job condition ``Complete``               completed
Job condition ``Failed``                 failed (``BackoffLimitExceeded``/...; ``DeadlineExceeded`` → timeout)
container waiting: :data:`FATAL_WAITING`  failed at once: the pod will never run (the waiting reason)
pod condition ``Unschedulable``          failed with the scheduler's message, after ``schedule_timeout`` s
no such Job                              cancelled (``Deleted``)
no result ``wait_limit`` s after submit  failed (``WaitTimeout``: the client-side safety net)
an API error                             unknown (never finished)
=======================================  =====================================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from madengine.deploy.jobs import JobStatus
from madengine.deploy.k8s import client
from madengine.deploy.k8s.objects import JOB_LABEL
from madengine.deploy.k8s.watch import FATAL_WAITING, Outcome, PodState, job_condition, pod_state


class K8sPoll:
    """Polls Jobs of one namespace. ``limits`` maps a Job to the monotonic time after which it is given up
    (``WaitTimeout``); ``schedule_timeout`` is how long (seconds) a pod may stay Unschedulable; ``echo`` receives one
    line per pod phase change. :attr:`outcomes` keeps, per finished Job, the :class:`Outcome` (reason, pods) that
    collection reports."""

    def __init__(self, api: client.Api, namespace: str, *, schedule_timeout: float = 0.0,
                 limits: dict[str, float] | None = None, echo: Callable[[str], None] = lambda _: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api, self.namespace = api, namespace
        self.schedule_timeout, self.limits = schedule_timeout, limits if limits is not None else {}
        self.echo, self.clock = echo, clock
        self.outcomes: dict[str, Outcome] = {}
        self._pods: dict[str, PodState] = {}
        self._unschedulable_since: dict[str, float] = {}

    def __call__(self, job_names: list[str]) -> dict[str, JobStatus]:
        """Statuses of ``job_names`` (see the module docstring)."""
        selector = f"{JOB_LABEL} in ({','.join(job_names)})"
        try:
            found = client.call(f"list Jobs in {self.namespace}", self.api.batch.list_namespaced_job, self.namespace,
                                label_selector=selector).items
            pods = client.call(f"list pods in {self.namespace}", self.api.core.list_namespaced_pod, self.namespace,
                               label_selector=selector).items
        except client.K8sError as e:
            return {j: JobStatus(j, "unknown", reason=f"status query failed: {e.message}") for j in job_names}
        by_job: dict[str, list[PodState]] = {j: [] for j in job_names}
        for pod in pods:
            job = (pod.metadata.labels or {}).get(JOB_LABEL, "")
            if job in by_job:
                state = pod_state(pod)
                by_job[job].append(state)
                previous = self._pods.get(state.name)
                if previous is None or previous.describe() != state.describe():
                    self.echo(f"pod {state.name}: {state.describe()}")
                self._pods[state.name] = state
        jobs = {j.metadata.name: j for j in found}
        return {name: self._status(name, jobs.get(name), by_job[name]) for name in job_names}

    def _status(self, name: str, job: Any, pods: list[PodState]) -> JobStatus:
        now = self.clock()
        pod_map = {p.name: p for p in pods}
        if job is None:
            return self._done(name, "cancelled", "Deleted", "Deleted", f"Job {self.namespace}/{name} was deleted",
                              pod_map, None)
        cond = job_condition(job)
        if cond:
            kind, reason, message = cond
            status = "completed" if kind == "Complete" else ("timeout" if reason == "DeadlineExceeded" else "failed")
            return self._done(name, status, kind, reason, message, pod_map, job)
        for pod in pods:
            if pod.reason == "Unschedulable":
                since = self._unschedulable_since.setdefault(pod.name, now)
                if now - since >= self.schedule_timeout:
                    return self._done(name, "failed", "Failed", "Unschedulable",
                                      pod.detail.removeprefix("Unschedulable: "), pod_map, job)
            else:
                self._unschedulable_since.pop(pod.name, None)
            if pod.reason in FATAL_WAITING:
                return self._done(name, "failed", "Failed", pod.reason, pod.detail.removeprefix(f"{pod.reason}: "),
                                  pod_map, job)
        limit = self.limits.get(name)
        if limit is not None and now >= limit:
            return self._done(name, "failed", "Failed", "WaitTimeout", "no result within the Job's deadline",
                              pod_map, job)
        running = bool(job.status and job.status.active) or any(p.phase == "Running" for p in pods)
        if running:
            return JobStatus(name, "running", "Running")
        return JobStatus(name, "pending", "Pending", "; ".join(p.describe() for p in pods if p.detail))

    def _done(self, name: str, status: str, state: str, reason: str, message: str, pods: dict[str, PodState],
              job: Any) -> JobStatus:
        times = (job.status.start_time, job.status.completion_time) if job is not None and job.status else (None,
                                                                                                        None)
        outcome = Outcome(state if state in ("Complete", "Failed") else "Failed", reason, message, pods, *times)
        self.outcomes[name] = outcome
        return JobStatus(name, status, state, "" if outcome.ok else outcome.summary())
