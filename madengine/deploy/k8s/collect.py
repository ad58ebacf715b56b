"""After a Job: every pod's log saved, the perf rows parsed from the log of rank 0 with the same parser as
``run.local`` (:func:`madengine.workflow.output.rows_from_output`), and the Job's outcome folded into the rows.

Files (next to perf.csv): ``<log base>.k8s.<pod>.log`` for every pod, and ``<log base>.run.live.log`` (the log the
rows came from, as ``run.local`` names it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from madengine.deploy.k8s import client
from madengine.deploy.k8s.objects import CSV_BEGIN, CSV_END, JOB_LABEL
from madengine.deploy.k8s.watch import Outcome, PodState, pod_state
from madengine.results.perf_csv import PerfRow
from madengine.workflow.output import rows_from_output
from madengine.workflow.plan import RunRequest


def job_pods(api: client.Api, namespace: str, job_name: str) -> list[PodState]:
    """The Job's pods (by the ``madengine/job`` label), oldest first."""
    listing = client.call(f"list pods of Job {namespace}/{job_name}", api.core.list_namespaced_pod, namespace,
                          label_selector=f"{JOB_LABEL}={job_name}")
    return sorted((pod_state(p) for p in listing.items), key=lambda s: (s.index, s.created))


def read_log(api: client.Api, namespace: str, pod: str) -> str:
    """The ``model`` container's whole log, or ``""`` when it never started (HTTP 400) or the pod is gone."""
    text = client.call(f"read log of pod {namespace}/{pod}", api.core.read_namespaced_pod_log, pod, namespace,
                       container="model", ok_statuses=(400, 404))
    return text or ""


def save_logs(api: client.Api, namespace: str, job_name: str, log_dir: Path, log_base: str,
              pods: list[PodState] | None = None) -> dict[str, str]:
    """Read every pod's log and write it to ``<log_dir>/<log_base>.k8s.<pod>.log``. Returns pod name → text."""
    log_dir.mkdir(parents=True, exist_ok=True)
    logs: dict[str, str] = {}
    for pod in pods if pods is not None else job_pods(api, namespace, job_name):
        text = read_log(api, namespace, pod.name)
        (log_dir / f"{log_base}.k8s.{pod.name}.log").write_text(text, encoding="utf-8")
        logs[pod.name] = text
    return logs


def rank0(pods: list[PodState]) -> PodState | None:
    """The pod whose log carries the results: completion index 0, the one that succeeded, else the newest."""
    candidates = [p for p in pods if p.index == 0] or pods
    succeeded = [p for p in candidates if p.phase == "Succeeded"]
    pool = succeeded or candidates
    return max(pool, key=lambda p: p.created) if pool else None


def extract_csv(log_text: str) -> str | None:
    """The ``multiple_results`` CSV the entry script printed between :data:`CSV_BEGIN` and :data:`CSV_END`."""
    if CSV_BEGIN not in log_text:
        return None
    body = log_text.split(CSV_BEGIN, 1)[1].split(CSV_END, 1)[0]
    return body.strip("\n") + "\n"


def rows_from_log(req: RunRequest, row: PerfRow, log_text: str, outcome: Outcome | None) -> list[PerfRow]:
    """Perf rows from rank 0's log, then FAILURE with the Job's reason unless the Job completed.

    The log is what the model printed (``performance: <value> <metric>``, error markers); a ``multiple_results``
    CSV comes from the markers. ``outcome`` ``None`` means "completed" (used by tests on saved logs).
    """
    with tempfile.TemporaryDirectory(prefix="madengine-k8s-") as tmp:
        model_dir = Path(tmp)
        multiple = req.model.get("multiple_results")
        csv_text = extract_csv(log_text) if multiple else None
        if multiple and csv_text is not None:
            (model_dir / str(multiple)).write_text(csv_text, encoding="utf-8")
        rows = rows_from_output(req, row, log_text, model_dir, model_dir)
    if outcome is not None and not outcome.ok:
        reason = outcome.summary() or outcome.state
        rows = [r.model_copy(update={"status": "FAILURE", "reason": reason}) for r in rows]
    return rows


def duration(outcome: Outcome, fallback: float) -> float:
    """Seconds from the Job's start to its completion (API times), else ``fallback``."""
    if outcome.start_time is not None and outcome.completion_time is not None:
        return max(0.0, (outcome.completion_time - outcome.start_time).total_seconds())
    return fallback


def describe_job(api: client.Api, namespace: str, job_name: str) -> dict[str, Any]:
    """``k8s.status``: the Job's state as a dict (``name``, ``namespace``, ``state``, ``reason``, ``message``,
    ``active``/``succeeded``/``failed`` pod counts, ``pods``: name → phase text).

    Raises:
        K8sError: no such Job (HTTP 404) or the API is unreachable.
    """
    job = client.call(f"read Job {namespace}/{job_name}", api.batch.read_namespaced_job, job_name, namespace)
    status = job.status
    state, reason, message = "Running", "", ""
    for cond in (status.conditions or []) if status else []:
        if cond.status == "True" and cond.type in ("Complete", "Failed"):
            state, reason, message = cond.type, cond.reason or "", " ".join((cond.message or "").split())
    pods = job_pods(api, namespace, job_name)
    if state == "Running" and not (status and status.active) and all(p.phase == "Pending" for p in pods):
        state = "Pending"
    return {"name": job_name, "namespace": namespace, "state": state, "reason": reason, "message": message,
            "active": (status.active or 0) if status else 0, "succeeded": (status.succeeded or 0) if status else 0,
            "failed": (status.failed or 0) if status else 0, "pods": {p.name: p.describe() for p in pods}}


def print_logs(api: client.Api, namespace: str, job_name: str, *, follow: bool = False,
               write: Callable[[str], None] = print) -> None:
    """``k8s.logs``: every pod's log, each after a ``==> pod <name> (<phase>) <==`` line; with ``follow`` the newest
    pod's log is streamed until its container ends (waiting, with a watch, for a pending pod to start).

    Raises:
        K8sError: the Job has no pods (never created, or already deleted) or the API is unreachable.
    """
    pods = job_pods(api, namespace, job_name)
    if not pods:
        raise client.K8sError(f"Job {namespace}/{job_name}: no pods (wrong name or namespace, or already deleted); "
                              "see `inv k8s.status JOB`")
    streamed = max(pods, key=lambda p: p.created) if follow else None
    for pod in pods:
        write(f"==> pod {pod.name} ({pod.describe()}) <==")
        if pod is streamed and pod.phase == "Pending" and not pod.reason:
            for _typ, obj, _rv in client.watch(f"wait for pod {namespace}/{pod.name}", api.core.list_namespaced_pod,
                                                namespace, resource_version=None, timeout_seconds=600,
                                                field_selector=f"metadata.name={pod.name}"):
                current = pod_state(obj)
                if current.phase != "Pending" or current.reason:
                    if current.reason:
                        write(f"pod {pod.name}: {current.describe()}")
                    break
        if pod is streamed:
            resp = client.call(f"follow log of pod {namespace}/{pod.name}", api.core.read_namespaced_pod_log,
                               pod.name, namespace, container="model", follow=True, _preload_content=False,
                               _request_timeout=None)
            try:
                for chunk in resp.stream(4096):
                    write(chunk.decode("utf-8", errors="replace").rstrip("\n"))
            finally:
                resp.release_conn()
        else:
            write(read_log(api, namespace, pod.name).rstrip("\n"))
