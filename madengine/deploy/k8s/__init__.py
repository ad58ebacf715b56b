"""The ``k8s`` target: each built image of the manifest runs as a Kubernetes Job that executes the madengine
workflow of one model inside the pod (no Docker in Docker), then status, logs and perf rows come back.

Steps per run (:func:`deploy`): resolve the config (:mod:`.config`); plan every model and build its objects
(:mod:`.objects`) — all validation happens before anything is created; ``dry_run`` writes them as YAML and stops;
otherwise check the cluster (reachable, namespace, GPU resource, image reference), optionally load local images into
containerd (:mod:`.images`), create the objects, follow the Job with watches (:mod:`.watch`), save every pod's log
and append the rows parsed from it with ``deployment_type=k8s`` (:mod:`.collect`), and delete the Job (background
propagation; its ConfigMap and Service are owned by it) unless ``keep_job``. Ctrl-C deletes the Job too.
Only :mod:`.client` imports the ``kubernetes`` package.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from madengine import console
from madengine.deploy import DeployRequest, contract
from madengine.deploy.k8s import client, collect, images, objects
from madengine.deploy.k8s.config import K8sConfig
from madengine.deploy.k8s.names import job_name
from madengine.errors import ConfigError
from madengine.gpu import GpuAssignment
from madengine.hub import Model
from madengine.manifest import BuiltImage
from madengine.run_local import effective_timeout
from madengine.run_spec import RunOptions
from madengine.workflow import data, script, setup, workspace
from madengine.workflow.plan import WORKSPACE, Plan, RunRequest, container_env, plan_run

__all__ = ["K8sConfig", "K8sTarget", "ModelRun", "cancel", "deploy", "plan_model"]

#: Seconds the client keeps waiting after a Job's activeDeadlineSeconds before giving up on the controller.
DEADLINE_GRACE = 120


@dataclass
class ModelRun:
    """One model's planned run: the Job plan, the runner request and run plan (for rows and env) and its objects."""

    plan: objects.JobPlan
    request: RunRequest
    run_plan: Plan
    objects: list[Any]
    log_base: str
    local_image: bool
    image_key: str = ""


def size_from_launcher(cfg: K8sConfig, ctx: dict[str, Any], flags: dict[str, Any]) -> K8sConfig:
    """Pods and GPUs per pod from the context's launcher plan when neither ``k8s.nnodes``/``--nnodes`` nor
    ``k8s.gpus``/``--gpus`` says (as Slurm sizes its allocation): a 2-node torchrun context makes 2 pods, never 1.

    Raises:
        ConfigError: an invalid launcher plan.
    """
    from madengine import launchers

    if launchers.launcher_name(ctx) is None:
        return cfg
    given = set(ctx.get("k8s") or {}) | {k for k, v in flags.items() if v is not None and v is not False}
    plan = launchers.resolve(ctx, nodes=cfg.nnodes if "nnodes" in given else None)
    update: dict[str, Any] = {}
    if "nnodes" not in given and plan.nodes != cfg.nnodes:
        update["nnodes"] = plan.nodes
    if "gpus" not in given and cfg.gpus is None and plan.gpus_per_node:
        update["gpus"] = plan.gpus_per_node
    return cfg.model_copy(update=update) if update else cfg


def _vendor(cfg: K8sConfig, ctx: dict[str, Any]) -> str:
    return cfg.gpu_vendor or str(ctx.get("gpu_vendor") or "AMD").lower()


