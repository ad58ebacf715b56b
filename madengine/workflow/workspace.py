"""The per-model workspace (mounted at ``/myworkspace``): packaged and hub ``scripts/common``, the model's scripts
and every script a step names; and the artifacts collected from it afterwards (``<model>_env.csv``, tool outputs)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from madengine.errors import ConfigError
from madengine.workflow.plan import RunRequest, _script_ref, env_csv_name


def install_common_scripts(workspace: Path, hub: Path) -> None:
    """Copy madengine's packaged ``scripts/common`` into the workspace, then the hub's own ``scripts/common`` (if
    any) over it, so a hub can override a packaged script."""
    packaged = resources.files("madengine").joinpath("data/scripts/common")
    with resources.as_file(packaged) as source:
        shutil.copytree(source, workspace / "scripts" / "common", dirs_exist_ok=True)
    if (hub / "scripts" / "common").is_dir():
        shutil.copytree(hub / "scripts" / "common", workspace / "scripts" / "common", dirs_exist_ok=True)


def _copy_from_hub(hub: Path, relative: str, workspace: Path) -> None:
    source = hub / relative
    if source.is_file():
        (workspace / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, workspace / relative)
    elif not (workspace / relative).is_file():
        raise ConfigError(f"script {relative!r} (pre_scripts/post_scripts/tools) exists neither in the hub "
                          f"({hub}) nor among madengine's packaged scripts/common")


def prepare_workspace(req: RunRequest, workspace: Path, scripts_dir: Path, model_dir: str) -> None:
    """Lay out the workspace: packaged and hub common scripts, the model's scripts, every script a step names."""
    if workspace.exists():
        shutil.rmtree(workspace)
    source = req.hub / scripts_dir
    if not source.is_dir():
        raise ConfigError(f"model {req.model.get('name')!r}: scripts directory {source} does not exist (field "
                          "'scripts'; if the hub moved since the build, pass --hub)")
    install_common_scripts(workspace, req.hub)
    shutil.copytree(source, workspace / model_dir, dirs_exist_ok=True)
    refs = list(req.tools.pre_scripts) + list(req.tools.post_scripts) + [
        _script_ref(s) for key in ("pre_scripts", "post_scripts") for s in req.ctx.get(key) or []]
    for ref in refs:
        _copy_from_hub(req.hub, ref.path, workspace)
    if req.data and req.data.script:
        _copy_from_hub(req.hub, req.data.script, workspace)


def collect_artifacts(req: RunRequest, workspace: Path, model_dir: Path, log_base: str) -> None:
    """Copy ``<model>_env.csv`` next to perf.csv and the tools' outputs into the per-run directory."""
    env_csv = workspace / env_csv_name(req.model["name"])
    if env_csv.is_file():
        shutil.copy2(env_csv, req.log_dir / env_csv.name)
        req.artifacts.append(req.log_dir / env_csv.name)
    dest = req.log_dir / "madengine-runs" / req.run_id / log_base
    for pattern in req.tools.outputs:
        for found in sorted(model_dir.glob(pattern)):
            if found.is_file():
                target = dest / found.relative_to(model_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(found, target)
                req.artifacts.append(target)
