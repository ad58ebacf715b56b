"""The Kubernetes objects of one model run, built as the official client's model objects (the one source of truth:
``--dry-run`` serializes the same objects to YAML (:mod:`madengine.deploy.k8s.manifests`), and the tests validate
them against the Kubernetes schema).

For each model: a ConfigMap holding its workspace (madengine's and the hub's ``scripts/common``, the model's scripts
directory unless they are in the image, every pre/post/tool/data script, and the step script of
:mod:`madengine.workflow.script`), a Secret with the model's credential variables (when it names a ``cred``), a Job
(``restartPolicy: Never``; an *Indexed* Job with ``nnodes`` completions and parallelism when ``nnodes > 1``) and,
for multi-node runs, a headless Service so that pod ``i`` is reachable as ``<job>-<i>.<service>`` (pod 0 is
``MASTER_ADDR``).

Inside the pod, a few lines of ``sh`` (:func:`entry_script`) copy the workspace to ``/myworkspace`` and start the
step script with the image's own ``bash``: the same steps as ``run.local`` (environment capture, pre-scripts, data,
tools, the model under its timeout, post-scripts), no madengine needed in the image. The script ends by printing its
results (step outcomes, the model's output, ``<model>_env.csv``, the ``multiple_results`` CSV, tool outputs) as a
bundle in the pod log, which madengine reads back; with ``results_pvc`` the workspace is also copied to
``<results_mount>/<job>/<pod>/``.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from madengine.deploy.k8s import client
from madengine.deploy.k8s.config import K8sConfig
from madengine.deploy.k8s.fields import model_from_dict
from madengine.deploy.k8s.names import dns_label, label_value
from madengine.errors import ConfigError

WORKSPACE = "/myworkspace"
SCRIPTS_MOUNT = "/madengine/scripts"
#: The step script's path in the workspace.
STEP_SCRIPT = ".madengine/steps.sh"
#: A ConfigMap holds at most 1 MiB (etcd's object limit); keep room for metadata.
CONFIGMAP_MAX_BYTES = 1_000_000
GPU_RESOURCES = {"amd": "amd.com/gpu", "nvidia": "nvidia.com/gpu"}

APP_LABEL = "app.kubernetes.io/name"
MODEL_LABEL = "madengine/model"
RUN_LABEL = "madengine/run-id"
JOB_LABEL = "madengine/job"
KUEUE_LABEL = "kueue.x-k8s.io/queue-name"
NODE_RANK_ANNOTATION = "batch.kubernetes.io/job-completion-index"

_CM_KEY_INVALID = re.compile(r"[^-._a-zA-Z0-9]")


@dataclass
class DataMount:
    """Where a model's data comes from in the pod: a PersistentVolumeClaim (``claim``, optional ``sub_path``) or a
    path on the node (``host_path``), mounted at ``home`` (``MAD_DATAHOME``)."""

    home: str
    claim: str | None = None
    sub_path: str | None = None
    host_path: str | None = None
    read_only: bool = True


@dataclass
class JobPlan:
    """Everything one model's objects are made of.

    ``env`` is the container environment without the distributed contract (added here) and without secrets;
    ``secret_env`` the credential variables (they go into a Secret, never into the Job); ``files`` the workspace
    (relative path → (bytes, mode)), step script included; ``image_scripts_dir`` where the model's scripts are in the
    image (``k8s.scripts: "image"``), else ``None``; ``active_deadline`` seconds (``None`` = no limit).
    """

    job_name: str
    namespace: str
    run_id: str
    model: str
    image: str
    pull_policy: str
    model_dir: str
    env: dict[str, str]
    gpus: int
    gpu_resource: str | None
    config: K8sConfig
    files: dict[str, tuple[bytes, int]]
    active_deadline: int | None = None
    image_scripts_dir: str | None = None
    secret_env: dict[str, str] = field(default_factory=dict)
    data: DataMount | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def nnodes(self) -> int:
        """Pods (nodes) of the run."""
        return self.config.nnodes

    @property
    def service_name(self) -> str:
        """The headless Service of a multi-node run (same name as the Job)."""
        return self.job_name

    @property
    def configmap_name(self) -> str:
        """The scripts ConfigMap (``<job>-scripts``)."""
        return configmap_name(self.job_name)

    @property
    def secret_name(self) -> str:
        """The credentials Secret (``<job>-cred``)."""
        return secret_name(self.job_name)

    @property
    def master_addr(self) -> str:
        """Pod 0's address: its stable DNS name (multi-node) or ``localhost``."""
        return f"{self.job_name}-0.{self.service_name}" if self.nnodes > 1 else "localhost"


