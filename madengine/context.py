"""The run context: ``--additional-context`` / ``--additional-context-file`` parsed, merged and validated.

Format (madengine's): a JSON object; for compatibility with madengine v1 scripts a Python dict literal with single
quotes is also accepted (``json.loads`` first, then ``ast.literal_eval``, as madengine v2's ``cli/validators.py``).
The file is read first and the string wins over it, key by key and recursively; a run from a build manifest starts
from the manifest's stored context and deployment config and the runtime context wins over them.

Known keys are type-checked (see :class:`ContextModel`); a key that is a near miss of a known one (``gpu_vender``,
``deplyo``) is rejected with "did you mean"; any other unknown top-level key stays legal, because madengine lets such
keys select Dockerfiles through their ``# CONTEXT {...}`` headers (e.g. ``ctx_test``).
"""

from __future__ import annotations

import ast
import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from madengine.errors import ConfigError
from madengine.validation import EnvVars, TextMap, first_error

#: Keys whose values describe *where and how* models are deployed; the build manifest stores them as
#: ``deployment_config`` (madengine v2).
DEPLOYMENT_KEYS = ("deploy", "slurm", "k8s", "distributed", "launcher", "torchrun", "deepspeed", "vllm", "sglang",
                   "env_vars", "shared_storage")



class ScriptRef(BaseModel):
    """One ``pre_scripts``/``post_scripts`` entry: a script path (relative to the hub) and its argument string."""

    model_config = ConfigDict(extra="forbid")
    path: str
    args: str = ""


class ContextModel(BaseModel):
    """Schema of the known context keys (madengine v1/v2 names); unknown keys are kept as they are.

    Values are checked, not converted, except numbers given where strings are expected (``"n": 8`` → ``"8"``), as
    madengine passes every environment and build-arg value to Docker as a string.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    gpu_vendor: Literal["AMD", "NVIDIA", "NONE"] | None = None
    guest_os: str | None = None
    deploy: str | None = None
    runtime: Literal["docker", "native"] | None = None  # how a node runs the model: in a container, or natively
    docker_env_vars: EnvVars = Field(default_factory=dict)
    docker_mounts: TextMap = Field(default_factory=dict)
    docker_build_arg: EnvVars = Field(default_factory=dict)
    docker_gpus: str | None = None
    docker_cpus: str | None = None
    MAD_CONTAINER_IMAGE: str | None = None
    model_args: str | None = None
    encapsulate_script: str | None = None
    pre_scripts: list[ScriptRef] = Field(default_factory=list)
    post_scripts: list[ScriptRef] = Field(default_factory=list)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    data: dict[str, Any] | None = None
    gen_sys_env_details: bool | None = None
    log_error_pattern_scan: bool = True
    log_error_patterns: list[str] | None = None
    log_error_benign_patterns: list[str] | None = None
    env_vars: EnvVars = Field(default_factory=dict)
    launcher: str | None = None
    slurm: dict[str, Any] | None = None
    k8s: dict[str, Any] | None = None
    distributed: dict[str, Any] | None = None
    torchrun: dict[str, Any] | None = None
    deepspeed: dict[str, Any] | None = None
    vllm: dict[str, Any] | None = None
    sglang: dict[str, Any] | None = None
    shared_storage: dict[str, Any] | str | None = None
    debug: bool | None = None
    results_db: str | None = None  # the results store's URL (madengine.results.store.resolve_url); "none": off

    @field_validator("gpu_vendor", mode="before")
    @classmethod
    def _upper_vendor(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value



KNOWN_KEYS = tuple(ContextModel.model_fields)
_NOTICES_SHOWN: set[str] = set()


def parse_context_text(text: str, source: str) -> dict[str, Any]:
    """Parse one context document (JSON object, or a Python dict literal) into a dict.

    ``source`` names it in errors (``--additional-context`` or a file path).

    Raises:
        ConfigError: not JSON nor a dict literal, or not an object at the top level.
    """
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a context; flatten it") from None
    except json.JSONDecodeError as json_error:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ConfigError(
                f"{source}: invalid JSON at line {json_error.lineno} column {json_error.colno}: {json_error.msg}; "
                "fix the JSON (keys and strings in double quotes)") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: the context must be a JSON object ({{...}}), got {type(value).__name__}")
    return value


def load_context_file(path: str | Path) -> dict[str, Any]:
    """Read and parse an ``--additional-context-file``.

    Raises:
        ConfigError: the file is missing, unreadable or not a valid context document.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--additional-context-file: {p} does not exist; check the path") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--additional-context-file: {p} is not UTF-8 text; save it as UTF-8 JSON") from None
    except OSError as e:
        raise ConfigError(f"--additional-context-file: cannot read {p}: {e.strerror}") from None
    return parse_context_text(text, str(p))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``: nested dicts merge key by key, anything else is replaced."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _near_miss(key: str) -> str | None:
    """The known key ``key`` is a near miss of (case or a small typo), or ``None``."""
    if key in KNOWN_KEYS:
        return None
    lowered = {k.lower(): k for k in KNOWN_KEYS}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.8)
    return lowered[close[0]] if close else None


