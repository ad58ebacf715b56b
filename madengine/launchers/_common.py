"""Helpers every launcher module shares: reading a context section with one-line errors, reconciling the node and
GPU counts the context states in several places, port checks, and the environment every launcher renders."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from madengine.errors import ConfigError
from madengine.launchers.plan import LaunchPlan

DEFAULT_MASTER_PORT = 29500


def section(ctx: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The context's ``name`` section as a dict (``{}`` when absent).

    Raises:
        ConfigError: the section is not an object.
    """
    value = ctx.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"context key {name!r} must be an object, got {type(value).__name__}")
    return dict(value)


def check_known(sec: Mapping[str, Any], where: str, known: Iterable[str]) -> None:
    """Reject keys of ``sec`` that the launcher does not know (a typo would silently do nothing otherwise).

    Raises:
        ConfigError: names the key and the known ones.
    """
    allowed = set(known)
    for key in sec:
        if key not in allowed and not key.startswith("_"):
            import difflib

            close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(allowed))}"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def int_opt(sec: Mapping[str, Any], key: str, where: str, default: int | None = None,
            minimum: int = 1) -> int | None:
    """An integer option ≥ ``minimum`` (``default`` when absent; numeric strings are accepted).

    Raises:
        ConfigError: ``<where>.<key> must be an integer >= N (got X)``.
    """
    value = sec.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise ConfigError(f"{where}.{key} must be an integer >= {minimum} (got {value!r})")
    number = int(value)
    if number < minimum:
        raise ConfigError(f"{where}.{key} must be an integer >= {minimum} (got {number})")
    return number


def bool_opt(sec: Mapping[str, Any], key: str, where: str, default: bool = False) -> bool:
    """A boolean option (``true``/``false``).

    Raises:
        ConfigError: not a boolean.
    """
    value = sec.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key} must be true or false (got {value!r})")
    return value


def str_opt(sec: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str | None:
    """A string option (numbers are accepted and turned into strings).

    Raises:
        ConfigError: not a string.
    """
    value = sec.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}.{key} must be a string (got {value!r})")
    return str(value)


def args_opt(sec: Mapping[str, Any], key: str, where: str) -> list[str]:
    """Extra command-line words: a list of strings, or one string split like a shell would.

    Raises:
        ConfigError: another type, or a string with unbalanced quotes.
    """
    value = sec.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise ConfigError(f"{where}.{key}: cannot split {value!r} into words ({e})") from None
    if isinstance(value, list) and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
        return [str(v) for v in value]
    raise ConfigError(f"{where}.{key} must be a list of strings or one string (got {value!r})")


def env_opt(sec: Mapping[str, Any], where: str) -> dict[str, str]:
    """The section's ``env_vars`` (``{NAME: value}``, values stringified; booleans as ``1``/``0``).

    Raises:
        ConfigError: not an object, or a name that is not an environment variable name.
    """
    import re

    value = sec.get("env_vars")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.env_vars must be an object of NAME: value (got {value!r})")
    env: dict[str, str] = {}
    for name, raw in value.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(name)):
            raise ConfigError(f"{where}.env_vars: {name!r} is not a valid environment variable name")
        env[str(name)] = ("1" if raw else "0") if isinstance(raw, bool) else str(raw)
    return env


def port_opt(sec: Mapping[str, Any], key: str, where: str, default: int) -> int:
    """A TCP port option in 1-65535.

    Raises:
        ConfigError: ``<where>.<key>=N is out of range 1-65535``.
    """
    value = sec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise ConfigError(f"{where}.{key} must be a port number 1-65535 (got {value!r})")
    port = int(value)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where}.{key}={port} is out of range 1-65535")
    return port


def check_distinct_ports(ports: Mapping[str, tuple[str, int]]) -> None:
    """``ports`` maps a purpose to (the key that set it, the port); two purposes may not share a port.

    Raises:
        ConfigError: ``ports must be distinct: vllm.port=8000 and vllm.dp_rpc_port=8000``.
    """
    seen: dict[int, str] = {}
    for key, port in ports.values():
        if port in seen:
            raise ConfigError(f"ports must be distinct: {seen[port]}={port} and {key}={port}")
        seen[port] = key


