"""``--dry-run`` output: the objects madengine would create, as YAML files (one per object), exactly the dicts the
API would receive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from madengine.deploy.k8s import client
from madengine.workflow.credentials import MASK


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the entry script) as ``|`` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(obj: Any) -> str:
    """One object as YAML (the dict the API receives: camelCase, ``None`` dropped; multi-line strings as ``|``).
    A Secret's values are written as ``******``: secrets never reach a file."""
    data = client.serialize(obj)
    if data.get("kind") == "Secret":
        for key in ("stringData", "data"):
            if data.get(key):
                data[key] = {k: MASK for k in data[key]}
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def write_manifests(objects: list[Any], directory: Path) -> list[Path]:
    """``--dry-run``: one YAML file per object, ``NN-<kind>-<name>.yaml`` in ``directory``. Returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, obj in enumerate(objects):
        path = directory / f"{i:02d}-{obj.kind.lower()}-{obj.metadata.name}.yaml"
        path.write_text(to_yaml(obj), encoding="utf-8")
        paths.append(path)
    return paths
