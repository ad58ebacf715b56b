"""``inv run.local`` and ``inv run`` (= ``run.deploy``, routed by the context's ``deploy`` key), and the factory
every run task is made with (``run.slurm``, ``run.k8s``, a plugin's): :func:`run_task` derives the task's options
from the run spec (:mod:`madengine.run_spec`) plus the target's own flags, so no task restates an option.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from madengine.run_spec import RunOptions, WorkflowOptions, help_texts, make, repeatable, task_parameters
from madengine.tasks._common import HELP, mad_task, say


def workflow(c: Any, target: str | None, workflow_options: WorkflowOptions, options: RunOptions,
             target_options: dict[str, Any] | None = None) -> None:
    """The run workflow behind every run task: resolve options and context, build first when ``--tags`` is given
    (else load ``--manifest-file``), run on ``target`` (``None`` = the context's ``deploy`` key), then check rows.

    Raises:
        MadEngineError subclasses, mapped to exit codes by ``mad_task``.
    """
    import dataclasses

    from madengine import api, run_spec, settings
    from madengine import manifest as manifest_mod
    from madengine.errors import BuildError, ConfigError

    build_error: BuildError | None = None
    w = workflow_options
    opts = settings.resolve(c.config.get("madengine"), hub=w.hub, output=w.output,
                            timeout=options.timeout, additional_context_file=w.additional_context_file,
                            manifest_output=w.manifest_output, registry=w.registry,
                            live_output=options.live_output or None)
    if options.timeout is not None and str(options.timeout).strip().startswith("-") \
            and str(options.timeout).strip() != "-1":
        raise ConfigError(f"--timeout: {options.timeout!r} must be -1 (each model's own, as madengine v2), 0 (no "
                          "limit) or a number of seconds")
    options = dataclasses.replace(options, timeout=settings.parse_timeout(opts["timeout"]),
                                  live_output=bool(opts["live_output"]))
    from madengine.safe_write import check_target, hub_inputs

    manifest_output = opts["manifest_output"]
    if manifest_output == settings.DEFAULTS["manifest_output"]:  # not set: keep it with the run's results
        manifest_output = str(Path(opts["output"]).parent / "build_manifest.json")
    inputs = [p for p in (opts["output"], w.manifest_file, opts["additional_context_file"],
                          *options.tools_config) if p] + hub_inputs(opts["hub"])
    if w.summary_output:  # before anything runs: never over perf.csv or another input of this command
        check_target(w.summary_output, flag="--summary-output",
                     inputs=inputs + ([] if w.manifest_file else [manifest_output]))
    if not w.manifest_file:  # the manifest this run will write must not replace one of its inputs either
        check_target(manifest_output, flag="--manifest-output", inputs=inputs)
    if not options.skip_model_run and not (target_options or {}).get("dry_run"):
        from madengine.results.perf_csv import check_appendable

        check_appendable(opts["output"])  # a foreign or cut-short perf.csv: refused before anything is built
    nodes = (target_options or {}).get("nodes")
    dry = options.skip_model_run or bool((target_options or {}).get("dry_run"))

    def check_store(ctx: dict[str, Any]) -> None:  # a bad --results-db or a dead server: before anything is built
        from madengine.results.store import check_label

        check_label(w.label)
        if not dry:
            from madengine.results import recording

            recording.check(w.results_db, ctx, opts["output"])

    if w.manifest_file:
        build_only = [run_spec.flag_of(f) for f in run_spec.build_fields(only=True) if getattr(w, f.name)]
        if build_only:
            say(f"madengine: note: --manifest-file given; {', '.join(build_only)} only act on a build and are "
                "ignored (the manifest decides what runs)")
        manifest = manifest_mod.load(w.manifest_file)
        if w.tags:  # run only the built models the tags select
            manifest = manifest_mod.select(manifest, w.tags, w.exclude_tags or ())
        ctx = api.load_context(w.additional_context, opts["additional_context_file"], manifest.stored_context())
        chosen = target or api.deploy_target(ctx)
        run_spec.check_supported(options, chosen, _honours(chosen))
        api.check_launcher(ctx, nodes=nodes)  # before anything is submitted
        check_store(ctx)
        hub = w.hub  # None: the hub recorded in the manifest
    else:
        ctx = api.load_context(w.additional_context, opts["additional_context_file"])
        if w.use_image:
            ctx["MAD_CONTAINER_IMAGE"] = w.use_image
        api.check_launcher(ctx, nodes=nodes)  # before anything is built
        if not w.tags:
            raise ConfigError("give --tags (build and run) or --manifest-file (run a previous build)")
        chosen = target or api.deploy_target(ctx)  # validate before building
        run_spec.check_supported(options, chosen, _honours(chosen))
        api.preflight(opts["hub"], w.tags, w.exclude_tags, ctx, local=chosen == "local")
        check_store(ctx)
        try:
            manifest = api.build(opts["hub"], w.tags, exclude_tags=w.exclude_tags, ctx=ctx, target_archs=w.target_archs,
                                 registry=opts["registry"], clean_cache=w.clean_docker_cache,
                                 manifest_output=manifest_output, log_dir=Path(opts["output"]).parent,
                                 live_output=options.live_output)
        except BuildError as e:
            if e.manifest is None:
                raise
            build_error = e  # run what did build, then exit with the build failure's code
            manifest = e.manifest
        hub = opts["hub"]
    summary = api.run(manifest, ctx, target=target, hub=hub, output=opts["output"], options=options,
                      target_options=target_options, results_db=w.results_db, label=w.label or "")
    submitted_only = any((target_options or {}).get(k) for k in ("dry_run", "no_wait"))
    if not options.skip_model_run and not submitted_only:
        say(f"{len(summary.rows)} row(s) appended to {summary.output}")
    if w.summary_output:
        from madengine.report.summary import write_summary

        manifest_path = w.manifest_file or opts["manifest_output"]
        written = write_summary(w.summary_output, summary.rows, manifest_path=manifest_path,
                                deployment={"target": target or api.deploy_target(ctx), **(target_options or {})},
                                logs=summary.logs, output=summary.output)
        say(f"run summary: {written}")
    if build_error is not None:
        raise build_error
    api.check_run(summary)


def _honours(target: str) -> Any:
    from madengine import deploy

    return getattr(deploy.resolve(target), "honours", ())


def run_task(name: str, target: str | None, doc: str, flags: type | None = None, *, default: bool = False,
             help: dict[str, str] | None = None) -> Any:
    """An Invoke run task for ``target`` (``None``: the context's ``deploy`` key) taking every option of the run
    spec plus the fields of ``flags`` (a dataclass declared with :func:`madengine.run_spec.option`; its values,
    ``None``/``False`` meaning "not given", become the target's ``target_options``). ``help`` adds texts for
    ``flags`` fields declared without one. Site plugins make their targets' tasks with it too
    (``madengine.api.run_task``)."""
    classes: tuple[type, ...] = (WorkflowOptions, RunOptions) + ((flags,) if flags else ())

    def body(c: Any, **values: Any) -> None:
        target_options = None
        if flags is not None:
            target_options = {k: v for k, v in values.items() if k in {p.name for p in task_parameters(flags)}}
        workflow(c, target, make(WorkflowOptions, values), make(RunOptions, values), target_options)

    context = inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    body.__signature__ = inspect.Signature([context, *task_parameters(*classes)])  # type: ignore[attr-defined]
    body.__doc__ = doc
    body.__name__ = body.__qualname__ = name
    texts = {**HELP, **help_texts(*classes), **(help or {})}
    return mad_task(name=name, iterable=repeatable(*classes), default=default, help=texts)(body)


local = run_task("local", "local", "Run models in containers on this host: --tags builds first, --manifest-file "
                 "runs a previous build.")
deploy = run_task("deploy", None, 'Run where the context\'s "deploy" key says (local by default); same options '
                  "as run.local.", default=True)
