"""The step script: a run plan rendered into ``templates/run/steps.sh.j2``, the one definition of the step sequence
that every runtime executes (container, native process, every Slurm node, every Kubernetes pod), and how its
outcome is read back.

The script writes, under ``<workspace>/.madengine/`` (:data:`STATE_DIR`):

- ``steps.tsv``: one line per step that ran: ``name``, exit code, timed out (``0``/``1``), start and end (bash's
  ``EPOCHREALTIME``, seconds);
- ``model.out``: the model step's output (the only text parsed for ``performance:`` lines);
- ``data_size``: bytes under ``MAD_DATAHOME`` after the pre-steps (when the model has data).

Repeats (``--repeat N --warmup K``, :func:`counts`; with N = 1 and K = 0 the script is the single-run one above):
the model step runs K times as steps ``warmup 1`` .. ``warmup K`` (output in the log only, never parsed; the
``multiple_results`` CSV each wrote is deleted), then N measured times as steps ``model``, ``model 2`` ..
``model N`` (:func:`measured_name`) with outputs ``model.out``, ``model.2.out`` .. ``model.N.out``
(:func:`measured_output`); after measured run i its ``multiple_results`` CSV is copied to ``repeat-<i>/<file name>``
(:func:`repeat_csv`) and, unless it was the last run, deleted. The first failed or timed-out run stops the
remaining ones (the post-steps still run); each run has the model step's time limit. :mod:`.steps` parses every
measured run like a single run and combines them (:func:`madengine.workflow.steps.combine_repeats`).

When results cannot be read from a shared file system (Kubernetes pods), the script prints those files (every
measured run's output and CSV included) and the declared artifacts as a base64 tar.gz between :data:`BUNDLE_BEGIN` and :data:`BUNDLE_END` at the end of its output
(:func:`split_bundle`, :func:`unpack_bundle`).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import shlex
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from madengine import templating
from madengine.workflow.plan import Plan, RunRequest, Step, env_csv_name

STATE_DIR = ".madengine"
SCRIPT_NAME = "steps.sh"
KILL_GRACE = 10  # seconds between SIGTERM and SIGKILL of a step's process group
BUNDLE_BEGIN = "=== madengine: results bundle begin (tar.gz, base64) ==="
BUNDLE_END = "=== madengine: results bundle end ==="
_GLOB_SAFE = re.compile(r"^[A-Za-z0-9_.,+%@=:/*?\[\]\-]+$")


@dataclass
class StepResult:
    """One step's line of ``steps.tsv``: exit code, whether its time limit stopped it, wall time in seconds."""

    name: str
    exit_code: int
    timed_out: bool
    duration: float


@dataclass
class Outcome:
    """How a step script went. ``failure`` names a failed pre-step (the model was skipped), a failed warmup run or
    a script that did not finish; ``model`` is the (first measured) model step's result (``None`` when it did not
    run) and ``repeats`` every measured run that reported, in order (``[model]`` for a single run);
    ``data_duration`` is the custom data step's wall time and ``data_size`` the bytes measured under
    ``MAD_DATAHOME`` (``None`` when unknown)."""

    failure: str = ""
    model: StepResult | None = None
    data_duration: float = 0.0
    data_size: int | None = None
    repeats: list[StepResult] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """The measured model runs' total wall time in seconds (0 when none ran)."""
        return sum(r.duration for r in self.repeats) if self.repeats else (self.model.duration if self.model else 0.0)


def counts(req: RunRequest) -> tuple[int, int]:
    """``(repeat, warmup)``: how many measured and warmup runs of the model step the run options ask for."""
    return int(req.options.repeat), int(req.options.warmup)


def repeated(req: RunRequest) -> bool:
    """Whether the run has repeats or warmups (else the script is the single-run one)."""
    repeat, warmup = counts(req)
    return repeat > 1 or warmup > 0


def runs(req: RunRequest) -> int:
    """How many times the model step runs in all (warmups and measured runs)."""
    repeat, warmup = counts(req)
    return repeat + warmup


def measured_name(index: int) -> str:
    """The ``steps.tsv`` name of measured run ``index`` (1-based): ``model``, ``model 2``, ..."""
    return "model" if index == 1 else f"model {index}"


def warmup_name(index: int) -> str:
    """The ``steps.tsv`` name of warmup run ``index`` (1-based): ``warmup 1``, ``warmup 2``, ..."""
    return f"warmup {index}"


