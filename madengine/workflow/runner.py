"""What happens to ONE model on ONE node, in a container: the same sequence everywhere (workstation, Slurm task,
Kubernetes pod).

Sequence (madengine v1 ``tools/run_models.py``, kept compatible): a per-model workspace on the host is mounted at
``/myworkspace``; the model's scripts directory is copied into ``/myworkspace/<model dir>`` (``run_directory``, or
the last part of the model's ``url``); a container is started from the built image; ``bash run.sh <args>`` (or the
``scripts`` file) runs in the model dir with the whole output teed to ``<model>_<dockerfile>.run.live.log``; the
output is parsed into perf rows; the container is removed (also on errors and Ctrl-C) unless ``keep_alive``.
"""

from __future__ import annotations

import shlex
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from madengine import docker_engine
from madengine.docker_options import parse_run_options
from madengine.errors import ConfigError, MadEngineError
from madengine.gpu import GpuAssignment
from madengine.results.perf_csv import PerfRow
from madengine.results.perf_parse import (
    error_patterns_from_context,
    find_error_marker,
    parse_multiple_results,
    parse_performance,
)

WORKSPACE = "/myworkspace"


@dataclass
class RunRequest:
    """Everything needed to run one built image of one model.

    ``model`` is the models.json entry (dict); ``build`` the manifest's build record (dict); ``timeout`` in seconds
    (``None`` = no limit); ``log_dir`` receives the run log; ``work_root`` the per-model workspaces.
    """

    model: dict[str, Any]
    build: dict[str, Any]
    image: str
    hub: Path
    ctx: dict[str, Any]
    gpus: GpuAssignment
    timeout: float | None
    log_dir: Path
    work_root: Path
    run_id: str
    keep_alive: bool = False
    keep_model_dir: bool = False
    skip_model_run: bool = False
    live_output: bool = False
    deployment_type: str = "local"
    extra_env: dict[str, str] = field(default_factory=dict)


def model_dir_name(model: dict[str, Any]) -> str:
    """The model's directory inside the workspace: last part of ``url`` without ``.git``, else ``run_directory``."""
    url = (model.get("url") or "").rstrip("/")
    if url:
        name = url.rsplit("/", 1)[-1]
        return name[:-4] if name.endswith(".git") else name
    return "run_directory"


def script_command(model: dict[str, Any], args: str) -> tuple[Path, str]:
    """The scripts directory (relative to the hub) and the shell command that starts the model in its dir.

    ``scripts`` is a directory (runs ``run.sh``) or a ``.sh``/``.py`` file. ``args`` is appended as shell words, as
    madengine does.

    Raises:
        ConfigError: ``scripts`` is empty.
    """
    scripts = model.get("scripts") or ""
    if not scripts:
        raise ConfigError(f"models.json: model {model.get('name')!r} has no 'scripts' field")
    path = Path(scripts)
    if path.suffix in (".sh", ".py"):
        runner = "python3" if path.suffix == ".py" else "bash"
        return path.parent, f"{runner} {shlex.quote(path.name)} {args}".strip()
    return path, f"bash run.sh {args}".strip()


def _copy_scripts(src: Path, dest: Path) -> None:
    if not src.is_dir():
        raise ConfigError(f"models.json: scripts directory {src} does not exist")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dest, symlinks=False, dirs_exist_ok=True)


def base_row(req: RunRequest) -> PerfRow:
    """The perf row fields known before the model runs (model, GPUs, image, machine, ...)."""
    model, build = req.model, req.build
    tags = model.get("tags") or []
    return PerfRow(
        model=model["name"], n_gpus=str(req.gpus.count), nnodes="1", gpus_per_node=str(req.gpus.count),
        training_precision=model.get("training_precision") or "", args=model.get("args") or "",
        tags=",".join(tags) if isinstance(tags, list) else str(tags),
        docker_file=build.get("dockerfile", ""), base_docker=build.get("base_docker", ""),
        docker_sha=build.get("docker_sha", ""), docker_image=req.image, machine_name=socket.gethostname(),
        deployment_type=req.deployment_type,
        launcher=str(req.ctx.get("launcher") or (req.ctx.get("distributed") or {}).get("launcher") or ""),
        gpu_architecture=req.gpus.architecture,
        build_duration=f"{float(build.get('build_duration') or 0):.2f}",
        build_number=str(req.extra_env.get("BUILD_NUMBER", "")),
        additional_docker_run_options=model.get("additional_docker_run_options") or "",
        status="FAILURE",
    )


