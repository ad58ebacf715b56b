"""Profiling and tracing tools: the packaged catalogue (``madengine/data/tools.yaml``), site catalogues, and how a
context's ``tools`` list turns into extra steps around the model.

A context entry is ``{"name": "rocprof"}``, optionally overriding ``cmd`` and adding ``env_vars`` (merged over the
catalogue's). Several tools stack as madengine stacks them: pre-scripts in reverse order, commands nested (the last
tool listed is the outermost wrapper), post-scripts in order. ``outputs`` (globs relative to the model dir) are
collected next to perf.csv after the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from madengine.context import ScriptRef
from madengine.errors import ConfigError


class Tool(BaseModel):
    """One catalogue entry (all fields optional)."""

    model_config = ConfigDict(extra="forbid")
    description: str = ""
    cmd: str = ""
    env_vars: dict[str, str] = Field(default_factory=dict)
    pre_scripts: list[ScriptRef] = Field(default_factory=list)
    post_scripts: list[ScriptRef] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)


@dataclass
class ToolPlan:
    """The tools' combined effect on one model run."""

    names: list[str] = field(default_factory=list)
    pre_scripts: list[ScriptRef] = field(default_factory=list)
    post_scripts: list[ScriptRef] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    prefix: str = ""

    def wrap(self, command: str) -> str:
        """``command`` with the tools' command prefixes in front (outermost first)."""
        return f"{self.prefix} {command}".strip() if self.prefix else command


def _parse_catalogue(text: str, source: str) -> dict[str, Tool]:
    try:
        raw = yaml.safe_load(text) if not source.endswith(".json") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ConfigError(f"{source}: not valid YAML/JSON ({str(e).splitlines()[0]})") from None
    if raw is None:
        return {}
    if isinstance(raw, Mapping) and "tools" in raw and isinstance(raw["tools"], Mapping):
        raw = raw["tools"]  # madengine's tools.json wraps entries in {"tools": {...}}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: must map tool names to their settings")
    tools = {}
    for name, body in raw.items():
        try:
            tools[str(name)] = Tool.model_validate(body or {})
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise ConfigError(f"{source}: tool {name!r}: field {loc!r}: {err['msg']}") from None
    return tools


def load_catalogue(site_files: Sequence[str | Path] = ()) -> dict[str, Tool]:
    """The packaged catalogue, updated by each site file in turn (a site entry replaces a packaged one).

    Raises:
        ConfigError: a site file is missing or malformed (names the file, tool and field).
    """
    packaged = resources.files("madengine").joinpath("data/tools.yaml").read_text(encoding="utf-8")
    tools = _parse_catalogue(packaged, "madengine/data/tools.yaml")
    for site in site_files:
        path = Path(site)
        if not path.is_file():
            raise ConfigError(f"--tools-config: {path} does not exist")
        tools.update(_parse_catalogue(path.read_text(encoding="utf-8"), str(path)))
    return tools


def plan(selected: Sequence[Mapping[str, Any]], catalogue: Mapping[str, Tool]) -> ToolPlan:
    """Stack the context's ``tools`` entries into one :class:`ToolPlan`.

    Raises:
        ConfigError: an entry without ``name``, an unknown tool (lists the known ones), or bad overrides.
    """
    result = ToolPlan()
    prefixes: list[str] = []
    for index, entry in enumerate(selected):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if not name:
            raise ConfigError(f"context key 'tools[{index}]': needs a \"name\"")
        if name not in catalogue:
            raise ConfigError(f"context key 'tools[{index}]': unknown tool {name!r}; known: "
                              f"{', '.join(sorted(catalogue))} (add site tools with --tools-config)")
        tool = catalogue[name]
        extra = {k: v for k, v in entry.items() if k != "name"}
        try:
            tool = Tool.model_validate(tool.model_dump() | extra | {
                "env_vars": tool.env_vars | {k: str(v) for k, v in (extra.get("env_vars") or {}).items()}})
        except ValidationError as e:
            raise ConfigError(f"context key 'tools[{index}]' ({name}): {e.errors()[0]['msg']}") from None
        result.names.append(name)
        result.pre_scripts = list(tool.pre_scripts) + result.pre_scripts
        result.post_scripts += tool.post_scripts
        result.env.update(tool.env_vars)
        result.outputs += tool.outputs
        if tool.cmd:
            prefixes.insert(0, tool.cmd)
    result.prefix = " ".join(prefixes)
    return result
