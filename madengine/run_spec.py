"""The run spec: every option of a run declared once, and everything derived from it.

Two dataclasses hold the declarations (name, type, default, help, and which targets honour an option):

- :class:`WorkflowOptions`: what the run *task* does before and after the target runs (select and build models,
  where perf.csv goes, the run summary); every target gets them alike.
- :class:`RunOptions`: what a *target* must do while running the models (time limits, what is kept, the
  automation's inputs). A target that cannot honour a given option refuses it (:func:`check_supported`, exit code 4
  naming the option and what to use instead); no option is ever dropped.

Derived from them: the Invoke tasks ``run.local``, ``run``, ``run.slurm``, ``run.k8s`` and any plugin's task
(:func:`task_parameters`, :func:`split`), the options a Slurm node's ``run.local`` receives (:func:`node_args`),
and the help texts. A target's own flags (``--nodes``, ``--namespace``, ...) are declared the same way in a
dataclass of the target's task module.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from madengine.errors import ConfigError

#: Built-in targets (plugins are any other name).
TARGETS = ("local", "slurm", "k8s")


def option(default: Any, help: str, *, targets: Iterable[str] | None = None, hint: str = "", node: bool = True,
           flag: str = "", repeatable: bool = False, build: str = "") -> Any:
    """Declare one option (a dataclass field).

    Args:
        default: its default (a list default is copied per instance).
        help: one line for ``--help``.
        targets: the built-in targets that honour it (``None``: every target, plugins included); a plugin honours
            an option limited to some targets only when its deploy function lists it in ``honours``.
        hint: what to use instead where it is refused.
        node: passed on to ``run.local`` on every node of a multi-node target (Slurm).
        flag: the flag's name when it is not ``--<name with dashes>``.
        repeatable: given once per value (a list).
        build: ``"only"`` when it acts on the build alone (a run from ``--manifest-file`` ignores it, saying so),
            ``"also"`` when the ``build`` task takes it too; ``""`` for a run option.
    """
    meta = {"help": help, "targets": None if targets is None else frozenset(targets), "hint": hint, "node": node,
            "flag": flag, "repeatable": repeatable, "build": build}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass
class WorkflowOptions:
    """What a run task does around the target: which models (``tags`` builds first; ``manifest_file`` runs a
    previous build), the hub, the context, where results go."""

    tags: list[str] = option([], "model name or tag to select (repeatable; 'all' selects every model; "
                             "name:key=value adds --key value; with --manifest-file: among its built models)",
                             repeatable=True, build="also")
    exclude_tags: list[str] = option([], "model name or tag to leave out (repeatable)", repeatable=True, build="also")
    manifest_file: str | None = option(None, "run the images of this build manifest (skips the build)")
    hub: str | None = option(None, "model hub root (MAD layout); default: the current directory", build="also")
    additional_context: str | None = option(None, "context as a JSON object, e.g. '{\"gpu_vendor\": \"NONE\"}' "
                                                  "(wins over the file)", build="also")
    additional_context_file: str | None = option(None, "context JSON file", build="also")
    output: str | None = option(None, "perf.csv to append rows to (default perf.csv); logs go next to it")
    registry: str | None = option(None, "push built images to this registry (host:port), recorded as "
                                        "registry_image", build="only")
    manifest_output: str | None = option(None, "where to write the build manifest (default build_manifest.json)",
                                         build="only")
    clean_docker_cache: bool = option(False, "build with --no-cache", build="only")
    target_archs: list[str] = option([], "build one image per GPU architecture (gfx942,gfx950; repeatable); a "
                                         "run uses the one matching each node", repeatable=True, build="only")
    use_image: str | None = option(None, "no build: run the selected models in this existing image ('auto': the "
                                         "base image of their Dockerfile); the context key MAD_CONTAINER_IMAGE",
                                   build="only")
    summary_output: str | None = option(None, "also write a JSON run summary (statuses, reasons, durations, logs) "
                                              "to this file")
    results_db: str | None = option(None, "results store URL (sqlite:///F, postgresql+psycopg://...; 'none': "
                                          "off); default: the context's results_db, else madengine-results.db "
                                          "next to perf.csv")
    label: str | None = option(None, "a label for this run in the results store (select it in report.compare "
                                     "with --baseline label:NAME)")


@dataclass
class RunOptions:
    """What every target does while running the models. ``timeout``: seconds for each model's run step (``None``
    = the model's own, 0 = none); ``sys_env_details`` ``None`` = the context's ``gen_sys_env_details`` (default
    on); ``tools_config`` paths of site tool catalogues; ``force_mirror_local`` a directory on the nodes;
    ``data_config`` a file name in the hub."""

    timeout: int | None = option(None, "seconds for each model's run step (default: the model's timeout, 7200; "
                                       "0 = no limit)")
    keep_alive: bool = option(False, "leave the container running after the model (implies --keep-model-dir)",
                              targets=("local",), hint="containers on cluster nodes are always removed; use "
                              "--keep-model-dir (Slurm) or --keep-job (Kubernetes)")
    keep_model_dir: bool = option(False, "keep the model's work directory after the run")
    skip_model_run: bool = option(False, "print what would run; run nothing and write no perf row")
    live_output: bool = option(False, "stream build and model output to the terminal (Slurm: into the job's "
                                      "output, see slurm.logs --follow)", targets=("local", "slurm"),
                               hint="follow the pods with `inv k8s.logs JOB --follow` (run.k8s --no-wait)")
    sys_env_details: bool | None = option(None, "capture <model>_env.csv and GPU info around the model (default "
                                                "on; --no-sys-env-details turns it off)")
    tools_config: list[str] = option([], "site tools catalogue (YAML/JSON) added to the packaged one "
                                     "(repeatable)", repeatable=True)
    force_mirror_local: str | None = option(None, "mirror remote data (nas, custom providers) under this "
                                                  "directory", targets=("local", "slurm"),
                                            hint="on Kubernetes, mount the data with k8s.data_pvc")
    data_config: str = option("data.json", "data providers file in the hub (default data.json)")
    disable_skip_gpu_arch: bool = option(False, "run models even when their skip_gpu_arch lists this GPU")
    repeat: int = option(1, "run each model's run step N times and record every sample; perf.csv gets the "
                            "median, the run summary min/max and a 95% bootstrap confidence interval")
    warmup: int = option(0, "run each model's run step K more times first and discard them")


def _fields(cls: type) -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(cls))


def flag_of(field: dataclasses.Field[Any]) -> str:
    """``--name-with-dashes`` (or the declared flag) of a field."""
    return "--" + (field.metadata.get("flag") or field.name.replace("_", "-"))


def defaults(cls: type) -> dict[str, Any]:
    """Field name → default of a declaration dataclass."""
    return {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            for f in _fields(cls)}


def help_texts(*classes: type) -> dict[str, str]:
    """Field name → help line, for ``invoke.task(help=...)``."""
    return {f.name: str(f.metadata.get("help", "")) for cls in classes for f in _fields(cls)}


def repeatable(*classes: type) -> list[str]:
    """Names of the repeatable (list) options, for ``invoke.task(iterable=...)``."""
    return [f.name for cls in classes for f in _fields(cls) if f.metadata.get("repeatable")]


def _task_default(field: dataclasses.Field[Any]) -> Any:
    if field.metadata.get("repeatable"):
        return None  # Invoke fills iterables itself
    if field.name == "sys_env_details":
        return True  # so that Invoke offers --no-sys-env-details
    return field.default


def build_fields(*, only: bool = False) -> list[dataclasses.Field[Any]]:
    """The options the ``build`` task takes (those declared with ``build``, and ``live_output``), or with
    ``only`` the ones that act on a build alone."""
    wanted = ("only",) if only else ("only", "also")
    found = [f for f in _fields(WorkflowOptions) if f.metadata.get("build") in wanted]
    return found if only else found + [f for f in _fields(RunOptions) if f.name == "live_output"]


def task_parameters(*classes: type) -> list[inspect.Parameter]:
    """The keyword parameters of a task taking every field of ``classes`` (after the Invoke context)."""
    return [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=_task_default(f))
            for cls in classes for f in _fields(cls)]


def make(cls: type, values: Mapping[str, Any]) -> Any:
    """An instance of declaration dataclass ``cls`` from task keyword values (``None`` lists become empty; the
    ``--[no-]sys-env-details`` flag becomes ``None`` unless turned off)."""
    kwargs: dict[str, Any] = {}
    for f in _fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if f.metadata.get("repeatable"):
            value = list(value or [])
        elif f.name == "sys_env_details":
            value = False if value is False else None
        kwargs[f.name] = value
    return cls(**kwargs)


def given(options: RunOptions) -> list[dataclasses.Field[Any]]:
    """The run options whose value differs from the default."""
    base = defaults(RunOptions)
    return [f for f in _fields(RunOptions) if getattr(options, f.name) != base[f.name]]


#: The largest ``--repeat`` and ``--warmup`` (runs of each model's run step).
MAX_REPEAT = 1000


def check_values(options: RunOptions) -> None:
    """Refuse run option values no target can run: ``--repeat`` outside 1..:data:`MAX_REPEAT`, ``--warmup``
    outside 0..:data:`MAX_REPEAT` (or not whole numbers).

    Raises:
        ConfigError: names the flag, the value and the accepted range (exit code 4).
    """
    for name, low in (("repeat", 1), ("warmup", 0)):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_REPEAT:
            raise ConfigError(f"--{name}: {value!r} must be a whole number from {low} to {MAX_REPEAT} (runs of each "
                              "model's run step)")


def check_supported(options: RunOptions, target: str, honours: Iterable[str] = ()) -> None:
    """Refuse run options no target can run (:func:`check_values`) and the given run options that ``target``
    cannot honour (``honours``: the limited options a plugin target declares it honours). Every run checks this
    before anything is built or runs.

    Raises:
        ConfigError: names the first such option, the target and what to use instead (exit code 4).
    """
    check_values(options)
    extra = set(honours)
    for f in given(options):
        targets = f.metadata.get("targets")
        if targets is None or target in targets or (target not in TARGETS and f.name in extra):
            continue
        hint = f.metadata.get("hint") or ""
        raise ConfigError(f"{flag_of(f)}: the {target} target cannot honour this option" + (f"; {hint}" if hint
                                                                                              else ""))


def node_args(options: RunOptions, paths: Mapping[str, str] | None = None) -> list[str]:
    """The ``run.local`` arguments that give a node the same run options (Slurm nodes): every given option that is
    passed on to nodes, list options once per value. ``paths`` maps a local file option value (a tools catalogue)
    to its path on the nodes."""
    words: list[str] = []
    paths = paths or {}
    for f in given(options):
        if not f.metadata.get("node"):
            continue
        value = getattr(options, f.name)
        flag = flag_of(f)
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            for item in value:
                words += [flag, paths.get(str(item), str(item))]
        else:
            words += [flag, paths.get(str(value), str(value))]
    return words
