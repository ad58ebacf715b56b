"""The same per-model workflow as :mod:`madengine.workflow.runner`, without a container (``"runtime": "native"``).

For Slurm sites without Docker: the model's workspace is laid out the same way (common scripts, the model's scripts
directory, pre/post scripts) in a per-model work directory on the node, and each step (pre-scripts, ``run.sh``,
post-scripts) runs with ``bash -c`` directly on the node, in its own session (process group), with the same
environment the container would get (madengine's ``MAD_*`` contract, ``env_vars``, ``docker_env_vars``) on top of
the node's own. Paths the steps name under ``/myworkspace`` are rewritten to the work directory. A timeout (or
Ctrl-C/SIGTERM) stops the whole process group: SIGTERM, then SIGKILL after :data:`KILL_GRACE` seconds. The output
is teed to the same ``<model>_<dockerfile>.run.live.log`` and parsed into the same perf rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from madengine.results.perf_csv import PerfRow
from madengine.workflow.output import OutputCapture, _Log
from madengine.workflow.plan import WORKSPACE, RunRequest, Step, container_env, plan_run
from madengine.workflow.steps import discard, finish, run_steps
from madengine.workflow.workspace import prepare_workspace

KILL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL of a step's process group


@dataclass
class NativeResult:
    """One step's outcome: exit code (``None`` when killed for the timeout) and whether it timed out."""

    exit_code: int | None
    timed_out: bool


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_step(command: str, cwd: Path, env: dict[str, str], timeout: float | None,
             on_output: Callable[[bytes], None]) -> NativeResult:
    """Run ``bash -c command`` in ``cwd`` in a new session; stream its output (stdout+stderr) to ``on_output``.

    ``timeout`` in seconds (``None`` = no limit). The process group is stopped on timeout and on any exception
    (KeyboardInterrupt included, which is re-raised).
    """
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    stream: Any = proc.stdout  # a BufferedReader: read1 returns what is there without waiting for more

    def pump() -> None:
        while chunk := stream.read1(65536):
            on_output(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop_group(proc)
    except BaseException:
        _stop_group(proc)
        raise
    finally:
        reader.join(timeout=5)
    return NativeResult(None if timed_out else proc.returncode, timed_out)


def _native(command: str, workspace: Path) -> str:
    return command.replace(WORKSPACE, str(workspace))


def run_model_native(req: RunRequest, echo: Callable[[str], None]) -> list[PerfRow]:
    """Run one model natively on this node and return its perf rows (see the module docstring).

    Failures of the model itself (a failing pre-script, non-zero exit, timeout, error marker, no performance line)
    are FAILURE rows with a reason, as with a container.

    Raises:
        ConfigError: bad model scripts.
        KeyboardInterrupt: after the model's process group was stopped.
    """
    plan = plan_run(req)
    plan.row.docker_image = ""
    workspace = req.work_root / f"native_{plan.log_base}-{req.run_id[:8]}"
    if req.skip_model_run:
        echo(f"skip-model-run: would run natively: {_native(plan.model_command, workspace)}")
        return [plan.row.model_copy(update={"status": "SKIPPED", "reason": "--skip-model-run"})]

    prepare_workspace(req, workspace, plan.scripts_dir, plan.model_dir)
    base_env = dict(os.environ) | container_env(req) | {"MAD_WORKSPACE": str(workspace)}
    # madengine's interpreter directory first on PATH (a venv's python3, torchrun, ...): the model runs natively
    # with the Python environment madengine itself runs in.
    bindir = str(Path(sys.executable).parent)
    if bindir not in base_env.get("PATH", "").split(os.pathsep):
        base_env["PATH"] = os.pathsep.join(p for p in (bindir, base_env.get("PATH", "")) if p)
    req.log_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(plan.log_path, req.masker, req.live_output)
    capture = OutputCapture(req.work_root / f"native_{plan.log_base}-{req.run_id[:8]}.out")
    cwd = workspace / plan.model_dir

    def step_run(step: Step, collect: OutputCapture | None = None) -> NativeResult:
        cmd = _native(step.command, workspace)
        log.write(f"+ [{step.name}] (native) {cmd}\n".encode())

        def output(chunk: bytes) -> None:
            if collect is not None:
                collect.write(chunk)
            log.write(chunk)

        return run_step(cmd, cwd, base_env | step.env, step.timeout, output)

    try:
        outcome = run_steps(req, plan, step_run, capture, log, echo)
    except BaseException:
        discard(req, capture, workspace)
        raise
    finally:
        log.close()
        capture.close()
    return finish(req, plan, outcome, capture, workspace)
