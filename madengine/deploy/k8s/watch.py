"""What madengine reads from a Job and its pods: pod states (phase, rank, why it is not running) and how a Job
ended (:class:`Outcome`); :mod:`.poll` decides statuses from them. The outcome table (reasons are the Kubernetes
API's own):

=======================================  =====================================================================
seen                                     outcome
=======================================  =====================================================================
Job condition ``Complete``               Complete
Job condition ``Failed``                 Failed, reason ``BackoffLimitExceeded``/``DeadlineExceeded``/...
container waiting: :data:`FATAL_WAITING`  Failed at once (the pod will never run), reason = the waiting reason
pod condition ``Unschedulable``          Failed with the scheduler's message (after ``schedule_timeout`` s)
Job deleted                              Failed, reason ``Deleted``
=======================================  =====================================================================

``OOMKilled`` and other container termination reasons are recorded per pod and reported with the Job's failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from madengine.deploy.k8s.objects import NODE_RANK_ANNOTATION

#: Container waiting reasons after which the pod never runs (with ``restartPolicy: Never``).
FATAL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                           "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff",
                           "RunContainerError"})


@dataclass
class PodState:
    """What madengine tracks of one pod: phase, completion index (node rank), and why it is not running."""

    name: str
    phase: str = "Pending"
    index: int = 0
    detail: str = ""
    exit_code: int | None = None
    reason: str = ""
    created: float = 0.0

    def describe(self) -> str:
        """``Pending (ContainerCreating)``, ``Failed (exit 1: Error)``, ..."""
        return f"{self.phase} ({self.detail})" if self.detail else self.phase


@dataclass
class Outcome:
    """How the Job ended. ``state`` is ``Complete`` or ``Failed``; ``reason``/``message`` as the API gives them
    (e.g. ``BackoffLimitExceeded``, ``Job has reached the specified backoff limit``); ``pods`` by name."""

    state: str
    reason: str = ""
    message: str = ""
    pods: dict[str, PodState] = field(default_factory=dict)
    start_time: Any = None
    completion_time: Any = None

    @property
    def ok(self) -> bool:
        """The Job completed."""
        return self.state == "Complete"

    def summary(self) -> str:
        """One line: reason, message, and the failed pods' exit codes/reasons."""
        text = ": ".join(x for x in (self.reason, self.message) if x)
        bad = [f"pod {p.name} {p.describe()}" for p in self.pods.values()
               if (p.phase == "Failed" or p.reason) and not (self.message and self.message in p.detail)]
        return "; ".join([text, *bad[:3]]) if bad else text


def pod_state(pod: Any) -> PodState:
    """A :class:`PodState` from a ``V1Pod``."""
    meta, status = pod.metadata, pod.status
    index = (meta.annotations or {}).get(NODE_RANK_ANNOTATION, "0")
    created = meta.creation_timestamp.timestamp() if meta.creation_timestamp else 0.0
    state = PodState(name=meta.name, phase=(status.phase if status else None) or "Pending",
                     index=int(index) if str(index).isdigit() else 0, created=created)
    for cs in (status.container_statuses or []) if status else []:
        st = cs.state
        if st and st.waiting and st.waiting.reason:
            state.detail = st.waiting.reason
            if st.waiting.reason in FATAL_WAITING:
                state.reason = st.waiting.reason
                msg = " ".join((st.waiting.message or "").split())
                state.detail = f"{st.waiting.reason}: {msg}" if msg else st.waiting.reason
        elif st and st.terminated:
            state.exit_code = st.terminated.exit_code
            state.detail = f"exit {st.terminated.exit_code}: {st.terminated.reason or ''}".rstrip(": ")
            if st.terminated.reason in ("OOMKilled", "DeadlineExceeded"):
                state.reason = st.terminated.reason
    for cond in (status.conditions or []) if status else []:
        if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
            state.reason = "Unschedulable"
            state.detail = f"Unschedulable: {' '.join((cond.message or '').split())}"
    if status and status.reason and not state.reason and status.phase == "Failed":
        state.reason = status.reason  # e.g. Evicted, DeadlineExceeded
        state.detail = state.detail or status.reason
    return state


def job_condition(job: Any) -> tuple[str, str, str] | None:
    """``(Complete|Failed, reason, message)`` of a finished ``V1Job``, else ``None``."""
    for cond in (job.status.conditions or []) if job.status else []:
        if cond.status == "True" and cond.type in ("Complete", "Failed"):
            return cond.type, cond.reason or "", " ".join((cond.message or "").split())
    return None
