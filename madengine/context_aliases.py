"""Context keys of other madengine generations and plans, mapped onto madengine's own before validation, so that a
context written for madengine v1 (``multi_node_args``) or for madengine v2's deployment docs (``slurm.time_limit``,
``k8s.gpu_count``, ...) either runs as written or is refused naming the key to use — multi-node intent is never
dropped.

:data:`RENAMES` are plain renames (the value is kept); the functions below handle keys whose value changes shape.
Each applied alias prints one notice (``context: 'slurm.time_limit' → 'slurm.time'``); a key given under both names
with different values is an error. :func:`normalize` is called by :func:`madengine.context.validate_context`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from madengine.errors import ConfigError

#: (section or "" for top level, old key) → (section, new key).
RENAMES: dict[tuple[str, str], tuple[str, str]] = {
    ("", "nnodes"): ("distributed", "nnodes"),
    ("", "nproc_per_node"): ("distributed", "nproc_per_node"),
    ("slurm", "time_limit"): ("slurm", "time"),
    ("slurm", "output_dir"): ("slurm", "work_dir"),
    ("k8s", "gpu_count"): ("k8s", "gpus"),
    ("k8s", "gpu_resource_name"): ("k8s", "gpu_resource"),
}
#: Keys refused with the replacement to use.
REFUSED: dict[tuple[str, str], str] = {
    ("", "shared_data"): "pass --force-mirror-local DIR (data mirrored on shared storage, as madengine v1 did), or "
                         "mount it with docker_mounts / k8s.volumes / k8s.data_pvc",
}
LAUNCHER_SECTIONS = ("torchrun", "deepspeed", "vllm", "sglang")
_GRES = re.compile(r"^gpu(?::([A-Za-z0-9_.-]+))?:(\d+)$")


def _where(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _set(ctx: dict[str, Any], section: str, key: str, value: Any, source: str, notes: list[str]) -> None:
    target = ctx if not section else ctx.setdefault(section, {})
    if not isinstance(target, dict):
        raise ConfigError(f"context key {section!r} must be a JSON object")
    if key in target and target[key] != value:
        raise ConfigError(f"context keys {source!r} ({value!r}) and {_where(section, key)!r} ({target[key]!r}) "
                          f"disagree; keep only {_where(section, key)!r}")
    target[key] = value
    notes.append(f"context: {source!r} → {_where(section, key)!r}")


def _sections(ctx: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {"": ctx}
    for name in ("slurm", "k8s", "distributed"):
        if isinstance(ctx.get(name), dict):
            found[name] = ctx[name]
    return found


def _renames(ctx: dict[str, Any], notes: list[str]) -> None:
    for (section, old), (new_section, new) in RENAMES.items():
        holder = _sections(ctx).get(section)
        if holder is not None and old in holder:
            _set(ctx, new_section, new, holder.pop(old), _where(section, old), notes)
    for (section, key), fix in REFUSED.items():
        holder = _sections(ctx).get(section)
        if holder is not None and key in holder:
            raise ConfigError(f"context key {_where(section, key)!r} is not a madengine key: {fix}")


def _slurm(ctx: dict[str, Any], notes: list[str]) -> None:
    slurm = ctx.get("slurm")
    if not isinstance(slurm, dict):
        return
    if "ntasks_per_node" in slurm:
        value = slurm.pop("ntasks_per_node")
        if str(value) != "1":
            raise ConfigError(f"context key 'slurm.ntasks_per_node' ({value}): madengine runs one task per node and "
                              "the launcher starts the ranks; set the launcher's ranks per node instead (e.g. "
                              "torchrun.nproc_per_node or distributed.nproc_per_node)")
        notes.append("context: 'slurm.ntasks_per_node' 1 is what madengine does (one task per node)")
    if "gres" in slurm:
        gres = str(slurm.pop("gres"))
        match = _GRES.match(gres)
        if not match:
            raise ConfigError(f"context key 'slurm.gres' ({gres!r}): madengine understands gpu[:type]:N; for other "
                              "resources add --gres=... to slurm.sbatch_args")
        _set(ctx, "slurm", "gpus_per_node", int(match.group(2)), "slurm.gres", notes)
        slurm["gres_gpu"] = True
        if match.group(1):
            _set(ctx, "slurm", "gpu_type", match.group(1), "slurm.gres (type)", notes)


def _k8s(ctx: dict[str, Any], notes: list[str]) -> None:
    k8s = ctx.get("k8s")
    if not isinstance(k8s, dict):
        return
    vendor = k8s.get("gpu_vendor")
    if isinstance(vendor, str) and "/" in vendor:  # an extended resource name, e.g. amd.com/gpu
        k8s.pop("gpu_vendor")
        _set(ctx, "k8s", "gpu_resource", vendor, "k8s.gpu_vendor", notes)
        k8s["gpu_vendor"] = "nvidia" if vendor.startswith("nvidia.") else "amd"
    for i, volume in enumerate(k8s.get("volumes") or []):
        if isinstance(volume, dict) and "type" in volume:
            _volume(volume, f"k8s.volumes[{i}]", notes)


def _volume(volume: dict[str, Any], where: str, notes: list[str]) -> None:
    kind = str(volume.pop("type")).replace("_", "").lower()
    if kind in ("pvc", "persistentvolumeclaim"):
        claim = volume.pop("claim_name", None) or volume.pop("claimName", None)
        if not claim:
            raise ConfigError(f"context key '{where}': type pvc needs claim_name (madengine: 'pvc')")
        volume["pvc"] = claim
    elif kind == "hostpath":
        volume["host_path"] = volume.pop("path", None) or volume.get("host_path")
    elif kind == "emptydir":
        volume["empty_dir"] = True
    elif kind in ("configmap", "secret"):
        key = "config_map" if kind == "configmap" else "secret"
        volume[key] = volume.pop("name_ref", None) or volume.get(key) or volume.get("name")
    else:
        raise ConfigError(f"context key '{where}.type' ({kind!r}): use one of pvc, host_path, empty_dir, config_map, "
                          "secret")
    notes.append(f"context: '{where}.type' → madengine's volume keys")


def _multi_node_args(ctx: dict[str, Any], notes: list[str]) -> None:
    """madengine v1's ``multi_node_args`` (RUNNER, MAD_RUNTIME_NGPUS, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT,
    HOST_LIST, NCCL/GLOO_SOCKET_IFNAME) → the torchrun launcher with the same numbers, and this node's rank and
    master in its environment (v1 ran one madengine per node, each told its NODE_RANK)."""
    args = ctx.pop("multi_node_args", None)
    if args is None:
        return
    if not isinstance(args, dict):
        raise ConfigError("context key 'multi_node_args' must be a JSON object (madengine v1: RUNNER, NNODES, ...)")
    runner = str(args.get("RUNNER", "torchrun"))
    if runner != "torchrun":
        raise ConfigError(f"context key 'multi_node_args.RUNNER' ({runner!r}): madengine launches with torchrun, "
                          "deepspeed, vllm or sglang; set \"launcher\" and its section (mpirun was never available)")
    section = {"nnodes": int(args.get("NNODES", 1)), "master_port": int(args.get("MASTER_PORT", 6006))}
    if "MAD_RUNTIME_NGPUS" in args:
        section["nproc_per_node"] = int(args["MAD_RUNTIME_NGPUS"])
    for key, value in section.items():
        _set(ctx, "torchrun", key, value, f"multi_node_args ({key})", notes)
    _set(ctx, "", "launcher", "torchrun", "multi_node_args.RUNNER", notes)
    env = ctx.setdefault("docker_env_vars", {})
    for name in ("NODE_RANK", "MASTER_ADDR", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "HOST_LIST"):
        if name in args:
            env.setdefault(name, str(args[name]))


def _backend(ctx: dict[str, Any], notes: list[str]) -> None:
    """madengine v2's ``distributed.backend`` (nccl, gloo, ...): the model's script picks its process-group backend;
    madengine hands it over as ``MAD_DISTRIBUTED_BACKEND``."""
    distributed = ctx.get("distributed")
    if isinstance(distributed, dict) and "backend" in distributed:
        backend = str(distributed.pop("backend"))
        env = ctx.setdefault("env_vars", {})
        if env.get("MAD_DISTRIBUTED_BACKEND", backend) != backend:
            raise ConfigError("context keys 'distributed.backend' and 'env_vars.MAD_DISTRIBUTED_BACKEND' disagree; "
                              "keep one")
        env["MAD_DISTRIBUTED_BACKEND"] = backend
        notes.append("context: 'distributed.backend' → environment variable MAD_DISTRIBUTED_BACKEND of the model")


def _launcher(ctx: dict[str, Any], notes: list[str]) -> None:
    """A launcher section (or ``distributed``) without ``launcher``: the section names it; ``distributed`` alone
    means torchrun (madengine v2's default)."""
    value = ctx.get("distributed")
    distributed: dict[str, Any] | None = value if isinstance(value, dict) else None
    _backend(ctx, notes)
    if ctx.get("launcher") or (distributed or {}).get("launcher"):
        return
    present = [name for name in LAUNCHER_SECTIONS if isinstance(ctx.get(name), dict)]
    if len(present) > 1:
        raise ConfigError(f"context has sections {', '.join(present)} but no \"launcher\"; say which one runs")
    if present:
        ctx["launcher"] = present[0]
        notes.append(f"context: section {present[0]!r} without \"launcher\" → launcher {present[0]!r}")
    elif distributed is not None:
        ctx["launcher"] = "torchrun"
        notes.append("context: 'distributed' without a launcher → launcher 'torchrun' (madengine v2's default)")


STEPS: tuple[Callable[[dict[str, Any], list[str]], None], ...] = (_renames, _slurm, _k8s, _multi_node_args, _launcher)


def normalize(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``raw`` with every alias applied, and one notice per alias.

    Raises:
        ConfigError: a refused key (names the replacement), an alias that disagrees with the key it stands for, or
            a value an alias cannot carry over.
    """
    import copy

    ctx = copy.deepcopy(raw)
    notes: list[str] = []
    for step in STEPS:
        step(ctx, notes)
    return ctx, notes
