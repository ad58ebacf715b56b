"""Shared pieces of the schemas (context, manifest, inventories, slurm/k8s sections): environment maps, error
messages from pydantic, and whole-number flags."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationError

from madengine.errors import ConfigError

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def stringify_numbers(value: Any) -> Any:
    """In a mapping, numbers become strings (``{"N": 8}`` → ``{"N": "8"}``): environment and build-arg values are
    text to Docker and the shell. Anything else is returned unchanged for the schema to judge."""
    if isinstance(value, Mapping):
        return {k: (str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v) for k, v in value.items()}
    return value


def check_env_names(value: dict[str, str]) -> dict[str, str]:
    """Every key must be a shell variable name (letters, digits, ``_``; not starting with a digit).

    Raises:
        ValueError: names the first bad key (pydantic turns it into a validation error).
    """
    for key in value:
        if not ENV_NAME.match(key):
            raise ValueError(f"{key!r} is not a valid environment variable name (letters, digits, _; not first a "
                             "digit)")
    return value


#: ``{NAME: value}`` with shell-safe names and text values (numbers converted).
EnvVars = Annotated[dict[str, str], BeforeValidator(stringify_numbers), AfterValidator(check_env_names)]
#: ``{key: value}`` with text values (numbers converted).
TextMap = Annotated[dict[str, str], BeforeValidator(stringify_numbers)]


def first_error(error: ValidationError) -> tuple[str, str, Any]:
    """The first error of a pydantic validation: (dotted key path, message, the offending input)."""
    err = error.errors()[0]
    return ".".join(str(x) for x in err["loc"]), err["msg"], err.get("input")


def optional_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when the file does not exist (``what`` names its role in errors).

    Raises:
        ConfigError: the file is not UTF-8 JSON, or not an object (names the file, line and column).
    """
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    except (UnicodeDecodeError, OSError) as e:
        raise ConfigError(f"{path}: cannot read it as UTF-8 text ({e})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: must hold a JSON object ({what})")
    return value


def int_flag(value: Any, flag: str) -> int | None:
    """A whole-number command-line value (``None`` stays ``None``).

    Raises:
        ConfigError: names the flag and the value.
    """
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag}: {value!r} is not a whole number") from None