def resolve_nodes(ctx: Mapping[str, Any], stated: list[tuple[str, int | None]], nodes: int | None,
                  default: int = 1) -> int:
    """The node count: every place that states one must agree (the launcher's own keys in ``stated``,
    ``distributed.nnodes``, ``slurm.nodes``, ``k8s.nnodes``, and the allocation ``nodes``); ``default`` when none does.

    Raises:
        ConfigError: two sources disagree (names both with their numbers), or a count below 1.
    """
    sources: list[tuple[str, int]] = [(k, v) for k, v in stated if v is not None]
    for name, key in (("distributed", "nnodes"), ("slurm", "nodes"), ("k8s", "nnodes")):
        value = int_opt(section(ctx, name), key, name)
        if value is not None:
            sources.append((f"{name}.{key}", value))
    if nodes is not None:
        if nodes < 1:
            raise ConfigError(f"nodes must be >= 1 (got {nodes})")
        sources.append(("allocated nodes", nodes))
    for key, value in sources[1:]:
        if value != sources[0][1]:
            first_key, first = sources[0]
            raise ConfigError(f"{first_key}={first} but {key}={value}: the node counts must agree")
    return sources[0][1] if sources else default


def resolve_gpus(ctx: Mapping[str, Any], stated: list[tuple[str, int | None]],
                 gpus_per_node: int | None) -> tuple[int | None, str]:
    """GPUs per node and where that number came from: the allocation (``gpus_per_node``) wins, else the launcher's
    own keys in ``stated``, ``slurm.gpus_per_node``, ``k8s.gpus``; ``(None, "")`` when nothing states it.

    Raises:
        ConfigError: a stated count that is not an integer >= 0.
    """
    if gpus_per_node is not None:
        if gpus_per_node < 0:
            raise ConfigError(f"gpus_per_node must be >= 0 (got {gpus_per_node})")
        return gpus_per_node, "allocated GPUs per node"
    for key, value in stated:
        if value is not None:
            return value, key
    for name, key in (("slurm", "gpus_per_node"), ("k8s", "gpus")):
        value = int_opt(section(ctx, name), key, name, minimum=0)
        if value is not None:
            return value, f"{name}.{key}"
    return None, ""


def master_port(ctx: Mapping[str, Any], sec: Mapping[str, Any], where: str, key: str = "master_port") -> int:
    """The rendezvous port: the launcher section's ``key``, else ``distributed.master_port``, else the deployment's
    (``slurm.master_port``, ``k8s.master_port``), else 29500.

    Raises:
        ConfigError: out of range.
    """
    if key in sec:
        return port_opt(sec, key, where, DEFAULT_MASTER_PORT)
    for name in ("distributed", "slurm", "k8s"):
        other = section(ctx, name)
        if "master_port" in other:
            return port_opt(other, "master_port", name, DEFAULT_MASTER_PORT)
    return DEFAULT_MASTER_PORT


def join(words: Iterable[Any]) -> str:
    """Shell-quote and join command words (``shlex.join`` over ``str`` of each)."""
    return shlex.join(str(w) for w in words)


def contract_env(plan: LaunchPlan, node_rank: int, master_addr: str, runner: str, launcher_args: str) -> dict[str, str]:
    """The variables every launcher renders (see :func:`madengine.launchers.render`)."""
    return {
        "MAD_LAUNCHER": plan.launcher,
        "MAD_LAUNCHER_STRATEGY": plan.strategy,
        "MAD_LAUNCHER_ROLE": plan.role_of(node_rank),
        "MAD_LAUNCHER_ARGS": launcher_args,
        "MAD_MULTI_NODE_RUNNER": runner,
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(plan.ports.get("master", DEFAULT_MASTER_PORT)),
        "NNODES": str(plan.nodes),
        "NODE_RANK": str(node_rank),
        "WORLD_SIZE": str(plan.world_size),
        "GPUS_PER_NODE": str(plan.gpus_per_node),
        "NPROC_PER_NODE": str(plan.procs_per_node),
    }
