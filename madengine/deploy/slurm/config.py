"""The ``slurm`` section of the context: its schema, its precedence, and Slurm time limits.

Precedence, lowest to highest: the inventory cluster's defaults (``--cluster``) < the build manifest's stored
``deployment_config.slurm`` < the run context's ``slurm`` key < the ``inv run.slurm`` flags. The manifest and the
context are merged before a target runs (:meth:`madengine.manifest.Manifest.stored_context`), so this module only
layers the inventory under and the flags over them (:func:`resolve`).

Values that end up on ``#SBATCH`` lines are checked against a conservative character set (sbatch parses those lines
itself, so shell quoting cannot protect them): a value with a space, quote, ``$`` or newline is an error naming the
key. Everything else that reaches the job script is shell-quoted by the renderer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from madengine.errors import ConfigError
from madengine.validation import EnvVars

_SBATCH_VALUE = re.compile(r"^[A-Za-z0-9_.,:+@%=/\[\]\-]+$")
_TIME = re.compile(r"^(?:(?P<days>\d+)-)?(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)$")


def parse_time(value: Any) -> int:
    """A Slurm time limit as seconds.

    Accepts ``HH:MM:SS``, ``D-HH:MM:SS`` (Slurm's ``--time`` forms) and a whole number of seconds (int or digits).

    Raises:
        ConfigError: any other form, or a limit of 0 seconds (names ``slurm.time`` and the accepted forms).
    """
    if isinstance(value, bool):
        raise ConfigError(f"slurm.time: {value!r} is not a time; use HH:MM:SS, D-HH:MM:SS or seconds")
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip()
        match = _TIME.match(text)
        if text.isdigit():
            seconds = int(text)
        elif match:
            m, s = int(match["m"]), int(match["s"])
            if m >= 60 or s >= 60:
                raise ConfigError(f"slurm.time: {text!r}: minutes and seconds must be below 60")
            seconds = int(match["days"] or 0) * 86400 + int(match["h"]) * 3600 + m * 60 + s
        else:
            raise ConfigError(f"slurm.time: {text!r} is not a time; use HH:MM:SS, D-HH:MM:SS or seconds")
    if seconds <= 0:
        raise ConfigError(f"slurm.time: {value!r} must be more than 0 seconds")
    return seconds


def format_time(seconds: int) -> str:
    """Seconds as Slurm's ``--time`` value: ``HH:MM:SS``, or ``D-HH:MM:SS`` from one day on."""
    days, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}-{h:02d}:{m:02d}:{s:02d}" if days else f"{h:02d}:{m:02d}:{s:02d}"