def container_env(req: RunRequest) -> dict[str, str]:
    """Environment of the model's container: madengine's ``MAD_*`` contract plus ``docker_env_vars``."""
    env = {
        "MAD_MODEL_NAME": req.model["name"],
        "MAD_GPU_VENDOR": req.gpus.vendor,
        "MAD_RUNTIME_NGPUS": str(req.gpus.count),
        "MAD_SYSTEM_GPU_ARCHITECTURE": req.gpus.architecture,
        "MAD_OUTPUT_CSV": req.model.get("multiple_results") or "",
        "MAD_DEPLOYMENT_TYPE": req.deployment_type,
    }
    env.update({k: str(v) for k, v in (req.model.get("env_vars") or {}).items()})
    env.update(req.ctx.get("env_vars") or {})
    env.update(req.ctx.get("docker_env_vars") or {})
    return env


def _rows_from_output(req: RunRequest, row: PerfRow, log_text: str, model_dir: Path, workspace: Path) -> list[PerfRow]:
    patterns, benign = error_patterns_from_context(req.ctx)
    marker = find_error_marker(log_text, patterns, benign) if patterns else None
    multiple = req.model.get("multiple_results")
    if multiple:
        csv_path = next((p for p in (model_dir / multiple, workspace / multiple) if p.is_file()), model_dir / multiple)
        try:
            results = parse_multiple_results(csv_path)
        except MadEngineError as e:
            return [row.model_copy(update={"status": "FAILURE", "reason": f"multiple_results: {e.message}"})]
        rows = []
        for result in results:
            ok = result.status == "SUCCESS" and marker is None
            reason = "" if ok else (f"log shows: {marker}" if marker else f"multiple_results: {result.reason}")
            rows.append(row.model_copy(update={
                "model": result.row_name(row.model), "performance": result.performance, "metric": result.metric,
                "status": "SUCCESS" if ok else "FAILURE", "reason": reason}))
        return rows
    parsed = parse_performance(log_text)
    if parsed and marker is None:
        return [row.model_copy(update={"performance": parsed[0], "metric": parsed[1], "status": "SUCCESS"})]
    update: dict[str, Any] = {"status": "FAILURE",
                              "reason": f"log shows: {marker}" if marker else "no 'performance: <value> <metric>' line"}
    if parsed:
        update.update(performance=parsed[0], metric=parsed[1])
    return [row.model_copy(update=update)]


