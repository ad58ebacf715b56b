"""The local run phase: every image of a build manifest runs on this host, one container at a time, and each
model's rows are appended to perf.csv as soon as it finishes (a later crash never loses earlier rows).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from madengine import console, gpu, stop
from madengine.errors import EngineError
from madengine.hub import Model
from madengine.manifest import Manifest
from madengine.results import recording
from madengine.results.perf_csv import PerfRow, check_appendable
from madengine.run_spec import RunOptions
from madengine.workflow.plan import RunRequest
from madengine.workflow.runner import run_model
from madengine.workflow.workspace import RUNS_DIR


@dataclass
class LocalRun:
    """One ``run.local`` of a manifest: where rows and logs go (``output``), the hub, the run options, and what a
    node of a multi-node target adds (``deployment_type``, ``nnodes``). ``logs`` and ``artifacts`` are filled by
    the run (model name → run log; collected files)."""

    output: Path
    hub: Path
    options: RunOptions = field(default_factory=RunOptions)
    deployment_type: str = "local"
    nnodes: int = 1
    logs: dict[str, str] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    recording: Any = None  # madengine.results.recording.Recording: rows also go to the results store


def effective_timeout(model_timeout: int, cli_timeout: int | None) -> float | None:
    """The run step's limit in seconds: ``--timeout`` when given (0 = none), else the model's ``timeout`` (≤ 0 =
    none; the models.json default is 7200)."""
    if cli_timeout is not None:
        return None if cli_timeout <= 0 else float(cli_timeout)
    return None if model_timeout <= 0 else float(model_timeout)


def skipped_for_arch(model: Model, arch: str) -> bool:
    """True when the model's ``skip_gpu_arch`` (comma list, e.g. "gfx90a, gfx942") names the GPU architecture."""
    names = {s.strip() for s in model.skip_gpu_arch.split(",") if s.strip()}
    return bool(arch) and arch in names


def _other_arch(manifest: Manifest, image: str, node_arch: str) -> bool:
    """True when ``image`` was built for another GPU architecture than this node's and is not to be tried here: the
    manifest has an image of the same model and Dockerfile for this node's (each node runs its own), or has none and
    another architecture's image stands for the model (its row names the mismatch)."""
    build = manifest.built_images[image]
    if not build.gpu_architecture or build.gpu_architecture == node_arch:
        return False
    siblings = [key for key, b in manifest.built_images.items()
                if b.model == build.model and b.dockerfile == build.dockerfile and b.gpu_architecture]
    if any(manifest.built_images[key].gpu_architecture == node_arch for key in siblings):
        return True
    return siblings[0] != image  # none fits this node: one FAILURE row for the model, not one per architecture


def _arch_mismatch(request: RunRequest) -> str:
    """Why the request's image cannot run on this node's GPU architecture (built for another one, none for this
    node's), or ``""``."""
    built = request.build.gpu_architecture
    node = request.gpus.architecture
    if not built or built == node:
        return ""
    return (f"image {request.image} is built for {built}, this node's GPUs are {node or 'of unknown architecture'}; "
            f"build for it with --target-archs {node or 'ARCH'}")


def _stale_image(client: Any, request: RunRequest, ref: str) -> str:
    """Why ``ref`` on this engine is not the image the build recorded (``image_id`` in the manifest: a tag rebuilt
    or loaded since, e.g. on one node of a cluster), naming both ids; ``""`` when it is, or nothing was recorded."""
    from madengine import docker_images

    recorded = request.build.image_id
    if client is None or not recorded or not docker_images.image_exists(client, ref):
        return ""
    found = docker_images.image_id(client, ref)
    if found == recorded:
        return ""
    return (f"image {ref} here is {found.removeprefix('sha256:')[:12]}, but the build recorded "
            f"{recorded.removeprefix('sha256:')[:12]}: a different image under the same name; rebuild "
            "(`inv build`) or bring the recorded image to this node")


def _run_one(client: Any, request: RunRequest, model: Model, image: str, ref: str,
             run: LocalRun, data_config: Mapping[str, Any], creds: Mapping[str, Any],
             work_root: Path) -> list[PerfRow]:
    """Rows of one model: SKIPPED for its GPU architecture, FAILURE when its image or data is missing, else run."""
    from madengine import docker_images
    from madengine.workflow import data
    from madengine.workflow.plan import base_row

    options = run.options
    if not options.disable_skip_gpu_arch and skipped_for_arch(model, request.gpus.architecture):
        return [base_row(request).model_copy(update={
            "status": "SKIPPED", "reason": f"skip_gpu_arch lists {request.gpus.architecture}"})]
    if client is not None and ref == image and not docker_images.image_exists(client, image):
        return [base_row(request).model_copy(update={
            "status": "FAILURE", "reason": f"image {image} is not on this engine and has no registry_image; "
                                           "run `inv build` first"})]
    refused = _arch_mismatch(request) or _stale_image(client, request, ref)
    if refused:
        return [base_row(request).model_copy(update={"status": "FAILURE", "reason": refused})]
    if model.data and not options.skip_model_run:
        try:
            request.data = data.resolve(model.data, data_config, hub=run.hub, creds=creds,
                                        force_mirror=options.force_mirror_local,
                                        default_root=work_root.parent / "data")
        except data.DataError as e:
            return [base_row(request).model_copy(update={"status": "FAILURE", "reason": str(e),
                                                         "dataname": model.data})]
    if client is None:  # "runtime": "native": no container (madengine.workflow.native)
        from madengine.workflow.native import run_model_native

        console.progress(f"running {model.name} natively (no container)"
                         + (f" (timeout {request.timeout:.0f} s)" if request.timeout else ""))
        return run_model_native(request, console.progress)
    if not options.skip_model_run:
        console.progress(f"running {model.name} in {ref}"
                         + (f" (timeout {request.timeout:.0f} s)" if request.timeout else ""))
    return run_model(client, request, console.progress)


