"""What happens to ONE model on ONE node, in a container: the same sequence everywhere (workstation, Slurm task,
Kubernetes pod).

Sequence (madengine v1 ``tools/run_models.py``, kept compatible): a per-model workspace on the host is mounted at
``/myworkspace``, holding madengine's packaged ``scripts/common/`` and the model's scripts directory copied into
``/myworkspace/<model dir>`` (``run_directory``, or the last part of the model's ``url``). A container is started
from the built image and these steps run in it, in the model dir, each output teed to
``<model>_<dockerfile>.run.live.log``:

1. system-environment capture (``<model>_env.csv`` next to perf.csv) and GPU info, unless disabled;
2. pre-scripts: the tools' (reverse order), then the context's ``pre_scripts``; the data provider's script;
3. the model: ``[tool wrappers] [encapsulate_script] bash run.sh <args>`` (or the ``scripts`` file), under the
   timeout; on timeout its process group is stopped (TERM, then KILL), the container only as a last resort;
4. post-scripts, which run even after a failed or timed-out model: the context's ``post_scripts``, the tools'
   (in order), GPU info.

Only the model step's output is parsed into perf rows. Tool outputs are copied to
``madengine-runs/<run id>/<log name>/`` next to perf.csv. The container is removed (also on errors and Ctrl-C)
unless ``keep_alive``.
"""

from __future__ import annotations

import math
import shlex
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from madengine import docker_engine
from madengine.docker_options import parse_run_options
from madengine.errors import ConfigError, EngineError, MadEngineError
from madengine.gpu import GpuAssignment
from madengine.results.perf_csv import PerfRow
from madengine.results.perf_parse import (
    error_patterns_from_context,
    find_error_marker,
    parse_multiple_results,
    parse_performance,
)
from madengine.workflow.credentials import Masker
from madengine.workflow.data import DataPlan, dir_size
from madengine.workflow.tools import ToolPlan

WORKSPACE = "/myworkspace"
SCRIPT_STEP_TIMEOUT = 600.0  # seconds for each pre/post-script, as madengine
DATA_STEP_TIMEOUT = 1200.0   # seconds for a custom data provider script, as madengine
_PID_FILE = "/tmp/.madengine-step.pid"
# Runs $MADENGINE_STEP as a background job: job control gives it its own process group, which a timeout can stop.
# (``set +m`` right after the fork keeps bash's job notices out of the log; the group stays.)
_STEP_WRAPPER = f'set -m; bash -c "$MADENGINE_STEP" & echo $! > {_PID_FILE}; set +m; wait $!'
_STOP_STEP = (f'p=$(cat {_PID_FILE} 2>/dev/null) || exit 0; kill -TERM -- "-$p" 2>/dev/null; '
              f'for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$p" 2>/dev/null || exit 0; sleep 1; done; '
              f'kill -KILL -- "-$p" 2>/dev/null; true')