def run_model(client: Any, req: RunRequest, echo: Callable[[str], None]) -> list[PerfRow]:
    """Run one model in a container and return its perf rows (one, or one per ``multiple_results`` line).

    Failures of the model itself (non-zero exit, timeout, error marker in the log, missing performance) become
    FAILURE rows with a reason. ``echo`` receives one-line progress messages.

    Raises:
        ConfigError: bad model scripts or docker options.
        EngineError: the engine refused to start the container.
        KeyboardInterrupt: after the container was removed.
    """
    row = base_row(req)
    model_args = req.ctx.get("model_args")
    args = str(model_args) if model_args is not None else str(req.model.get("args") or "")
    row.args = args
    scripts_dir, command = script_command(req.model, args)
    encapsulate = req.ctx.get("encapsulate_script") or ""
    log_base = req.build.get("log_base") or Path(req.build.get("log_file", "model")).name.replace(".build.live.log", "")
    log_path = req.log_dir / f"{log_base}.run.live.log"
    # madengine names containers container_<log base>; the run id suffix lets two runs of one model share a host.
    container_name = f"container_{log_base}-{req.run_id[:8]}"
    model_dir = model_dir_name(req.model)
    full_command = f"cd {WORKSPACE}/{model_dir} && {encapsulate} {command}".replace("  ", " ")
    if req.skip_model_run:
        echo(f"skip-model-run: would run in {req.image}: {full_command}")
        return [row.model_copy(update={"status": "SKIPPED", "reason": "--skip-model-run"})]

    kwargs, extra_env, volumes = parse_run_options(row.additional_docker_run_options)
    workspace = req.work_root / container_name
    if workspace.exists():
        shutil.rmtree(workspace)
    _copy_scripts(req.hub / scripts_dir, workspace / model_dir)
    mounts = {str(workspace): (WORKSPACE, "rw")}
    for container_path, host_path in (req.ctx.get("docker_mounts") or {}).items():
        mounts[str(Path(host_path).resolve())] = (container_path, "rw")
    for volume in volumes:
        parts = volume.split(":")
        if len(parts) < 2:
            raise ConfigError(f"additional_docker_run_options: -v {volume!r} needs HOST:CONTAINER[:MODE]")
        mounts[str(Path(parts[0]).resolve())] = (parts[1], parts[2] if len(parts) > 2 else "rw")
    env = container_env(req) | extra_env
    devices = req.gpus.devices + kwargs.pop("devices", [])
    spec = docker_engine.ContainerSpec(
        image=req.image, name=container_name, labels={docker_engine.RUN_LABEL: req.run_id,
                                                      "org.madengine.model": req.model["name"]},
        env=env, mounts=mounts, devices=[d.split(":")[0] for d in devices],
        group_add=req.gpus.group_add + kwargs.pop("group_add", []), nvidia_device_ids=req.gpus.nvidia_device_ids,
        extra=kwargs)

    req.log_dir.mkdir(parents=True, exist_ok=True)
    container = None
    with open(log_path, "wb") as log:
        def write(chunk: bytes) -> None:
            log.write(chunk)
            log.flush()
            if req.live_output:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()

        write(f"+ [{req.image}] {full_command}\n".encode())
        start = time.monotonic()
        try:
            container = docker_engine.start_container(client, spec)
            output = bytearray()

            def collect(chunk: bytes) -> None:
                output.extend(chunk)
                write(chunk)

            result = docker_engine.exec_stream(client, container, ["bash", "-c", full_command],
                                               workdir=WORKSPACE, env={}, on_output=collect, timeout=req.timeout)
        finally:
            if not req.keep_alive or container is None:
                removed = (docker_engine.remove_container(container) if container is not None
                           else docker_engine.remove_container_named(client, container_name))
                if not removed:
                    echo(f"warning: could not remove container {container_name}; remove it with "
                         f"`docker rm -f {container_name}`")
            else:
                echo(f"keep-alive: container {container_name} left running; enter it with "
                     f"`docker exec -it {container_name} bash`, remove it with `docker rm -f {container_name}`")
        duration = time.monotonic() - start
        text = output.decode("utf-8", errors="replace")
        if result.timed_out:
            write(f"\nmadengine: timed out after {req.timeout:.0f} s; container killed\n".encode())
    row.test_duration = f"{duration:.2f}"
    if result.timed_out:
        rows = [row.model_copy(update={"status": "FAILURE", "reason": f"timed out after {req.timeout:.0f} s"})]
    elif result.exit_code != 0:
        rows = _rows_from_output(req, row, text, workspace / model_dir, workspace)
        reason = f"run command exited with code {result.exit_code}"
        rows = [r.model_copy(update={"status": "FAILURE", "reason": reason}) for r in rows]
    else:
        rows = _rows_from_output(req, row, text, workspace / model_dir, workspace)
    if not (req.keep_model_dir or req.keep_alive):
        shutil.rmtree(workspace, ignore_errors=True)
    return rows
