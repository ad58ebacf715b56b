"""The ``slurm`` target: run a build manifest's models as Slurm jobs, one job per model, on every allocated node.

``deploy(request)`` renders one sbatch script per model (:mod:`.render`), submits them (:mod:`.cli`, locally or on
a login node over SSH through :mod:`madengine.deploy.remote`), records them (:mod:`.state`), watches them with one
batched query per tick (:mod:`.monitor`), and merges each node's perf rows into perf.csv (:mod:`.collect`). On
every node the job runs ``python -m madengine run.local`` on the job's one-model manifest: the same workflow as
``inv run.local``, with the distributed contract (MASTER_ADDR, NODE_RANK, ...) passed into the model's environment.

Layout of a run (``<run>`` = ``<UTC time>-<id>``), in ``slurm.work_dir`` (default ``.madengine/slurm`` next to
perf.csv; over SSH, the inventory's ``work_dir`` on the cluster, mirrored here on collection)::

    <run>/<model>/job.sh  build_manifest.json  slurm-<id>.out  slurm-<id>.err  results/<node>/perf.csv, *.log
    <run>/hub/scripts/...          (over SSH only: the model scripts pushed to the cluster)

``status``, ``logs`` and ``cancel`` reattach to jobs recorded in ``.madengine/slurm-jobs.json`` next to perf.csv.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madengine import console
from madengine.deploy import DeployRequest
from madengine.deploy.slurm import collect as collect_mod
from madengine.deploy.slurm import config as config_mod
from madengine.deploy.slurm import render as render_mod
from madengine.deploy.slurm import state as state_mod
from madengine.deploy.slurm.cli import Executor, LocalExecutor, SlurmCli, SlurmError
from madengine.deploy.slurm.monitor import JobStatus, Monitor, counts
from madengine.errors import ConfigError
from madengine.manifest import Manifest
from madengine.manifest import save as save_manifest
from madengine.results.perf_csv import PerfRow, append_rows

if TYPE_CHECKING:  # pragma: no cover
    from madengine.api import RunSummary
    from madengine.inventory import Cluster

#: The target's own flags (``inv run.slurm``) that are slurm-section keys; the rest are handled here.
SECTION_FLAGS = ("nodes", "partition", "gpus_per_node", "time", "account", "qos", "exclusive", "reservation",
                 "nodelist", "exclude", "constraint")


def _executor_for(cluster_spec: str | None) -> tuple[Executor, Cluster | None, Path | None]:
    if not cluster_spec:
        return LocalExecutor(), None, None
    from madengine import inventory
    from madengine.deploy.remote import RemoteExecutor

    path, cluster = inventory.find_cluster(cluster_spec)
    if cluster.login is None:
        return LocalExecutor(), cluster, path
    return RemoteExecutor(cluster.login), cluster, path


def _executor_for_record(record: state_mod.JobRecord) -> Executor:
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
    flags = {k: options.get(k) for k in SECTION_FLAGS}
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


def gpus_for_model(cfg: config_mod.SlurmConfig, model: dict[str, Any], ctx: dict[str, Any],
                   node_gpus: Callable[[], int | None]) -> config_mod.SlurmConfig:
    """The job's config for one model when GPUs per node were not given: the model's ``n_gpus`` per node; ``-1``
    (all) asks for the partition's GPUs per node (``node_gpus()``, from sinfo), else for whole nodes
    (``--exclusive``); a CPU context (``gpu_vendor`` NONE) asks for none.

    Raises:
        ConfigError: ``n_gpus`` is not a whole number.
    """
    if str(ctx.get("gpu_vendor") or "").upper() == "NONE":
        return cfg
    raw = str(model.get("n_gpus", "1")).strip() or "1"
    try:
        wanted = int(raw)
    except ValueError:
        raise ConfigError(f"models.json: model {model['name']!r} has n_gpus {raw!r}; give --gpus-per-node N") \
            from None
    if wanted > 0:
        return cfg.model_copy(update={"gpus_per_node": wanted})
    if wanted < 0:
        found = node_gpus()
        return cfg.model_copy(update={"gpus_per_node": found} if found else {"exclusive": True})
    return cfg


def deploy(request: DeployRequest) -> RunSummary:
    """Run every image of ``request.manifest`` as a Slurm job and append the rows to ``request.output``.

    ``request.target_options``: the section flags (:data:`SECTION_FLAGS`, ``None`` = not given), ``cluster``
    (``SITE/NAME`` of an inventory: submit over SSH), ``dry_run`` (render only, print the paths), ``no_wait``
    (submit, record, return without rows).

    Raises:
        ConfigError: bad slurm options or inventory; sbatch rejected a job (exit code 4).
        SlurmError: Slurm unreachable, submission failing after retries, status unknown for too long (exit code 1).
        KeyboardInterrupt: after the submitted jobs were cancelled (unless ``no_wait``).
    """
    from madengine import run_spec
    from madengine.api import RunSummary
    from madengine.workflow import setup

    options = dict(request.target_options)
    output = request.output.resolve()
    cluster_spec = options.get("cluster") or None
    executor, cluster, inventory_path = _executor_for(cluster_spec)
    cfg, explicit_gpus = _resolve_config(request.ctx, options, cluster)
    remote = cluster_spec is not None and cluster is not None and cluster.login is not None
    dry_run, no_wait = bool(options.get("dry_run")), bool(options.get("no_wait"))

    run_name = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    local_root = output.parent / ".madengine" / "slurm" / run_name
    if remote:
        assert cluster is not None
        cluster_root = f"{cluster.work_dir.rstrip('/')}/{run_name}"
        if cluster_root.startswith("~"):
            home = executor.run(["sh", "-c", "echo $HOME"]).stdout.strip()
            cluster_root = home + cluster_root[1:]
    else:
        base = Path(cfg.work_dir).expanduser().resolve() if cfg.work_dir else output.parent / ".madengine" / "slurm"
        cluster_root = str(base / run_name)
        local_root = Path(cluster_root)
    hub = (request.hub or Path(request.manifest.hub or ".")).resolve()
    cluster_hub = f"{cluster_root}/hub" if remote else str(hub)
    python = cfg.python or sys.executable
    env_vars = {**(request.ctx.get("env_vars") or {}), **cfg.env_vars}
    shared = setup.load(hub, request.ctx, tools_config=request.options.tools_config,
                        data_config=request.options.data_config, sys_env_details=request.options.sys_env_details)
    # the run options reach every node's run.local (the run spec decides which); site tool catalogues travel too
    catalogues = {str(p): str(Path(p).resolve()) if not remote else f"{cluster_root}/tools/{i}-{Path(p).name}"
                  for i, p in enumerate(request.options.tools_config)}
    run_args = run_spec.node_args(request.options, catalogues)
    node_ctx = _node_context(request.ctx, cfg.runtime)
    if env_vars:  # the site's and the context's env_vars reach the model's container (or process), not just job.sh
        node_ctx["env_vars"] = env_vars

    jobs: list[tuple[str, str, Path, dict[str, Any], int]] = []  # model, cluster/local job dir, build, GPUs/node
    cli = SlurmCli(executor)
    partition_gpus: list[int | None] = []

    def node_gpus() -> int | None:
        if not partition_gpus:
            partition_gpus.append(cli.node_gpus(cfg.partition))
        return partition_gpus[0]
    for image, build in request.manifest.built_images.items():
        model = request.manifest.built_models.get(image) or {"name": build.model}
        slug = _slug(model["name"])
        local_dir = local_root / slug
        cluster_dir = f"{cluster_root}/{slug}"
        one = Manifest(built_images={image: build}, built_models={image: model}, context=node_ctx,
                       credentials_required=request.manifest.credentials_required,
                       registry=request.manifest.registry, deployment_config={"deploy": "local"}, hub=cluster_hub)
        local_dir.mkdir(parents=True, exist_ok=True)
        save_manifest(one, local_dir / "build_manifest.json")
        job_cfg = cfg if explicit_gpus else gpus_for_model(cfg, model, request.ctx, node_gpus)
        spec = render_mod.JobSpec(job_name=render_mod.job_name(cfg.job_name, model["name"]), job_dir=cluster_dir,
                                  hub=cluster_hub, python=python, cfg=job_cfg, env_vars=env_vars, run_args=run_args)
        (local_dir / "job.sh").write_text(render_mod.render(spec), encoding="utf-8")
        jobs.append((model["name"], cluster_dir, local_dir, build.model_dump(), job_cfg.gpus_per_node or 0))
    if not jobs:
        raise ConfigError("the manifest has no built images to run; run `inv build` first")
    if dry_run:
        for _, _, local_dir, _, _ in jobs:
            console.progress(f"dry run: wrote {local_dir / 'job.sh'} (nothing submitted)")
            print(local_dir / "job.sh")
        return RunSummary([], output)

    if not request.skip_model_run:
        append_rows(output, [])  # fail fast on a foreign perf.csv, before anything is submitted
    state_file = state_mod.state_path(output)
    records: list[state_mod.JobRecord] = []
    try:
        if remote:
            models = [request.manifest.built_models.get(i) or {"name": b.model}
                      for i, b in request.manifest.built_images.items()]
            needed = setup.hub_paths(hub, request.ctx, shared, models, request.options.data_config)
            console.progress(f"copying {len(jobs)} job(s) and the hub's {', '.join(needed)} to "
                             f"{executor.description}:{cluster_root}")
            executor.push(local_root, cluster_root)
            for rel in needed:
                executor.push(hub / rel, f"{cluster_hub}/{rel}",
                              mode=0o600 if rel == setup.CREDENTIALS_FILE else None)
            for local_path, cluster_path in catalogues.items():
                executor.push(Path(local_path), cluster_path)
        for model_name, cluster_dir, local_dir, build_info, gpus_per_node in jobs:
            job_id = cli.submit(f"{cluster_dir}/job.sh", retries=cfg.submit_retries)
            record = state_mod.JobRecord(
                job_id=job_id, model=model_name, job_dir=cluster_dir, local_dir=str(local_dir), output=str(output),
                cluster=cluster_spec, inventory=str(inventory_path) if inventory_path else None, nnodes=cfg.nodes,
                gpus_per_node=gpus_per_node, submitted=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                docker_image=build_info.get("docker_image", ""), docker_file=build_info.get("dockerfile", ""))
            records.append(record)
            state_mod.save(state_file, [record])
            console.progress(f"submitted {model_name} as Slurm job {job_id} ({cfg.nodes} node(s)"
                             f"{', ' + str(gpus_per_node) + ' GPU(s)/node' if gpus_per_node else ''}"
                             f"{', partition ' + cfg.partition if cfg.partition else ''}); script {local_dir}/job.sh")
    except KeyboardInterrupt:
        _cancel_on_interrupt(cli, records, state_file)
        raise
    except BaseException:
        if records:
            console.warn(f"submitted before the error: {', '.join(r.job_id for r in records)} "
                         f"(cancel with `inv slurm.cancel JOB`)")
        executor.close()
        raise
    if no_wait:
        ids = ",".join(r.job_id for r in records)
        console.progress(f"--no-wait: job(s) {ids} left running; follow with `inv slurm.status JOB`, "
                         "`inv slurm.logs JOB --follow`; results are collected by `inv slurm.status` once done")
        print(ids)
        executor.close()
        return RunSummary([], output)

    monitor = Monitor(cli, [r.job_id for r in records], first=cfg.poll_interval, cap=cfg.poll_max,
                      unknown_timeout=cfg.unknown_timeout)
    try:
        with _Progress(records) as progress:
            final = monitor.wait(progress.update)
    except KeyboardInterrupt:
        _cancel_on_interrupt(cli, records, state_file, monitor.states)
        executor.close()
        raise
    except BaseException:
        executor.close()
        raise
    rows: list[PerfRow] = []
    try:
        for record in records:
            rows.extend(_finish(record, final[record.job_id], executor, state_file))
    finally:
        executor.close()
    return RunSummary(rows, output)


def _finish(record: state_mod.JobRecord, status: JobStatus, executor: Executor, state_file: Path) -> list[PerfRow]:
    """Fetch (over SSH), merge the job's rows into its perf.csv, mark it collected, point at the logs."""
    local_dir = Path(record.local_dir)
    if record.cluster:
        executor.pull(f"{record.job_dir}/results", local_dir / "results")
        for suffix in ("out", "err"):
            text = executor.read_text(f"{record.job_dir}/slurm-{record.job_id}.{suffix}")
            if text is not None:
                (local_dir / f"slurm-{record.job_id}.{suffix}").write_text(text, encoding="utf-8")
    rows = collect_mod.collect(record, status, Path(record.output))
    state_mod.update(state_file, record.job_id, status=status.status, collected=True)
    line = status.describe()
    (console.progress if status.status == "completed" else console.warn)(
        f"{record.model}: {line}; {len(rows)} row(s) to {record.output}; logs: {local_dir}/slurm-{record.job_id}.out"
        f", {local_dir}/results/<node>/")
    for row in rows:
        note = f" ({row.reason})" if row.reason and row.status != "SUCCESS" else ""
        console.progress(f"{row.model} [{row.machine_name or '?'}]: {row.status} {row.performance} {row.metric}"
                         f"{note}".rstrip())
    return rows


