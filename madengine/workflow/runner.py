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

from collections.abc import Callable
from pathlib import Path
from typing import Any

from madengine import docker_engine
from madengine.docker_options import parse_run_options
from madengine.errors import ConfigError, EngineError
from madengine.results.perf_csv import PerfRow
from madengine.workflow.output import OutputCapture, _Log
from madengine.workflow.plan import WORKSPACE, RunRequest, Step, container_env, plan_run
from madengine.workflow.steps import discard, finish, run_steps
from madengine.workflow.workspace import prepare_workspace

_PID_FILE = "/tmp/.madengine-step.pid"
# Runs $MADENGINE_STEP as a background job: job control gives it its own process group, which a timeout can stop.
# (``set +m`` right after the fork keeps bash's job notices out of the log; the group stays.)
_STEP_WRAPPER = f'set -m; bash -c "$MADENGINE_STEP" & echo $! > {_PID_FILE}; set +m; wait $!'
_STOP_STEP = (f'p=$(cat {_PID_FILE} 2>/dev/null) || exit 0; kill -TERM -- "-$p" 2>/dev/null; '
              f'for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$p" 2>/dev/null || exit 0; sleep 1; done; '
              f'kill -KILL -- "-$p" 2>/dev/null; true')


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