#: Scripts ConfigMap entries ``<prefix><rank>.env``: each pod's launcher variables (multi-node).
LAUNCH_ENV_PREFIX = ".madengine-launch-"


def add_launcher_env(plan: JobPlan, ctx: Mapping[str, Any]) -> None:
    """For a multi-node run whose context names a launcher, add one ``export`` file per pod rank to the workspace
    ConfigMap (rendered by :func:`madengine.launchers.render` with pod 0's DNS name as master and every pod's name as
    hosts); the entry script sources the file of its ``NODE_RANK``. Single-node runs get the variables statically.

    Raises:
        ConfigError: an invalid launcher plan for this allocation.
    """
    from madengine import launchers

    if plan.nnodes <= 1 or launchers.launcher_name(ctx) is None:
        return
    launch = launchers.resolve(ctx, nodes=plan.nnodes, gpus_per_node=plan.gpus)
    hosts = [f"{plan.job_name}-{i}.{plan.service_name}" for i in range(plan.nnodes)]
    for rank in range(plan.nnodes):
        env = launchers.render(launch, rank, master_addr=hosts[0], deployment="k8s", hosts=hosts)
        text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        plan.files[f"{LAUNCH_ENV_PREFIX}{rank}.env"] = (text.encode(), 0o644)


def configmap_name(job: str) -> str:
    """The workspace ConfigMap of Job ``job``: ``<job>-scripts``."""
    return dns_label(f"{job}-scripts")


def secret_name(job: str) -> str:
    """The credentials Secret of Job ``job``: ``<job>-cred``."""
    return dns_label(f"{job}-cred")


def common_labels(model: str, run_id: str, job: str) -> dict[str, str]:
    """The labels of every object madengine creates (and the selector of its pods)."""
    return {APP_LABEL: "madengine", "app.kubernetes.io/managed-by": "madengine", MODEL_LABEL: label_value(model),
            RUN_LABEL: label_value(run_id), JOB_LABEL: job}


def entry_script(plan: JobPlan) -> str:
    """The pod's ``sh -c`` script (every user value shell-quoted): copy the workspace from the ConfigMap mount to
    ``/myworkspace`` (linking the model dir to ``image_scripts_dir`` when the scripts are in the image), source this
    pod's launcher variables (multi-node), run the step script with ``bash`` as a child (this shell, PID 1, forwards
    SIGTERM when the Job is deleted), copy the workspace to the results PVC when configured, and exit with the step
    script's code (non-zero when the model failed, so the Job does too)."""
    q = shlex.quote
    lines = ["set -u", f"w={WORKSPACE}", 'mkdir -p "$w"',
             f'for f in {SCRIPTS_MOUNT}/* {SCRIPTS_MOUNT}/.[!.]*; do [ -e "$f" ] && cp -RL "$f" "$w"/; done']
    if plan.image_scripts_dir:
        lines.append(f'ln -sfn {q(plan.image_scripts_dir)} "$w"/{q(plan.model_dir)}')
    if any(k.startswith(LAUNCH_ENV_PREFIX) for k in plan.files):
        # a multi-node launcher: this pod's own variables (its rank in MAD_MULTI_NODE_RUNNER, role, ...)
        lines.append(f'launch={SCRIPTS_MOUNT}/{LAUNCH_ENV_PREFIX}"${{NODE_RANK:-0}}".env; '
                     'if [ -f "$launch" ]; then . "$launch"; fi')
    lines += [
        f'MAD_WORKSPACE="$w" bash "$w"/{STEP_SCRIPT} &',
        "child=$!",
        """trap 'kill -TERM "$child" 2>/dev/null' TERM INT""",
        'wait "$child"; rc=$?',
        'if kill -0 "$child" 2>/dev/null; then wait "$child"; rc=$?; fi',
    ]
    if plan.config.results_pvc:
        out = f"{plan.config.results_mount}/{plan.job_name}"
        lines.append(f'out={q(out)}/"${{MAD_POD_NAME:-pod}}"; mkdir -p "$out" && cp -R "$w"/. "$out"/ '
                     '|| echo "madengine: warning: could not copy results to $out"')
    lines.append('exit "$rc"')
    return "\n".join(lines) + "\n"


