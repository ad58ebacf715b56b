"""After a step script ran (in any runtime): its outcome read back from the workspace (:mod:`.script`), the perf
rows, the artifacts, and the cleanup of the workspace. The sequence itself is defined once, in
``templates/run/steps.sh.j2``.

A repeated run (``--repeat N --warmup K``) gives one set of rows per measured run, each parsed like a single run's;
:func:`combine_repeats` makes them one row per result: the median of the runs' values, the values themselves as
``samples``, SUCCESS only when every measured run succeeded with a value (else the reason names the first run
that did not: ``repeat 3 of 5: run command exited with code 1``)."""

from __future__ import annotations

import math
import os
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path

from madengine.results.perf_csv import PerfRow
from madengine.workflow import script
from madengine.workflow.output import _Log, disk_error, rows_from_output
from madengine.workflow.plan import Plan, RunRequest, model_dir_name
from madengine.workflow.workspace import RUNS_DIR, _copy_masked, collect_artifacts


def rows(req: RunRequest, plan: Plan, workspace: Path, script_status: str = "") -> list[PerfRow]:
    """The run's perf rows from what its step script left in ``workspace`` (``steps.tsv``, ``model.out``, the
    ``multiple_results`` CSV; every measured run's of a repeated run, combined by :func:`combine_repeats`), checked
    against the model's validity contract (:func:`madengine.results.validity.apply`; each run's rows of a
    repeated run too, so one invalid sample fails the row).
    ``script_status`` explains an abnormal end of the script itself (see :func:`script.read_outcome`).
    ``test_duration`` is the model step's wall time (the measured runs' total)."""
    from madengine.results import validity

    return validity.apply(req.model, _rows(req, plan, workspace, script_status))


def _rows(req: RunRequest, plan: Plan, workspace: Path, script_status: str) -> list[PerfRow]:
    from madengine.results import validity

    repeat, warmup = script.counts(req)
    outcome = script.read_outcome(workspace, plan, script_status, repeat=repeat, warmup=warmup)
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
    if not script.repeated(req):
        return _run_rows(req, row, model, script.model_output(workspace), workspace / plan.model_dir, workspace)
    multiple = req.model.multiple_results
    per_run = [validity.apply(req.model, _run_rows(req, row, step, script.measured_output(workspace, index),
                                                   workspace / plan.model_dir, workspace,
                                                   script.repeat_csv(workspace, index, multiple) if multiple else None))
               for index, step in enumerate(outcome.repeats, 1)]  # every sample must be valid, not just the median
    unreported = script_status or f"the step script ended before it reported (no line in {script.STATE_DIR}/steps.tsv)"
    return combine_repeats(per_run, repeat, unreported)


def _run_rows(req: RunRequest, row: PerfRow, step: script.StepResult, output: Path, model_dir: Path,
              workspace: Path, results_csv: Path | None = None) -> list[PerfRow]:
    """The rows of one run of the model step (``step``, its ``output``; see :func:`rows_from_output`)."""
    if step.timed_out:
        return [row.model_copy(update={"status": "FAILURE", "reason": f"timed out after {req.timeout:.0f} s"})]
    found = rows_from_output(req, row, output, model_dir, workspace, results_csv)
    if step.exit_code != 0:
        reason = f"run command exited with code {step.exit_code}"
        found = [r.model_copy(update={"status": "FAILURE", "reason": reason}) for r in found]
    return found