def plan_model(image_name: str, build: BuiltImage, model: Model, ctx: dict[str, Any], cfg: K8sConfig,
               run_id: str, hub: Path, log_dir: Path, timeout: int | None,
               shared: setup.RunSetup | None = None, options: RunOptions | None = None) -> ModelRun:
    """Plan one model: image, GPUs, environment, data, credentials, the step script and the objects to create.

    ``timeout`` is the CLI's (seconds; ``None`` = the model's own, 0 = none); the model step's limit, and with the
    other steps' limits ``activeDeadlineSeconds``. ``shared`` is the run's tools, credentials and data config
    (default: loaded from ``hub`` and ``ctx``); ``options`` the run options (``keep_model_dir`` keeps the workspace
    unpacked from the results bundle).

    Raises:
        ConfigError: a model needing "all GPUs" (n_gpus -1) without ``--gpus``, a malformed image reference, bad
            scripts, a workspace too large for a ConfigMap, data only a host download can provide, a bad k8s key.
    """
    if ctx.get("docker_cpus"):
        raise ConfigError("context key 'docker_cpus' (pinning to CPUs by index) cannot be honoured in a Pod; ask for "
                          "a CPU count with k8s.cpu / k8s.cpu_limit instead")
    shared = shared or setup.load(hub, ctx)
    vendor = _vendor(cfg, ctx)
    if vendor not in ("amd", "nvidia", "none"):
        raise ConfigError(f"--gpu-vendor/k8s.gpu_vendor: {vendor!r} is not amd, nvidia or none")
    if vendor == "none":
        gpus = 0
    elif cfg.gpus is not None:
        gpus = cfg.gpus
    else:
        gpus = int(model.n_gpus)  # an integer, checked when the record was read
        if gpus < 0:
            raise ConfigError(f"models.json: model {model.name!r} asks for all GPUs of a node (n_gpus {gpus}), "
                              "which Kubernetes cannot express: give --gpus N (or k8s.gpus), or gpu_vendor NONE")
    ref = images.check_reference(build.registry_image or image_name, f"image of model {model.name!r}")
    secret_env = shared.cred_env(model)
    req = RunRequest(model=model, build=build, image=ref, hub=hub, ctx=ctx,
                     gpus=GpuAssignment(vendor.upper(), list(range(gpus)), str(ctx.get("gpu_architecture") or "")),
                     timeout=effective_timeout(model.timeout, timeout), log_dir=log_dir, work_root=log_dir,
                     run_id=run_id, options=options or RunOptions(), deployment_type="k8s", nnodes=cfg.nnodes,
                     tools=shared.tools,
                     sys_env_details=shared.sys_env, masker=shared.masker,
                     extra_env={"BUILD_NUMBER": os.environ.get("BUILD_NUMBER", "")})
    mount = None
    if model.data:
        req.data = data.for_cluster(model.data, shared.data_config, hub=hub, target="Kubernetes")
        source = next(iter(req.data.mounts), None)
        if cfg.data_pvc:
            mount = objects.DataMount(req.data.home, claim=cfg.data_pvc, read_only=req.data.provider_type == "local")
        elif source:
            mount = objects.DataMount(req.data.home, host_path=source, read_only=req.data.mounts[source][1] == "ro")
    run_plan = plan_run(req)
    in_image = cfg.scripts == "image"
    files = workspace.files(workspace.sources(req, run_plan.scripts_dir, run_plan.model_dir,
                                              model_scripts=not in_image))
    text = script.render(req, run_plan, workspace=WORKSPACE, datahome=req.data.home if req.data else "", bundle=True)
    files[f"{script.STATE_DIR}/{script.SCRIPT_NAME}"] = (text.encode(), 0o755)
    env = {k: v for k, v in container_env(req).items() if k not in secret_env} | dict(cfg.env_vars)
    limit = script.total_limit(run_plan, script.runs(req))
    name = job_name(model.name, run_id)
    plan = objects.JobPlan(
        job_name=name, namespace=cfg.namespace, run_id=run_id, model=model.name, image=ref,
        pull_policy=cfg.image_pull_policy or "IfNotPresent", model_dir=run_plan.model_dir, env=env, gpus=gpus,
        gpu_resource=(cfg.gpu_resource or objects.GPU_RESOURCES.get(vendor)) if gpus else None, config=cfg,
        files=files, active_deadline=int(limit) if limit else None,
        image_scripts_dir=(cfg.image_scripts_dir or f"{WORKSPACE}/{run_plan.model_dir}") if in_image else None,
        secret_env=secret_env, data=mount,
        labels={**cfg.labels, **objects.common_labels(model.name, run_id, name)})
    objects.add_launcher_env(plan, ctx)
    return ModelRun(plan, req, run_plan, objects.build_objects(plan), run_plan.log_base,
                    local_image=not build.registry_image, image_key=image_name)