def distributed_env(plan: JobPlan) -> dict[str, str]:
    """The distributed contract (as with SLURM): MASTER_ADDR, MASTER_PORT, NNODES, WORLD_SIZE, GPUS_PER_NODE; and
    NODE_RANK for single-node runs (multi-node pods get it from their completion index, and MAD_NODE_HOSTS, every
    pod's DNS name in rank order)."""
    per_node = max(plan.gpus, 1)  # ranks per node: one per GPU, one on a CPU node
    env = {"MASTER_ADDR": plan.master_addr, "MASTER_PORT": str(plan.config.master_port),
           "NNODES": str(plan.nnodes), "WORLD_SIZE": str(plan.nnodes * per_node), "GPUS_PER_NODE": str(plan.gpus)}
    if plan.nnodes == 1:
        env["NODE_RANK"] = "0"
    else:  # how the launchers name the nodes (every pod's stable DNS name, rank order)
        env["MAD_NODE_HOSTS"] = ",".join(f"{plan.job_name}-{i}.{plan.service_name}" for i in range(plan.nnodes))
    return env


def scripts_configmap(plan: JobPlan) -> Any:
    """The ConfigMap holding the workspace: one key per file (``/`` → ``__``), text as ``data``, other files base64
    as ``binaryData``. The pod maps the keys back to paths (and modes) with the volume's ``items``.

    Raises:
        ConfigError: the files exceed :data:`CONFIGMAP_MAX_BYTES` (fix: ``k8s.scripts: "image"``).
    """
    m = client.models()
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    total = 0
    for key, content in _configmap_keys({k: v for k, (v, _mode) in plan.files.items()}).items():
        try:
            data[key] = content.decode("utf-8")
            total += len(content)
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(content).decode("ascii")
            total += len(binary[key])
    if total > CONFIGMAP_MAX_BYTES:
        raise ConfigError(f"k8s: the workspace of model {plan.model!r} is {total} bytes; a ConfigMap holds at most "
                          f"{CONFIGMAP_MAX_BYTES}: put them in the image and set k8s.scripts to \"image\" (and "
                          "k8s.image_scripts_dir)")
    return m.V1ConfigMap(
        api_version="v1", kind="ConfigMap",
        metadata=m.V1ObjectMeta(name=plan.configmap_name, namespace=plan.namespace, labels=dict(plan.labels)),
        data=data or None, binary_data=binary or None)


def _configmap_keys(files: Mapping[str, bytes]) -> dict[str, bytes]:
    return {key: files[path] for path, key in _key_map(files).items()}


def _key_map(files: Mapping[str, Any]) -> dict[str, str]:
    """relative path → ConfigMap key (``[-._a-zA-Z0-9]``, unique)."""
    keys: dict[str, str] = {}
    used: set[str] = set()
    for path in sorted(files):
        key = _CM_KEY_INVALID.sub("_", path.replace("/", "__"))
        base, n = key, 1
        while key in used:
            n += 1
            key = f"{base}.{n}"
        used.add(key)
        keys[path] = key
    return keys


def credentials_secret(plan: JobPlan) -> Any:
    """The Secret holding the model's credential variables (``stringData``; the Job refers to its keys)."""
    m = client.models()
    return m.V1Secret(api_version="v1", kind="Secret", type="Opaque",
                      metadata=m.V1ObjectMeta(name=plan.secret_name, namespace=plan.namespace,
                                              labels=dict(plan.labels)),
                      string_data=dict(plan.secret_env))


