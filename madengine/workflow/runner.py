"""What happens to ONE model on ONE node, in a container: the same sequence everywhere (workstation, Slurm task,
Kubernetes pod).

Sequence (madengine v1 ``tools/run_models.py``, kept compatible): a per-model workspace on the host is mounted at
``/myworkspace``, holding madengine's packaged ``scripts/common/``, the model's scripts directory copied into
``/myworkspace/<model dir>`` (``run_directory``, or the last part of the model's ``url``) and the step script
(:mod:`madengine.workflow.script`, ``templates/run/steps.sh.j2``). The step script is the main process of a
container made from the built image (as ``docker run`` would; with ``keep_alive`` it runs in ONE ``docker exec`` in
an idle container instead, so the container outlives it). Its output is teed (masked) to
``<model>_<dockerfile>.run.live.log`` and, with ``--live-output``, to the terminal. The script runs the pre-steps
(environment capture, tools' and context's pre-scripts, custom data), the model (under its timeout), the post-steps;
the rows come from what it leaves in the workspace (:mod:`madengine.workflow.steps`). Tool outputs are copied to
``madengine-runs/<run id>/<log name>/`` next to perf.csv, with the step script. The container is removed (also on
errors and Ctrl-C) unless ``keep_alive``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from madengine import docker_engine, owner
from madengine.docker_options import parse_run_options
from madengine.errors import ConfigError
from madengine.results.perf_csv import PerfRow
from madengine.workflow import script
from madengine.workflow.plan import WORKSPACE, RunRequest, container_env, cpu_list, plan_run
from madengine.workflow.steps import begin, discard, finish
from madengine.workflow.workspace import prepare_workspace


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
    container_name = docker_engine.container_name(f"container_{plan.log_base}-{req.run_id[:8]}")
    if req.options.skip_model_run:
        echo(f"skip-model-run: would run in {req.image}: {plan.model_command}")
        return [row.model_copy(update={"status": "SKIPPED", "reason": "--skip-model-run"})]

    kwargs, extra_env, volumes = parse_run_options(row.additional_docker_run_options)
    cpus = cpu_list(req)
    if cpus is not None:
        kwargs["cpuset_cpus"] = ",".join(map(str, cpus))
    workspace = req.work_root / container_name
    prepare_workspace(req, workspace, plan.scripts_dir, model_dir)
    mounts = {str(workspace): (WORKSPACE, "rw")}
    for container_path, host_path in (req.ctx.get("docker_mounts") or {}).items():
        if not Path(host_path).exists():  # Docker would create it, as root, and the model would see an empty dir
            raise ConfigError(f"context key 'docker_mounts': {host_path} (for {container_path}) does not exist on "
                              "this host; create it or fix the path")
        mounts[str(Path(host_path).resolve())] = (container_path, "rw")
    if req.data:
        mounts.update(req.data.mounts)
    for volume in volumes:
        parts = volume.split(":")
        if len(parts) < 2:
            raise ConfigError(f"additional_docker_run_options: -v {volume!r} needs HOST:CONTAINER[:MODE]")
        mounts[str(Path(parts[0]).resolve())] = (parts[1], parts[2] if len(parts) > 2 else "rw")
    devices = req.gpus.devices + kwargs.pop("devices", [])
    labels = {docker_engine.RUN_LABEL: req.run_id, "org.madengine.model": req.model.name,
              "org.madengine.output-dir": str(req.log_dir)}
    if req.options.keep_alive:
        labels[owner.KEEP_ALIVE_LABEL] = "1"
    spec = docker_engine.ContainerSpec(
        image=req.image, name=container_name, labels=labels, env=container_env(req) | extra_env, mounts=mounts, devices=[d.split(":")[0] for d in devices],
        group_add=req.gpus.group_add + kwargs.pop("group_add", []), nvidia_device_ids=req.gpus.nvidia_device_ids,
        extra=kwargs)

    _, log = begin(req, plan, workspace, script.render(req, plan, workspace=WORKSPACE,
                                                      datahome=req.data.home if req.data else ""))
    container = None
    done: docker_engine.ExecResult | None = None
    status = ""
    steps = ["bash", f"{WORKSPACE}/{script.STATE_DIR}/{script.SCRIPT_NAME}"]
    try:
        if req.options.keep_alive:  # an idle container the user can enter afterwards; the steps run in one exec
            container = docker_engine.start_container(client, spec)
            done = docker_engine.exec_stream(client, container, steps, workdir=WORKSPACE, env={}, on_output=log.write,
                                             timeout=script.total_limit(plan, script.runs(req)))
        else:  # the step script is the container's main process: no idle process to kill, as `docker run` does
            container = docker_engine.create_container(client, spec, steps, workdir=WORKSPACE)
            done = docker_engine.run_attached(container, req.image, on_output=log.write,
                                              timeout=script.total_limit(plan, script.runs(req)))
        if done.timed_out:
            status = "the step script hung past every step's limit; the container was stopped"
    except BaseException:
        discard(req, workspace)
        raise
    finally:  # every step runs, whatever an earlier one raised: the log is closed (never raises), then the container
        log.close()
        if not req.options.keep_alive or container is None:
            removed = (docker_engine.remove_container(container) if container is not None
                       else docker_engine.remove_container_named(client, container_name))
            if not removed:
                echo(f"warning: could not remove container {container_name}; remove it with "
                     f"`docker rm -f {container_name}`")
        else:
            echo(f"keep-alive: container {container_name} left running (workspace {workspace} kept); enter it "
                 f"with `docker exec -it {container_name} bash`, remove it with `docker rm -f {container_name}`")
    failure = log.failure()
    if failure is None and done is not None and done.exit_code is None and not done.timed_out \
            and not docker_engine.reachable(client):
        failure = docker_engine.engine_lost(ConnectionError(f"while {container_name} ran"))
    if failure is not None:
        discard(req, workspace)
        raise failure
    return finish(req, plan, workspace, status)
