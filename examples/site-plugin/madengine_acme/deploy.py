"""A toy deployment target, ``acme-dryrun``: records what each model would run, without running it."""

from __future__ import annotations

from madengine import api


def deploy(request: api.DeployRequest) -> api.RunSummary:
    """Append one SKIPPED row per built image (deployment_type ``acme-dryrun``) and return them."""
    rows = []
    for image, build in request.manifest.built_images.items():
        model = request.manifest.model_for(image)
        rows.append(api.PerfRow(model=model.name, docker_image=image, docker_file=build.dockerfile,
                                deployment_type="acme-dryrun", args=model.args, status="SKIPPED",
                                reason=f"dry run: would run {model.scripts} in {image}"))
    api.append_rows(request.output, rows)
    return api.RunSummary(rows, request.output)
