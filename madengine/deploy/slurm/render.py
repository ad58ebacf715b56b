"""Render the sbatch script from ``templates/slurm/job.sh.j2`` (Jinja2). Rendering never submits anything.

Template lookup: the site's ``slurm.template_dir`` first (it may override ``job.sh.j2``), then
``$MADENGINE_TEMPLATES/slurm``, then madengine's own ``templates/slurm`` (the repository's ``templates/`` directory).
Filters: ``shquote`` (``shlex.quote`` of ``str(value)``: safe for ``$(...)``, quotes, newlines) and ``shname``
(a shell variable name, else :class:`~madengine.errors.ConfigError`). Undefined template variables are errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from madengine import templating
from madengine.deploy.slurm.config import SlurmConfig
from madengine.errors import ConfigError
from madengine.templating import shname

TEMPLATE_NAME = "job.sh.j2"

_SBATCH_PATH = re.compile(r"^[A-Za-z0-9_.,:+@%=/\-]+$")


def default_template_dir() -> Path:
    """madengine's own ``templates/slurm`` (``$MADENGINE_TEMPLATES/slurm`` when that variable is set)."""
    return templating.kind_dir("slurm")


@dataclass
class JobSpec:
    """Everything one job script needs. Paths are as the cluster sees them (absolute, on shared storage).

    ``job_dir`` holds ``build_manifest.json`` (the one model of this job) and receives ``slurm-<id>.out/.err`` and
    ``results/<node>/``; ``hub`` is the model hub (scripts) on shared storage; ``python`` runs ``-m madengine`` on
    the nodes; ``env_vars`` are exported in the job; ``run_args`` are extra ``run.local`` arguments (e.g.
    ``--timeout 60``).
    """

    job_name: str
    job_dir: str
    hub: str
    python: str
    cfg: SlurmConfig
    env_vars: dict[str, str] = field(default_factory=dict)
    run_args: list[str] = field(default_factory=list)


def render(spec: JobSpec) -> str:
    """The sbatch script text for ``spec``.

    Raises:
        ConfigError: an ``env_vars`` key that is not a shell name; a job directory path or job name that cannot go
            on an ``#SBATCH`` line (spaces, quotes, ``$``); a missing or broken template (names the file).
    """

    for name in spec.env_vars:
        shname(name)
    if not _SBATCH_PATH.match(spec.job_dir):
        raise ConfigError(f"slurm.work_dir: job directory {spec.job_dir!r} has characters sbatch cannot take on "
                          "an #SBATCH line (spaces, quotes, $); choose a plain path")
    if not _SBATCH_PATH.match(spec.job_name):
        raise ConfigError(f"slurm.job_name: {spec.job_name!r} has characters sbatch cannot take; use letters, "
                          "digits, _ . -")
    extra = [Path(spec.cfg.template_dir)] if spec.cfg.template_dir else []
    return templating.render("slurm", TEMPLATE_NAME, {
        "job_name": spec.job_name, "job_dir": spec.job_dir, "hub": spec.hub, "python": spec.python, "cfg": spec.cfg,
        "env_vars": spec.env_vars, "run_args": spec.run_args}, extra, setting="slurm.template_dir")


def job_name(prefix: str, model: str) -> str:
    """``<prefix>-<model>`` with every character outside ``[A-Za-z0-9_.-]`` replaced by ``_`` (max 100)."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", f"{prefix}-{model}")[:100]