def _volumes(plan: JobPlan) -> tuple[list[Any], list[Any]]:
    m = client.models()
    cfg = plan.config
    volumes = [m.V1Volume(name="workspace", empty_dir=m.V1EmptyDirVolumeSource())]
    mounts = [m.V1VolumeMount(name="workspace", mount_path=WORKSPACE)]
    items = [m.V1KeyToPath(key=key, path=path, mode=plan.files[path][1])
             for path, key in _key_map(plan.files).items()]
    volumes.append(m.V1Volume(name="scripts", config_map=m.V1ConfigMapVolumeSource(
        name=plan.configmap_name, items=items or None, default_mode=0o644)))
    mounts.append(m.V1VolumeMount(name="scripts", mount_path=SCRIPTS_MOUNT, read_only=True))
    if plan.data is not None:
        d = plan.data
        source = {"persistent_volume_claim": m.V1PersistentVolumeClaimVolumeSource(
            claim_name=d.claim, read_only=d.read_only or None)} if d.claim else {
            "host_path": m.V1HostPathVolumeSource(path=d.host_path, type="Directory")}
        volumes.append(m.V1Volume(name="data", **source))
        mounts.append(m.V1VolumeMount(name="data", mount_path=d.home, read_only=d.read_only or None,
                                      sub_path=d.sub_path))
    if cfg.shm:
        volumes.append(m.V1Volume(name="dshm", empty_dir=m.V1EmptyDirVolumeSource(medium="Memory",
                                                                                    size_limit=cfg.shm_size)))
        mounts.append(m.V1VolumeMount(name="dshm", mount_path="/dev/shm"))
    if cfg.results_pvc:
        volumes.append(m.V1Volume(name="results", persistent_volume_claim=m.V1PersistentVolumeClaimVolumeSource(
            claim_name=cfg.results_pvc)))
        mounts.append(m.V1VolumeMount(name="results", mount_path=cfg.results_mount))
    reserved = {"workspace", "scripts", "dshm", "results", "data"}
    for i, v in enumerate(cfg.volumes):
        name = dns_label(v.name)
        if name in reserved:
            raise ConfigError(f"context key 'k8s.volumes[{i}].name': {v.name!r} is taken by madengine "
                              f"({', '.join(sorted(reserved))}); choose another name")
        reserved.add(name)
        if v.pvc:
            vol = m.V1Volume(name=name, persistent_volume_claim=m.V1PersistentVolumeClaimVolumeSource(
                claim_name=v.pvc, read_only=v.read_only or None))
        elif v.config_map:
            vol = m.V1Volume(name=name, config_map=m.V1ConfigMapVolumeSource(name=v.config_map))
        elif v.secret:
            vol = m.V1Volume(name=name, secret=m.V1SecretVolumeSource(secret_name=v.secret))
        elif v.host_path:
            vol = m.V1Volume(name=name, host_path=m.V1HostPathVolumeSource(path=v.host_path,
                                                                           type=v.host_path_type or None))
        else:
            vol = m.V1Volume(name=name, empty_dir=m.V1EmptyDirVolumeSource(medium=v.medium or None,
                                                                           size_limit=v.size_limit))
        volumes.append(vol)
        mounts.append(m.V1VolumeMount(name=name, mount_path=v.mount_path, read_only=v.read_only or None,
                                      sub_path=v.sub_path))
    return volumes, mounts


def _resources(plan: JobPlan) -> Any:
    m = client.models()
    cfg = plan.config
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if plan.gpus and plan.gpu_resource:
        requests[plan.gpu_resource] = limits[plan.gpu_resource] = str(plan.gpus)
    if cfg.cpu:
        requests["cpu"] = cfg.cpu
    if cfg.memory:
        requests["memory"] = cfg.memory
    if cfg.cpu_limit:
        limits["cpu"] = cfg.cpu_limit
    if cfg.memory_limit:
        limits["memory"] = cfg.memory_limit
    return m.V1ResourceRequirements(requests=requests or None, limits=limits or None)


def _env(plan: JobPlan) -> list[Any]:
    m = client.models()
    env = dict(plan.env)
    env.update(distributed_env(plan))
    # Kubernetes expands $(NAME) in env values; "$$" keeps a value literal, as run.local passes it
    items = [m.V1EnvVar(name=k, value=v.replace("$(", "$$(")) for k, v in env.items()]
    field_env = {"MAD_POD_NAME": "metadata.name", "MAD_K8S_NAMESPACE": "metadata.namespace"}
    if plan.nnodes > 1:
        field_env["NODE_RANK"] = f"metadata.annotations['{NODE_RANK_ANNOTATION}']"
    items += [m.V1EnvVar(name=k, value_from=m.V1EnvVarSource(field_ref=m.V1ObjectFieldSelector(field_path=p)))
              for k, p in field_env.items()]
    items += [m.V1EnvVar(name=k, value_from=m.V1EnvVarSource(secret_key_ref=m.V1SecretKeySelector(
        name=plan.secret_name, key=k))) for k in sorted(plan.secret_env)]
    return items