def _value(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _run_level(row: PerfRow) -> bool:
    """A row standing for a whole run that gave no result (timed out, exited before printing, no CSV)."""
    return not row.metric and not row.performance


def combine_repeats(per_run: Sequence[Sequence[PerfRow]], repeat: int,
                    unreported: str = "the step script ended before it reported") -> list[PerfRow]:
    """One row per distinct result (model name and metric, in the order the runs first gave them) from the rows
    of each measured run (``per_run``, in run order; fewer than ``repeat`` when a run failed and stopped the
    others, or the script ended early: ``unreported`` says why).

    Each row is the first run's row of that result with ``performance`` the median
    (:func:`statistics.median`) of the finite values the runs gave for it (the value's text as printed when the
    median is one of them), ``samples`` those values in run order (empty when ``repeat`` is 1) and
    ``test_duration`` as given (the measured runs' total). It is SUCCESS only when each of the ``repeat`` runs gave
    it as SUCCESS with a finite value; otherwise FAILURE, its reason naming the first run that did not:
    ``repeat 3 of 5: run command exited with code 1``. Rows of a run that gave no result at all (no metric, no
    value: a timeout, a crash) are a result of their own only when no run gave one.
    """
    rows = [r for run in per_run for r in run]
    keys = list(dict.fromkeys((r.model, r.metric) for r in rows if not _run_level(r)))
    if not keys:
        keys = list(dict.fromkeys((r.model, r.metric) for r in rows))
    combined: list[PerfRow] = []
    for key in keys:
        first = next(r for r in rows if (r.model, r.metric) == key)
        values: list[tuple[float, str]] = []
        reason = ""
        for index in range(1, repeat + 1):
            if index > len(per_run):
                reason = reason or f"repeat {index} of {repeat}: {unreported}"
                break
            run = per_run[index - 1]
            match = next((r for r in run if (r.model, r.metric) == key), None)
            value = _value(match.performance) if match is not None else None
            if value is not None and match is not None:
                values.append((value, match.performance.strip()))
            if reason:
                continue
            if match is None:
                failed = next((r for r in run if r.status != "SUCCESS"), None)
                why = failed.reason if failed is not None and failed.reason else \
                    f"no {key[1] or 'performance'} result for {key[0]}"
                reason = f"repeat {index} of {repeat}: {why}"
            elif match.status != "SUCCESS" or value is None:
                reason = f"repeat {index} of {repeat}: {match.reason or 'no finite performance value'}"
        update: dict[str, object] = {"status": "FAILURE" if reason else "SUCCESS", "reason": reason,
                                     "samples": [v for v, _ in values] if repeat > 1 else []}
        if values:
            update["performance"] = _median_text(values)
        combined.append(first.model_copy(update=update))
    return combined


def _median_text(values: list[tuple[float, str]]) -> str:
    """The median of ``values`` (number, text as printed): the text of a value equal to it, else the number."""
    median = statistics.median(v for v, _ in values)
    return next((text for v, text in values if v == median), f"{median:.15g}")


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
    """:func:`rows`, then collect the artifacts (``<model>_env.csv``, tool outputs, the step script; a repeated
    run's ``multiple_results`` CSVs into ``repeat-<i>/`` of the run's directory) and remove the workspace (unless
    ``keep_model_dir``/``keep_alive``)."""
    try:
        found = rows(req, plan, workspace, script_status)
        collect_artifacts(req, workspace, workspace / plan.model_dir, plan.log_base)
        _collect_repeat_csvs(req, plan, workspace)
    except OSError as e:  # a full disk while copying artifacts: one line naming the path, no workspace left behind
        raise disk_error(Path(e.filename or workspace), e, "the run's artifacts") from None
    finally:
        discard(req, workspace)
    return found


def _collect_repeat_csvs(req: RunRequest, plan: Plan, workspace: Path) -> None:
    """A repeated run's ``multiple_results`` CSVs, one per measured run, into
    ``madengine-runs/<run id>/<log base>/repeat-<i>/`` (masked; the last run's is also collected as usual)."""
    multiple = req.model.multiple_results
    if not (multiple and script.repeated(req)):
        return
    repeat, _warmup = script.counts(req)
    for index in range(1, repeat + 1):
        source = script.repeat_csv(workspace, index, multiple)
        if source.is_file():
            target = req.log_dir / RUNS_DIR / req.run_id / plan.log_base / f"repeat-{index}" / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy_masked(source, target, req)


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
