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
    from madengine.run_local import RunOptions, run_manifest

    hub = request.hub or Path(request.manifest.hub or ".")
    options = RunOptions(output=request.output, hub=hub, timeout=request.timeout, keep_alive=request.keep_alive,
                         keep_model_dir=request.keep_model_dir, skip_model_run=request.skip_model_run,
                         live_output=request.live_output, sys_env_details=request.sys_env_details,
                         tools_config=request.tools_config, force_mirror_local=request.force_mirror_local,
                         data_config=request.data_config,
                         disable_skip_gpu_arch=request.disable_skip_gpu_arch)
    if os.environ.get("MAD_DEPLOYMENT_TYPE"):
        options.deployment_type = os.environ["MAD_DEPLOYMENT_TYPE"]
    if os.environ.get("MAD_NNODES", "").isdigit():
        options.nnodes = max(1, int(os.environ["MAD_NNODES"]))
    rows = run_manifest(request.manifest, request.ctx, options)
    return RunSummary(rows, request.output, logs=options.logs, artifacts=options.artifacts)
