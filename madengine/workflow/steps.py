"""Running a plan's steps with any runtime's step executor: pre-steps (a failure skips the model), the model, the
post-steps (always); then the rows, the artifacts and the cleanup."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from madengine.results.perf_csv import PerfRow
from madengine.workflow.data import dir_size
from madengine.workflow.output import OutputCapture, _Log, rows_from_output
from madengine.workflow.plan import Plan, RunRequest, Step
from madengine.workflow.workspace import collect_artifacts


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
        rows = rows_from_output(req, row, capture, model_dir, workspace)
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
