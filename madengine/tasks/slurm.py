"""``inv run.slurm`` (run a manifest's models as Slurm jobs) and ``inv slurm.status|logs|cancel JOB``.

Thin: flags become the slurm target's options (:mod:`madengine.deploy.slurm`), which win over the context's
``slurm`` keys, which win over the manifest's stored ``deployment_config``.
"""

from __future__ import annotations

from dataclasses import dataclass

from invoke import Collection

from madengine.run_spec import option
from madengine.tasks import jobs
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
    image_transfer: str | None = option(None, "'save': ship images without a registry to the nodes as docker save "
                                              "archives (each node loads one once)")
    cluster: str | None = option(None, "SITE/NAME of inventories/SITE.yaml: submit on that cluster's login node "
                                       "over SSH")
    dry_run: bool = option(False, "write the job script(s), print their paths, submit nothing")
    no_wait: bool = option(False, "submit, record the job ids, return; reattach with slurm.status / slurm.logs")


run_slurm = run_task("slurm", "slurm", "Run models as Slurm jobs on every allocated node (--tags builds first), then "
                     "merge the rows into perf.csv.", SlurmFlags)


#: ``slurm.status|logs|cancel`` are the generic job tasks (:mod:`madengine.tasks.jobs`).
ns = Collection("slurm", jobs.status, jobs.logs, jobs.cancel)
