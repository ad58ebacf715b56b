"""``inv run.local`` and ``inv run`` (routes by the context's ``deploy`` key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from madengine.tasks._common import mad_task, say

_RUN_ITERABLES = ["tags", "exclude_tags"]


def _workflow(c: Any, target: str | None, **o: Any) -> None:
    from madengine import api, settings
    from madengine import manifest as manifest_mod

    opts = settings.resolve(c.config.get("madengine"), hub=o["hub"], output=o["output"], timeout=o["timeout"],
                            additional_context_file=o["additional_context_file"],
                            manifest_output=o["manifest_output"], registry=o["registry"],
                            live_output=o["live_output"] or None)
    timeout = settings.parse_timeout(opts["timeout"])
    if o["manifest_file"] and o["tags"]:
        say("madengine: note: --manifest-file given; --tags is ignored (the manifest decides what runs)")
    if o["manifest_file"]:
        manifest = manifest_mod.load(o["manifest_file"])
        ctx = api.load_context(o["additional_context"], opts["additional_context_file"], manifest.stored_context())
        hub = o["hub"]  # None: the hub recorded in the manifest
    else:
        ctx = api.load_context(o["additional_context"], opts["additional_context_file"])
        if not o["tags"]:
            from madengine.errors import ConfigError

            raise ConfigError("give --tags (build and run) or --manifest-file (run a previous build)")
        if target is None:
            api.deploy_target(ctx)  # validate before building
        manifest = api.build(opts["hub"], o["tags"], exclude_tags=o["exclude_tags"] or [], ctx=ctx,
                             registry=opts["registry"], clean_cache=o["clean_docker_cache"],
                             manifest_output=opts["manifest_output"], log_dir=Path(opts["output"]).parent,
                             live_output=opts["live_output"])
        hub = opts["hub"]
    summary = api.run(manifest, ctx, target=target, hub=hub, output=opts["output"], timeout=timeout,
                      keep_alive=o["keep_alive"], keep_model_dir=o["keep_model_dir"],
                      skip_model_run=o["skip_model_run"], live_output=opts["live_output"],
                      target_options=o.get("target_options"))
    if not o["skip_model_run"]:
        say(f"{len(summary.rows)} row(s) appended to {summary.output}")
    api.check_run(summary)


@mad_task(iterable=_RUN_ITERABLES)
def local(c, tags=None, exclude_tags=None, manifest_file=None, hub=None, additional_context=None,
          additional_context_file=None, timeout=None, keep_alive=False, keep_model_dir=False, skip_model_run=False,
          live_output=False, output=None, registry=None, manifest_output=None, clean_docker_cache=False):
    """Run models in containers on this host: --tags builds first, --manifest-file runs a previous build."""
    _workflow(c, "local", **locals_without_c(locals()))


@mad_task(iterable=_RUN_ITERABLES, default=True)
def deploy(c, tags=None, exclude_tags=None, manifest_file=None, hub=None, additional_context=None,
           additional_context_file=None, timeout=None, keep_alive=False, keep_model_dir=False, skip_model_run=False,
           live_output=False, output=None, registry=None, manifest_output=None, clean_docker_cache=False):
    """Run where the context's "deploy" key says (local by default); same options as run.local."""
    _workflow(c, None, **locals_without_c(locals()))


def locals_without_c(values: dict[str, Any]) -> dict[str, Any]:
    """The task's options without the Invoke context."""
    return {k: v for k, v in values.items() if k != "c"}