def _cancel_on_interrupt(cli: SlurmCli, records: list[state_mod.JobRecord], state_file: Path,
                         states: dict[str, JobStatus] | None = None) -> None:
    open_ids = [r.job_id for r in records if not (states and states.get(r.job_id) and states[r.job_id].terminal)]
    if not open_ids:
        return
    try:
        cli.cancel(open_ids)
        console.warn(f"interrupted: cancelled Slurm job(s) {', '.join(open_ids)} (scancel)")
        for job_id in open_ids:
            state_mod.update(state_file, job_id, status="cancelled")
    except SlurmError as e:
        console.warn(f"interrupted: could not cancel job(s) {', '.join(open_ids)}: {e.message}; "
                     f"run `scancel {' '.join(open_ids)}`")


class _Progress:
    """Jobs pending/running/done and elapsed time: a live line on a terminal, else one line per change."""

    def __init__(self, records: list[state_mod.JobRecord]) -> None:
        self.records = records
        self.start = time.monotonic()
        self.last = ""
        self.live: Any = None

    def __enter__(self) -> _Progress:
        if console.err().is_terminal:
            from rich.live import Live

            self.live = Live(self._text({}), console=console.err(), refresh_per_second=2, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def _text(self, states: dict[str, JobStatus]) -> str:
        c = counts(states) if states else {"pending": len(self.records), "running": 0, "done": 0, "unknown": 0}
        elapsed = int(time.monotonic() - self.start)
        unknown = f", {c['unknown']} unknown" if c.get("unknown") else ""
        return (f"slurm: {c['pending']} pending, {c['running']} running, {c['done']} done{unknown} "
                f"({elapsed // 60:02d}:{elapsed % 60:02d} elapsed)")

    def update(self, states: dict[str, JobStatus]) -> None:
        """Show the states of one tick."""
        detail = "; ".join(s.describe() for s in states.values() if not s.terminal and s.status == "unknown")
        text = self._text(states)
        if self.live is not None:
            self.live.update(text)
        summary = text.split(" (")[0] + (f" [{detail}]" if detail else "")
        if summary != self.last:
            self.last = summary
            console.progress(text + (f" [{detail}]" if detail else ""))


# ---------------------------------------------------------------- reattaching: status, logs, cancel

def status(job_id: str, output: str | Path) -> tuple[state_mod.JobRecord, JobStatus, list[PerfRow]]:
    """The current status of a recorded job; when it has finished and was not collected yet, its rows are merged
    into the run's perf.csv now (returned; empty otherwise).

    Raises:
        ConfigError: the job is not recorded next to ``output``.
        SlurmError: Slurm or the login node is unreachable.
    """
    state_file = state_mod.state_path(output)
    record = state_mod.get(state_file, job_id)
    executor = _executor_for_record(record)
    try:
        monitor = Monitor(SlurmCli(executor), [record.job_id])
        current = monitor.tick()[record.job_id]
        rows: list[PerfRow] = []
        if current.terminal and not record.collected:
            rows = _finish(record, current, executor, state_file)
        elif current.status != "unknown":
            state_mod.update(state_file, record.job_id, status=current.status)
        return record, current, rows
    finally:
        executor.close()


def logs(job_id: str, output: str | Path, follow: bool = False, write: Callable[[str], None] | None = None,
         interval: float = 2.0) -> JobStatus:
    """Write the job's Slurm output (``slurm-<id>.out``, then ``.err``) to ``write``; with ``follow``, keep
    writing what is appended until the job ends. Returns the last status seen.

    Raises:
        ConfigError: the job is not recorded next to ``output``.
        SlurmError: Slurm or the login node is unreachable.
    """
    def to_stdout(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    emit: Callable[[str], None] = write or to_stdout
    state_file = state_mod.state_path(output)
    record = state_mod.get(state_file, job_id)
    executor = _executor_for_record(record)
    out_path, err_path = (f"{record.job_dir}/slurm-{record.job_id}.{s}" for s in ("out", "err"))
    shown = 0
    try:
        monitor = Monitor(SlurmCli(executor), [record.job_id])
        while True:
            current = monitor.tick()[record.job_id]
            text = executor.read_text(out_path) or ""
            if len(text) > shown:
                emit(text[shown:])
                shown = len(text)
            if not follow or current.terminal:
                break
            time.sleep(interval)
        err = executor.read_text(err_path) or ""
        if err.strip():
            emit(f"--- {err_path} ---\n{err}")
        if not text and not err:
            emit(f"(no output yet: {out_path} does not exist; job {current.describe()})\n")
        return current
    finally:
        executor.close()


def cancel(job_id: str, output: str | Path, wait: float = 30.0) -> JobStatus:
    """``scancel`` a recorded job and wait up to ``wait`` seconds for Slurm to show it ended; returns its status.

    Raises:
        ConfigError: the job is not recorded next to ``output``.
        SlurmError: scancel failed.
    """
    state_file = state_mod.state_path(output)
    record = state_mod.get(state_file, job_id)
    executor = _executor_for_record(record)
    try:
        cli = SlurmCli(executor)
        cli.cancel([record.job_id])
        monitor = Monitor(cli, [record.job_id])
        deadline = time.monotonic() + wait
        current = monitor.tick()[record.job_id]
        while not current.terminal and time.monotonic() < deadline:
            time.sleep(0.5)
            current = monitor.tick()[record.job_id]
        state_mod.update(state_file, record.job_id, status=current.status)
        return current
    finally:
        executor.close()
