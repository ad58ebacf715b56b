"""The ``local`` target: run every image of the manifest on this host's Docker engine (``inv run.local``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from madengine.deploy import DeployRequest

if TYPE_CHECKING:  # pragma: no cover
    from madengine.api import RunSummary


def deploy(request: DeployRequest) -> RunSummary:
    """Run the manifest here and append rows to ``request.output``; see :func:`madengine.run_local.run_manifest`.

    The hub (model scripts) is ``request.hub``, else the hub recorded in the manifest, else the current directory.
    On a node of a multi-node job (the Slurm job script exports ``MAD_DEPLOYMENT_TYPE`` and ``MAD_NNODES``) the rows
    carry that deployment type and node count.
    """
    from madengine.api import RunSummary
    from madengine.run_local import LocalRun, run_manifest

    hub = request.hub or Path(request.manifest.hub or ".")
    run = LocalRun(output=request.output, hub=hub, options=request.options, recording=request.recording)
    if os.environ.get("MAD_DEPLOYMENT_TYPE"):
        run.deployment_type = os.environ["MAD_DEPLOYMENT_TYPE"]
    if os.environ.get("MAD_NNODES", "").isdigit():
        run.nnodes = max(1, int(os.environ["MAD_NNODES"]))
    rows = run_manifest(request.manifest, request.ctx, run)
    return RunSummary(rows, request.output, logs=run.logs, artifacts=run.artifacts)
