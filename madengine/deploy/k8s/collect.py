"""After a Job: every pod's log saved (masked, without the results bundle), and the perf rows read from rank 0's
results bundle (:mod:`madengine.workflow.script`) with the same code as ``run.local``
(:func:`madengine.workflow.steps.finish`): step outcomes, the model's output, ``multiple_results``, artifacts; for
``--repeat N --warmup K`` every measured run's output and CSV travel in the bundle and are combined there
(:func:`madengine.workflow.steps.combine_repeats`), as on every other target.

Files (next to perf.csv): ``<log base>.k8s.<pod>.log`` for every pod, and ``<log base>.run.live.log`` (the log the
rows came from, as ``run.local`` names it); artifacts as with ``run.local`` (``<model>_env.csv``,
``madengine-runs/<run id>/<log base>/``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from madengine.deploy.jobs import job_rows
from madengine.deploy.k8s import client
from madengine.deploy.k8s.objects import JOB_LABEL
from madengine.deploy.k8s.watch import Outcome, PodState, pod_state
from madengine.results.perf_csv import PerfRow
from madengine.workflow import script, steps
from madengine.workflow.credentials import Masker
from madengine.workflow.plan import Plan, RunRequest


def job_pods(api: client.Api, namespace: str, job_name: str) -> list[PodState]:
    """The Job's pods (by the ``madengine/job`` label), oldest first."""
    listing = client.call(f"list pods of Job {namespace}/{job_name}", api.core.list_namespaced_pod, namespace,
                          label_selector=f"{JOB_LABEL}={job_name}")
    return sorted((pod_state(p) for p in listing.items), key=lambda s: (s.index, s.created))


def read_log(api: client.Api, namespace: str, pod: str) -> str:
    """The ``model`` container's whole log, or ``""`` when it never started (HTTP 400) or the pod is gone."""
    # the raw response: some client releases turn the log into the repr of its bytes when they "deserialize" it
    resp = client.call(f"read log of pod {namespace}/{pod}", api.core.read_namespaced_pod_log, pod, namespace,
                       container="model", ok_statuses=(400, 404), _preload_content=False)
    if resp is None:
        return ""
    try:
        return bytes(resp.data).decode("utf-8", errors="replace")
    finally:
        resp.release_conn()


def save_logs(api: client.Api, namespace: str, job_name: str, log_dir: Path, log_base: str,
              pods: list[PodState] | None = None, masker: Masker | None = None) -> dict[str, str]:
    """Read every pod's log and write it, masked and without its results bundle, to
    ``<log_dir>/<log_base>.k8s.<pod>.log``. Returns pod name → the whole log (bundle included)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    logs: dict[str, str] = {}
    for pod in pods if pods is not None else job_pods(api, namespace, job_name):
        text = read_log(api, namespace, pod.name)
        shown = script.split_bundle(text)[0]
        (log_dir / f"{log_base}.k8s.{pod.name}.log").write_text(masker.text(shown) if masker else shown,
                                                                encoding="utf-8")
        logs[pod.name] = text
    return logs


def rank0(pods: list[PodState]) -> PodState | None:
    """The pod whose log carries the results: completion index 0, the one that succeeded, else the newest."""
    candidates = [p for p in pods if p.index == 0] or pods
    succeeded = [p for p in candidates if p.phase == "Succeeded"]
    pool = succeeded or candidates
    return max(pool, key=lambda p: p.created) if pool else None


def rows_from_log(req: RunRequest, plan: Plan, log_text: str, outcome: Outcome | None,
                  pod: PodState | None = None) -> list[PerfRow]:
    """Perf rows of one pod from its log: the results bundle is unpacked into a workspace under ``req.work_root``
    and read like a local run's (:func:`madengine.workflow.steps.finish`: rows, artifacts, workspace removal). A
    log without a bundle (the pod never ran the script, was stopped, or its log was cut) gives one FAILURE row with
    the Job's reason. ``outcome`` ``None`` means "completed" (tests on saved logs). With ``pod``, the rows carry its
    name (``machine_name``) and completion index (``node_rank``).
    """
    _text, bundle = script.split_bundle(log_text)
    where = {"machine_name": pod.name, "node_rank": str(pod.index)} if pod is not None else {}
    if bundle is None:
        if outcome is not None and not outcome.ok:
            reason = outcome.summary() or outcome.state
        else:
            reason = "the pod log holds no results bundle (the step script did not finish, or the log was cut)"
        if pod is not None:
            reason = f"pod {pod.name} (rank {pod.index}): {reason}"
        return [plan.row.model_copy(update={"status": "FAILURE", "reason": reason, **where})]
    suffix = f"-{pod.name}" if pod is not None else ""
    workspace = req.work_root / ".madengine" / "work" / f"k8s_{plan.log_base}-{req.run_id[:8]}{suffix}"
    script.unpack_bundle(bundle, workspace)
    return [r.model_copy(update=where) for r in steps.finish(req, plan, workspace)]


def rows_from_pods(req: RunRequest, plan: Plan, pods: list[PodState], logs: dict[str, str],
                   outcome: Outcome | None) -> list[PerfRow]:
    """The rows of a Job: every pod's (:func:`rows_from_log`), rank by rank — the same rule as every Slurm node's
    rows (:data:`madengine.deploy.jobs.MULTI_NODE_RULE`). Rank 0's artifacts go where ``run.local`` puts them; the
    other ranks' under ``<log dir>/k8s-pods/<pod>/``. A Job without pods is one FAILURE row."""
    if not pods:
        return rows_from_log(req, plan, "", outcome)
    if len(pods) == 1:
        return rows_from_log(req, plan, logs.get(pods[0].name, ""), outcome)
    found: list[PerfRow] = []
    for pod in sorted(pods, key=lambda p: (p.index, p.created)):
        pod_req = req if pod.index == 0 else dataclasses.replace(req, log_dir=req.log_dir / "k8s-pods" / pod.name,
                                                                 artifacts=[])
        pod_req.log_dir.mkdir(parents=True, exist_ok=True)
        found += rows_from_log(pod_req, plan, logs.get(pod.name, ""), outcome, pod)
    return job_rows(found)


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


