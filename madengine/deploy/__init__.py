"""Deployment targets: where the models of a build manifest run (``local``, ``slurm``, ``k8s``, plugins).

A target is a callable ``deploy(request: DeployRequest) -> RunSummary`` registered by name; a ``honours``
attribute on it (a set of :class:`madengine.run_spec.RunOptions` names) declares the target-limited run options it
honours (others are refused before anything runs). The built-in targets
are listed in :data:`BUILTIN_TARGETS` as ``"module:function"`` strings and imported only when used (so the CLI starts
fast and a target's client library is needed only by its users). Third parties add targets through the entry-point
group ``madengine.deployments`` (name = target name, value = ``"package.module:function"``); nothing is imported at
registration time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from madengine.errors import ConfigError
from madengine.manifest import Manifest
from madengine.run_spec import RunOptions

ENTRY_POINT_GROUP = "madengine.deployments"

#: name → "module:function" of the built-in targets.
BUILTIN_TARGETS: dict[str, str] = {
    "local": "madengine.deploy.local:deploy",
    "slurm": "madengine.deploy.slurm:deploy",
    "k8s": "madengine.deploy.k8s:deploy",
}


@dataclass
class DeployRequest:
    """What every target gets: the manifest, the merged run context, perf.csv, the hub, the run options (declared
    once in :class:`madengine.run_spec.RunOptions`; ``request.timeout`` and the like read them) and the target's own
    flags.

    ``recording`` is where finished rows go besides perf.csv (:func:`madengine.results.recording.append`).
    ``target_options`` holds the target's own CLI flags (e.g. ``nodes``, ``partition`` for slurm), which win over
    the context's section for that target.
    """

    manifest: Manifest
    ctx: dict[str, Any]
    output: Path
    hub: Path | None = None
    options: RunOptions = field(default_factory=RunOptions)
    target_options: dict[str, Any] = field(default_factory=dict)
    recording: Any = None  # the run's madengine.results.recording.Recording (None: rows go to perf.csv only)

    def __getattr__(self, name: str) -> Any:
        """A run option by name (``request.timeout``, ``request.tools_config``, ...)."""
        if name.startswith("__") or name == "options":
            raise AttributeError(name)
        return getattr(self.options, name)


def available() -> dict[str, str]:
    """Every known target: built-ins plus entry points (a plugin may not replace a built-in)."""
    targets = dict(BUILTIN_TARGETS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        targets.setdefault(ep.name, ep.value)
    return targets


def resolve(name: str) -> Callable[[DeployRequest], Any]:
    """Import and return the target called ``name``.

    Raises:
        ConfigError: an unknown name (lists the available targets), or a target that fails to import (names it and
            the error).
    """
    targets = available()
    if name not in targets:
        raise ConfigError(f"context key 'deploy': unknown target {name!r}; available: {', '.join(sorted(targets))}")
    module_name, _, attr = targets[name].partition(":")
    try:
        module = importlib.import_module(module_name)
        target: Callable[[DeployRequest], Any] = getattr(module, attr)
        return target
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"deployment target {name!r} ({targets[name]}) cannot be loaded: {e}") from None