def plan_all(request: DeployRequest, cfg: K8sConfig, run_id: str) -> list[ModelRun]:
    """Plan every built image of the manifest (nothing is sent to the cluster)."""
    hub = request.hub or Path(request.manifest.hub or ".")
    log_dir = request.output.resolve().parent
    shared = setup.load(hub, request.ctx, tools_config=request.tools_config, data_config=request.data_config,
                        sys_env_details=request.sys_env_details)
    runs = []
    for image, build in _one_image_per_model(request.manifest, request.ctx):
        runs.append(plan_model(image, build, request.manifest.model_for(image), request.ctx, cfg, run_id, hub,
                               log_dir, request.timeout, shared, request.options))
    return runs


def _one_image_per_model(manifest: Any, ctx: dict[str, Any]) -> list[tuple[str, BuiltImage]]:
    """The images to run as Jobs: of the per-architecture images of one model (``--target-archs``) the one for the
    context's GPU architecture (``docker_env_vars.MAD_SYSTEM_GPU_ARCHITECTURE``), since a pod cannot pick its own.

    Raises:
        ConfigError: several architectures and none named (names them and the key to set).
    """
    arch = str((ctx.get("docker_env_vars") or {}).get("MAD_SYSTEM_GPU_ARCHITECTURE") or "")
    chosen: list[tuple[str, BuiltImage]] = []
    groups: dict[tuple[str, str], list[tuple[str, BuiltImage]]] = {}
    for image, build in manifest.built_images.items():
        if build.gpu_architecture:
            groups.setdefault((build.model, build.dockerfile), []).append((image, build))
        else:
            chosen.append((image, build))
    for (model, _), members in groups.items():
        match = [m for m in members if m[1].gpu_architecture == arch] or (members if len(members) == 1 else [])
        if not match:
            archs = ", ".join(b.gpu_architecture for _, b in members)
            raise ConfigError(f"model {model!r} has images for {archs}: name the cluster's GPU architecture with "
                              "--additional-context '{\"docker_env_vars\": {\"MAD_SYSTEM_GPU_ARCHITECTURE\": "
                              "\"<arch>\"}}' (a Pod cannot pick its own image)")
        chosen.append(match[0])
    return chosen


def preflight(api: client.Api, cfg: K8sConfig, runs: list[ModelRun], echo: Any = console.progress) -> None:
    """Checks before anything is created: the cluster answers, the namespace exists (or is created with
    ``create_namespace``), some node offers the GPU resource (a warning otherwise: it may be autoscaled).

    Raises:
        K8sError: the cluster is unreachable.
        ConfigError: the namespace is missing and ``create_namespace`` is off.
    """
    version = client.server_version(api)
    echo(f"cluster {api.where}: Kubernetes {version}")
    match = re.match(r"v?(\d+)\.(\d+)", version)
    if cfg.nnodes > 1 and match and (int(match.group(1)), int(match.group(2))) < (1, 22):
        raise ConfigError(f"--nnodes/k8s.nnodes {cfg.nnodes}: multi-node runs need Indexed Jobs (Kubernetes 1.22 or "
                          f"newer); this cluster is {version}, which would silently run unranked pods")
    m = client.models()
    try:
        ns = client.call(f"read namespace {cfg.namespace}", api.core.read_namespace, cfg.namespace,
                         ok_statuses=(404,))
    except client.K8sError as e:
        if e.status != 403:
            raise
        ns = True  # may not read namespaces (namespace-scoped RBAC): creating the Job will tell
    if ns is None:
        if not cfg.create_namespace:
            raise ConfigError(f"--namespace/k8s.namespace: namespace {cfg.namespace!r} does not exist on "
                              f"{api.where}; create it or pass --create-namespace")
        client.call(f"create namespace {cfg.namespace}", api.core.create_namespace,
                    m.V1Namespace(metadata=m.V1ObjectMeta(name=cfg.namespace)))
        echo(f"created namespace {cfg.namespace}")
    wanted = {r.plan.gpu_resource for r in runs if r.plan.gpus and r.plan.gpu_resource}
    if wanted:
        try:
            nodes = client.call("list nodes", api.core.list_node).items
        except client.K8sError as e:
            if e.status not in (401, 403):
                raise
            nodes = None  # not allowed to list nodes: nothing to check
        for resource in sorted(wanted):
            if nodes is not None and not any(int(((n.status.allocatable or {}) if n.status else {}).get(resource, "0")
                                                  or 0) > 0 for n in nodes):
                console.warn(f"no node of {api.where} has {resource} allocatable; the pods will stay Pending until "
                             "one does (is the GPU device plugin installed?)")


