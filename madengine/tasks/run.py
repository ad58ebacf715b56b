"""``inv run.local`` and ``inv run`` (= ``run.deploy``, routed by the context's ``deploy`` key).

Both tasks share one option set (defined once in :func:`_run_task`); deployment-specific tasks (``run.slurm``,
``run.k8s``) call :func:`workflow` with their own ``target_options``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from madengine.tasks._common import HELP, mad_task, say

RUN_ITERABLES = ["tags", "exclude_tags", "tools_config"]
RUN_HELP = {
    **HELP,
    "sys_env_details": "capture <model>_env.csv and GPU info around the model (default on)",
    "tools_config": "site tools catalogue (YAML/JSON) added to the packaged one (repeatable)",
    "force_mirror_local": "mirror remote data (nas, custom providers) under this host directory",
    "data_config": "data providers file in the hub (default data.json)",
    "disable_skip_gpu_arch": "run models even when their skip_gpu_arch lists this GPU",
}


def workflow(c: Any, target: str | None, target_options: dict[str, Any] | None = None, **o: Any) -> None:
    """The run workflow behind every run task: resolve options and context, build first when ``--tags`` is given
    (else load ``--manifest-file``), run on ``target`` (``None`` = the context's ``deploy`` key), then check rows.

    Raises:
        MadEngineError subclasses, mapped to exit codes by ``mad_task``.
    """
    from madengine import api, settings
    from madengine import manifest as manifest_mod
    from madengine.errors import BuildError, ConfigError

    build_error: BuildError | None = None

    opts = settings.resolve(c.config.get("madengine"), hub=o.get("hub"), output=o.get("output"),
                            timeout=o.get("timeout"), additional_context_file=o.get("additional_context_file"),
                            manifest_output=o.get("manifest_output"), registry=o.get("registry"),
                            live_output=o.get("live_output") or None)
    if o.get("timeout") is not None and str(o["timeout"]).strip().startswith("-"):
        raise ConfigError(f"--timeout: {o['timeout']!r} must be 0 (no limit) or a number of seconds")
    timeout = settings.parse_timeout(opts["timeout"])
    loaded = False
    if o.get("manifest_file"):
        if o.get("tags"):
            say("madengine: note: --manifest-file given; --tags is ignored (the manifest decides what runs)")
        manifest = manifest_mod.load(o["manifest_file"])
        ctx = api.load_context(o.get("additional_context"), opts["additional_context_file"],
                               manifest.stored_context())
        hub = o.get("hub")  # None: the hub recorded in the manifest
        loaded = True
    else:
        ctx = api.load_context(o.get("additional_context"), opts["additional_context_file"])
        api.check_launcher(ctx, nodes=(target_options or {}).get("nodes"))  # before anything is built
        if not o.get("tags"):
            raise ConfigError("give --tags (build and run) or --manifest-file (run a previous build)")
        chosen = target or api.deploy_target(ctx)  # validate before building
        api.preflight(opts["hub"], o["tags"], o.get("exclude_tags") or [], ctx, local=chosen == "local")
        manifest_output = opts["manifest_output"]
        if manifest_output == settings.DEFAULTS["manifest_output"]:  # not set: keep it with the run's results
            manifest_output = str(Path(opts["output"]).parent / "build_manifest.json")
        try:
            manifest = api.build(opts["hub"], o["tags"], exclude_tags=o.get("exclude_tags") or [], ctx=ctx,
                                 registry=opts["registry"], clean_cache=bool(o.get("clean_docker_cache")),
                                 manifest_output=manifest_output, log_dir=Path(opts["output"]).parent,
                                 live_output=opts["live_output"])
        except BuildError as e:
            if e.manifest is None:
                raise
            build_error = e  # run what did build, then exit with the build failure's code
            manifest = e.manifest
        hub = opts["hub"]
    if loaded:
        api.check_launcher(ctx, nodes=(target_options or {}).get("nodes"))  # before anything is submitted
    summary = api.run(manifest, ctx, target=target, hub=hub, output=opts["output"], timeout=timeout,
                      keep_alive=bool(o.get("keep_alive")), keep_model_dir=bool(o.get("keep_model_dir")),
                      skip_model_run=bool(o.get("skip_model_run")), live_output=opts["live_output"],
                      target_options=target_options,
                      sys_env_details=False if o.get("sys_env_details") is False else None,
                      tools_config=o.get("tools_config") or [], force_mirror_local=o.get("force_mirror_local"),
                      data_config=o.get("data_config") or "data.json",
                      disable_skip_gpu_arch=bool(o.get("disable_skip_gpu_arch")))
    if not o.get("skip_model_run"):
        say(f"{len(summary.rows)} row(s) appended to {summary.output}")
    if o.get("summary_output"):
        from madengine.report.summary import write_summary

        manifest_path = o.get("manifest_file") or opts["manifest_output"]
        written = write_summary(o["summary_output"], summary.rows, manifest_path=manifest_path,
                                deployment={"target": target or api.deploy_target(ctx), **(target_options or {})},
                                logs=summary.logs, output=summary.output)
        say(f"run summary: {written}")
    if build_error is not None:
        raise build_error
    api.check_run(summary)


def _run_task(name: str, target: str | None, doc: str, default: bool = False) -> Any:
    def body(c, tags=None, exclude_tags=None, manifest_file=None, hub=None, additional_context=None,
             additional_context_file=None, timeout=None, keep_alive=False, keep_model_dir=False,
             skip_model_run=False, live_output=False, output=None, registry=None, manifest_output=None,
             clean_docker_cache=False, sys_env_details=True, tools_config=None, force_mirror_local=None,
             data_config=None, disable_skip_gpu_arch=False, summary_output=None):
        options = {k: v for k, v in locals().items() if k not in ("c", "target")}
        workflow(c, target, **options)

    body.__doc__ = doc
    body.__name__ = body.__qualname__ = name
    return mad_task(name=name, iterable=RUN_ITERABLES, default=default, help=RUN_HELP)(body)


local = _run_task("local", "local", "Run models in containers on this host: --tags builds first, --manifest-file "
                  "runs a previous build.")
deploy = _run_task("deploy", None, 'Run where the context\'s "deploy" key says (local by default); same options '
                   "as run.local.", default=True)