class LogFilter:
    """What ``k8s.logs`` shows of a pod log stream: whole lines, secrets masked (``mask``), the results bundle left
    out (it is madengine's transport, base64 of the model's raw output)."""

    def __init__(self, mask: Callable[[str], str] = str) -> None:
        self.mask, self.pending, self.in_bundle = mask, "", False

    def feed(self, text: str) -> str:
        """The shown part of the complete lines received so far (a partial last line waits for the rest)."""
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        return "".join(self._line(line) for line in lines)

    def flush(self) -> str:
        """The shown part of what is left."""
        rest, self.pending = self.pending, ""
        return self._line(rest).rstrip("\n") if rest else ""

    def _line(self, line: str) -> str:
        if line.startswith(script.BUNDLE_BEGIN):
            self.in_bundle = True
            return ""
        if self.in_bundle:
            self.in_bundle = not line.startswith(script.BUNDLE_END)
            return ""
        return self.mask(line) + "\n"


def print_logs(api: client.Api, namespace: str, job_name: str, *, follow: bool = False,
               write: Callable[[str], None] = print, mask: Callable[[str], str] = str) -> None:
    """``k8s.logs``: every pod's log (secrets masked with ``mask``, results bundle left out), each after a
    ``==> pod <name> (<phase>) <==`` line; with ``follow`` the newest pod's log is streamed until its container ends
    (waiting, with a watch, for a pending pod to start).

    Raises:
        K8sError: the Job has no pods (never created, or already deleted) or the API is unreachable.
    """
    pods = job_pods(api, namespace, job_name)
    if not pods:
        raise client.K8sError(f"Job {namespace}/{job_name}: no pods (wrong name or namespace, or already deleted); "
                              f"see `madengine k8s.status {job_name} --namespace {namespace}`")
    streamed = max(pods, key=lambda p: p.created) if follow else None
    for pod in pods:
        write(f"==> pod {pod.name} ({pod.describe()}) <==")
        shown = LogFilter(mask)
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
                    text = shown.feed(chunk.decode("utf-8", errors="replace"))
                    if text:
                        write(text.rstrip("\n"))
            finally:
                resp.release_conn()
        else:
            text = shown.feed(read_log(api, namespace, pod.name))
            write(text.rstrip("\n"))
        rest = shown.flush()
        if rest:
            write(rest)
