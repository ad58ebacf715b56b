"""The same per-model workflow as :mod:`madengine.workflow.runner`, without a container (``"runtime": "native"``).

For Slurm sites without Docker: the model's workspace is laid out the same way (common scripts, the model's scripts
directory, pre/post scripts, the step script of :mod:`madengine.workflow.script`) in a per-model work directory on
the node, and the step script runs there with ``bash``, in its own session, with the environment the container would
get (madengine's ``MAD_*`` contract, ``env_vars``, ``docker_env_vars``) on top of the node's own. Paths the steps name
under ``/myworkspace`` are rewritten to the work directory. Data never lands outside it: ``MAD_DATAHOME`` is
``<work dir>/<home>`` (``data_dlm_0`` by default), a symbolic link to a ``local`` source or a mirror directory, else
a plain directory a ``custom`` script fills (a local source is not made read-only natively). Ctrl-C/SIGTERM (and a
script hung past every step's limit) stop the script, which stops its running step's process group (SIGTERM, then
SIGKILL); the script's own group is killed after :data:`KILL_GRACE` more seconds. The output is teed to the same
``<model>_<dockerfile>.run.live.log`` and read back into the same perf rows.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from madengine.results.perf_csv import PerfRow
from madengine.workflow import script
from madengine.workflow.plan import WORKSPACE, RunRequest, container_env, cpu_list, plan_run
from madengine.workflow.steps import begin, discard, finish
from madengine.workflow.workspace import prepare_workspace

KILL_GRACE = float(script.KILL_GRACE + 5)  # seconds the script gets to stop its step before its group is killed


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the script (it stops its running step's group), then SIGKILL to the script's group."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def run_script(path: Path, cwd: Path, env: dict[str, str], timeout: float | None,
               on_output: Callable[[bytes], None], cpus: list[int] | None = None) -> int | None:
    """Run ``bash path`` in ``cwd`` in a new session; stream its output (stdout+stderr) to ``on_output``.

    ``timeout`` in seconds (``None`` = no limit). The script is stopped (:func:`_stop`) on timeout and on any
    exception (KeyboardInterrupt included, which is re-raised). Returns its exit code, ``None`` when it was stopped
    for the timeout.
    """
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus is not None else None  # docker_cpus, as --cpuset-cpus
    proc = subprocess.Popen(["bash", str(path)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=pin)
    assert proc.stdout is not None
    stream: Any = proc.stdout  # a BufferedReader: read1 returns what is there without waiting for more

    def pump() -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := stream.read1(65536):
                on_output(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    code: int | None
    try:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            _stop(proc)
    except BaseException:
        _stop(proc)
        raise
    finally:
        _kill_session(proc.pid)  # what the model left running dies with the script, as in a container
        reader.join(timeout=5)
    return code


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (the step script's: ``start_new_session``), wherever its process
    group: background processes a model or script forked must not outlive the run."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 3 and fields[3] == str(sid):  # field 6 of stat: the session id
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def _native(command: str, workspace: Path) -> str:
    return command.replace(WORKSPACE, str(workspace))


def _data_home(req: RunRequest, workspace: Path) -> str:
    """Lay out ``MAD_DATAHOME`` inside the workspace (see the module docstring); returns its path."""
    assert req.data is not None
    home = workspace / req.data.home.strip("/")
    home.parent.mkdir(parents=True, exist_ok=True)
    sources = [host for host, (target, _mode) in req.data.mounts.items() if target == req.data.home]
    if sources:
        home.symlink_to(sources[0], target_is_directory=True)
    return str(home)


def run_model_native(req: RunRequest, echo: Callable[[str], None]) -> list[PerfRow]:
    """Run one model natively on this node and return its perf rows (see the module docstring).

    Failures of the model itself (a failing pre-script, non-zero exit, timeout, error marker, no performance line)
    are FAILURE rows with a reason, as with a container.

    Raises:
        ConfigError: bad model scripts.
        KeyboardInterrupt: after the step script was stopped.
    """
    plan = plan_run(req)
    plan.row.docker_image = ""
    workspace = req.work_root / f"native_{plan.log_base}-{req.run_id[:8]}"
    if req.options.skip_model_run:
        echo(f"skip-model-run: would run natively: {_native(plan.model_command, workspace)}")
        return [plan.row.model_copy(update={"status": "SKIPPED", "reason": "--skip-model-run"})]

    prepare_workspace(req, workspace, plan.scripts_dir, plan.model_dir)
    env = dict(os.environ) | container_env(req) | {"MAD_WORKSPACE": str(workspace)}
    datahome = ""
    if req.data:
        datahome = env["MAD_DATAHOME"] = _data_home(req, workspace)
    # madengine's interpreter directory first on PATH (a venv's python3, torchrun, ...): the model runs natively
    # with the Python environment madengine itself runs in.
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join(p for p in (bindir, env.get("PATH", "")) if p)
    path, log = begin(req, plan, workspace, script.render(req, plan, workspace=str(workspace), datahome=datahome))
    try:
        code = run_script(path, workspace, env, script.total_limit(plan, script.runs(req)), log.write, cpu_list(req))
    except BaseException:
        discard(req, workspace)
        raise
    finally:
        log.close()
    failure = log.failure()
    if failure is not None:
        discard(req, workspace)
        raise failure
    status = "the step script hung past every step's limit and was stopped" if code is None else ""
    return finish(req, plan, workspace, status)
