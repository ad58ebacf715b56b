"""Site inventories: ``inventories/<site>.yaml`` describes a site's Slurm clusters for ``--cluster SITE/NAME``.

Format (madengine's own; documented with an example in ``inventories/README.md``)::

    site: local                     # optional; defaults to the file name
    clusters:
      loopback:                     # NAME in --cluster SITE/NAME
        login:                      # how to reach the login node (or `login: alias` = an ssh_config Host alias)
          host: 127.0.0.1
          port: 2222
          user: root
          key_filename: /var/lib/madengine/sshd/id_ed25519
          known_hosts: /var/lib/madengine/sshd/known_hosts   # default: ~/.ssh/known_hosts; unknown keys are refused
          connect_timeout: 10       # seconds (TCP connect, banner, authentication)
          command_timeout: 120      # seconds for any one remote command
        work_dir: /scratch/madengine       # remote directory for job directories (must be shared with the nodes)
        shared_storage: [/scratch]         # documentation of the shared file systems (informative)
        python: /opt/madengine/bin/python  # interpreter with madengine on the nodes (default: this one's path)
        runtime: native                    # docker (default) or native: no container on the nodes
        modules: [rocm/6.2]                # `module load` in every job
        env_vars: {HSA_FORCE_FINE_GRAIN_PCIE: "1"}
        slurm: {partition: gpu, time: "02:00:00"}   # defaults of the slurm section (see deploy/slurm/config.py)
        partitions:                        # per-partition facts
          gpu: {gpus_per_node: 8}

The schema is pydantic, like the context's (:mod:`madengine.context`): unknown keys are errors that name the key.
Inventory files are looked up in ``$MADENGINE_INVENTORY_DIR``, then ``./inventories``, then madengine's own
``inventories/`` directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from madengine.errors import ConfigError
from madengine.validation import first_error


class LoginHost(BaseModel):
    """How to reach a login node: ``host`` (name, address or ssh_config alias), optional ``user``/``port``/
    ``key_filename``, ``known_hosts`` (file verified against; default the user's), timeouts in seconds."""

    model_config = ConfigDict(extra="forbid")
    host: str
    user: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    key_filename: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = Field(default=15.0, gt=0)
    command_timeout: float = Field(default=120.0, gt=0)


class PartitionInfo(BaseModel):
    """Facts about one partition: GPUs per node (used when no ``gpus_per_node`` is given)."""

    model_config = ConfigDict(extra="forbid")
    gpus_per_node: int = Field(default=0, ge=0)


class Cluster(BaseModel):
    """One cluster of a site (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    login: LoginHost | None = None
    work_dir: str = "~/madengine"
    shared_storage: list[str] = Field(default_factory=list)
    python: str | None = None
    runtime: Literal["docker", "native"] | None = None
    modules: list[str] = Field(default_factory=list)
    env_vars: dict[str, str] = Field(default_factory=dict)
    slurm: dict[str, Any] = Field(default_factory=dict)
    partitions: dict[str, PartitionInfo] = Field(default_factory=dict)

    @field_validator("login", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        return {"host": value} if isinstance(value, str) else value

    def slurm_defaults(self) -> dict[str, Any]:
        """The cluster's contribution to the slurm section (lowest precedence)."""
        defaults = dict(self.slurm)
        if self.modules:
            defaults.setdefault("modules", list(self.modules))
        if self.env_vars:
            defaults.setdefault("env_vars", dict(self.env_vars))
        if self.python:
            defaults.setdefault("python", self.python)
        if self.runtime:
            defaults.setdefault("runtime", self.runtime)
        return defaults


class Inventory(BaseModel):
    """One site file: ``site`` and its ``clusters`` by name."""

    model_config = ConfigDict(extra="forbid")
    site: str = ""
    clusters: dict[str, Cluster]


def search_dirs() -> list[Path]:
    """Where inventories are looked up, in order."""
    dirs = []
    if os.environ.get("MADENGINE_INVENTORY_DIR"):
        dirs.append(Path(os.environ["MADENGINE_INVENTORY_DIR"]))
    dirs.append(Path.cwd() / "inventories")
    dirs.append(Path(__file__).resolve().parents[1] / "inventories")
    return dirs


def load(path: str | Path) -> Inventory:
    """Read and validate one inventory file.

    Raises:
        ConfigError: missing file, bad YAML, or a schema error naming the key path.
    """
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"inventory {p} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"inventory {p}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"inventory {p}: must be a mapping with a 'clusters' key")
    try:
        inv = Inventory.model_validate(raw)
    except ValidationError as e:
        key, message, _ = first_error(e)
        raise ConfigError(f"inventory {p}: key {key!r}: {message}") from None
    if not inv.site:
        inv.site = p.stem
    return inv


def find_cluster(spec: str, dirs: list[Path] | None = None) -> tuple[Path, Cluster]:
    """The inventory file and cluster named by ``SITE/NAME`` (``SITE`` alone when the site has one cluster).

    Raises:
        ConfigError: a malformed spec, no ``<SITE>.yaml`` in the search path (lists it), or no such cluster (lists
            the site's clusters).
    """
    site, _, name = spec.partition("/")
    if not site or "/" in name or site in (".", ".."):
        raise ConfigError(f"--cluster: {spec!r} must be SITE/NAME (inventories/SITE.yaml, cluster NAME)")
    dirs = dirs or search_dirs()
    for d in dirs:
        path = d / f"{site}.yaml"
        if path.is_file():
            break
    else:
        raise ConfigError(f"--cluster: no inventory {site}.yaml in {', '.join(str(d) for d in dirs)}; "
                          "create one (see inventories/README.md) or set MADENGINE_INVENTORY_DIR")
    inv = load(path)
    if not name and len(inv.clusters) == 1:
        name = next(iter(inv.clusters))
    if name not in inv.clusters:
        raise ConfigError(f"--cluster: {path} has no cluster {name!r}; clusters: {', '.join(sorted(inv.clusters))}")
    return path.resolve(), inv.clusters[name]