def measured_output(workspace: Path, index: int) -> Path:
    """The output of measured run ``index`` (1-based): ``.madengine/model.out``, ``model.2.out``, ..."""
    return workspace / STATE_DIR / ("model.out" if index == 1 else f"model.{index}.out")


def repeat_csv(workspace: Path, index: int, multiple_results: str) -> Path:
    """Where measured run ``index`` (1-based) of a repeated run left its ``multiple_results`` CSV:
    ``.madengine/repeat-<index>/<file name>``."""
    return workspace / STATE_DIR / f"repeat-{index}" / Path(multiple_results).name


def _limit(seconds: float | None) -> int:
    return 0 if not seconds else max(1, math.ceil(seconds))


def _template_step(step: Step, workspace: str) -> dict[str, Any]:
    prelude = "".join(f"export {templating.shname(k)}={shlex.quote(v)}; " for k, v in step.env.items())
    return {"name": step.name, "limit": _limit(step.timeout), "command": _at(step.command, workspace),
            "prelude": prelude}


def _at(command: str, workspace: str) -> str:
    from madengine.workflow.plan import WORKSPACE

    return command if workspace == WORKSPACE else command.replace(WORKSPACE, workspace)


def bundle_paths(req: RunRequest, plan: Plan) -> list[str]:
    """The files (shell words, relative to the workspace; tool ``outputs`` stay globs) that travel back in a
    results bundle besides the step state: ``<model>_env.csv``, the ``multiple_results`` CSV, the tools' outputs."""
    words = [shlex.quote(env_csv_name(req.model.name))]
    multiple = req.model.multiple_results
    if multiple:
        words += [shlex.quote(f"{plan.model_dir}/{multiple}"), shlex.quote(multiple)]
    for pattern in req.tools.outputs:
        path = f"{plan.model_dir}/{pattern}"
        words.append(path if _GLOB_SAFE.match(path) and ".." not in path.split("/") else shlex.quote(path))
    if repeated(req):  # every measured run's output and multiple_results CSV (globs)
        words += [f"{STATE_DIR}/model.*.out", f"{STATE_DIR}/repeat-*"]
    return words


def render(req: RunRequest, plan: Plan, *, workspace: str, datahome: str = "", bundle: bool = False) -> str:
    """The step script of one run.

    ``workspace`` is where the workspace is as the runtime sees it (``/myworkspace`` in a container or pod, the host
    directory natively; paths the steps name under ``/myworkspace`` are rewritten to it); ``datahome`` the default
    ``MAD_DATAHOME`` (empty when the model has no data); ``bundle`` prints the results bundle at the end. The run
    options' ``repeat`` and ``warmup`` give the model step's runs (see the module docstring); with 1 and 0 the
    script is exactly the single-run one.

    Raises:
        ConfigError: a step environment name that is not a shell name, or a broken template.
    """
    repeat, warmup = counts(req)
    multiple = req.model.multiple_results
    variables = {
        "repeats": repeated(req), "repeat": repeat, "warmup": warmup, "multiple": multiple,
        "multiple_name": Path(multiple).name if multiple else "",
        "model": req.model.name, "image": req.image, "run_id": req.run_id, "workspace": workspace,
        "datahome": datahome, "model_dir": plan.model_dir, "kill_grace": KILL_GRACE,
        "pre": [_template_step(s, workspace) for s in plan.pre],
        "model_step": _template_step(plan.model_step, workspace),
        "post": [_template_step(s, workspace) for s in plan.post],
        "bundle": bundle_paths(req, plan) if bundle else [], "bundle_begin": BUNDLE_BEGIN, "bundle_end": BUNDLE_END,
    }
    return templating.render("run", "steps.sh.j2", variables)


def write(workspace: Path, text: str) -> Path:
    """Write the script to ``<workspace>/.madengine/steps.sh`` (mode 0755) and return its path."""
    path = workspace / STATE_DIR / SCRIPT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def _seconds(text: str) -> float:
    try:
        return float(text.replace(",", "."))  # EPOCHREALTIME follows the locale's decimal point
    except ValueError:
        return 0.0


