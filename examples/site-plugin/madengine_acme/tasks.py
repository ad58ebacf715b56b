"""ACME's site tasks, mounted by madengine as ``site.acme``. Thin: options in, library call, output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from invoke import Collection, Exit, task

from madengine.run_spec import option
from madengine.tasks.run import run_task


@task(help={"hub": "model hub (default: current directory)", "output": "where results will go (disk check)",
            "min_free_gb": "free disk space needed, in GB", "expect_gpus": "GPUs this node must have",
            "partition": "Slurm partition that must be up"})
def cluster_check(c, hub=".", output="perf.csv", min_free_gb=1.0, expect_gpus=-1, partition=None):
    """Pre-campaign health check of this node; exit code 1 when any check fails."""
    from madengine_acme.checks import run_checks

    checks = run_checks(Path(hub), Path(output), min_free_gb=min_free_gb,
                        expect_gpus=None if expect_gpus < 0 else expect_gpus, partition=partition)
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<24} {check.detail}")
    failed = [check.name for check in checks if not check.ok]
    if failed:
        raise Exit(f"acme: cluster check failed: {', '.join(failed)}", code=1)


@task(iterable=["tags"], help={"configs": "glob of context files, one run each (first = baseline)",
                               "tags": "models to run (repeatable)", "hub": "model hub",
                               "out_dir": "where each run's perf.csv goes", "deploy": "target (default: config's)"})
def nightly_sweep(c, configs="configs/*.json", tags=None, hub=".", out_dir="sweep", deploy=None):
    """Run the models once per context file and compare the runs; exit code 3 when a run failed."""
    from madengine import api
    from madengine_acme.sweep import sweep

    try:
        table, failed = sweep(configs, tags or [], hub=Path(hub), out_dir=Path(out_dir), deploy=deploy)
    except api.MadEngineError as e:
        raise Exit(f"acme: error: {e.message}", code=e.exit_code) from None
    print(table)
    if failed:
        raise Exit(f"acme: {failed} run(s) had failed rows; see {out_dir}/*/perf.csv", code=3)


@dataclass
class BatchFlags:
    """``batch-run``'s own flags (every run option comes from madengine's run spec)."""

    no_wait: bool = option(False, "submit, record the job ids, return; reattach with jobs.status / jobs.logs")
    dry_run: bool = option(False, "write the job scripts, print their paths, start nothing")


batch_run = run_task("batch_run", "acme-batch", "Run models as acme-batch jobs on this host (--tags builds first).",
                     BatchFlags)

ns = Collection(cluster_check, nightly_sweep, batch_run)
