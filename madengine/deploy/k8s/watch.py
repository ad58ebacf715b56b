"""Following a Job to its end with the API's watch: the Job's conditions decide success or failure, its pods'
states decide when to give up early.

Two watches (the Job by name, its pods by the ``madengine/job`` label) run in background threads and feed one
queue; each lists first (so no event between list and watch is lost), re-lists after an expired resource version
(HTTP 410), and retries a broken connection with backoff. The main thread only waits on the queue, so Ctrl-C stops
it at once.

The outcome table (reasons are the Kubernetes API's own):

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

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from madengine.deploy.k8s import client
from madengine.deploy.k8s.objects import JOB_LABEL, NODE_RANK_ANNOTATION

#: Container waiting reasons after which the pod never runs (with ``restartPolicy: Never``).
FATAL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                           "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff",
                           "RunContainerError"})
#: Seconds one watch request stays open before it is renewed.
WATCH_SECONDS = 60
#: Consecutive watch failures tolerated (with backoff) before the wait fails.
MAX_WATCH_FAILURES = 6


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


def _job_condition(job: Any) -> tuple[str, str, str] | None:
    for cond in (job.status.conditions or []) if job.status else []:
        if cond.status == "True" and cond.type in ("Complete", "Failed"):
            return cond.type, cond.reason or "", " ".join((cond.message or "").split())
    return None


class _Pump(threading.Thread):
    """List then watch one kind of object, forever, into ``out`` as ``(kind, event type, object)``."""

    def __init__(self, kind: str, list_fn: Callable[..., Any], namespace: str, out: queue.Queue[Any],
                 stop: threading.Event, **selector: Any) -> None:
        super().__init__(daemon=True, name=f"madengine-k8s-watch-{kind}")
        self.kind, self.list_fn, self.namespace, self.out, self.stop = kind, list_fn, namespace, out, stop
        self.selector: dict[str, Any] = selector

    def run(self) -> None:
        rv: str | None = None
        failures = 0
        what = f"watch {self.kind} in namespace {self.namespace}"
        while not self.stop.is_set():
            try:
                if rv is None:
                    listing = client.call(f"list {self.kind}", self.list_fn, self.namespace, **self.selector)
                    for item in listing.items:
                        self.out.put((self.kind, "SYNC", item))
                    rv = listing.metadata.resource_version
                for typ, obj, new_rv in client.watch(what, self.list_fn, self.namespace, resource_version=rv,
                                                     timeout_seconds=WATCH_SECONDS, **self.selector):
                    if self.stop.is_set():
                        return
                    rv = new_rv or rv
                    self.out.put((self.kind, typ, obj))
                failures = 0
            except client.K8sError as e:
                if e.status == 410:  # resource version too old: list again
                    rv = None
                    continue
                failures += 1
                if failures > MAX_WATCH_FAILURES:
                    self.out.put(("error", "", e))
                    return
                self.stop.wait(min(2.0 ** failures * 0.25, 8.0))
            except BaseException as e:  # noqa: BLE001 - hand anything unexpected to the main thread
                self.out.put(("error", "", e))
                return


def wait(api: client.Api, namespace: str, job_name: str, *, timeout: float | None = None,
         schedule_timeout: float = 0.0, echo: Callable[[str], None] = lambda _: None) -> Outcome:
    """Follow Job ``namespace/job_name`` and its pods until it completes, fails, or cannot run.

    Args:
        timeout: seconds to wait in all (``None``: no limit); the Job's own ``activeDeadlineSeconds`` normally
            ends it first, this is the client-side safety net (outcome reason ``WaitTimeout``).
        schedule_timeout: seconds a pod may stay ``Unschedulable`` before the wait gives up.
        echo: receives one line per pod phase change.

    Raises:
        K8sError: the watches failed :data:`MAX_WATCH_FAILURES` times in a row.
        KeyboardInterrupt: passed through at once (the caller deletes the Job).
    """
    events: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    pumps = [
        _Pump("job", api.batch.list_namespaced_job, namespace, events, stop, field_selector=f"metadata.name={job_name}"),
        _Pump("pod", api.core.list_namespaced_pod, namespace, events, stop, label_selector=f"{JOB_LABEL}={job_name}"),
    ]
    for p in pumps:
        p.start()
    pods: dict[str, PodState] = {}
    unschedulable_since: dict[str, float] = {}
    limit = time.monotonic() + timeout if timeout else None
    job_times: tuple[Any, Any] = (None, None)

    def done(state: str, reason: str, message: str = "") -> Outcome:
        return Outcome(state, reason, message, pods, *job_times)

    try:
        while True:
            now = time.monotonic()
            if limit is not None and now >= limit:
                return done("Failed", "WaitTimeout", f"no result after {timeout:.0f} s")
            for name, since in unschedulable_since.items():
                if now - since >= schedule_timeout:
                    return done("Failed", "Unschedulable", pods[name].detail.removeprefix("Unschedulable: "))
            try:
                kind, typ, obj = events.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "error":
                raise obj
            if kind == "job":
                if typ == "DELETED":
                    return done("Failed", "Deleted", f"Job {namespace}/{job_name} was deleted")
                if obj.status:
                    job_times = (obj.status.start_time, obj.status.completion_time)
                cond = _job_condition(obj)
                if cond:
                    return done(*cond)
                continue
            state = pod_state(obj)
            previous = pods.get(state.name)
            pods[state.name] = state
            if previous is None or previous.describe() != state.describe():
                echo(f"pod {state.name}: {state.describe()}")
            if state.reason == "Unschedulable":
                unschedulable_since.setdefault(state.name, now)
            else:
                unschedulable_since.pop(state.name, None)
            if state.reason in FATAL_WAITING:
                return done("Failed", state.reason, state.detail.removeprefix(f"{state.reason}: "))
    finally:
        stop.set()
