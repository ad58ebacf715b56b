"""madengine's configuration under the one top-level Invoke config key ``madengine``.

Precedence, lowest to highest: :data:`DEFAULTS` (declared on the root namespace, so Invoke knows the keys) <
``/etc/invoke.yaml`` < ``~/.invoke.yaml`` < the project ``invoke.yaml`` (``madengine:`` section) <
``INVOKE_MADENGINE_<KEY>`` environment variables (Invoke's own mechanism) < ``MADENGINE_<KEY>`` environment variables
< command-line flags. ``<KEY>`` is the key in upper case, e.g. ``MADENGINE_HUB=/srv/MAD``. madengine v1/v2's
``MODEL_DIR`` (the hub directory) is read as the hub too, below ``MADENGINE_HUB``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

from madengine.errors import ConfigError

#: Every setting, with its default. Types matter: environment values are cast to the default's type.
DEFAULTS: dict[str, Any] = {
    "hub": ".",                           # model hub root (MAD checkout); default: the current directory
    "output": "perf.csv",                 # perf.csv path; logs are written next to it
    "manifest_output": "build_manifest.json",
    "registry": "",                       # push built images to this registry (host:port[/project])
    "timeout": -1,                        # seconds for the run step; -1 = the model's timeout, 0 = none
    "live_output": False,
    "additional_context_file": "",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _cast(key: str, raw: str, default: Any, source: str | None = None) -> Any:
    where = source or f"MADENGINE_{key.upper()}"
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ConfigError(f"{where}: {raw!r} is not a boolean; use true or false")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{where}: {raw!r} is not a whole number") from None
    return raw


#: Keys under ``madengine:`` that are not settings of the run tasks but are read elsewhere (madengine.plugins).
OTHER_KEYS = ("site_tasks",)


def _check_config_value(key: str, value: Any) -> Any:
    """A ``madengine.<key>`` value from invoke.yaml, type-checked against :data:`DEFAULTS`.

    Raises:
        ConfigError: an unknown key that is a near miss of a known one, or a value of the wrong type.
    """
    if key not in DEFAULTS:
        if key not in OTHER_KEYS:
            close = difflib.get_close_matches(key, [*DEFAULTS, *OTHER_KEYS], n=1, cutoff=0.75)
            if close:
                raise ConfigError(f"invoke.yaml madengine.{key}: unknown setting; did you mean {close[0]!r}?")
        return value
    default = DEFAULTS[key]
    if isinstance(value, str) and not isinstance(default, str):
        return _cast(key, value, default, f"invoke.yaml madengine.{key}")
    if isinstance(default, bool) and not isinstance(value, bool) or (
            isinstance(default, int) and not isinstance(default, bool) and (
            not isinstance(value, int) or isinstance(value, bool))) or (
            isinstance(default, str) and not isinstance(value, str)):
        raise ConfigError(f"invoke.yaml madengine.{key}: expected {type(default).__name__}, got {value!r}")
    return value


def resolve(config: Mapping[str, Any] | None, **flags: Any) -> dict[str, Any]:
    """Merge the Invoke config section, ``MADENGINE_*`` variables and the flags that were given (not ``None``).

    Args:
        config: ``c.config.madengine`` (may be ``None`` outside Invoke).
        flags: task flags; ``None`` means "not given on the command line".

    Returns:
        A dict with every key of :data:`DEFAULTS` plus the given flags.

    Raises:
        ConfigError: a ``MADENGINE_*`` value of the wrong type.
    """
    merged = dict(DEFAULTS)
    if config:
        for key in config:
            merged[key] = _check_config_value(key, config[key])
    if os.environ.get("MODEL_DIR"):  # madengine v1/v2's name for the hub directory
        merged["hub"] = os.environ["MODEL_DIR"]
    for key, default in DEFAULTS.items():
        env = os.environ.get(f"MADENGINE_{key.upper()}")
        if env is not None:
            merged[key] = _cast(key, env, default)
    merged.update({k: v for k, v in flags.items() if v is not None})
    return merged


#: The longest limit a timeout may name (seconds): a year. Longer means "no limit" (0); clocks overflow far beyond.
MAX_TIMEOUT = 366 * 24 * 3600


def parse_timeout(value: Any) -> int | None:
    """``--timeout`` as seconds: ``None``/negative → ``None`` (use the model's), ``0`` → no limit.

    Raises:
        ConfigError: not a whole number.
    """
    if value is None or value == "":
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--timeout: {value!r} is not a whole number of seconds (0 = no limit)") from None
    if seconds > MAX_TIMEOUT:
        raise ConfigError(f"--timeout: {seconds} s is more than a year ({MAX_TIMEOUT} s); give 0 for no limit")
    return None if seconds < 0 else seconds
