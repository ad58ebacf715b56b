"""The ``k8s`` section of the context: one schema, and how flags, the context and the manifest combine.

Precedence, lowest to highest: the manifest's stored ``deployment_config.k8s`` < the run context's ``k8s`` < the
``run.k8s`` flags (``target_options``). Keys are merged one by one. Example context::

    {"deploy": "k8s", "gpu_vendor": "AMD",
     "k8s": {"namespace": "bench", "gpus": 8, "memory": "64Gi", "node_selector": {"gpu": "mi300x"},
             "volumes": [{"name": "data", "pvc": "datasets", "mount_path": "/data", "read_only": true}],
             "results_pvc": "bench-results", "queue_name": "gpu-queue", "ttl_seconds_after_finished": 3600}}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from madengine.errors import ConfigError
from madengine.validation import EnvVars

_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|m|k|u|n)?$")


class Volume(BaseModel):
    """One extra volume: exactly one source (``pvc``, ``config_map``, ``secret``, ``empty_dir``, ``host_path``),
    mounted at ``mount_path`` (read-only when ``read_only``; ``sub_path`` mounts one entry of it)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str | None = None
    pvc: str | None = None
    config_map: str | None = None
    secret: str | None = None
    empty_dir: bool = False
    medium: Literal["", "Memory"] = ""
    size_limit: str | None = None
    host_path: str | None = None
    host_path_type: Literal["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
                            "BlockDevice"] = ""

    @model_validator(mode="after")
    def _one_source(self) -> Volume:
        sources = [s for s in ("pvc", "config_map", "secret", "host_path") if getattr(self, s)]
        if self.empty_dir:
            sources.append("empty_dir")
        if len(sources) != 1:
            raise ValueError("give exactly one of pvc, config_map, secret, empty_dir, host_path"
                             + (f" (got {', '.join(sources)})" if sources else ""))
        if not self.mount_path.startswith("/"):
            raise ValueError(f"mount_path {self.mount_path!r} must be an absolute path")
        return self


class K8sConfig(BaseModel):
    """Every ``k8s`` key madengine reads, with its default. Units: seconds for times, Kubernetes quantities
    (``"500m"``, ``"16Gi"``) for cpu/memory/sizes."""

    model_config = ConfigDict(extra="forbid")

    # Where
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = "default"
    create_namespace: bool = False
    # What each pod gets
    gpus: int | None = Field(default=None, ge=0)  # per pod; default: the model's n_gpus
    gpu_vendor: Literal["amd", "nvidia", "none"] | None = None  # default: the context's gpu_vendor, else amd
    gpu_resource: str | None = None  # override the extended resource name (default amd.com/gpu, nvidia.com/gpu)
    cpu: str | None = None
    memory: str | None = None
    cpu_limit: str | None = None
    memory_limit: str | None = None
    shm: bool = True
    shm_size: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] | None = None
    volumes: list[Volume] = Field(default_factory=list)
    results_pvc: str | None = None
    data_pvc: str | None = None  # the claim mounted at MAD_DATAHOME for models with data (default: a local path)
    results_mount: str = "/results"
    security_context: dict[str, Any] | None = None
    sys_ptrace: bool = False
    service_account: str | None = None
    image_pull_secrets: list[str] = Field(default_factory=list)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    env_vars: EnvVars = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    queue_name: str | None = None  # Kueue LocalQueue (label kueue.x-k8s.io/queue-name)
    priority_class: str | None = None
    # The Job
    nnodes: int = Field(default=1, ge=1)
    master_port: int = Field(default=29500, ge=1, le=65535)
    backoff_limit: int = Field(default=0, ge=0)
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    scripts: Literal["configmap", "image"] = "configmap"
    image_scripts_dir: str | None = None  # with scripts=image: where the model's scripts are in the image
    # Running it
    load_images: str | None = None  # "containerd:<socket>": import local images into that containerd first
    dry_run: bool = False
    manifests_dir: str | None = None  # where --dry-run writes YAML (default: k8s-manifests next to perf.csv)
    wait: bool = True
    keep_job: bool = False
    schedule_timeout: float = Field(default=0, ge=0)  # seconds an Unschedulable pod may wait (autoscalers)


    @field_validator("cpu", "memory", "cpu_limit", "memory_limit", "shm_size")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and not _QUANTITY.match(str(value)):
            raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 4, 16Gi)")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
            raise ValueError(f"{value!r} is not a namespace name (RFC 1123: lower-case letters, digits, '-', at most "
                             "63 characters)")
        return value

    @field_validator("gpu_vendor", mode="before")
    @classmethod
    def _lower_vendor(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("load_images")
    @classmethod
    def _load_images(cls, value: str | None) -> str | None:
        if value and not (value.startswith("containerd:") and len(value) > len("containerd:")):
            raise ValueError(f"{value!r} must be 'containerd:<socket path>'")
        return value


#: run.k8s flag name → k8s key (flags not listed map to the key of the same name).
FLAG_KEYS = {"no_wait": "wait"}


def resolve(stored: dict[str, Any] | None, ctx_section: dict[str, Any] | None,
            flags: dict[str, Any] | None) -> K8sConfig:
    """The effective config: ``stored`` (manifest) < ``ctx_section`` (context) < ``flags`` (not ``None``).

    ``flags`` uses the ``run.k8s`` option names; ``no_wait=True`` means ``wait=False``; ``False`` boolean flags
    are "not given" (they cannot turn a context ``true`` off).

    Raises:
        ConfigError: an unknown key (with the closest known one) or a wrong value, naming ``k8s.<key>``.
    """
    merged: dict[str, Any] = {}
    for part in (stored, ctx_section):
        if part is not None and not isinstance(part, dict):
            raise ConfigError("context key 'k8s' must be a JSON object")
        merged.update(part or {})
    for key, value in (flags or {}).items():
        if value is None or value is False:
            continue
        if key == "no_wait":
            merged["wait"] = False
        else:
            merged[FLAG_KEYS.get(key, key)] = value
    try:
        return K8sConfig.model_validate(merged)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            import difflib

            known = list(K8sConfig.model_fields) if len(err["loc"]) == 1 else list(Volume.model_fields)
            near = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known keys: {', '.join(sorted(known))}"
            raise ConfigError(f"context key 'k8s.{loc}' is not a k8s setting{hint}") from None
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"context key 'k8s.{loc}': {msg}") from None
