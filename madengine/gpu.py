"""GPU detection on the host and the GPU part of a container's configuration.

Detection follows madengine: NVIDIA when ``nvidia-smi`` answers, AMD when ``amd-smi``/``rocm-smi``/``rocminfo`` is on
PATH or ``/dev/kfd`` exists, else none. AMD GPUs reach a container as ``/dev/kfd`` plus the DRM render node of each
requested GPU (``/dev/dri/renderD<minor>``, minors read from the KFD topology in
``/sys/class/kfd/kfd/topology/nodes/*/properties``); NVIDIA GPUs as a Docker device request.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from madengine.errors import ConfigError

KFD_TOPOLOGY = Path("/sys/class/kfd/kfd/topology/nodes")


@dataclass(frozen=True)
class HostGpus:
    """What the host offers: ``vendor`` is AMD, NVIDIA or NONE; ``count`` GPUs; ``architecture`` e.g. gfx942."""

    vendor: str
    count: int = 0
    architecture: str = ""
    render_minors: tuple[int, ...] = ()


@dataclass
class GpuAssignment:
    """The GPUs one container gets: indices, and the engine settings that expose them."""

    vendor: str
    indices: list[int]
    architecture: str
    devices: list[str] = field(default_factory=list)
    group_add: list[str] = field(default_factory=list)
    nvidia_device_ids: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Number of GPUs given to the container."""
        return len(self.indices)


def _run(cmd: list[str], timeout: float = 20.0) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _amd_render_minors() -> list[int]:
    minors: list[int] = []
    if not KFD_TOPOLOGY.is_dir():
        return minors
    for node in sorted(KFD_TOPOLOGY.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0):
        try:
            props = dict(line.split(maxsplit=1) for line in (node / "properties").read_text().splitlines()
                         if " " in line)
        except OSError:
            continue
        if int(props.get("simd_count", "0")) > 0 and "drm_render_minor" in props:
            minors.append(int(props["drm_render_minor"]))
    return minors


def detect() -> HostGpus:
    """Detect the host's GPUs (cheap checks first; smi tools only when present). Never raises."""
    if shutil.which("nvidia-smi"):
        names = [n for n in _run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]).splitlines() if n]
        if names:
            parts = names[0].split()
            return HostGpus("NVIDIA", len(names), parts[1] if len(parts) > 1 else parts[0])
    amd_tools = any(shutil.which(t) for t in ("amd-smi", "rocm-smi", "rocminfo"))
    if amd_tools or os.path.exists("/dev/kfd"):
        minors = _amd_render_minors()
        arch = ""
        if shutil.which("rocminfo"):
            match = re.search(r"\b(gfx[0-9a-f]+)\b", _run(["rocminfo"]))
            arch = match.group(1) if match else ""
        if minors:
            return HostGpus("AMD", len(minors), arch, tuple(minors))
    return HostGpus("NONE")


def parse_gpu_list(spec: str, key: str = "docker_gpus") -> list[int]:
    """Parse madengine's ``docker_gpus``/``docker_cpus`` syntax ("0,2-4,7") into sorted unique indices.

    Raises:
        ConfigError: malformed items (names the context ``key``).
    """
    indices: set[int] = set()
    for item in filter(None, (s.strip() for s in spec.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match:
            raise ConfigError(f"context key {key!r}: bad item {item!r}; use e.g. \"0,2-4,7\"")
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        indices.update(range(lo, hi + 1))
    return sorted(indices)


def assign(ctx: Mapping[str, Any], n_gpus: str, host: HostGpus) -> GpuAssignment:
    """Choose the GPUs for one model run.

    Args:
        ctx: validated context (``gpu_vendor``, ``docker_gpus``, ``docker_env_vars.MAD_SYSTEM_GPU_ARCHITECTURE``).
        n_gpus: the model's ``n_gpus`` ("-1" = all the host has).
        host: detected host GPUs.

    Raises:
        ConfigError: a GPU run on a host without GPUs (unless ``"gpu_vendor": "NONE"``), or more GPUs requested than
            the host has.
    """
    vendor = ctx.get("gpu_vendor") or (host.vendor if host.vendor != "NONE" else "")
    arch = str(ctx.get("docker_env_vars", {}).get("MAD_SYSTEM_GPU_ARCHITECTURE") or host.architecture)
    if vendor == "NONE":
        return GpuAssignment("NONE", [], arch)
    if host.vendor == "NONE":
        raise ConfigError(
            f"no {vendor + ' ' if vendor else ''}GPU found on this host; for a CPU-only run pass "
            "--additional-context '{\"gpu_vendor\": \"NONE\"}'")
    available = parse_gpu_list(ctx["docker_gpus"]) if ctx.get("docker_gpus") else list(range(host.count))
    try:
        wanted = int(n_gpus)
    except ValueError:
        raise ConfigError(f"models.json field 'n_gpus': {n_gpus!r} is not an integer") from None
    if wanted < 0:
        wanted = len(available)
    if wanted > len(available):
        raise ConfigError(f"the model needs {wanted} GPUs but {len(available)} are available "
                          f"(docker_gpus={ctx.get('docker_gpus', 'all')}); lower n_gpus or free GPUs")
    indices = available[:wanted]
    result = GpuAssignment(vendor, indices, arch)
    if vendor == "AMD":
        result.devices = ["/dev/kfd"] + [f"/dev/dri/renderD{host.render_minors[i]}" for i in indices
                                         if i < len(host.render_minors)]
        result.group_add = ["video"]
    else:
        result.nvidia_device_ids = [str(i) for i in indices]
    return result