@dataclass
class RunRequest:
    """Everything needed to run one built image of one model.

    ``model`` is the models.json entry (dict); ``build`` the manifest's build record (dict); ``timeout`` in seconds
    (``None`` = no limit); ``log_dir`` receives the run log and ``<model>_env.csv``; ``work_root`` the per-model
    workspaces; ``artifacts`` is filled with the paths of collected tool outputs.
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
    nnodes: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    sys_env_details: bool = True
    tools: ToolPlan = field(default_factory=ToolPlan)
    data: DataPlan | None = None
    masker: Masker = field(default_factory=Masker)
    artifacts: list[Path] = field(default_factory=list)


@dataclass
class Step:
    """One command run in the container: ``name`` for messages, ``timeout`` in seconds."""

    name: str
    command: str
    timeout: float | None
    env: dict[str, str] = field(default_factory=dict)


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


def env_csv_name(model_name: str) -> str:
    """``<model>_env.csv`` with ``/`` in the model name replaced by ``_``."""
    return f"{model_name.replace('/', '_')}_env.csv"


def install_common_scripts(workspace: Path, hub: Path) -> None:
    """Copy madengine's packaged ``scripts/common`` into the workspace, then the hub's own ``scripts/common`` (if
    any) over it, so a hub can override a packaged script."""
    packaged = resources.files("madengine").joinpath("data/scripts/common")
    with resources.as_file(packaged) as source:
        shutil.copytree(source, workspace / "scripts" / "common", dirs_exist_ok=True)
    if (hub / "scripts" / "common").is_dir():
        shutil.copytree(hub / "scripts" / "common", workspace / "scripts" / "common", dirs_exist_ok=True)


def _copy_from_hub(hub: Path, relative: str, workspace: Path) -> None:
    source = hub / relative
    if source.is_file():
        (workspace / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, workspace / relative)
    elif not (workspace / relative).is_file():
        raise ConfigError(f"script {relative!r} (pre_scripts/post_scripts/tools) exists neither in the hub "
                          f"({hub}) nor among madengine's packaged scripts/common")


def base_row(req: RunRequest) -> PerfRow:
    """The perf row fields known before the model runs (model, GPUs, image, machine, ...)."""
    model, build = req.model, req.build
    tags = model.get("tags") or []
    data = req.data
    return PerfRow(
        model=model["name"], n_gpus=str(req.gpus.count * req.nnodes), nnodes=str(req.nnodes),
        gpus_per_node=str(req.gpus.count),
        training_precision=model.get("training_precision") or "", args=model.get("args") or "",
        tags=",".join(tags) if isinstance(tags, list) else str(tags),
        docker_file=build.get("dockerfile", ""), base_docker=build.get("base_docker", ""),
        docker_sha=build.get("docker_sha", ""), docker_image=req.image, machine_name=socket.gethostname(),
        deployment_type=req.deployment_type,
        launcher=str(req.ctx.get("launcher") or (req.ctx.get("distributed") or {}).get("launcher") or ""),
        gpu_architecture=req.gpus.architecture,
        build_duration=f"{float(build.get('build_duration') or 0):.2f}",
        dataname=data.dataname if data else "", data_provider_type=data.provider_type if data else "",
        data_size=str(data.size_bytes) if data and data.size_bytes is not None else "",
        data_download_duration=f"{data.download_duration:.2f}" if data else "",
        build_number=str(req.extra_env.get("BUILD_NUMBER", "")),
        additional_docker_run_options=model.get("additional_docker_run_options") or "",
        status="FAILURE",
    )


def container_env(req: RunRequest) -> dict[str, str]:
    """Environment of the model's container: madengine's ``MAD_*`` contract, the model's and the context's
    ``env_vars``, data and credential variables, and the context's ``docker_env_vars`` (which win), then, when the
    context names a launcher, that launcher's variables for this node (:func:`madengine.launchers.node_environment`)."""
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
    if req.data:
        env.update(req.data.env)
    env.update({k: v for k, v in req.extra_env.items() if k != "BUILD_NUMBER"})
    env.update(req.ctx.get("docker_env_vars") or {})
    if req.ctx.get("launcher") or (req.ctx.get("distributed") or {}).get("launcher"):
        from madengine.launchers import node_environment

        env.update(node_environment(req.ctx, env, gpus_per_node=req.gpus.count))
    return env


class OutputCapture:
    """The model step's output, spooled to a file (memory stays flat for multi-GB logs) and scanned line by line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()

    def write(self, chunk: bytes) -> None:
        """Append a chunk of output."""
        self._file.write(chunk)

    def close(self) -> None:
        """Flush and close the spool file (it stays for :meth:`lines`)."""
        self._file.close()

    def lines(self) -> Iterator[str]:
        """The output's lines, decoded leniently (invalid UTF-8 replaced)."""
        with open(self.path, "rb") as f:
            for raw in f:
                yield raw.decode("utf-8", errors="replace")