def validate_context(raw: Mapping[str, Any], source: str = "context") -> dict[str, Any]:
    """Check a merged context and return it normalised (``gpu_vendor`` upper-cased, numbers in env maps as strings).

    Other generations' keys are mapped first (:mod:`madengine.context_aliases`: madengine v1's ``multi_node_args``,
    v2's ``slurm.time_limit``, ``k8s.gpu_count``, ...), with one notice each.

    Raises:
        ConfigError: a near-miss key ("did you mean"), a known key with a wrong type (names the key and the
            expected type), or a refused or conflicting alias (names the key to use).
    """
    from madengine import console, context_aliases

    raw, notes = context_aliases.normalize(dict(raw))
    for note in notes:
        if note not in _NOTICES_SHOWN:
            _NOTICES_SHOWN.add(note)
            console.progress(note)
    for key in raw:
        suggestion = _near_miss(key)
        if suggestion:
            raise ConfigError(f"{source}: unknown key {key!r}; did you mean {suggestion!r}?")
    try:
        model = ContextModel.model_validate(dict(raw))
    except ValidationError as e:
        field, message, given = first_error(e)
        raise ConfigError(f"{source}: key {field!r}: {message} (got {given!r})") from None
    _validate_sections(raw)
    normalised = dict(raw)
    for key in model.model_fields_set:
        value = getattr(model, key)
        if isinstance(value, BaseModel):
            value = value.model_dump()
        elif isinstance(value, list):
            value = [v.model_dump() if isinstance(v, BaseModel) else v for v in value]
        normalised[key] = value
    return normalised


def _validate_sections(raw: Mapping[str, Any]) -> None:
    """The ``slurm`` and ``k8s`` sections checked now, by their targets' own schemas, so that a typo inside them is
    refused before anything is built or run (imported only when the section is there)."""
    if isinstance(raw.get("slurm"), dict):
        from madengine.deploy.slurm import config as slurm_config

        slurm_config.validate(raw["slurm"])
    if isinstance(raw.get("k8s"), dict):
        from madengine.deploy.k8s import config as k8s_config

        k8s_config.resolve(None, raw["k8s"], None)


def build_context(context_json: str | None = None, context_file: str | None = None,
                  base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge ``base`` (e.g. a manifest's stored context) < the context file < the context string, then validate.

    Returns:
        The validated context dict (plain JSON types).

    Raises:
        ConfigError: see :func:`parse_context_text`, :func:`load_context_file` and :func:`validate_context`.
    """
    merged: dict[str, Any] = dict(base or {})
    if context_file:
        merged = deep_merge(merged, load_context_file(context_file))
    if context_json:
        merged = deep_merge(merged, parse_context_text(context_json, "--additional-context"))
    return validate_context(merged)


def deployment_config(ctx: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a context that the build manifest stores as ``deployment_config`` (deploy target and its keys)."""
    config = {key: ctx[key] for key in DEPLOYMENT_KEYS if key in ctx}
    config.setdefault("deploy", "local")
    return config
