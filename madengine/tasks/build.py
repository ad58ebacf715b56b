"""``inv build``: build the selected models' images and write the build manifest."""

from __future__ import annotations

from madengine.tasks._common import mad_task, say


@mad_task(iterable=["tags", "exclude_tags", "target_archs"])
def build(c, tags=None, exclude_tags=None, hub=None, registry=None, additional_context=None,
          additional_context_file=None, manifest_output=None, clean_docker_cache=False, live_output=False,
          use_image=None, target_archs=None):
    """Build Docker images for the selected models and write build_manifest.json (--use-image: record an existing
    image instead of building)."""
    from madengine import api, settings

    opts = settings.resolve(c.config.get("madengine"), hub=hub, registry=registry,
                            additional_context_file=additional_context_file, manifest_output=manifest_output,
                            live_output=live_output or None)
    ctx = api.load_context(additional_context, opts["additional_context_file"])
    if use_image:
        ctx["MAD_CONTAINER_IMAGE"] = use_image
    manifest = api.build(opts["hub"], tags or [], exclude_tags=exclude_tags or [], ctx=ctx,
                         registry=opts["registry"], clean_cache=clean_docker_cache,
                         manifest_output=opts["manifest_output"], live_output=opts["live_output"],
                         target_archs=target_archs or [])
    say(f"built {len(manifest.built_images)} image(s); manifest: {opts['manifest_output']}")
