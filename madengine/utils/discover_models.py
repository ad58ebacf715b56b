"""Running a hub's ``scripts/<dir>/get_models_json.py`` (madengine's dynamic model discovery).

This is also the import path MAD files use: ``from madengine.utils.discover_models import CustomModel`` (madengine
v2; v1 files fall back to ``madengine.tools.discover_models``). :class:`CustomModel` is defined in
:mod:`madengine.hub` and re-exported here unchanged. The file contract is described in :mod:`madengine.hub`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

from madengine.errors import ConfigError
from madengine.hub import CustomModel

__all__ = ["CustomModel", "run_get_models_json"]


def run_get_models_json(path: Path, rel: str, hub_root: Path) -> list[dict[str, Any]]:
    """Import the ``get_models_json.py`` at ``path`` and return its ``list_models()`` as a list of dicts.

    ``rel`` is the path shown in messages (``scripts/<dir>/get_models_json.py``). Items may be :class:`CustomModel`
    instances (or other dataclass instances: ``update_model()`` is called when present, then ``to_dict()`` or
    ``dataclasses.asdict``) or dicts. The file's directory is on ``sys.path`` only while it runs, and modules it
    imported from inside ``hub_root`` are forgotten afterwards, so two directories' helpers cannot collide.

    Raises :class:`ConfigError` naming the file when ``list_models`` is missing, an item has another type, or the
    file raises anything (its exception's type and first message line are quoted).
    """
    import madengine.tools.discover_models  # noqa: F401  (the v1 import path, loaded once and kept)

    folder = str(path.parent)
    mod_name = "_madengine_get_models_json_" + re.sub(r"\W", "_", path.parent.name)
    before = set(sys.modules)
    sys.path.insert(0, folder)
    # whatever the hub's code prints goes to stderr: stdout carries madengine's results (discover --json)
    quiet = contextlib.redirect_stdout(sys.stderr)
    quiet.__enter__()
    try:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{rel}: cannot be imported as a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module  # dataclasses defined in the file look their module up here
        spec.loader.exec_module(module)
        list_models = getattr(module, "list_models", None)
        if not callable(list_models):
            raise ConfigError(f"{rel}: must define list_models() returning CustomModel objects or dicts")
        out = []
        for obj in list_models():
            if isinstance(obj, dict):
                out.append(dict(obj))
            elif isinstance(obj, CustomModel) or (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
                update = getattr(obj, "update_model", None)
                if callable(update):
                    update()
                to_dict = getattr(obj, "to_dict", None)
                out.append(dict(to_dict()) if callable(to_dict) else dataclasses.asdict(obj))
            else:
                raise ConfigError(f"{rel}: list_models() returned a {type(obj).__name__}; "
                                  "expected madengine.utils.discover_models.CustomModel or dict")
        return out
    except ConfigError:
        raise
    except (Exception, SystemExit) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError(f"{rel}: {type(exc).__name__}{': ' + first if first else ''}") from exc
    finally:
        quiet.__exit__(None, None, None)
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
        root = str(hub_root) + os.sep
        for name in set(sys.modules) - before:
            file = getattr(sys.modules[name], "__file__", None) or ""
            if name == mod_name or (file.startswith(root) and not name.startswith("madengine.")):
                del sys.modules[name]
