"""``inv clean``: remove what killed madengine runs left behind: their containers on this host, and the batch jobs
they were waiting for (recorded next to ``--output``)."""

from __future__ import annotations

from madengine.tasks._common import mad_task, say


@mad_task(help={"dry_run": "only list the leftovers",
                "output": "perf.csv whose recorded jobs (.madengine/jobs.json next to it) are checked (default perf.csv)",
                "keep_alive": "also remove containers kept with --keep-alive whose run has ended"})
def clean(c, dry_run=False, keep_alive=False, output=None):
    """Cancel the jobs and remove the containers of madengine runs that were killed (their owner process is gone);
    exit 1 if one could not be removed or the Docker engine could not be asked."""
    from madengine import cleanup
    from madengine.errors import EngineError, MadEngineError
    from madengine.tasks.jobs import output_of

    problems: list[str] = []
    try:
        jobs, refused = cleanup.cancel_jobs(output_of(c, output), dry_run=dry_run)
    except MadEngineError as e:  # a broken job record must not keep the containers from being cleaned
        jobs, refused = [], []
        problems.append(f"jobs not checked: {e.message}")
    for record in jobs:
        say(f"{'would cancel' if dry_run else 'cancelled'} {record.target} job {record.job_id} "
            f"(model {record.model}, submitted {record.submitted})")
    problems += [f"job {record.job_id}: {message}" for record, message in refused]
    try:
        done, failed = cleanup.clean(dry_run=dry_run, include_kept=keep_alive)
    except EngineError as e:
        done, failed = [], []
        problems.append(f"containers not checked: {e.message}")
    for item in done:
        say(f"{'would remove' if dry_run else 'removed'} {item.describe()}")
    if failed:
        names = " ".join(item.name for item in failed)
        problems.append(f"could not remove {len(failed)} container(s); try `docker rm -f {names}`")
    if not jobs and not done and not problems:
        say("no leftover containers or jobs")
    if problems:
        raise MadEngineError("; ".join(problems))
