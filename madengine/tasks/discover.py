"""``inv discover``: list the models a tag selection gives."""

from __future__ import annotations

import json as jsonlib

from madengine.tasks._common import mad_task, say


@mad_task(iterable=["tags", "exclude_tags"])
def discover(c, tags=None, exclude_tags=None, hub=None, json=False, include_deprecated=False):
    """List the selected models (all when no --tags) as a table, or as JSON with --json."""
    from tabulate import tabulate

    from madengine import api, settings

    opts = settings.resolve(c.config.get("madengine"), hub=hub)
    models = api.discover_models(opts["hub"], tags or [], exclude_tags or [], include_deprecated)
    if json:
        say(jsonlib.dumps([m.model_dump(mode="json", exclude_none=True) for m in models], indent=2))
        return
    rows = [(m.name, ",".join(m.tags or []), m.n_gpus, m.timeout, m.dockerfile, m.scripts, m.args) for m in models]
    say(tabulate(rows, headers=["model", "tags", "n_gpus", "timeout", "dockerfile", "scripts", "args"]))
    say(f"{len(models)} model(s)")
