"""The contract every batch target keeps, and the one loop that drives it.

A batch target (Slurm, Kubernetes, a plugin's PBS or Flux) is a class with the methods of :class:`Target`:
``plan`` (validate and render every job; nothing is sent), ``render`` (``--dry-run``: where the rendered jobs were
written), ``preflight``, ``submit`` (one job → a :class:`~madengine.deploy.jobs.JobRecord`), ``poll`` (the status of
MANY jobs with one scheduler query), ``collect`` (a finished job's perf rows), ``cancel``, ``logs`` and ``close``,
plus the class method ``attach`` (a target for a recorded job, in a later command). :func:`deployer` turns the class
into the registry's ``deploy(request)`` function; :func:`run` is the loop written once for all of them:

1. plan (all validation happens here, before anything is built or sent); ``dry_run`` renders and stops;
2. perf.csv is checked, the preflight runs, every job is submitted and recorded in ``.madengine/jobs.json``
   (``no_wait`` stops here: ``inv jobs.status JOB`` reattaches);
3. the :class:`~madengine.deploy.watcher.Watcher` polls every unfinished job once per tick; each job is collected
   as soon as it finishes, exactly once (:func:`~madengine.deploy.jobs.collect_once`), its rows appended to
   perf.csv with ``relative_change``;
4. Ctrl-C (or SIGTERM/SIGHUP) cancels the jobs still open; an error after submission names the submitted jobs.

:func:`status`, :func:`logs` and :func:`cancel` reattach to a recorded job of any target (``inv jobs.*``).

A multi-node target gives every node ``MASTER_ADDR``, ``NODE_RANK``, ``NNODES`` and ``MAD_NODE_HOSTS`` (the nodes'
addresses, comma-separated, in rank order) in the model's environment; the launchers name and rank nodes from these
alone (:func:`madengine.launchers.render_for_node`). Every node's rows follow
:data:`madengine.deploy.jobs.MULTI_NODE_RULE`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from madengine import console, owner
from madengine.deploy import DeployRequest
from madengine.deploy import jobs as jobs_mod
from madengine.deploy.jobs import JobRecord, JobStatus
from madengine.deploy.watcher import Watcher, counts
from madengine.errors import MadEngineError, SchedulerError
from madengine.results.perf_csv import PerfRow, check_appendable

if TYPE_CHECKING:  # pragma: no cover
    from madengine.api import RunSummary


class Target(Protocol):
    """What a batch target implements (see the module docstring). ``name`` is its registry name; ``dry_run`` and
    ``wait`` its ``--dry-run``/``--no-wait`` settings; ``first``/``cap`` its polling schedule and
    ``unknown_timeout`` how long (seconds) jobs may stay unknown; ``reattach`` the command that reattaches to a job
    (``{job}`` replaced); ``error`` the :class:`SchedulerError` subclass it raises."""

    name: str
    dry_run: bool
    wait: bool
    first: float
    cap: float
    unknown_timeout: float
    reattach: str
    error: type[MadEngineError]

    def plan(self) -> Sequence[Any]:
        """Validate and render every job (nothing is sent); raises ConfigError on bad input."""

    def render(self, planned: Sequence[Any]) -> list[Path]:
        """``--dry-run``: the files holding the rendered jobs (written by :meth:`plan` or here)."""

    def preflight(self, planned: Sequence[Any]) -> None:
        """Checks and transfers before the first submission (cluster reachable, files copied, images loaded)."""

    def submit(self, job: Any) -> JobRecord:
        """Submit one planned job; its record (``job_id``, ``target``, ``model``, ``output``, ...)."""

    def poll(self, job_ids: list[str]) -> dict[str, JobStatus]:
        """The statuses of ``job_ids`` with ONE scheduler query; a failed query is ``unknown``, never raised."""

    def collect(self, record: JobRecord, status: JobStatus) -> list[PerfRow]:
        """A finished job's perf rows (not yet appended); never empty: a job that left none is a FAILURE row."""

    def cancel(self, records: list[JobRecord]) -> None:
        """Stop (and remove) the jobs; raises the target's error when the scheduler refuses."""

    def logs(self, record: JobRecord, follow: bool, write: Callable[[str], None]) -> JobStatus:
        """Write the job's output; with ``follow`` until it ends. Returns the last status seen."""

    def close(self) -> None:
        """Release connections."""


def deployer(target_class: Any, honours: Sequence[str] = ()) -> Callable[[DeployRequest], RunSummary]:
    """The registry's ``deploy(request)`` for a :class:`Target` class (constructed as ``target_class(request)``;
    ``target_class.attach(record)`` must make one for a recorded job). ``honours`` lists the target-limited run
    options it honours (:func:`madengine.run_spec.check_supported`)."""

    def deploy(request: DeployRequest) -> RunSummary:
        return run(target_class(request), request)

    deploy.target = target_class  # type: ignore[attr-defined]
    deploy.honours = frozenset(honours)  # type: ignore[attr-defined]
    deploy.__doc__ = f"Run a manifest's models on the {target_class.name} target (madengine.deploy.contract.run)."
    return deploy