def scan_output(source: str | OutputCapture, ctx: Mapping[str, Any],
                masker: Masker | None = None) -> tuple[tuple[str, str] | None, str | None]:
    """The first finite ``performance:`` value/metric and the first error-marker line of a model's output.

    ``source`` is the whole text, or an :class:`OutputCapture` scanned line by line. A non-finite value
    (``inf``, ``nan``, ``1e999``) does not count as a performance.
    """
    patterns, benign = error_patterns_from_context(ctx)
    perf: tuple[str, str] | None = None
    marker: str | None = None
    in_traceback = False  # a Python traceback is reported by its final, unindented exception line
    lines = source.splitlines() if isinstance(source, str) else source.lines()
    for line in lines:
        if perf is None:
            found = parse_performance(line)
            if found is not None and _finite(found[0]):
                perf = found
        if in_traceback and line.strip() and not line[:1].isspace():
            marker, in_traceback = line.strip()[:200], False
        elif marker is None and patterns:
            marker = find_error_marker(line, patterns, benign)
            in_traceback = bool(marker and marker.startswith("Traceback (most recent call last)"))
        if perf is not None and not in_traceback and (marker is not None or not patterns):
            break
    if marker and masker:
        marker = masker.text(marker)
    return perf, marker


def _finite(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _rows_from_output(req: RunRequest, row: PerfRow, output: str | OutputCapture, model_dir: Path,
                      workspace: Path) -> list[PerfRow]:
    parsed, marker = scan_output(output, req.ctx, req.masker)
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
    if parsed and marker is None:
        return [row.model_copy(update={"performance": parsed[0], "metric": parsed[1], "status": "SUCCESS"})]
    update: dict[str, Any] = {"status": "FAILURE",
                              "reason": f"log shows: {marker}" if marker else "no 'performance: <value> <metric>' line"}
    if parsed:
        update.update(performance=parsed[0], metric=parsed[1])
    return [row.model_copy(update=update)]


def plan_steps(req: RunRequest, model_command: str) -> tuple[list[Step], Step, list[Step]]:
    """The pre-steps, the model step and the post-steps of one run (see the module docstring for the order)."""
    common = f"{WORKSPACE}/scripts/common"
    pre: list[Step] = []
    post: list[Step] = []
    if req.sys_env_details:
        out = f"{WORKSPACE}/{env_csv_name(req.model['name'])}"
        pre.append(Step("sys-env", f"bash {common}/pre_scripts/sys_env.sh {shlex.quote(out)}", SCRIPT_STEP_TIMEOUT))
        pre.append(Step("gpu-info", f"bash {common}/gpu_info.sh before", SCRIPT_STEP_TIMEOUT))
    scripts_pre = list(req.tools.pre_scripts) + [_script_ref(s) for s in req.ctx.get("pre_scripts") or []]
    scripts_post = [_script_ref(s) for s in req.ctx.get("post_scripts") or []] + list(req.tools.post_scripts)
    for ref in scripts_pre:
        pre.append(Step(f"pre-script {ref.path}", f"bash {WORKSPACE}/{ref.path} {ref.args}".strip(),
                        SCRIPT_STEP_TIMEOUT))
    if req.data and req.data.container_step:
        pre.append(Step(f"data {req.data.dataname} (custom)", req.data.container_step, DATA_STEP_TIMEOUT))
    for ref in scripts_post:
        post.append(Step(f"post-script {ref.path}", f"bash {WORKSPACE}/{ref.path} {ref.args}".strip(),
                         SCRIPT_STEP_TIMEOUT))
    if req.sys_env_details:
        post.append(Step("gpu-info", f"bash {common}/gpu_info.sh after", SCRIPT_STEP_TIMEOUT))
    model = Step("model", model_command, req.timeout, env=dict(req.tools.env))
    return pre, model, post


def _script_ref(entry: Any) -> Any:
    from madengine.context import ScriptRef

    return entry if isinstance(entry, ScriptRef) else ScriptRef.model_validate(entry)


def prepare_workspace(req: RunRequest, workspace: Path, scripts_dir: Path, model_dir: str) -> None:
    """Lay out the workspace: packaged and hub common scripts, the model's scripts, every script a step names."""
    if workspace.exists():
        shutil.rmtree(workspace)
    source = req.hub / scripts_dir
    if not source.is_dir():
        raise ConfigError(f"model {req.model.get('name')!r}: scripts directory {source} does not exist (field "
                          "'scripts'; if the hub moved since the build, pass --hub)")
    install_common_scripts(workspace, req.hub)
    shutil.copytree(source, workspace / model_dir, dirs_exist_ok=True)
    refs = list(req.tools.pre_scripts) + list(req.tools.post_scripts) + [
        _script_ref(s) for key in ("pre_scripts", "post_scripts") for s in req.ctx.get(key) or []]
    for ref in refs:
        _copy_from_hub(req.hub, ref.path, workspace)
    if req.data and req.data.script:
        _copy_from_hub(req.hub, req.data.script, workspace)


def collect_artifacts(req: RunRequest, workspace: Path, model_dir: Path, log_base: str) -> None:
    """Copy ``<model>_env.csv`` next to perf.csv and the tools' outputs into the per-run directory."""
    env_csv = workspace / env_csv_name(req.model["name"])
    if env_csv.is_file():
        shutil.copy2(env_csv, req.log_dir / env_csv.name)
        req.artifacts.append(req.log_dir / env_csv.name)
    dest = req.log_dir / "madengine-runs" / req.run_id / log_base
    for pattern in req.tools.outputs:
        for found in sorted(model_dir.glob(pattern)):
            if found.is_file():
                target = dest / found.relative_to(model_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(found, target)
                req.artifacts.append(target)


class _Log:
    """The run log: masked, line-buffered writes to the file and (with live output) to the terminal."""

    def __init__(self, path: Path, masker: Masker, live: bool) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.masker, self.live = masker, live

    def write(self, chunk: bytes) -> None:
        data = self.masker.feed(chunk)
        if data:
            self.file.write(data)
            self.file.flush()
            if self.live:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()

    def close(self) -> None:
        self.write(b"")
        rest = self.masker.flush()
        if rest:
            self.file.write(rest)
            if self.live:
                sys.stdout.buffer.write(rest)
        self.file.close()


@dataclass
class Plan:
    """One model run laid out: the row so far, names and paths, and the steps (see :func:`plan_steps`)."""

    row: PerfRow
    scripts_dir: Path
    model_dir: str
    log_base: str
    log_path: Path
    model_command: str
    pre: list[Step]
    model_step: Step
    post: list[Step]


def plan_run(req: RunRequest) -> Plan:
    """Lay out one model run (the same for every runtime): args (``model_args`` wins over the models.json
    ``args``), the model command with tools and ``encapsulate_script``, log names, and the steps."""
    row = base_row(req)
    model_args = req.ctx.get("model_args")
    args = str(model_args) if model_args is not None else str(req.model.get("args") or "")
    row.args = args
    scripts_dir, command = script_command(req.model, args)
    encapsulate = req.ctx.get("encapsulate_script") or ""
    log_base = req.build.get("log_base") or Path(req.build.get("log_file", "model")).name.replace(".build.live.log", "")
    model_dir = model_dir_name(req.model)
    model_command = f"cd {WORKSPACE}/{model_dir} && " + req.tools.wrap(f"{encapsulate} {command}".strip())
    pre, model_step, post = plan_steps(req, model_command)
    return Plan(row, scripts_dir, model_dir, log_base, req.log_dir / f"{log_base}.run.live.log", model_command,
                pre, model_step, post)


@dataclass
class Outcome:
    """How the steps went: ``failure`` names a failed pre-step (the model was skipped), ``result`` is the model
    step's result (``exit_code``, ``timed_out``), ``duration`` the model step's wall time in seconds."""

    failure: str = ""
    result: Any = None
    duration: float = 0.0


def run_steps(req: RunRequest, plan: Plan, execute: Callable[[Step, OutputCapture | None], Any],
              capture: OutputCapture, log: _Log, echo: Callable[[str], None]) -> Outcome:
    """Pre-steps (the first failure skips the model), the model step into ``capture``, then every post-step.

    ``execute(step, capture_or_None)`` runs one step and returns an object with ``exit_code`` and ``timed_out``.
    """
    outcome = Outcome()
    for step in plan.pre:
        done = execute(step, None)
        if step.name.startswith("data ") and req.data is not None:
            req.data.download_duration = float(getattr(done, "duration", 0.0))
        if done.timed_out or done.exit_code != 0:
            why = "timed out" if done.timed_out else f"exited with code {done.exit_code}"
            outcome.failure = f"{step.name} {why}"
            echo(f"{req.model['name']}: {outcome.failure}; skipping the model, running post-scripts")
            break
    start = time.monotonic()
    if not outcome.failure:
        outcome.result = execute(plan.model_step, capture)
    outcome.duration = time.monotonic() - start
    for step in plan.post:
        done = execute(step, None)
        if done.timed_out or done.exit_code != 0:
            echo(f"warning: {req.model['name']}: {step.name} failed "
                 f"({'timed out' if done.timed_out else f'exit code {done.exit_code}'})")
    if outcome.result is not None and outcome.result.timed_out:
        log.write(f"\nmadengine: timed out after {req.timeout:.0f} s; the model was stopped\n".encode())
    return outcome


def finish(req: RunRequest, plan: Plan, outcome: Outcome, capture: OutputCapture, workspace: Path) -> list[PerfRow]:
    """The run's perf rows from its outcome and output; collects artifacts and removes the workspace (unless
    ``keep_model_dir``/``keep_alive``)."""
    row, model_dir = plan.row, workspace / plan.model_dir
    row.test_duration = f"{outcome.duration:.2f}"
    if req.data is not None:
        if req.data.size_bytes is None and req.data.mounts:  # a mirrored custom download: measure it now
            req.data.size_bytes = dir_size(Path(next(iter(req.data.mounts))))
        row.data_size = "" if req.data.size_bytes is None else str(req.data.size_bytes)
        row.data_download_duration = f"{req.data.download_duration:.2f}"
    result = outcome.result
    if outcome.failure:
        rows = [row.model_copy(update={"status": "FAILURE", "reason": outcome.failure})]
    elif result is not None and result.timed_out:
        rows = [row.model_copy(update={"status": "FAILURE", "reason": f"timed out after {req.timeout:.0f} s"})]
    else:
        rows = _rows_from_output(req, row, capture, model_dir, workspace)
        if result is not None and result.exit_code != 0:
            reason = f"run command exited with code {result.exit_code}"
            rows = [r.model_copy(update={"status": "FAILURE", "reason": reason}) for r in rows]
    collect_artifacts(req, workspace, model_dir, plan.log_base)
    capture.path.unlink(missing_ok=True)
    if not (req.keep_model_dir or req.keep_alive):
        shutil.rmtree(workspace, ignore_errors=True)
    return rows


def discard(req: RunRequest, capture: OutputCapture, workspace: Path) -> None:
    """After an interruption or a failed start: remove the workspace and spooled output (unless kept)."""
    if not (req.keep_model_dir or req.keep_alive):
        shutil.rmtree(workspace, ignore_errors=True)
        capture.path.unlink(missing_ok=True)


def run_model(client: Any, req: RunRequest, echo: Callable[[str], None]) -> list[PerfRow]:
    """Run one model in a container and return its perf rows (one, or one per ``multiple_results`` line).

    Failures of the model itself (a failing pre-script, non-zero exit, timeout, error marker in the log, missing
    performance) become FAILURE rows with a reason. ``echo`` receives one-line progress messages.

    Raises:
        ConfigError: bad model scripts or docker options.
        EngineError: the engine refused to start the container.
        KeyboardInterrupt: after the container was removed.
    """
    plan = plan_run(req)
    row, model_dir = plan.row, plan.model_dir
    # madengine names containers container_<log base>; the run id suffix lets two runs of one model share a host.
    container_name = f"container_{plan.log_base}-{req.run_id[:8]}"
    if req.skip_model_run:
        echo(f"skip-model-run: would run in {req.image}: {plan.model_command}")
        return [row.model_copy(update={"status": "SKIPPED", "reason": "--skip-model-run"})]

    kwargs, extra_env, volumes = parse_run_options(row.additional_docker_run_options)
    workspace = req.work_root / container_name
    prepare_workspace(req, workspace, plan.scripts_dir, model_dir)
    mounts = {str(workspace): (WORKSPACE, "rw")}
    for container_path, host_path in (req.ctx.get("docker_mounts") or {}).items():
        mounts[str(Path(host_path).resolve())] = (container_path, "rw")
    if req.data:
        mounts.update(req.data.mounts)
    for volume in volumes:
        parts = volume.split(":")
        if len(parts) < 2:
            raise ConfigError(f"additional_docker_run_options: -v {volume!r} needs HOST:CONTAINER[:MODE]")
        mounts[str(Path(parts[0]).resolve())] = (parts[1], parts[2] if len(parts) > 2 else "rw")
    devices = req.gpus.devices + kwargs.pop("devices", [])
    spec = docker_engine.ContainerSpec(
        image=req.image, name=container_name, labels={docker_engine.RUN_LABEL: req.run_id,
                                                      "org.madengine.model": req.model["name"],
                                                      "org.madengine.output-dir": str(req.log_dir)},
        env=container_env(req) | extra_env, mounts=mounts, devices=[d.split(":")[0] for d in devices],
        group_add=req.gpus.group_add + kwargs.pop("group_add", []), nvidia_device_ids=req.gpus.nvidia_device_ids,
        extra=kwargs)

    req.log_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(plan.log_path, req.masker, req.live_output)
    container = None
    capture = OutputCapture(req.work_root / f"{container_name}.out")
    try:
        container = docker_engine.start_container(client, spec)

        def run_step(step: Step, collect: OutputCapture | None = None) -> docker_engine.ExecResult:
            log.write(f"+ [{step.name}] {step.command}\n".encode())
            for attempt in (1, 2):
                first = bytearray()

                def output(chunk: bytes, first: bytearray = first) -> None:
                    if len(first) < 512:
                        first.extend(chunk[:512])
                    if collect is not None:
                        collect.write(chunk)
                    log.write(chunk)

                assert container is not None
                outcome = docker_engine.exec_stream(
                    client, container, ["bash", "-c", _STEP_WRAPPER], workdir=f"{WORKSPACE}/{model_dir}",
                    env=step.env | {"MADENGINE_STEP": step.command}, on_output=output, timeout=step.timeout,
                    on_timeout=lambda: docker_engine.exec_quiet(client, container, ["bash", "-c", _STOP_STEP]))
                if outcome.exit_code in (126, 127) and bytes(first).startswith(b"OCI runtime exec failed"):
                    # the engine could not start the step (the step itself never ran): retry once, then give up
                    if attempt == 1:
                        echo(f"warning: {req.model['name']}: the engine failed to start {step.name}; retrying")
                        continue
                    raise EngineError(f"the Docker engine failed to start {step.name} in {container_name}: "
                                      f"{bytes(first).decode(errors='replace').strip()[:200]}")
                return outcome
            raise AssertionError("unreachable")

        outcome = run_steps(req, plan, run_step, capture, log, echo)
    except BaseException:
        discard(req, capture, workspace)
        raise
    finally:
        log.close()
        capture.close()
        if not req.keep_alive or container is None:
            removed = (docker_engine.remove_container(container) if container is not None
                       else docker_engine.remove_container_named(client, container_name))
            if not removed:
                echo(f"warning: could not remove container {container_name}; remove it with "
                     f"`docker rm -f {container_name}`")
        else:
            echo(f"keep-alive: container {container_name} left running (workspace {workspace} kept); enter it "
                 f"with `docker exec -it {container_name} bash`, remove it with `docker rm -f {container_name}`")
    return finish(req, plan, outcome, capture, workspace)
