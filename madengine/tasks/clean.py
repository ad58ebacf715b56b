"""``inv clean``: remove the containers of madengine runs that were killed before they could clean up."""

from __future__ import annotations

from madengine.tasks._common import mad_task, say


@mad_task(help={"dry_run": "only list the leftovers", "keep_alive": "also remove containers kept with --keep-alive "
                "whose run has ended"})
def clean(c, dry_run=False, keep_alive=False):
    """Remove containers left by killed madengine runs on this host (their owner process is gone); exit 1 if the
    engine refused to remove one."""
    from madengine import cleanup
    from madengine.errors import EngineError

    done, failed = cleanup.clean(dry_run=dry_run, include_kept=keep_alive)
    for item in done:
        say(f"{'would remove' if dry_run else 'removed'} {item.describe()}")
    if not done and not failed:
        say("no leftover containers")
    if failed:
        names = " ".join(item.name for item in failed)
        raise EngineError(f"could not remove {len(failed)} container(s); try `docker rm -f {names}`")