def finish(target: Target, record: JobRecord, status: JobStatus, recording: Any = None) -> list[PerfRow]:
    """Collect a finished job once: its rows appended to its perf.csv (with ``relative_change``) and the results
    store (``recording``: the run's; ``None``: the one the job's record names), printed and returned (empty when
    another command collected it already)."""
    from madengine.results import recording as recording_mod

    if recording is None and record.run_id:
        recording = recording_mod.attach(record.results_db, record.run_id, record.output)
        recording.git_commit = record.git_commit

    def collect() -> list[PerfRow]:
        found = target.collect(record, status)
        recording_mod.append(record.output, found, recording)
        return found

    rows = jobs_mod.collect_once(jobs_mod.state_path(record.output), record.job_id, collect, status.status)
    if rows is None:
        console.progress(f"{record.model}: job {record.job_id} was collected already (rows are in {record.output})")
        return []
    (console.progress if status.status == "completed" else console.warn)(
        f"{record.model}: {status.describe()}; {len(rows)} row(s) to {record.output}")
    console.rows(rows)
    return rows


def _cancel_open(target: Target, records: list[JobRecord], states: dict[str, JobStatus]) -> None:
    still = [r for r in records if not (states.get(r.job_id) and states[r.job_id].terminal)]
    if not still:
        return
    ids = ", ".join(r.job_id for r in still)
    try:
        target.cancel(still)
        console.warn(f"interrupted: cancelled {target.name} job(s) {ids}")
        for r in still:
            jobs_mod.update(jobs_mod.state_path(r.output), r.job_id, status="cancelled")
    except MadEngineError as e:
        console.warn(f"interrupted: could not cancel job(s) {ids}: {e.message}; cancel them with "
                     f"`inv jobs.cancel JOB`")


def run(target: Target, request: DeployRequest) -> RunSummary:
    """Drive ``target`` through one run of ``request`` (see the module docstring) and return the rows.

    Raises:
        ConfigError: bad input, before anything is sent; the target's errors (unreachable scheduler: exit 1);
        PerfCsvError: perf.csv cannot take rows (checked before the first submission);
        KeyboardInterrupt: after the open jobs were cancelled.
    """
    from madengine.api import RunSummary

    output = request.output.resolve()
    try:
        planned = target.plan()
        if target.dry_run or request.options.skip_model_run:
            for path in target.render(planned):
                console.progress(f"dry run: wrote {path} (nothing submitted)")
                print(path)
            return RunSummary([], output)
        if target.wait:
            check_appendable(output)  # a foreign or cut-short perf.csv fails before anything is submitted
        target.preflight(planned)
        records: list[JobRecord] = []
        states: dict[str, JobStatus] = {}
        rows: list[PerfRow] = []
        try:
            for job in planned:
                record = target.submit(job).model_copy(update={"owner": owner.current(), "detached": not target.wait,
                                                               **_recorded_as(request.recording)})
                jobs_mod.save(jobs_mod.state_path(output), [record])
                records.append(record)
            if not target.wait:
                ids = [r.job_id for r in records]
                where = _output_flag(output)
                console.progress(f"--no-wait: job(s) {', '.join(ids)} left running; follow with `madengine jobs.logs "
                                 f"JOB --follow{where}`; `madengine jobs.status JOB{where}` collects its rows once done")
                print("\n".join(ids))  # stdout: one job id per line, for scripts and CI
                return RunSummary([], output)
            by_id = {r.job_id: r for r in records}
            watcher = Watcher(target.poll, list(by_id), first=target.first, cap=target.cap,
                              unknown_timeout=target.unknown_timeout,
                              reattach=target.reattach + _output_flag(output), error=target.error)
            states = watcher.states
            with Progress(target.name, len(records)) as progress:
                watcher.wait(progress.update,
                             lambda job_id, st: rows.extend(finish(target, by_id[job_id], st, request.recording)))
        except KeyboardInterrupt:
            _cancel_open(target, records, states)
            raise
        except BaseException:
            unfinished = [r.job_id for r in records if not (states.get(r.job_id) and states[r.job_id].terminal)]
            if unfinished:
                where = _output_flag(output)
                console.warn(f"submitted before the error: {', '.join(unfinished)} (see `madengine jobs.status "
                             f"JOB{where}`, cancel with `madengine jobs.cancel JOB{where}`)")
            raise
        return RunSummary(rows, output)
    finally:
        target.close()


def _recorded_as(recording: Any) -> dict[str, str]:
    """The job record fields that let a later ``jobs.status`` store the job's rows into this run."""
    if recording is None:
        return {}
    return {"run_id": recording.run_id, "results_db": recording.url or "", "git_commit": recording.git_commit}