def _security_context(cfg: K8sConfig) -> Any:
    m = client.models()
    ctx = model_from_dict("V1SecurityContext", cfg.security_context, "k8s.security_context") \
        if cfg.security_context else None
    if cfg.sys_ptrace:
        ctx = ctx or m.V1SecurityContext()
        caps = ctx.capabilities or m.V1Capabilities()
        caps.add = sorted(set(caps.add or []) | {"SYS_PTRACE"})
        ctx.capabilities = caps
    return ctx


def job(plan: JobPlan) -> Any:
    """The ``batch/v1`` Job of the plan (Indexed with a subdomain when ``nnodes > 1``)."""
    m = client.models()
    cfg = plan.config
    volumes, mounts = _volumes(plan)
    container = m.V1Container(
        name="model", image=plan.image, image_pull_policy=plan.pull_policy,
        command=["/bin/sh", "-c", entry_script(plan)], env=_env(plan),
        resources=_resources(plan), volume_mounts=mounts, security_context=_security_context(cfg))
    tolerations = [model_from_dict("V1Toleration", t, f"k8s.tolerations[{i}]") for i, t in enumerate(cfg.tolerations)]
    affinity = model_from_dict("V1Affinity", cfg.affinity, "k8s.affinity") if cfg.affinity else None
    pod_labels = dict(plan.labels)
    job_labels = dict(plan.labels)
    if cfg.queue_name:
        job_labels[KUEUE_LABEL] = cfg.queue_name
    annotations = {"madengine/model-name": plan.model, **cfg.annotations}
    pod_spec = m.V1PodSpec(
        restart_policy="Never", containers=[container], volumes=volumes,
        node_selector=dict(cfg.node_selector) or None, tolerations=tolerations or None, affinity=affinity,
        priority_class_name=cfg.priority_class, service_account_name=cfg.service_account,
        image_pull_secrets=[m.V1LocalObjectReference(name=s) for s in cfg.image_pull_secrets] or None,
        subdomain=plan.service_name if plan.nnodes > 1 else None, enable_service_links=False)
    spec = m.V1JobSpec(
        backoff_limit=cfg.backoff_limit, active_deadline_seconds=plan.active_deadline,
        ttl_seconds_after_finished=cfg.ttl_seconds_after_finished,
        template=m.V1PodTemplateSpec(metadata=m.V1ObjectMeta(labels=pod_labels, annotations=annotations),
                                     spec=pod_spec))
    if plan.nnodes > 1:
        spec.completions = spec.parallelism = plan.nnodes
        spec.completion_mode = "Indexed"
    return m.V1Job(api_version="batch/v1", kind="Job",
                   metadata=m.V1ObjectMeta(name=plan.job_name, namespace=plan.namespace, labels=job_labels,
                                           annotations=annotations),
                   spec=spec)


def headless_service(plan: JobPlan) -> Any:
    """The headless Service (``clusterIP: None``) giving a multi-node run's pods stable DNS names."""
    m = client.models()
    return m.V1Service(
        api_version="v1", kind="Service",
        metadata=m.V1ObjectMeta(name=plan.service_name, namespace=plan.namespace, labels=dict(plan.labels)),
        spec=m.V1ServiceSpec(cluster_ip="None", selector={JOB_LABEL: plan.job_name},
                             publish_not_ready_addresses=True,
                             ports=[m.V1ServicePort(name="master", port=plan.config.master_port,
                                                    target_port=plan.config.master_port)]))


def build_objects(plan: JobPlan) -> list[Any]:
    """The objects of one model, in creation order: ConfigMap, [Secret], [Service], Job."""
    objects = [scripts_configmap(plan)]
    if plan.secret_env:
        objects.append(credentials_secret(plan))
    if plan.nnodes > 1:
        objects.append(headless_service(plan))
    objects.append(job(plan))
    return objects

