"""Site task collections: ops staff's own Invoke tasks, mounted under ``site.<name>`` in madengine's namespace.

Sources, in this order (a later one with the same name is skipped with a warning):

1. installed packages declaring an entry point in the group ``madengine.site_tasks`` (name = site name, value =
   ``"package.module:collection"`` or ``"package.module"`` for a whole module of tasks);
2. task files listed in configuration: ``madengine: {site_tasks: [path, ...]}`` in the project ``invoke.yaml`` (the
   current directory's), or ``MADENGINE_SITE_TASKS`` (paths separated by ``:``); the site name is the file's stem,
   or its directory's name for a ``tasks.py``;
3. ``inventories/<site>/tasks.py`` under the current directory (a site's tasks next to its inventory).

A collection that fails to load is reported as ONE warning line on stderr (the file or entry point and the error);
the rest of the CLI keeps working. Site tasks use :mod:`madengine.api` for the building blocks (context, discovery,
build, deployment, perf rows, reports).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from invoke import Collection

ENTRY_POINT_GROUP = "madengine.site_tasks"


def _warn(message: str) -> None:
    sys.stderr.write(f"madengine: warning: {message}\n")


def _as_collection(obj: Any, name: str) -> Collection:
    if isinstance(obj, Collection):
        return obj
    if isinstance(obj, ModuleType):
        found = getattr(obj, "ns", None) or getattr(obj, "namespace", None)
        return found if isinstance(found, Collection) else Collection.from_module(obj, name=name)
    raise TypeError(f"expected an invoke Collection or a module, got {type(obj).__name__}")


def _load_file(path: Path, name: str) -> Collection:
    module_name = f"madengine_site_{name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return _as_collection(module, name)


def configured_files(cwd: Path) -> list[Path]:
    """Task files named by ``MADENGINE_SITE_TASKS`` and by ``madengine.site_tasks`` in ``<cwd>/invoke.yaml``
    (relative paths are relative to that file's directory)."""
    files = [Path(p) for p in os.environ.get("MADENGINE_SITE_TASKS", "").split(":") if p]
    config = cwd / "invoke.yaml"
    if config.is_file():
        import yaml

        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            _warn(f"{config}: not valid YAML ({str(e).splitlines()[0]}); its site_tasks are not loaded")
            data = {}
        section = data.get("madengine") if isinstance(data, dict) else None
        listed = section.get("site_tasks") or [] if isinstance(section, dict) else []
        files += [p if p.is_absolute() else cwd / p for p in map(Path, listed)]
    return files


def _site_name(path: Path) -> str:
    return path.parent.name if path.name == "tasks.py" else path.stem


def _sources(cwd: Path) -> Iterator[tuple[str, str, Any]]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        yield ep.name, f"entry point {ep.name} = {ep.value}", ep
    for path in configured_files(cwd):
        yield _site_name(path), str(path), path
    inventories = cwd / "inventories"
    if inventories.is_dir():
        for path in sorted(inventories.glob("*/tasks.py")):
            yield _site_name(path), str(path), path


def site_collection(cwd: Path | None = None) -> Collection | None:
    """The ``site`` collection with one sub-collection per site, or ``None`` when no site tasks exist.

    Never raises: a site that fails to load becomes one warning line.
    """
    cwd = cwd or Path.cwd()
    site = Collection("site")
    for name, origin, source in _sources(cwd):
        if name in site.collections:
            _warn(f"site tasks {name!r} from {origin} skipped: a site of that name is already loaded")
            continue
        try:
            if isinstance(source, Path):
                if not source.is_file():
                    raise FileNotFoundError(f"{source} does not exist")
                collection = _load_file(source, name)
            else:
                collection = _as_collection(source.load(), name)
            site.add_collection(collection, name=name)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - a broken site plugin must not break the CLI
            detail = str(e).splitlines()[0] if str(e) else ""
            _warn(f"site tasks {name!r} from {origin} not loaded: {type(e).__name__}: {detail}")
    return site if site.collections else None
