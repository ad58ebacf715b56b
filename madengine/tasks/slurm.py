"""``inv run.slurm`` (run a manifest's models as Slurm jobs) and ``inv slurm.status|logs|cancel JOB``.

Thin: flags become the slurm target's options (:mod:`madengine.deploy.slurm`), which win over the context's
``slurm`` keys, which win over the manifest's stored ``deployment_config``.
"""

from __future__ import annotations

from pathlib import Path

from invoke import Collection

from madengine.tasks._common import HELP, mad_task, say

SLURM_HELP = {
    **HELP,
    "nodes": "number of nodes (one task per node runs the model)",
    "partition": "Slurm partition",
    "gpus_per_node": "GPUs per node (--gpus-per-node; slurm.gres_gpu=true asks with --gres=gpu:N)",
    "time": "time limit: HH:MM:SS, D-HH:MM:SS or seconds",
    "account": "Slurm account",
    "qos": "Slurm QOS",
    "exclusive": "allocate whole nodes",
    "reservation": "Slurm reservation",
    "nodelist": "nodes to use (Slurm hostlist, e.g. n[1-2])",
    "exclude": "nodes to avoid",
    "constraint": "node features (--constraint)",
    "cluster": "SITE/NAME of inventories/SITE.yaml: submit on that cluster's login node over SSH",
    "dry_run": "write the job script(s), print their paths, submit nothing",
    "no_wait": "submit, record the job ids, return; reattach with slurm.status / slurm.logs",
    "job": "Slurm job id (as printed at submission; recorded next to --output)",
    "follow": "keep printing the output until the job ends",
    "output": "perf.csv of the run that submitted the job (its .madengine/slurm-jobs.json is read)",
}


@mad_task(name="slurm", iterable=["tags", "exclude_tags"], help=SLURM_HELP)
def run_slurm(c, tags=None, exclude_tags=None, manifest_file=None, hub=None, additional_context=None,
              additional_context_file=None, timeout=None, keep_model_dir=False, skip_model_run=False,
              live_output=False, output=None, registry=None, manifest_output=None, clean_docker_cache=False,
              nodes=None, partition=None, gpus_per_node=None, time=None, account=None, qos=None, exclusive=False,
              reservation=None, nodelist=None, exclude=None, constraint=None, cluster=None, dry_run=False,
              no_wait=False, summary_output=None):
    """Run models as Slurm jobs on every allocated node (--tags builds first), then merge the rows into perf.csv."""
    from madengine.tasks.run import workflow

    target_options = {"nodes": nodes, "partition": partition, "gpus_per_node": gpus_per_node, "time": time,
                      "account": account, "qos": qos, "exclusive": exclusive, "reservation": reservation,
                      "nodelist": nodelist, "exclude": exclude, "constraint": constraint, "cluster": cluster,
                      "dry_run": dry_run, "no_wait": no_wait}
    workflow(c, "slurm", target_options=target_options, tags=tags, exclude_tags=exclude_tags,
             manifest_file=manifest_file, hub=hub, additional_context=additional_context,
             additional_context_file=additional_context_file, timeout=timeout, keep_model_dir=keep_model_dir,
             skip_model_run=skip_model_run, live_output=live_output, output=output, registry=registry,
             manifest_output=manifest_output, clean_docker_cache=clean_docker_cache, summary_output=summary_output)


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