class SlurmConfig(BaseModel):
    """Schema of the ``slurm`` section (context, manifest ``deployment_config``, inventory defaults, flags).

    Fields that become ``#SBATCH`` options: ``partition``, ``nodes`` (default 1), ``gpus_per_node`` (0 = no GPU
    request; ``gres_gpu: true`` asks with ``--gres=gpu:N`` instead of ``--gpus-per-node=N``, ``gpu_type`` with
    ``--gres=gpu:TYPE:N``), ``time`` (seconds after
    validation; see :func:`parse_time`), ``account``, ``qos``, ``exclusive``, ``reservation``, ``nodelist``,
    ``exclude``, ``constraint``, ``mem`` (e.g. ``16G``), ``job_name`` (prefix, default ``madengine``),
    ``sbatch_args`` (extra ``--option=value`` words). Job set-up: ``modules`` (``module load`` each), ``env_vars``
    (exported in the job and passed to the model), ``work_dir`` (where job directories are made: shared storage;
    default ``.madengine/slurm`` next to perf.csv), ``scratch`` (node-local directory each node runs in; default: the
    job directory on shared storage), ``template_dir`` (a site directory searched before madengine's
    ``templates/slurm``), ``master_port`` (default 29500), ``network_interface`` (NCCL/GLOO socket interface),
    ``python`` (interpreter with madengine on the nodes; default: this one), ``runtime`` (``docker``/``native``),
    ``image_transfer`` (``save``: images without a registry travel as ``docker save`` archives in the run's
    directory; each node loads one once when its engine lacks it).
    Monitoring: ``poll_interval`` (first interval, s), ``poll_max`` (cap, s), ``unknown_timeout`` (s a job may stay
    unknown before the run gives up), ``submit_retries``.
    """

    model_config = ConfigDict(extra="forbid")

    partition: str | None = None
    nodes: int = Field(default=1, ge=1)
    gpus_per_node: int = Field(default=0, ge=0)
    gres_gpu: bool = False
    gpu_type: str | None = None  # with GPUs: --gres=gpu:TYPE:N (a typed GPU request implies gres)
    time: int | None = None
    account: str | None = None
    qos: str | None = None
    exclusive: bool = False
    reservation: str | None = None
    nodelist: str | None = None
    exclude: str | None = None
    constraint: str | None = None
    mem: str | None = None
    job_name: str = "madengine"
    sbatch_args: list[str] = Field(default_factory=list)
    modules: list[str] = Field(default_factory=list)
    env_vars: EnvVars = Field(default_factory=dict)
    work_dir: str | None = None
    scratch: str | None = None
    template_dir: str | None = None
    master_port: int = Field(default=29500, ge=1, le=65535)
    network_interface: str | None = None
    python: str | None = None
    runtime: Literal["docker", "native"] | None = None
    image_transfer: Literal["save"] | None = None
    poll_interval: float = Field(default=1.0, gt=0)
    poll_max: float = Field(default=15.0, gt=0)
    unknown_timeout: float = Field(default=600.0, gt=0)
    submit_retries: int = Field(default=3, ge=0)

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        return None if value in (None, "") else parse_time(value)

    @field_validator("partition", "account", "qos", "reservation", "nodelist", "exclude", "constraint", "mem",
                     "job_name", "gpu_type")
    @classmethod
    def _sbatch_safe(cls, value: str | None) -> str | None:
        if value is not None and not _SBATCH_VALUE.match(value):
            raise ValueError("may hold only letters, digits and _ . , : + @ % = / [ ] - (it goes on an #SBATCH line)")
        return value

    @field_validator("sbatch_args")
    @classmethod
    def _sbatch_args(cls, value: list[str]) -> list[str]:
        for arg in value:
            if not arg.startswith("--") or not _SBATCH_VALUE.match(arg):
                raise ValueError(f"{arg!r}: each entry must be one --option or --option=value word without spaces, "
                                 "quotes or $")
        return value


    @property
    def time_text(self) -> str | None:
        """``time`` as Slurm's ``--time`` value, or ``None`` (the partition's default)."""
        return format_time(self.time) if self.time else None


def validate(raw: Mapping[str, Any], source: str = "slurm") -> SlurmConfig:
    """Validate a merged ``slurm`` section.

    Raises:
        ConfigError: an unknown key, or a value of the wrong type or form; names ``slurm.<key>`` and the fix.
    """
    try:
        return SlurmConfig.model_validate(dict(raw))
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            import difflib

            near = difflib.get_close_matches(key, list(SlurmConfig.model_fields), n=1)
            if near:
                raise ConfigError(f"{source}.{key}: unknown key; did you mean {near[0]!r}?") from None
            known = ", ".join(sorted(SlurmConfig.model_fields))
            raise ConfigError(f"{source}.{key}: unknown key; known keys: {known}") from None
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{source}.{key}: {msg} (got {err.get('input')!r})") from None
    except ConfigError as e:  # raised by parse_time inside a validator
        raise ConfigError(e.message) from None


def resolve(ctx: Mapping[str, Any], flags: Mapping[str, Any] | None = None,
            defaults: Mapping[str, Any] | None = None) -> SlurmConfig:
    """The effective configuration: ``defaults`` (inventory) < ``ctx["slurm"]`` (manifest < context) < ``flags``.

    ``flags`` with the value ``None`` (or ``False`` for ``exclusive``) were not given and do not override. The
    context's ``runtime`` key is used when the section has none.

    Raises:
        ConfigError: see :func:`validate`.
    """
    merged: dict[str, Any] = dict(defaults or {})
    section = ctx.get("slurm") or {}
    if not isinstance(section, Mapping):
        raise ConfigError("context key 'slurm' must be an object, e.g. {\"slurm\": {\"nodes\": 2}}")
    merged.update(section)
    for key, value in (flags or {}).items():
        if value is None or (key == "exclusive" and value is False):
            continue
        merged[key] = value
    if merged.get("runtime") is None and ctx.get("runtime"):
        merged["runtime"] = ctx["runtime"]
    return validate(merged)
