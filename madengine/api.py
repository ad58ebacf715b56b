"""The public building blocks behind madengine's tasks, for site tasks and scripts as much as for madengine itself.

Each function takes plain values (paths, lists, the context JSON strings as typed on the command line), does one
phase, and raises a :class:`madengine.errors.MadEngineError` subclass whose ``exit_code`` is the documented one.
None of them prints results: they return them (progress lines go to stderr).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from madengine import context as context_mod
from madengine import hub as hub_mod
from madengine import manifest as manifest_mod
from madengine.deploy import DeployRequest
from madengine.errors import ConfigError, MadEngineError, RunError
from madengine.gpu import HostGpus
from madengine.results.perf_csv import PerfRow, append_rows, read_rows
from madengine.run_spec import RunOptions

__all__ = [
    "ConfigError", "DeployRequest", "EngineStatus", "MadEngineError", "PerfRow", "RunError", "RunOptions", "RunSummary",
    "append_rows", "build", "check_launcher", "check_run", "deploy_target", "detect_gpus", "discover_models", "engine_status",
    "load_context", "load_manifest", "preflight", "read_rows", "run",
]


def load_manifest(path: str | Path) -> manifest_mod.Manifest:
    """Read a build manifest (``build_manifest.json``).

    Raises:
        ConfigError: missing file, bad JSON, or a record without a required key.
    """
    return manifest_mod.load(path)


@dataclass
class EngineStatus:
    """Whether the Docker engine answers, with a one-line detail (version or the error)."""

    ok: bool
    detail: str


def engine_status() -> EngineStatus:
    """Ping the Docker engine (never raises)."""
    from madengine import docker_engine

    try:
        client = docker_engine.connect(timeout=10)
        return EngineStatus(True, f"Docker {client.version().get('Version', '?')} at {docker_engine.engine_address()}")
    except MadEngineError as e:
        return EngineStatus(False, e.message)


def detect_gpus() -> HostGpus:
    """This host's GPUs (vendor AMD/NVIDIA/NONE, count, architecture); never raises."""
    from madengine import gpu

    return gpu.detect()