def _create(api: client.Api, obj: Any) -> Any:
    ns, kind, name = obj.metadata.namespace, obj.kind, obj.metadata.name
    fn = {"ConfigMap": api.core.create_namespaced_config_map, "Service": api.core.create_namespaced_service,
          "Secret": api.core.create_namespaced_secret, "Job": api.batch.create_namespaced_job}[kind]
    return client.call(f"create {kind} {ns}/{name}", fn, ns, obj)


def delete_objects(api: client.Api, namespace: str, job: str, configmap: str | None = None,
                   service: str | None = None, secret: str | None = None) -> None:
    """Delete a run's Job (background propagation: its pods go too) and its ConfigMap/Service; absent ones are
    fine. Pods that never started (Pending: image pull, scheduling) are deleted at once (grace period 0): there is
    no process to stop, and the kubelet would otherwise keep them for about a minute. Errors are retried by
    :func:`client.call` and then raised."""
    m = client.models()
    body = m.V1DeleteOptions(propagation_policy="Background")
    client.call(f"delete Job {namespace}/{job}", api.batch.delete_namespaced_job, job, namespace, body=body,
                ok_statuses=(404,))
    for pod in collect.job_pods(api, namespace, job):
        if pod.phase == "Pending":
            client.call(f"delete pod {namespace}/{pod.name}", api.core.delete_namespaced_pod, pod.name, namespace,
                        grace_period_seconds=0, ok_statuses=(404,))
    if configmap:
        client.call(f"delete ConfigMap {namespace}/{configmap}", api.core.delete_namespaced_config_map, configmap,
                    namespace, ok_statuses=(404,))
    if service:
        client.call(f"delete Service {namespace}/{service}", api.core.delete_namespaced_service, service,
                    namespace, ok_statuses=(404,))
    if secret:
        client.call(f"delete Secret {namespace}/{secret}", api.core.delete_namespaced_secret, secret, namespace,
                    ok_statuses=(404,))


def create_run(api: client.Api, run: ModelRun) -> None:
    """Create the run's objects (ConfigMap and Service first, the Job last), then make the Job their owner so the
    garbage collector removes them with it. A failure deletes what was already created."""
    created: list[Any] = []
    try:
        for obj in run.objects:
            created.append(_create(api, obj))
        job_obj = created[-1]
        m = client.models()
        owner = [m.V1OwnerReference(api_version="batch/v1", kind="Job", name=job_obj.metadata.name,
                                    uid=job_obj.metadata.uid, block_owner_deletion=False)]
        patch = {"metadata": {"ownerReferences": client.serialize(owner)}}
        for obj in created[:-1]:
            fn = {"ConfigMap": api.core.patch_namespaced_config_map, "Secret": api.core.patch_namespaced_secret,
                  "Service": api.core.patch_namespaced_service}[obj.kind]
            client.call(f"set owner of {obj.kind} {obj.metadata.name}", fn, obj.metadata.name,
                        obj.metadata.namespace, patch)
    except BaseException:
        _cleanup(api, run, quiet=True)
        raise


def _cleanup(api: client.Api, run: ModelRun, quiet: bool = False) -> None:
    p = run.plan
    try:
        delete_objects(api, p.namespace, p.job_name, p.configmap_name, p.service_name if p.nnodes > 1 else None,
                       p.secret_name if p.secret_env else None)
    except Exception as e:  # noqa: BLE001 - never hide the original error; say how to clean up by hand
        if not quiet:
            console.warn(f"could not delete Job {p.namespace}/{p.job_name}: {e}; run `inv k8s.cancel "
                         f"{p.job_name} --namespace {p.namespace}`")


from madengine.deploy.k8s.target import K8sTarget  # noqa: E402 - the target builds on the planning above

deploy = contract.deployer(K8sTarget)


def cancel(api: client.Api, namespace: str, job: str) -> bool:
    """``k8s.cancel``: delete Job ``job`` (background propagation) and its madengine ConfigMap/Secret/Service.

    Returns:
        False when there was no such Job.
    """
    existing = client.call(f"read Job {namespace}/{job}", api.batch.read_namespaced_job, job, namespace,
                           ok_statuses=(404,))
    delete_objects(api, namespace, job, objects.configmap_name(job), job, objects.secret_name(job))
    return existing is not None
