"""``inv build``: build the selected models' images and write the build manifest. Its options are the run spec's
build options (:func:`madengine.run_spec.build_fields`), so ``build`` and a run with ``--tags`` take the same ones."""

from __future__ import annotations

import inspect
from typing import Any

from madengine.run_spec import _task_default, build_fields
from madengine.tasks._common import HELP, mad_task, say


def _build(c: Any, **values: Any) -> None:
    from madengine import api, settings

    opts = settings.resolve(c.config.get("madengine"), hub=values["hub"], registry=values["registry"],
                            additional_context_file=values["additional_context_file"],
                            manifest_output=values["manifest_output"], live_output=values["live_output"] or None)
    from madengine.safe_write import check_target, hub_inputs

    check_target(opts["manifest_output"], flag="--manifest-output",
                 inputs=[p for p in (opts["additional_context_file"],) if p] + hub_inputs(opts["hub"]))
    ctx = api.load_context(values["additional_context"], opts["additional_context_file"])
    if values["use_image"]:
        ctx["MAD_CONTAINER_IMAGE"] = values["use_image"]
    manifest = api.build(opts["hub"], values["tags"] or [], exclude_tags=values["exclude_tags"] or [], ctx=ctx,
                         registry=opts["registry"], clean_cache=values["clean_docker_cache"],
                         manifest_output=opts["manifest_output"], live_output=opts["live_output"],
                         target_archs=values["target_archs"] or [])
    say(f"built {len(manifest.built_images)} image(s); manifest: {opts['manifest_output']}")


_build.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=_task_default(f))
       for f in build_fields()])
_build.__doc__ = ("Build Docker images for the selected models and write build_manifest.json (--use-image: record "
                  "an existing image instead of building).")
_build.__name__ = _build.__qualname__ = "build"
build = mad_task(name="build", iterable=[f.name for f in build_fields() if f.metadata.get("repeatable")],
                 help=HELP)(_build)
