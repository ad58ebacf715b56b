"""After a step script ran (in any runtime): its outcome read back from the workspace (:mod:`.script`), the perf
rows, the artifacts, and the cleanup of the workspace. The sequence itself is defined once, in
``templates/run/steps.sh.j2``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from madengine.results.perf_csv import PerfRow
from madengine.workflow import script
from madengine.workflow.output import _Log, disk_error, rows_from_output
from madengine.workflow.plan import Plan, RunRequest, model_dir_name
from madengine.workflow.workspace import RUNS_DIR, collect_artifacts


def rows(req: RunRequest, plan: Plan, workspace: Path, script_status: str = "") -> list[PerfRow]:
    """The run's perf rows from what its step script left in ``workspace`` (``steps.tsv``, ``model.out``, the
    ``multiple_results`` CSV). ``script_status`` explains an abnormal end of the script itself (see
    :func:`script.read_outcome`)."""
    outcome = script.read_outcome(workspace, plan, script_status)
    row = plan.row.model_copy(update={"test_duration": f"{outcome.duration:.2f}"})
    if req.data is not None:
        req.data.download_duration = max(req.data.download_duration, outcome.data_duration)
        if outcome.data_size is not None:
            req.data.size_bytes = outcome.data_size
        row.data_size = "" if req.data.size_bytes is None else str(req.data.size_bytes)
        row.data_download_duration = f"{req.data.download_duration:.2f}"
    model = outcome.model
    if outcome.failure:
        return [row.model_copy(update={"status": "FAILURE", "reason": outcome.failure})]
    assert model is not None
    if model.timed_out:
        return [row.model_copy(update={"status": "FAILURE", "reason": f"timed out after {req.timeout:.0f} s"})]
    found = rows_from_output(req, row, script.model_output(workspace), workspace / plan.model_dir, workspace)
    if model.exit_code != 0:
        reason = f"run command exited with code {model.exit_code}"
        found = [r.model_copy(update={"status": "FAILURE", "reason": reason}) for r in found]
    return found


def begin(req: RunRequest, plan: Plan, workspace: Path, text: str) -> tuple[Path, _Log]:
    """Write the step script ``text`` into the laid-out ``workspace`` and open the run log: the path of the script
    and the log. The log is ``madengine-runs/<run id>/<log base>.run.live.log`` (unique per run, so concurrent runs
    into one directory keep every log); ``<log base>.run.live.log`` next to perf.csv (madengine's name) is a relative
    symlink to the latest run's.

    Raises:
        MadEngineError: either could not be written (a full disk: names the directory); the workspace is removed.
    """
    try:
        run_log = run_log_path(req, plan.log_path.name)
        path, log = script.write(workspace, text), _Log(run_log, req.masker, req.options.live_output)
        point_latest(plan.log_path, run_log)
        return path, log
    except OSError as e:
        discard(req, workspace)
        raise disk_error(Path(e.filename or workspace), e, "the step script or run log") from None


def run_log_path(req: RunRequest, name: str) -> Path:
    """``<perf.csv dir>/madengine-runs/<run id>/<name>``, its directory created: where this run's log ``name``
    goes (see :func:`begin`)."""
    path = req.log_dir / RUNS_DIR / req.run_id / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def point_latest(link: Path, target: Path) -> None:
    """Make ``link`` a relative symlink to ``target``, replacing what was there atomically."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)


def finish(req: RunRequest, plan: Plan, workspace: Path, script_status: str = "") -> list[PerfRow]:
    """:func:`rows`, then collect the artifacts (``<model>_env.csv``, tool outputs, the step script) and remove the
    workspace (unless ``keep_model_dir``/``keep_alive``)."""
    try:
        found = rows(req, plan, workspace, script_status)
        collect_artifacts(req, workspace, workspace / plan.model_dir, plan.log_base)
    except OSError as e:  # a full disk while copying artifacts: one line naming the path, no workspace left behind
        raise disk_error(Path(e.filename or workspace), e, "the run's artifacts") from None
    finally:
        discard(req, workspace)
    return found


def discard(req: RunRequest, workspace: Path) -> None:
    """Remove the workspace (unless ``keep_model_dir``/``keep_alive``); also after an interruption or a failed
    start. A kept workspace keeps no secret: the step outputs in its state directory are masked in place."""
    if not (req.options.keep_model_dir or req.options.keep_alive):
        shutil.rmtree(workspace, ignore_errors=True)
        return
    if req.masker:
        for path in (workspace / script.STATE_DIR).glob("*.out"):
            _mask_file(path, req)
    if workspace.is_dir():
        from madengine import console

        console.progress(f"{req.model.name}: workspace kept at {workspace} (the model ran in its "
                         f"{model_dir_name(req.model)}/)")


def _mask_file(path: Path, req: RunRequest) -> None:
    """Rewrite ``path`` with every secret masked (streamed: model output can be large)."""
    masker = type(req.masker)(req.masker.secrets)
    tmp = path.with_name(path.name + ".masking")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(masker.feed(chunk))
            dst.write(masker.flush())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        path.unlink(missing_ok=True)  # never keep it unmasked