class Progress:
    """Jobs pending/running/done and elapsed time: a live line on a terminal, else one line per change."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total = name, total
        self.start = time.monotonic()
        self.last = ""
        self.live: Any = None

    def __enter__(self) -> Progress:
        if console.err().is_terminal:
            from rich.live import Live

            self.live = Live(self._text({}), console=console.err(), refresh_per_second=2, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def _text(self, states: dict[str, JobStatus]) -> str:
        c = counts(states) if states else {"pending": self.total, "running": 0, "done": 0, "unknown": 0}
        elapsed = int(time.monotonic() - self.start)
        unknown = f", {c['unknown']} unknown" if c.get("unknown") else ""
        return (f"{self.name}: {c['pending']} pending, {c['running']} running, {c['done']} done{unknown} "
                f"({elapsed // 60:02d}:{elapsed % 60:02d} elapsed)")

    def update(self, states: dict[str, JobStatus]) -> None:
        """Show the states of one tick."""
        detail = "; ".join(s.describe() for s in states.values() if not s.terminal and s.status == "unknown")
        text = self._text(states)
        if self.live is not None:
            self.live.update(text)
        summary = text.split(" (")[0] + (f" [{detail}]" if detail else "")
        if summary != self.last:
            self.last = summary
            console.progress(text + (f" [{detail}]" if detail else ""))


# ---------------------------------------------------------------- reattaching: status, logs, cancel

def attach(job_id: str, output: str | Path) -> tuple[JobRecord, Target]:
    """The record of ``job_id`` (next to the perf.csv ``output``) and a target attached to it.

    Raises:
        ConfigError: the job is not recorded there, or its target is not installed.
    """
    from madengine import deploy
    from madengine.errors import ConfigError

    record = jobs_mod.get(jobs_mod.state_path(output), str(job_id))
    target_class = getattr(deploy.resolve(record.target), "target", None)
    if target_class is None:
        raise ConfigError(f"job {job_id}: target {record.target!r} has no job control (status, logs, cancel)")
    return record, target_class.attach(record)


def _status_of(target: Target, record: JobRecord) -> JobStatus:
    return target.poll([record.job_id]).get(record.job_id) or JobStatus(record.job_id, "unknown",
                                                                         reason="not reported by the scheduler")


def status(job_id: str, output: str | Path) -> tuple[JobRecord, JobStatus, list[PerfRow]]:
    """The current status of a recorded job; when it has finished and was not collected yet, its rows are merged
    into the run's perf.csv now (returned; empty otherwise).

    Raises:
        ConfigError: the job is not recorded next to ``output``.
        SchedulerError: the scheduler is unreachable.
    """
    record, target = attach(job_id, output)
    try:
        if record.collected:  # its rows are in perf.csv; the scheduler may have forgotten (or deleted) the job
            return record, JobStatus(record.job_id, record.status, record.status.upper(), "collected"), []
        current = _status_of(target, record)
        rows: list[PerfRow] = []
        if current.terminal:
            rows = finish(target, record, current)
        elif current.status != "unknown":
            jobs_mod.update(jobs_mod.state_path(output), record.job_id, status=current.status)
        return record, current, rows
    finally:
        target.close()


def _output_flag(output: str | Path) -> str:
    """`` --output PATH`` for recovery hints when the run's perf.csv is not the default one (else ``""``)."""
    import shlex

    return "" if Path(output) == Path("perf.csv") else f" --output {shlex.quote(str(output))}"


def logs(job_id: str, output: str | Path, follow: bool = False,
         write: Callable[[str], None] | None = None) -> JobStatus:
    """Write a recorded job's output (with ``follow``, until it ends); returns the last status seen.

    Raises:
        ConfigError: the job is not recorded next to ``output``.
        SchedulerError: the scheduler is unreachable.
    """
    def to_stdout(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    record, target = attach(job_id, output)
    try:
        return target.logs(record, follow, write or to_stdout)
    finally:
        target.close()


def cancel(job_id: str, output: str | Path, wait: float = 30.0) -> JobStatus:
    """Cancel a recorded job and wait up to ``wait`` seconds for the scheduler to show it ended; returns its status.

    Raises:
        ConfigError: the job is not recorded next to ``output``.
        SchedulerError: the scheduler refused or is unreachable.
    """
    record, target = attach(job_id, output)
    try:
        target.cancel([record])
        deadline = time.monotonic() + wait
        current = _status_of(target, record)
        while not current.terminal and time.monotonic() < deadline:
            time.sleep(0.5)
            current = _status_of(target, record)
        jobs_mod.update(jobs_mod.state_path(output), record.job_id, status=current.status)
        return current
    finally:
        target.close()


__all__ = ["SchedulerError", "Target", "attach", "cancel", "deployer", "finish", "logs", "run", "status"]