def load_context(context_json: str | None = None, context_file: str | None = None,
                 base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated run/build context: ``base`` < ``--additional-context-file`` < ``--additional-context``.

    Raises:
        ConfigError: malformed JSON, a near-miss key, a wrong value type, a missing file.
    """
    return context_mod.build_context(context_json, context_file or None, base)


def discover_models(hub: str | Path, tags: Sequence[str], exclude_tags: Sequence[str] = (),
                    include_deprecated: bool = False) -> list[hub_mod.Model]:
    """Discover the hub's models and select them by tag (no tags = every model, as ``all``).

    Raises:
        ConfigError: missing or malformed hub files; a tag that matches nothing (lists the closest names).
    """
    models = hub_mod.discover(Path(hub))
    return hub_mod.select(models, list(tags) or ["all"], list(exclude_tags), include_deprecated=include_deprecated)


def build(hub: str | Path, tags: Sequence[str], *, exclude_tags: Sequence[str] = (), ctx: dict[str, Any],
          registry: str = "", clean_cache: bool = False, manifest_output: str | Path = "build_manifest.json",
          log_dir: str | Path = ".", live_output: bool = False,
          target_archs: Sequence[str] = ()) -> manifest_mod.Manifest:
    """Discover, select and build; write the manifest. Returns it. ``target_archs``: one image per GPU
    architecture (items may be comma lists, as madengine v2's ``--target-archs``).

    Raises:
        ConfigError, EngineError, BuildError (exit code 2, after the manifest of the successful builds was written).
    """
    from madengine import build as build_mod
    from madengine import gpu

    if not tags:
        raise ConfigError("--tags: give at least one tag or model name (e.g. --tags all)")
    models = discover_models(hub, tags, exclude_tags)
    outcome = build_mod.build_models(Path(hub), models, ctx, registry=registry, clean_cache=clean_cache,
                                     manifest_output=Path(manifest_output), log_dir=Path(log_dir),
                                     live_output=live_output, detected_vendor=gpu.detect().vendor,
                                     target_archs=[a.strip() for item in target_archs for a in item.split(",")
                                                   if a.strip()])
    return outcome.manifest


def check_launcher(ctx: dict[str, Any], *, nodes: Any = None) -> None:
    """Validate the context's launcher and parallelism (tp × pp × dp against the GPUs, expert parallel, ports, ...)
    when it names one; do nothing otherwise.

    Raises:
        ConfigError: a violated rule, in one line naming the keys and numbers.
    """
    from madengine import launchers

    if launchers.launcher_name(ctx) is not None:
        launchers.resolve(ctx, nodes=int(nodes) if nodes not in (None, "") else None)


def preflight(hub: str | Path, tags: Sequence[str], exclude_tags: Sequence[str], ctx: dict[str, Any], *,
              local: bool) -> None:
    """Checks a build-then-run workflow makes BEFORE building: every selected model's scripts exist and, for a local
    run, this host has the GPUs the models need (or the context says ``"gpu_vendor": "NONE"``).

    Raises:
        ConfigError: names the model and what is missing.
    """
    from madengine import gpu
    from madengine.workflow.plan import script_command

    host = gpu.detect() if local else None
    for model in discover_models(hub, tags, exclude_tags):
        scripts_dir, _ = script_command(model, model.args)
        if not (Path(hub) / scripts_dir).is_dir():
            raise ConfigError(f"models.json: model {model.name!r}: scripts directory {Path(hub) / scripts_dir} does "
                              "not exist (field 'scripts')")
        if host is not None:
            gpu.assign(ctx, model.n_gpus, host)


@dataclass
class RunSummary:
    """Rows of one run and where they went: ``logs`` maps a model name to its run log, ``artifacts`` lists the files
    collected besides (``<model>_env.csv``, tool outputs)."""

    rows: list[PerfRow]
    output: Path
    logs: dict[str, str] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[PerfRow]:
        """Rows that are neither SUCCESS nor SKIPPED."""
        return [r for r in self.rows if r.status not in ("SUCCESS", "SKIPPED")]


def run(manifest: manifest_mod.Manifest, ctx: dict[str, Any], *, target: str | None = None, output: str | Path,
        hub: str | Path | None = None, options: RunOptions | None = None,
        target_options: dict[str, Any] | None = None, results_db: str | None = None, label: str = "",
        **option_values: Any) -> RunSummary:
    """Run a manifest's images on a deployment target and append the rows to ``output`` (perf.csv).

    Args:
        target: ``local``, ``slurm``, ``k8s`` or a plugin's name; ``None`` = the context's ``deploy`` key (default
            ``local``).
        hub: where the model scripts are; ``None`` = the hub recorded in the manifest.
        options: the run options (:class:`madengine.run_spec.RunOptions`: ``timeout`` in seconds, ``None`` = each
            model's own, 0 = no limit; ``keep_model_dir``, ``tools_config``, ...); ``option_values`` set single
            ones by name (``timeout=60``) over it.
        target_options: the target's own flags (they win over the context's section for it).
        results_db: the results store's URL (:func:`madengine.results.store.resolve_url`: ``None`` = the context's
            ``results_db``, else ``madengine-results.db`` next to ``output``; ``"none"`` = no store); ``label``
            names the run there. A dry run (``dry_run``, ``skip_model_run``) records nothing.

    Raises:
        ConfigError: an unknown option name, or an option the target cannot honour (before anything runs); the
            target's own errors (EngineError, PerfCsvError, ...); KeyboardInterrupt (containers/jobs cleaned up first).
    """
    import dataclasses

    from madengine import deploy, run_spec

    name = target or deploy_target(ctx)
    deploy_fn = deploy.resolve(name)
    try:
        chosen = dataclasses.replace(options or RunOptions(), **option_values)
    except TypeError:
        known = ", ".join(f.name for f in dataclasses.fields(RunOptions))
        raise ConfigError(f"api.run: unknown run option among {sorted(option_values)}; known: {known}") from None
    run_spec.check_supported(chosen, name, getattr(deploy_fn, "honours", ()))
    from madengine import cleanup
    from madengine.results import recording

    dry = chosen.skip_model_run or bool((target_options or {}).get("dry_run"))
    request = deploy.DeployRequest(manifest=manifest, ctx=ctx, output=Path(output), hub=Path(hub) if hub else None,
                                   options=chosen, target_options=dict(target_options or {}))
    if not dry:  # a bad URL or a dead database server stops the run here, before any work
        request.recording = recording.start(output=output, hub=request.hub, manifest=manifest, ctx=ctx, target=name,
                                            results_db=results_db, label=label)
    cleanup.report_jobs(output)  # jobs a killed run left behind next to this perf.csv
    ended = "failed"
    try:
        summary: RunSummary = deploy_fn(request)
        ended = "done"
    except KeyboardInterrupt:  # Ctrl-C and the stop signals (madengine.stop)
        ended = "interrupted"
        raise
    finally:
        if request.recording is not None:
            request.recording.finish(ended)
    return summary


def check_run(summary: RunSummary) -> None:
    """Raise :class:`RunError` (exit code 3) when any row is not SUCCESS/SKIPPED, naming them and their reasons."""
    failed = summary.failed
    if failed:
        detail = "; ".join(f"{r.model}: {r.reason or r.status}" for r in failed[:5])
        more = f" (+{len(failed) - 5} more)" if len(failed) > 5 else ""
        raise RunError(f"{len(failed)} of {len(summary.rows)} row(s) did not succeed: {detail}{more}; "
                       f"see {summary.output} and the *.run.live.log files")


def deploy_target(ctx: dict[str, Any]) -> str:
    """The context's ``deploy`` key (``local`` by default), checked against the registered targets.

    Raises:
        ConfigError: a target madengine does not know (lists the available ones).
    """
    from madengine import deploy

    target = str(ctx.get("deploy") or "local")
    if target not in deploy.available():
        deploy.resolve(target)  # raises with the list of targets
    return target
