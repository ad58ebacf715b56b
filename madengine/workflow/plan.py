"""The plan of ONE model run on ONE node, the same for every runtime (container, native, pod): the request, the
names (model dir, logs), the model's environment (madengine's ``MAD_*`` contract), its first perf row and its
steps (the sequence is described in :mod:`madengine.workflow.runner`)."""

from __future__ import annotations

import shlex
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from madengine.errors import ConfigError
from madengine.gpu import GpuAssignment
from madengine.hub import Model
from madengine.manifest import BuiltImage
from madengine.results.perf_csv import PerfRow
from madengine.run_spec import RunOptions
from madengine.workflow.credentials import Masker
from madengine.workflow.data import DataPlan
from madengine.workflow.tools import ToolPlan

WORKSPACE = "/myworkspace"
SCRIPT_STEP_TIMEOUT = 600.0  # seconds for each pre/post-script, as madengine
DATA_STEP_TIMEOUT = 1200.0   # seconds for a custom data provider script, as madengine


@dataclass
class RunRequest:
    """Everything needed to run one built image of one model.

    ``model`` is the models.json record; ``build`` the manifest's build record; ``timeout`` in seconds
    (``None`` = no limit); ``options`` the run options (``keep_alive``, ``keep_model_dir``, ``skip_model_run``,
    ``live_output`` act here); ``log_dir`` receives the run log and ``<model>_env.csv``; ``work_root`` the per-model
    workspaces; ``artifacts`` is filled with the paths of collected tool outputs.
    """

    model: Model
    build: BuiltImage
    image: str
    hub: Path
    ctx: dict[str, Any]
    gpus: GpuAssignment
    timeout: float | None
    log_dir: Path
    work_root: Path
    run_id: str
    options: RunOptions = field(default_factory=RunOptions)
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


def model_dir_name(model: Model) -> str:
    """The model's directory inside the workspace: last part of ``url`` without ``.git``, else ``run_directory``."""
    url = model.url.rstrip("/")
    if url:
        name = url.rsplit("/", 1)[-1]
        return name[:-4] if name.endswith(".git") else name
    return "run_directory"


def script_command(model: Model, args: str) -> tuple[Path, str]:
    """The scripts directory (relative to the hub) and the shell command that starts the model in its dir.

    ``scripts`` is a directory (runs ``run.sh``) or a ``.sh``/``.py`` file. ``args`` is appended as shell words, as
    madengine does.

    Raises:
        ConfigError: ``scripts`` is empty.
    """
    scripts = model.scripts
    if not scripts:
        raise ConfigError(f"models.json: model {model.name!r} has no 'scripts' field")
    path = Path(scripts)
    if path.suffix in (".sh", ".py"):
        runner = "python3" if path.suffix == ".py" else "bash"
        return path.parent, f"{runner} {shlex.quote(path.name)} {args}".strip()
    return path, f"bash run.sh {args}".strip()


def env_csv_name(model_name: str) -> str:
    """``<model>_env.csv`` with ``/`` in the model name replaced by ``_``."""
    return f"{model_name.replace('/', '_')}_env.csv"


def _image_sha(req: RunRequest) -> str:
    """``docker_sha``: the build's recorded digest, else the ID of the image the model runs in (the run checks it
    is the one on the node); ``""`` for a native run (no image)."""
    if req.ctx.get("runtime") == "native":
        return ""
    return req.build.docker_sha or req.build.image_id


def base_row(req: RunRequest) -> PerfRow:
    """The perf row fields known before the model runs (model, GPUs, image, machine, ...)."""
    model, build = req.model, req.build
    data = req.data
    return PerfRow(
        model=model.name, n_gpus=str(req.gpus.count * req.nnodes), nnodes=str(req.nnodes),
        gpus_per_node=str(req.gpus.count),
        training_precision=model.training_precision, args=model.args, tags=",".join(model.tags),
        docker_file=build.dockerfile, base_docker=build.base_docker, docker_sha=_image_sha(req),
        docker_image=req.image, machine_name=socket.gethostname(),
        deployment_type=req.deployment_type,
        launcher=str(req.ctx.get("launcher") or (req.ctx.get("distributed") or {}).get("launcher") or ""),
        gpu_architecture=req.gpus.architecture,
        build_duration=f"{build.build_duration:.2f}",
        dataname=data.dataname if data else "", data_provider_type=data.provider_type if data else "",
        data_size=str(data.size_bytes) if data and data.size_bytes is not None else "",
        data_download_duration=f"{data.download_duration:.2f}" if data else "",
        build_number=str(req.extra_env.get("BUILD_NUMBER", "")),
        additional_docker_run_options=model.additional_docker_run_options,
        status="FAILURE",
    )


def cpu_list(req: RunRequest) -> list[int] | None:
    """The CPUs the model may use (context ``docker_cpus``, madengine's ``--cpuset-cpus``): indices, or ``None``
    for all.

    Raises:
        ConfigError: a malformed list.
    """
    from madengine.gpu import parse_gpu_list

    spec = req.ctx.get("docker_cpus")
    return parse_gpu_list(str(spec), "docker_cpus") if spec else None


def container_env(req: RunRequest) -> dict[str, str]:
    """Environment of the model's container: madengine's ``MAD_*`` contract, the model's and the context's
    ``env_vars``, data and credential variables, and the context's ``docker_env_vars`` (which win), then, when the
    context names a launcher, that launcher's variables for this node (:func:`madengine.launchers.node_environment`)."""
    env = {
        "MAD_MODEL_NAME": req.model.name,
        "MAD_GPU_VENDOR": req.gpus.vendor,
        "MAD_RUNTIME_NGPUS": str(req.gpus.count),
        "MAD_SYSTEM_GPU_ARCHITECTURE": req.gpus.architecture,
        "MAD_OUTPUT_CSV": req.model.multiple_results,
        "MAD_DEPLOYMENT_TYPE": req.deployment_type,
    }
    env.update({k: str(v) for k, v in req.model.env_vars.items()})
    env.update(req.ctx.get("env_vars") or {})
    if req.data:
        env.update(req.data.env)
    env.update({k: v for k, v in req.extra_env.items() if k != "BUILD_NUMBER"})
    env.update(req.ctx.get("docker_env_vars") or {})
    if req.ctx.get("launcher") or (req.ctx.get("distributed") or {}).get("launcher"):
        from madengine.launchers import node_environment

        env.update(node_environment(req.ctx, env, gpus_per_node=req.gpus.count))
    return env


def plan_steps(req: RunRequest, model_command: str) -> tuple[list[Step], Step, list[Step]]:
    """The pre-steps, the model step and the post-steps of one run (see the module docstring for the order)."""
    common = f"{WORKSPACE}/scripts/common"
    pre: list[Step] = []
    post: list[Step] = []
    if req.sys_env_details:
        out = f"{WORKSPACE}/{env_csv_name(req.model.name)}"
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
    args = str(model_args) if model_args is not None else req.model.args
    row.args = req.masker.text(args)  # a credential passed in args never reaches perf.csv
    scripts_dir, command = script_command(req.model, args)
    encapsulate = req.ctx.get("encapsulate_script") or ""
    log_base = req.build.log_base or Path(req.build.log_file or "model").name.replace(".build.live.log", "")
    model_dir = model_dir_name(req.model)
    model_command = f"cd {WORKSPACE}/{model_dir} && " + req.tools.wrap(f"{encapsulate} {command}".strip())
    pre, model_step, post = plan_steps(req, model_command)
    return Plan(row, scripts_dir, model_dir, log_base, req.log_dir / f"{log_base}.run.live.log", model_command,
                pre, model_step, post)
