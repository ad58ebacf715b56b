"""The ``slurm`` target: run a build manifest's models as Slurm jobs, one job per model, on every allocated node.

:class:`SlurmTarget` keeps the target contract (:mod:`madengine.deploy.contract`, whose loop ``deploy`` runs): it
renders one sbatch script per model (:mod:`.render`), submits them (:mod:`.cli`, locally or on a login node over SSH
through :mod:`madengine.deploy.remote`), polls them with one batched query per tick (:mod:`.monitor`), and reads
each node's perf rows (:mod:`.collect`). On
every node the job runs ``python -m madengine run.local`` on the job's one-model manifest: the same workflow as
``inv run.local``, with the distributed contract (MASTER_ADDR, NODE_RANK, ...) passed into the model's environment.

Layout of a run (``<run>`` = ``<UTC time>-<id>``), in ``slurm.work_dir`` (default ``.madengine/slurm`` next to
perf.csv; over SSH, the inventory's ``work_dir`` on the cluster, mirrored here on collection)::

    <run>/<model>/job.sh  build_manifest.json  slurm-<id>.out  slurm-<id>.err  results/<node>/perf.csv, *.log
    <run>/hub/scripts/...          (over SSH only: the model scripts pushed to the cluster)

``status``, ``logs`` and ``cancel`` reattach to jobs recorded in ``.madengine/jobs.json`` next to perf.csv.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madengine import console
from madengine.deploy import DeployRequest, contract
from madengine.deploy.jobs import JobRecord, JobStatus
from madengine.deploy.slurm import collect as collect_mod
from madengine.deploy.slurm import config as config_mod
from madengine.deploy.slurm import render as render_mod
from madengine.deploy.slurm.cli import Executor, LocalExecutor, SlurmCli, SlurmError
from madengine.deploy.slurm.monitor import SlurmPoll
from madengine.errors import ConfigError
from madengine.hub import Model
from madengine.manifest import BuiltImage, Manifest
from madengine.manifest import save as save_manifest
from madengine.results.perf_csv import PerfRow

if TYPE_CHECKING:  # pragma: no cover
    from madengine.inventory import Cluster

def _executor_for(cluster_spec: str | None) -> tuple[Executor, Cluster | None, Path | None]:
    if not cluster_spec:
        return LocalExecutor(), None, None
    from madengine import inventory
    from madengine.deploy.remote import RemoteExecutor

    path, cluster = inventory.find_cluster(cluster_spec)
    if cluster.login is None:
        return LocalExecutor(), cluster, path
    return RemoteExecutor(cluster.login), cluster, path


def _executor_for_record(record: JobRecord) -> Executor:
    if not record.cluster:
        return LocalExecutor()
    from madengine import inventory
    from madengine.deploy.remote import RemoteExecutor

    if record.inventory and Path(record.inventory).is_file():
        _, _, name = record.cluster.partition("/")
        inv = inventory.load(record.inventory)
        cluster = inv.clusters.get(name) or next(iter(inv.clusters.values()))
    else:
        _, cluster = inventory.find_cluster(record.cluster)
    return RemoteExecutor(cluster.login) if cluster.login else LocalExecutor()


def _slug(name: str) -> str:
    return render_mod.job_name("m", name)[2:]


def _node_context(ctx: dict[str, Any], runtime: str | None) -> dict[str, Any]:
    """The context each node's run.local starts from: the run's, without the deployment routing keys."""
    node_ctx = {k: v for k, v in ctx.items() if k not in ("deploy", "slurm", "k8s")}
    if runtime:
        node_ctx["runtime"] = runtime
    return node_ctx


def _launcher_allocation(ctx: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """What the context's launcher plan needs (nodes, GPUs per node, master port), as defaults that the context's
    ``slurm`` section and the flags override; ``{}`` without a launcher."""
    from madengine import launchers

    if launchers.launcher_name(ctx) is None:
        return {}
    nodes = flags.get("nodes") or (ctx.get("slurm") or {}).get("nodes")
    plan = launchers.resolve(ctx, nodes=int(nodes) if nodes else None)
    alloc = plan.allocation()
    sized: dict[str, Any] = {"nodes": alloc["nodes"]}
    if alloc["gpus_per_node"]:
        sized["gpus_per_node"] = alloc["gpus_per_node"]
    if alloc["master_port"]:
        sized["master_port"] = alloc["master_port"]
    return sized


def _resolve_config(ctx: dict[str, Any], options: dict[str, Any],
                    cluster: Cluster | None) -> tuple[config_mod.SlurmConfig, bool]:
    """The effective slurm config, and whether GPUs per node were given (flag, context, inventory or launcher)."""
    flags = {k: v for k, v in options.items() if k in config_mod.SlurmConfig.model_fields}  # run.slurm's section flags
    defaults = cluster.slurm_defaults() if cluster else {}
    defaults.update(_launcher_allocation(ctx, flags))
    cfg = config_mod.resolve(ctx, flags, defaults)
    explicit_gpus = flags.get("gpus_per_node") is not None or "gpus_per_node" in (ctx.get("slurm") or {}) \
        or "gpus_per_node" in defaults
    if cluster and not explicit_gpus and cfg.partition and cfg.partition in cluster.partitions:
        defaults = dict(defaults, gpus_per_node=cluster.partitions[cfg.partition].gpus_per_node)
        cfg = config_mod.resolve(ctx, flags, defaults)
        explicit_gpus = True
    return cfg, explicit_gpus


def _job_groups(manifest: Manifest) -> list[list[tuple[str, BuiltImage]]]:
    """The images of a manifest as Slurm jobs: one job per image, except that the per-architecture images of one
    model and Dockerfile (``--target-archs``) make one job whose nodes each run the image of their architecture."""
    groups: dict[tuple[str, str], list[tuple[str, BuiltImage]]] = {}
    for image, build in manifest.built_images.items():
        key = (build.model, build.dockerfile) if build.gpu_architecture else (image, "")
        groups.setdefault(key, []).append((image, build))
    return list(groups.values())


def gpus_for_model(cfg: config_mod.SlurmConfig, model: Model, ctx: dict[str, Any],
                   node_gpus: Callable[[], int | None]) -> config_mod.SlurmConfig:
    """The job's config for one model when GPUs per node were not given: the model's ``n_gpus`` per node; ``-1``
    (all) asks for the partition's GPUs per node (``node_gpus()``, from sinfo), else for whole nodes
    (``--exclusive``); a CPU context (``gpu_vendor`` NONE) asks for none.
    """
    if str(ctx.get("gpu_vendor") or "").upper() == "NONE":
        return cfg
    wanted = int(model.n_gpus)  # an integer, checked when the record was read
    if wanted > 0:
        return cfg.model_copy(update={"gpus_per_node": wanted})
    if wanted < 0:
        found = node_gpus()
        return cfg.model_copy(update={"gpus_per_node": found} if found else {"exclusive": True})
    return cfg


@dataclass
class SlurmJob:
    """One planned job: the model, its job directory on the cluster and here, its build record, GPUs per node."""

    model: str
    cluster_dir: str
    local_dir: Path
    build: BuiltImage
    gpus_per_node: int


class SlurmTarget:
    """The ``slurm`` target (:class:`madengine.deploy.contract.Target`): one sbatch job per model, every node running
    ``run.local`` on the job's one-model manifest. Constructed for a run (``SlurmTarget(request)``) or for a recorded
    job (:meth:`attach`).

    ``request.target_options``: the flags named like a ``slurm`` section key (``None`` = not given), ``cluster``
    (``SITE/NAME`` of an inventory: submit over SSH), ``dry_run`` (render only), ``no_wait`` (submit and record).
    """

    name = "slurm"
    reattach = "madengine jobs.status {job}"
    error = SlurmError

    def __init__(self, request: DeployRequest | None = None, *, executor: Executor | None = None) -> None:
        self.request = request
        options = dict(request.target_options) if request else {}
        self.cluster_spec = options.get("cluster") or None
        if executor is not None:
            self.executor, self.cluster, self.inventory_path = executor, None, None
        else:
            self.executor, self.cluster, self.inventory_path = _executor_for(self.cluster_spec)
        self.cli = SlurmCli(self.executor)
        self.poll = SlurmPoll(self.cli)
        self.dry_run, self.wait = bool(options.get("dry_run")), not options.get("no_wait")
        self.first, self.cap, self.unknown_timeout = 1.0, 15.0, 600.0
        self._pushes: list[tuple[Path, str, int | None]] = []
        self._archives: dict[str, Path] = {}  # image → its docker save archive here (image_transfer: save)

    @classmethod
    def attach(cls, record: JobRecord) -> SlurmTarget:
        """A target for a recorded job (its login node when it was submitted over SSH)."""
        return cls(executor=_executor_for_record(record))

    def plan(self) -> list[SlurmJob]:
        """Render every job's ``job.sh`` and one-model manifest (nothing is submitted).

        Raises:
            ConfigError: bad slurm options or inventory, bad models, an empty manifest.
        """
        from madengine import run_spec
        from madengine.workflow import setup

        request = self.request
        assert request is not None
        options = dict(request.target_options)
        output = request.output.resolve()
        cfg, explicit_gpus = _resolve_config(request.ctx, options, self.cluster)
        self.first, self.cap, self.unknown_timeout = cfg.poll_interval, cfg.poll_max, cfg.unknown_timeout
        self.submit_retries = cfg.submit_retries
        remote = self.cluster_spec is not None and self.cluster is not None and self.cluster.login is not None
        run_name = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        local_root = output.parent / ".madengine" / "slurm" / run_name
        if remote:
            assert self.cluster is not None
            cluster_root = f"{self.cluster.work_dir.rstrip('/')}/{run_name}"
            if cluster_root.startswith("~"):
                home = self.executor.run(["sh", "-c", "echo $HOME"]).stdout.strip()
                cluster_root = home + cluster_root[1:]
        else:
            base = Path(cfg.work_dir).expanduser().resolve() if cfg.work_dir else output.parent / ".madengine" / "slurm"
            cluster_root = str(base / run_name)
            local_root = Path(cluster_root)
        hub = (request.hub or Path(request.manifest.hub or ".")).resolve()
        cluster_hub = f"{cluster_root}/hub" if remote else str(hub)
        env_vars = {**(request.ctx.get("env_vars") or {}), **cfg.env_vars}
        shared = setup.load(hub, request.ctx, tools_config=request.options.tools_config,
                            data_config=request.options.data_config, sys_env_details=request.options.sys_env_details)
        # the run options reach every node's run.local (the run spec decides which); site tool catalogues travel too
        catalogues = {str(p): str(Path(p).resolve()) if not remote else f"{cluster_root}/tools/{i}-{Path(p).name}"
                      for i, p in enumerate(request.options.tools_config)}
        run_args = run_spec.node_args(request.options, catalogues)
        node_ctx = _node_context(request.ctx, cfg.runtime)
        if env_vars:  # the site's and the context's env_vars reach the model's container or process, not just job.sh
            node_ctx["env_vars"] = env_vars
        partition_gpus: list[int | None] = []

        def node_gpus() -> int | None:
            if not partition_gpus:
                partition_gpus.append(self.cli.node_gpus(cfg.partition))
            return partition_gpus[0]

        planned: list[SlurmJob] = []
        models = []
        slugs: set[str] = set()
        for members in _job_groups(request.manifest):
            image, build = members[0]
            model = request.manifest.model_for(image)
            models.append(model)
            slug = _slug(model.name)
            if slug in slugs:  # a second Dockerfile of the same model: its own job directory
                slug = _slug(build.log_base or image)
            slugs.add(slug)
            local_dir, cluster_dir = local_root / slug, f"{cluster_root}/{slug}"
            node_builds = {}
            for member, member_build in members:
                if cfg.image_transfer == "save" and not member_build.registry_image:  # nodes load it from the run dir
                    self._archives[member] = local_root / "images" / f"{member}.tar"
                    member_build = member_build.model_copy(
                        update={"image_archive": f"{cluster_root}/images/{member}.tar"})
                node_builds[member] = member_build
            build = node_builds[image]
            one = Manifest(built_images=node_builds, built_models={m: model for m in node_builds}, context=node_ctx,
                           credentials_required=request.manifest.credentials_required,
                           registry=request.manifest.registry, deployment_config={"deploy": "local"},
                           hub=cluster_hub)
            local_dir.mkdir(parents=True, exist_ok=True)
            save_manifest(one, local_dir / "build_manifest.json")
            job_cfg = cfg if explicit_gpus else gpus_for_model(cfg, model, request.ctx, node_gpus)
            spec = render_mod.JobSpec(job_name=render_mod.job_name(cfg.job_name, model.name), job_dir=cluster_dir,
                                      hub=cluster_hub, python=cfg.python or sys.executable, cfg=job_cfg,
                                      env_vars=env_vars, run_args=run_args)
            (local_dir / "job.sh").write_text(render_mod.render(spec), encoding="utf-8")
            planned.append(SlurmJob(model.name, cluster_dir, local_dir, build,
                                    job_cfg.gpus_per_node or 0))
        if not planned:
            raise ConfigError("the manifest has no built images to run; run `inv build` first")
        shared.check_data(models, request.options.data_config)
        self.nodes = cfg.nodes
        self.partition = cfg.partition
        if remote:
            self._pushes.append((local_root, cluster_root, None))
            for rel in setup.hub_paths(hub, request.ctx, shared, models, request.options.data_config):
                self._pushes.append((hub / rel, f"{cluster_hub}/{rel}",
                                     0o600 if rel == setup.CREDENTIALS_FILE else None))
            self._pushes += [(Path(local), remote_path, None) for local, remote_path in catalogues.items()]
        return planned

    def render(self, planned: Sequence[SlurmJob]) -> list[Path]:
        """The job scripts :meth:`plan` wrote."""
        return [job.local_dir / "job.sh" for job in planned]

    def preflight(self, planned: Sequence[SlurmJob]) -> None:
        """Check that the partition has the nodes asked for (a job asking for more would pend forever), then, over
        SSH, copy the job directories and what the run reads from the hub (``credential.json`` 0600).

        Raises:
            ConfigError: ``--nodes`` exceeds the partition's node count (names both and the fix).
        """
        available = self.cli.partition_nodes(self.partition)
        if available is not None and self.nodes > available:
            where = f"partition {self.partition}" if self.partition else "the default partition"
            raise ConfigError(f"--nodes {self.nodes}: {where} has {available} node(s) (sinfo); ask for at most "
                              f"{available}, or pick another --partition")
        if self._archives:
            from madengine import docker_engine, docker_images

            client = docker_engine.connect()
            for image, archive in self._archives.items():
                console.progress(f"saving {image} to {archive} (image_transfer: save)")
                docker_images.save_image(client, image, archive)
        if self._pushes:
            console.progress(f"copying {len(planned)} job(s) and the hub's " +
                             ", ".join(str(p[0].name) for p in self._pushes[1:]) +
                             f" to {self.executor.description}:{self._pushes[0][1]}")
        for local, remote_path, mode in self._pushes:
            self.executor.push(local, remote_path, mode=mode)

    def submit(self, job: SlurmJob) -> JobRecord:
        """``sbatch`` one job script (transient errors retried)."""
        request = self.request
        assert request is not None
        job_id = self.cli.submit(f"{job.cluster_dir}/job.sh", retries=self.submit_retries)
        console.progress(f"submitted {job.model} as Slurm job {job_id} ({self.nodes} node(s)"
                         f"{', ' + str(job.gpus_per_node) + ' GPU(s)/node' if job.gpus_per_node else ''}"
                         f"{', partition ' + self.partition if self.partition else ''}); script "
                         f"{job.local_dir}/job.sh")
        return JobRecord(job_id=job_id, target="slurm", model=job.model, job_dir=job.cluster_dir,
                         local_dir=str(job.local_dir), output=str(request.output.resolve()),
                         cluster=self.cluster_spec, inventory=str(self.inventory_path) if self.inventory_path else None,
                         nnodes=self.nodes, gpus_per_node=job.gpus_per_node,
                         submitted=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         docker_image=job.build.docker_image, docker_file=job.build.dockerfile)

    def collect(self, record: JobRecord, status: JobStatus) -> list[PerfRow]:
        """Fetch the job's results (over SSH) and read every node's rows (:func:`.collect.rows_for_job`)."""
        local_dir = Path(record.local_dir)
        if record.cluster:
            self.executor.pull(f"{record.job_dir}/results", local_dir / "results")
            for suffix in ("out", "err"):
                text = self.executor.read_text(f"{record.job_dir}/slurm-{record.job_id}.{suffix}")
                if text is not None:
                    (local_dir / f"slurm-{record.job_id}.{suffix}").write_text(text, encoding="utf-8")
        console.progress(f"{record.model}: logs: {local_dir}/slurm-{record.job_id}.out, {local_dir}/results/<node>/")
        return collect_mod.rows_for_job(record, status)

    def cancel(self, records: list[JobRecord]) -> None:
        """``scancel`` the jobs."""
        self.cli.cancel([r.job_id for r in records])

    def logs(self, record: JobRecord, follow: bool, write: Callable[[str], None]) -> JobStatus:
        """``slurm-<id>.out``, then ``.err``; with ``follow``, what is appended until the job ends."""
        out_path, err_path = (f"{record.job_dir}/slurm-{record.job_id}.{s}" for s in ("out", "err"))
        shown = 0
        while True:
            current = self.poll([record.job_id]).get(record.job_id) or JobStatus(record.job_id, "unknown")
            text = self.executor.read_text(out_path) or ""
            if len(text) > shown:
                write(text[shown:])
                shown = len(text)
            if not follow or current.terminal:
                break
            time.sleep(2.0)
        err = self.executor.read_text(err_path) or ""
        if err.strip():
            write(f"--- {err_path} ---\n{err}")
        if not text and not err:
            write(f"(no output yet: {out_path} does not exist; job {current.describe()})\n")
        return current

    def close(self) -> None:
        """Close the SSH connection (if any)."""
        self.executor.close()


deploy = contract.deployer(SlurmTarget)


def status(job_id: str, output: str | Path) -> tuple[JobRecord, JobStatus, list[PerfRow]]:
    """``slurm.status``: :func:`madengine.deploy.contract.status`."""
    return contract.status(job_id, output)


def logs(job_id: str, output: str | Path, follow: bool = False,
         write: Callable[[str], None] | None = None) -> JobStatus:
    """``slurm.logs``: :func:`madengine.deploy.contract.logs`."""
    return contract.logs(job_id, output, follow, write)


def cancel(job_id: str, output: str | Path, wait: float = 30.0) -> JobStatus:
    """``slurm.cancel``: :func:`madengine.deploy.contract.cancel`."""
    return contract.cancel(job_id, output, wait)