def read_steps(workspace: Path) -> list[StepResult]:
    """The lines of ``<workspace>/.madengine/steps.tsv`` (none when the file is missing); malformed lines are
    skipped."""
    path = workspace / STATE_DIR / "steps.tsv"
    results = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) == 5 and parts[1].lstrip("-").isdigit():
                results.append(StepResult(parts[0], int(parts[1]), parts[2] == "1",
                                          max(0.0, _seconds(parts[4]) - _seconds(parts[3]))))
    return results


def read_outcome(workspace: Path, plan: Plan, script_status: str = "", *, repeat: int = 1,
                 warmup: int = 0) -> Outcome:
    """The outcome of the script that ran in ``workspace``.

    ``script_status`` describes how the script itself ended when that was abnormal (e.g. "the container was
    stopped"): it becomes the failure when the model step never reported. ``repeat`` and ``warmup`` are the
    measured and warmup runs of the model step the script was rendered with: a failed warmup run (``warmup 2 of 3:
    timed out after 60 s``) is the failure; ``repeats`` holds the measured runs that reported.
    """
    steps = read_steps(workspace)
    outcome = Outcome()
    by_name = {s.name: s for s in steps}
    for step in plan.pre:
        done = by_name.get(step.name)
        if done is None:
            break
        if step.name.startswith("data "):
            outcome.data_duration = done.duration
        if done.timed_out or done.exit_code != 0:
            why = "timed out" if done.timed_out else f"exited with code {done.exit_code}"
            outcome.failure = f"{step.name} {why}"
            return outcome
    unreported = script_status or f"the step script ended before the model step reported (no line in " \
                                  f"{STATE_DIR}/steps.tsv)"
    for index in range(1, warmup + 1):
        done = by_name.get(warmup_name(index))
        if done is None or done.timed_out or done.exit_code != 0:
            why = unreported if done is None else run_failure(done, plan.model_step.timeout)
            outcome.failure = f"warmup {index} of {warmup}: {why}"
            return outcome
    for index in range(1, repeat + 1):
        done = by_name.get(measured_name(index))
        if done is None:
            break
        outcome.repeats.append(done)
    outcome.model = outcome.repeats[0] if outcome.repeats else None
    if outcome.model is None:
        outcome.failure = unreported
    size = workspace / STATE_DIR / "data_size"
    if size.is_file() and size.read_text().strip().isdigit():
        outcome.data_size = int(size.read_text().strip())
    return outcome


def run_failure(step: StepResult, timeout: float | None) -> str:
    """Why a run of the model step failed (``""``: it did not): ``timed out after 60 s`` or ``run command exited
    with code 3``."""
    if step.timed_out:
        return f"timed out after {timeout or 0:.0f} s"
    return f"run command exited with code {step.exit_code}" if step.exit_code != 0 else ""


def model_output(workspace: Path) -> Path:
    """``<workspace>/.madengine/model.out``: the model step's output."""
    return workspace / STATE_DIR / "model.out"


def split_bundle(text: str) -> tuple[str, bytes | None]:
    """``text`` without its results bundle, and the bundle's bytes (``None`` when absent or damaged, e.g. a pod log
    cut by the kubelet's rotation)."""
    begin = text.rfind(BUNDLE_BEGIN)
    if begin < 0:
        return text, None
    end = text.find(BUNDLE_END, begin)
    body = text[begin + len(BUNDLE_BEGIN):end if end >= 0 else len(text)]
    rest = text[:begin] + (text[end + len(BUNDLE_END):].lstrip("\n") if end >= 0 else "")
    if end < 0:
        return rest, None
    try:
        return rest, base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        return rest, None


def unpack_bundle(data: bytes, dest: Path) -> list[Path]:
    """Extract a results bundle into ``dest`` (regular files and directories only; nothing outside ``dest``).
    Returns the files written."""
    written = []
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if not target.is_relative_to(root) or not (member.isfile() or member.isdir()):
                continue
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is not None:
                target.write_bytes(source.read())
                written.append(target)
    return written


def total_limit(plan: Plan, model_runs: int = 1) -> float | None:
    """Seconds after which the runtime may treat the whole script as hung: every step's limit plus its kill grace
    (the model step's ``model_runs`` times: warmups and measured runs, :func:`runs`), plus a minute (``None`` when
    the model step has no limit)."""
    steps = [*plan.pre, *[plan.model_step] * max(1, model_runs), *plan.post]
    if any(s.timeout is None for s in steps):
        return None
    return sum(float(s.timeout or 0) + KILL_GRACE + 5 for s in steps) + 60