def run_manifest(manifest: Manifest, ctx: dict[str, Any], run: LocalRun,
                 on_rows: Callable[[list[PerfRow]], None] | None = None) -> list[PerfRow]:
    """Run every built image of ``manifest`` here and append the rows to ``run.output``.

    Args:
        ctx: the merged, validated run context (manifest's stored context < runtime context).
        on_rows: called with each model's rows after they were appended.

    Returns:
        All rows, in run order.

    Raises:
        ConfigError: no GPU for a GPU run, bad scripts or options (before any container starts for that model).
        EngineError: the engine is unreachable.
        PerfCsvError: perf.csv cannot be appended to (checked before the first model runs).
        KeyboardInterrupt: Ctrl-C, after the running container was removed.
    """
    from madengine import docker_engine, docker_images
    from madengine.workflow import setup

    options = run.options
    host = gpu.detect()
    native = ctx.get("runtime") == "native"
    client = None if native else docker_engine.connect()
    if client is not None:
        from madengine import cleanup

        cleanup.report(client)
    if not options.skip_model_run:
        check_appendable(run.output)  # a foreign or cut-short perf.csv fails before any model runs
    shared = setup.load(run.hub, ctx, tools_config=options.tools_config, data_config=options.data_config,
                        sys_env_details=options.sys_env_details)
    masker = shared.masker
    run_id = run.recording.run_id if run.recording is not None else uuid.uuid4().hex[:12]
    log_dir = run.output.resolve().parent
    work_root = log_dir / ".madengine" / "work"
    all_rows: list[PerfRow] = []
    build_number = os.environ.get("BUILD_NUMBER", "")
    for image, build in manifest.built_images.items():
        stop.check()  # a stop signal swallowed earlier (inside a __del__) still stops before the next model
        model = manifest.model_for(image)
        assignment = gpu.assign(ctx, model.n_gpus, host)
        if _other_arch(manifest, image, assignment.architecture):
            continue  # a --target-archs image for another architecture; this node's own image runs instead
        ref = image
        if client is not None and build.image_archive and not docker_images.image_exists(client, image):
            console.progress(f"loading {image} from {build.image_archive} (not on this node's engine yet)")
            docker_images.load_image(client, Path(build.image_archive))
        if client is not None and not docker_images.image_exists(client, image) and build.registry_image:
            if not docker_images.image_exists(client, build.registry_image):
                console.progress(f"pulling {build.registry_image}")
                docker_images.pull_image(client, build.registry_image)
            ref = build.registry_image
        extra_env = {"BUILD_NUMBER": build_number, **shared.cred_env(model)}
        request = RunRequest(
            model=model, build=build, image=ref, hub=run.hub, ctx=ctx, gpus=assignment,
            timeout=effective_timeout(model.timeout, options.timeout), log_dir=log_dir,
            work_root=work_root, run_id=run_id, options=options, extra_env=extra_env, sys_env_details=shared.sys_env,
            tools=shared.tools, masker=masker, deployment_type=run.deployment_type, nnodes=run.nnodes)
        try:
            rows = _run_one(client, request, model, image, ref, run, shared.data_config, shared.creds, work_root)
        except EngineError as e:  # the engine refused this model's container: a FAILURE row, the next model runs
            if client is None or not docker_engine.reachable(client):
                raise
            from madengine.workflow.plan import base_row

            rows = [base_row(request).model_copy(update={"status": "FAILURE", "reason": masker.text(e.message)})]
        if not options.skip_model_run:
            recording.append(run.output, rows, run.recording)
            log = log_dir / RUNS_DIR / run_id / f"{build.log_base or model.name.replace('/', '_')}.run.live.log"
            if log.is_file():  # this run's own log (the name next to perf.csv points to the latest run's)
                run.logs[model.name] = str(log)
            run.artifacts.extend(str(p) for p in request.artifacts)
        console.rows(rows, masker.text)
        for path in request.artifacts:
            console.progress(f"{model.name}: collected {path}")
        all_rows.extend(rows)
        if on_rows:
            on_rows(rows)
    with contextlib.suppress(OSError):  # leave no empty work directories behind
        work_root.rmdir()
        work_root.parent.rmdir()
    return all_rows
