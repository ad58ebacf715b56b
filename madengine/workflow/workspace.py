"""The per-model workspace (mounted at ``/myworkspace``): packaged and hub ``scripts/common``, the model's scripts
and every script a step names; and the artifacts collected from it afterwards (``<model>_env.csv``, tool outputs)."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from madengine.errors import ConfigError
from madengine.workflow.plan import RunRequest, _script_ref, env_csv_name

#: Per-run directory next to perf.csv: ``<RUNS_DIR>/<run id>/`` holds each model's run log and artifacts.
RUNS_DIR = "madengine-runs"
#: madengine's own directories next to perf.csv (work, job state; per-run results): never copied into a workspace.
OWN_DIRS = (".madengine", RUNS_DIR)


def sources(req: RunRequest, scripts_dir: Path, model_dir: str, *, model_scripts: bool = True) -> list[tuple[Path, str]]:
    """What the workspace is made of, in copy order (later entries win): ``(source file or directory, path relative
    to the workspace)``. madengine's packaged ``scripts/common``, the hub's own ``scripts/common`` over it (a hub can
    override a packaged script), the model's scripts directory as ``<model dir>`` (unless ``model_scripts`` is
    false: they are in the image), and every script a step names (pre/post scripts, tools, the custom data script).

    Raises:
        ConfigError: the model's scripts directory is missing, or a named script exists neither in the hub nor among
            the packaged common scripts.
    """
    packaged = Path(str(resources.files("madengine").joinpath("data/scripts/common")))
    found: list[tuple[Path, str]] = [(packaged, "scripts/common")]
    if (req.hub / "scripts" / "common").is_dir():
        found.append((req.hub / "scripts" / "common", "scripts/common"))
    source = req.hub / scripts_dir
    if model_scripts:
        if not source.is_dir():
            raise ConfigError(f"model {req.model.name!r}: scripts directory {source} does not exist (field "
                              "'scripts'; if the hub moved since the build, pass --hub)")
        found.append((source, model_dir))
    refs = [ref.path for ref in list(req.tools.pre_scripts) + list(req.tools.post_scripts)] + [
        _script_ref(s).path for key in ("pre_scripts", "post_scripts") for s in req.ctx.get(key) or []]
    if req.data and req.data.script:
        refs.append(req.data.script)
    for relative in refs:
        if (req.hub / relative).is_file():
            found.append((req.hub / relative, relative))
        elif not relative.startswith("scripts/common/") or not (packaged / relative[len("scripts/common/"):]).is_file():
            raise ConfigError(f"script {relative!r} (pre_scripts/post_scripts/tools) exists neither in the hub "
                              f"({req.hub}) nor among madengine's packaged scripts/common")
    return found


def files(found: list[tuple[Path, str]]) -> dict[str, tuple[bytes, int]]:
    """The workspace as ``relative path → (content, mode)`` (for a pod's ConfigMap); symlinks followed,
    ``__pycache__`` and ``*.pyc`` skipped, later sources win."""
    result: dict[str, tuple[bytes, int]] = {}
    for source, relative in found:
        paths = [(source, relative)] if source.is_file() else [
            (p, f"{relative}/{p.relative_to(source).as_posix()}") for p in sorted(source.rglob("*")) if p.is_file()]
        for path, rel in paths:
            if {"__pycache__", *OWN_DIRS} & set(Path(rel).parts) or path.suffix == ".pyc":
                continue
            result[rel] = (path.read_bytes(), 0o755 if path.stat().st_mode & 0o111 else 0o644)
    return result


def prepare_workspace(req: RunRequest, workspace: Path, scripts_dir: Path, model_dir: str) -> None:
    """Lay out the workspace directory from :func:`sources` (an existing one is replaced).

    Raises:
        ConfigError: a missing scripts directory.
        MadEngineError: the layout could not be written (a full disk: names the directory); nothing is left behind.
    """
    if workspace.exists():
        shutil.rmtree(workspace)
    try:
        for source, relative in sources(req, scripts_dir, model_dir):
            target = workspace / relative
            if source.is_dir():  # madengine's own run directories (an --output inside the scripts) stay out
                shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*OWN_DIRS))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    except (OSError, shutil.Error) as e:
        shutil.rmtree(workspace, ignore_errors=True)
        from madengine.workflow.output import disk_error

        first = e if isinstance(e, OSError) and not isinstance(e, shutil.Error) else _first_os_error(e)
        raise disk_error(workspace, first, "the model's workspace") from None


def _reserved(name: str) -> bool:
    """Names madengine writes or reads next to perf.csv (journals, locks, manifests, logs)."""
    return name.endswith((".pending", ".lock", ".live.log", ".prev")) or name.startswith("build_manifest")


def _copy_masked(source: Path, target: Path, req: RunRequest) -> None:
    """Copy ``source`` to ``target`` (a new file: an existing link is not followed) with every secret masked."""
    if not req.masker:
        shutil.copyfile(source, target, follow_symlinks=False)
        return
    masker = type(req.masker)(req.masker.secrets)
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(masker.feed(chunk))
        dst.write(masker.flush())


def _first_os_error(error: shutil.Error) -> OSError:
    """The first failure of a ``copytree`` (its ``args[0]`` lists ``(source, destination, reason)``)."""
    import errno

    entries = error.args[0] if error.args and isinstance(error.args[0], list) else []
    reason = str(entries[0][2]) if entries else str(error)
    code = errno.ENOSPC if "No space left" in reason else None
    return OSError(code, reason)


def collect_artifacts(req: RunRequest, workspace: Path, model_dir: Path, log_base: str) -> None:
    """Copy ``<model>_env.csv`` and the files the run wrote at the top of its workspace (madengine v2's working
    directory: a script writing ``../perf_x.csv`` puts it there) next to perf.csv, and the tools' outputs, the
    ``multiple_results`` CSV (all its columns) and the step script (``steps.sh``, to replay the run by hand) into
    the per-run directory ``madengine-runs/<run id>/<log base>/``. A top-level file never replaces a file already
    next to perf.csv (``<model>_env.csv`` excepted, which each run renews) nor takes one of madengine's names: it goes
    to the per-run directory instead. Copies pass through the run's masker (credentials never land in results).
    """

    env_csv = env_csv_name(req.model.name)
    for found in sorted(p for p in workspace.iterdir() if p.is_file() and not p.is_symlink()):
        target = req.log_dir / found.name
        if found.name != env_csv and (os.path.lexists(target) or _reserved(found.name)):
            # never over a file already next to perf.csv (results, manifests, logs, their links) nor madengine's
            # own names: the run's directory takes it instead
            target = req.log_dir / RUNS_DIR / req.run_id / log_base / found.name
            target.parent.mkdir(parents=True, exist_ok=True)
        elif found.name == env_csv and target.is_symlink():
            target.unlink()
        _copy_masked(found, target, req)
        req.artifacts.append(target)
    dest = req.log_dir / RUNS_DIR / req.run_id / log_base
    multiple = req.model.multiple_results
    source = next((p for p in (model_dir / multiple, workspace / multiple) if multiple and p.is_file()), None)
    if source is not None:
        dest.mkdir(parents=True, exist_ok=True)
        _copy_masked(source, dest / source.name, req)
    steps = workspace / ".madengine" / "steps.sh"
    if steps.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(steps, dest / "steps.sh")
    for pattern in req.tools.outputs:
        for found in sorted(model_dir.glob(pattern)):
            if found.is_file():
                target = dest / found.relative_to(model_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                _copy_masked(found, target, req)
                req.artifacts.append(target)
