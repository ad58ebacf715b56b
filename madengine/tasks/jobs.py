"""``inv jobs.status|logs|cancel JOB``: reattach to a job of any batch target (Slurm, Kubernetes, a plugin's), as
recorded next to perf.csv when it was submitted (:mod:`madengine.deploy.contract`). ``slurm.*`` are the same tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke import Collection

from madengine.tasks._common import HELP, mad_task, say

JOBS_HELP = {
    **HELP,
    "job": "job id (as printed at submission; recorded next to --output)",
    "follow": "keep printing the output until the job ends",
    "output": "perf.csv of the run that submitted the job (its .madengine/jobs.json is read)",
}


def output_of(c: Any, output: str | None) -> str:
    """The perf.csv whose job record to read (``--output``, else the configured one)."""
    from madengine import settings

    return str(settings.resolve(c.config.get("madengine"), output=output)["output"])


@mad_task(help=JOBS_HELP)
def status(c, job, output=None):
    """Show a submitted job's state; once it has ended, merge its rows into perf.csv (exit code 3 if it failed)."""
    from madengine import api
    from madengine.deploy import contract
    from madengine.errors import RunError, SchedulerError

    record, current, rows = contract.status(str(job), output_of(c, output))
    say(f"{current.describe()} [{record.model}, {record.target}, {record.nnodes} node(s)]")
    if current.status == "unknown":
        raise SchedulerError(f"job {job}: status unknown ({current.reason}); nothing was collected, try again later")
    if rows:
        say(f"{len(rows)} row(s) appended to {record.output}")
        api.check_run(api.RunSummary(rows, Path(record.output)))
    elif current.terminal and current.status != "completed":
        raise RunError(f"job {job} did not complete: {current.describe()}")


@mad_task(help=JOBS_HELP)
def logs(c, job, output=None, follow=False):
    """Print a submitted job's output; --follow keeps printing until it ends."""
    from madengine.deploy import contract

    contract.logs(str(job), output_of(c, output), follow=follow)


@mad_task(help=JOBS_HELP)
def cancel(c, job, output=None):
    """Cancel a submitted job (scancel, delete the Job, ...) and show its final state."""
    from madengine.deploy import contract

    say(contract.cancel(str(job), output_of(c, output)).describe())


ns = Collection("jobs", status, logs, cancel)
