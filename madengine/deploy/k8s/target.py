"""The ``k8s`` target class (:class:`madengine.deploy.contract.Target`): planning comes from
:mod:`madengine.deploy.k8s` (``plan_all``, ``plan_model``, ``preflight``, object creation and deletion), polling from
:mod:`.poll`, collection from :mod:`.collect`."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from madengine import console
from madengine.deploy import DeployRequest
from madengine.deploy import k8s as planning
from madengine.deploy.jobs import JobRecord, JobStatus
from madengine.deploy.k8s import client, collect, images, manifests
from madengine.deploy.k8s.config import K8sConfig, resolve
from madengine.deploy.k8s.poll import K8sPoll
from madengine.deploy.k8s.watch import Outcome
from madengine.errors import ConfigError
from madengine.manifest import Manifest
from madengine.results.perf_csv import PerfRow
from madengine.run_spec import RunOptions
from madengine.validation import int_flag
from madengine.workflow import script, setup, steps

ModelRun = planning.ModelRun


class K8sTarget:
    """The ``k8s`` target (:class:`madengine.deploy.contract.Target`): one Job per model (an Indexed Job across
    ``nnodes`` pods), created through the API, polled two list calls per tick (:class:`.poll.K8sPoll`), collected
    from the pods' logs, and deleted (unless ``keep_job``). Constructed for a run (``K8sTarget(request)``) or for a
    recorded Job (:meth:`attach`, which plans it again from the spec saved at submission)."""

    name = "k8s"
    reattach = "madengine jobs.status {job}"
    error = client.K8sError

    def __init__(self, request: DeployRequest | None = None) -> None:
        self.request = request
        self.cfg = K8sConfig()
        self.runs: dict[str, ModelRun] = {}
        self.dry_run, self.wait = False, True
        self.first, self.cap, self.unknown_timeout = 0.5, 3.0, 600.0
        self._api: client.Api | None = None
        self._poll: K8sPoll | None = None
        self.limits: dict[str, float] = {}
        if request is not None:
            flags = dict(request.target_options)
            for key in ("gpus", "nnodes"):
                flags[key] = int_flag(flags.get(key), f"--{key.replace('_', '-')}")
            self.cfg = planning.size_from_launcher(resolve(request.manifest.deployment_config.get("k8s"),
                                                  request.ctx.get("k8s"), flags), request.ctx, flags)
            self.dry_run, self.wait = self.cfg.dry_run, self.cfg.wait

    @classmethod
    def attach(cls, record: JobRecord) -> K8sTarget:
        """A target for a recorded Job: its cluster and namespace, and its run planned again from the spec saved
        at submission (so its rows read the same way).

        Raises:
            ConfigError: the spec file is gone or unreadable.
        """
        target = cls()
        spec_path = Path(str(record.details.get("spec", "")))
        try:
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            flags = f" --namespace {record.details.get('namespace') or 'default'}"
            if record.details.get("kubeconfig"):
                flags += f" --kubeconfig {record.details['kubeconfig']}"
            raise ConfigError(f"Job {record.job_id}: its run spec {spec_path} is unreadable ({e}); inspect it with "
                              f"`madengine k8s.status {record.job_id}{flags}`") from None
        target.cfg = K8sConfig.model_validate(spec["k8s"])
        manifest = Manifest.model_validate(spec["manifest"])
        image, build = next(iter(manifest.built_images.items()))
        options = RunOptions(**spec["options"])
        hub = Path(spec["hub"])
        shared = setup.load(hub, spec["ctx"], tools_config=options.tools_config, data_config=options.data_config,
                            sys_env_details=options.sys_env_details)
        run = planning.plan_model(image, build, manifest.model_for(image), spec["ctx"], target.cfg, spec["run_id"],
                                  hub, Path(spec["log_dir"]), options.timeout, shared, options)
        target.runs[run.plan.job_name] = run
        return target

    @property
    def api(self) -> client.Api:
        """The API client (connected on first use)."""
        if self._api is None:
            self._api = client.connect(self.cfg.kubeconfig, self.cfg.context)
        return self._api

    def plan(self) -> list[ModelRun]:
        """Plan every model and build its objects (nothing is sent)."""
        assert self.request is not None
        self.run_id = uuid.uuid4().hex[:8]
        runs = planning.plan_all(self.request, self.cfg, self.run_id)
        self.runs = {r.plan.job_name: r for r in runs}
        return runs

    def render(self, planned: Sequence[ModelRun]) -> list[Path]:
        """``--dry-run``: the objects as YAML, one file per object, under ``manifests_dir`` (default
        ``k8s-manifests/<run id>/<job>/`` next to perf.csv); Secrets with masked values."""
        assert self.request is not None
        base = Path(self.cfg.manifests_dir) if self.cfg.manifests_dir else \
            self.request.output.resolve().parent / "k8s-manifests"
        paths = []
        for run in planned:
            written = manifests.write_manifests(run.objects, base / self.run_id / run.plan.job_name)
            console.progress(f"dry-run: {run.plan.model}: wrote {len(written)} object(s) to {written[0].parent}")
            paths.extend(written)
        return paths

    def preflight(self, planned: Sequence[ModelRun]) -> None:
        """The cluster answers, the namespace exists, some node offers the GPU resource (:func:`preflight`)."""
        for run in planned:
            if run.local_image and not self.cfg.load_images:
                console.warn(f"image {run.plan.image} of {run.plan.model} is a local tag (no registry_image): every "
                             "node must already have it (k8s.load_images, `bash dev/k8s.sh load`, or build with "
                             "--registry)")
        planning.preflight(self.api, self.cfg, list(planned))

    def submit(self, run: ModelRun) -> JobRecord:
        """Load the image (``load_images``), create the objects, save the spec :meth:`attach` reads."""
        assert self.request is not None
        plan = run.plan
        if self.cfg.load_images and run.local_image:
            t = time.monotonic()
            images.load_into_containerd(plan.image, self.cfg.load_images)
            console.progress(f"loaded {plan.image} into {self.cfg.load_images} in {time.monotonic() - t:.1f} s")
        output = self.request.output.resolve()
        spec_path = output.parent / ".madengine" / "k8s" / self.run_id / f"{plan.job_name}.json"
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        image = run.image_key
        one = Manifest(built_images={image: self.request.manifest.built_images[image]},
                       built_models={image: run.request.model}).model_dump(mode="json")
        spec_path.write_text(json.dumps({
            "manifest": one, "ctx": self.request.ctx, "hub": str(run.request.hub), "run_id": self.run_id,
            "k8s": self.cfg.model_dump(mode="json"), "options": dataclasses.asdict(self.request.options),
            "log_dir": str(run.request.log_dir)}, indent=2), encoding="utf-8")
        planning.create_run(self.api, run)
        if plan.active_deadline:
            self.limits[plan.job_name] = time.monotonic() + plan.active_deadline + planning.DEADLINE_GRACE
        console.progress(f"created Job {plan.namespace}/{plan.job_name} ({plan.nnodes} pod(s), image {plan.image}"
                         + (f", deadline {plan.active_deadline} s" if plan.active_deadline else "") + ")")
        return JobRecord(job_id=plan.job_name, target="k8s", model=plan.model, output=str(output),
                         nnodes=plan.nnodes, gpus_per_node=plan.gpus, docker_image=plan.image,
                         docker_file=run.request.build.dockerfile,
                         submitted=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         details={"namespace": plan.namespace, "kubeconfig": self.cfg.kubeconfig,
                                  "context": self.cfg.context, "keep_job": self.cfg.keep_job, "spec": str(spec_path)})

    def poll(self, job_ids: list[str]) -> dict[str, JobStatus]:
        """Two list calls for all of ``job_ids`` (:class:`.poll.K8sPoll`)."""
        if self._poll is None:
            self._poll = K8sPoll(self.api, self.cfg.namespace, schedule_timeout=self.cfg.schedule_timeout,
                                 limits=self.limits, echo=console.progress)
        return self._poll(job_ids)

    def collect(self, record: JobRecord, status: JobStatus) -> list[PerfRow]:
        """Save every pod's log, read the rows of every pod's results bundle (:func:`.collect.rows_from_pods`), then
        delete the Job (unless ``keep_job``)."""
        run = self.runs[record.job_id]
        plan, req = run.plan, run.request
        outcome = (self._poll.outcomes.get(record.job_id) if self._poll else None) or \
            Outcome("Complete" if status.status == "completed" else "Failed", status.state, status.reason)
        try:
            pods = collect.job_pods(self.api, plan.namespace, plan.job_name)
            logs = collect.save_logs(self.api, plan.namespace, plan.job_name, req.log_dir, run.log_base, pods,
                                     req.masker)
            main = collect.rank0(pods)
            text = logs.get(main.name, "") if main else ""
            name = f"{run.log_base}.run.live.log"
            run_log = steps.run_log_path(req, name)
            run_log.write_text(req.masker.text(script.split_bundle(text)[0]), encoding="utf-8")
            steps.point_latest(req.log_dir / name, run_log)
            latest = {}  # a retried pod (backoff_limit > 0): the newest of each rank
            for pod in sorted(pods, key=lambda p: p.created):
                latest[pod.index] = pod
            return collect.rows_from_pods(req, run.run_plan, list(latest.values()), logs, outcome)
        finally:
            if not self.cfg.keep_job:
                planning._cleanup(self.api, run)
            else:
                console.progress(f"keep-job: Job {plan.namespace}/{plan.job_name} kept; delete it with "
                                 f"`inv k8s.cancel {plan.job_name} --namespace {plan.namespace}`")

    def cancel(self, records: list[JobRecord]) -> None:
        """Delete the Jobs with their ConfigMaps, Secrets and Services."""
        for record in records:
            run = self.runs.get(record.job_id)
            if run is not None:
                planning._cleanup(self.api, run)
            else:
                planning.cancel(self.api, str(record.details.get("namespace") or self.cfg.namespace), record.job_id)

    def logs(self, record: JobRecord, follow: bool, write: Callable[[str], None]) -> JobStatus:
        """Every pod's log, secrets masked (:func:`.collect.print_logs`), then the Job's status."""
        namespace = str(record.details.get("namespace") or self.cfg.namespace)
        run = self.runs.get(record.job_id)
        collect.print_logs(self.api, namespace, record.job_id, follow=follow, write=lambda t: write(t + "\n"),
                           mask=run.request.masker.text if run else str)
        return self.poll([record.job_id]).get(record.job_id) or JobStatus(record.job_id, "unknown")

    def close(self) -> None:
        """Close the API client."""
        if self._api is not None:
            self._api.close()
            self._api = None


