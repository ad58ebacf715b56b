"""``inv run.slurm`` (run a manifest's models as Slurm jobs) and ``inv slurm.status|logs|cancel JOB``.

Thin: flags become the slurm target's options (:mod:`madengine.deploy.slurm`), which win over the context's
``slurm`` keys, which win over the manifest's stored ``deployment_config``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from invoke import Collection

from madengine.run_spec import option
from madengine.tasks._common import HELP, mad_task, say
from madengine.tasks.run import run_task


@dataclass
class SlurmFlags:
    """``run.slurm``'s own flags: the job's allocation (slurm-section keys, which they override) and how to
    submit. ``None``/``False`` = not given."""

    nodes: str | None = option(None, "number of nodes (one task per node runs the model)")
    partition: str | None = option(None, "Slurm partition")
    gpus_per_node: str | None = option(None, "GPUs per node (--gpus-per-node; slurm.gres_gpu=true asks with "
                                             "--gres=gpu:N); default: the model's n_gpus")
    time: str | None = option(None, "time limit: HH:MM:SS, D-HH:MM:SS or seconds")
    account: str | None = option(None, "Slurm account")
    qos: str | None = option(None, "Slurm QOS")
    exclusive: bool = option(False, "allocate whole nodes")
    reservation: str | None = option(None, "Slurm reservation")
    nodelist: str | None = option(None, "nodes to use (Slurm hostlist, e.g. n[1-2])")
    exclude: str | None = option(None, "nodes to avoid")
    constraint: str | None = option(None, "node features (--constraint)")
    cluster: str | None = option(None, "SITE/NAME of inventories/SITE.yaml: submit on that cluster's login node "
                                       "over SSH")
    dry_run: bool = option(False, "write the job script(s), print their paths, submit nothing")
    no_wait: bool = option(False, "submit, record the job ids, return; reattach with slurm.status / slurm.logs")


SLURM_HELP = {
    **HELP,
    "job": "Slurm job id (as printed at submission; recorded next to --output)",
    "follow": "keep printing the output until the job ends",
    "output": "perf.csv of the run that submitted the job (its .madengine/slurm-jobs.json is read)",
}

run_slurm = run_task("slurm", "slurm", "Run models as Slurm jobs on every allocated node (--tags builds first), then "
                     "merge the rows into perf.csv.", SlurmFlags)


def _output(c, output):
    from madengine import settings

    return settings.resolve(c.config.get("madengine"), output=output)["output"]


@mad_task(help=SLURM_HELP)
def status(c, job, output=None):
    """Show a submitted job's state; once it has ended, merge its rows into perf.csv (exit code 3 if it failed)."""
    from madengine import api
    from madengine.deploy import slurm
    from madengine.deploy.slurm.cli import SlurmError

    record, current, rows = slurm.status(str(job), _output(c, output))
    say(f"{current.describe()} [{record.model}, {record.nnodes} node(s)]")
    if current.status == "unknown":
        raise SlurmError(f"job {job}: status unknown ({current.reason}); nothing was collected, try again later")
    if rows:
        say(f"{len(rows)} row(s) appended to {record.output}")
        api.check_run(api.RunSummary(rows, Path(record.output)))
    elif current.terminal and current.status != "completed":
        from madengine.errors import RunError

        raise RunError(f"job {job} did not complete: {current.describe()}")


@mad_task(help=SLURM_HELP)
def logs(c, job, output=None, follow=False):
    """Print a submitted job's Slurm output (slurm-<id>.out/.err); --follow keeps printing until it ends."""
    from madengine.deploy import slurm

    slurm.logs(str(job), _output(c, output), follow=follow)


@mad_task(help=SLURM_HELP)
def cancel(c, job, output=None):
    """Cancel a submitted job (scancel) and show its final state."""
    from madengine.deploy import slurm

    current = slurm.cancel(str(job), _output(c, output))
    say(current.describe())


ns = Collection("slurm", status, logs, cancel)
